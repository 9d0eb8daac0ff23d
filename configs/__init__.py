"""The shipped experiment configs (installed with the package as pfml_jax.configs)."""
