"""Grouped float32 paper forward and backward of short rows (at most
``constants.FLAT_MAX_M`` neurons forward, ``constants.FLAT_BW_MAX_M`` backward).

One vector loop runs over a group of whole rows instead of one per row, so a
49-neuron row has no scalar tail and the rows' statistics, square roots and
divisions overlap.  Each row's scalars (:data:`~.base.Fast32` forward, ``mu_hi``, ``mu_lo``, ``kk``
backward) are broadcast over
its neurons in L1-resident scratch rows.  The forward's element function is the
one of the row loops (:func:`~.elements.paper_fast_f32`), so every row gets the
same bits as alone.  The backward runs its costly part (``exp`` and the gain's
division) in the group loop and the channel sums and output row by row from the
kept gains; every row takes the same steps whatever its group, so its bits are
its own (alone, in any grouping, for any thread count).
"""

from __future__ import annotations

from collections import namedtuple

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
    RED,
    Channel,
    Fast32,
    FastBw32,
    Sums,
    fast_f32_ok,
    four_var,
    row_consts,
    with_k,
    writable_alias,
)
from .elements import fast32, paper_fast_f32
from .fastexp import exp_neg_f32
from .forward import fwd_block_f32
from .stats import row_stats_f32


@njit(fastmath=ELEM, **NB)
def _paper_flat_f32(xf, of, pm, pl, pk, inplace):
    """:func:`~.elements.paper_fast_f32` of every element of ``xf`` into ``of`` (into
    ``xf`` when ``inplace``; the two loops are in-place/out-of-place twins, see
    :mod:`.forward`) with per-element ``mu_hi``, ``z_lo``, ``kk`` (``pm``, ``pl``, ``pk``)."""
    if inplace:
        wf = writable_alias(xf, of)
        for j in range(wf.shape[0]):
            wf[j] = paper_fast_f32(wf[j], Fast32(pm[j], pl[j], pk[j]))
    else:
        for j in range(xf.shape[0]):
            of[j] = paper_fast_f32(xf[j], Fast32(pm[j], pl[j], pk[j]))


@njit(parallel=True, **NB)
def forward_flat_f32(x2, x1, lam, out2, o1, inplace, group):
    """Paper forward of float32 rows in groups of ``group`` rows (``x1``, ``o1``: the
    flat views of ``x2``, ``out2``): a run of consecutive fast rows is one loop of
    :func:`_paper_flat_f32`; other rows run :func:`~.forward.fwd_block_f32`."""
    nc, m = x2.shape
    lam_s = max(lam, LAM_FLOOR)
    nw = (nc + group - 1) // group
    for w in prange(nw):
        row = row_consts(m)  # in the parfor: numba#4846
        pm = np.empty(group * m, dtype=np.float32)
        pl = np.empty(group * m, dtype=np.float32)
        pk = np.empty(group * m, dtype=np.float32)
        c0 = w * group
        c1 = min(nc, c0 + group)
        start = c0
        for c in range(c0, c1 + 1):
            fast = False
            if c < c1:
                mu, s2 = row_stats_f32(x2, c, m)
                den = four_var(s2, lam_s, row)
                fast = fast_f32_ok(mu, s2, den)
                if fast:
                    f = fast32(mu, den)
                    j = (c - c0) * m
                    pm[j:j + m] = f.mu_hi
                    pl[j:j + m] = f.z_lo
                    pk[j:j + m] = f.kk
            if not fast:
                if start < c:
                    a = (start - c0) * m
                    b = (c - c0) * m
                    _paper_flat_f32(x1[start * m:c * m], o1[start * m:c * m], pm[a:b], pl[a:b],
                                    pk[a:b], inplace)
                if c < c1:
                    fwd_block_f32(x2[c], out2[c], Channel(1.0, mu, s2, lam_s), row, False,
                                  inplace)
                start = c + 1


@njit(fastmath=ELEM, **NB)
def _terms_flat(xf, gf, pm, pl, pk, gg, qz, qz2):
    """Per element ``j`` of the flat rows ``xf`` (``grad_out`` ``gf``), the terms of
    :func:`.backward_f32.bw_fast_f32` without the row factors ``a2``, ``b8``:
    ``gg = go g``, ``qz = q z``, ``qz2 = q z**2``, with ``z = ((x - pm) - pl) pk``,
    ``E = z**2 + 1/2``, ``g = sigmoid(E)``, ``q = go x g (1 - g)`` (a twin of
    ``bw_fast_f32`` whose row scalars vary per element)."""
    for j in range(xf.shape[0]):
        xv = xf[j]
        gv = gf[j]
        z = ((xv - pm[j]) - pl[j]) * pk[j]
        z2 = z * z
        t = exp_neg_f32(z2 + HALF32)
        g = ONE32 / (ONE32 + t)
        q = gv * xv * g * (t * g)
        gg[j] = gv * g
        qz[j] = q * z
        qz2[j] = q * z2


#: One row of a group: ``m`` neurons at ``base`` of the flat arrays and at ``sbase``
#: of the scratch rows (flat, unsigned indices: no per-row views, whose reference
#: counting on the shared arrays costs more than a short row of arithmetic).
Seg = namedtuple("Seg", ["base", "sbase", "m"])


@njit(fastmath=RED, **NB)
def _row_sums(g1, qz, qz2, seg):
    """``(sum(q z), sum(q z**2), sum(|go|))`` of the row :data:`Seg` ``seg``, in float64."""
    p1 = 0.0
    p2 = 0.0
    sg = 0.0
    b = np.uint64(seg.base)
    sb = np.uint64(seg.sbase)
    for i in range(seg.m):
        k = sb + np.uint64(i)
        p1 += np.float64(qz[k])
        p2 += np.float64(qz2[k])
        sg += np.float64(abs(g1[b + np.uint64(i)]))
    return p1, p2, sg


@njit(fastmath=ELEM, **NB)
def _row_out(x1, gg, qz, o1, seg, f, p1m, p2, alias):
    """Output ``go g + q z a2 - mean(q alpha) - u sum(q beta)`` of the row :data:`Seg`
    ``seg`` from its kept terms (in-place and out-of-place twin loops; ``grad_out`` is
    not read)."""
    b = np.uint64(seg.base)
    sb = np.uint64(seg.sbase)
    if alias == 1:
        wx = writable_alias(x1, o1)
        for i in range(seg.m):
            k = b + np.uint64(i)
            j = sb + np.uint64(i)
            wx[k] = gg[j] + qz[j] * f.a2 - p1m - ((wx[k] - f.mu_hi) - f.mu_lo) * p2
    else:
        for i in range(seg.m):
            k = b + np.uint64(i)
            j = sb + np.uint64(i)
            o1[k] = gg[j] + qz[j] * f.a2 - p1m - ((x1[k] - f.mu_hi) - f.mu_lo) * p2


@njit(**NB)
def _group(x2, g2, out2, c0, c1, lam, alias, sc, fs, oks):
    """Backward of rows ``c0 <= c < c1``; scratch ``sc`` float32 ``(6, >= (c1-c0) m)``
    (broadcast ``mu_hi, mu_lo, kk``; ``go g``, ``q z``, ``q z**2``), ``fs`` float32
    ``(5, >= c1-c0)`` (each row's :data:`~.base.FastBw32`), ``oks`` bool."""
    m = x2.shape[1]
    row = row_consts(m)
    pm, pl, pk, gg, qz, qz2 = sc[0], sc[1], sc[2], sc[3], sc[4], sc[5]
    for c in range(c0, c1):
        i = c - c0
        mu, s2 = row_stats_f32(x2, c, m)
        ok, f = fast_bw32(mu, s2, lam, row)
        oks[i] = ok
        fs[0, i] = f.mu_hi
        fs[1, i] = f.mu_lo
        fs[2, i] = f.kk
        fs[3, i] = f.a2
        fs[4, i] = f.b8
        pm[i * m:(i + 1) * m] = f.mu_hi
        pl[i * m:(i + 1) * m] = f.mu_lo
        pk[i * m:(i + 1) * m] = f.kk
    e = (c1 - c0) * m
    x1 = x2.reshape(-1)
    g1 = g2.reshape(-1)
    o1 = out2.reshape(-1)
    _terms_flat(x1[c0 * m:c1 * m], g1[c0 * m:c1 * m], pm[:e], pl[:e], pk[:e], gg[:e], qz[:e],
                qz2[:e])
    for c in range(c0, c1):
        i = c - c0
        if oks[i]:
            f = FastBw32(fs[0, i], fs[1, i], fs[2, i], fs[3, i], fs[4, i])
            seg = Seg(c * m, i * m, m)
            p1, p2, sg = _row_sums(g1, qz, qz2, seg)
            p1 *= np.float64(f.a2)
            p2 *= np.float64(f.b8)
            if bw_sums_ok(p1, p2, sg, m):
                _row_out(x1, gg, qz, o1, seg, f, np.float32(p1 / m), np.float32(p2), alias)
                continue
        mu, s2 = row_stats_f32(x2, c, m)
        ck = with_k(Channel(1.0, mu, s2, lam), row)
        p1, p2 = bw_sums(x2[c], g2[c], ck, row, False)
        bw_out(x2[c], g2[c], out2[c], ck, row, False, Sums(p1 / m, p2), alias)


@njit(parallel=True, **NB)
def backward_flat_f32(x2, g2, lam, out2, alias, group):
    """Paper backward of float32 rows in groups of ``group`` rows: ``prange`` over
    groups, one scratch set per group."""
    nc, m = x2.shape
    lam_s = max(lam, LAM_FLOOR)
    nw = (nc + group - 1) // group
    for w in prange(nw):
        sc = np.empty((6, group * m), np.float32)
        fs = np.empty((5, group), np.float32)
        oks = np.empty(group, np.bool_)
        _group(x2, g2, out2, w * group, min(nc, (w + 1) * group), lam_s, alias, sc, fs, oks)
