"""Every loss by config name, behind one call style.

A loss function has the signature

    fn(embeddings, labels, proxies, proxy_labels, **hyperparameters) -> float32 scalar

with (B, D) embeddings (normalised inside where the loss needs it), (B,) int labels where < 0
marks padding rows, and (Q, D) proxies with (Q,) labels (Q = 0 for proxy-free losses).
``make_loss(name, **overrides)`` binds the hyperparameters; the trainer holds the proxies.
A loss may also name its floor, the lowest value it can take for given labels (PFML's is
large), so that ``loss - floor`` can be logged. A loss with learnable parameters of its own
besides the proxies (HIST's hypergraph network) creates them with ``Loss.init_params`` and
receives them as the keyword ``params``; the trainer holds them as ``trainable["loss"]``.
"""

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp

from pfml_jax import checks
from pfml_jax.losses import proxies as proxy_lib
from pfml_jax.losses.energy_floor import energy_floor
from pfml_jax.losses.hist import hist_loss, init_hist_params
from pfml_jax.losses.multi_similarity import multi_similarity_loss
from pfml_jax.losses.normalized_softmax import normalized_softmax_loss
from pfml_jax.losses.potential_energy import METHODS, EnergyExecution, potential_energy
from pfml_jax.losses.proxy_anchor import proxy_anchor_loss
from pfml_jax.losses.proxy_nca import proxy_nca_loss
from pfml_jax.losses.triplet import MINING, triplet_loss
from pfml_jax.platforms import platform_of
from pfml_jax.user_errors import ConfigError


@dataclasses.dataclass(frozen=True, eq=False)  # hashed by identity, so jit can take it
class LossSpec:
  """A registered loss: its function, proxy needs and default hyperparameters."""

  fn: Callable[..., jnp.ndarray]
  proxies_per_class: int  # default M; 0 means the loss has no proxies
  min_proxies_per_class: int = 0  # the fewest per class the loss is defined with
  min_images_per_class: int = 1  # tuple losses need positive pairs inside the batch
  proxy_init: str = "unit_normal"
  defaults: dict[str, Any] = dataclasses.field(default_factory=dict)
  floor: Callable[..., jnp.ndarray] | None = None  # (labels, proxy_labels, **hparams) -> scalar
  positive: tuple[str, ...] = ()  # hyperparameters that must be finite and > 0
  choices: dict[str, tuple] = dataclasses.field(default_factory=dict)  # allowed values
  # Accepts platform= (a platform-dependent fast path) and mesh= (its pairs split over it).
  takes_placement: bool = False
  # (rng, num_classes, proxies_per_class, dim, **init hyperparameters) -> the loss's own
  # parameters: a "proxies" subtree of (num_classes * M, ...) arrays aligned with the proxies
  # (trained at their rate) and any other subtrees (trained at optim.loss_params_lr_mult).
  init_params: Callable[..., dict] | None = None
  init_hparams: tuple[str, ...] = ()  # hyperparameters only init_params reads


def pfml_loss(embeddings, labels, proxies, proxy_labels, *, method: str = "auto",
              platform: str | None = None, mesh: jax.sharding.Mesh | None = None,
              **field) -> jnp.ndarray:
  """PFML's energy as the registry calls it: the config's ``method`` and the run's placement
  (``Loss.placed``) make its ``EnergyExecution``; ``field`` the paper's constants and options."""
  return potential_energy(embeddings, labels, proxies, proxy_labels,
                          execution=EnergyExecution(method, mesh=mesh, platform=platform),
                          **field)


LOSSES: dict[str, LossSpec] = {
    # PFML (paper Sec. 3): alpha = 3, delta = 0.2, M = 15 on CUB/Cars (configs set M = 2 on SOP).
    # proxy_self_attraction: same-class proxies attract each other [paper Eq. 6 sums over all
    # pairs of X = samples U proxies]; False drops those pairs [our option, issue 20: they
    # collapse a class's M proxies onto one point].
    "pfml": LossSpec(pfml_loss, proxies_per_class=15,
                     defaults=dict(alpha=3.0, delta_att=0.2, delta_rep=0.2,
                                   normalize_proxies=True, proxy_self_attraction=True,
                                   method="auto"),
                     floor=energy_floor, positive=("alpha", "delta_att", "delta_rep"),
                     choices={"method": METHODS, "proxy_self_attraction": (True, False)},
                     takes_placement=True),
    # Baselines (docs/losses.md). Proxy Anchor: alpha = 32, delta = 0.1, kaiming-normal proxies
    # (Kim et al. 2020 and their code; the recipe trains proxies at 100x the learning rate).
    "proxy_anchor": LossSpec(proxy_anchor_loss, proxies_per_class=1, min_proxies_per_class=1,
                             proxy_init="kaiming_normal", defaults=dict(alpha=32.0, margin=0.1),
                             positive=("alpha",)),
    # ProxyNCA as pytorch-metric-learning's ProxyNCALoss; scale 32 from Proxy Anchor's code.
    "proxy_nca": LossSpec(proxy_nca_loss, proxies_per_class=1, min_proxies_per_class=1,
                          defaults=dict(softmax_scale=32.0), positive=("softmax_scale",)),
    # Multi-Similarity with its mining (Wang et al. 2019): alpha 2, beta 50, lambda 0.5, eps 0.1.
    "multi_similarity": LossSpec(multi_similarity_loss, proxies_per_class=0, min_images_per_class=2,
                                 defaults=dict(alpha=2.0, beta=50.0, base=0.5, epsilon=0.1),
                                 positive=("alpha", "beta")),
    # Triplet, semi-hard mining, margin 0.1 (Proxy Anchor's code); mining="batch_hard" also.
    "triplet": LossSpec(triplet_loss, proxies_per_class=0, min_images_per_class=2,
                        defaults=dict(margin=0.1, mining="semi_hard"),
                        choices={"mining": tuple(MINING)}),
    # Normalized Softmax (Zhai & Wu 2019): one normalised weight per class, temperature 0.05.
    "normalized_softmax": LossSpec(normalized_softmax_loss, proxies_per_class=1,
                                   min_proxies_per_class=1, defaults=dict(temperature=0.05),
                                   positive=("temperature",)),
    # HIST (Lim et al. 2022): tau 32, alpha 0.9, lambda_s 1, HGNN hidden 512 [HIST code,
    # train.py defaults; its README sets alpha 1.1 on CUB, tau 16 / alpha 2 on SOP (recipe)].
    # One Gaussian per class, means kaiming-normal like Proxy Anchor's proxies [HIST: CDs2Hg].
    "hist": LossSpec(hist_loss, proxies_per_class=1, min_proxies_per_class=1,
                     proxy_init="kaiming_normal",
                     defaults=dict(tau=32.0, alpha=0.9, lambda_s=1.0, hgnn_hidden=512),
                     positive=("tau", "alpha", "hgnn_hidden"),
                     init_params=init_hist_params, init_hparams=("hgnn_hidden",)),
}


@dataclasses.dataclass(frozen=True, eq=False)  # hashed by identity, so jit can take it
class Loss:
  """A loss with bound hyperparameters; proxies are passed in, so it stays pure."""

  name: str
  spec: LossSpec
  proxies_per_class: int
  hparams: dict[str, Any]
  pad_to: int = 1  # proxies are padded to a multiple of this (the shards they split into)
  mesh: jax.sharding.Mesh | None = None  # passed to a loss that splits its pairs over it
  platform: str | None = None  # passed to a loss with a platform-dependent fast path

  def placed(self, mesh: jax.sharding.Mesh, shard_proxies: bool,
             platform: str | None = None) -> "Loss":
    """This loss on ``mesh`` (for ``platform``; default: the mesh's devices'). With
    ``shard_proxies`` its proxies are padded to split over the mesh and a loss that can
    splits its pair rows over it too."""
    platform = platform or platform_of(mesh.devices.flat[0])
    if not shard_proxies:
      return dataclasses.replace(self, platform=platform)
    split = self.spec.takes_placement and mesh.size > 1
    return dataclasses.replace(self, pad_to=mesh.size, mesh=mesh if split else None,
                               platform=platform)

  def init_proxies(self, rng: jax.Array, num_classes: int, dim: int) -> jnp.ndarray:
    """(num_classes * M + padding, dim) float32 initial proxies ((0, dim) for proxy-free
    losses), with zero padding rows up to a multiple of ``pad_to``."""
    if self.proxies_per_class == 0:
      proxies = jnp.zeros((0, dim), jnp.float32)
    else:
      proxies = proxy_lib.init_proxies(rng, num_classes, self.proxies_per_class, dim,
                                       self.spec.proxy_init)
    return jnp.pad(proxies, ((0, -len(proxies) % self.pad_to), (0, 0)))

  def init_params(self, rng: jax.Array, num_classes: int, dim: int) -> dict:
    """The loss's own initial parameters ({} for most losses); the rows of its "proxies"
    subtree are zero-padded like the proxies (to a multiple of ``pad_to``, label -1)."""
    if self.spec.init_params is None:
      return {}
    params = self.spec.init_params(
        rng, num_classes, self.proxies_per_class, dim,
        **{key: self.hparams[key] for key in self.spec.init_hparams})
    padding = -(num_classes * self.proxies_per_class) % self.pad_to
    pad = lambda x: jnp.pad(x, ((0, padding),) + ((0, 0),) * (x.ndim - 1))
    return dict(params, **({"proxies": jax.tree.map(pad, params["proxies"])}
                           if "proxies" in params else {}))

  def proxy_labels(self, num_classes: int) -> jnp.ndarray:
    """The class of every proxy, class-major, then -1 for the padding of ``init_proxies``."""
    labels = proxy_lib.proxy_labels(num_classes, self.proxies_per_class)
    return jnp.concatenate([labels, -jnp.ones(-len(labels) % self.pad_to, jnp.int32)])

  def floor(self, labels, proxy_labels) -> jnp.ndarray | None:
    """The lowest value the loss can take for these labels; None when not defined."""
    if self.spec.floor is None:
      return None
    return self.spec.floor(labels, proxy_labels, **self.hparams)

  def __call__(self, embeddings, labels, proxies, proxy_labels, params=None) -> jnp.ndarray:
    """The loss; ``params`` are the loss's own parameters, for losses that have them."""
    hparams = {k: v for k, v in self.hparams.items() if k not in self.spec.init_hparams}
    if self.spec.init_params is not None:
      if params is None:
        raise ValueError(f"Loss {self.name!r} needs its parameters: pass params= "
                         "(from loss.init_params).")
      hparams["params"] = params
    if self.spec.takes_placement:
      hparams["platform"] = self.platform
      if self.mesh is not None:
        hparams["mesh"] = self.mesh
    return self.spec.fn(embeddings, labels, proxies, proxy_labels, **hparams)


def make_loss(name: str, proxies_per_class: int | None = None, **overrides) -> Loss:
  """The registered loss ``name`` with ``overrides`` applied to its default hyperparameters."""
  if name not in LOSSES:
    raise ConfigError(f"Unknown loss {name!r}; choose one of {sorted(LOSSES)}.")
  spec = LOSSES[name]
  unknown = set(overrides) - set(spec.defaults)
  if unknown:
    raise ConfigError(f"Loss {name!r} has no hyperparameter(s) {sorted(unknown)}; it takes "
                      f"{sorted(spec.defaults)}.")
  per_class = spec.proxies_per_class if proxies_per_class is None else int(proxies_per_class)
  if spec.proxies_per_class == 0 and per_class != 0:
    raise ConfigError(f"Loss {name!r} uses no proxies; set proxies_per_class to 0 or leave it "
                      "unset.")
  if per_class < spec.min_proxies_per_class:
    raise ConfigError(f"Loss {name!r}: proxies_per_class must be >= "
                      f"{spec.min_proxies_per_class}, got {per_class}.")
  hparams = {**spec.defaults, **overrides}
  for key in spec.positive:
    checks.positive_number(hparams[key], f"Loss {name!r}: {key}")
  for key, allowed in spec.choices.items():
    if hparams[key] not in allowed:
      raise ConfigError(f"Loss {name!r}: {key} must be one of {list(allowed)}, "
                        f"got {hparams[key]!r}.")
  return Loss(name, spec, per_class, hparams)
