"""Foundations every layer uses: params, registries, errors, atomic file I/O, paths, progress,
and the one place that talks to MLflow (tracking)."""
