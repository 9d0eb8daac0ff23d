"""Small-scale fine-tuning of the glyph-pretrained tiny ResNet (the paper's recipe), CPU.

    python -m pfml_jax.main --config=configs/small/pretrained.py --workdir=/tmp/small_pfml
    python -m pfml_jax.main --config=configs/small/pretrained.py:proxy_anchor --workdir=/tmp/x \
        --config.data.name=image_folder --config.data.root=DIR

Recipes after ":" as in pfml_jax/experiments.py; how each is scaled down:
pfml_jax/small_experiments.py.
"""

from pfml_jax.small_experiments import small_experiment


def get_config(recipe: str = "pfml"):
  """``recipe``: the part after ":" in --config=FILE:RECIPE."""
  return small_experiment("pretrained", recipe or "pfml")
