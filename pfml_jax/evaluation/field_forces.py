"""Where PFML's forces come from: pair distances against the radii, and the energy's gradient
split by the kind of pair that produces it. Host numpy, float64 (a trained run's report:
``pfml_jax/analysis/force_report.py``).

- ``pair_distance_summary``: quantiles of same-class and other-class distances, and the
  fraction of same-class pairs inside delta_att (they feel no pull) and of other-class pairs
  inside delta_rep (they feel a push), for embedding-embedding, embedding-proxy and
  proxy-proxy pairs.
- ``gradient_shares``: dU/dx of PFML's energy (``losses/potential_energy.py``: every ordered
  pair a != b of X = embeddings U proxies, so each unordered pair counts twice) split into
  attraction and repulsion from embeddings and from proxies. With the energy's
  ``proxy_self_attraction=False`` same-class proxy-proxy pairs carry no force, as in the loss.
- ``field_report``: both, as a JSON-ready dict.

Geometry: embeddings are L2-normalised, proxies too when ``normalize_proxies``, as the energy
sees them. Gradients are taken with respect to these normalised points, the forces the
potentials define, and are given twice: "euclidean" (the raw gradient, what ``jax.grad`` of
the energy with respect to the points returns) and "tangent" (its component in the sphere's
tangent plane at each normalised point, the part that normalisation's Jacobian passes back to
the network; the radial rest only changes a norm the energy never sees). Normalisation's
per-point 1/||z|| factor is left out: it scales all of one point's components alike.
"""

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from pfml_jax.losses import potentials
from pfml_jax.losses.potentials import FieldParams
from pfml_jax.numerics import unit_rows

QUANTILES = (0.1, 0.5, 0.9)
COMPONENTS = ("attraction_from_embeddings", "attraction_from_proxies",
              "repulsion_from_embeddings", "repulsion_from_proxies")
ROW_CHUNK = 512  # rows of a pair matrix held at once


def _points(x, what: str, normalize: bool) -> np.ndarray:
  """(count, dim) float64 points, L2-normalised when ``normalize`` (zero rows rejected)."""
  if normalize:
    return unit_rows(x, what)
  x = np.asarray(x, np.float64)
  if x.ndim != 2:
    raise ValueError(f"{what}: expected a (count, dim) array, got shape {x.shape}.")
  return x


def _squared_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  """Float64 Gram form: its rounding (~1e-16) is far below the radii's d^2 (>= 1e-4)."""
  squared = (np.sum(a * a, 1)[:, None] + np.sum(b * b, 1)[None, :] - 2.0 * a @ b.T)
  return np.maximum(squared, 0.0)


def _pair_stats(a, a_labels, b, b_labels, delta_att, delta_rep, same_set) -> dict[str, Any]:
  """Distances of unordered pairs (i < j when ``same_set``, else all of a x b)."""
  same, other = [], []
  for start in range(0, len(a), ROW_CHUNK):
    rows = slice(start, start + ROW_CHUNK)
    distance = np.sqrt(_squared_distances(a[rows], b))
    same_label = a_labels[rows, None] == b_labels[None, :]
    counted = np.ones_like(same_label)
    if same_set:
      counted = np.arange(start, start + len(distance))[:, None] < np.arange(len(b))[None, :]
    same.append(distance[counted & same_label])
    other.append(distance[counted & ~same_label])
  same, other = np.concatenate(same), np.concatenate(other)

  def quantiles(d):
    return {f"q{round(100 * q)}": float(np.quantile(d, q)) for q in QUANTILES} if d.size else {}

  return {"same_class_pairs": int(same.size), "other_class_pairs": int(other.size),
          "same_class_distance": quantiles(same), "other_class_distance": quantiles(other),
          "same_class_inside_delta_att": float(np.mean(same <= delta_att)) if same.size else None,
          "other_class_inside_delta_rep": float(np.mean(other < delta_rep)) if other.size else None}


def pair_distance_summary(embeddings, labels, delta_att: float, delta_rep: float,
                          proxies=None, proxy_labels=None, *,
                          normalize_proxies: bool = True) -> dict[str, Any]:
  """Pair distances against the radii, per pair type.

  Args:
    embeddings: (N, D) embeddings (L2-normalised here); ``labels`` (N,) their classes.
    delta_att, delta_rep: PFML's radii. A same-class pair with d <= delta_att feels no pull; an
      other-class pair with d < delta_rep feels a push (``potentials.pair_weight``).
    proxies: optional (Q, D) proxies with ``proxy_labels`` (Q,); rows labelled < 0 (padding)
      are dropped.
    normalize_proxies: as the energy's option of that name.
  Returns:
    {"embedding_embedding", "embedding_proxy", "proxy_proxy"} (the last two only with at
    least one proxy), each with pair counts, 10/50/90 % distance quantiles and the two fractions.
  """
  x = _points(embeddings, "embeddings", True)
  labels = np.asarray(labels)
  summary = {"embedding_embedding": _pair_stats(x, labels, x, labels, delta_att, delta_rep,
                                                same_set=True)}
  if proxies is not None and np.any(np.asarray(proxy_labels) >= 0):
    proxy_labels = np.asarray(proxy_labels)
    p = _points(np.asarray(proxies)[proxy_labels >= 0], "proxies", normalize_proxies)
    proxy_labels = proxy_labels[proxy_labels >= 0]
    summary["embedding_proxy"] = _pair_stats(x, labels, p, proxy_labels, delta_att, delta_rep,
                                             same_set=False)
    summary["proxy_proxy"] = _pair_stats(p, proxy_labels, p, proxy_labels, delta_att,
                                         delta_rep, same_set=True)
  return summary


def _pair_weights(squared_distance, same_label, field: FieldParams) -> np.ndarray:
  """The loss's own ``potentials.pair_weight`` (psi'(d) / d per pair), evaluated in float64."""
  with jax.enable_x64(True):
    return np.array(potentials.pair_weight(jnp.asarray(squared_distance, jnp.float64),
                                           jnp.asarray(same_label), field))


def gradient_components(points, labels, num_embeddings: int, field: FieldParams,
                        proxy_self_attraction: bool = True) -> dict[str, np.ndarray]:
  """{component: (P, D) dU/dx} for the four COMPONENTS; they sum to the whole gradient.

  dU/dx_a = sum_{b != a} 2 psi'(d_ab) (x_a - x_b) / d_ab: the factor 2 because U counts the
  ordered pairs (a, b) and (b, a). Padding (label < 0) neither feels nor makes force.

  Args:
    points: (P, D) float64, the energy's layout: ``num_embeddings`` embeddings, then proxies.
    labels: (P,) int classes, < 0 on padding rows.
    num_embeddings: rows of ``points`` that are embeddings; the rest are proxies.
    field: the energy's alpha and radii.
    proxy_self_attraction: as the energy's option; False: same-class proxy pairs carry no
      force (``potentials.unpulled_pairs``, as the loss leaves them out).
  """
  valid = labels >= 0
  is_proxy = np.arange(len(points)) >= num_embeddings
  out = {name: np.zeros_like(points) for name in COMPONENTS}
  for start in range(0, len(points), ROW_CHUNK):
    rows = slice(start, start + ROW_CHUNK)
    same_label = labels[rows, None] == labels[None, :]
    weight = _pair_weights(_squared_distances(points[rows], points), same_label, field)
    row_index = np.arange(start, start + len(weight))
    weight[np.arange(len(weight)), row_index] = 0.0
    weight *= valid[rows, None] & valid[None, :]
    if not proxy_self_attraction:
      weight[np.asarray(potentials.unpulled_pairs(row_index[:, None], np.arange(len(points)),
                                                  same_label, num_embeddings))] = 0.0
    for name in COMPONENTS:
      kind = same_label if name.startswith("attraction") else ~same_label
      w = weight * (kind & (is_proxy[None, :] == name.endswith("proxies")))
      out[name][rows] = 2.0 * (np.sum(w, 1, keepdims=True) * points[rows] - w @ points)
  return out


def _shares(components: dict, points: np.ndarray, normalized: np.ndarray) -> dict[str, Any]:
  """Sum over points of each component's per-point norm, shares, and the total's norm."""
  report = {}
  for view in ("euclidean", "tangent"):
    parts = {}
    for name, gradient in components.items():
      if view == "tangent":  # drop the radial part at the normalised points only
        radial = np.sum(gradient * points, 1, keepdims=True) * points
        gradient = gradient - np.where(normalized[:, None], radial, 0.0)
      parts[name] = gradient
    norms = {name: float(np.sum(np.linalg.norm(g, axis=1))) for name, g in parts.items()}
    total = sum(norms.values())
    report[view] = {
        **{name: {"norm_sum": norms[name], "share": norms[name] / total if total else 0.0}
           for name in COMPONENTS},
        "sum_of_component_norms": total,
        "total_gradient_norm_sum": float(np.sum(np.linalg.norm(sum(parts.values()), axis=1)))}
  return report


def gradient_shares(embeddings, labels, proxies, proxy_labels, field: FieldParams, *,
                    normalize_proxies: bool = True,
                    proxy_self_attraction: bool = True) -> dict[str, Any]:
  """The energy's gradient on embeddings and on proxies, split by the pair that causes it.

  Args:
    embeddings: (B, D) a batch of embeddings (L2-normalised here); ``labels`` (B,).
    proxies: (Q, D) or None; ``proxy_labels`` (Q,), < 0 on padding rows.
    field, normalize_proxies, proxy_self_attraction: the energy's hyperparameters.
  Returns:
    {"on_embeddings", "on_proxies"}, each {"euclidean", "tangent"} (module docstring), each
    with per component ``norm_sum`` (sum over points of that component's gradient norm) and
    ``share`` (of the sum of the four), ``sum_of_component_norms``, and
    ``total_gradient_norm_sum`` (of the summed gradient: smaller where components cancel);
    plus ``force_pairs``: per component, the (embedding, source) pairs that carry force.
  """
  x = _points(embeddings, "embeddings", True)
  labels = np.asarray(labels).astype(np.int64)
  if proxies is None or len(proxies) == 0:
    p, proxy_labels = np.zeros((0, x.shape[1])), np.zeros((0,), np.int64)
  else:
    p = _points(proxies, "proxies", normalize_proxies)
  points = np.concatenate([x, p])
  point_labels = np.concatenate([labels, np.asarray(proxy_labels).astype(np.int64)])
  is_proxy = np.arange(len(points)) >= len(x)
  normalized = ~is_proxy | normalize_proxies
  components = gradient_components(points, point_labels, len(x), field, proxy_self_attraction)
  report = {}
  for where, rows in (("on_embeddings", ~is_proxy), ("on_proxies", is_proxy & (point_labels >= 0))):
    report[where] = _shares({n: g[rows] for n, g in components.items()}, points[rows],
                            normalized[rows])
  report["force_pairs"] = _force_pairs(x, labels, p, point_labels[len(x):], field)
  return report


def _force_pairs(x, labels, p, proxy_labels, field: FieldParams) -> dict[str, int]:
  """Embedding rows' pairs with nonzero weight, per component (self-pairs excluded)."""
  counts = {}
  for name, (source, source_labels) in zip(COMPONENTS, ((x, labels), (p, proxy_labels)) * 2):
    same = labels[:, None] == source_labels[None, :]
    w = _pair_weights(_squared_distances(x, source), same, field)
    if source is x:
      np.fill_diagonal(w, 0.0)
    w *= (labels[:, None] >= 0) & (source_labels[None, :] >= 0)
    counts[name] = int(np.count_nonzero(w * (same if name.startswith("attraction") else ~same)))
  return counts


def _mean(reports: list):
  """Leafwise mean of equally shaped nested dicts of numbers."""
  if isinstance(reports[0], dict):
    return {key: _mean([r[key] for r in reports]) for key in reports[0]}
  return float(np.mean(reports))


def field_report(embeddings, labels, proxies, proxy_labels, field: FieldParams, *,
                 normalize_proxies: bool = True, proxy_self_attraction: bool = True,
                 batches: list | None = None) -> dict[str, Any]:
  """``pair_distance_summary`` of all points and ``gradient_shares``, as a JSON-ready dict.

  ``batches``: index arrays into ``embeddings``; the gradient is then taken as in training,
  one batch with all proxies at a time, and every number is the mean over batches (shares
  included). None: one gradient over all embeddings.
  """
  embeddings, labels = np.asarray(embeddings), np.asarray(labels)
  options = dict(normalize_proxies=normalize_proxies, proxy_self_attraction=proxy_self_attraction)
  index_sets = [np.arange(len(labels))] if batches is None else batches
  shares = [gradient_shares(embeddings[rows], labels[rows], proxies, proxy_labels, field,
                            **options) for rows in index_sets]
  proxy_count = 0 if proxies is None else int(np.sum(np.asarray(proxy_labels) >= 0))
  return {"field": dict(field._asdict(), **options),
          "points": {"embeddings": int(len(labels)), "proxies": proxy_count},
          "distances": pair_distance_summary(embeddings, labels, field.delta_att,
                                             field.delta_rep, proxies, proxy_labels,
                                             normalize_proxies=normalize_proxies),
          "gradient": dict(_mean(shares), batches=len(index_sets),
                           batch_size=int(np.mean([len(rows) for rows in index_sets])))}
