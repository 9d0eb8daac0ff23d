"""The paper's picture: a class potential field in the plane and the force on every point.

Two classes of a few samples (and optionally proxies) lie in 2-D. The figure shows the class
potential field Psi_j of one class (``docs/method.md``) as a
coloured surface, and as arrows the force on every point, minus the gradient of the project's
own energy (``potential_energy``, dense path) taken by autodiff; a side panel plots the pair
forces against distance. Both come from ``losses/potentials.py``, so the picture is also a
visual check of the physics: no pull inside delta_att, a pull decaying as d^-(alpha+1)
outside it, a push only inside delta_rep.

The points live in the plane, not on the circle: every point is passed as a proxy with
``normalize_proxies=False`` (the energy L2-normalises embeddings, never unnormalised proxies),
so distances are the plane's. ``draw_descent`` animates a few gradient steps as a GIF.
"""

import dataclasses
from pathlib import Path

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
from matplotlib import animation, colors

from pfml_jax.losses.potential_energy import EnergyExecution, potential_energy
from pfml_jax.losses.potentials import FieldParams, clamped_distance, pair_potential
from pfml_jax.viz.figures import save_figure

# Our choice: a hand-placed layout that shows every regime at the paper's delta = 0.2: a
# same-class pair 0.12 apart (inside delta_att: no mutual pull), far members of each class
# (weak, decaying pull), and one cross-class pair 0.17 apart (inside delta_rep: a push).
SAMPLES = {
    0: [(-0.55, 0.05), (-0.45, 0.12), (-0.35, -0.25), (-0.95, -0.45), (0.05, 0.6)],
    1: [(0.5, 0.1), (0.62, -0.05), (0.35, -0.45), (0.95, 0.5), (-0.2, -0.18)],
}
PROXIES = {
    0: [(-0.6, -0.1), (-0.25, 0.3), (-0.8, 0.3)],
    1: [(0.55, -0.25), (0.75, 0.25), (0.3, 0.2)],
}
MAX_PROXIES = len(PROXIES[0])
EXTENT = (-1.25, 1.25, -0.85, 0.85)  # x0, x1, y0, y1 of the plane shown
CLASS_COLOURS = ("tab:blue", "tab:orange")
FIGURE_SIZE, DPI = (11.0, 4.6), 100  # 1100 x 460 pixels
COLOUR_MAP = "RdBu_r"  # wells blue, walls red, no field white


@dataclasses.dataclass(frozen=True)
class Configuration:
  """Points in the plane: (N, 2) float32 positions, (N,) labels and which rows are proxies."""

  points: np.ndarray
  labels: np.ndarray
  is_proxy: np.ndarray


def demo_configuration(proxies_per_class: int = 2) -> Configuration:
  """The two-class layout above with ``proxies_per_class`` (0-3) proxies per class."""
  if not 0 <= proxies_per_class <= MAX_PROXIES:
    raise ValueError(f"proxies_per_class must be between 0 and {MAX_PROXIES}, "
                     f"got {proxies_per_class}.")
  points, labels, is_proxy = [], [], []
  for label in SAMPLES:
    for group, proxy in ((SAMPLES[label], False), (PROXIES[label][:proxies_per_class], True)):
      points += group
      labels += [label] * len(group)
      is_proxy += [proxy] * len(group)
  return Configuration(np.asarray(points, np.float32), np.asarray(labels, np.int32),
                       np.asarray(is_proxy, bool))


def plane_energy(points: jnp.ndarray, labels: jnp.ndarray, field: FieldParams) -> jnp.ndarray:
  """PFML's energy U of points in the plane (all passed as unnormalised proxies)."""
  dim = points.shape[1]
  return potential_energy(jnp.zeros((0, dim), jnp.float32), jnp.zeros((0,), jnp.int32),
                          points, labels, alpha=field.alpha, delta_att=field.delta_att,
                          delta_rep=field.delta_rep, normalize_proxies=False,
                          execution=EnergyExecution("dense"))


_energy_gradient = jax.jit(jax.grad(plane_energy), static_argnums=2)


def forces(points: np.ndarray, labels: np.ndarray, field: FieldParams) -> np.ndarray:
  """(N, 2) force on every point: -dU/dx, by autodiff of ``plane_energy``."""
  gradient = _energy_gradient(jnp.asarray(points, jnp.float32), jnp.asarray(labels), field)
  return -np.asarray(gradient)


def class_potential(positions: np.ndarray, points: np.ndarray, labels: np.ndarray,
                    label: int, field: FieldParams) -> np.ndarray:
  """Psi_label at every row of ``positions`` (M, 2): the pair potentials of all points summed."""
  differences = jnp.asarray(positions)[:, None, :] - jnp.asarray(points)[None, :, :]
  distance = clamped_distance(jnp.sum(differences * differences, axis=-1))
  same = jnp.asarray(labels)[None, :] == label
  return np.asarray(jnp.sum(pair_potential(distance, same, field), axis=1))


def radial_force(distance: np.ndarray, same_label: bool, field: FieldParams) -> np.ndarray:
  """-d psi / d d of one pair at each distance (> 0 pushes apart, < 0 pulls together)."""
  psi = lambda d: pair_potential(d, jnp.asarray(same_label), field)
  return -np.asarray(jax.vmap(jax.grad(psi))(jnp.asarray(distance, jnp.float32)))


def draw_field(configuration: Configuration, field: FieldParams, out_path, *,
               shown_class: int = 0, title: str | None = None) -> Path:
  """The field figure of ``configuration`` as a PNG at ``out_path``; returns the path."""
  figure, (plane, profile) = _figure()
  _draw_plane(plane, configuration, field, shown_class)
  _colour_bar(figure, plane, configuration.labels, field, shown_class)
  _draw_profile(profile, field)
  figure.suptitle(title or _default_title(field))
  return _save(figure, out_path)


def descent(configuration: Configuration, field: FieldParams, steps: int,
            step_size: float = 0.03) -> list[np.ndarray]:
  """The positions before and after each of ``steps`` gradient steps on every point.

  Each point moves along its force by at most ``step_size`` (our choice: the raw gradient spans
  orders of magnitude, the repulsion diverging as d^-(alpha+1), so a fixed learning rate either
  freezes the far points or throws the close ones out of the picture).
  """
  frames = [configuration.points]
  for _ in range(steps):
    force = forces(frames[-1], configuration.labels, field)
    length = np.linalg.norm(force, axis=1, keepdims=True)
    move = force * np.minimum(1.0, step_size / np.maximum(length, 1e-30))
    frames.append(frames[-1] + move.astype(np.float32))
  return frames


def draw_descent(configuration: Configuration, field: FieldParams, out_path, *,
                 steps: int = 20, step_size: float = 0.03, shown_class: int = 0) -> Path:
  """A GIF of ``descent``: the field and forces after each step, one frame each."""
  frames = descent(configuration, field, steps, step_size)
  figure, (plane, profile) = _figure()
  _colour_bar(figure, plane, configuration.labels, field, shown_class)
  _draw_profile(profile, field)

  def draw(index):
    plane.clear()
    state = dataclasses.replace(configuration, points=frames[index])
    _draw_plane(plane, state, field, shown_class)
    figure.suptitle(f"{_default_title(field)}; gradient step {index} of {steps}")

  out_path = Path(out_path)
  out_path.parent.mkdir(parents=True, exist_ok=True)
  movie = animation.FuncAnimation(figure, draw, frames=len(frames))
  movie.save(out_path, writer=animation.PillowWriter(fps=4), dpi=DPI)
  plt.close(figure)
  return out_path


def _default_title(field: FieldParams) -> str:
  return (f"PFML potential field: alpha = {field.alpha:g}, delta_att = {field.delta_att:g}, "
          f"delta_rep = {field.delta_rep:g}")


def _figure():
  return plt.subplots(1, 2, figsize=FIGURE_SIZE, dpi=DPI, layout="constrained",
                      gridspec_kw={"width_ratios": (1.75, 1.0)})


def _colour_norm(labels: np.ndarray, field: FieldParams, shown_class: int) -> colors.SymLogNorm:
  """Symmetric log colours: from the deepest well the class can make to 10 x one well's depth."""
  well = field.delta_att ** -field.alpha
  return colors.SymLogNorm(linthresh=well / 100, vmin=-well * np.sum(labels == shown_class),
                           vmax=10 * well)


def _colour_bar(figure, axis, labels: np.ndarray, field: FieldParams, shown_class: int) -> None:
  norm = _colour_norm(labels, field, shown_class)
  figure.colorbar(plt.cm.ScalarMappable(norm=norm, cmap=COLOUR_MAP), ax=axis, shrink=0.9,
                  extend="max", ticks=_symlog_ticks(norm),
                  label=f"Psi_{shown_class} minus its far plateau (symlog)")


def _draw_plane(axis, configuration: Configuration, field: FieldParams,
                shown_class: int) -> None:
  points, labels = configuration.points, configuration.labels
  x0, x1, y0, y1 = EXTENT
  xs, ys = np.linspace(x0, x1, 250), np.linspace(y0, y1, 170)
  grid = np.stack(np.meshgrid(xs, ys), axis=-1).reshape(-1, 2).astype(np.float32)
  # Shown relative to the plateau every other-class point adds beyond delta_rep, so that 0 is
  # "no force from anything"; symmetric log colours keep both the wells and the walls legible.
  plateau = np.sum(labels != shown_class) * field.far_repulsion
  psi = class_potential(grid, points, labels, shown_class, field).reshape(len(ys), len(xs))
  norm = _colour_norm(labels, field, shown_class)
  axis.contourf(xs, ys, psi - plateau, levels=norm.inverse(np.linspace(0.0, 1.0, 33)),
                norm=norm, cmap=COLOUR_MAP, extend="max")
  for point, label in zip(points, labels):
    radius = field.delta_att if label == shown_class else field.delta_rep
    axis.add_patch(plt.Circle(point, radius, fill=False, lw=0.8, ls="--", color="0.25"))
  force = forces(points, labels, field)
  # Arrow lengths on a log scale (the forces span orders of magnitude); zero stays zero.
  magnitude = np.linalg.norm(force, axis=1)
  scale = np.median(magnitude[magnitude > 0]) if np.any(magnitude > 0) else 1.0
  length = 0.12 * np.log1p(magnitude / scale)
  direction = force / np.maximum(magnitude, 1e-30)[:, None]
  for label in np.unique(labels):
    for proxy, marker, size in ((False, "o", 55), (True, "*", 170)):
      rows = (labels == label) & (configuration.is_proxy == proxy)
      if rows.any():
        axis.scatter(*points[rows].T, s=size, marker=marker, color=CLASS_COLOURS[label % 2],
                     edgecolor="black", linewidth=0.8, zorder=3,
                     label=f"class {label} {'proxies' if proxy else 'samples'}")
  axis.quiver(*points.T, *(direction * length[:, None]).T, angles="xy", scale_units="xy",
              scale=1.0, width=0.004, color="black", zorder=4)
  axis.set(xlim=(x0, x1), ylim=(y0, y1), aspect="equal",
           title=f"Psi of class {shown_class}; arrows: force -dU/dx (length ~ log)")
  axis.legend(loc="lower right", fontsize=7, framealpha=0.85)


def _draw_profile(axis, field: FieldParams) -> None:
  distance = np.linspace(0.06, 1.0, 400)
  axis.plot(distance, radial_force(distance, True, field), color="tab:blue",
            label="same class: pull (< 0)")
  axis.plot(distance, radial_force(distance, False, field), color="tab:red",
            label="other class: push (> 0)")
  axis.axvline(field.delta_att, color="tab:blue", ls="--", lw=0.8)
  axis.axvline(field.delta_rep, color="tab:red", ls=":", lw=1.2)
  axis.axhline(0.0, color="0.5", lw=0.6)
  axis.set_yscale("symlog", linthresh=1.0)
  axis.set(xlabel="distance d between the two points", ylabel="-d psi / d d  (symlog)",
           title="pair force against distance")
  axis.legend(fontsize=8)


def _symlog_ticks(norm: colors.SymLogNorm) -> list[float]:
  """Powers of ten inside the norm's range, both signs, and zero."""
  top = int(np.floor(np.log10(max(-norm.vmin, norm.vmax))))
  bottom = int(np.ceil(np.log10(norm.linthresh)))
  ticks = [s * 10.0**k for k in range(bottom, top + 1) for s in (-1, 1)] + [0.0]
  return sorted(t for t in ticks if norm.vmin <= t <= norm.vmax)


def _save(figure, out_path) -> Path:
  return save_figure(figure, out_path, DPI)
