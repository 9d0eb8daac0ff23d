"""The small CPU recipes of the reproduction study."""
