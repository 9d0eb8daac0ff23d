"""The paper's experiments as config presets: a dataset part and a backbone part.

``configs/<dataset>_<backbone>.py`` each call ``experiment(dataset, backbone)``; every value
here is commented with its source ([paper] = Bhatnagar & Ahuja 2025, [PA] = Proxy Anchor's
reference recipe, [conv] = the field's convention where the paper is silent).
"""

import ml_collections

from pfml_jax import default_config


def _cub200(config):
  config.data.name = "cub200"
  config.data.val_classes = 20  # 80 training classes remain for training [conv: model selection]
  config.loss.proxies_per_class = 15  # [paper]
  config.optim.weight_decay = 5e-4  # [paper: CUB]
  config.model.frozen_bn = True  # [paper/PA]
  config.eval.ks = (1, 2, 4, 8)  # [conv]


def _cars196(config):
  config.data.name = "cars196"
  config.data.val_classes = 20
  config.loss.proxies_per_class = 15  # [paper]
  config.optim.weight_decay = 1e-4  # [paper: Cars]
  config.model.frozen_bn = True  # [paper/PA]
  config.eval.ks = (1, 2, 4, 8)  # [conv]


def _sop(config):
  config.data.name = "sop"
  config.data.val_classes = 1000
  config.data.classes_per_batch = 50  # SOP classes hold 2-12 images [conv: K = 2]
  config.data.images_per_class = 2
  config.loss.proxies_per_class = 2  # [paper: M = 2 on SOP]
  config.optim.weight_decay = 1e-4  # not stated for SOP; Cars' value
  config.model.frozen_bn = False  # [PA: BN trained on SOP]
  config.eval.ks = (1, 10, 100, 1000)  # [conv]
  config.eval.every_epochs = 10


def _cnn(config, backbone):
  config.model.backbone = backbone
  config.model.embedding_dim = 512  # [paper: 512-d for ResNet-50 and BN-Inception]
  config.model.pooling = "avg"  # [paper: GAP]
  config.optim.learning_rate = 1e-4  # [paper supplement]
  config.optim.proxy_lr_mult = 100.0  # proxies at 1e-2 [paper supplement]
  config.data.crop_scale = (0.08, 1.0)  # RandomResizedCrop(224) [paper]


def _vit(config, backbone):
  config.model.backbone = backbone
  config.model.embedding_dim = 384  # [paper: 384-d for ViT-S/16 and DINO]
  config.model.pooling = "token"  # the CLS token [conv]
  config.model.frozen_bn = False  # no BatchNorm in a ViT
  config.optim.learning_rate = 3e-5  # [conv: AdamW 1e-5..3e-5 for ViT DML]
  config.optim.proxy_lr_mult = 100.0  # [paper: proxies x100]
  config.optim.clip = "norm"  # [conv: clip by global norm 3]
  config.optim.clip_threshold = 3.0
  config.data.crop_scale = (0.2, 1.0)  # [conv: RandomResizedCrop scale 0.2-1, bicubic]


_DATASETS = {"cub200": _cub200, "cars196": _cars196, "sop": _sop}
_BACKBONES = {"resnet50": _cnn, "bninception": _cnn, "vit_s16": _vit, "dino_vits16": _vit}


def experiment(dataset: str, backbone: str) -> ml_collections.ConfigDict:
  """PFML with ``backbone`` on ``dataset``, as in the paper's tables."""
  config = default_config.get_config()
  _BACKBONES[backbone](config, backbone)
  _DATASETS[dataset](config)
  return config
