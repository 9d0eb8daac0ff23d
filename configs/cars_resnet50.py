"""PFML, ResNet-50, Cars-196.

    python -m pfml_jax.main --config=configs/cars_resnet50.py --workdir=/tmp/pfml_cars_resnet50 \
        --config.data.root=/data/cars196 --config.model.pretrained=/weights/resnet50.safetensors

Other recipes: append :pfml_main_text, or a baseline's name for that baseline on its own
recipe (e.g. configs/cars_resnet50.py:proxy_anchor); see pfml_jax/experiments.py.
"""

from pfml_jax.experiments import experiment


def get_config(recipe: str = "pfml"):
  """``recipe``: the part after ":" in --config=FILE:RECIPE (see pfml_jax/experiments.py)."""
  return experiment("cars196", "resnet50", recipe or "pfml")
