"""PFML, BN-Inception, Stanford Online Products.

    python -m pfml_jax.main --config=configs/sop_bninception.py --workdir=/tmp/pfml_sop_bninception \
        --config.data.root=/data/Stanford_Online_Products --config.model.pretrained=/weights/bninception.safetensors

Other recipes: append :pfml_main_text, or a baseline's name for that baseline on its own
recipe (e.g. configs/sop_bninception.py:proxy_anchor); see pfml_jax/experiments.py.
"""

from pfml_jax.experiments import experiment


def get_config(recipe: str = "pfml"):
  """``recipe``: the part after ":" in --config=FILE:RECIPE (see pfml_jax/experiments.py)."""
  return experiment("sop", "bninception", recipe or "pfml")
