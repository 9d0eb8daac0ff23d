"""PFML, BN-Inception, CUB-200-2011.

    python -m pfml_jax.main --config=configs/cub_bninception.py --workdir=/tmp/pfml_cub_bninception \
        --config.data.root=/data/CUB_200_2011 --config.model.pretrained=/weights/bninception.safetensors
"""

from pfml_jax.experiments import experiment


def get_config():
  return experiment("cub200", "bninception")
