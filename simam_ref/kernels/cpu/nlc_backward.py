"""Channels-last float32 backward (layout and lanes as :mod:`.nlc`): the paper
method in float32 SIMD where :func:`~.backward_f32.fast_bw32` and
:func:`~.backward_f32.bw_sums_ok` allow, else the float64 element math of
:func:`~.backward.bw_elem`, one lane per channel in both."""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ...constants import LAM_FLOOR
from .backward import bw_elem, bw_val, exp32_ok
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
def _kept(gv, g, qa):
    """``go g + q alpha`` (``gv = go``, ``g`` the gain): the part of a neuron's float32
    gradient that does not need the channel sums, one FMA.  Spelled out because a
    function's ``contract`` flag reaches every function compiled into it, and LLVM
    fuses a product into an addition only where the product has no other use: the
    loop that also sums ``q alpha`` and the one that does not could otherwise round
    it differently."""
    return fma(gv, g, qa)


@njit(fastmath=ELEM, **NB)
def _grad(kept, u, p1m, p2):
    """A neuron's float32 gradient ``(kept - mean(q alpha)) - u sum(q beta)`` from
    :func:`_kept`; the last step one FMA whichever loop it is compiled into, so the
    output pass that reads ``kept`` back and the one that recomputes it agree."""
    return fma(-u, p2, kept - p1m)


@njit(inline="always", **NB)
def _f32_of(sp, c):
    """The :data:`~.base.FastBw32` of channel ``c`` from rows 0-4 of ``sp``."""
    return FastBw32(sp[0, c], sp[1, c], sp[2, c], sp[3, c], sp[4, c])


@njit(fastmath=ELEM, **NB)
def _sums_row(xf, gf, u, t, sp, sc):
    """Add neuron row ``u``'s float32 ``q alpha``, ``q beta`` of every channel to the
    float64 sums in rows 3-4 of ``sc``, and ``|go|`` to the float32 sums in row 9 of
    ``sp`` (only a range check reads them, :func:`~.backward_f32.bw_sums_ok`: 0.70-1.03x
    the backward's time with a float64 sum, median 0.95x, at 49-3136 neurons).  The terms first
    (stores only, into rows 7-8 of ``sp``: 8 lanes wide), then the sums (the same
    additions, in the same order, as one fused loop, which float64 accumulators
    would hold to 4 lanes).  Twin :func:`_sums_row_keep` also stores the kept terms
    (so neither loop has a branch).  Called once a row for wide tiles; nested twins
    of the row functions: in :func:`_fast_lanes`."""
    for c in range(t):
        uc = u + np.uint64(c)
        _, qa, qb, _ = bw_fast_f32(xf[uc], gf[uc], _f32_of(sp, c))
        sp[7, c] = qa
        sp[8, c] = qb
    for c in range(t):
        sc[3, c] += np.float64(sp[7, c])
        sc[4, c] += np.float64(sp[8, c])
        sp[9, c] += abs(gf[u + np.uint64(c)])


@njit(fastmath=ELEM, **NB)
def _sums_row_keep(xf, gf, of, u, t, sp, sc):
    """:func:`_sums_row` that also stores each neuron's :func:`_kept` in ``of``."""
    for c in range(t):
        uc = u + np.uint64(c)
        gv = gf[uc]
        g, qa, qb, _ = bw_fast_f32(xf[uc], gv, _f32_of(sp, c))
        sp[7, c] = qa
        sp[8, c] = qb
        of[uc] = _kept(gv, g, qa)
    for c in range(t):
        sc[3, c] += np.float64(sp[7, c])
        sc[4, c] += np.float64(sp[8, c])
        sp[9, c] += abs(gf[u + np.uint64(c)])


@njit(fastmath=ELEM, **NB)
def _out_row_x(wx, gf, u, t, sp):
    """Gradients of neuron row ``u`` written over ``x`` (``wx``), with
    ``mean(q alpha)``, ``sum(q beta)`` in rows 5-6 of ``sp`` (twin
    :func:`_out_row_g`; as :func:`.backward.bw_out`'s alias loops)."""
    for c in range(t):
        uc = u + np.uint64(c)
        gv = gf[uc]
        g, qa, _, uu = bw_fast_f32(wx[uc], gv, _f32_of(sp, c))
        wx[uc] = _grad(_kept(gv, g, qa), uu, sp[5, c], sp[6, c])


@njit(fastmath=ELEM, **NB)
def _out_row_g(xf, wg, u, t, sp):
    """:func:`_out_row_x` written over ``grad_out`` (``wg``)."""
    for c in range(t):
        uc = u + np.uint64(c)
        gv = wg[uc]
        g, qa, _, uu = bw_fast_f32(xf[uc], gv, _f32_of(sp, c))
        wg[uc] = _grad(_kept(gv, g, qa), uu, sp[5, c], sp[6, c])


@njit(fastmath=ELEM, **NB)
def _fast_lanes(xf, gf, of, tl, alias, sc, sp, row_call):
    """Sums and output of the float32 paper backward of tile ``tl`` given each
    channel's :data:`~.base.FastBw32` fields in rows 0-4 of ``sp`` (rows 5-9 are
    scratch); False when a channel's sums fail :func:`~.backward_f32.bw_sums_ok`
    (``of`` then holds each neuron's kept term, or nothing new when it is ``x`` or
    ``g``; the float64 fallback overwrites every output).  A call of a row function
    per neuron row when the tile has at least ``row_call`` channels
    (:data:`~simam_ref.constants.NLC_ROW_CALL`), else nested twins of them.

    When ``of`` is neither input (``alias == 0``) the sums pass also stores each
    neuron's :func:`_kept` in ``of``, and the output pass finishes it from ``x``
    alone: the costly ``exp`` and division run once a neuron instead of twice."""
    t = tl.t
    muh, mul, kk, a2, b8 = sp[0, :t], sp[1, :t], sp[2, :t], sp[3, :t], sp[4, :t]
    p1, p2, sg = sc[3, :t], sc[4, :t], sp[9, :t]
    p1m, p2f, ta, tb = sp[5, :t], sp[6, :t], sp[7, :t], sp[8, :t]
    for c in range(t):
        p1[c] = 0.0
        p2[c] = 0.0
        sg[c] = 0.0
    call = t >= row_call
    if call:  # row loops with calls apart from those without (as .nlc._fwd_lanes)
        for i in range(tl.m):
            u = np.uint64(tl.base + i * tl.stride)
            if alias == 0:
                _sums_row_keep(xf, gf, of, u, t, sp, sc)
            else:
                _sums_row(xf, gf, u, t, sp, sc)
    else:
        # twins of the row functions, nested in the row loop: passing arrays to a
        # function Numba inlines costs reference counting in every row
        for i in range(tl.m):
            u = np.uint64(tl.base + i * tl.stride)
            if alias == 0:
                for c in range(t):
                    uc = u + np.uint64(c)
                    gv = gf[uc]
                    g, qa, qb, _ = bw_fast_f32(xf[uc], gv, FastBw32(muh[c], mul[c], kk[c],
                                                                    a2[c], b8[c]))
                    ta[c] = qa
                    tb[c] = qb
                    of[uc] = _kept(gv, g, qa)
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
                sg[c] += abs(gf[u + np.uint64(c)])
    for c in range(t):
        if not bw_sums_ok(p1[c], p2[c], np.float64(sg[c]), tl.m):
            return False
        p1m[c] = np.float32(p1[c] / tl.m)
        p2f[c] = np.float32(p2[c])
    wx = writable_alias(xf, of)
    wg = writable_alias(gf, of)
    if alias == 0:  # finish the kept terms (float64 counterpart: the end of _tile)
        for i in range(tl.m):
            u = np.uint64(tl.base + i * tl.stride)
            for c in range(t):
                uc = u + np.uint64(c)
                uu = (xf[uc] - muh[c]) - mul[c]  # as bw_fast_f32's u
                of[uc] = _grad(of[uc], uu, p1m[c], p2f[c])
    elif call:  # over x or g: the kept term recomputed
        for i in range(tl.m):
            u = np.uint64(tl.base + i * tl.stride)
            if alias == 1:
                _out_row_x(wx, gf, u, t, sp)
            else:
                _out_row_g(xf, wg, u, t, sp)
    else:
        for i in range(tl.m):  # twins of _out_row_x, _out_row_g (as the sums above)
            u = np.uint64(tl.base + i * tl.stride)
            if alias == 1:
                for c in range(t):
                    uc = u + np.uint64(c)
                    gv = gf[uc]
                    g, qa, _, uu = bw_fast_f32(wx[uc], gv, FastBw32(muh[c], mul[c], kk[c],
                                                                    a2[c], b8[c]))
                    wx[uc] = _grad(_kept(gv, g, qa), uu, p1m[c], p2f[c])
            else:
                for c in range(t):
                    uc = u + np.uint64(c)
                    gv = wg[uc]
                    g, qa, _, uu = bw_fast_f32(xf[uc], gv, FastBw32(muh[c], mul[c], kk[c],
                                                                    a2[c], b8[c]))
                    wg[uc] = _grad(_kept(gv, g, qa), uu, p1m[c], p2f[c])
    return True


@njit(**NB)
def _fast_tile(xf, gf, of, tl, lam, alias, mu, s2, sc, sp, row_call):
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
    return _fast_lanes(xf, gf, of, tl, alias, sc, sp, row_call)


@njit(fastmath=ELEM, **NB)
def _sums64(xf, gf, tl, row, lam, exact, sc, like):
    """``mean(q alpha)``, ``sum(q beta)`` (rows 4, 5 of ``sc``) of every channel of
    tile ``tl`` from :func:`~.backward.bw_elem` (``exp`` at ``like``'s precision), in
    neuron order; ``mu``, ``S2``, ``k`` in rows 0, 2, 3."""
    t = tl.t
    mu, s2, k, p1, p2 = sc[0, :t], sc[2, :t], sc[3, :t], sc[4, :t], sc[5, :t]
    for i in range(tl.m):
        u = np.uint64(tl.base + i * tl.stride)
        for c in range(t):
            uc = u + np.uint64(c)
            _, qa, qb, _ = bw_elem(xf[uc], gf[uc], ChannelK(1.0, mu[c], s2[c], lam, k[c]), row,
                                   exact, like)
            p1[c] += qa
            p2[c] += qb
    for c in range(t):
        p1[c] /= tl.m


@njit(**NB)
def _tile64(xf, gf, of, tl, lam, exact, alias, sc, like):
    """Float64 element math of tile ``tl`` (``exp`` at ``like``'s precision): every
    channel's sums, then every output (reads only ``x`` and ``g`` before writing)."""
    t = tl.t
    row = row_consts(tl.m)
    mu, s2, k, p1, p2 = sc[0, :t], sc[2, :t], sc[3, :t], sc[4, :t], sc[5, :t]
    for c in range(t):
        k[c] = paper_k(Channel(1.0, mu[c], s2[c], lam), row)
        p1[c] = 0.0
        p2[c] = 0.0
    _sums64(xf, gf, tl, row, lam, exact, sc, like)
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
                                exact, Sums(p1[c], p2[c]), like)
        elif alias == 2:
            for c in range(t):
                uc = u + np.uint64(c)
                wg[uc] = bw_val(xf[uc], wg[uc], ChannelK(1.0, mu[c], s2[c], lam, k[c]), row,
                                exact, Sums(p1[c], p2[c]), like)
        else:
            for c in range(t):
                uc = u + np.uint64(c)
                of[uc] = bw_val(xf[uc], gf[uc], ChannelK(1.0, mu[c], s2[c], lam, k[c]), row,
                                exact, Sums(p1[c], p2[c]), like)


@njit(**NB)
def _tile(xf, gf, of, tl, lam, exact, alias, sc, sp, row_call, column_min):
    """Backward of the channels of tile ``tl`` (float32, channels-last, flat arrays
    as in :mod:`.nlc`): :func:`_fast_tile` where it applies, else :func:`_tile64`,
    with the float32 ``exp`` when every channel of the tile passes
    :func:`~.backward.exp32_ok`; scratch ``sc`` float64 ``(6, >= t)``, ``sp`` float32
    ``(10, >= t)``."""
    mu, s2 = nlc_stats(xf, tl, sc, column_min)
    if not exact and _fast_tile(xf, gf, of, tl, lam, alias, mu, s2, sc, sp, row_call):
        return
    near = True
    for c in range(tl.t):
        near = near and exp32_ok(mu[c], s2[c], tl.m)
    if near:
        _tile64(xf, gf, of, tl, lam, exact, alias, sc, np.float32(0.0))
    else:
        _tile64(xf, gf, of, tl, lam, exact, alias, sc, 0.0)


@njit(parallel=True, **NB)
def backward_nlc_f32(x3, g3, lam, exact, out3, width, alias, row_call, column_min):
    """Channels-last backward: ``prange`` over (batch item, tile of ``width`` channels);
    ``row_call`` as :func:`_fast_lanes`, ``column_min`` as :func:`~.nlc.nlc_stats`."""
    nb, m, nc = x3.shape
    nt = nblocks(nc, width)
    lam_s = max(lam, LAM_FLOOR)
    xf = x3.reshape(-1)
    gf = g3.reshape(-1)
    of = out3.reshape(-1)
    for w in prange(nb * nt):
        t = min(width, nc)
        _tile(xf, gf, of, tile_of(w, nt, m, nc, width), lam_s, exact, alias,
              np.empty((6, t)), np.empty((10, t), np.float32), row_call, column_min)
