"""PFML, ResNet-50, Stanford Online Products.

    python -m pfml_jax.main --config=configs/sop_resnet50.py --workdir=/tmp/pfml_sop_resnet50 \
        --config.data.root=/data/Stanford_Online_Products --config.model.pretrained=/weights/resnet50.safetensors
"""

from pfml_jax.experiments import experiment


def get_config():
  return experiment("sop", "resnet50")
