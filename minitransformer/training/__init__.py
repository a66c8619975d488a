"""Runs: TrainConfig, data, the training step and loop, the run folder (the only module that knows
its file names), transfer from another run."""
