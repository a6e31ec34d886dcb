"""simam-ref: SimAM attention in NumPy/Numba, checked against its own derivation.

>>> import numpy as np
>>> from simam_ref import simam
>>> x = np.random.default_rng(0).standard_normal((2, 4, 8, 8)).astype(np.float32)
>>> simam(x).shape
(2, 4, 8, 8)
"""

from .api import available_backends, simam, simam_backward

__all__ = ["available_backends", "simam", "simam_backward"]
__version__ = "0.1.0"
