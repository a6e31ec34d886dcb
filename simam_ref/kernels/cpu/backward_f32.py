"""float32 paper backward of the channel path (rows longer than
``constants.FLAT_BW_MAX_M``; shorter rows run :mod:`.grouped_backward`), in float32 SIMD.

With ``z = u kk`` (``kk = sqrt(k)``, as the forward's fast loop), ``E = z**2 + 1/2``,
``q alpha = q z (2 kk)``, ``q beta = q z**2 (8 kk**2 / n)``: every per-neuron value
in float32 SIMD (8 lanes on AVX2 instead of 4 in float64), the two channel sums
accumulated in float64.  Channels near float32's range limits or more than
``constants.BW_OFFSET_LIM`` standard deviations off 0, sums that fail
:func:`bw_sums_ok`, and the exact method fall back to :mod:`.backward`.
"""

from __future__ import annotations

import math
from collections import namedtuple

import numpy as np
from numba import njit, prange

from ...constants import LAM_FLOOR
from .backward import bw_channel, exp32_ok
from .base import (
    ELEM,
    FAST_LIM,
    HALF32,
    NB,
    ONE32,
    RED,
    Channel,
    FastBw32,
    fma,
    row_consts,
    split_mu,
    with_k,
    writable_alias,
)
from .fastexp import exp_neg_f32
from .stats import row_stats_f32


@njit(fastmath=ELEM, inline="always", **NB)
def gain_q_f32(xv, gv, z):
    """float32 ``(g, q)`` of one neuron from its ``z = (x - mu) kk``: the gain ``g =
    sigmoid(E)`` with ``E = z**2 + 1/2`` (one FMA) and ``q = go x g (1 - g)``; the
    per-neuron core of every float32 backward (:func:`_gain_q`, and
    :func:`.grouped_backward._terms_flat` from a kept ``z``)."""
    t = exp_neg_f32(fma(z, z, HALF32))
    g = ONE32 / (ONE32 + t)
    return g, gv * xv * g * (t * g)


@njit(fastmath=ELEM, inline="always", **NB)
def _gain_q(xv, gv, f):
    """float32 ``(u, z, g, q)`` of one neuron of the channel with
    :data:`~.base.FastBw32` ``f``: ``u = x - mu``, ``z = u kk`` and
    :func:`gain_q_f32`."""
    u = (xv - f.mu_hi) - f.mu_lo
    z = u * f.kk
    g, q = gain_q_f32(xv, gv, z)
    return u, z, g, q


@njit(fastmath=ELEM, inline="always", **NB)
def bw_fast_f32(xv, gv, f):
    """float32 ``(g, q alpha, q beta, u)`` of one neuron (paper method) of the
    channel with :data:`~.base.FastBw32` ``f``; ``g = sigmoid(E)`` is the gain
    (``go g`` is the gradient's first term).  Twins: :func:`.backward.bw_elem`
    (float64), :func:`.grouped_backward._terms_flat` (from a kept ``z``) and
    :func:`bw_terms_f32` (without the row factors)."""
    u, z, g, q = _gain_q(xv, gv, f)
    return g, q * z * f.a2, q * (z * z) * f.b8, u


@njit(fastmath=ELEM, inline="always", **NB)
def bw_terms_f32(xv, gv, f):
    """float32 ``(g, q z, z, u)`` of one neuron: :func:`bw_fast_f32` without the row
    factors, for callers that apply them once a channel (``q alpha = (q z) a2``,
    ``sum(q beta) = b8 sum((q z) z)``, a product of two float32 values, exact in
    float64; ``f.a2`` and ``f.b8`` are not read)."""
    u, z, g, q = _gain_q(xv, gv, f)
    return g, q * z, z, u


@njit(**NB)
def fast_bw32(mu, s2, lam, row):
    """``(ok, f)``: the :data:`~.base.FastBw32` ``f`` of a float32 channel and whether
    it may run the float32 backward: ``|mu|, sqrt(S2) < FAST_LIM``, ``1/den``
    (``den = 4 (S2/n + lam)``) squared inside float32's normal range, and ``|mu|`` at
    most :data:`~simam_ref.constants.BW_OFFSET_LIM` standard deviations
    (:func:`~.backward.exp32_ok`; a constant channel only at ``mu = 0``)."""
    den = 4.0 * (s2 / row.n + lam)
    ok = (abs(mu) < FAST_LIM and s2 < FAST_LIM * FAST_LIM and 2.0**-60 < den < 2.0**60
          and exp32_ok(mu, s2, row.m))
    mu_hi, mu_lo = split_mu(mu)
    kk = 1.0 / math.sqrt(den)
    return ok, FastBw32(mu_hi, mu_lo, np.float32(kk), np.float32(2.0 * kk),
                        np.float32(8.0 * kk * kk / row.n))


@njit(**NB)
def bw_sums_ok(p1, p2, sg, m):
    """Whether the float32 sums are trustworthy: finite (no float32 overflow) and
    ``mean |go|`` far from float32's overflow and underflow (or exactly 0).  Callers
    sum ``|go|`` (``sg``) in float32: this is a range check, and a sum that overflowed
    to ``inf`` fails it as the float64 sum's mean above ``2**60`` would."""
    gm = sg / m
    return math.isfinite(p1) and math.isfinite(p2) and (gm == 0.0 or 2.0**-60 < gm < 2.0**60)


@njit(fastmath=ELEM, **NB)
def _terms(xb, gb, f, ta, tb):
    """Per neuron ``i`` of the block ``xb`` (``grad_out`` ``gb``): ``ta[i] = q alpha``,
    ``tb[i] = q beta`` (stores only: a loop with no reduction vectorises 8 lanes wide;
    the float64 sums would make it 4)."""
    for i in range(xb.shape[0]):
        _, qa, qb, _ = bw_fast_f32(xb[i], gb[i], f)
        ta[i] = qa
        tb[i] = qb


@njit(fastmath=RED, **NB)
def _block_sums(gb, ta, tb):
    """``(sum(ta), sum(tb), sum(|gb|))``, the first two summed in float64, the last in
    float32: only the range check of :func:`bw_sums_ok` reads it (a float32 overflow
    gives ``inf``, which fails it); 0.92-0.98x the row's time of a float64 sum,
    measured at 784-12544 neurons."""
    p1 = 0.0
    p2 = 0.0
    sg = np.float32(0.0)
    for i in range(gb.shape[0]):
        p1 += np.float64(ta[i])
        p2 += np.float64(tb[i])
        sg += abs(gb[i])
    return p1, p2, np.float64(sg)


@njit(**NB)
def _sums_fast(xb, gb, f, ta, tb):
    """``sum(q alpha)``, ``sum(q beta)`` and ``sum(|go|)`` of one row (float64; a
    block's ``|go|`` summed in float32, see :func:`_block_sums`), in blocks of
    ``ta``'s length: :func:`_terms` stores a block's terms in L1 scratch,
    :func:`_block_sums` adds them (1.8x faster than one fused loop, measured at
    3136 neurons)."""
    m = xb.shape[0]
    w = ta.shape[0]
    p1 = 0.0
    p2 = 0.0
    sg = 0.0
    for lo in range(0, m, w):
        hi = min(lo + w, m)
        n = hi - lo
        _terms(xb[lo:hi], gb[lo:hi], f, ta[:n], tb[:n])
        a, b, c = _block_sums(gb[lo:hi], ta[:n], tb[:n])
        p1 += a
        p2 += b
        sg += c
    return p1, p2, sg


@njit(fastmath=ELEM, **NB)
def _out_fast(xb, gb, ob, f, p1m, p2, alias):
    """Output of one row from :func:`bw_fast_f32` (``alias`` as
    :func:`.backward.bw_out`, whose three loops these twin)."""
    if alias == 1:
        wx = writable_alias(xb, ob)
        for i in range(xb.shape[0]):
            gv = gb[i]
            g, qa, _, u = bw_fast_f32(wx[i], gv, f)
            wx[i] = gv * g + qa - p1m - u * p2
    elif alias == 2:
        wg = writable_alias(gb, ob)
        for i in range(xb.shape[0]):
            gv = wg[i]
            g, qa, _, u = bw_fast_f32(xb[i], gv, f)
            wg[i] = gv * g + qa - p1m - u * p2
    else:
        for i in range(xb.shape[0]):
            gv = gb[i]
            g, qa, _, u = bw_fast_f32(xb[i], gv, f)
            ob[i] = gv * g + qa - p1m - u * p2


@njit(**NB)
def bw_row_f32(x2, g2, out2, c, row, lam, exact, alias, sc):
    """Backward of float32 row ``c`` with the :data:`Scratch` ``sc``: the float32
    sums pass, then the output pass (which evaluates the element math again)."""
    m = row.m
    xr = x2[c]
    gr = g2[c]
    orow = out2[c]
    mu, s2 = row_stats_f32(x2, c, m)
    if not exact:
        ok, f = fast_bw32(mu, s2, lam, row)
        if ok:
            p1, p2, sg = _sums_fast(xr, gr, f, sc.ta, sc.tb)
            if bw_sums_ok(p1, p2, sg, m):
                _out_fast(xr, gr, orow, f, np.float32(p1 / m), np.float32(p2), alias)
                return
    bw_channel(xr, gr, orow, with_k(Channel(1.0, mu, s2, lam), row), row, exact, m, alias)


#: Scratch of one work item of the float32 backward: a block's terms ``ta``, ``tb``.
Scratch = namedtuple("Scratch", ["ta", "tb"])


@njit(parallel=True, **NB)
def backward_channels_f32(x2, g2, lam, exact, out2, alias, chunk, block):
    """Channel path of the float32 backward (rows longer than
    ``constants.FLAT_BW_MAX_M``, and the exact method): ``prange`` over chunks of
    ``chunk`` channels (scheduling only: every channel's bits are its own), each with
    one :data:`Scratch`; the sums run in blocks of ``block`` neurons."""
    nc, m = x2.shape
    lam_s = max(lam, LAM_FLOOR)
    width = max(1, min(m, block))
    nw = (nc + chunk - 1) // chunk
    for w in prange(nw):
        row = row_consts(m)  # in the parfor: numba#4846
        sc = Scratch(np.empty(width, np.float32), np.empty(width, np.float32))
        for c in range(w * chunk, min(nc, (w + 1) * chunk)):
            bw_row_f32(x2, g2, out2, c, row, lam_s, exact, alias, sc)
