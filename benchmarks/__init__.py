"""Benchmarks: scripts that print numbers (each runnable on its own), and `python -m benchmarks`,
which measures every figure beside its floor (see benchmarks/__main__.py)."""
