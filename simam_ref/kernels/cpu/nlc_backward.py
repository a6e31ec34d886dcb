"""Channels-last float32 backward (layout and lanes as :mod:`.nlc`): the paper
method in float32 SIMD where :func:`~.backward_f32.fast_bw32` and
:func:`~.backward_f32.bw_sums_ok` allow, else the float64 element math of
:func:`~.backward.bw_elem`, one lane per channel in both."""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ...constants import LAM_FLOOR
from .backward import bw_elem, bw_val
from .backward_f32 import bw_fast_f32, bw_sums_ok, fast_bw32
from .base import (
    ELEM,
    NB,
    Channel,
    ChannelK,
    FastBw32,
    Sums,
    fma,
    nblocks,
    paper_k,
    row_consts,
    writable_alias,
)
from .nlc import nlc_stats, tile_of


@njit(inline="always", **NB)
def _kept(gg, qa):
    """``go g + q alpha``: the part of a neuron's float32 gradient that does not need
    the channel sums.  No ``contract``: LLVM fuses a product into an addition only
    where the product has no other use, which differs between the loop that also
    sums ``q alpha`` and the one that does not; this keeps both at one rounding of
    the rounded ``q alpha``."""
    return gg + qa


@njit(fastmath=ELEM, **NB)
def _grad(kept, u, p1m, p2):
    """A neuron's float32 gradient ``(kept - mean(q alpha)) - u sum(q beta)`` from
    :func:`_kept`; the last step one FMA whichever loop it is compiled into, so the
    output pass that reads ``kept`` back and the one that recomputes it agree."""
    return fma(-u, p2, kept - p1m)


@njit(fastmath=ELEM, **NB)
def _fast_lanes(xf, gf, of, tl, alias, sc, sp):
    """Sums and output of the float32 paper backward of tile ``tl`` given each
    channel's :data:`~.base.FastBw32` fields in rows 0-4 of ``sp`` (rows 5-8 are
    scratch); False when a channel's sums fail :func:`~.backward_f32.bw_sums_ok`
    (``of`` then holds each neuron's kept term, or nothing new when it is ``x`` or
    ``g``; the float64 fallback overwrites every output).

    When ``of`` is neither input (``alias == 0``) the sums pass also stores each
    neuron's :func:`_kept` in ``of``, and the output pass finishes it from ``x``
    alone: the costly ``exp`` and division run once a neuron instead of twice."""
    t = tl.t
    muh, mul, kk, a2, b8 = sp[0, :t], sp[1, :t], sp[2, :t], sp[3, :t], sp[4, :t]
    p1, p2, sg = sc[3, :t], sc[4, :t], sc[5, :t]
    for c in range(t):
        p1[c] = 0.0
        p2[c] = 0.0
        sg[c] = 0.0
    ta, tb = sp[7, :t], sp[8, :t]
    for i in range(tl.m):
        u = np.uint64(tl.base + i * tl.stride)
        # the float32 terms of neuron i of every channel (stores only: 8 lanes wide),
        # then their float64 sums (the same additions, in the same order, as one
        # fused loop, which float64 accumulators would hold to 4 lanes); two loops,
        # with and without the kept store, so neither has a branch in its body
        if alias == 0:
            for c in range(t):
                uc = u + np.uint64(c)
                gg, qa, qb, _ = bw_fast_f32(xf[uc], gf[uc], FastBw32(muh[c], mul[c], kk[c],
                                                                     a2[c], b8[c]))
                ta[c] = qa
                tb[c] = qb
                of[uc] = _kept(gg, qa)
        else:
            for c in range(t):
                uc = u + np.uint64(c)
                _, qa, qb, _ = bw_fast_f32(xf[uc], gf[uc], FastBw32(muh[c], mul[c], kk[c],
                                                                    a2[c], b8[c]))
                ta[c] = qa
                tb[c] = qb
        for c in range(t):
            p1[c] += np.float64(ta[c])
            p2[c] += np.float64(tb[c])
            sg[c] += np.float64(abs(gf[u + np.uint64(c)]))
    p1m, p2f = sp[5, :t], sp[6, :t]
    for c in range(t):
        if not bw_sums_ok(p1[c], p2[c], sg[c], tl.m):
            return False
        p1m[c] = np.float32(p1[c] / tl.m)
        p2f[c] = np.float32(p2[c])
    wx = writable_alias(xf, of)
    wg = writable_alias(gf, of)
    # three alias loops (as in backward.bw_out): over x and over g recompute the kept
    # term; a separate output finishes the one the sums pass stored (float64
    # counterpart: the end of _tile)
    for i in range(tl.m):
        u = np.uint64(tl.base + i * tl.stride)
        if alias == 1:
            for c in range(t):
                uc = u + np.uint64(c)
                f = FastBw32(muh[c], mul[c], kk[c], a2[c], b8[c])
                gg, qa, _, uu = bw_fast_f32(wx[uc], gf[uc], f)
                wx[uc] = _grad(_kept(gg, qa), uu, p1m[c], p2f[c])
        elif alias == 2:
            for c in range(t):
                uc = u + np.uint64(c)
                f = FastBw32(muh[c], mul[c], kk[c], a2[c], b8[c])
                gg, qa, _, uu = bw_fast_f32(xf[uc], wg[uc], f)
                wg[uc] = _grad(_kept(gg, qa), uu, p1m[c], p2f[c])
        else:
            for c in range(t):
                uc = u + np.uint64(c)
                uu = (xf[uc] - muh[c]) - mul[c]  # as bw_fast_f32's u
                of[uc] = _grad(of[uc], uu, p1m[c], p2f[c])
    return True


@njit(**NB)
def _fast_tile(xf, gf, of, tl, lam, alias, mu, s2, sc, sp):
    """Float32 paper backward of tile ``tl`` (:func:`~.backward_f32.bw_fast_f32`, a
    lane per channel); False when a channel fails :func:`~.backward_f32.fast_bw32`
    or its sums fail (the caller then runs float64, which writes every output and
    reads only ``x`` and ``g``)."""
    row = row_consts(tl.m)
    for c in range(tl.t):
        ok, f = fast_bw32(mu[c], s2[c], lam, row)
        if not ok:
            return False
        sp[0, c] = f.mu_hi
        sp[1, c] = f.mu_lo
        sp[2, c] = f.kk
        sp[3, c] = f.a2
        sp[4, c] = f.b8
    return _fast_lanes(xf, gf, of, tl, alias, sc, sp)


@njit(fastmath=ELEM, **NB)
def _sums64(xf, gf, tl, row, lam, exact, sc):
    """``mean(q alpha)``, ``sum(q beta)`` (rows 4, 5 of ``sc``) of every channel of
    tile ``tl`` from :func:`~.backward.bw_elem`, in neuron order; ``mu``, ``S2``, ``k``
    in rows 0, 2, 3."""
    t = tl.t
    mu, s2, k, p1, p2 = sc[0, :t], sc[2, :t], sc[3, :t], sc[4, :t], sc[5, :t]
    for i in range(tl.m):
        u = np.uint64(tl.base + i * tl.stride)
        for c in range(t):
            uc = u + np.uint64(c)
            _, qa, qb, _ = bw_elem(xf[uc], gf[uc], ChannelK(1.0, mu[c], s2[c], lam, k[c]), row,
                                   exact)
            p1[c] += qa
            p2[c] += qb
    for c in range(t):
        p1[c] /= tl.m


@njit(**NB)
def _tile(xf, gf, of, tl, lam, exact, alias, sc, sp):
    """Backward of the channels of tile ``tl`` (float32, channels-last, flat arrays
    as in :mod:`.nlc`): :func:`_fast_tile` where it applies, else float64 element
    math; scratch ``sc`` float64 ``(6, >= t)``, ``sp`` float32 ``(9, >= t)``."""
    t = tl.t
    row = row_consts(tl.m)
    mu, s2 = nlc_stats(xf, tl, sc)
    if not exact and _fast_tile(xf, gf, of, tl, lam, alias, mu, s2, sc, sp):
        return
    k, p1, p2 = sc[3, :t], sc[4, :t], sc[5, :t]
    for c in range(t):
        k[c] = paper_k(Channel(1.0, mu[c], s2[c], lam), row)
        p1[c] = 0.0
        p2[c] = 0.0
    _sums64(xf, gf, tl, row, lam, exact, sc)
    wx = writable_alias(xf, of)
    wg = writable_alias(gf, of)
    # three alias twin loops (as in backward.bw_out); float32 counterpart: the end
    # of _fast_lanes
    for i in range(tl.m):
        u = np.uint64(tl.base + i * tl.stride)
        if alias == 1:
            for c in range(t):
                uc = u + np.uint64(c)
                wx[uc] = bw_val(wx[uc], gf[uc], ChannelK(1.0, mu[c], s2[c], lam, k[c]), row,
                                exact, Sums(p1[c], p2[c]))
        elif alias == 2:
            for c in range(t):
                uc = u + np.uint64(c)
                wg[uc] = bw_val(xf[uc], wg[uc], ChannelK(1.0, mu[c], s2[c], lam, k[c]), row,
                                exact, Sums(p1[c], p2[c]))
        else:
            for c in range(t):
                uc = u + np.uint64(c)
                of[uc] = bw_val(xf[uc], gf[uc], ChannelK(1.0, mu[c], s2[c], lam, k[c]), row,
                                exact, Sums(p1[c], p2[c]))


@njit(parallel=True, **NB)
def backward_nlc_f32(x3, g3, lam, exact, out3, width, alias):
    """Channels-last backward: ``prange`` over (batch item, tile of ``width`` channels)."""
    nb, m, nc = x3.shape
    nt = nblocks(nc, width)
    lam_s = max(lam, LAM_FLOOR)
    xf = x3.reshape(-1)
    gf = g3.reshape(-1)
    of = out3.reshape(-1)
    for w in prange(nb * nt):
        t = min(width, nc)
        _tile(xf, gf, of, tile_of(w, nt, m, nc, width), lam_s, exact, alias,
              np.empty((6, t)), np.empty((9, t), np.float32))
