"""Training: the train state, optimizer and pure train step, their set-up from a config, the
loop, the evaluation protocol and the run around them (workdir lock, preemption, metrics)."""
