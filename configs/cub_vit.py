"""PFML, ViT-S/16, CUB-200-2011.

    python -m pfml_jax.main --config=configs/cub_vit.py --workdir=/tmp/pfml_cub_vit \
        --config.data.root=/data/CUB_200_2011 --config.model.pretrained=/weights/vit_s16.safetensors

Other recipes: append :pfml_main_text, or a baseline's name for that baseline on its own
recipe (e.g. configs/cub_vit.py:proxy_anchor); see pfml_jax/experiments.py.
"""

from pfml_jax.experiments import experiment


def get_config(recipe: str = "pfml"):
  """``recipe``: the part after ":" in --config=FILE:RECIPE (see pfml_jax/experiments.py)."""
  return experiment("cub200", "vit_s16", recipe or "pfml")
