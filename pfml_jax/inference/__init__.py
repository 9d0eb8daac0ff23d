"""Using a trained model: embed images, search an embedded gallery, export a portable embedder.

    python -m pfml_jax.inference embed  --workdir=RUN --images=DIR --out=STEM
    python -m pfml_jax.inference search --workdir=RUN --gallery=STEM --queries=FILE_OR_DIR
    python -m pfml_jax.inference export --workdir=RUN --out=DIR

Nothing is imported here: ``exported_embedder`` must load with JAX alone.
"""
