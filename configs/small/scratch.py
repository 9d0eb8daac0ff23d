"""Small-scale training of the tiny ResNet from scratch (the demo's regime), CPU.

    python -m pfml_jax.main --config=configs/small/scratch.py --workdir=/tmp/small_pfml
    python -m pfml_jax.main --config=configs/small/scratch.py:triplet --workdir=/tmp/x \
        --config.data.name=image_folder --config.data.root=DIR

Recipes after ":" as in pfml_jax/experiments.py; how each is scaled down:
pfml_jax/small_experiments.py.
"""

from pfml_jax.small_experiments import small_experiment


def get_config(recipe: str = "pfml"):
  """``recipe``: the part after ":" in --config=FILE:RECIPE."""
  return small_experiment("scratch", recipe or "pfml")
