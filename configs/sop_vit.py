"""PFML, ViT-S/16, Stanford Online Products.

    python -m pfml_jax.main --config=configs/sop_vit.py --workdir=/tmp/pfml_sop_vit \
        --config.data.root=/data/Stanford_Online_Products --config.model.pretrained=/weights/vit_s16.safetensors
"""

from pfml_jax.experiments import experiment


def get_config():
  return experiment("sop", "vit_s16")
