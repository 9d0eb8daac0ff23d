"""pfml_jax: Potential Field Based Deep Metric Learning (Bhatnagar & Ahuja, CVPR 2025) in JAX."""
