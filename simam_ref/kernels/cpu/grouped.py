"""Grouped float32 paper forward of short rows (at most ``constants.FLAT_MAX_M``
neurons), and the rules it shares with the grouped backward
(:mod:`.grouped_backward`, rows of at most ``constants.FLAT_BW_MAX_M`` neurons).

A group of whole rows runs in phases, each one function over the group: every
row's statistics; every row's scalars (one loop over rows, so the divisions and
square roots of the group overlap); every row's ``z = (x - mu) sqrt(k)`` into
scratch; then the costly per-neuron part (``exp`` and the gain's division) in **one
vector loop over the whole group**, so a 49-neuron row pays no scalar tail.  The
backward then sums each row's terms and writes each row's output from the scratch.
Groups are sized by :func:`simam_ref.kernels.cpu.group_rows`.

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
from .base import ELEM, NB, Channel, Fast32, fast_f32_ok, four_var, row_consts, writable_alias
from .elements import fast32, paper_out_f32, paper_z_f32
from .forward import fwd_block_f32
from .stats import row_stats_f32


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
