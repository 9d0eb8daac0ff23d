"""A resume continues the batches its checkpoint was written with, or says what changed."""

from pfml_jax.user_errors import ConfigError

# The input state's fields that fix which batches come next (see setup.input_state).
COMPARED = ("dataset", "train_images", "labels_crc32", "label_noise", "seed", "sampler",
            "batch_size", "classes_per_batch")


def input_differences(saved: dict, current: dict) -> list[str]:
  """'field: checkpoint X, now Y' for every compared field present in both and different."""
  return [f"{key}: {saved[key]!r} in the checkpoint, {current[key]!r} now" for key in COMPARED
          if key in saved and key in current and saved[key] != current[key]]


def check_resume(saved: dict, current: dict, step: int, directory, allowed: bool) -> list[str]:
  """Raises ConfigError if the input changed since ``step`` was saved, unless ``allowed``;
  returns the differences."""
  differences = input_differences(saved, current)
  if differences and not allowed:
    raise ConfigError(
        f"The checkpoint at step {step} in {directory} was written with other training input "
        f"({'; '.join(differences)}); resuming would continue with different batches. Rerun "
        "with the settings it was trained with, use a new --workdir, or pass "
        "--allow_input_change to continue anyway.")
  return differences
