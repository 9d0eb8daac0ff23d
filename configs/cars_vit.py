"""PFML, ViT-S/16, Cars-196.

    python -m pfml_jax.main --config=configs/cars_vit.py --workdir=/tmp/pfml_cars_vit \
        --config.data.root=/data/cars196 --config.model.pretrained=/weights/vit_s16.safetensors
"""

from pfml_jax.experiments import experiment


def get_config():
  return experiment("cars196", "vit_s16")
