"""Optimiser construction, the training loop and checkpoints."""
