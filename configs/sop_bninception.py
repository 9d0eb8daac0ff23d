"""PFML, BN-Inception, Stanford Online Products.

    python -m pfml_jax.main --config=configs/sop_bninception.py --workdir=/tmp/pfml_sop_bninception \
        --config.data.root=/data/Stanford_Online_Products --config.model.pretrained=/weights/bninception.safetensors
"""

from pfml_jax.experiments import experiment


def get_config():
  return experiment("sop", "bninception")
