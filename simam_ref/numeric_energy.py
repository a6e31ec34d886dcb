"""Per-neuron energy of eq 2 and its closed-form minimiser, numerically.

The closed form is not typed here: it is the SymPy result of
:func:`derivations.closed_form`, turned into NumPy functions with ``lambdify``.
What *is* written here is the problem itself, the energy of eq 2 summed over the
other neurons, so that SciPy can minimise it independently
(:mod:`simam_ref.confirm`).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

__all__ = [
    "closed_form_weights",
    "energy",
    "energy_gradient",
    "leave_one_out_stats",
    "minimum_energy",
]

Labels = tuple[float, float]


def leave_one_out_stats(channel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(mu_t, sigma_t)``: mean and biased std of the M-1 *other* neurons, shape ``(M,)``.

    Computed directly (a loop over targets), not through the leave-one-out
    identities, so it can check them.
    """
    x = np.asarray(channel, dtype=np.float64).ravel()
    others = np.array([np.delete(x, t) for t in range(x.size)])
    return others.mean(axis=1), others.std(axis=1)


@lru_cache(maxsize=16)
def _lambdified(labels: Labels):
    import sympy as sp

    from derivations.energy import lam, mu, sigma, t
    from derivations.minimizer import closed_form

    args = (t, mu, sigma, lam)
    cf = closed_form(tuple(sp.nsimplify(v) for v in labels))
    return tuple(sp.lambdify(args, expr, "numpy") for expr in (cf.w_t, cf.b_t, cf.e_min))


def _closed_form_values(channel: np.ndarray, lam: float, labels: Labels) -> tuple:
    """``(w_t, b_t, e_t*)`` for every neuron of a 1-D channel, each of shape ``(M,)``."""
    x = np.asarray(channel, dtype=np.float64).ravel()
    mu, sigma = leave_one_out_stats(x)
    fns = _lambdified(tuple(float(v) for v in labels))
    return tuple(np.broadcast_to(fn(x, mu, sigma, lam), x.shape) for fn in fns)


def closed_form_weights(
    channel: np.ndarray, lam: float, labels: Labels = (1.0, -1.0)
) -> tuple[np.ndarray, np.ndarray]:
    """Minimisers ``(w_t, b_t)`` of eq 2 for every neuron of a 1-D channel, shape ``(M,)``."""
    w, b, _ = _closed_form_values(channel, lam, labels)
    return w, b


def minimum_energy(channel: np.ndarray, lam: float, labels: Labels = (1.0, -1.0)) -> np.ndarray:
    """Minimum energy ``e_t*`` of eq 2 for every neuron of a 1-D channel, shape ``(M,)``."""
    return _closed_form_values(channel, lam, labels)[2]


def energy(
    w: float,
    b: float,
    channel: np.ndarray,
    target: int,
    lam: float,
    labels: Labels = (1.0, -1.0),
) -> float:
    """Eq 2: ``mean_{i!=t}(y_o - (w x_i + b))^2 + (y_t - (w t + b))^2 + lam w^2``."""
    x = np.asarray(channel, dtype=np.float64).ravel()
    y_t, y_o = labels
    others = np.delete(x, target)
    t = x[target]
    return float(
        np.mean((y_o - (w * others + b)) ** 2) + (y_t - (w * t + b)) ** 2 + lam * w * w
    )


def energy_gradient(
    w: float,
    b: float,
    channel: np.ndarray,
    target: int,
    lam: float,
    labels: Labels = (1.0, -1.0),
) -> np.ndarray:
    """Gradient ``(de/dw, de/db)`` of :func:`energy`, differentiated term by term."""
    x = np.asarray(channel, dtype=np.float64).ravel()
    y_t, y_o = labels
    others = np.delete(x, target)
    t = x[target]
    r_o = y_o - (w * others + b)
    r_t = y_t - (w * t + b)
    de_dw = -2.0 * np.mean(r_o * others) - 2.0 * r_t * t + 2.0 * lam * w
    de_db = -2.0 * np.mean(r_o) - 2.0 * r_t
    return np.array([de_dw, de_db])
