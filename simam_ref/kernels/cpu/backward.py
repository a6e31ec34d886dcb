"""Backward (vector-Jacobian product) with float64 per-neuron math: every float64
channel, the exact method, and float32 channels outside the float32 paths' range.

Per neuron (shared math of :mod:`simam_ref.kernels.neuron`): ``q = go x g (1-g)``
and ``grad_x = go g + q alpha - mean(q alpha) - u sum(q beta)``.  A channel takes
two passes: the sums (:func:`bw_sums`), then the output (:func:`bw_out`).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ...constants import BW_OFFSET_LIM
from .. import neuron
from .base import ELEM, NB, RED, Channel, Sums, blk, nblocks, row_consts, with_k, writable_alias
from .fastexp import exp_neg_like
from .stats import add_parts, row_stats, scaled_lam, split_stats

_paper_e = njit(inline="always")(neuron.paper_inverse_energy)
_exact_ib = njit(inline="always")(neuron.exact_reciprocal)
_exact_e = njit(inline="always")(neuron.exact_inverse_energy)
_paper_ab = njit(inline="always")(neuron.paper_alpha_beta)
_exact_ab = njit(inline="always")(neuron.exact_alpha_beta)
_grad = njit(inline="always")(neuron.input_gradient)


# inline="always": Numba-IR inlining (LLVM's inliner judges it too big, and a
# call in the loop blocks vectorisation).  It then takes its caller's fast-math
# flags; the exp helpers it calls keep their own.
@njit(fastmath=ELEM, inline="always", **NB)
def bw_elem(xn, gn, ck, row, exact, like):
    """``(go g, q alpha, q beta, u)`` of one neuron (float64) of channel ``ck`` (a
    :data:`~.base.ChannelK`) from ``x``, ``grad_out`` in the array dtype; ``exp`` at
    the precision of ``like``'s type (float32 only where :func:`exp32_ok`).  Twin:
    :func:`.backward_f32.bw_fast_f32`."""
    xv = np.float64(xn)
    gov = np.float64(gn)
    xs = xv * ck.s
    u = xs - ck.mu
    d = u * u
    if exact:
        inv_b = _exact_ib(d, ck.s2, row.r, row.inv_n, ck.lam)
        e = _exact_e(d, inv_b, row.r)
        alpha, beta = _exact_ab(u, inv_b, row.r, row.inv_n)
    else:
        e = _paper_e(d, ck.k)
        alpha, beta = _paper_ab(u, ck.k, row.inv_n)
    t = exp_neg_like(e, like)
    g = 1.0 / (1.0 + t)
    q = gov * xs * g * (t * g)
    return gov * g, q * alpha, q * beta, u


@njit(fastmath=RED, **NB)
def bw_sums(xb, gb, ck, row, exact, like):
    """``(sum(q alpha), sum(q beta))`` over one block of channel ``ck``."""
    p1 = 0.0
    p2 = 0.0
    for i in range(xb.shape[0]):
        _, qa, qb, _ = bw_elem(xb[i], gb[i], ck, row, exact, like)
        p1 += qa
        p2 += qb
    return p1, p2


@njit(fastmath=ELEM, inline="always", **NB)
def bw_val(xv, gv, ck, row, exact, sums, like):
    """``grad_x`` of one neuron given its channel's :data:`~.base.Sums`."""
    gg, qa, _, u = bw_elem(xv, gv, ck, row, exact, like)
    return _grad(gg, qa, sums.p1m, u, sums.p2)


@njit(**NB)
def bw_out(xb, gb, ob, ck, row, exact, sums, alias, like):
    """Output of one block; ``alias`` 0: into ``ob``, 1: into ``xb``, 2: into ``gb``
    (three twin loops so LLVM sees a single written array, see :mod:`.forward`; a
    read-only ``xb`` or ``gb`` is written through ``ob``, its same memory, see
    :func:`~.base.writable_alias`)."""
    if alias == 1:
        wx = writable_alias(xb, ob)
        for i in range(xb.shape[0]):
            wx[i] = bw_val(wx[i], gb[i], ck, row, exact, sums, like)
    elif alias == 2:
        wg = writable_alias(gb, ob)
        for i in range(xb.shape[0]):
            wg[i] = bw_val(xb[i], wg[i], ck, row, exact, sums, like)
    else:
        for i in range(xb.shape[0]):
            ob[i] = bw_val(xb[i], gb[i], ck, row, exact, sums, like)


@njit(**NB)
def exp32_ok(mu, s2, m):
    """Whether a float32 channel may take the float32 ``exp``, in its float64 element
    math and in the float32 backward (:func:`.backward_f32.fast_bw32`): ``|mu|`` at
    most ``constants.BW_OFFSET_LIM`` standard deviations (``mu**2 m <= lim**2 S2``).
    Further off, the gradient can be a small difference of terms that carry
    ``exp``'s relative error (1e-7 in float32): 8.2e-5 of a 32-neuron row's largest
    gradient at 7 standard deviations, 2.3e-13 with the float64 ``exp``."""
    return mu * mu * m <= BW_OFFSET_LIM * BW_OFFSET_LIM * s2


@njit(**NB)
def _bw_channel(xr, gr, orow, ck, row, exact, block, alias, like):
    """:func:`bw_channel` with ``exp`` at ``like``'s precision."""
    nb = nblocks(row.m, block)
    p1 = 0.0
    p2 = 0.0
    for b in range(nb):
        a, q = bw_sums(blk(xr, b, block), blk(gr, b, block), ck, row, exact, like)
        p1 += a
        p2 += q
    bw_out(xr, gr, orow, ck, row, exact, Sums(p1 / row.m, p2), alias, like)


@njit(**NB)
def bw_channel(xr, gr, orow, ck, row, exact, block, alias):
    """Backward of one whole row of channel ``ck``: sums per block in block order,
    then the output; a float32 row takes the float32 ``exp`` when :func:`exp32_ok`."""
    if exp32_ok(ck.mu, ck.s2, row.m):
        _bw_channel(xr, gr, orow, ck, row, exact, block, alias, xr[0])
    else:
        _bw_channel(xr, gr, orow, ck, row, exact, block, alias, 0.0)


@njit(parallel=True, **NB)
def backward_channels(x2, g2, lam, exact, out2, block, alias):
    """Channel path of the backward (float64): ``prange`` over rows."""
    nc, m = x2.shape
    for c in prange(nc):
        row = row_consts(m)  # in the parfor: numba#4846
        ck = with_k(row_stats(x2[c], block, lam), row)
        bw_channel(x2[c], g2[c], out2[c], ck, row, exact, block, alias)


@njit(parallel=True, **NB)
def backward_split(x2, g2, lam, exact, out2, block, alias):
    """Split path of the backward: statistics, sums and output parallel over
    (channel, block) work items, partial sums added in block order."""
    nc, m = x2.shape
    nb = nblocks(m, block)
    scale, mu, s2 = split_stats(x2, block)
    part = np.empty((nc, nb, 2))
    for w in prange(nc * nb):
        row = row_consts(m)  # in the parfor: numba#4846
        c = w // nb
        b = w - c * nb
        ck = with_k(Channel(scale[c], mu[c], s2[c], scaled_lam(lam, scale[c])), row)
        xb, gb = blk(x2[c], b, block), blk(g2[c], b, block)
        if exp32_ok(ck.mu, ck.s2, m):
            a, q = bw_sums(xb, gb, ck, row, exact, xb[0])
        else:
            a, q = bw_sums(xb, gb, ck, row, exact, 0.0)
        part[c, b, 0] = a
        part[c, b, 1] = q
    p1m = np.empty(nc)
    p2 = np.empty(nc)
    for c in range(nc):
        a, q = add_parts(part, c)
        p1m[c] = a / m
        p2[c] = q
    for w in prange(nc * nb):
        row = row_consts(m)  # in the parfor: numba#4846
        c = w // nb
        b = w - c * nb
        ck = with_k(Channel(scale[c], mu[c], s2[c], scaled_lam(lam, scale[c])), row)
        xb, gb, ob = blk(x2[c], b, block), blk(g2[c], b, block), blk(out2[c], b, block)
        sums = Sums(p1m[c], p2[c])
        if exp32_ok(ck.mu, ck.s2, m):
            bw_out(xb, gb, ob, ck, row, exact, sums, alias, xb[0])
        else:
            bw_out(xb, gb, ob, ck, row, exact, sums, alias, 0.0)
