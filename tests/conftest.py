"""Test session set-up: eight fake CPU devices, so sharding tests run on any machine, and a
cheaper XLA back-end optimisation level (tests run tiny programs: compile time dominates)."""

import atexit
import os
import shutil
import tempfile

import pytest

from tests.colour_images import write_colour_classes

# Must be set before JAX initialises its backends (i.e. before any test imports jax).
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8 "
                      "--xla_backend_optimization_level=0")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# Image caches (data/image_cache.py) of the tests' runs, subprocesses included, go to a fresh
# folder of this session, not to the user's cache folder.
os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="pfml_jax_test_cache_")
atexit.register(shutil.rmtree, os.environ["XDG_CACHE_HOME"], ignore_errors=True)


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
  """12 classes x 6 small JPEGs, each class a colour with noise (learnable, tiny)."""
  return write_colour_classes(tmp_path_factory.mktemp("images"))
