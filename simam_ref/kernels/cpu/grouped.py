"""Grouped float32 paper forward and backward of short rows (at most
``constants.FLAT_MAX_M`` neurons forward, ``constants.FLAT_BW_MAX_M`` backward).

A group of whole rows runs in phases, each one function over the group: every
row's statistics; every row's scalars (one loop over rows, so the divisions and
square roots of the group overlap); every row's ``z = (x - mu) sqrt(k)`` into
scratch; then the costly per-neuron part (``exp`` and the gain's division) in **one
vector loop over the whole group**, so a 49-neuron row pays no scalar tail.  The
backward then sums each row's terms and writes each row's output from the scratch.

Two measured rules shape the code:

* a call per row costs more than a short row's arithmetic (Numba increments and
  decrements the reference count of every array argument around a call it does not
  inline: atomic operations, contended between threads), so the row loops live
  inside the per-group functions and index flat arrays with unsigned offsets;
* a per-row vector loop over 49 neurons runs 32 in SIMD and 17 scalar, so the ``z``
  and output loops run a whole number of :data:`Z_PAD` vectors when the extra
  elements land on rows written after (:func:`padded_len`).

The forward's element function is the one of the row loops, split in two
(:func:`~.elements.paper_z_f32`, :func:`~.elements.paper_out_f32`), so every row gets
the same bits as on the channel path.  Every row takes the same steps whatever its
group, so its bits are its own (alone, in any grouping, for any thread count).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ...constants import LAM_FLOOR
from .backward import bw_out, bw_sums
from .backward_f32 import bw_sums_ok, fast_bw32
from .base import (
    ELEM,
    HALF32,
    NB,
    ONE32,
    Channel,
    Fast32,
    FastBw32,
    Sums,
    fast_f32_ok,
    fma,
    four_var,
    row_consts,
    with_k,
    writable_alias,
)
from .elements import fast32, paper_out_f32, paper_z_f32
from .fastexp import exp_neg_f32
from .forward import fwd_block_f32
from .simd_sums import pair_sums_f32
from .stats import row_stats_f32, row_stats_go_f32


@njit(fastmath=ELEM, **NB)
def _paper_flat_f32(xf, of, zf, inplace):
    """:func:`~.elements.paper_out_f32` of every element of ``xf`` (its ``z`` in
    ``zf``) into ``of`` (into ``xf`` when ``inplace``; the two loops are
    in-place/out-of-place twins, see :mod:`.forward`)."""
    if inplace:
        wf = writable_alias(xf, of)
        for j in range(wf.shape[0]):
            wf[j] = paper_out_f32(wf[j], zf[j])
    else:
        for j in range(xf.shape[0]):
            of[j] = paper_out_f32(xf[j], zf[j])


#: The per-row loops of ``z`` and of the backward's output run whole vectors
#: of this many elements (no scalar tail) when the extra elements land on rows
#: written after; rows shorter than half of it run exactly ``m``.
Z_PAD = 32


@njit(**NB)
def padded_len(m):
    """Elements a per-row loop runs for rows of ``m`` (see :data:`Z_PAD`)."""
    return (m + Z_PAD - 1) // Z_PAD * Z_PAD if 2 * m >= Z_PAD else m


#: Start-to-start distance, modulo 4 KiB, of the backward's scratch rows, in float32
#: elements (1 KiB: the four rows sit a quarter of 4 KiB apart).  A load whose
#: address equals an older, still-buffered store's in its low 12 bits waits for that
#: store (4K aliasing): the terms loop stores three rows while it reads the fourth,
#: and with rows ``e + Z_PAD`` elements apart a 7x7 group (8183 elements, rows 92 B
#: apart modulo 4 KiB) took 1.5x the loop's time (see :func:`backward_scratch`).
SCRATCH_SKEW = 256


@njit(**NB)
def backward_scratch(e):
    """Scratch of :func:`_group` for groups of up to ``e`` elements: float32
    ``(4, stride)`` with ``stride >= e + Z_PAD`` a multiple of 4 KiB plus
    :data:`SCRATCH_SKEW` elements, so any two rows start at least 1 KiB apart modulo
    4 KiB.  Measured against rows ``e + Z_PAD`` apart (one process, interleaved, best
    of 31, two runs, 2 threads, batch 32): the backward's time 0.89-0.90x at 7x7,
    0.92-1.0x at 4x4, 8x8, 16x16 and 32x32 (rows 128 B apart modulo 4 KiB), 0.97-1.0x
    where they were already far apart (10x10, 14x14, 28x28, 56x56); the same bits."""
    return np.empty((4, (e + Z_PAD + 1023) // 1024 * 1024 + SCRATCH_SKEW), np.float32)


@njit(fastmath=ELEM, **NB)
def _z_rows(x1, zs, c0, n, m, rf, oks):
    """``z`` (:func:`~.elements.paper_z_f32`) of every fast row ``i < n`` of the group
    at row ``c0`` into ``zs[i m:]`` (row scalars ``rf[:, i]``).  One function per
    group, row loops inside: a call per row would pay the reference counting of its
    array arguments, which costs more than a short row."""
    padded = padded_len(m)
    for i in range(n):
        if oks[i]:
            f = Fast32(rf[0, i], rf[1, i], rf[2, i])
            b = np.uint64((c0 + i) * m)
            sb = np.uint64(i * m)
            for j in range(padded if i * m + padded <= n * m else m):
                zs[sb + np.uint64(j)] = paper_z_f32(x1[b + np.uint64(j)], f)


@njit(**NB)
def _fast_consts(rs, lam, row, rf, oks, n):
    """For rows ``i < n`` with ``(mu, S2)`` in ``rs[:, i]``: ``oks[i]`` =
    :func:`~.base.fast_f32_ok` and ``rf[:, i]`` = the row's :data:`~.base.Fast32`.
    One loop over rows of independent iterations (the divisions and square roots of
    a group overlap instead of each row's waiting on its statistics); the same
    operations as a row alone, so the same bits."""
    for i in range(n):
        mu = rs[0, i]
        s2 = rs[1, i]
        den = four_var(s2, lam, row)
        oks[i] = fast_f32_ok(mu, s2, den)
        f = fast32(mu, den)
        rf[0, i] = f.mu_hi
        rf[1, i] = f.z_lo
        rf[2, i] = f.kk


@njit(**NB)
def _forward_group(x2, x1, lam, out2, o1, inplace, c0, c1, zs, rs, rf, oks):
    """Paper forward of rows ``c0 <= c < c1`` (scratch: ``zs`` float32
    ``>= (c1-c0) m + Z_PAD``, ``rs`` float64 ``(2, >= c1-c0)``, ``rf`` float32
    ``(3, >= c1-c0)``, ``oks`` bool): every row's statistics, then every row's
    scalars (:func:`_fast_consts`), then each fast row's ``z`` (:func:`_z_rows`), and
    a run of consecutive fast rows is one loop of :func:`_paper_flat_f32`; other rows
    run :func:`~.forward.fwd_block_f32`.
    """
    m = x2.shape[1]
    row = row_consts(m)
    for c in range(c0, c1):
        rs[0, c - c0], rs[1, c - c0] = row_stats_f32(x2, c, m)
    _fast_consts(rs, lam, row, rf, oks, c1 - c0)
    _z_rows(x1, zs, c0, c1 - c0, m, rf, oks)
    start = c0
    for c in range(c0, c1 + 1):
        i = c - c0
        if c < c1 and oks[i]:
            continue
        if start < c:
            _paper_flat_f32(x1[start * m:c * m], o1[start * m:c * m],
                            zs[(start - c0) * m:i * m], inplace)
        if c < c1:
            fwd_block_f32(x2[c], out2[c], Channel(1.0, rs[0, i], rs[1, i], lam), row, False,
                          inplace)
        start = c + 1


@njit(parallel=True, **NB)
def forward_flat_f32(x2, x1, lam, out2, o1, inplace, group, per_item):
    """Paper forward of float32 rows in groups of ``group`` rows (``x1``, ``o1``: the
    flat views of ``x2``, ``out2``): ``prange`` over work items of ``per_item`` groups,
    one scratch set per work item (see :func:`_forward_group`)."""
    nc, m = x2.shape
    lam_s = max(lam, LAM_FLOOR)
    rows = group * per_item
    for w in prange((nc + rows - 1) // rows):
        zs = np.empty(group * m + Z_PAD, np.float32)
        rs = np.empty((2, group))
        rf = np.empty((3, group), np.float32)
        oks = np.empty(group, np.bool_)
        for c0 in range(w * rows, min(nc, (w + 1) * rows), group):
            _forward_group(x2, x1, lam_s, out2, o1, inplace, c0, min(nc, c0 + group), zs, rs,
                           rf, oks)


@njit(fastmath=ELEM, **NB)
def _bw_z_rows(x1, zs, c0, n, m, fs):
    """``z = ((x - mu_hi) - mu_lo) kk`` (as :func:`.backward_f32.bw_fast_f32`) of every
    row ``i < n`` of the group at row ``c0`` into ``zs[i m:]`` (row scalars
    :data:`~.base.FastBw32` ``fs[:, i]``; one function per group, as :func:`_z_rows`)."""
    padded = padded_len(m)
    for i in range(n):
        f = FastBw32(fs[0, i], fs[1, i], fs[2, i], fs[3, i], fs[4, i])
        b = np.uint64((c0 + i) * m)
        sb = np.uint64(i * m)
        for j in range(padded if i * m + padded <= n * m else m):
            zs[sb + np.uint64(j)] = ((x1[b + np.uint64(j)] - f.mu_hi) - f.mu_lo) * f.kk


@njit(fastmath=ELEM, **NB)
def _terms_flat(xf, gf, zf, gg, qz, qz2):
    """Per element ``j`` of the flat rows ``xf`` (``grad_out`` ``gf``, ``z`` in
    ``zf``), the terms of :func:`.backward_f32.bw_fast_f32` without the row factors
    ``a2``, ``b8``: ``gg = go g``, ``qz = q z``, ``qz2 = q z**2``, with
    ``E = z**2 + 1/2``, ``g = sigmoid(E)``, ``q = go x g (1 - g)`` (a twin of
    ``bw_fast_f32`` whose row scalars are in ``z``)."""
    for j in range(xf.shape[0]):
        xv = xf[j]
        gv = gf[j]
        z = zf[j]
        z2 = z * z
        t = exp_neg_f32(fma(z, z, HALF32))  # as bw_fast_f32
        g = ONE32 / (ONE32 + t)
        q = gv * xv * g * (t * g)
        gg[j] = gv * g
        qz[j] = q * z
        qz2[j] = q * z2


@njit(**NB)
def _sums_rows(qz, qz2, n, m, fs, rs, oks):
    """For every row ``i < n`` with ``oks[i]`` of the group: the float64 sums
    (:func:`~.simd_sums.pair_sums_f32`) ``mean(q alpha) = a2 sum(q z) / m`` into
    ``rs[2, i]`` and ``sum(q beta) = b8 sum(q z**2)`` into ``rs[3, i]``, and ``oks[i]``
    = :func:`~.backward_f32.bw_sums_ok` (with the row's float32 ``sum |go|`` from
    ``fs[5, i]``, summed with the statistics)."""
    for i in range(n):
        if oks[i]:
            p1, p2 = pair_sums_f32(qz, qz2, i * m, m)
            p1 *= np.float64(fs[3, i])
            p2 *= np.float64(fs[4, i])
            oks[i] = bw_sums_ok(p1, p2, np.float64(fs[5, i]), m)
            rs[2, i] = p1 / m
            rs[3, i] = p2


@njit(fastmath=ELEM, **NB)
def _out_rows(o1, gg, qz, zs, c0, n, m, fs, rs, runs):
    """Output ``go g + q z a2 - mean(q alpha) - u sum(q beta)`` of every row ``i < n``
    with ``runs[i] > 0`` (the rows from ``i`` on whose output comes from the scratch)
    from its kept ``go g``, ``q z`` and ``z``, the last term as ``z (sum(q beta) / kk)``
    (a scratch stream fewer than keeping ``u``: 0.96-1.0x the group's time in three
    measurements at 49-3136 neurons): ``x`` and ``grad_out`` are not read, so the
    output may be either of them.  A row writes :func:`padded_len` elements when they
    all land on such rows (written after)."""
    padded = padded_len(m)
    for i in range(n):
        if runs[i] > 0:
            a2 = fs[3, i]
            p1m = np.float32(rs[2, i])
            p2k = np.float32(rs[3, i] / np.float64(fs[2, i]))
            b = np.uint64((c0 + i) * m)
            sb = np.uint64(i * m)
            for j in range(padded if runs[i] * m >= padded else m):
                k = sb + np.uint64(j)
                o1[b + np.uint64(j)] = gg[k] + qz[k] * a2 - p1m - zs[k] * p2k


@njit(**NB)
def _bw_consts(rs, lam, row, fs, oks, n):
    """For rows ``i < n`` with ``(mu, S2)`` in ``rs[:, i]``: ``(oks[i], fs[:, i])`` =
    :func:`~.backward_f32.fast_bw32` (one loop over rows, as :func:`_fast_consts`)."""
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
    ``(4, >= (c1-c0) m + Z_PAD)`` (``z``, ``go g``, ``q z``, ``q z**2``; best from
    :func:`backward_scratch`), ``rs``
    float64 ``(4, >= c1-c0)`` (statistics, then the row sums), ``fs`` float32
    ``(6, >= c1-c0)`` (each row's :data:`~.base.FastBw32`, then its ``sum |go|``),
    ``oks`` int64.

    Every row's statistics (with its ``sum |go|``) and scalars, every row's ``z``, the
    terms of the whole group in one loop, every row's sums, every row's output from
    the scratch; rows outside the float32 range (or whose sums fail) run the float64
    row code.
    """
    m = x2.shape[1]
    n = c1 - c0
    e = n * m
    row = row_consts(m)
    zs, gg, qz, qz2 = sc[0], sc[1], sc[2], sc[3]
    for i in range(n):
        rs[0, i], rs[1, i], fs[5, i] = row_stats_go_f32(x2, g2, c0 + i, m)
    _bw_consts(rs, lam, row, fs, oks, n)
    x1 = x2.reshape(-1)
    g1 = g2.reshape(-1)
    _bw_z_rows(x1, zs, c0, n, m, fs)
    _terms_flat(x1[c0 * m:c1 * m], g1[c0 * m:c1 * m], zs[:e], gg[:e], qz[:e], qz2[:e])
    _sums_rows(qz, qz2, n, m, fs, rs, oks)
    run = 0  # oks[i] becomes the number of consecutive scratch-output rows from i on
    for i in range(n - 1, -1, -1):
        run = run + 1 if oks[i] else 0
        oks[i] = run
    _out_rows(out2.reshape(-1), gg, qz, zs, c0, n, m, fs, rs, oks)
    for i in range(n):
        if oks[i] == 0:
            c = c0 + i
            ck = with_k(Channel(1.0, rs[0, i], rs[1, i], lam), row)
            p1, p2 = bw_sums(x2[c], g2[c], ck, row, False)
            bw_out(x2[c], g2[c], out2[c], ck, row, False, Sums(p1 / m, p2), alias)


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
