"""Every configuration field, its default and where the value comes from.

Experiment files in ``configs/`` start from ``get_config()`` and change a few fields; any field
can be overridden on the command line: ``--config.optim.learning_rate=3e-5``. Sources:
[paper] Bhatnagar & Ahuja, CVPR 2025 (main text and supplement); [PA] Proxy Anchor's reference
code (Kim et al., CVPR 2020), the recipe most DML papers, HIST and PFML follow where silent.
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
  """The defaults: PFML with ResNet-50 on CUB-200-2011."""
  config = ml_collections.ConfigDict()
  config.seed = 0  # model init, proxies, batches and augmentation are all derived from it

  config.data = ml_collections.ConfigDict()
  config.data.name = "cub200"  # cub200 | cars196 | sop | image_folder | demo (+ "_tfds" forms)
  config.data.root = ""  # dataset folder (raw layout) or tfds data_dir; see docs/data.md
  # Class-disjoint validation classes carved from the training classes; model selection uses
  # them, never the test classes. 0 = no validation split (the last checkpoint is "best").
  config.data.val_classes = 20
  config.data.classes_per_batch = 25  # P of the P x K class-balanced sampler [PA-style]
  config.data.images_per_class = 4  # K; batch size = P * K = 100 [paper: batch 100 for R50]
  # class_balanced: P x K above [the field's convention; the PFML paper is silent]; random:
  # shuffled images (a fresh permutation per pass, full batches of P * K), as Proxy Anchor's
  # DataLoader(shuffle=True, drop_last=True); see docs/data.md.
  config.data.sampler = "class_balanced"
  config.data.input_mode = "cached"  # cached (decode once, crop on device) | grain (workers)
  config.data.workers = 8  # grain decoding processes per host
  config.data.crop_scale = (0.08, 1.0)  # RandomResizedCrop area range [torchvision default]
  config.data.crop_ratio = (3 / 4, 4 / 3)  # RandomResizedCrop aspect range
  config.data.label_noise = 0.0  # probability of replacing a training label [paper noise study: 0.2]
  config.data.skip_corrupt = False  # True: skip unreadable images (counted in the log)

  config.model = ml_collections.ConfigDict()
  config.model.backbone = "resnet50"  # resnet50 | bninception | vit_s16 | vit_b16 | dino_vits16
  config.model.pretrained = ""  # .safetensors/.pth of the backbone; "" = random init
  config.model.pretrained_strict = True  # fail on missing/unexpected/mismatched keys
  config.model.embedding_dim = 512  # [paper: 512 for R50/BN-Inception, 384 for ViT-S]
  config.model.pooling = ""  # "" = the backbone's default; avg | max | avg+max (CNNs), token (ViTs)
  config.model.frozen_bn = True  # [paper/PA: BN frozen on CUB and Cars, not on SOP]
  config.model.dtype = "bfloat16"  # backbone compute; params, proxies and loss stay float32
  # Overrides of the backbone constructor's fields (e.g. {"width": 16} for a wider tiny
  # ResNet); names as in pfml_jax/models/{resnet,bninception,vit}.py. Empty for the paper's.
  config.model.backbone_kwargs = ml_collections.ConfigDict()

  config.loss = ml_collections.ConfigDict()
  config.loss.name = "pfml"  # pfml | proxy_anchor | proxy_nca | multi_similarity | triplet | ...
  config.loss.proxies_per_class = 15  # M [paper: 15 on CUB/Cars, 2 on SOP]
  # Hyperparameters of the chosen loss (names as in docs/losses.md) [paper: alpha 3, delta 0.2].
  config.loss.hparams = ml_collections.ConfigDict(
      dict(alpha=3.0, delta_att=0.2, delta_rep=0.2))

  config.optim = ml_collections.ConfigDict()
  config.optim.learning_rate = 1e-4  # AdamW base rate [paper supplement: 1e-4]
  config.optim.backbone_lr_mult = 1.0
  config.optim.head_lr_mult = 1.0
  config.optim.proxy_lr_mult = 100.0  # proxies learn at 1e-2 [paper supplement; PA x100]
  config.optim.weight_decay = 5e-4  # decoupled (AdamW) [paper: 5e-4 CUB, 1e-4 Cars]
  config.optim.b1 = 0.9
  config.optim.b2 = 0.999
  config.optim.eps = 1e-8
  config.optim.warmup_epochs = 1  # backbone frozen (zero learning rate) [paper: 1 epoch]
  config.optim.schedule = "constant"  # constant | cosine | step (paper: not stated)
  config.optim.step_epochs = ()  # step schedule: multiply by step_gamma at these epochs
  config.optim.step_gamma = 0.5
  config.optim.clip = "none"  # none | value | norm | adaptive [PA: value 10 for CNN baselines]
  config.optim.clip_threshold = 10.0

  config.epochs = 200  # [paper: 200]; an epoch = ceil(train images / batch size) steps
  config.steps = 0  # > 0 overrides epochs

  config.mesh = ml_collections.ConfigDict()
  config.mesh.data = -1  # devices on the data-parallel axis; -1 = all devices
  # Split the proxies (and the energy's pair rows) across the data axis: for very large
  # class counts. Default: replicated.
  config.mesh.shard_proxies = False

  config.eval = ml_collections.ConfigDict()
  config.eval.every_epochs = 5  # validation interval
  config.eval.batch_size = 256  # per step, across all devices
  config.eval.ks = (1, 2, 4, 8)  # Recall@K reported [CUB/Cars convention; SOP: 1, 10, 100, 1000]
  config.eval.selection_metric = "recall@1"  # on the validation split, for the best checkpoint
  config.eval.nmi = False  # k-means NMI (slow on SOP)
  config.eval.backend = "auto"  # auto | jax | faiss

  config.checkpoint = ml_collections.ConfigDict()
  config.checkpoint.every_steps = 1000  # besides every evaluation and the end of training
  config.checkpoint.keep = 3  # the last N are kept, plus the best by the selection metric

  config.log_every_steps = 50
  return config
