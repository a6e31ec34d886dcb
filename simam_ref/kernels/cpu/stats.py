"""Channel statistics of the CPU kernels: scale ``s``, mean ``mu`` and ``S2``.

float64 rows follow :mod:`simam_ref.reference` step by step: pass 1 ``sum(x)``
(and ``sum(x*x)`` to decide whether the power-of-two scale is needed), pass 2
``sum(x s - mu0)`` and ``sum((x s - mu0)**2)`` with one correction step.  float32
rows take one pass over ``x - x[0]`` in float64 (:mod:`.simd_sums`).  Every sum runs
over fixed blocks in block order, so the bits depend on the shape alone.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from ...constants import LAM_FLOOR, MAX_EXP, MIN_EXP
from .base import NB, RED, Channel, blk, is_f32, nblocks
from .simd_sums import moments_abs_f32, moments_f32

# scaling of float64 channels (see reference step 1): skipped when the sum of
# squares shows every square and sum is comfortably inside float64's range.
_SUMSQ_LO = 2.0**-300  # the backward squares 1/S2: keep it a normal float64
_SUMSQ_HI = 2.0**300


@njit(fastmath=RED, **NB)
def _sum_block(xb):
    """``sum(x)`` and (float64 only) ``sum(x*x)`` of the 1-D block ``xb``, in float64.

    Loops here start at 0 (callers pass slices): a variable start makes Numba
    emit negative-index wraparound per element, which defeats vectorisation.
    """
    acc = 0.0
    acc2 = 0.0
    if is_f32(xb):
        for i in range(xb.shape[0]):
            acc += np.float64(xb[i])
    else:
        for i in range(xb.shape[0]):
            v = np.float64(xb[i])
            acc += v
            acc2 += v * v
    return acc, acc2


@njit(fastmath=RED, **NB)
def _sum_block_scaled(xb, s):
    """``sum(x s)`` of the block ``xb`` in float64."""
    acc = 0.0
    for i in range(xb.shape[0]):
        acc += np.float64(xb[i]) * s
    return acc


@njit(fastmath=RED, **NB)
def _dev_block(xb, s, mu0):
    """``sum(x s - mu0)`` and ``sum((x s - mu0)**2)`` of the block ``xb``."""
    su = 0.0
    ss = 0.0
    if s == 1.0:
        for i in range(xb.shape[0]):
            d = np.float64(xb[i]) - mu0
            su += d
            ss += d * d
    else:
        for i in range(xb.shape[0]):
            d = np.float64(xb[i]) * s - mu0
            su += d
            ss += d * d
    return su, ss


@njit(**NB)
def _scale_for(xr, sumsq):
    """Power-of-two scale ``s`` of reference step 1 (1.0 when it is the identity):
    ``2**-e`` with ``e`` the exponent of ``max|x|`` clipped to ``[MIN_EXP, MAX_EXP]``."""
    if is_f32(xr):
        return 1.0
    if sumsq >= _SUMSQ_LO and sumsq <= _SUMSQ_HI:
        return 1.0
    amax = 0.0
    finite = True
    for i in range(xr.shape[0]):
        a = abs(np.float64(xr[i]))
        if a > amax:
            amax = a
        elif not (a <= amax):  # NaN
            finite = False
    if not finite or math.isinf(amax):
        amax = 1.0
    ex = math.frexp(amax)[1]
    ex = min(max(ex, MIN_EXP), MAX_EXP)
    return math.ldexp(1.0, -ex)


@njit(**NB)
def scaled_lam(lam, s):
    """The regulariser of a channel with scale ``s``: ``max(lam s**2, LAM_FLOOR)``."""
    return max(lam * s * s, LAM_FLOOR)


@njit(**NB)
def row_stats(xr, block, lam):
    """:data:`~.base.Channel` ``(s, mu, S2, lam)`` of one row, summing per block in
    block order."""
    m = xr.shape[0]
    nb = nblocks(m, block)
    t = 0.0
    q = 0.0
    for b in range(nb):
        bs, bq = _sum_block(blk(xr, b, block))
        t += bs
        q += bq
    s = _scale_for(xr, q)
    if s != 1.0:
        t = 0.0
        for b in range(nb):
            t += _sum_block_scaled(blk(xr, b, block), s)
    mu0 = t / m
    su = 0.0
    ss = 0.0
    for b in range(nb):
        a, c = _dev_block(blk(xr, b, block), s, mu0)
        su += a
        ss += c
    return Channel(s, mu0 + su / m, max(ss - su * su / m, 0.0), scaled_lam(lam, s))


@njit(fastmath=RED, inline="always", **NB)
def shifted_moments(x0, s1, s2, m):
    """``(mu, S2)`` of ``m`` values from the sums ``s1``, ``s2`` of ``v = x - x0`` and
    ``v**2`` (``S2`` clamped at 0: a constant row gets exactly 0)."""
    return x0 + s1 / m, max(s2 - s1 * s1 / m, 0.0)


@njit(**NB)
def row_stats_f32(x2, c, m):
    """``(mu, S2)`` of float32 row ``c`` of the C-contiguous ``x2`` in one pass.

    Float64 sums of ``v = x - x[0]`` (exact in float64) and ``v**2``
    (:func:`~.simd_sums.moments_f32`): shifting by a value of the channel keeps
    ``S2 = sum v**2 - (sum v)**2 / m`` well conditioned, since
    ``(x[0] - mu)**2 <= S2`` (relative error at most ~``m * eps``).  A constant channel
    gets ``mu`` exactly and ``S2 = 0`` (reference step 2's guarantees).
    """
    x0 = x2[c, 0]
    s1, s2 = moments_f32(x2, c * m, m, x0)
    return shifted_moments(np.float64(x0), s1, s2, m)


@njit(**NB)
def row_stats_go_f32(x2, g2, c, m):
    """``(mu, S2, sum |go|)`` of float32 row ``c``: the sums of :func:`row_stats_f32`
    (the same bits) and, in the same loop (:func:`~.simd_sums.moments_abs_f32`), the
    float32 sum of ``|g2[c]|`` that the backward's range check reads
    (:func:`~.backward_f32.bw_sums_ok`).  Reading ``grad_out`` in this pass brings
    it to cache for the terms: 0.90-0.98x the grouped backward's time of summing
    it in the sums pass, measured at 49-3136 neurons."""
    x0 = x2[c, 0]
    s1, s2, sg = moments_abs_f32(x2, g2, c * m, m, x0)
    mu, var_sum = shifted_moments(np.float64(x0), s1, s2, m)
    return mu, var_sum, sg


@njit(**NB)
def add_parts(part, c):
    """``(sum_b part[c, b, 0], sum_b part[c, b, 1])``: channel ``c``'s two partial
    sums added in block order."""
    a = 0.0
    q = 0.0
    for b in range(part.shape[1]):
        a += part[c, b, 0]
        q += part[c, b, 1]
    return a, q


@njit(parallel=True, **NB)
def _block_parts(x2, block, scale, mu0, first, part):
    """Per (channel ``c``, block ``b``) work item, in parallel: ``part[c, b]`` =
    :func:`_sum_block` of the block (``first``), else :func:`_dev_block` with the
    channel's ``scale[c]`` and ``mu0[c]``."""
    nb = part.shape[1]
    for w in prange(x2.shape[0] * nb):
        c = w // nb
        b = w - c * nb
        if first:
            p, q = _sum_block(blk(x2[c], b, block))
        else:
            p, q = _dev_block(blk(x2[c], b, block), scale[c], mu0[c])
        part[c, b, 0] = p
        part[c, b, 1] = q


@njit(parallel=True, **NB)
def split_stats(x2, block):
    """Per-channel arrays ``(s, mu, S2)`` of :func:`row_stats`, with every pass
    parallel over (channel, block) work items and the partial sums added in block
    order."""
    nc, m = x2.shape
    nb = nblocks(m, block)
    part = np.empty((nc, nb, 2))
    _block_parts(x2, block, np.ones(nc), np.zeros(nc), True, part)
    scale = np.empty(nc)
    mu0 = np.empty(nc)
    for c in prange(nc):
        t, q = add_parts(part, c)
        s = _scale_for(x2[c], q)
        if s != 1.0:
            t = 0.0
            for b in range(nb):
                t += _sum_block_scaled(blk(x2[c], b, block), s)
        scale[c] = s
        mu0[c] = t / m
    _block_parts(x2, block, scale, mu0, False, part)
    mu = np.empty(nc)
    s2 = np.empty(nc)
    for c in range(nc):
        su, ss = add_parts(part, c)
        mu[c] = mu0[c] + su / m
        s2[c] = max(ss - su * su / m, 0.0)
    return scale, mu, s2
