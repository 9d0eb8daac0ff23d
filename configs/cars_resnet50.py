"""PFML, ResNet-50, Cars-196.

    python -m pfml_jax.main --config=configs/cars_resnet50.py --workdir=/tmp/pfml_cars_resnet50 \
        --config.data.root=/data/cars196 --config.model.pretrained=/weights/resnet50.safetensors
"""

from pfml_jax.experiments import experiment


def get_config():
  return experiment("cars196", "resnet50")
