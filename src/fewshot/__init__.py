"""Reproducible few-shot learning: versioned episodes, tracked runs, honest metrics."""

__version__ = "0.1.0"
