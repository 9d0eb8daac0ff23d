"""PFML, BN-Inception, Cars-196.

    python -m pfml_jax.main --config=configs/cars_bninception.py --workdir=/tmp/pfml_cars_bninception \
        --config.data.root=/data/cars196 --config.model.pretrained=/weights/bninception.safetensors
"""

from pfml_jax.experiments import experiment


def get_config():
  return experiment("cars196", "bninception")
