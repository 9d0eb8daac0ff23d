"""What ``python -m pfml_jax.main --dry_run`` prints: a run checked before it spends any time.

The resolved config with the source of every value, the dataset's counts as the run's splits
read them, and the run length; nothing is compiled, trained or written.
"""

from collections.abc import Mapping

import ml_collections

from pfml_jax.data.run_splits import read_splits
from pfml_jax.settings.provenance import leaves
from pfml_jax.settings.run_settings import resolve


def dry_run_report(config: ml_collections.ConfigDict, sources: Mapping[str, str]) -> str:
  """The report of ``config`` (validated here), ``sources`` giving each field's source (see
  ``provenance.config_sources``). Reads the splits' file lists (a missing dataset raises the
  same UserInputError as training)."""
  settings = resolve(config)
  train, val, test = read_splits(config)
  length = settings.run_length(train.labels, train.num_classes)
  lines = ["Config (field = value  [source: paper, supp, PA, HIST, Hyp, conv, ours, flag, or "
           "the file that set it]):"]
  lines += [f"  {field} = {_shown(parent[key])}  [{sources.get(field, '?')}]"
            for field, parent, key in leaves(config)]
  lines.append(f"Dataset {config.data.name} ({config.data.root or 'its default root'}):")
  for name, split in (("train", train), ("val", val), ("test", test)):
    counts = (f"{len(split)} images, {split.num_classes} classes" if split is not None else
              "none (eval.protocol='paper' holds out no validation classes)")
    lines.append(f"  {name}: {counts}")
  data = config.data
  lines += [
      "Run length:",
      f"  batch size {length.batch_size} ({data.classes_per_batch} classes x "
      f"{data.images_per_class} images, sampler {data.sampler})",
      f"  {length.steps_per_epoch} steps per epoch, {length.total_steps} steps in all"
      + ("" if config.steps else f" ({config.epochs} epochs)"),
      f"  evaluation every {length.every(config.eval.every_epochs)} steps "
      f"({config.eval.every_epochs} epochs), checkpoint every "
      f"{config.checkpoint.every_steps} steps, log every {config.log_every_steps} steps",
      "Dry run: nothing was compiled, trained or written."]
  return "\n".join(lines)


def _shown(value) -> str:
  """A value as a config file would write it."""
  if isinstance(value, ml_collections.ConfigDict):
    return repr(value.to_dict())
  return repr(value)
