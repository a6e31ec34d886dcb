"""Shared pieces of the CPU kernels: compile options, numeric limits, per-row and
per-channel records, block views and typing-time helpers.

Records (Numba named tuples) carry the per-row and per-channel scalars, so the
loops take a few named values instead of long positional lists.  Names mean one
thing throughout the kernels:

* ``m`` neurons per channel, ``n = m - 1``, ``inv_n = 1/n``, ``r = m/n``;
* ``s`` the power-of-two scale of a float64 channel (1 for float32), ``mu`` the
  mean of ``x s``, ``s2`` the sum of squared deviations ``S2``, ``lam`` the scaled,
  floored regulariser ``max(lam s**2, LAM_FLOOR)``;
* ``k = 1/(4 (S2/n + lam))`` the paper method's coefficient (``E = u**2 k + 1/2``),
  ``kk = sqrt(k)`` its float32 square root (``E = (u kk)**2 + 1/2``);
* ``p1m = mean(q alpha)`` and ``p2 = sum(q beta)``: the backward's channel sums.
"""

from __future__ import annotations

from collections import namedtuple

import numpy as np
from numba import njit, types
from numba.extending import intrinsic, overload

# Fast-math sets.  ``reassoc`` lets LLVM vectorise float64 sums (the order is
# still fixed at compile time: same binary, same bits); ``contract`` allows FMA.
# No ``nnan``/``ninf``: NaN must propagate and comparisons must stay honest.
RED = {"reassoc", "contract"}
ELEM = {"contract"}
#: Options of every kernel function (numpy error model: no ZeroDivisionError checks).
NB = {"error_model": "numpy", "cache": True}

#: Largest paper coefficient ``k`` (and exact ``1/B``): its square stays finite.
#: ``lam >= LAM_FLOOR`` already keeps ``k <= 2**498``; the clamp guards the floor.
K_MAX = 1e150
#: float32's smallest normal number.
TINY32 = np.float32(1.1754944e-38)
ONE32 = np.float32(1.0)
HALF32 = np.float32(0.5)
#: float32 channels use the all-float32 element loops when every intermediate is a
#: normal float32 far from overflow: ``|mu|, sqrt(S2) < FAST_LIM`` and
#: ``4 (S2/n + lam)`` (``1/kk**2``) in ``(2**-120, 2**120)``.
FAST_LIM = 2.0**100

#: Constants of every row of one call: ``m``, ``n = m - 1``, ``r = m/n``, ``inv_n = 1/n``.
Row = namedtuple("Row", ["m", "n", "r", "inv_n"])
#: Statistics of one channel: scale ``s``, ``mu``, ``s2`` and the scaled, floored ``lam``.
Channel = namedtuple("Channel", ["s", "mu", "s2", "lam"])
#: :data:`Channel` with its paper coefficient ``k`` (the backward's channel record).
ChannelK = namedtuple("ChannelK", ["s", "mu", "s2", "lam", "k"])
#: The backward's channel sums: ``p1m = mean(q alpha)``, ``p2 = sum(q beta)``.
Sums = namedtuple("Sums", ["p1m", "p2"])
#: float32 paper-method scalars of one channel: ``mu_hi`` (``mu`` rounded to float32),
#: ``kk = sqrt(k)`` and ``z_lo = -mu_lo kk`` for the rest ``mu_lo = mu - mu_hi``, so
#: ``z = (x - mu) kk`` is one subtraction and one FMA: ``(x - mu_hi) kk + z_lo``.
Fast32 = namedtuple("Fast32", ["mu_hi", "z_lo", "kk"])
#: float32 exact-method scalars: ``r2 = r**2``, ``q = 4 r / n`` and the floor of
#: ``1 - q z**2`` (see :func:`.elements.exact_fast_f32`).
Exact32 = namedtuple("Exact32", ["r2", "q", "floor"])
#: As :data:`Fast32` plus the backward's ``a2 = 2 kk`` and ``b8 = 8 kk**2 / n``.
FastBw32 = namedtuple("FastBw32", ["mu_hi", "mu_lo", "kk", "a2", "b8"])


@njit(**NB)
def row_consts(m):
    """The :data:`Row` record of rows of ``m`` neurons."""
    n = m - 1.0
    return Row(m, n, m / n, 1.0 / n)


@njit(**NB)
def paper_k(ch, row):
    """``k = 1/(4 (S2/n + lam))`` of channel ``ch``, at most :data:`K_MAX`."""
    return min(1.0 / (4.0 * (ch.s2 / row.n + ch.lam)), K_MAX)


@njit(**NB)
def with_k(ch, row):
    """The :data:`ChannelK` of channel ``ch``: its fields and :func:`paper_k`."""
    return ChannelK(ch.s, ch.mu, ch.s2, ch.lam, paper_k(ch, row))


@njit(**NB)
def four_var(s2, lam, row):
    """``4 (S2/n + lam)`` as the float32 paths form it (``1/kk**2``)."""
    return (4.0 * row.inv_n) * s2 + 4.0 * lam


@njit(**NB)
def fast_f32_ok(mu, s2, den):
    """Whether a float32 channel with ``den = 4 (S2/n + lam)`` runs the all-float32
    forward loops (see :data:`FAST_LIM`)."""
    return abs(mu) < FAST_LIM and s2 < FAST_LIM * FAST_LIM and 2.0**-120 < den < 2.0**120


@njit(**NB)
def split_mu(mu):
    """``(mu_hi, mu_lo)``: float64 ``mu`` as a float32 and the float32 of its rest."""
    hi = np.float32(mu)
    return hi, np.float32(mu - np.float64(hi))


@njit(**NB)
def nblocks(m, block):
    """Number of blocks of ``block`` elements covering ``m`` elements."""
    return (m + block - 1) // block


@njit(**NB)
def blk(a, b, block):
    """Block ``b`` of the 1-D array ``a`` (a view)."""
    lo = b * block
    return a[lo : min(lo + block, a.shape[0])]


def chunk(nc: int) -> int:
    """Channels per work item of the chunked channel loops (the shape alone)."""
    return max(1, min(32, nc // 64))


@intrinsic
def fma(typingctx, a, b, c):
    """``a b + c`` rounded once (LLVM ``llvm.fma``; vectorises to packed FMA).

    ``contract`` lets LLVM fuse a multiply and an add but does not oblige it to;
    spelling the FMA out makes its single rounding part of the source, whatever
    loop (vector body, scalar tail, another array type) the element math is
    compiled into.
    """
    if not (a == b == c and a in (types.float32, types.float64)):
        return None

    def codegen(context, builder, signature, args):
        """Emit ``llvm.fma`` of the arguments' type."""
        return builder.fma(*args)

    return a(a, a, a), codegen


def is_f32(arr) -> bool:  # pragma: no cover - typing-time helper
    """Whether ``arr`` is a float32 array (stub; see :func:`_ol_is_f32`)."""
    raise NotImplementedError


@overload(is_f32)
def _ol_is_f32(arr):
    """Compile-time constant: whether Numba types ``arr`` as a float32 array."""
    flag = isinstance(arr, types.Array) and arr.dtype == types.float32
    return lambda arr: flag


def writable_alias(a, b):  # pragma: no cover - typing-time helper
    """``a`` if writable else ``b`` (stub; see :func:`_ol_writable_alias`)."""
    raise NotImplementedError


@overload(writable_alias, inline="always")
def _ol_writable_alias(a, b):
    """``a`` when Numba types it writable, else ``b``: the array an in-place loop
    writes when ``a`` and ``b`` are the same memory.

    An in-place loop reads and writes one array (with two array arguments LLVM adds
    a runtime overlap check, which fails when they are the same memory and sends
    the loop down the scalar path); it is typed even when not taken, so it must not
    write a read-only ``a`` (``flags.writeable = False``, ``np.frombuffer`` of bytes,
    ``np.memmap(mode="r")`` are a distinct ``readonly`` array type).  The loop runs
    only when ``b`` is ``a``'s memory, so writing (and reading) ``b`` then is the
    same thing; a read-only ``b`` still fails typing, as it must.
    """
    if isinstance(a, types.Array) and a.mutable:
        return lambda a, b: a
    return lambda a, b: b
