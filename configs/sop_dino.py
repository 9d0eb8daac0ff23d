"""PFML, DINO ViT-S/16, Stanford Online Products.

    python -m pfml_jax.main --config=configs/sop_dino.py --workdir=/tmp/pfml_sop_dino \
        --config.data.root=/data/Stanford_Online_Products --config.model.pretrained=/weights/dino_vits16.safetensors

Other recipes: append :pfml_main_text, or a baseline's name for that baseline on its own
recipe (e.g. configs/sop_dino.py:proxy_anchor); see pfml_jax/experiments.py.
"""

from pfml_jax.experiments import experiment


def get_config(recipe: str = "pfml"):
  """``recipe``: the part after ":" in --config=FILE:RECIPE (see pfml_jax/experiments.py)."""
  return experiment("sop", "dino_vits16", recipe or "pfml")
