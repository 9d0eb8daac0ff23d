"""The shared scratch setup of the fair comparison: every loss, one setup, CPU.

    python -m pfml_jax.main --config=configs/small/shared_scratch.py:proxy_anchor --workdir=/tmp/x
    python -m pfml_jax.study tune --config=configs/small/shared_scratch.py --loss=proxy_anchor \
        --trials=12 --workdir=studies/tune_scratch/proxy_anchor

The part after ":" names the loss (default pfml), with its registry defaults; what the setup
fixes and why: pfml_jax/small_experiments.py (shared_setup).
"""

from pfml_jax.small_experiments import shared_setup


def get_config(loss: str = "pfml"):
  """``loss``: the part after ":" in --config=FILE:LOSS."""
  return shared_setup("scratch", loss or "pfml")
