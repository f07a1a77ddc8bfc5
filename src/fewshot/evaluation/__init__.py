"""Scoring episodes, pooling them into metrics, calibration, timing and the regression gate."""
