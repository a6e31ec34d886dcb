"""Channels-last float32 backward (layout and lanes as :mod:`.nlc`): the paper
method in float32 SIMD where :func:`~.backward_f32.fast_bw32` and
:func:`~.backward_f32.bw_sums_ok` allow, else the float64 element math of
:func:`~.backward.bw_elem`, one lane per channel in both."""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ...constants import LAM_FLOOR
from .backward import bw_elem, bw_val, exp32_ok
from .backward_f32 import bw_sums_ok, bw_terms_f32, fast_bw32
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

#: Per-channel scratch rows (lanes) start ``256 (4 k + 1)`` bytes apart for some
#: ``k``, so any two of up to 16 rows sit a multiple of 256 B apart modulo 4 KiB
#: that is not 0: a load whose address matches a still-buffered store's in its low
#: 12 bits waits for it (4K aliasing).  Rows a multiple of 4 KiB apart (as rows of
#: a multiple of 1024 float32 or 512 float64 lanes are) made the sums loop alone
#: 2.7x slower (0.80 against 0.29 ns a neuron at 2048 lanes, in cache), and the
#: backward 1.23x at 32x1024x14x14 on one thread.
LANE_SKEW = 256


@njit(**NB)
def lane_stride(t, itemsize):
    """Row length, in elements of ``itemsize`` bytes, of a per-channel scratch of at
    least ``t`` lanes whose rows start :data:`LANE_SKEW` bytes past a multiple of
    1 KiB apart."""
    unit = 1024 // itemsize
    skew = LANE_SKEW // itemsize
    return max(0, t - skew + unit - 1) // unit * unit + skew


@njit(inline="always", **NB)
def _kept(gv, g, qz, a2):
    """``go g + q alpha`` (``gv = go``, ``g`` the gain, ``q alpha = (q z) a2``): the
    part of a neuron's float32 gradient that does not need the channel sums, one
    FMA.  Spelled out because a function's ``contract`` flag reaches every function
    compiled into it, and LLVM fuses a product into an addition only where the
    product has no other use: the loop that also sums ``q z`` and the one that does
    not could otherwise round it differently."""
    return fma(qz, a2, gv * g)


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


@njit(fastmath=ELEM, inline="always", **NB)
def _terms_row(xf, gf, of, u, t, sp, r, keep):
    """Neuron row ``u``'s float32 ``q z`` and ``z`` of every channel into rows ``r``,
    ``r + 1`` of ``sp`` (:func:`~.backward_f32.bw_terms_f32`; stores only, so the
    loop runs 16 float32 lanes wide, where float64 sums would hold it to 8), and
    each neuron's :func:`_kept` into ``of`` when ``keep``."""
    for c in range(t):
        uc = u + np.uint64(c)
        gv = gf[uc]
        g, qz, z, _ = bw_terms_f32(xf[uc], gv, _f32_of(sp, c))
        sp[r, c] = qz
        sp[r + 1, c] = z
        if keep:
            of[uc] = _kept(gv, g, qz, sp[3, c])


@njit(fastmath=ELEM, **NB)
def _sums_rows(xf, gf, of, u0, u1, t, sp, sc, keep):
    """Add neuron rows ``u0`` and ``u1`` (``u1 == u0``: row ``u0`` alone) to each
    channel's float64 ``sum(q z)``, ``sum((q z) z)`` in rows 3-4 of ``sc``, and
    ``|go|`` to the float32 sums in row 9 of ``sp`` (only a range check reads them,
    :func:`~.backward_f32.bw_sums_ok`).  Each row's terms first
    (:func:`_terms_row`, into rows 7-8 and 10-11 of ``sp``), then one loop adds both
    rows, in row order, with the sums held in registers between them: half the
    loads and stores of the sums (against a call per row, one process, interleaved,
    ResNet-50 stage shapes: 0.83-0.94x the backward's time on one thread in cache,
    0.91-0.97x on two threads at batch 32).  Called once per two rows for wide
    tiles; nested twins: in :func:`_fast_lanes`."""
    _terms_row(xf, gf, of, u0, t, sp, 7, keep)
    if u1 == u0:
        for c in range(t):
            sc[3, c] += np.float64(sp[7, c])
            sc[4, c] += np.float64(sp[7, c]) * np.float64(sp[8, c])
            sp[9, c] += abs(gf[u0 + np.uint64(c)])
        return
    _terms_row(xf, gf, of, u1, t, sp, 10, keep)
    for c in range(t):
        p1 = sc[3, c] + np.float64(sp[7, c])
        p2 = sc[4, c] + np.float64(sp[7, c]) * np.float64(sp[8, c])
        sg = sp[9, c] + abs(gf[u0 + np.uint64(c)])
        sc[3, c] = p1 + np.float64(sp[10, c])
        sc[4, c] = p2 + np.float64(sp[10, c]) * np.float64(sp[11, c])
        sp[9, c] = sg + abs(gf[u1 + np.uint64(c)])


@njit(fastmath=ELEM, **NB)
def _out_row_x(wx, gf, u, t, sp):
    """Gradients of neuron row ``u`` written over ``x`` (``wx``), with
    ``mean(q alpha)``, ``sum(q beta)`` in rows 5-6 of ``sp`` (twin
    :func:`_out_row_g`; as :func:`.backward.bw_out`'s alias loops)."""
    for c in range(t):
        uc = u + np.uint64(c)
        gv = gf[uc]
        g, qz, _, uu = bw_terms_f32(wx[uc], gv, _f32_of(sp, c))
        wx[uc] = _grad(_kept(gv, g, qz, sp[3, c]), uu, sp[5, c], sp[6, c])


@njit(fastmath=ELEM, **NB)
def _out_row_g(xf, wg, u, t, sp):
    """:func:`_out_row_x` written over ``grad_out`` (``wg``)."""
    for c in range(t):
        uc = u + np.uint64(c)
        gv = wg[uc]
        g, qz, _, uu = bw_terms_f32(xf[uc], gv, _f32_of(sp, c))
        wg[uc] = _grad(_kept(gv, g, qz, sp[3, c]), uu, sp[5, c], sp[6, c])


@njit(fastmath=ELEM, **NB)
def _fast_lanes(xf, gf, of, tl, alias, sc, sp, row_call):
    """Sums and output of the float32 paper backward of tile ``tl`` given each
    channel's :data:`~.base.FastBw32` fields in rows 0-4 of ``sp`` (rows 5-11 are
    scratch); False when a channel's sums fail :func:`~.backward_f32.bw_sums_ok`
    (``of`` then holds each neuron's kept term, or nothing new when it is ``x`` or
    ``g``; the float64 fallback overwrites every output).  A call of
    :func:`_sums_rows` per two neuron rows, and of a row function per row for the
    output, when the tile has at least ``row_call`` channels
    (:data:`~simam_ref.constants.NLC_ROW_CALL`), else nested twins of them, one row
    at a time (the same additions in the same order: the same bits).

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
    keep = alias == 0
    if t >= row_call:  # row loops with calls apart from those without (as .nlc._fwd_lanes)
        for i in range(0, tl.m, 2):
            u = np.uint64(tl.base + i * tl.stride)
            u1 = u + np.uint64(tl.stride) if i + 1 < tl.m else u
            _sums_rows(xf, gf, of, u, u1, t, sp, sc, keep)
    else:
        # twins of _sums_rows for one row, nested in the row loop: passing arrays to
        # a function Numba inlines costs reference counting in every row
        for i in range(tl.m):
            u = np.uint64(tl.base + i * tl.stride)
            if keep:
                for c in range(t):
                    uc = u + np.uint64(c)
                    gv = gf[uc]
                    g, qz, z, _ = bw_terms_f32(xf[uc], gv, FastBw32(muh[c], mul[c], kk[c],
                                                                     a2[c], b8[c]))
                    ta[c] = qz
                    tb[c] = z
                    of[uc] = _kept(gv, g, qz, a2[c])
            else:
                for c in range(t):
                    uc = u + np.uint64(c)
                    _, qz, z, _ = bw_terms_f32(xf[uc], gf[uc], FastBw32(muh[c], mul[c], kk[c],
                                                                         a2[c], b8[c]))
                    ta[c] = qz
                    tb[c] = z
            for c in range(t):
                p1[c] += np.float64(ta[c])
                p2[c] += np.float64(ta[c]) * np.float64(tb[c])
                sg[c] += abs(gf[u + np.uint64(c)])
    ok = True  # every channel's check without an exit: the loop vectorises
    for c in range(t):
        s1 = p1[c] * np.float64(a2[c])
        s2 = p2[c] * np.float64(b8[c])
        ok &= bw_sums_ok(s1, s2, np.float64(sg[c]), tl.m)
        p1m[c] = np.float32(s1 / tl.m)
        p2f[c] = np.float32(s2)
    if not ok:
        return False
    wx = writable_alias(xf, of)
    wg = writable_alias(gf, of)
    if keep:  # finish the kept terms (float64 counterpart: the end of _tile)
        for i in range(tl.m):
            u = np.uint64(tl.base + i * tl.stride)
            for c in range(t):
                uc = u + np.uint64(c)
                uu = (xf[uc] - muh[c]) - mul[c]  # as bw_terms_f32's u
                of[uc] = _grad(of[uc], uu, p1m[c], p2f[c])
    elif t >= row_call:  # over x or g: the kept term recomputed
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
                    g, qz, _, uu = bw_terms_f32(wx[uc], gv, FastBw32(muh[c], mul[c], kk[c],
                                                                     a2[c], b8[c]))
                    wx[uc] = _grad(_kept(gv, g, qz, a2[c]), uu, p1m[c], p2f[c])
            else:
                for c in range(t):
                    uc = u + np.uint64(c)
                    gv = wg[uc]
                    g, qz, _, uu = bw_terms_f32(xf[uc], gv, FastBw32(muh[c], mul[c], kk[c],
                                                                     a2[c], b8[c]))
                    wg[uc] = _grad(_kept(gv, g, qz, a2[c]), uu, p1m[c], p2f[c])
    return True


@njit(**NB)
def _fast_tile(xf, gf, of, tl, lam, alias, mu, s2, sc, sp, row_call):
    """Float32 paper backward of tile ``tl`` (:func:`~.backward_f32.bw_terms_f32`, a
    lane per channel); False when a channel fails :func:`~.backward_f32.fast_bw32`
    or its sums fail (the caller then runs float64, which writes every output and
    reads only ``x`` and ``g``).  Every channel's check runs without an exit, so the
    loop (a square root and divisions a channel) vectorises, as does the sums check
    in :func:`_fast_lanes` (together 0.88-0.90x the backward's time at 7x7)."""
    row = row_consts(tl.m)
    ok = True
    for c in range(tl.t):
        okc, f = fast_bw32(mu[c], s2[c], lam, row)
        ok &= okc
        sp[0, c] = f.mu_hi
        sp[1, c] = f.mu_lo
        sp[2, c] = f.kk
        sp[3, c] = f.a2
        sp[4, c] = f.b8
    return ok and _fast_lanes(xf, gf, of, tl, alias, sc, sp, row_call)


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
    ``(12, >= t)`` (rows :func:`lane_stride` long)."""
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
              np.empty((6, lane_stride(t, 8))), np.empty((12, lane_stride(t, 4)), np.float32),
              row_call, column_min)
