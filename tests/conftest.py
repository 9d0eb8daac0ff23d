"""Test session set-up: eight fake CPU devices, so sharding tests run on any machine, and a
cheaper XLA back-end optimisation level (tests run tiny programs: compile time dominates)."""

import os

# Must be set before JAX initialises its backends (i.e. before any test imports jax).
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8 "
                      "--xla_backend_optimization_level=0")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
