"""Data-dependent proxy initialisation (``config.loss.proxy_init = "class_mean"``).

The paper does not say how PFML's proxies start. Drawn uniformly on the sphere they start at
distance ~1.41 from every embedding, where PFML's decaying pull is weakest, and in the small
reproduction study they stay there (docs/reproduction.md §8). ``class_mean`` starts them on
their class instead: the training images of class c, in a seeded random order, are dealt into M
groups of nearly equal size, and proxy m of class c is the mean direction of group m's
embeddings under the initial (e.g. pretrained) model. M = 1 gives the class mean; M equal to
the class's image count gives one image per proxy. Groups, not copies of one mean, because
same-class proxies that start at one point feel equal forces in PFML and never part.
"""

import jax
import numpy as np

from pfml_jax.numerics import unit_rows
from pfml_jax.user_errors import ConfigError

def class_mean_proxies(embeddings: np.ndarray, labels: np.ndarray, num_classes: int,
                       per_class: int, seed: int) -> np.ndarray:
  """(num_classes * per_class, E) float32 unit proxies, class-major (``losses/proxies.py``),
  computed in float64.

  Raises:
    ConfigError: a class has fewer than ``per_class`` images (some proxies would get none).
  """
  counts = np.bincount(labels, minlength=num_classes)
  short = np.flatnonzero(counts < per_class)
  if short.size:
    raise ConfigError(
        f"config.loss.proxy_init='class_mean' deals each class's training images to its "
        f"{per_class} proxies, but {short.size} classes have fewer images (class {short[0]}: "
        f"{counts[short[0]]}). Lower the loss's proxies_per_class, or use proxy_init='random'.")
  units = unit_rows(embeddings, "embeddings")  # float64; a zero embedding has no direction
  rng = np.random.default_rng(seed)
  means = np.empty((num_classes * per_class, units.shape[1]))
  for c in range(num_classes):
    members = rng.permutation(np.flatnonzero(labels == c))
    for m, group in enumerate(np.array_split(members, per_class)):
      means[c * per_class + m] = units[group].mean(axis=0)
  return unit_rows(means, "class-mean proxies").astype(np.float32)


def with_class_mean_proxies(setup, state):
  """``state`` with its proxies (padding rows kept) replaced by ``class_mean_proxies`` of the
  state's own model on the training split, placed like the state; the same on every process."""
  embeddings, labels = setup.evaluator.embeddings(state.variables(), setup.train)
  per_class = setup.loss.proxies_per_class
  proxies = class_mean_proxies(embeddings, labels, setup.train.num_classes, per_class,
                               setup.config.seed)
  padded = np.array(jax.device_get(state.proxies))
  padded[:len(proxies)] = proxies
  trainable = dict(state.trainable, proxies=padded)
  return jax.device_put(state.replace(trainable=trainable), setup.state_shardings)
