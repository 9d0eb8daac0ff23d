"""The field figure's numbers (forces, Psi) against float64 NumPy, and its PNG and GIF."""

import numpy as np
import pytest
from PIL import Image

from pfml_jax.losses.potentials import FieldParams
from pfml_jax.viz import field
from pfml_jax.viz.__main__ import main
from tests.viz import field_reference as ref

FIELDS = [FieldParams(3.0, 0.2, 0.2), FieldParams(2.0, 0.15, 0.3)]


@pytest.mark.parametrize("params", FIELDS)
def test_forces_are_minus_the_float64_gradient(params):
  configuration = field.demo_configuration(proxies_per_class=3)
  points, labels = configuration.points, configuration.labels
  expected = -ref.energy_gradient(points, labels, *params)
  np.testing.assert_allclose(field.forces(points, labels, params), expected, rtol=2e-4,
                             atol=1e-3)
  assert float(field.plane_energy(points, labels, params)) == pytest.approx(
      ref.energy(points, labels, *params), rel=1e-5)


def test_same_class_pair_feels_no_force_inside_delta_att_and_a_decaying_pull_outside():
  params = FieldParams(3.0, 0.2, 0.2)
  labels = np.array([0, 0])
  inside = np.array([[0.0, 0.0], [0.12, 0.05]], np.float32)
  np.testing.assert_array_equal(field.forces(inside, labels, params), 0.0)
  pulls = []
  for distance in (0.3, 0.6):
    pair = np.array([[0.0, 0.0], [distance, 0.0]], np.float32)
    force = field.forces(pair, labels, params)
    assert force[0, 0] > 0 and force[1, 0] < 0  # toward each other
    expected = 2 * 3.0 * distance ** -4.0  # both ordered pairs pull: 2 alpha d^-(alpha+1)
    assert force[0, 0] == pytest.approx(expected, rel=1e-5)
    pulls.append(force[0, 0])
  assert pulls[1] < pulls[0]


def test_different_class_pair_is_pushed_apart_only_inside_delta_rep():
  params = FieldParams(3.0, 0.2, 0.2)
  labels = np.array([0, 1])
  close = np.array([[0.0, 0.0], [0.1, 0.1]], np.float32)
  force = field.forces(close, labels, params)
  assert np.dot(force[0], close[0] - close[1]) > 0 and np.dot(force[1], close[1] - close[0]) > 0
  np.testing.assert_allclose(force, -ref.energy_gradient(close, labels, *params), rtol=1e-5)
  far = np.array([[0.0, 0.0], [0.25, 0.0]], np.float32)
  np.testing.assert_array_equal(field.forces(far, labels, params), 0.0)


@pytest.mark.parametrize("params", FIELDS)
def test_class_potential_matches_float64(params):
  configuration = field.demo_configuration(proxies_per_class=2)
  rng = np.random.default_rng(0)
  positions = rng.uniform(-1.2, 1.2, (200, 2)).astype(np.float32)
  for label in (0, 1):
    expected = ref.class_potential(positions, configuration.points, configuration.labels, label,
                                   *params)
    np.testing.assert_allclose(
        field.class_potential(positions, configuration.points, configuration.labels, label,
                              params), expected, rtol=1e-4)


def test_radial_force_profile():
  params = FieldParams(3.0, 0.2, 0.3)
  distance = np.array([0.05, 0.15, 0.25, 0.5, 0.9])
  for same in (True, False):
    np.testing.assert_allclose(field.radial_force(distance, same, params),
                               -ref.pair_derivative(distance, same, *params), rtol=1e-5)


def test_descent_steps_along_the_forces_and_lowers_the_energy():
  params = FieldParams(3.0, 0.2, 0.2)
  configuration = field.demo_configuration(2)
  frames = field.descent(configuration, params, steps=3, step_size=0.03)
  assert len(frames) == 4
  labels = configuration.labels
  energies = [ref.energy(points, labels, *params) for points in frames]
  assert energies[1] < energies[0]
  force = -ref.energy_gradient(frames[0], labels, *params)
  move = frames[1] - frames[0]
  assert np.all(np.linalg.norm(move, axis=1) <= 0.03 + 1e-6)
  moving = np.linalg.norm(force, axis=1) > 0
  cosine = np.sum(move * force, axis=1)[moving] / (
      np.linalg.norm(move, axis=1) * np.linalg.norm(force, axis=1))[moving]
  np.testing.assert_allclose(cosine, 1.0, atol=1e-4)


def test_configuration_has_the_proxies_asked_for():
  for count in range(field.MAX_PROXIES + 1):
    configuration = field.demo_configuration(count)
    assert configuration.is_proxy.sum() == 2 * count
    assert len(configuration.points) == len(configuration.labels) == 10 + 2 * count
  with pytest.raises(ValueError, match="proxies_per_class"):
    field.demo_configuration(field.MAX_PROXIES + 1)


def test_field_png_and_descent_gif(tmp_path):
  params = FieldParams(3.0, 0.2, 0.2)
  configuration = field.demo_configuration(2)
  png = field.draw_field(configuration, params, tmp_path / "field.png")
  width, height = (round(v * field.DPI) for v in field.FIGURE_SIZE)
  with Image.open(png) as image:
    assert image.format == "PNG" and image.size == (width, height)
    # The field is drawn: far more than a handful of colours (blank axes have a few).
    assert len(image.convert("RGB").getcolors(maxcolors=1 << 20)) > 1000
  gif = field.draw_descent(configuration, params, tmp_path / "descent.gif", steps=2)
  with Image.open(gif) as image:
    assert image.format == "GIF" and image.size == (width, height) and image.n_frames == 3


def test_cli_rejects_bad_field_values(tmp_path, capsys):
  with pytest.raises(SystemExit) as exit_info:
    main(["field", "--alpha=0", f"--out={tmp_path / 'f.png'}"])
  assert exit_info.value.code == 2 and "alpha must be a finite number > 0" in (
      capsys.readouterr().err)
  with pytest.raises(SystemExit):
    main(["field", "--proxies=7", f"--out={tmp_path / 'f.png'}"])
  assert not (tmp_path / "f.png").exists()
