"""Checkpoints of the train state: orbax saves with per-array digests, verified restores."""
