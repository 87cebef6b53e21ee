"""Benchmarks (not tests), runnable from the repository root as `python -m bench.<name>`."""
