"""Maintainer tools that build what the repository ships (the demo set, the glyph backbone);
not part of the installed package. Run from the repository root: ``python -m tools.<name>``."""
