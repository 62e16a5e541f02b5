"""Optimization, precision, callbacks and the training loop."""
