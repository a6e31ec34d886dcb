"""Per-neuron forward outputs ``x sigmoid(E)`` of the CPU kernels.

The float64 functions (any channel of a float64 array) compile the shared
per-neuron math of :mod:`simam_ref.kernels.neuron`.  The float32 functions are
specialised twins of it, kept because they run in float32 SIMD (8 lanes on AVX2
instead of 4) with the statistics split so no intermediate overflows; each names
its float64 twin.

Element functions carry their own fast-math flags (kept after LLVM inlines them
into the loops of :mod:`.forward`, :mod:`.grouped` and :mod:`.nlc`).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .. import neuron
from .base import ELEM, HALF32, NB, ONE32, TINY32, Exact32, Fast32, fma, split_mu
from .fastexp import exp_neg_f64, one_plus_exp_neg_f32

__all__ = ["exact32", "exact_f32", "exact_f64", "exact_fast_f32", "fast32", "paper_f32",
           "paper_f64", "paper_fast_f32", "paper_out_f32", "paper_z_f32"]

_paper_e = njit(inline="always")(neuron.paper_inverse_energy)
_exact_ib = njit(inline="always")(neuron.exact_reciprocal)
_exact_e = njit(inline="always")(neuron.exact_inverse_energy)


@njit(fastmath=ELEM, **NB)
def paper_f64(xv, ch, k):
    """Paper output of one neuron of a float64 channel ``ch`` with coefficient ``k``
    (float32 twins: :func:`paper_f32`, :func:`paper_fast_f32`)."""
    u = xv * ch.s - ch.mu
    return xv / (1.0 + exp_neg_f64(_paper_e(u * u, k)))


@njit(fastmath=ELEM, **NB)
def exact_f64(xv, ch, row):
    """Exact output of one neuron of a float64 channel ``ch`` (rows ``row``)
    (float32 twins: :func:`exact_f32`, :func:`exact_fast_f32`)."""
    u = xv * ch.s - ch.mu
    d = u * u
    inv_b = _exact_ib(d, ch.s2, row.r, row.inv_n, ch.lam)
    return xv / (1.0 + exp_neg_f64(_exact_e(d, inv_b, row.r)))


@njit(fastmath=ELEM, **NB)
def paper_f32(xv, mu, k):
    """Paper output of one float32 neuron with ``u`` and ``E`` in float64 (``|u|`` up
    to 7e38 squares fine; a float32 ``u*u`` would overflow).
    Twin of :func:`paper_f64`."""
    u = np.float64(xv) - mu
    return xv / one_plus_exp_neg_f32(np.float32(u * u * k + 0.5))


@njit(fastmath=ELEM, **NB)
def exact_f32(xv, ch, row, k4):
    """Exact output of one float32 neuron with ``u`` and the energy's numerator and
    denominator in float64, both scaled by ``k4 = 4 k = 1/(S2/n + lam)`` (which keeps
    them in float32 range) and divided in float32.  Twin of :func:`exact_f64`."""
    u = np.float64(xv) - ch.mu
    d = u * u
    v = ch.s2 - row.r * d
    if v < 0.0:
        v = 0.0
    den = np.float32(v * ((4.0 * row.inv_n) * k4) + (4.0 * ch.lam) * k4)
    if den < TINY32:  # S2 == 0 and lam tiny: d == 0 gives E = 1/2, not 0/0
        den = TINY32
    e = np.float32(d * (row.r * row.r * k4)) / den + HALF32
    return xv / one_plus_exp_neg_f32(e)


@njit(fastmath=ELEM, **NB)
def paper_z_f32(xv, f):
    """``z = (x - mu) kk`` of one float32 neuron as ``(x - f.mu_hi) kk + f.z_lo``
    (one subtraction and one FMA); ``E = z**2 + 1/2``."""
    return fma(xv - f.mu_hi, f.kk, f.z_lo)


@njit(fastmath=ELEM, **NB)
def paper_out_f32(xv, z):
    """Paper output ``x sigmoid(z**2 + 1/2)`` of one float32 neuron from its ``z``
    (:func:`paper_z_f32`); ``z**2 + 1/2`` is one FMA."""
    return xv / one_plus_exp_neg_f32(fma(z, z, HALF32))


@njit(fastmath=ELEM, **NB)
def paper_fast_f32(xv, f):
    """Paper output of one float32 neuron all in float32: :func:`paper_out_f32` of
    :func:`paper_z_f32` (the grouped forward runs the two in separate loops, same
    bits).  Twin of :func:`paper_f64`."""
    return paper_out_f32(xv, paper_z_f32(xv, f))


@njit(**NB)
def exact32(row, lam, den):
    """:data:`~.base.Exact32` ``(r**2, 4 r/n, floor)`` of a channel with
    ``den = 4 (S2/n + lam)``; ``floor = 4 lam / den`` is ``1 - q z**2`` at ``var_t = 0``."""
    return Exact32(np.float32(row.r * row.r), np.float32(row.r * (4.0 * row.inv_n)),
                   max(np.float32(4.0 * lam / den), TINY32))


@njit(fastmath=ELEM, **NB)
def exact_fast_f32(xv, f, ex):
    """Exact output of one float32 neuron all in float32.  Twin of :func:`exact_f64`.

    ``E - 1/2 = r**2 d / (4 (var_t + lam)) = r**2 z**2 / (1 - q z**2)`` with
    ``q = 4 r / n``, since ``4 (var_t + lam) = (1 - q z**2) 4 (S2/n + lam)``; the
    denominator is at least ``ex.floor``, its value at ``var_t = 0``, which clamps
    rounding below the leave-one-out minimum.
    """
    z = fma(xv - f.mu_hi, f.kk, f.z_lo)
    z2 = z * z
    den = ONE32 - ex.q * z2
    if den < ex.floor:
        den = ex.floor
    return xv / one_plus_exp_neg_f32(ex.r2 * z2 / den + HALF32)


@njit(**NB)
def fast32(mu, den):
    """:data:`~.base.Fast32` of a float32 channel with ``den = 4 (S2/n + lam)``;
    ``kk`` in float32 (it is rounded to float32 anyway): a short latency chain from
    the statistics to the loop, which matters on 7x7 channels."""
    mu_hi, mu_lo = split_mu(mu)
    kk = ONE32 / np.sqrt(np.float32(den))
    return Fast32(mu_hi, -(mu_lo * kk), kk)

