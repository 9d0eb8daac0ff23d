"""The lowest potential energy a set of labels allows, so the logged PFML loss is readable.

Every same-label pair contributes at least -delta_att^-alpha and every different-label pair at
least +delta_rep^-alpha, so

    U >= floor = n_diff * delta_rep^-alpha - n_same * delta_att^-alpha

with equality exactly when each class sits within delta_att and classes are delta_rep apart.
Without same-class proxy-proxy attraction those pairs add exactly 0 and leave n_same.
The raw energy is dominated by the floor (about 3e8 at CUB scale, 6e10 at SOP scale) and moves
in its fifth digit; ``U - floor`` is >= 0 and falls to 0 as the field settles.
"""

import jax.numpy as jnp


def energy_floor(labels: jnp.ndarray, proxy_labels: jnp.ndarray | None = None, *,
                 alpha: float, delta_att: float, delta_rep: float,
                 proxy_self_attraction: bool = True, **other_hparams) -> jnp.ndarray:
  """float32 lower bound of ``potential_energy`` for these labels (< 0: padding).

  ``other_hparams`` (the energy's remaining options) do not change the bound.
  """
  del other_hparams
  all_labels = labels if proxy_labels is None else jnp.concatenate([labels, proxy_labels])
  valid = all_labels >= 0
  num_valid = jnp.sum(valid).astype(jnp.float32)
  shared = _sharing(all_labels)
  same_pairs = jnp.sum(jnp.where(valid, shared - 1.0, 0.0))
  different_pairs = jnp.sum(jnp.where(valid, num_valid - shared, 0.0))
  if not proxy_self_attraction and proxy_labels is not None:
    same_pairs -= jnp.sum(jnp.where(proxy_labels >= 0, _sharing(proxy_labels) - 1.0, 0.0))
  return different_pairs * delta_rep ** -alpha - same_pairs * delta_att ** -alpha


def _sharing(labels: jnp.ndarray) -> jnp.ndarray:
  """Points sharing each point's label, itself included (negative labels never match a valid
  one), as float32."""
  ordered = jnp.sort(labels)
  return (jnp.searchsorted(ordered, labels, side="right")
          - jnp.searchsorted(ordered, labels, side="left")).astype(jnp.float32)
