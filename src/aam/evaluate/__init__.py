"""Metrics, plots and baselines."""
