"""PFML, BN-Inception, CUB-200-2011.

    python -m pfml_jax.main --config=configs/cub_bninception.py --workdir=/tmp/pfml_cub_bninception \
        --config.data.root=/data/CUB_200_2011 --config.model.pretrained=/weights/bninception.safetensors

Other recipes: append :pfml_main_text, or a baseline's name for that baseline on its own
recipe (e.g. configs/cub_bninception.py:proxy_anchor); see pfml_jax/experiments.py.
"""

from pfml_jax.experiments import experiment


def get_config(recipe: str = "pfml"):
  """``recipe``: the part after ":" in --config=FILE:RECIPE (see pfml_jax/experiments.py)."""
  return experiment("cub200", "bninception", recipe or "pfml")
