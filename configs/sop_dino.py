"""PFML, DINO ViT-S/16, Stanford Online Products.

    python -m pfml_jax.main --config=configs/sop_dino.py --workdir=/tmp/pfml_sop_dino \
        --config.data.root=/data/Stanford_Online_Products --config.model.pretrained=/weights/dino_vits16.safetensors
"""

from pfml_jax.experiments import experiment


def get_config():
  return experiment("sop", "dino_vits16")
