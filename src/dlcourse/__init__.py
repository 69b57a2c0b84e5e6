"""Executable deep-learning course: kernels, data, plots and training helpers."""

__version__ = "0.1.0"
