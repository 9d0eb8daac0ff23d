"""Analyses of a trained run that rebuild parts of its training (the force report)."""
