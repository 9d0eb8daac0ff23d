"""make_loss rejects bad hyperparameters by name, before anything is traced."""

import pytest

from pfml_jax.losses import LOSSES, make_loss


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_bad_hyperparameters_fail_by_name(name):
  spec = LOSSES[name]
  assert spec.positive or spec.choices, f"{name} declares no checks"
  for key in spec.positive:
    for bad in (0.0, -1.0, float("nan"), float("inf"), "1"):
      with pytest.raises(ValueError, match=f"'{name}': {key} must be a finite number > 0"):
        make_loss(name, **{key: bad})
  for key, allowed in spec.choices.items():
    with pytest.raises(ValueError, match=f"'{name}': {key} must be one of"):
      make_loss(name, **{key: "no_such_option"})
    for option in allowed:
      assert make_loss(name, **{key: option}).hparams[key] == option
  with pytest.raises(ValueError, match="no hyperparameter"):
    make_loss(name, no_such_hyperparameter=1.0)
  assert make_loss(name).hparams == spec.defaults
