"""Independent float64 oracles shared by the tests: the official formula and the exact method.

Written from the definitions alone (no import of :mod:`simam_ref`), so a test that
compares a backend with them compares two separate transcriptions:

* :func:`official` -- the official module, line by line: the mean over the spatial
  axes, ``v = sum((x - mu)^2) / (M - 1)``, ``y = x * sigmoid((x - mu)^2 / (4 (v + lam)) + 0.5)``.
* :func:`exact` -- per neuron, the leave-one-out mean and variance of the ``M - 1``
  others, then the same sigmoid of ``1/e*`` (O(M^2), fine for test sizes).
* :func:`min_energy` / :func:`exact_by_minimisation` -- eq 2 minimised numerically as a
  linear least-squares problem, with no closed form at all.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = ["exact", "exact_by_minimisation", "min_energy", "official", "official_inv_energy"]


def _axes(ndim: int, axes: int | Sequence[int] | None) -> tuple[int, ...]:
    """Normalised spatial axes; ``None`` means every axis after ``(N, C)``."""
    if axes is None:
        return tuple(range(2, ndim))
    if isinstance(axes, int):
        axes = (axes,)
    return tuple(a % ndim for a in axes)


def official_inv_energy(x, lam: float, axes: int | Sequence[int] | None = (2, 3)) -> np.ndarray:
    """``1/e*`` of the official code for every neuron, in float64."""
    x = np.asarray(x, dtype=np.float64)
    ax = _axes(x.ndim, axes)
    n = math.prod(x.shape[a] for a in ax) - 1
    d = (x - x.mean(axis=ax, keepdims=True)) ** 2
    v = d.sum(axis=ax, keepdims=True) / n
    return d / (4.0 * (v + lam)) + 0.5


def official(x, lam: float, axes: int | Sequence[int] | None = (2, 3)) -> np.ndarray:
    """The official module's output ``x * sigmoid(1/e*)``, in float64 (any spatial axes)."""
    x = np.asarray(x, dtype=np.float64)
    return x / (1.0 + np.exp(-official_inv_energy(x, lam, axes)))


def _per_channel(x, axes, row_fn) -> np.ndarray:
    """Apply ``row_fn`` to every channel flattened to one row; same shape as ``x``."""
    x = np.asarray(x, dtype=np.float64)
    ax = _axes(x.ndim, axes)
    rest = tuple(a for a in range(x.ndim) if a not in ax)
    moved = np.transpose(x, rest + ax)
    rows = moved.reshape(-1, math.prod(x.shape[a] for a in ax))
    out = np.stack([row_fn(r) for r in rows]).reshape(moved.shape)
    return np.transpose(out, np.argsort(rest + ax))


def exact(x, lam: float, axes: int | Sequence[int] | None = (2, 3)) -> np.ndarray:
    """Exact method from the leave-one-out statistics of the ``M - 1`` other neurons."""

    def row(r: np.ndarray) -> np.ndarray:
        y = np.empty_like(r)
        for k in range(r.size):
            others = np.delete(r, k)
            mu, var = others.mean(), others.var()  # 1/(M-1) over the others
            e_inv = (r[k] - mu) ** 2 / (4.0 * (var + lam)) + 0.5
            y[k] = r[k] / (1.0 + math.exp(-e_inv))
        return y

    return _per_channel(x, axes, row)


def min_energy(others, t: float, lam: float,
               labels: tuple[float, float] = (1.0, -1.0)) -> tuple[float, float, float]:
    """``(w, b, e_min)`` minimising eq 2 for target ``t`` by linear least squares.

    eq 2: ``mean_i (y_o - (w x_i + b))^2 + (y_t - (w t + b))^2 + lam w^2``.
    """
    yt, yo = (float(v) for v in labels)
    others = np.asarray(others, dtype=np.float64)
    n = others.size
    k = 1.0 / math.sqrt(n)
    a = np.vstack([np.column_stack([k * others, np.full(n, k)]),
                   [t, 1.0], [math.sqrt(lam), 0.0]])
    rhs = np.concatenate([np.full(n, k * yo), [yt, 0.0]])
    sol, *_ = np.linalg.lstsq(a, rhs, rcond=None)
    return float(sol[0]), float(sol[1]), float(np.sum((a @ sol - rhs) ** 2))


def exact_by_minimisation(x, lam: float,
                          axes: int | Sequence[int] | None = (2, 3)) -> np.ndarray:
    """Exact method with ``e*`` found by minimising eq 2 numerically for every neuron."""

    def row(r: np.ndarray) -> np.ndarray:
        y = np.empty_like(r)
        for k in range(r.size):
            e_min = min_energy(np.delete(r, k), r[k], lam)[2]
            y[k] = r[k] / (1.0 + math.exp(-1.0 / e_min))
        return y

    return _per_channel(x, axes, row)
