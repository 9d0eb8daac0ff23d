"""Ahead-of-time compilation of the train and evaluation steps for TPU topologies.

``python -m pfml_jax.aot --config=configs/sop_vit.py --topology=v5e-8`` (see ``__main__``).
"""
