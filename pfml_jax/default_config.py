"""Every configuration field, its default and where the value comes from.

Experiment files in ``configs/`` start from ``get_config()`` and apply a recipe
(``pfml_jax/experiments.py``); any field can be overridden on the command line:
``--config.optim.learning_rate=3e-5``. Sources: [paper] Bhatnagar & Ahuja, CVPR 2025 (main
text and supplement); [PA] Proxy Anchor's reference code (Kim et al., CVPR 2020), the recipe
most DML papers, HIST and PFML follow where silent.
"""

import ml_collections

from pfml_jax.losses import LOSSES


def loss_settings(name: str) -> ml_collections.ConfigDict:
  """The registry's defaults of loss ``name``: its hyperparameters and proxies per class."""
  spec = LOSSES[name]
  return ml_collections.ConfigDict(dict(spec.defaults,
                                        proxies_per_class=spec.proxies_per_class))


def get_config() -> ml_collections.ConfigDict:
  """The defaults: PFML with ResNet-50 on CUB-200-2011."""
  config = ml_collections.ConfigDict()
  config.seed = 0  # model init, proxies, batches and augmentation are all derived from it
  config.recipe = "pfml"  # the recipe experiments.py applied (recorded; docs/configs.md)

  config.data = ml_collections.ConfigDict()
  config.data.name = "cub200"  # cub200 | cars196 | sop | image_folder | demo (+ "_tfds" forms)
  config.data.root = ""  # dataset folder (raw layout) or tfds data_dir; see docs/data.md
  # eval.protocol="validated": class-disjoint validation classes carved from the training
  # classes select the checkpoint. Unused by the "paper" protocol (all training classes train).
  config.data.val_classes = 20
  # Which classes are held out is drawn from this seed, not from config.seed, so that seeds
  # vary initialisation and batches only [our choice].
  config.data.split_seed = 0
  # True: draw the held-out classes from config.seed instead, so that a study's seeds also vary
  # which classes validate and its spread includes that draw [issue 20; off by default].
  config.data.split_per_seed = False
  config.data.classes_per_batch = 25  # P of the P x K class-balanced sampler [PA-style]
  config.data.images_per_class = 4  # K; batch size = P * K = 100 [paper: batch 100 for R50]
  # class_balanced: P x K above [the field's convention; the PFML paper is silent]; random:
  # shuffled images (a fresh permutation per pass, full batches of P * K), as Proxy Anchor's
  # DataLoader(shuffle=True, drop_last=True); see docs/data.md.
  config.data.sampler = "class_balanced"
  config.data.input_mode = "cached"  # cached (decode once, crop on device) | grain (workers)
  config.data.workers = 8  # grain decoding processes per host
  # Longest side of the cached copy; images up to this size are kept at their original pixels
  # (CUB's <= 500 px originals all are); 0 = every image at its original size [our choice:
  # memory, see docs/data.md].
  config.data.cache_size = 512
  # Split the cached mode's image cache across the mesh's devices (each serves its rows of
  # every batch) instead of a copy on each: for caches larger than one device's memory, e.g.
  # SOP's 47 GB at 512 px on 16 GiB TPU v5e chips (docs/benchmarks.md) [our choice: off, as
  # a copy per device needs no exchange between them; the SOP configs turn it on].
  config.data.shard_cache = False
  config.data.crop_scale = (0.08, 1.0)  # RandomResizedCrop area range [torchvision default]
  config.data.crop_ratio = (3 / 4, 4 / 3)  # RandomResizedCrop aspect range
  # Mirror half of the training crops horizontally [PA, HIST: the field's recipes flip
  # photos]. Turn it off for glyph sets: a mirrored glyph is another
  # character (b/d, p/q); see docs/data.md.
  config.data.flip = True
  # Probability of replacing a training label [paper: clean labels; its noise study sets 0.2].
  config.data.label_noise = 0.0
  # True: leave out every image that does not decode (a full decoding pass at start; counted
  # in the log). Our choice: False, a damaged dataset should be noticed.
  config.data.skip_corrupt = False

  config.model = ml_collections.ConfigDict()
  config.model.backbone = "resnet50"  # resnet50 | bninception | vit_s16 | vit_b16 | dino_vits16
  config.model.pretrained = ""  # .safetensors/.pth of the backbone; "" = random init
  config.model.pretrained_strict = True  # fail on missing/unexpected/mismatched keys
  config.model.embedding_dim = 512  # [paper: 512 for R50/BN-Inception, 384 for ViT-S]
  config.model.pooling = ""  # "" = the backbone's default; avg | max | avg+max (CNNs), token (ViTs)
  config.model.frozen_bn = True  # [paper/PA: BN frozen on CUB and Cars, not on SOP]
  config.model.dtype = "bfloat16"  # backbone compute; params, proxies and loss stay float32
  # New linear head: kaiming_fan_out [PA, HIST code] or orthogonal [Hyp-DML code].
  config.model.head_init = "kaiming_fan_out"
  # Output: l2 (unit vectors) [paper, PA], or layer_norm: LayerNorm without affine [HIST code].
  config.model.embedding_norm = "l2"
  # Evaluation: resize the shorter side to this, then centre-crop; 0 = the backbone's (256).
  config.model.eval_resize = 0
  # Overrides of the backbone constructor's fields (e.g. {"width": 16} for a wider tiny
  # ResNet); names as in pfml_jax/models/{resnet,bninception,vit}.py. Empty for the paper's.
  config.model.backbone_kwargs = ml_collections.ConfigDict()

  config.loss = ml_collections.ConfigDict()
  config.loss.name = "pfml"  # pfml | proxy_anchor | proxy_nca | multi_similarity | hist | ...
  # One block per loss, filled from the loss registry (the one source of defaults): the run
  # reads the block of loss.name, so naming another loss gives that loss's own defaults.
  # PFML's are the paper's: alpha 3, delta_att = delta_rep = 0.2, M = 15 [paper], and
  # proxy_self_attraction = True (same-class proxies attract each other, as Eq. 6 reads; False
  # drops those pairs: losses/registry.py).
  for name in LOSSES:
    config.loss[name] = loss_settings(name)
  # How proxies start: "random" is each loss's own scheme (PFML: uniform on the sphere, as the
  # paper states none; Proxy Anchor: its reference code's Kaiming normal); "class_mean" puts
  # them on their class's mean embedding under the initial model (training/proxy_init.py).
  config.loss.proxy_init = "random"

  config.optim = ml_collections.ConfigDict()
  config.optim.learning_rate = 1e-4  # AdamW base rate [paper supplement: 1e-4]
  config.optim.backbone_lr_mult = 1.0
  config.optim.head_lr_mult = 1.0
  config.optim.proxy_lr_mult = 100.0  # proxies learn at 1e-2 [paper supplement; PA x100]
  # The loss's own parameters besides proxies (HIST's hypergraph network; no other loss has
  # any) [HIST code: --lr-hgnn-factor default 10].
  config.optim.loss_params_lr_mult = 10.0
  config.optim.weight_decay = 5e-4  # decoupled (AdamW) [paper: 5e-4 CUB, 1e-4 Cars]
  # decoupled (AdamW) [paper, PA], or coupled: L2 added to the gradient before Adam, torch
  # Adam's weight_decay [HIST]. Either spares proxies, norms and biases.
  config.optim.weight_decay_style = "decoupled"
  config.optim.b1 = 0.9
  config.optim.b2 = 0.999
  config.optim.eps = 1e-8
  config.optim.warmup_epochs = 1.0  # backbone frozen (zero learning rate) [paper: 1 epoch]
  config.optim.schedule = "constant"  # constant | cosine | step [ours: the paper states none]
  config.optim.step_epochs = ()  # step schedule: multiply by step_gamma at these epochs
  config.optim.step_gamma = 0.5
  # none | value | norm | adaptive [ours: the paper states none; PA's CNN recipe clips by value
  # 10 and Hyp's by norm 3, set by those recipes].
  config.optim.clip = "none"
  config.optim.clip_threshold = 10.0
  # Regex of trainable paths never updated [ours: none; Hyp-DML's ViT recipe freezes
  # "model/backbone/patch_embed", set by that recipe].
  config.optim.frozen = ""

  config.epochs = 200  # [paper: 200]; an epoch = ceil(train images / batch size) steps
  config.steps = 0  # > 0 overrides epochs

  config.mesh = ml_collections.ConfigDict()
  config.mesh.data = -1  # devices on the data-parallel axis; -1 = all devices
  # Split the proxies (and the energy's pair rows) across the data axis: for very large
  # class counts. Default: replicated.
  config.mesh.shard_proxies = False

  config.eval = ml_collections.ConfigDict()
  # paper: all training classes train, test is evaluated every eval.every_epochs, and the run
  # reports the final test metrics and the best test metrics over training (the field's
  # practice, optimistic). validated: data.val_classes select the checkpoint, test once at
  # the end (recommended for new research).
  config.eval.protocol = "paper"
  config.eval.every_epochs = 5  # evaluation interval (test or validation, by protocol)
  config.eval.batch_size = 256  # per step, across all devices
  config.eval.ks = (1, 2, 4, 8)  # Recall@K reported [CUB/Cars convention; SOP: 1, 10, 100, 1000]
  # Best checkpoint by this metric: on validation (validated) or on test (paper).
  config.eval.selection_metric = "recall@1"
  config.eval.nmi = False  # k-means NMI (slow on SOP)
  config.eval.backend = "auto"  # auto | jax | faiss
  # At the end: proxy-data 2-Wasserstein, intra-class spread and nearest-other-class margin
  # (evaluation/diagnostics.py), in eval/diagnostics.json [our choice: the paper's claims are
  # about them; costs one more embedding of the training and test splits].
  config.eval.diagnostics = True

  config.checkpoint = ml_collections.ConfigDict()
  config.checkpoint.every_steps = 1000  # besides every evaluation and the end of training
  config.checkpoint.keep = 3  # the last N are kept, plus the best by the selection metric

  config.log_every_steps = 50
  # Draw WORKDIR/plots/ (training curves, retrieval grid, embedding map) at the end of training
  # [our choice: a run should show what it learned; costs one more test-split embedding].
  config.plots = True
  return config
