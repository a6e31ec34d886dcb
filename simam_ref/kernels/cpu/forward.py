"""Forward row loops of the CPU kernels and the channel and split forward kernels.

Each loop has an in-place twin that reads and writes one array: with two array
arguments LLVM adds a runtime overlap check, which fails when they are the same
memory and sends the loop down the scalar path.  The twins are the ``inplace``
and ``else`` branches of :func:`fwd_block_f32` and :func:`fwd_block_f64`.
"""

from __future__ import annotations

from numba import njit, prange, types
from numba.extending import overload

from ...constants import LAM_FLOOR
from .base import (
    K_MAX,
    NB,
    Channel,
    blk,
    fast_f32_ok,
    four_var,
    nblocks,
    paper_k,
    row_consts,
    writable_alias,
)
from .elements import (
    exact32,
    exact_f32,
    exact_f64,
    exact_fast_f32,
    fast32,
    paper_f32,
    paper_f64,
    paper_fast_f32,
)
from .stats import row_stats, row_stats_f32, scaled_lam, split_stats


@njit(**NB)
def fwd_block_f32(xb, ob, ch, row, exact, inplace):
    """Output of the float32 block ``xb`` of channel ``ch`` (``s == 1``) into ``ob``
    (into ``xb`` when ``inplace``): all-float32 SIMD when :func:`~.base.fast_f32_ok`,
    else ``u`` and ``E`` in float64."""
    nb = xb.shape[0]
    wb = writable_alias(xb, ob)  # the in-place loops read and write only wb
    den = four_var(ch.s2, ch.lam, row)  # 4 (S2/n + lam) = 1 / kk**2
    if fast_f32_ok(ch.mu, ch.s2, den):
        f = fast32(ch.mu, den)
        # in-place / out-of-place twin loops (module docstring); float64 twins:
        # fwd_block_f64
        if exact:
            ex = exact32(row, ch.lam, den)
            if inplace:
                for i in range(nb):
                    wb[i] = exact_fast_f32(wb[i], f, ex)
            else:
                for i in range(nb):
                    ob[i] = exact_fast_f32(xb[i], f, ex)
        elif inplace:
            for i in range(nb):
                wb[i] = paper_fast_f32(wb[i], f)
        else:
            for i in range(nb):
                ob[i] = paper_fast_f32(xb[i], f)
        return
    k = min(1.0 / den, K_MAX)
    if exact:
        if inplace:
            for i in range(nb):
                wb[i] = exact_f32(wb[i], ch, row, 4.0 * k)
        else:
            for i in range(nb):
                ob[i] = exact_f32(xb[i], ch, row, 4.0 * k)
    elif inplace:
        for i in range(nb):
            wb[i] = paper_f32(wb[i], ch.mu, k)
    else:
        for i in range(nb):
            ob[i] = paper_f32(xb[i], ch.mu, k)


@njit(**NB)
def fwd_block_f64(xb, ob, ch, row, exact, inplace):
    """Output of the float64 block ``xb`` of channel ``ch`` into ``ob`` (into ``xb``
    when ``inplace``)."""
    nb = xb.shape[0]
    wb = writable_alias(xb, ob)
    k = paper_k(ch, row)
    # in-place / out-of-place twin loops (see the module docstring); float32
    # twins: fwd_block_f32
    if exact:
        if inplace:
            for i in range(nb):
                wb[i] = exact_f64(wb[i], ch, row)
        else:
            for i in range(nb):
                ob[i] = exact_f64(xb[i], ch, row)
    elif inplace:
        for i in range(nb):
            wb[i] = paper_f64(wb[i], ch, k)
    else:
        for i in range(nb):
            ob[i] = paper_f64(xb[i], ch, k)


def fwd_block(xb, ob, ch, row, exact, inplace):
    """Output of block ``xb`` in its dtype (stub; see :func:`_ol_fwd_block`)."""
    raise NotImplementedError  # pragma: no cover - typing-time dispatch


@overload(fwd_block)
def _ol_fwd_block(xb, ob, ch, row, exact, inplace):
    """Output of block ``xb``: :func:`fwd_block_f32` or :func:`fwd_block_f64`, picked
    at typing time (only one variant is compiled)."""
    if xb.dtype == types.float32:
        return lambda xb, ob, ch, row, exact, inplace: fwd_block_f32(xb, ob, ch, row, exact,
                                                                     inplace)
    return lambda xb, ob, ch, row, exact, inplace: fwd_block_f64(xb, ob, ch, row, exact,
                                                                 inplace)


@njit(parallel=True, **NB)
def forward_channels(x2, lam, exact, out2, block, inplace):
    """Channel path (float64): ``prange`` over rows; one thread per row computes its
    statistics (:func:`~.stats.row_stats`) then its output."""
    nc, m = x2.shape
    for c in prange(nc):
        row = row_consts(m)  # in the parfor: numba#4846
        ch = row_stats(x2[c], block, lam)
        fwd_block(x2[c], out2[c], ch, row, exact, inplace)


@njit(parallel=True, **NB)
def forward_channels_f32(x2, lam, exact, out2, inplace):
    """Channel path for float32: one thread per row, one-pass statistics."""
    nc, m = x2.shape
    lam_s = max(lam, LAM_FLOOR)
    for c in prange(nc):
        row = row_consts(m)  # in the parfor: numba#4846
        mu, s2 = row_stats_f32(x2, c, m)
        fwd_block_f32(x2[c], out2[c], Channel(1.0, mu, s2, lam_s), row, exact, inplace)


@njit(parallel=True, **NB)
def forward_split(x2, lam, exact, out2, block, inplace):
    """Split path: statistics and output parallel over (channel, block) work items."""
    nc, m = x2.shape
    scale, mu, s2 = split_stats(x2, block)
    nb = nblocks(m, block)
    for w in prange(nc * nb):
        row = row_consts(m)  # in the parfor: numba#4846
        c = w // nb
        b = w - c * nb
        ch = Channel(scale[c], mu[c], s2[c], scaled_lam(lam, scale[c]))
        fwd_block(blk(x2[c], b, block), blk(out2[c], b, block), ch, row, exact, inplace)
