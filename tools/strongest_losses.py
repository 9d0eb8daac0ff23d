"""The k losses of a study other than PFML with the highest mean validation result, best first,
comma-separated: which baselines the noise curve follows (chosen on validation classes, never
on test).

    python -m tools.strongest_losses STUDY_DIR [--k=2] [--metric=recall@1]
"""

import statistics

from absl import flags

from pfml_jax.command_line import fail, parse_tool_flags
from pfml_jax.study.grid import FLOOR
from tools.effects_table import REFERENCE, studies_per_seed

_FLAGS = flags.FlagValues()
flags.DEFINE_integer("k", 2, "how many losses", lower_bound=1, flag_values=_FLAGS)
flags.DEFINE_string("metric", "recall@1", "the validation metric ranked", flag_values=_FLAGS)


def strongest(values: dict[tuple, dict], k: int) -> list[str]:
  """The k methods other than PFML and the floor with the highest clean mean."""
  means = {method: statistics.fmean(runs.values()) for (method, noise), runs in values.items()
           if noise == 0.0 and method not in (REFERENCE, FLOOR) and runs}
  return sorted(means, key=lambda method: -means[method])[:k]


def main(argv: list[str] | None = None) -> None:
  folders = parse_tool_flags(_FLAGS, argv, __doc__)
  if len(folders) != 1:
    fail("give one argument, the study's folder.")
  chosen = strongest(studies_per_seed(folders, "validation", _FLAGS.metric), _FLAGS.k)
  if len(chosen) < _FLAGS.k:
    fail(f"{folders[0]}: fewer than {_FLAGS.k} other losses have finished clean runs.")
  print(",".join(chosen))


if __name__ == "__main__":
  main()
