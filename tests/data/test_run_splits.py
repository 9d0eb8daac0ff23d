"""Which classes a run holds out for validation: from data.split_seed, or from the run's seed
under data.split_per_seed, on the shipped demo set."""

from pfml_jax import default_config
from pfml_jax.data.run_splits import read_splits


def held_out(seed: int, per_seed: bool) -> tuple[frozenset, frozenset]:
  """(validation class names, training class names) of a validated demo run."""
  config = default_config.get_config()
  config.data.name, config.eval.protocol, config.data.val_classes = "demo", "validated", 20
  config.seed, config.data.split_per_seed = seed, per_seed
  train, val, _ = read_splits(config)
  return frozenset(val.class_names), frozenset(train.class_names)


def test_seeds_share_the_split_unless_split_per_seed():
  assert held_out(0, False) == held_out(1, False)
  val_0, train_0 = held_out(0, True)
  val_1, train_1 = held_out(1, True)
  assert val_0 != val_1 and len(val_0) == len(val_1) == 20
  assert not val_0 & train_0 and not val_1 & train_1
  assert val_0 | train_0 == val_1 | train_1  # the same 76 training classes, drawn differently
  assert held_out(0, True) == held_out(0, False)  # seed 0 draws as split_seed 0
