"""The paper's experiments as config presets: a dataset, a backbone and a recipe.

``configs/<dataset>_<backbone>.py`` call ``experiment(dataset, backbone, recipe)``; the recipe
is the part after ``:`` of ``--config=configs/cub_resnet50.py:proxy_anchor`` (default
``pfml``). Every value is commented with its source: [paper] = Bhatnagar & Ahuja 2025,
[supp] = its supplement, [PA] = Proxy Anchor's code (github tjddus9597/Proxy-Anchor-CVPR2020,
train.py and its README commands), [HIST] = HIST's code (github ljin0429/HIST, code/train.py
and its README commands), [Hyp] = Hyp-DML's code (github htdt/hyp_metric) and its protocol,
[conv] = the field's convention where the sources are silent.

Recipes:
  pfml: the paper's setting with the supplement's rates (AdamW 1e-4, proxies 1e-2).
  pfml_main_text: the main text's rates (Adam 5e-4, proxies x100); the two texts disagree.
  proxy_anchor, proxy_nca, multi_similarity, triplet, normalized_softmax: each baseline on
    the recipe of the code its comparison row comes from (CNNs: PA's train.py, which also
    trains ProxyNCA, MS and Triplet through pytorch-metric-learning; ViTs: Hyp's protocol).
  hist: HIST on its own code's recipe (CNNs: HIST's train.py and README commands; ViTs: Hyp's
    protocol with HIST's loss).
"""

import dataclasses

import ml_collections

from pfml_jax import default_config
from pfml_jax.losses import LOSSES
from pfml_jax.user_errors import ConfigError

PFML_RECIPES = ("pfml", "pfml_main_text")
RECIPES = PFML_RECIPES + tuple(name for name in LOSSES if name != "pfml")
# PA's README commands: (batch, warm-up epochs, StepLR step in epochs) by backbone and dataset;
# SOP has a command for BN-Inception only, which ResNet-50 reuses [our choice].
_PA_COMMANDS = {
    ("resnet50", "cub200"): (120, 5, 5), ("resnet50", "cars196"): (120, 5, 10),
    ("resnet50", "sop"): (120, 1, 20),
    ("bninception", "cub200"): (180, 1, 10), ("bninception", "cars196"): (180, 1, 20),
    ("bninception", "sop"): (180, 1, 20),
}
_PA_EPOCHS = 60  # [PA: --epochs default]


@dataclasses.dataclass(frozen=True)
class _HistCommand:
  """The flags of one of HIST's README commands (each field is the flag of the same name)."""

  lr: float  # --lr
  lr_ds: float  # --lr-ds: the class distributions' rate
  lr_hgnn_factor: float  # --lr-hgnn-factor: the HGNN's rate, a multiple of --lr
  weight_decay: float  # --weight-decay
  lr_decay_step: int  # --lr-decay-step, in epochs
  epochs: int  # --epochs
  tau: float  # --tau
  alpha: float  # --alpha


# HIST's README commands (ResNet-50; BN-Inception reuses them [our choice]), by dataset.
_HIST_COMMANDS = {
    "cub200": _HistCommand(lr=1.2e-4, lr_ds=1e-1, lr_hgnn_factor=5.0, weight_decay=5e-5,
                           lr_decay_step=5, epochs=40, tau=32.0, alpha=1.1),
    "cars196": _HistCommand(lr=1e-4, lr_ds=1e-1, lr_hgnn_factor=10.0, weight_decay=1e-4,
                            lr_decay_step=10, epochs=50, tau=32.0, alpha=0.9),
    "sop": _HistCommand(lr=1e-4, lr_ds=1e-2, lr_hgnn_factor=10.0, weight_decay=1e-4,
                        lr_decay_step=10, epochs=60, tau=16.0, alpha=2.0),
}
_HIST_WARM = 1  # [HIST: --warm default]


# ----------------------------------------------------------------------------------------------
# Datasets
# ----------------------------------------------------------------------------------------------
def _cub200(config):
  config.data.name = "cub200"
  config.data.val_classes = 20  # under eval.protocol=validated: 80 classes train [our choice]
  config.optim.weight_decay = 5e-4  # [paper: CUB]
  config.model.frozen_bn = True  # [paper, PA]
  config.eval.ks = (1, 2, 4, 8)  # [conv]


def _cars196(config):
  config.data.name = "cars196"
  config.data.val_classes = 20
  config.optim.weight_decay = 1e-4  # [paper: Cars]
  config.model.frozen_bn = True  # [paper, PA]
  config.eval.ks = (1, 2, 4, 8)  # [conv]


def _sop(config):
  config.data.name = "sop"
  config.data.val_classes = 1000
  config.data.classes_per_batch = 50  # SOP classes hold 2-12 images [conv: K = 2]
  config.data.images_per_class = 2
  config.loss.pfml.proxies_per_class = 2  # [paper: M = 2 on SOP]
  config.optim.weight_decay = 1e-4  # not stated for SOP; Cars' value [our choice]
  config.model.frozen_bn = False  # [PA: BN trained on SOP]
  # The cached mode's image cache split across the devices: SOP's 59,551 images at 512 px are
  # 47 GB, which no 16 GiB TPU v5e chip holds whole (docs/benchmarks.md, AOT table); on one
  # device split and copied are the same [our choice].
  config.data.shard_cache = True
  config.eval.ks = (1, 10, 100, 1000)  # [conv]
  config.eval.every_epochs = 10


# ----------------------------------------------------------------------------------------------
# Backbones with PFML (the paper's rows)
# ----------------------------------------------------------------------------------------------
def _cnn(config, backbone):
  config.model.backbone = backbone
  config.model.embedding_dim = 512  # [paper: 512-d for ResNet-50 and BN-Inception]
  config.model.pooling = "avg"  # [paper: GAP]
  config.optim.learning_rate = 1e-4  # [supp]
  config.optim.proxy_lr_mult = 100.0  # proxies at 1e-2 [supp]
  config.data.crop_scale = (0.08, 1.0)  # RandomResizedCrop(224) [paper]


def _vit(config, backbone, dataset):
  """Hyp's ViT-S/16 and DINO protocol, value by value; PFML's loss replaces Hyp's."""
  config.model.backbone = backbone
  config.model.embedding_dim = 384  # [paper: 384-d]
  config.model.pooling = "token"  # CLS token [Hyp]
  config.model.frozen_bn = False  # no BatchNorm in a ViT
  config.model.head_init = "orthogonal"  # Linear(384, emb), orthogonal, zero bias [Hyp]
  config.optim.frozen = "model/backbone/patch_embed"  # patch embedding frozen [Hyp]
  config.optim.learning_rate = 1e-5 if backbone == "dino_vits16" else 3e-5  # [Hyp]
  config.optim.weight_decay = 0.01  # torch AdamW's default, which Hyp keeps [Hyp]
  config.optim.proxy_lr_mult = 100.0  # PFML's proxy rate replaces Hyp (no proxies) [paper]
  config.optim.warmup_epochs = 0  # Hyp trains everything from the first step [Hyp]
  config.optim.schedule = "constant"  # [Hyp: no schedule]
  config.optim.clip = "norm"  # clip_grad_norm_(3) [Hyp]
  config.optim.clip_threshold = 3.0
  config.data.crop_scale = (0.2, 1.0)  # RandomResizedCrop(224, (0.2, 1), bicubic) [Hyp]
  # Batches of 9 images per class (CUB, Cars) or 2 (SOP), ~900 images; epochs 50 / 300 / 200;
  # evaluation resize 256 on CUB, 224 elsewhere [Hyp's published protocol].
  per_class, classes, epochs, resize = {
      "cub200": (9, 100, 50, 256), "cars196": (9, 98, 300, 224),
      "sop": (2, 450, 200, 224)}[dataset]
  config.data.images_per_class = per_class
  config.data.classes_per_batch = classes
  config.epochs = epochs
  config.model.eval_resize = resize


# ----------------------------------------------------------------------------------------------
# Recipes
# ----------------------------------------------------------------------------------------------
def _pfml_main_text(config):
  config.optim.learning_rate = 5e-4  # [paper main text: Adam 5e-4, proxies x100]
  config.optim.proxy_lr_mult = 100.0


def _pa_recipe(config, backbone, dataset, loss):
  """Proxy Anchor's train.py (and its README command) for ``loss`` on a CNN."""
  batch, warm, decay_step = _PA_COMMANDS[(backbone, dataset)]
  config.model.pooling = "avg+max"  # GAP + GMP, summed [PA net/resnet.py, bn_inception.py]
  config.model.head_init = "kaiming_fan_out"  # [PA]
  config.optim.learning_rate = 6e-4 if dataset == "sop" else 1e-4  # [PA README]
  config.optim.weight_decay = 1e-4  # AdamW [PA: --weight-decay]
  config.optim.head_lr_mult = 1.0  # [PA: embedding lr x 1]
  # Proxies at lr x 100 [PA, Proxy Anchor]. PA's code gives ProxyNCA's proxies to no
  # optimizer group (they never move); we train them like Proxy Anchor's [our choice].
  config.optim.proxy_lr_mult = 100.0
  config.optim.warmup_epochs = warm  # only head and proxies train [PA: --warm]
  config.optim.schedule = "step"  # StepLR per epoch [PA]
  config.optim.step_epochs = tuple(range(decay_step, _PA_EPOCHS, decay_step))
  config.optim.step_gamma = 0.25 if dataset == "sop" else 0.5  # [PA README]
  config.optim.clip = "value"  # clip_grad_value_(10), model and proxies [PA]
  config.optim.clip_threshold = 10.0
  config.epochs = _PA_EPOCHS
  config.eval.every_epochs = 1  # PA evaluates every epoch [PA]
  if LOSSES[loss].min_images_per_class > 1:
    # Tuple losses need positives in the batch: PA's balanced sampler (--IPC), 4 images per
    # class [our choice: the field's K; PA's README gives no tuple-loss command].
    config.data.sampler = "class_balanced"
    config.data.images_per_class = 4
    config.data.classes_per_batch = batch // 4
  else:
    config.data.sampler = "random"  # shuffled images [PA: DataLoader(shuffle=True)]
    config.data.images_per_class = 1  # the batch size is classes_per_batch x 1
    config.data.classes_per_batch = batch


def _hist_recipe(config, dataset):
  """HIST's train.py with its README command for ``dataset`` on a CNN."""
  command = _HIST_COMMANDS[dataset]
  config.model.pooling = "avg+max"  # GAP + GMP, summed [HIST: --add-gmp 1]
  config.model.head_init = "kaiming_fan_out"  # [HIST net/resnet.py]
  config.model.embedding_norm = "layer_norm"  # LayerNorm without affine [HIST: --layer-norm 1]
  # BatchNorm frozen on CUB/Cars, trained on SOP (the dataset's setting) [HIST: --bn-freeze].
  config.loss.hist.tau = command.tau
  config.loss.hist.alpha = command.alpha
  config.optim.learning_rate = command.lr
  # torch Adam's L2 on the gradient [HIST: --optimizer adam]; HIST decays every parameter,
  # we spare proxies, variances, norms and biases, as in our other recipes [our choice].
  config.optim.weight_decay = command.weight_decay
  config.optim.weight_decay_style = "coupled"
  config.optim.head_lr_mult = 1.0  # the embedding layer at --lr [HIST]
  # The class distributions (means and variances) at --lr-ds, the HGNN at lr x factor [HIST].
  config.optim.proxy_lr_mult = command.lr_ds / command.lr
  config.optim.loss_params_lr_mult = command.lr_hgnn_factor
  # A separate warm-up epoch before the --epochs epochs (only head, distributions and HGNN
  # train); StepLR steps after each later epoch, so decays fall at warm + k x step [HIST].
  config.optim.warmup_epochs = _HIST_WARM
  config.epochs = _HIST_WARM + command.epochs
  config.optim.schedule = "step"
  config.optim.step_epochs = tuple(range(_HIST_WARM + command.lr_decay_step, config.epochs,
                                         command.lr_decay_step))
  config.optim.step_gamma = 0.5  # [HIST: --lr-decay-gamma default]
  config.optim.clip = "none"  # no clipping [HIST]
  config.eval.every_epochs = 1  # [HIST: evaluates every epoch]
  config.data.sampler = "random"  # shuffled images [HIST: --IPC 0, DataLoader(shuffle=True)]
  config.data.images_per_class = 1
  config.data.classes_per_batch = 32  # [HIST: --batch-size default 32; no command sets it]


def experiment(dataset: str, backbone: str, recipe: str = "pfml") -> ml_collections.ConfigDict:
  """The config of ``recipe`` (see the module docstring) with ``backbone`` on ``dataset``."""
  if recipe not in RECIPES:
    raise ConfigError(f"Unknown recipe {recipe!r}; choose one of {list(RECIPES)} "
                      "(e.g. --config=configs/cub_resnet50.py:proxy_anchor).")
  config = default_config.get_config()
  config.recipe = recipe
  _DATASETS[dataset](config)
  vit = backbone in ("vit_s16", "dino_vits16")
  if vit:
    _vit(config, backbone, dataset)  # over the dataset's batch and weight decay
  else:
    _cnn(config, backbone)
  if recipe == "pfml_main_text":
    _pfml_main_text(config)
  elif recipe not in PFML_RECIPES:
    config.loss.name = recipe
    if not vit and recipe == "hist":
      _hist_recipe(config, dataset)
    elif not vit:
      _pa_recipe(config, backbone, dataset, recipe)
  return config


_DATASETS = {"cub200": _cub200, "cars196": _cars196, "sop": _sop}
