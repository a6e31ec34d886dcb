"""The official SimAM module transcribed to NumPy, and a small torch stand-in to run it.

:func:`official_forward` is the official code (``keepdim=True``) line by line, in a
chosen precision; :class:`ShimTensor` and :func:`shim_torch` give the seed post's
PyTorch snippet the few tensor methods it calls, so it can run without torch.
Used by :mod:`simam_ref.confirm`, :mod:`derivations.claims` and the benchmarks.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

__all__ = ["ShimTensor", "official_forward", "shim_torch"]


class ShimTensor:
    """Minimal NumPy stand-in for the torch.Tensor API the seed snippet uses."""

    def __init__(self, data: np.ndarray) -> None:
        self.data = np.asarray(data, dtype=np.float64)

    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @staticmethod
    def _raw(other: object) -> object:
        return other.data if isinstance(other, ShimTensor) else other

    def mean(self, dim: list[int] | int, keepdim: bool = False) -> ShimTensor:
        axis = tuple(dim) if isinstance(dim, list | tuple) else dim
        return ShimTensor(self.data.mean(axis=axis, keepdims=keepdim))

    def sum(self, dim: list[int] | int, keepdim: bool = False) -> ShimTensor:
        axis = tuple(dim) if isinstance(dim, list | tuple) else dim
        return ShimTensor(self.data.sum(axis=axis, keepdims=keepdim))

    def pow(self, p: float) -> ShimTensor:
        return ShimTensor(self.data**p)

    def __add__(self, o: object) -> ShimTensor:
        return ShimTensor(self.data + self._raw(o))

    __radd__ = __add__

    def __sub__(self, o: object) -> ShimTensor:
        return ShimTensor(self.data - self._raw(o))

    def __rsub__(self, o: object) -> ShimTensor:
        return ShimTensor(self._raw(o) - self.data)

    def __mul__(self, o: object) -> ShimTensor:
        return ShimTensor(self.data * self._raw(o))

    __rmul__ = __mul__

    def __truediv__(self, o: object) -> ShimTensor:
        return ShimTensor(self.data / self._raw(o))

    def __rtruediv__(self, o: object) -> ShimTensor:
        return ShimTensor(self._raw(o) / self.data)


def shim_torch() -> SimpleNamespace:
    """A stand-in for the ``torch`` module with the one function the seed uses: ``sigmoid``."""
    return SimpleNamespace(sigmoid=lambda x: ShimTensor(1.0 / (1.0 + np.exp(-x.data))))


def official_forward(x: np.ndarray, lam: float = 1e-4, dtype=np.float64) -> np.ndarray:
    """The official module (``keepdim=True``) on ``(N, C, H, W)``, line by line.

    ``dtype`` is the precision it runs in: float64 for a faithful reference, or the
    input's own dtype to reproduce what a framework computes (overflow included).
    """
    dt = np.dtype(dtype).type
    x = np.asarray(x, dtype=dt)
    with np.errstate(all="ignore"):
        n = dt(x.shape[2] * x.shape[3] - 1)
        d = (x - x.mean(axis=(2, 3), keepdims=True, dtype=dt)) ** 2
        v = d.sum(axis=(2, 3), keepdims=True, dtype=dt) / n
        e_inv = d / (dt(4) * (v + dt(lam))) + dt(0.5)
        return x * (dt(1) / (dt(1) + np.exp(-e_inv)))
