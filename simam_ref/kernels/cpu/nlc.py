"""Channels-last float32 forward: the ``(batch, M, channels)`` memory of an
``(N, H, W, C)`` array as it is.

``x3[b, i, :]`` holds neuron ``i`` of every channel of batch item ``b``, contiguous.
The inner loops run over channels, one SIMD lane per channel: the statistics,
square root and division run for a whole vector of channels at a time, no vector
has a per-channel tail, and each channel's sums still run in neuron order (no
reduction crosses lanes), so the bits depend neither on the tile width nor on the
thread count.  Flat indices are unsigned: no negative-index wraparound, no per-row
views (whose reference counting costs more than a short row of arithmetic).
"""

from __future__ import annotations

from collections import namedtuple

import numpy as np
from numba import njit, prange

from ...constants import LAM_FLOOR
from .base import (
    ELEM,
    NB,
    TINY32,
    Channel,
    Exact32,
    Fast32,
    fast_f32_ok,
    four_var,
    nblocks,
    row_consts,
    writable_alias,
)
from .elements import exact_fast_f32, fast32, paper_fast_f32
from .forward import fwd_block_f32
from .simd_sums import COLUMN_CHUNK, column_moments_f32
from .stats import shifted_moments

#: ``t`` channels of a flat channels-last array: channel ``c < t`` of neuron ``i < m``
#: is at ``base + i * stride + c``.
Tile = namedtuple("Tile", ["base", "stride", "m", "t"])


@njit(**NB)
def tile_of(w, nt, m, nc, width):
    """The :data:`Tile` of work item ``w`` of ``(batch item, tile of width channels)``
    over ``nt`` tiles per batch item of ``nc`` channels and ``m`` neurons."""
    b = w // nt
    c0 = (w - b * nt) * width
    return Tile(b * m * nc + c0, nc, m, min(width, nc - c0))


#: Neuron rows of one block of the channels-last statistics of wide tiles.
COLUMN_ROWS = 16


@njit(fastmath=ELEM, **NB)
def _row_loop_sums(xf, tl, sc):
    """Add each channel's sums of ``v = x - x0`` and ``v**2`` over the neuron rows
    ``1 <= i < m`` of tile ``tl`` to rows 1 and 2 of ``sc`` (``x0`` in row 0): one
    loop over rows, the accumulators in L1."""
    x0, s1, s2 = sc[0, :tl.t], sc[1, :tl.t], sc[2, :tl.t]
    for i in range(1, tl.m):
        u = np.uint64(tl.base + i * tl.stride)
        for c in range(tl.t):
            v = np.float64(xf[u + np.uint64(c)]) - x0[c]
            s1[c] += v
            s2[c] += v * v


@njit(**NB)
def nlc_stats(xf, tl, sc, column_min):
    """``(mu, S2)`` (float64 views of the scratch ``sc`` of shape ``(>= 3, >= t)``) of
    the channels of tile ``tl`` of the flat float32 array ``xf``: one pass over
    ``x - x[neuron 0]``, as :func:`~.stats.row_stats_f32`, each channel's sums a
    running sum over its neurons in order, in its own lane.  Tiles of at least
    ``column_min`` channels (:data:`~simam_ref.constants.NLC_COLUMN_MIN`) keep the
    sums of 32 channels in registers for :data:`COLUMN_ROWS` rows at a time
    (:func:`~.simd_sums.column_moments_f32`), narrower ones in L1 for every row
    (:func:`_row_loop_sums`): the same additions in the same order, so a channel's
    bits do not depend on the tile it is in."""
    t = tl.t
    u0 = np.uint64(tl.base)
    for c in range(t):
        sc[0, c] = np.float64(xf[u0 + np.uint64(c)])
        sc[1, c] = 0.0
        sc[2, c] = 0.0
    if t >= column_min:  # rows from 1 on, as the row loop (row 0 adds x0 - x0 = 0)
        for r0 in range(1, tl.m, COLUMN_ROWS):
            rows = min(COLUMN_ROWS, tl.m - r0)
            for c0 in range(0, t, COLUMN_CHUNK):
                column_moments_f32(xf, tl.base + r0 * tl.stride + c0, tl.stride, rows, sc, c0,
                                   min(COLUMN_CHUNK, t - c0))
    else:
        _row_loop_sums(xf, tl, sc)
    for c in range(t):
        sc[0, c], sc[2, c] = shifted_moments(sc[0, c], sc[1, c], sc[2, c], tl.m)
    return sc[0, :t], sc[2, :t]


@njit(fastmath=ELEM, **NB)
def _paper_row(xf, of, u, t, sp):
    """Paper outputs of the ``t`` channels of the neuron row at flat index ``u`` of
    ``xf`` into ``of``, from the :data:`~.base.Fast32` fields in rows 0-2 of ``sp``
    (in-place twin :func:`_paper_row_inplace`, as :func:`~.forward.fwd_block_f32`).
    A function of its own, called once a row (:data:`~simam_ref.constants.NLC_ROW_CALL`);
    nested twins of the row functions: the end of :func:`_fwd_lanes`."""
    for c in range(t):
        uc = u + np.uint64(c)
        of[uc] = paper_fast_f32(xf[uc], Fast32(sp[0, c], sp[1, c], sp[2, c]))


@njit(fastmath=ELEM, **NB)
def _paper_row_inplace(wf, u, t, sp):
    """:func:`_paper_row` writing over its input ``wf``."""
    for c in range(t):
        uc = u + np.uint64(c)
        wf[uc] = paper_fast_f32(wf[uc], Fast32(sp[0, c], sp[1, c], sp[2, c]))


@njit(fastmath=ELEM, **NB)
def _exact_row(xf, of, u, t, sp, r2, q):
    """Exact outputs of one neuron row as :func:`_paper_row`, with each channel's
    floor in row 3 of ``sp`` (in-place twin :func:`_exact_row_inplace`)."""
    for c in range(t):
        uc = u + np.uint64(c)
        of[uc] = exact_fast_f32(xf[uc], Fast32(sp[0, c], sp[1, c], sp[2, c]),
                                Exact32(r2, q, sp[3, c]))


@njit(fastmath=ELEM, **NB)
def _exact_row_inplace(wf, u, t, sp, r2, q):
    """:func:`_exact_row` writing over its input ``wf``."""
    for c in range(t):
        uc = u + np.uint64(c)
        wf[uc] = exact_fast_f32(wf[uc], Fast32(sp[0, c], sp[1, c], sp[2, c]),
                                Exact32(r2, q, sp[3, c]))


@njit(**NB)
def _fwd_lanes(xf, of, tl, sp, exact, inplace, row_call):
    """The vector loops of :func:`_fwd_tile`: every channel of ``tl`` with the
    per-channel float32 scalars ``mu_hi, z_lo, kk, floor`` (:data:`~.base.Fast32` and
    the exact method's floor) in rows 0-3 of ``sp``; a call of a row function per
    neuron row when the tile has at least ``row_call`` channels
    (:data:`~simam_ref.constants.NLC_ROW_CALL`), else nested loops."""
    t = tl.t
    row = row_consts(tl.m)
    r2 = np.float32(row.r * row.r)
    q = np.float32(row.r * (4.0 * row.inv_n))
    wf = writable_alias(xf, of)
    if t >= row_call:  # a call in a loop's body (taken or not) costs the other loops
        for i in range(tl.m):
            u = np.uint64(tl.base + i * tl.stride)
            if exact and inplace:
                _exact_row_inplace(wf, u, t, sp, r2, q)
            elif exact:
                _exact_row(xf, of, u, t, sp, r2, q)
            elif inplace:
                _paper_row_inplace(wf, u, t, sp)
            else:
                _paper_row(xf, of, u, t, sp)
        return
    # twins of the row functions, nested in the row loop (passing arrays to a
    # function Numba inlines costs reference counting in every row)
    muh, zlo, kk, fl = sp[0, :t], sp[1, :t], sp[2, :t], sp[3, :t]
    for i in range(tl.m):
        u = np.uint64(tl.base + i * tl.stride)
        if exact:
            if inplace:
                for c in range(t):
                    uc = u + np.uint64(c)
                    wf[uc] = exact_fast_f32(wf[uc], Fast32(muh[c], zlo[c], kk[c]),
                                            Exact32(r2, q, fl[c]))
            else:
                for c in range(t):
                    uc = u + np.uint64(c)
                    of[uc] = exact_fast_f32(xf[uc], Fast32(muh[c], zlo[c], kk[c]),
                                            Exact32(r2, q, fl[c]))
        elif inplace:
            for c in range(t):
                uc = u + np.uint64(c)
                wf[uc] = paper_fast_f32(wf[uc], Fast32(muh[c], zlo[c], kk[c]))
        else:
            for c in range(t):
                uc = u + np.uint64(c)
                of[uc] = paper_fast_f32(xf[uc], Fast32(muh[c], zlo[c], kk[c]))


@njit(**NB)
def _fwd_tile(xf, of, tl, lam, exact, inplace, sc, sp, slow, row_call, column_min):
    """Forward of the channels of tile ``tl`` into the same places of ``of`` (flat
    float32, channels-last; ``of`` may be ``xf``); scratch ``sc`` float64 ``(3, >= t)``,
    ``sp`` float32 ``(4, >= t)``, ``slow`` bool ``(>= t)``.

    Channels that pass :func:`~.base.fast_f32_ok` run in the vector loop; any other
    channel (huge values, NaN) is saved first and redone by
    :func:`~.forward.fwd_block_f32` on its own, so its neighbours keep their bits.
    """
    t = tl.t
    m = tl.m
    row = row_consts(m)
    mu, s2 = nlc_stats(xf, tl, sc, column_min)
    nslow = 0
    for c in range(t):
        den = four_var(s2[c], lam, row)
        slow[c] = not fast_f32_ok(mu[c], s2[c], den)
        if slow[c]:  # placeholder gain in the vector loop; redone below
            nslow += 1
            sp[0, c] = 0.0
            sp[1, c] = 0.0
            sp[2, c] = 0.0
            sp[3, c] = 1.0
        else:
            f = fast32(mu[c], den)
            sp[0, c] = f.mu_hi
            sp[1, c] = f.z_lo
            sp[2, c] = f.kk
            sp[3, c] = max(np.float32(4.0 * lam / den), TINY32)
    saved = np.empty((nslow, m), np.float32)
    j = 0
    for c in range(t):
        if slow[c]:
            for i in range(m):
                saved[j, i] = xf[tl.base + i * tl.stride + c]
            j += 1
    _fwd_lanes(xf, of, tl, sp, exact, inplace, row_call)
    col = np.empty(m if nslow else 0, np.float32)
    j = 0
    for c in range(t):
        if slow[c]:
            fwd_block_f32(saved[j], col, Channel(1.0, mu[c], s2[c], lam), row, exact, False)
            for i in range(m):
                of[tl.base + i * tl.stride + c] = col[i]
            j += 1


@njit(parallel=True, **NB)
def forward_nlc_f32(x3, lam, exact, out3, width, inplace, row_call, column_min):
    """Channels-last forward: ``prange`` over (batch item, tile of ``width`` channels);
    ``row_call`` as :func:`_fwd_lanes`, ``column_min`` as :func:`nlc_stats`."""
    nb, m, nc = x3.shape
    nt = nblocks(nc, width)
    lam_s = max(lam, LAM_FLOOR)
    xf = x3.reshape(-1)
    of = out3.reshape(-1)
    for w in prange(nb * nt):
        t = min(width, nc)
        _fwd_tile(xf, of, tile_of(w, nt, m, nc, width), lam_s, exact, inplace,
                  np.empty((3, t)), np.empty((4, t), np.float32), np.empty(t, np.bool_), row_call,
                  column_min)
