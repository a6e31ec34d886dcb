"""Grouped float32 paper backward of short rows (at most ``constants.FLAT_BW_MAX_M``
neurons; the design and its rules: :mod:`.grouped`).

A group runs every row's statistics (with its ``sum |go|``) and scalars, every row's
``z`` (:func:`_bw_z_rows`), the per-neuron terms of the whole group in one vector
loop (:func:`_terms_flat`: ``go g`` and ``q z`` into scratch), then each row's
two sums (``sum(q z)`` and ``sum((q z) z)``) and its output from the scratch; rows
outside the float32 range, or whose sums fail the range check, run the float64 row
code.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ...constants import LAM_FLOOR
from .backward import bw_channel
from .backward_f32 import bw_sums_ok, fast_bw32, gain_q_f32
from .base import ELEM, NB, Channel, FastBw32, row_consts, with_k
from .grouped import Z_PAD, padded_len
from .simd_sums import sum_dot_f32
from .stats import row_stats_go_f32

#: Start-to-start distance, modulo 4 KiB, of the backward's scratch rows, in float32
#: elements (1 KiB: the three rows sit a quarter of 4 KiB apart).  A load whose
#: address equals an older, still-buffered store's in its low 12 bits waits for that
#: store (4K aliasing): the terms loop stores two rows while it reads the third
#: (it stored three when it kept ``q z**2``, and with rows ``e + Z_PAD`` elements
#: apart a 7x7 group, 8183 elements, rows 92 B apart modulo 4 KiB, took 1.5x the
#: loop's time; see :func:`backward_scratch`).
SCRATCH_SKEW = 256


@njit(**NB)
def backward_scratch(e):
    """Scratch of :func:`_group` for groups of up to ``e`` elements: float32
    ``(3, stride)`` with ``stride >= e + Z_PAD`` a multiple of 4 KiB plus
    :data:`SCRATCH_SKEW` elements, so any two rows start at least 1 KiB apart modulo
    4 KiB.  Measured against rows ``e + Z_PAD`` apart (one process, interleaved, best
    of 31, two runs, 2 threads, batch 32): the backward's time 0.89-0.90x at 7x7,
    0.92-1.0x at 4x4, 8x8, 16x16 and 32x32 (rows 128 B apart modulo 4 KiB), 0.97-1.0x
    where they were already far apart (10x10, 14x14, 28x28, 56x56); the same bits."""
    return np.empty((3, (e + Z_PAD + 1023) // 1024 * 1024 + SCRATCH_SKEW), np.float32)


@njit(fastmath=ELEM, **NB)
def _bw_z_rows(x1, zs, c0, n, m, fs):
    """``z = ((x - mu_hi) - mu_lo) kk`` (as :func:`.backward_f32.bw_fast_f32`) of every
    row ``i < n`` of the group at row ``c0`` into ``zs[i m:]`` (row scalars
    :data:`~.base.FastBw32` ``fs[:, i]``; one function per group, as :func:`.grouped._z_rows`)."""
    padded = padded_len(m)
    for i in range(n):
        f = FastBw32(fs[0, i], fs[1, i], fs[2, i], fs[3, i], fs[4, i])
        b = np.uint64((c0 + i) * m)
        sb = np.uint64(i * m)
        for j in range(padded if i * m + padded <= n * m else m):
            zs[sb + np.uint64(j)] = ((x1[b + np.uint64(j)] - f.mu_hi) - f.mu_lo) * f.kk


@njit(fastmath=ELEM, **NB)
def _terms_flat(xf, gf, zf, gg, qz):
    """Per element ``j`` of the flat rows ``xf`` (``grad_out`` ``gf``, ``z`` in
    ``zf``), the terms of :func:`.backward_f32.bw_fast_f32` without the row factors
    ``a2``, ``b8``: ``gg = go g``, ``qz = q z``, with ``g`` and ``q`` from
    :func:`~.backward_f32.gain_q_f32` (a twin of ``bw_fast_f32`` whose row scalars
    are in ``z``)."""
    for j in range(xf.shape[0]):
        gv = gf[j]
        z = zf[j]
        g, q = gain_q_f32(xf[j], gv, z)
        gg[j] = gv * g
        qz[j] = q * z


#: Rows shorter than this many neurons (a scratch row under 4 KiB) write each row's
#: output right after its sums (:func:`_sums_out_rows`); longer rows sum every row,
#: then write every row (:func:`_sums_rows`, :func:`_out_rows`).  Measured in one
#: process (interleaved, best of 25, 2 threads, batch 32): 0.90x the backward's
#: time at 7x7, 0.94-0.95x at 14x14, 0.95-0.97x at 28x28, 0.87-0.92x at 4x4, 8x8
#: and 10x10, but 1.0-1.04x from 32x32 (1024 neurons) up.
ROW_OUT_MAX_M = 1024


@njit(inline="always", **NB)
def _row_sums(qz, zs, i, m, fs, rs, oks):
    """Row ``i``'s float64 sums (:func:`~.simd_sums.sum_dot_f32` of the kept ``q z``
    and ``z``) ``mean(q alpha) = a2 sum(q z) / m`` into ``rs[2, i]`` and ``sum(q beta)
    = b8 sum((q z) z)`` into ``rs[3, i]`` (a stored ``q z**2``, the terms loop's
    third stream, took 1.04-1.05x the backward's time at 7x7-28x28), and ``oks[i]``
    = :func:`~.backward_f32.bw_sums_ok` (with the row's float32 ``sum |go|`` from
    ``fs[5, i]``, summed with the statistics)."""
    p1, p2 = sum_dot_f32(qz, zs, i * m, m)
    p1 *= np.float64(fs[3, i])
    p2 *= np.float64(fs[4, i])
    oks[i] = bw_sums_ok(p1, p2, np.float64(fs[5, i]), m)
    rs[2, i] = p1 / m
    rs[3, i] = p2


@njit(inline="always", **NB)
def _row_out(o1, gg, qz, zs, c0, i, m, fs, rs, count):
    """Output ``go g + q z a2 - mean(q alpha) - u sum(q beta)`` of row ``i`` (its first
    ``count`` elements: ``m``, or :func:`.grouped.padded_len` when the extra ones land on rows
    written after) from its kept ``go g``, ``q z`` and ``z``, the last term as ``z
    (sum(q beta) / kk)`` (a scratch stream fewer than keeping ``u``: 0.96-1.0x the
    group's time in three measurements at 49-3136 neurons): ``x`` and ``grad_out``
    are not read, so the output may be either of them."""
    a2 = fs[3, i]
    p1m = np.float32(rs[2, i])
    p2k = np.float32(rs[3, i] / np.float64(fs[2, i]))
    b = np.uint64((c0 + i) * m)
    sb = np.uint64(i * m)
    for j in range(count):
        k = sb + np.uint64(j)
        o1[b + np.uint64(j)] = gg[k] + qz[k] * a2 - p1m - zs[k] * p2k


@njit(**NB)
def _sums_rows(qz, zs, n, m, fs, rs, oks):
    """:func:`_row_sums` of every row ``i < n`` with ``oks[i]`` of the group."""
    for i in range(n):
        if oks[i]:
            _row_sums(qz, zs, i, m, fs, rs, oks)


@njit(fastmath=ELEM, **NB)
def _out_rows(o1, gg, qz, zs, c0, n, m, fs, rs, runs):
    """:func:`_row_out` of every row ``i < n`` with ``runs[i] > 0`` (the rows from
    ``i`` on whose output comes from the scratch), :func:`.grouped.padded_len` elements when
    they all land on such rows."""
    padded = padded_len(m)
    for i in range(n):
        if runs[i] > 0:
            _row_out(o1, gg, qz, zs, c0, i, m, fs, rs, padded if runs[i] * m >= padded else m)


@njit(fastmath=ELEM, **NB)
def _sums_out_rows(o1, gg, qz, zs, c0, n, m, fs, rs, oks):
    """:func:`_row_sums` and :func:`_row_out` of every row ``i < n`` with ``oks[i]``,
    row by row, while its scratch is in L1.  When a row's output runs
    :func:`.grouped.padded_len` elements (into the next row's output) the next row's sums run
    first, so the extra elements are written only when that row's output, written
    after, comes from the scratch too (a row of at least 16 neurons pads into one row
    at most)."""
    # the inlined _row_sums takes this function's flags (``contract``, which has
    # nothing to fuse in it); a flag that reorders additions would change its bits
    padded = padded_len(m)
    ahead = 1 if padded != m else 0
    if ahead and n > 0 and oks[0]:
        _row_sums(qz, zs, 0, m, fs, rs, oks)
    for i in range(n):
        if i + ahead < n and oks[i + ahead]:
            _row_sums(qz, zs, i + ahead, m, fs, rs, oks)
        if oks[i]:
            more = i + 1 < n and oks[i + 1]
            _row_out(o1, gg, qz, zs, c0, i, m, fs, rs, padded if more else m)


@njit(**NB)
def _bw_consts(rs, lam, row, fs, oks, n):
    """For rows ``i < n`` with ``(mu, S2)`` in ``rs[:, i]``: ``(oks[i], fs[:, i])`` =
    :func:`~.backward_f32.fast_bw32` (one loop over rows, as :func:`.grouped._fast_consts`)."""
    for i in range(n):
        ok, f = fast_bw32(rs[0, i], rs[1, i], lam, row)
        oks[i] = ok
        fs[0, i] = f.mu_hi
        fs[1, i] = f.mu_lo
        fs[2, i] = f.kk
        fs[3, i] = f.a2
        fs[4, i] = f.b8


@njit(**NB)
def _group(x2, g2, out2, c0, c1, lam, alias, sc, rs, fs, oks):
    """Backward of rows ``c0 <= c < c1``; scratch ``sc`` float32
    ``(3, >= (c1-c0) m + Z_PAD)`` (``z``, ``go g``, ``q z``; best from
    :func:`backward_scratch`), ``rs``
    float64 ``(4, >= c1-c0)`` (statistics, then the row sums), ``fs`` float32
    ``(6, >= c1-c0)`` (each row's :data:`~.base.FastBw32`, then its ``sum |go|``),
    ``oks`` int64.

    Every row's statistics (with its ``sum |go|``) and scalars, every row's ``z``, the
    terms of the whole group in one loop, then each row's sums and output from the
    scratch (row by row below :data:`ROW_OUT_MAX_M` neurons, else every row's sums,
    then every row's output); rows outside the float32 range (or whose sums fail)
    run the float64 row code.
    """
    m = x2.shape[1]
    n = c1 - c0
    e = n * m
    row = row_consts(m)
    zs, gg, qz = sc[0], sc[1], sc[2]
    for i in range(n):
        rs[0, i], rs[1, i], fs[5, i] = row_stats_go_f32(x2, g2, c0 + i, m)
    _bw_consts(rs, lam, row, fs, oks, n)
    x1 = x2.reshape(-1)
    g1 = g2.reshape(-1)
    _bw_z_rows(x1, zs, c0, n, m, fs)
    _terms_flat(x1[c0 * m:c1 * m], g1[c0 * m:c1 * m], zs[:e], gg[:e], qz[:e])
    if m < ROW_OUT_MAX_M:
        _sums_out_rows(out2.reshape(-1), gg, qz, zs, c0, n, m, fs, rs, oks)
    else:
        _sums_rows(qz, zs, n, m, fs, rs, oks)
        run = 0  # oks[i] becomes the number of consecutive scratch-output rows from i on
        for i in range(n - 1, -1, -1):
            run = run + 1 if oks[i] else 0
            oks[i] = run
        _out_rows(out2.reshape(-1), gg, qz, zs, c0, n, m, fs, rs, oks)
    for i in range(n):
        if oks[i] == 0:
            c = c0 + i
            ck = with_k(Channel(1.0, rs[0, i], rs[1, i], lam), row)
            bw_channel(x2[c], g2[c], out2[c], ck, row, False, m, alias)


@njit(parallel=True, **NB)
def backward_flat_f32(x2, g2, lam, out2, alias, group, per_item):
    """Paper backward of float32 rows in groups of ``group`` rows: ``prange`` over
    work items of ``per_item`` groups, one scratch set per work item (see
    :func:`_group`; ``alias``: which input ``out2`` is, for the fallback rows)."""
    nc, m = x2.shape
    lam_s = max(lam, LAM_FLOOR)
    rows = group * per_item
    for w in prange((nc + rows - 1) // rows):
        sc = backward_scratch(group * m)
        rs = np.empty((4, group))
        fs = np.empty((6, group), np.float32)
        oks = np.empty(group, np.int64)
        for c0 in range(w * rows, min(nc, (w + 1) * rows), group):
            _group(x2, g2, out2, c0, min(nc, c0 + group), lam_s, alias, sc, rs, fs, oks)
