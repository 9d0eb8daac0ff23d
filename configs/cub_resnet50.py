"""PFML, ResNet-50, CUB-200-2011.

    python -m pfml_jax.main --config=configs/cub_resnet50.py --workdir=/tmp/pfml_cub_resnet50 \
        --config.data.root=/data/CUB_200_2011 --config.model.pretrained=/weights/resnet50.safetensors
"""

from pfml_jax.experiments import experiment


def get_config():
  return experiment("cub200", "resnet50")
