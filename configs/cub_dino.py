"""PFML, DINO ViT-S/16, CUB-200-2011.

    python -m pfml_jax.main --config=configs/cub_dino.py --workdir=/tmp/pfml_cub_dino \
        --config.data.root=/data/CUB_200_2011 --config.model.pretrained=/weights/dino_vits16.safetensors
"""

from pfml_jax.experiments import experiment


def get_config():
  return experiment("cub200", "dino_vits16")
