"""PFML, DINO ViT-S/16, Cars-196.

    python -m pfml_jax.main --config=configs/cars_dino.py --workdir=/tmp/pfml_cars_dino \
        --config.data.root=/data/cars196 --config.model.pretrained=/weights/dino_vits16.safetensors
"""

from pfml_jax.experiments import experiment


def get_config():
  return experiment("cars196", "dino_vits16")
