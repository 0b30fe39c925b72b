"""Darkroom's application layer: workspace, run store, jobs, dataset builders, plots, UI."""
__version__ = "0.1.0"
