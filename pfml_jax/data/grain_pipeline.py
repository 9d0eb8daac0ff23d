"""Turning a step-indexed grain MapDataset into a prefetching iterator (threads, processes)."""

import grain
from absl import flags


def prefetching_iterator(dataset: grain.MapDataset, threads: int, workers: int):
  """Iterates ``dataset`` in order, computed ahead by ``threads`` threads in each of
  ``workers`` worker processes (0: in this process only)."""
  iterator = dataset.to_iter_dataset(grain.ReadOptions(
      num_threads=threads, prefetch_buffer_size=2 * max(threads, 1)))
  if workers > 0:
    # grain's workers read absl flags; scripts without absl.app have not parsed them
    # (google/grain#1355), so they are marked parsed, which keeps every default.
    if not flags.FLAGS.is_parsed():
      flags.FLAGS.mark_as_parsed()
    iterator = iterator.mp_prefetch(grain.MultiprocessingOptions(
        num_workers=workers, per_worker_buffer_size=2))
  return iter(iterator)
