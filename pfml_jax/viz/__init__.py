"""Pictures of PFML and of runs: the potential field, training curves, retrieval grids and
embedding maps (matplotlib, Agg backend: files only, no display needed)."""

import matplotlib

matplotlib.use("Agg")
