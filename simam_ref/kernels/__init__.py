"""Numba kernels: ``cpu`` (``@njit(parallel=True)``) and ``cuda`` (Numba CUDA target)."""
