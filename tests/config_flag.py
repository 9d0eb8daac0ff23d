"""Configs loaded through the real ``--config`` flag, as users pass them (shared by tests)."""

from absl import flags
from ml_collections import config_flags


def load(argument: str, *overrides: str):
  """The config of ``--config=<argument>`` and ``--config.<field>=...`` overrides."""
  argv = ["prog", f"--config={argument}", "--config.mesh.data=1", *overrides]
  values = flags.FlagValues()
  config_flags.DEFINE_config_file("config", None, "", flag_values=values, lock_config=True,
                                  sys_argv=argv)
  values(argv)
  return values.config
