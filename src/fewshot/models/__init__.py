"""Encoders (backbones), few-shot methods, checkpoints and the episodic training loop."""
