"""Device meshes and the multi-process runtime (``jax.distributed``)."""
