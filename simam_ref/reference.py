"""NumPy reference for SimAM: forward and analytic backward, both methods.

Every backend follows the same per-channel algorithm, written out here once.
For one channel ``x_1..x_M`` (``n = M - 1``), all arithmetic in float64:

1. **Scale** (float64 inputs only matter): ``a = max|x_i|``, ``e = frexp(a)[1]``
   clipped to ``[-1000, 1100]``, ``s = 2**-e``.  Multiplying by a power of two is
   exact, so scaling changes no bit in the normal range; it only keeps squares of
   huge or tiny float64 inputs representable.  ``lam_s = max(lam * s * s, 2**-500)``:
   the floor keeps every denominator below (and its square) finite and nonzero;
   it changes a result only where ``lam`` is 2**-500 of the channel's squared scale,
   where the regulariser is negligible anyway.
2. **Mean**, two-pass with one correction step: ``mu0 = sum(x s) / M``;
   ``su = sum(x s - mu0)``, ``ss = sum((x s - mu0)**2)``; ``mu = mu0 + su / M``,
   ``S2 = max(ss - su**2 / M, 0)``.  A constant channel gets ``mu`` exactly and
   ``S2 = 0``.  (The CPU kernel's float32 channel path gets the same two numbers in
   one pass over ``v = x - x[0]``: since ``(x[0] - mu)**2 <= S2``, the shift keeps
   ``sum v**2 - (sum v)**2 / M`` within ~``M * eps`` of ``S2``, with the same
   constant-channel guarantee.)
3. **Inverse energy** per neuron, ``u = x s - mu``, ``d = u**2``:

   * paper (the official module): ``E = d / (4 (S2 / n + lam_s)) + 1/2``
   * exact (leave-one-out minimiser of eq 2): ``r = M / n``,
     ``var_t = max(S2 - r d, 0) / n``, ``E = r**2 d / (4 (var_t + lam_s)) + 1/2``

4. **Output** ``y = x * sigmoid(E)``; ``E >= 1/2`` so the gain lies in
   ``[sigmoid(1/2), 1]``.

The backward (vector-Jacobian product, derived and checked in
:mod:`derivations.backward`) needs only ``x``, ``grad_out`` and the channel
statistics: with ``g = sigmoid(E)`` and ``q = go * (x s) * g * (1 - g)``,

* paper: ``A = 4 (S2 / n + lam_s)``, ``alpha = 2 u / A``, ``beta = 8 d / (n A**2)``
* exact: ``B = 4 (var_t + lam_s)``, ``alpha = 2 r**2 u / B + 8 r**3 u**3 / (n B**2)``,
  ``beta = 8 r**2 d / (n B**2)``

``grad_x = go g + q alpha - sum(q alpha) / M - u sum(q beta)``.

The functions here work on a ``(channels, M)`` array; :mod:`simam_ref.api`
validates input and reshapes any layout to that form.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .constants import LAM_FLOOR, MAX_EXP, MIN_EXP

__all__ = [
    "ChannelStats",
    "backward_2d",
    "channel_stats",
    "forward_2d",
    "inverse_energy",
]



@dataclass(frozen=True)
class ChannelStats:
    """Per-channel statistics in scaled units, each of shape ``(channels, 1)``.

    ``scale`` is the power of two ``s``; ``mean`` and ``s2`` are the mean and the
    sum of squared deviations of ``x * s``; ``lam`` is ``max(lam * s**2, LAM_FLOOR)``.
    """

    scale: np.ndarray
    mean: np.ndarray
    s2: np.ndarray
    lam: np.ndarray
    m: int


def channel_stats(x2: np.ndarray, lam: float) -> ChannelStats:
    """Statistics of each row of ``x2`` (shape ``(channels, M)``), in float64."""
    x64 = np.asarray(x2, dtype=np.float64)
    m = x64.shape[1]
    with np.errstate(invalid="ignore", over="ignore"):
        amax = np.max(np.abs(x64), axis=1, keepdims=True)
        exponent = np.frexp(np.where(np.isfinite(amax), amax, 1.0))[1]
        scale = np.ldexp(1.0, -np.clip(exponent, MIN_EXP, MAX_EXP))
        xs = x64 * scale
        mean0 = xs.sum(axis=1, keepdims=True) / m
        dev = xs - mean0
        su = dev.sum(axis=1, keepdims=True)
        ss = np.square(dev).sum(axis=1, keepdims=True)
        mean = mean0 + su / m
        s2 = np.maximum(ss - su * su / m, 0.0)
        lam_s = np.maximum(lam * scale * scale, LAM_FLOOR)
    return ChannelStats(scale=scale, mean=mean, s2=s2, lam=lam_s, m=m)


def inverse_energy(
    x2: np.ndarray, lam: float, exact: bool, stats: ChannelStats | None = None
) -> tuple[np.ndarray, np.ndarray, ChannelStats]:
    """``(E, u, stats)``: ``E = 1/e_t*`` per neuron and the scaled deviation ``u``.

    ``x2`` has shape ``(channels, M)``; ``E`` and ``u`` are float64 of that shape.
    """
    st = channel_stats(x2, lam) if stats is None else stats
    n = st.m - 1
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        u = np.asarray(x2, dtype=np.float64) * st.scale - st.mean
        d = u * u
        if exact:
            r = st.m / n
            var_t = np.maximum(st.s2 - r * d, 0.0) / n
            e_inv = (r * r) * d / (4.0 * (var_t + st.lam)) + 0.5
        else:
            e_inv = d / (4.0 * (st.s2 / n + st.lam)) + 0.5
    return e_inv, u, st


def _sigmoid_pair(e_inv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(sigmoid(E), sigmoid(-E))`` without cancellation (E >= 1/2 or NaN)."""
    with np.errstate(over="ignore", invalid="ignore"):
        t = np.exp(-e_inv)
        g = 1.0 / (1.0 + t)
        return g, t * g


def forward_2d(x2: np.ndarray, lam: float, exact: bool, out2: np.ndarray) -> None:
    """SimAM forward of each row of ``x2`` (``(channels, M)``) into ``out2``."""
    e_inv, _, _ = inverse_energy(x2, lam, exact)
    g, _ = _sigmoid_pair(e_inv)
    with np.errstate(invalid="ignore", over="ignore"):
        out2[...] = np.asarray(x2, dtype=np.float64) * g


def backward_2d(
    x2: np.ndarray, g2: np.ndarray, lam: float, exact: bool, out2: np.ndarray
) -> None:
    """Vector-Jacobian product ``grad_x`` for rows of ``x2`` and ``grad_out`` ``g2``."""
    e_inv, u, st = inverse_energy(x2, lam, exact)
    gain, one_minus = _sigmoid_pair(e_inv)
    go = np.asarray(g2, dtype=np.float64)
    m, n = st.m, st.m - 1
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        q = go * (np.asarray(x2, dtype=np.float64) * st.scale) * gain * one_minus
        d = u * u
        if exact:
            r = m / n
            b = 4.0 * (np.maximum(st.s2 - r * d, 0.0) / n + st.lam)
            alpha = 2.0 * r * r * u / b + 8.0 * r**3 * u * d / (n * b * b)
            beta = 8.0 * r * r * d / (n * b * b)
        else:
            a = 4.0 * (st.s2 / n + st.lam)
            alpha = 2.0 * u / a
            beta = 8.0 * d / (n * a * a)
        qa = q * alpha
        p1 = qa.sum(axis=1, keepdims=True)
        p2 = (q * beta).sum(axis=1, keepdims=True)
        out2[...] = go * gain + qa - p1 / m - u * p2
