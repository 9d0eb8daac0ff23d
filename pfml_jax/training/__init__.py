"""Training: optimizer, train state, the pure train step, checkpoints and the training loop."""
