"""A run's settings: the config validated in one place, its derived values, and the source of
every value (``--dry_run``)."""

from pfml_jax.settings.run_settings import RunLength, RunSettings, derived, resolve

__all__ = ["RunLength", "RunSettings", "derived", "resolve"]
