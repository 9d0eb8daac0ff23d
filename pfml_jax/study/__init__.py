"""Multi-seed studies: grids of config overrides x seeds, run here or emitted for a cluster,
aggregated into the paper's tables (``python -m pfml_jax.study``; docs/studies.md)."""
