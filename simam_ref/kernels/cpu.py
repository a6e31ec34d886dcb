"""Numba CPU kernels for SimAM: fused, parallel, deterministic.

The main entry points take C-contiguous ``(channels, M)`` arrays of one dtype
(float32 or float64) and follow the per-channel algorithm documented in
:mod:`simam_ref.reference` (float64 statistics, two-pass mean with one correction
step, power-of-two scaling of extreme float64 channels, paper/exact inverse
energy, analytic backward).

Structure
---------
* **Channel path** (the usual case): ``prange`` over channels; one thread runs the
  whole channel: the statistics (float64: pass 1 ``sum(x)``, pass 2
  ``sum(x - mu0)``/``sum((x - mu0)**2)``; float32: one pass over ``x - x[0]``), then
  the output.  A 56x56 float32 channel is 12.5 KB, so the output pass reads from
  L1/L2 and only the first pass and the output touch DRAM.  float32 channels whose
  intermediates are far from overflow run the output pass entirely in float32 SIMD
  (``x - mu`` with ``mu`` split into a float32 high and low part); other channels
  compute the energy in float64.
* **Split path** (fewer than :data:`SPLIT_MAX_CHANNELS` channels of at least
  :data:`SPLIT_MIN_M` neurons): every pass runs ``prange`` over ``(channel, block)``
  work items, with partial sums over fixed blocks of :data:`BLOCK` elements added in
  block order.

* **float32 backward** (channel path): per-neuron terms of the paper method in
  float32 SIMD with float64 channel sums (:func:`_bw_fast_f32`), float64 for channels
  near float32's range limits and for ``method="exact"``; rows of at most
  :data:`KEEP_MAX_M` neurons keep each neuron's ``go g + q alpha`` from the sums
  pass in a scratch row, so ``exp`` runs once per neuron.
* **Grouped float32 forward** (paper, rows of at most :data:`FLAT_MAX_M` neurons):
  :func:`_forward_flat_f32` runs one vector loop over a group of whole rows.
* **Channels-last** (:func:`forward_nlc`, :func:`backward_nlc`, float32): the
  ``(batch, M, channels)`` memory of an ``(N, H, W, C)`` array as it is, one SIMD
  lane per channel.

The path is chosen from the shape alone and every reduction has a fixed order, so
results are bit-identical run to run and for every thread count.

``exp`` is evaluated with hand-written range reduction + polynomial whose ``2**k``
factor is built by bit-casting an integer (:func:`exp_neg_f32`,
:func:`exp_neg_f64`), so LLVM vectorises it (pip Numba has no SVML; libm ``expf``
in the loop is ~8x slower than memory).
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic, overload

from ..reference import LAM_FLOOR

__all__ = [
    "BLOCK",
    "SPLIT_MAX_CHANNELS",
    "SPLIT_MIN_M",
    "FLAT_ELEMS",
    "FLAT_MAX_M",
    "KEEP_MAX_M",
    "NLC_TILE",
    "backward_2d",
    "backward_nlc",
    "exp_neg_f32",
    "exp_neg_f64",
    "forward_2d",
    "forward_nlc",
    "use_split",
]

#: Elements per partial-sum block.  Fixed (never derived from the thread count),
#: so the summation order, hence every bit of the result, is fixed.  Tests may
#: lower it to exercise the multi-block code on small arrays.
BLOCK = 4096
#: The within-channel split runs only for channels at least this long ...
SPLIT_MIN_M = 32768
#: ... and when there are fewer channels than this (a constant, never the thread
#: count, so the path, hence the bits, depend on the shape alone).
SPLIT_MAX_CHANNELS = 16

# Fast-math sets.  ``reassoc`` lets LLVM vectorise float64 sums (the order is
# still fixed at compile time: same binary, same bits); ``contract`` allows FMA.
# No ``nnan``/``ninf``: NaN must propagate and comparisons must stay honest.
_RED = {"reassoc", "contract"}
_ELEM = {"contract"}

# scaling of float64 channels (see reference step 1): skipped when the sum of
# squares shows every square and sum is comfortably inside float64's range.
_SUMSQ_LO = 2.0**-300  # the backward squares 1/S2: keep it a normal float64
_SUMSQ_HI = 2.0**300
_MIN_EXP, _MAX_EXP = -1000, 1100
# 1/(4 (S2/n + lam)) overflows when S2 == 0 and lam (scaled) is tiny; clamping the
# reciprocal keeps E = 0 * c finite (gain sigmoid(1/2)) instead of 0 * inf = NaN.
_BIG = 1.7976931348623157e308
_TINY = 5e-324
# backward clamp: its square must stay finite (the inlined VJP may be reassociated)
_BIG_BW = 1e150
_TINY32 = np.float32(1.1754944e-38)

# ---------------------------------------------------------------- fast exp(-e)
# exp(z) = 2**k * exp(r), k = round(z / ln 2), r = z - k ln 2 (|r| <= ln2/2).
# round() by adding 1.5 * 2**(p-1): the integer k lands in the low mantissa bits.
_MAGIC32 = np.float32(12582912.0)  # 1.5 * 2**23
_LOG2E32 = np.float32(1.4426950216293335)
_LN2HI32 = np.float32(0.693115234375)  # 12 significant bits: k * hi exact
_LN2LO32 = np.float32(3.1946183e-05)
# Relative-minimax polynomial for exp(r) on |r| <= ln2/2 (fitted by iteratively
# reweighted least squares in float64, coefficients rounded to float32;
# max relative error 1.7e-8 before float32 evaluation rounding).
_P32 = (
    np.float32(1.0),
    np.float32(1.0),
    np.float32(0.49999991059303284),
    np.float32(0.16666419804096222),
    np.float32(0.041668228805065155),
    np.float32(0.008374856784939766),
    np.float32(0.001383678987622261),
)
_CLAMP32 = np.float32(32.0)  # exp(-32) = 1.3e-14: 1 + t == 1 in float32 long before
_HALF32 = np.float32(0.5)
_ONE32 = np.float32(1.0)

_MAGIC64 = 6755399441055744.0  # 1.5 * 2**52
_LOG2E64 = 1.4426950408889634
_LN2HI64 = 0.6931467056274414  # 20 significant bits
_LN2LO64 = 4.7493250390316726e-07
_CLAMP64 = 40.0  # exp(-40) = 4e-18 < eps/2


@intrinsic
def _pow2_from_magic32(typingctx, y):
    """``2**k`` (float32) from ``y = 1.5 * 2**23 + k`` by integer bit arithmetic."""
    if y != types.float32:
        return None

    def codegen(context, builder, signature, args):
        i32 = ir.IntType(32)
        bits = builder.bitcast(args[0], i32)
        bits = builder.add(bits, ir.Constant(i32, 127 - 0x4B400000))
        bits = builder.shl(bits, ir.Constant(i32, 23))
        return builder.bitcast(bits, ir.FloatType())

    return types.float32(types.float32), codegen


@intrinsic
def _pow2_from_magic64(typingctx, y):
    """``2**k`` (float64) from ``y = 1.5 * 2**52 + k`` by integer bit arithmetic."""
    if y != types.float64:
        return None

    def codegen(context, builder, signature, args):
        i64 = ir.IntType(64)
        bits = builder.bitcast(args[0], i64)
        bits = builder.add(bits, ir.Constant(i64, 1023 - 0x4338000000000000))
        bits = builder.shl(bits, ir.Constant(i64, 52))
        return builder.bitcast(bits, ir.DoubleType())

    return types.float64(types.float64), codegen


@njit(fastmath=_ELEM, cache=True, error_model="numpy")
def exp_neg_f32(e: np.float32) -> np.float32:
    """``exp(-e)`` in float32 for ``e >= 0`` (0 beyond the clamp, NaN gives NaN).

    Arguments above 32 give exactly 0 (``1 + exp(-32) == 1`` in float32).
    Vectorises (no libm call).  Max relative error 1.5e-7 for e in [0, 32]
    (measured 8.8e-8; ``tests/test_fast_exp.py``).
    """
    big = e > _CLAMP32  # NaN compares false and stays NaN
    if big:
        e = _CLAMP32
    z = -e
    y = z * _LOG2E32 + _MAGIC32
    k = y - _MAGIC32
    r = z - k * _LN2HI32
    r = r - k * _LN2LO32
    p = _P32[6]
    p = p * r + _P32[5]
    p = p * r + _P32[4]
    p = p * r + _P32[3]
    p = p * r + _P32[2]
    p = p * r + _P32[1]
    p = p * r + _P32[0]
    return np.float32(0.0) if big else p * _pow2_from_magic32(y)


@njit(fastmath=_ELEM, cache=True, error_model="numpy")
def exp_neg_f64(e: float) -> float:
    """``exp(-e)`` in float64 for ``e >= 0`` (exactly 0 above 40; NaN gives NaN).

    Degree-13 Taylor polynomial on ``|r| <= ln2/2`` (truncation < 1e-17);
    vectorises.  Max relative error 5e-16 for e in [0, 40] (measured 2.2e-16).
    """
    big = e > _CLAMP64
    if big:
        e = _CLAMP64
    z = -e
    y = z * _LOG2E64 + _MAGIC64
    k = y - _MAGIC64
    r = z - k * _LN2HI64
    r = r - k * _LN2LO64
    p = 1.0 / 6227020800.0
    p = p * r + 1.0 / 479001600.0
    p = p * r + 1.0 / 39916800.0
    p = p * r + 1.0 / 3628800.0
    p = p * r + 1.0 / 362880.0
    p = p * r + 1.0 / 40320.0
    p = p * r + 1.0 / 5040.0
    p = p * r + 1.0 / 720.0
    p = p * r + 1.0 / 120.0
    p = p * r + 1.0 / 24.0
    p = p * r + 1.0 / 6.0
    p = p * r + 0.5
    p = p * r + 1.0
    p = p * r + 1.0
    return 0.0 if big else p * _pow2_from_magic64(y)


# --------------------------------------------------------- dtype-generic helpers
def _is_f32(arr) -> bool:  # pragma: no cover - typing-time helper
    raise NotImplementedError


@overload(_is_f32)
def _ol_is_f32(arr):
    flag = isinstance(arr, types.Array) and arr.dtype == types.float32
    return lambda arr: flag


def _exp_neg_like(e, like):  # pragma: no cover - typing-time helper
    raise NotImplementedError


@overload(_exp_neg_like)
def _ol_exp_neg_like(e, like):
    """float64 ``exp(-e)`` at the precision of the scalar ``like``'s type."""
    if like == types.float32:
        return lambda e, like: np.float64(exp_neg_f32(np.float32(e)))
    return lambda e, like: exp_neg_f64(e)


def _writable_alias(a, b):  # pragma: no cover - typing-time helper
    raise NotImplementedError


@overload(_writable_alias, inline="always")
def _ol_writable_alias(a, b):
    """``a`` when Numba types it writable, else ``b``: the array an in-place loop
    writes when ``a`` and ``b`` are the same memory.

    An in-place loop reads and writes one array (see :func:`_fwd_block_f32`); it is
    typed even when not taken, so it must not write a read-only ``a``
    (``flags.writeable = False``, ``np.frombuffer`` of bytes, ``np.memmap(mode="r")``
    are a distinct ``readonly`` array type).  The loop runs only when ``b`` is ``a``'s
    memory, so writing (and reading) ``b`` then is the same thing; a read-only ``b``
    still fails typing, as it must.
    """
    if isinstance(a, types.Array) and a.mutable:
        return lambda a, b: a
    return lambda a, b: b


# ------------------------------------------------------------------- reductions
@njit(fastmath=_RED, cache=True, error_model="numpy")
def _sum_block(xb):
    """``sum(x)`` and (float64 only) ``sum(x*x)`` of the 1-D block ``xb``, in float64.

    Loops here start at 0 (callers pass slices): a variable start makes Numba
    emit negative-index wraparound per element, which defeats vectorisation.
    """
    acc = 0.0
    acc2 = 0.0
    if _is_f32(xb):
        for i in range(xb.shape[0]):
            acc += np.float64(xb[i])
    else:
        for i in range(xb.shape[0]):
            v = np.float64(xb[i])
            acc += v
            acc2 += v * v
    return acc, acc2


@njit(fastmath=_RED, cache=True, error_model="numpy")
def _sum_block_scaled(xb, s):
    acc = 0.0
    for i in range(xb.shape[0]):
        acc += np.float64(xb[i]) * s
    return acc


@njit(fastmath=_RED, cache=True, error_model="numpy")
def _dev_block(xb, s, mu0):
    """``sum(x s - mu0)`` and ``sum((x s - mu0)**2)`` of the block ``xb``."""
    su = 0.0
    ss = 0.0
    if s == 1.0:
        for i in range(xb.shape[0]):
            d = np.float64(xb[i]) - mu0
            su += d
            ss += d * d
    else:
        for i in range(xb.shape[0]):
            d = np.float64(xb[i]) * s - mu0
            su += d
            ss += d * d
    return su, ss


@njit(cache=True, error_model="numpy")
def _scale_for(xr, sumsq):
    """Power-of-two scale ``s`` of reference step 1 (1.0 when it is the identity)."""
    if _is_f32(xr):
        return 1.0
    if sumsq >= _SUMSQ_LO and sumsq <= _SUMSQ_HI:
        return 1.0
    amax = 0.0
    finite = True
    for i in range(xr.shape[0]):
        a = abs(np.float64(xr[i]))
        if a > amax:
            amax = a
        elif not (a <= amax):  # NaN
            finite = False
    if not finite or math.isinf(amax):
        amax = 1.0
    ex = math.frexp(amax)[1]
    ex = min(max(ex, _MIN_EXP), _MAX_EXP)
    return math.ldexp(1.0, -ex)


_NB = {"error_model": "numpy", "cache": True}


@njit(**_NB)
def _nblocks(m, block):
    return (m + block - 1) // block


@njit(**_NB)
def _blk(a, b, block):
    """Block ``b`` of the 1-D array ``a`` (a view)."""
    lo = b * block
    return a[lo : min(lo + block, a.shape[0])]


@njit(**_NB)
def _row_stats(xr, block):
    """``(s, mu, S2)`` of one row, summing per block in block order."""
    m = xr.shape[0]
    nb = _nblocks(m, block)
    t = 0.0
    q = 0.0
    for b in range(nb):
        bs, bq = _sum_block(_blk(xr, b, block))
        t += bs
        q += bq
    s = _scale_for(xr, q)
    if s != 1.0:
        t = 0.0
        for b in range(nb):
            t += _sum_block_scaled(_blk(xr, b, block), s)
    mu0 = t / m
    su = 0.0
    ss = 0.0
    for b in range(nb):
        a, c = _dev_block(_blk(xr, b, block), s, mu0)
        su += a
        ss += c
    return s, mu0 + su / m, max(ss - su * su / m, 0.0)


# ----------------------------------------------------------------- forward rows
# Element functions carry their own fast-math flags (kept after LLVM inlines
# them).  Each loop has an in-place twin that reads and writes one array: with
# two array arguments LLVM adds a runtime overlap check, which fails when they
# are the same memory and sends the loop down the scalar path.
@njit(fastmath=_ELEM, **_NB)
def _paper_f32(xv, mu, c):
    # E in float64 (|u| up to 7e38 squares fine; float32 u*u would overflow)
    u = np.float64(xv) - mu
    return xv / (_ONE32 + exp_neg_f32(np.float32(u * u * c + 0.5)))


@njit(fastmath=_ELEM, **_NB)
def _exact_f32(xv, mu, s2, r, a, b, c0):
    # E = r^2 d / (4 (var_t + lam)): numerator and denominator are both scaled by
    # K = 1 / (S2/n + lam) in float64 (a = r^2 K, b = 4K/n, c0 = 4 lam K), which
    # keeps them in float32 range; the division runs in float32.
    u = np.float64(xv) - mu
    d = u * u
    v = s2 - r * d
    if v < 0.0:
        v = 0.0
    den = np.float32(v * b + c0)
    if den < _TINY32:  # S2 == 0 and lam tiny: d == 0 gives E = 1/2, not 0/0
        den = _TINY32
    e = np.float32(d * a) / den + _HALF32
    return xv / (_ONE32 + exp_neg_f32(e))


@njit(fastmath=_ELEM, **_NB)
def _paper_f64(xv, s, mu, c):
    u = xv * s - mu
    return xv / (1.0 + exp_neg_f64(u * u * c + 0.5))


@njit(fastmath=_ELEM, **_NB)
def _exact_f64(xv, s, mu, s2, r, r2, four_n, four_lam):
    u = xv * s - mu
    d = u * u
    v = s2 - r * d
    if v < 0.0:
        v = 0.0
    den = v * four_n + four_lam
    if den < _TINY:
        den = _TINY
    return xv / (1.0 + exp_neg_f64(r2 * d / den + 0.5))


@njit(fastmath=_ELEM, **_NB)
def _paper_fast_f32(xv, mu_hi, mu_lo, kk):
    # all float32: z**2 = (x - mu)**2 / (4 (S2/n + lam)), mu split into hi + lo parts
    z = ((xv - mu_hi) - mu_lo) * kk
    return xv / (_ONE32 + exp_neg_f32(z * z + _HALF32))


@njit(fastmath=_ELEM, **_NB)
def _exact_fast_f32(xv, mu_hi, mu_lo, kk, r2, q, floor):
    # E - 1/2 = r^2 d / (4 (var_t + lam)) = r^2 z^2 / (1 - q z^2) with q = 4 r / n:
    # 4 (var_t + lam) = (1 - q z^2) * 4 (S2/n + lam); the denominator is >= floor,
    # its value at var_t = 0, which clamps rounding below the leave-one-out minimum.
    z = ((xv - mu_hi) - mu_lo) * kk
    z2 = z * z
    den = _ONE32 - q * z2
    if den < floor:
        den = floor
    return xv / (_ONE32 + exp_neg_f32(r2 * z2 / den + _HALF32))


#: float32 channels use the all-float32 element loop when every intermediate is a
#: normal float32 far from overflow: |mu|, sqrt(S2) < 2**100 and 4 (S2/n + lam) (the
#: inverse square of the scale ``kk``) in (2**-120, 2**120); other channels compute E
#: in float64.
_FAST_LIM = 2.0**100


@njit(**_NB)
def _fwd_block_f32(xb, ob, mu, s2, r, four_n, four_lam, exact, inplace):
    """Output of float32 block ``xb`` (``s == 1``) given its channel's ``mu, S2``;
    ``four_n = 4/n``, ``four_lam = 4 lam``."""
    nb = xb.shape[0]
    wb = _writable_alias(xb, ob)  # the in-place loops read and write only wb
    den = four_n * s2 + four_lam  # 4 (S2/n + lam) = 1 / kk**2
    if abs(mu) < _FAST_LIM and s2 < _FAST_LIM * _FAST_LIM and 2.0**-120 < den < 2.0**120:
        mu_hi = np.float32(mu)
        mu_lo = np.float32(mu - np.float64(mu_hi))
        # kk in float32 (it is rounded to float32 anyway): a short latency chain from
        # the statistics to the loop, which matters on 7x7 channels
        kk = _ONE32 / np.sqrt(np.float32(den))
        if exact:
            r2 = np.float32(r * r)
            q = np.float32(r * four_n)
            floor = max(np.float32(four_lam / den), _TINY32)
            if inplace:
                for i in range(nb):
                    wb[i] = _exact_fast_f32(wb[i], mu_hi, mu_lo, kk, r2, q, floor)
            else:
                for i in range(nb):
                    ob[i] = _exact_fast_f32(xb[i], mu_hi, mu_lo, kk, r2, q, floor)
        elif inplace:
            for i in range(nb):
                wb[i] = _paper_fast_f32(wb[i], mu_hi, mu_lo, kk)
        else:
            for i in range(nb):
                ob[i] = _paper_fast_f32(xb[i], mu_hi, mu_lo, kk)
        return
    c = min(1.0 / den, _BIG)  # 1 / (4 (S2/n + lam))
    # u and E in float64, exp and the output in float32
    kk = c * 4.0  # 1 / (S2/n + lam)
    a = r * r * kk
    b = four_n * kk
    c0 = four_lam * kk
    if exact:
        if inplace:
            for i in range(nb):
                wb[i] = _exact_f32(wb[i], mu, s2, r, a, b, c0)
        else:
            for i in range(nb):
                ob[i] = _exact_f32(xb[i], mu, s2, r, a, b, c0)
    elif inplace:
        for i in range(nb):
            wb[i] = _paper_f32(wb[i], mu, c)
    else:
        for i in range(nb):
            ob[i] = _paper_f32(xb[i], mu, c)


@njit(**_NB)
def _fwd_block_f64(xb, ob, s, mu, s2, r, four_n, four_lam, c, exact, inplace):
    nb = xb.shape[0]
    wb = _writable_alias(xb, ob)
    r2 = r * r
    if exact:
        if inplace:
            for i in range(nb):
                wb[i] = _exact_f64(wb[i], s, mu, s2, r, r2, four_n, four_lam)
        else:
            for i in range(nb):
                ob[i] = _exact_f64(xb[i], s, mu, s2, r, r2, four_n, four_lam)
    elif inplace:
        for i in range(nb):
            wb[i] = _paper_f64(wb[i], s, mu, c)
    else:
        for i in range(nb):
            ob[i] = _paper_f64(xb[i], s, mu, c)


def _fwd_block_dt(xb, ob, s, mu, s2, r, four_n, four_lam, c, exact, inplace):
    raise NotImplementedError  # pragma: no cover - typing-time dispatch


@overload(_fwd_block_dt)
def _ol_fwd_block_dt(xb, ob, s, mu, s2, r, four_n, four_lam, c, exact, inplace):
    """Pick the dtype's loop at typing time (only one variant is compiled)."""
    if xb.dtype == types.float32:

        def impl32(xb, ob, s, mu, s2, r, four_n, four_lam, c, exact, inplace):
            _fwd_block_f32(xb, ob, mu, s2, r, four_n, four_lam, exact, inplace)

        return impl32

    def impl64(xb, ob, s, mu, s2, r, four_n, four_lam, c, exact, inplace):
        _fwd_block_f64(xb, ob, s, mu, s2, r, four_n, four_lam, c, exact, inplace)

    return impl64


@njit(**_NB)
def _fwd_block(xb, ob, m, s, mu, s2, lam, exact, inplace):
    """Output of block ``xb`` into ``ob`` (or into ``xb`` when ``inplace``) given its
    row's statistics ``s, mu, S2`` (row length ``m``)."""
    n = m - 1.0
    lam_s = max(lam * s * s, LAM_FLOOR)
    c = 1.0 / (4.0 * (s2 / n + lam_s))
    if c > _BIG:
        c = _BIG
    _fwd_block_dt(xb, ob, s, mu, s2, m / n, 4.0 / n, 4.0 * lam_s, c, exact, inplace)


@njit(**_NB)
def _fwd_rows(xr, orow, b, block, s, mu, s2, lam, exact, inplace):
    """Output block ``b`` of one row."""
    _fwd_block(_blk(xr, b, block), _blk(orow, b, block), xr.shape[0], s, mu, s2, lam, exact,
               inplace)


# ------------------------------------------------------------- forward kernels
@njit(parallel=True, **_NB)
def _forward_channels(x2, lam, exact, out2, block, inplace):
    nc, m = x2.shape
    for c in prange(nc):
        xr = x2[c]
        s, mu, s2 = _row_stats(xr, block)
        _fwd_rows(xr, out2[c], 0, m, s, mu, s2, lam, exact, inplace)


@njit(fastmath=_RED, **_NB)
def _row_stats_f32(x2, c, m):
    """``(mu, S2)`` of float32 row ``c`` in one pass, 2-D indexing.

    Sums of ``v = x - x[0]`` (exact in float64) and ``v**2``: shifting by a value of
    the channel keeps ``S2 = sum v**2 - (sum v)**2 / m`` well conditioned, since
    ``(x[0] - mu)**2 <= S2`` (relative error at most ~``m * eps``).  A constant channel
    gets ``mu`` exactly and ``S2 = 0`` (reference step 2's guarantees).
    """
    k = np.float64(x2[c, 0])
    s1 = 0.0
    s2 = 0.0
    for i in range(m):
        v = np.float64(x2[c, i]) - k
        s1 += v
        s2 += v * v
    return k + s1 / m, max(s2 - s1 * s1 / m, 0.0)


@njit(parallel=True, **_NB)
def _forward_channels_f32(x2, lam, exact, out2, inplace):
    """Channel path for float32: one thread per row, one-pass statistics."""
    nc, m = x2.shape
    n = m - 1.0
    four_lam = 4.0 * max(lam, LAM_FLOOR)
    for c in prange(nc):
        mu, s2 = _row_stats_f32(x2, c, m)
        _fwd_block_f32(x2[c], out2[c], mu, s2, m / n, 4.0 / n, four_lam, exact, inplace)


#: float32 rows of at most this many neurons run the paper forward in groups of
#: whole rows (:func:`_forward_flat_f32`): one vector loop over the group instead
#: of one per row, so a 49-neuron row has no scalar tail and the rows' statistics,
#: square roots and divisions overlap.  A constant (the path depends on the shape).
FLAT_MAX_M = 128
#: Neurons per group of :func:`_forward_flat_f32` (its scratch stays in L1).
FLAT_ELEMS = 1024


@njit(fastmath=_ELEM, **_NB)
def _paper_flat_f32(xf, of, pm, pl, pk, inplace):
    """:func:`_paper_fast_f32` of every element with per-element ``mu_hi``, ``mu_lo``
    and ``kk`` (``pm``, ``pl``, ``pk``)."""
    if inplace:
        wf = _writable_alias(xf, of)
        for j in range(wf.shape[0]):
            wf[j] = _paper_fast_f32(wf[j], pm[j], pl[j], pk[j])
    else:
        for j in range(xf.shape[0]):
            of[j] = _paper_fast_f32(xf[j], pm[j], pl[j], pk[j])


@njit(parallel=True, **_NB)
def _forward_flat_f32(x2, x1, lam, out2, o1, inplace, group):
    """Paper forward of float32 rows in groups of ``group`` rows (``x1``, ``o1``: the
    flat views of ``x2``, ``out2``).  Each row's ``mu_hi``, ``mu_lo``, ``kk`` are those
    of :func:`_fwd_block_f32`, broadcast over its neurons in scratch rows; a run of
    consecutive fast rows is one loop of :func:`_paper_flat_f32` (the same element
    function, so the same bits); other rows run :func:`_fwd_block_f32`."""
    nc, m = x2.shape
    n = m - 1.0
    four_n = 4.0 / n
    four_lam = 4.0 * max(lam, LAM_FLOOR)
    nw = (nc + group - 1) // group
    for w in prange(nw):
        pm = np.empty(group * m, dtype=np.float32)
        pl = np.empty(group * m, dtype=np.float32)
        pk = np.empty(group * m, dtype=np.float32)
        c0 = w * group
        c1 = min(nc, c0 + group)
        start = c0
        for c in range(c0, c1 + 1):
            fast = False
            if c < c1:
                mu, s2 = _row_stats_f32(x2, c, m)
                den = four_n * s2 + four_lam
                fast = (abs(mu) < _FAST_LIM and s2 < _FAST_LIM * _FAST_LIM
                        and 2.0**-120 < den < 2.0**120)
                if fast:
                    mu_hi = np.float32(mu)
                    mu_lo = np.float32(mu - np.float64(mu_hi))
                    kk = _ONE32 / np.sqrt(np.float32(den))
                    j = (c - c0) * m
                    pm[j:j + m] = mu_hi
                    pl[j:j + m] = mu_lo
                    pk[j:j + m] = kk
            if not fast:
                if start < c:
                    a = (start - c0) * m
                    b = (c - c0) * m
                    _paper_flat_f32(x1[start * m:c * m], o1[start * m:c * m], pm[a:b], pl[a:b],
                                    pk[a:b], inplace)
                if c < c1:
                    _fwd_block_f32(x2[c], out2[c], mu, s2, m / n, four_n, four_lam, False,
                                   inplace)
                start = c + 1


@njit(parallel=True, **_NB)
def _split_stats(x2, block):
    """Per-channel ``(s, mu, S2)`` with every pass parallel over (channel, block)."""
    nc, m = x2.shape
    nb = _nblocks(m, block)
    part = np.empty((nc, nb, 2))
    for w in prange(nc * nb):
        c = w // nb
        bs, bq = _sum_block(_blk(x2[c], w - c * nb, block))
        part[c, w - c * nb, 0] = bs
        part[c, w - c * nb, 1] = bq
    scale = np.empty(nc)
    mu0 = np.empty(nc)
    for c in prange(nc):
        t = 0.0
        q = 0.0
        for b in range(nb):
            t += part[c, b, 0]
            q += part[c, b, 1]
        s = _scale_for(x2[c], q)
        if s != 1.0:
            t = 0.0
            for b in range(nb):
                t += _sum_block_scaled(_blk(x2[c], b, block), s)
        scale[c] = s
        mu0[c] = t / m
    for w in prange(nc * nb):
        c = w // nb
        su, ss = _dev_block(_blk(x2[c], w - c * nb, block), scale[c], mu0[c])
        part[c, w - c * nb, 0] = su
        part[c, w - c * nb, 1] = ss
    mu = np.empty(nc)
    s2 = np.empty(nc)
    for c in range(nc):
        su = 0.0
        ss = 0.0
        for b in range(nb):
            su += part[c, b, 0]
            ss += part[c, b, 1]
        mu[c] = mu0[c] + su / m
        s2[c] = max(ss - su * su / m, 0.0)
    return scale, mu, s2


@njit(parallel=True, **_NB)
def _forward_split(x2, lam, exact, out2, block, inplace):
    nc, m = x2.shape
    scale, mu, s2 = _split_stats(x2, block)
    nb = _nblocks(m, block)
    for w in prange(nc * nb):
        c = w // nb
        _fwd_rows(x2[c], out2[c], w - c * nb, block, scale[c], mu[c], s2[c], lam, exact,
                  inplace)


# -------------------------------------------------------------------- backward
# inline="always": Numba-IR inlining (LLVM's inliner judges it too big, and a
# call in the loop blocks vectorisation).  It then takes its caller's fast-math
# flags; the exp helpers it calls keep their own.
@njit(fastmath=_ELEM, inline="always", **_NB)
def _bw_elem(xn, gn, s, mu, k, lam_s, n, exact):
    """``(go*gain, q*alpha, q*beta, u)`` of one neuron (float64) from ``x``, ``grad_out``
    in the array dtype (float32 input uses the float32 exp).

    ``k`` is ``1/(4 (S2/n + lam_s))`` for paper and ``S2`` for exact.
    """
    like = xn
    xv = np.float64(xn)
    gov = np.float64(gn)
    xs = xv * s
    u = xs - mu
    d = u * u
    if exact:
        r = (n + 1.0) / n
        r2 = r * r
        v = k - r * d
        if v < 0.0:
            v = 0.0
        inv_b = 1.0 / (4.0 * (v / n + lam_s))
        if inv_b > _BIG_BW:
            inv_b = _BIG_BW
        e = r2 * d * inv_b + 0.5
        t = _exp_neg_like(e, like)
        g = 1.0 / (1.0 + t)
        q = gov * xs * g * (t * g)
        # u = d = 0 must give 0 even when inv_b is clamped (inv_b**2 stays finite)
        ui = u * inv_b
        di = d * inv_b
        alpha = 2.0 * r2 * ui + (8.0 * r2 * r / n) * ui * di
        beta = di * inv_b * (8.0 * r2 / n)
    else:
        e = d * k + 0.5
        t = _exp_neg_like(e, like)
        g = 1.0 / (1.0 + t)
        q = gov * xs * g * (t * g)
        alpha = 2.0 * u * k
        beta = d * k * k * (8.0 / n)
    return gov * g, q * alpha, q * beta, u


@njit(fastmath=_RED, **_NB)
def _bw_sums(xb, gb, s, mu, k, lam_s, n, exact):
    """``sum(q alpha)`` and ``sum(q beta)`` over one block."""
    p1 = 0.0
    p2 = 0.0
    for i in range(xb.shape[0]):
        _, qa, qb, _ = _bw_elem(xb[i], gb[i], s, mu, k, lam_s, n, exact)
        p1 += qa
        p2 += qb
    return p1, p2


@njit(fastmath=_ELEM, inline="always", **_NB)
def _bw_val(xv, gv, s, mu, k, lam_s, n, exact, p1m, p2):
    gg, qa, _, u = _bw_elem(xv, gv, s, mu, k, lam_s, n, exact)
    return gg + qa - p1m - u * p2


@njit(**_NB)
def _bw_out(xb, gb, ob, s, mu, k, lam_s, n, exact, p1m, p2, alias):
    """Output of one block; ``alias`` 0: into ``ob``, 1: into ``xb``, 2: into ``gb``
    (separate loops so LLVM sees a single array, see :func:`_fwd_block`; a read-only
    ``xb`` or ``gb`` is written through ``ob``, its same memory, see
    :func:`_writable_alias`)."""
    if alias == 1:
        wx = _writable_alias(xb, ob)
        for i in range(xb.shape[0]):
            wx[i] = _bw_val(wx[i], gb[i], s, mu, k, lam_s, n, exact, p1m, p2)
    elif alias == 2:
        wg = _writable_alias(gb, ob)
        for i in range(xb.shape[0]):
            wg[i] = _bw_val(xb[i], wg[i], s, mu, k, lam_s, n, exact, p1m, p2)
    else:
        for i in range(xb.shape[0]):
            ob[i] = _bw_val(xb[i], gb[i], s, mu, k, lam_s, n, exact, p1m, p2)


@njit(**_NB)
def _bw_k(s2, lam_s, n, exact):
    if exact:
        return s2
    k = 1.0 / (4.0 * (s2 / n + lam_s))
    return _BIG_BW if k > _BIG_BW else k


@njit(**_NB)
def _bw_rows(xr, gr, orow, b, block, s, mu, k, lam_s, n, exact, p1m, p2, alias):
    """Output block ``b`` of one row."""
    _bw_out(_blk(xr, b, block), _blk(gr, b, block), _blk(orow, b, block), s, mu, k, lam_s, n,
            exact, p1m, p2, alias)


@njit(parallel=True, **_NB)
def _backward_channels(x2, g2, lam, exact, out2, block, alias):
    nc, m = x2.shape
    n = m - 1.0
    nb = _nblocks(m, block)
    for c in prange(nc):
        xr = x2[c]
        gr = g2[c]
        s, mu, s2 = _row_stats(xr, block)
        lam_s = max(lam * s * s, LAM_FLOOR)
        k = _bw_k(s2, lam_s, n, exact)
        p1 = 0.0
        p2 = 0.0
        for b in range(nb):
            a, q = _bw_sums(_blk(xr, b, block), _blk(gr, b, block), s, mu, k, lam_s, n, exact)
            p1 += a
            p2 += q
        _bw_rows(xr, gr, out2[c], 0, m, s, mu, k, lam_s, n, exact, p1 / m, p2, alias)


# float32 paper backward: with z = u kk (kk = 1/sqrt(4 (S2/n + lam)), as the
# forward's fast loop), E = z**2 + 1/2, q alpha = q z (2 kk), q beta = q z**2 (8 kk**2/n):
# every per-neuron value in float32 SIMD (8 lanes on AVX2 instead of 4 in float64),
# the two channel sums accumulated in float64.
@njit(fastmath=_ELEM, inline="always", **_NB)
def _bw_fast_f32(xv, gv, mu_hi, mu_lo, kk, a2, b8):
    """float32 ``(go g, q alpha, q beta, u)`` of one neuron (paper method)."""
    u = (xv - mu_hi) - mu_lo
    z = u * kk
    z2 = z * z
    t = exp_neg_f32(z2 + _HALF32)
    g = _ONE32 / (_ONE32 + t)
    q = gv * xv * g * (t * g)
    return gv * g, q * z * a2, q * z2 * b8, u


@njit(fastmath=_RED, **_NB)
def _bw_sums_fast_f32(xb, gb, mu_hi, mu_lo, kk, a2, b8):
    """``sum(q alpha)``, ``sum(q beta)`` and ``sum(|go|)`` (float64) of one row."""
    p1 = 0.0
    p2 = 0.0
    sg = 0.0
    for i in range(xb.shape[0]):
        gv = gb[i]
        _, qa, qb, _ = _bw_fast_f32(xb[i], gv, mu_hi, mu_lo, kk, a2, b8)
        p1 += np.float64(qa)
        p2 += np.float64(qb)
        sg += np.float64(abs(gv))
    return p1, p2, sg


@njit(fastmath=_ELEM, **_NB)
def _bw_out_fast_f32(xb, gb, ob, mu_hi, mu_lo, kk, a2, b8, p1m, p2, alias):
    """Output of one row from :func:`_bw_fast_f32` (``alias`` as :func:`_bw_out`)."""
    if alias == 1:
        wx = _writable_alias(xb, ob)
        for i in range(xb.shape[0]):
            gg, qa, _, u = _bw_fast_f32(wx[i], gb[i], mu_hi, mu_lo, kk, a2, b8)
            wx[i] = gg + qa - p1m - u * p2
    elif alias == 2:
        wg = _writable_alias(gb, ob)
        for i in range(xb.shape[0]):
            gg, qa, _, u = _bw_fast_f32(xb[i], wg[i], mu_hi, mu_lo, kk, a2, b8)
            wg[i] = gg + qa - p1m - u * p2
    else:
        for i in range(xb.shape[0]):
            gg, qa, _, u = _bw_fast_f32(xb[i], gb[i], mu_hi, mu_lo, kk, a2, b8)
            ob[i] = gg + qa - p1m - u * p2


@njit(**_NB)
def _bw_fast_ok(mu, s2, den):
    """Whether a float32 channel's statistics allow the float32 backward: the
    forward's all-float32 test, and ``1/den`` (``den = 4 (S2/n + lam)``) squared
    inside float32's normal range."""
    return abs(mu) < _FAST_LIM and s2 < _FAST_LIM * _FAST_LIM and 2.0**-60 < den < 2.0**60


@njit(**_NB)
def _bw_sums_ok(p1, p2, sg, m):
    """Whether the float32 sums are trustworthy: finite (no float32 overflow) and
    ``mean |go|`` far from float32's overflow and underflow (or exactly 0)."""
    gm = sg / m
    return math.isfinite(p1) and math.isfinite(p2) and (gm == 0.0 or 2.0**-60 < gm < 2.0**60)


#: float32 channels of at most this many neurons run the paper backward's element
#: math once: the sums pass keeps ``go g + q alpha`` of every neuron in a per-chunk
#: scratch row (L1-resident) and the output pass only adds the channel terms.  A
#: constant, so the path depends on the shape alone.
KEEP_MAX_M = 1024


@njit(fastmath=_RED, **_NB)
def _bw_sums_keep_f32(xb, gb, sb, mu_hi, mu_lo, kk, a2, b8):
    """As :func:`_bw_sums_fast_f32`, also storing ``go g + q alpha`` of neuron ``i``
    into ``sb[i]``."""
    p1 = 0.0
    p2 = 0.0
    sg = 0.0
    for i in range(xb.shape[0]):
        gv = gb[i]
        gg, qa, qb, _ = _bw_fast_f32(xb[i], gv, mu_hi, mu_lo, kk, a2, b8)
        sb[i] = gg + qa
        p1 += np.float64(qa)
        p2 += np.float64(qb)
        sg += np.float64(abs(gv))
    return p1, p2, sg


@njit(fastmath=_ELEM, **_NB)
def _bw_out_keep_f32(xb, sb, ob, mu_hi, mu_lo, p1m, p2, alias):
    """Output of one row from the kept ``go g + q alpha`` in ``sb``; ``grad_out`` is
    not read again, so ``alias`` 2 writes ``ob`` as a separate array."""
    if alias == 1:
        wx = _writable_alias(xb, ob)
        for i in range(xb.shape[0]):
            wx[i] = sb[i] - p1m - ((wx[i] - mu_hi) - mu_lo) * p2
    else:
        for i in range(xb.shape[0]):
            ob[i] = sb[i] - p1m - ((xb[i] - mu_hi) - mu_lo) * p2


@njit(**_NB)
def _bw_row_f32(x2, g2, out2, c, lam_s, exact, alias, sb):
    """Backward of float32 row ``c``; an empty ``sb`` evaluates the element math in
    both passes, else ``sb`` (one row long) keeps it from the sums pass."""
    m = x2.shape[1]
    n = m - 1.0
    xr = x2[c]
    gr = g2[c]
    orow = out2[c]
    mu, s2 = _row_stats_f32(x2, c, m)
    den = 4.0 * (s2 / n + lam_s)
    if not exact and _bw_fast_ok(mu, s2, den):
        mu_hi = np.float32(mu)
        mu_lo = np.float32(mu - np.float64(mu_hi))
        kk = 1.0 / math.sqrt(den)
        kk32 = np.float32(kk)
        a2 = np.float32(2.0 * kk)
        b8 = np.float32(8.0 * kk * kk / n)
        if sb.shape[0] > 0:
            p1, p2, sg = _bw_sums_keep_f32(xr, gr, sb, mu_hi, mu_lo, kk32, a2, b8)
            if _bw_sums_ok(p1, p2, sg, m):
                _bw_out_keep_f32(xr, sb, orow, mu_hi, mu_lo, np.float32(p1 / m),
                                 np.float32(p2), alias)
                return
        else:
            p1, p2, sg = _bw_sums_fast_f32(xr, gr, mu_hi, mu_lo, kk32, a2, b8)
            if _bw_sums_ok(p1, p2, sg, m):
                _bw_out_fast_f32(xr, gr, orow, mu_hi, mu_lo, kk32, a2, b8, np.float32(p1 / m),
                                 np.float32(p2), alias)
                return
    k = _bw_k(s2, lam_s, n, exact)
    p1, p2 = _bw_sums(xr, gr, 1.0, mu, k, lam_s, n, exact)
    _bw_out(xr, gr, orow, 1.0, mu, k, lam_s, n, exact, p1 / m, p2, alias)


@njit(parallel=True, **_NB)
def _backward_channels_f32(x2, g2, lam, exact, out2, alias, chunk):
    """Channel path of the float32 backward: one-pass statistics
    (:func:`_row_stats_f32`); the paper method runs :func:`_bw_fast_f32` where
    :func:`_bw_fast_ok` and :func:`_bw_sums_ok` allow, else (and for exact) the
    float64 element code of :func:`_bw_elem`.  ``prange`` over chunks of ``chunk``
    channels (scheduling only: every channel's bits are its own), each with one
    scratch row for the rows of at most :data:`KEEP_MAX_M` neurons."""
    nc, m = x2.shape
    lam_s = max(lam, LAM_FLOOR)
    keep = m if (m <= KEEP_MAX_M and not exact) else 0
    nw = (nc + chunk - 1) // chunk
    for w in prange(nw):
        sb = np.empty(keep, dtype=np.float32)
        for c in range(w * chunk, min(nc, (w + 1) * chunk)):
            _bw_row_f32(x2, g2, out2, c, lam_s, exact, alias, sb)


def _chunk(nc: int) -> int:
    """Channels per work item of the chunked channel loops (the shape alone)."""
    return max(1, min(32, nc // 64))


@njit(parallel=True, **_NB)
def _backward_split(x2, g2, lam, exact, out2, block, alias):
    nc, m = x2.shape
    n = m - 1.0
    nb = _nblocks(m, block)
    scale, mu, s2 = _split_stats(x2, block)
    lam_s = np.empty(nc)
    kk = np.empty(nc)
    for c in range(nc):
        lam_s[c] = max(lam * scale[c] * scale[c], LAM_FLOOR)
        kk[c] = _bw_k(s2[c], lam_s[c], n, exact)
    part = np.empty((nc, nb, 2))
    for w in prange(nc * nb):
        c = w // nb
        b = w - c * nb
        a, q = _bw_sums(_blk(x2[c], b, block), _blk(g2[c], b, block), scale[c], mu[c], kk[c],
                        lam_s[c], n, exact)
        part[c, b, 0] = a
        part[c, b, 1] = q
    p1m = np.empty(nc)
    p2 = np.empty(nc)
    for c in range(nc):
        a = 0.0
        q = 0.0
        for b in range(nb):
            a += part[c, b, 0]
            q += part[c, b, 1]
        p1m[c] = a / m
        p2[c] = q
    for w in prange(nc * nb):
        c = w // nb
        _bw_rows(x2[c], g2[c], out2[c], w - c * nb, block, scale[c], mu[c], kk[c], lam_s[c], n,
                 exact, p1m[c], p2[c], alias)


# ---------------------------------------------------- channels-last (B, M, C)
# ``x3[b, i, :]`` holds neuron ``i`` of every channel of batch ``b``, contiguous.
# The inner loops run over channels, one SIMD lane per channel: the statistics,
# square root and division run for a whole vector of channels at a time, no
# vector has a per-channel tail, and each channel's sums still run in neuron
# order (no reduction crosses lanes), so the bits depend neither on the tile
# width nor on the thread count.

#: Most channels per work item of the channels-last kernels: whole rows of up
#: to this many channels stream best (measured: 256-channel tiles of 1024-channel
#: rows ran 1.5x slower), and wide tiles let LLVM's vector loops run whole.
NLC_TILE = 4096


@njit(fastmath=_ELEM, **_NB)
def _nlc_stats(xf, base, stride, m, t, sc):
    """``(mu, S2)`` (float64, views of the scratch ``sc`` of shape ``(3, >= t)``) of
    the ``t`` channels ``xf[base + i*stride + c]`` (``c < t``, neuron ``i < m``) of
    the flat float32 array ``xf``: one pass over ``x - x[neuron 0]``, as
    :func:`_row_stats_f32`.

    Flat indices are unsigned: no negative-index wraparound, no per-row views (whose
    reference counting costs more than a short row of arithmetic).
    """
    k = sc[0, :t]
    s1 = sc[1, :t]
    s2 = sc[2, :t]
    u0 = np.uint64(base)
    for c in range(t):
        k[c] = np.float64(xf[u0 + np.uint64(c)])
        s1[c] = 0.0
        s2[c] = 0.0
    for i in range(1, m):
        u = np.uint64(base + i * stride)
        for c in range(t):
            v = np.float64(xf[u + np.uint64(c)]) - k[c]
            s1[c] += v
            s2[c] += v * v
    for c in range(t):
        q = s1[c]
        k[c] = k[c] + q / m
        s2[c] = max(s2[c] - q * q / m, 0.0)
    return k, s2


@njit(**_NB)
def _nlc_scratch(tile):
    """Scratch arrays of one channels-last work item of at most ``tile`` channels."""
    return np.empty((3, tile)), np.empty((4, tile), np.float32), np.empty(tile, np.bool_)


@njit(**_NB)
def _nlc_fwd_tile_f32(xf, of, base, stride, m, t, four_lam, exact, inplace, sc, sp, slow):
    """Forward of the ``t`` channels at ``xf[base + i*stride + c]`` into the same
    places of ``of`` (flat float32, channels-last; ``of`` may be ``xf``); ``sc``, ``sp``,
    ``slow``: scratch from :func:`_nlc_scratch`.

    Channels whose statistics pass :func:`_fwd_block_f32`'s all-float32 test run in
    the vector loop; any other channel (huge values, NaN) is saved first and redone
    by :func:`_fwd_block_f32` on its own, so its neighbours keep their bits.
    """
    n = m - 1.0
    r = m / n
    four_n = 4.0 / n
    mu, s2 = _nlc_stats(xf, base, stride, m, t, sc)
    muh = sp[0, :t]
    mul = sp[1, :t]
    kk = sp[2, :t]
    fl = sp[3, :t]
    nslow = 0
    for c in range(t):
        den = four_n * s2[c] + four_lam
        if abs(mu[c]) < _FAST_LIM and s2[c] < _FAST_LIM * _FAST_LIM and 2.0**-120 < den < 2.0**120:
            slow[c] = False
            h = np.float32(mu[c])
            muh[c] = h
            mul[c] = np.float32(mu[c] - np.float64(h))
            kk[c] = _ONE32 / np.sqrt(np.float32(den))
            fl[c] = max(np.float32(four_lam / den), _TINY32)
        else:  # placeholder gain in the vector loop; redone below
            slow[c] = True
            nslow += 1
            muh[c] = 0.0
            mul[c] = 0.0
            kk[c] = 0.0
            fl[c] = 1.0
    if nslow:
        saved = np.empty((nslow, m), np.float32)
        j = 0
        for c in range(t):
            if slow[c]:
                for i in range(m):
                    saved[j, i] = xf[base + i * stride + c]
                j += 1
    r2 = np.float32(r * r)
    q = np.float32(r * four_n)
    wf = _writable_alias(xf, of)
    for i in range(m):
        u = np.uint64(base + i * stride)
        if exact:
            if inplace:
                for c in range(t):
                    uc = u + np.uint64(c)
                    wf[uc] = _exact_fast_f32(wf[uc], muh[c], mul[c], kk[c], r2, q, fl[c])
            else:
                for c in range(t):
                    uc = u + np.uint64(c)
                    of[uc] = _exact_fast_f32(xf[uc], muh[c], mul[c], kk[c], r2, q, fl[c])
        elif inplace:
            for c in range(t):
                uc = u + np.uint64(c)
                wf[uc] = _paper_fast_f32(wf[uc], muh[c], mul[c], kk[c])
        else:
            for c in range(t):
                uc = u + np.uint64(c)
                of[uc] = _paper_fast_f32(xf[uc], muh[c], mul[c], kk[c])
    if nslow:
        col = np.empty(m, np.float32)
        j = 0
        for c in range(t):
            if slow[c]:
                _fwd_block_f32(saved[j], col, mu[c], s2[c], r, four_n, four_lam, exact, False)
                for i in range(m):
                    of[base + i * stride + c] = col[i]
                j += 1


@njit(parallel=True, **_NB)
def _forward_nlc_f32(x3, lam, exact, out3, tile, inplace):
    """Channels-last forward: ``prange`` over (batch item, tile of ``tile`` channels)."""
    nb, m, nc = x3.shape
    nt = _nblocks(nc, tile)
    four_lam = 4.0 * max(lam, LAM_FLOOR)
    xf = x3.reshape(-1)
    of = out3.reshape(-1)
    for w in prange(nb * nt):
        sc, sp, slow = _nlc_scratch(min(tile, nc))
        b = w // nt
        c0 = (w - b * nt) * tile
        _nlc_fwd_tile_f32(xf, of, b * m * nc + c0, nc, m, min(tile, nc - c0), four_lam, exact,
                          inplace, sc, sp, slow)


@njit(fastmath=_ELEM, **_NB)
def _nlc_bw_sums(xf, gf, base, stride, m, t, mu, k, lam_s, exact, p1, p2):
    """Add ``q alpha`` and ``q beta`` of the ``t`` channels at ``base`` (layout of
    :func:`_nlc_stats`) to ``p1``, ``p2``, in neuron order."""
    n = m - 1.0
    for i in range(m):
        u = np.uint64(base + i * stride)
        for c in range(t):
            uc = u + np.uint64(c)
            _, qa, qb, _ = _bw_elem(xf[uc], gf[uc], 1.0, mu[c], k[c], lam_s, n, exact)
            p1[c] += qa
            p2[c] += qb


@njit(fastmath=_ELEM, **_NB)
def _nlc_bw_fast(xf, gf, of, base, stride, m, t, lam_s, alias, mu, s2, sc, sp):
    """Float32 paper backward of a channels-last tile (:func:`_bw_fast_f32`, lane per
    channel); False, with nothing written, when a channel's statistics or sums fail
    :func:`_bw_fast_ok` / :func:`_bw_sums_ok` (the caller then runs float64)."""
    n = m - 1.0
    muh = sp[0, :t]
    mul = sp[1, :t]
    kk = sp[2, :t]
    a2 = sp[3, :t]
    b8 = sp[4, :t]
    for c in range(t):
        den = 4.0 * (s2[c] / n + lam_s)
        if not _bw_fast_ok(mu[c], s2[c], den):
            return False
        h = np.float32(mu[c])
        muh[c] = h
        mul[c] = np.float32(mu[c] - np.float64(h))
        k = 1.0 / math.sqrt(den)
        kk[c] = np.float32(k)
        a2[c] = np.float32(2.0 * k)
        b8[c] = np.float32(8.0 * k * k / n)
    p1 = sc[3, :t]
    p2 = sc[4, :t]
    sg = sc[5, :t]
    for c in range(t):
        p1[c] = 0.0
        p2[c] = 0.0
        sg[c] = 0.0
    for i in range(m):
        u = np.uint64(base + i * stride)
        for c in range(t):
            uc = u + np.uint64(c)
            gv = gf[uc]
            _, qa, qb, _ = _bw_fast_f32(xf[uc], gv, muh[c], mul[c], kk[c], a2[c], b8[c])
            p1[c] += np.float64(qa)
            p2[c] += np.float64(qb)
            sg[c] += np.float64(abs(gv))
    p1m = sp[5, :t]
    p2f = sp[6, :t]
    for c in range(t):
        if not _bw_sums_ok(p1[c], p2[c], sg[c], m):
            return False
        p1m[c] = np.float32(p1[c] / m)
        p2f[c] = np.float32(p2[c])
    wx = _writable_alias(xf, of)
    wg = _writable_alias(gf, of)
    for i in range(m):
        u = np.uint64(base + i * stride)
        if alias == 1:
            for c in range(t):
                uc = u + np.uint64(c)
                gg, qa, _, uu = _bw_fast_f32(wx[uc], gf[uc], muh[c], mul[c], kk[c], a2[c], b8[c])
                wx[uc] = gg + qa - p1m[c] - uu * p2f[c]
        elif alias == 2:
            for c in range(t):
                uc = u + np.uint64(c)
                gg, qa, _, uu = _bw_fast_f32(xf[uc], wg[uc], muh[c], mul[c], kk[c], a2[c], b8[c])
                wg[uc] = gg + qa - p1m[c] - uu * p2f[c]
        else:
            for c in range(t):
                uc = u + np.uint64(c)
                gg, qa, _, uu = _bw_fast_f32(xf[uc], gf[uc], muh[c], mul[c], kk[c], a2[c], b8[c])
                of[uc] = gg + qa - p1m[c] - uu * p2f[c]
    return True


@njit(**_NB)
def _nlc_bw_tile(xf, gf, of, base, stride, m, t, lam_s, exact, alias, sc, sp):
    """Backward of the ``t`` channels at ``base`` (float32, channels-last, flat arrays
    as in :func:`_nlc_fwd_tile_f32`): the paper method through :func:`_nlc_bw_fast`
    where it applies, else the two sums of :func:`_bw_sums` and the output of
    :func:`_bw_out` in float64, one lane per channel; scratch ``sc``: float64
    ``(6, >= t)``, ``sp``: float32 ``(7, >= t)``."""
    n = m - 1.0
    mu, s2 = _nlc_stats(xf, base, stride, m, t, sc)
    if not exact and _nlc_bw_fast(xf, gf, of, base, stride, m, t, lam_s, alias, mu, s2, sc,
                                  sp):
        return
    k = sc[3, :t]
    p1 = sc[4, :t]
    p2 = sc[5, :t]
    for c in range(t):
        k[c] = _bw_k(s2[c], lam_s, n, exact)
        p1[c] = 0.0
        p2[c] = 0.0
    _nlc_bw_sums(xf, gf, base, stride, m, t, mu, k, lam_s, exact, p1, p2)
    for c in range(t):
        p1[c] /= m
    wx = _writable_alias(xf, of)
    wg = _writable_alias(gf, of)
    for i in range(m):
        u = np.uint64(base + i * stride)
        if alias == 1:
            for c in range(t):
                uc = u + np.uint64(c)
                wx[uc] = _bw_val(wx[uc], gf[uc], 1.0, mu[c], k[c], lam_s, n, exact, p1[c],
                                 p2[c])
        elif alias == 2:
            for c in range(t):
                uc = u + np.uint64(c)
                wg[uc] = _bw_val(xf[uc], wg[uc], 1.0, mu[c], k[c], lam_s, n, exact, p1[c],
                                 p2[c])
        else:
            for c in range(t):
                uc = u + np.uint64(c)
                of[uc] = _bw_val(xf[uc], gf[uc], 1.0, mu[c], k[c], lam_s, n, exact, p1[c],
                                 p2[c])


@njit(parallel=True, **_NB)
def _backward_nlc_f32(x3, g3, lam, exact, out3, tile, alias):
    """Channels-last backward: ``prange`` over (batch item, tile of ``tile`` channels)."""
    nb, m, nc = x3.shape
    nt = _nblocks(nc, tile)
    lam_s = max(lam, LAM_FLOOR)
    xf = x3.reshape(-1)
    gf = g3.reshape(-1)
    of = out3.reshape(-1)
    for w in prange(nb * nt):
        sc = np.empty((6, min(tile, nc)))
        sp = np.empty((7, min(tile, nc)), np.float32)
        b = w // nt
        c0 = (w - b * nt) * tile
        _nlc_bw_tile(xf, gf, of, b * m * nc + c0, nc, m, min(tile, nc - c0), lam_s, exact,
                     alias, sc, sp)


# --------------------------------------------------------------------- public
def use_split(channels: int, m: int) -> bool:
    """Whether the within-channel split path runs for ``channels`` rows of ``M``.

    A function of the shape alone (not of the thread count), so every thread count
    runs the same code and gets the same bits.
    """
    return m >= SPLIT_MIN_M and channels < SPLIT_MAX_CHANNELS


def _check(*arrays: np.ndarray, layout: str = "(channels, M)") -> None:
    """Validate kernel arrays (inputs first, the output last).

    ``layout`` is ``"(channels, M)"`` (float32 or float64, 2-D) or
    ``"(batch, M, channels)"`` (the channels-last kernels: float32 only, 3-D).
    """
    first = arrays[0]
    rows = layout == "(channels, M)"
    ndim, dtypes = (2, (np.float32, np.float64)) if rows else (3, (np.float32,))
    if first.dtype not in dtypes:
        names = " or ".join(np.dtype(d).name for d in dtypes)
        raise TypeError(f"cpu kernels on {layout} arrays need {names}, got {first.dtype}")
    for a in arrays:
        if a.ndim != ndim or a.shape != first.shape or a.dtype != first.dtype:
            raise ValueError(f"all arrays must share one {ndim}-D {layout} shape and dtype")
        if not a.flags.c_contiguous:
            raise ValueError(f"cpu kernels need C-contiguous {layout} arrays")
    if not arrays[-1].flags.writeable:
        raise ValueError("the output array is read-only")
    if first.shape[1] < 2:
        raise ValueError(f"each channel needs at least 2 neurons, got M = {first.shape[1]}")


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    return a.__array_interface__["data"][0] == b.__array_interface__["data"][0]


def forward_2d(x2: np.ndarray, lam: float, exact: bool, out2: np.ndarray) -> None:
    """SimAM forward of each row of ``x2`` into ``out2``.

    ``x2``, ``out2``: C-contiguous ``(channels, M)``, both float32 or both float64;
    ``out2`` may be ``x2`` itself.  ``lam`` > 0; ``exact`` selects the
    leave-one-out minimiser instead of the paper formula.
    """
    _check(x2, out2)
    inplace = _same(x2, out2)
    if use_split(*x2.shape):
        _forward_split(x2, float(lam), bool(exact), out2, int(BLOCK), inplace)
    elif x2.dtype == np.float32 and not exact and x2.shape[1] <= FLAT_MAX_M:
        _forward_flat_f32(x2, x2.reshape(-1), float(lam), out2, out2.reshape(-1), inplace,
                          max(1, FLAT_ELEMS // x2.shape[1]))
    elif x2.dtype == np.float32:
        _forward_channels_f32(x2, float(lam), bool(exact), out2, inplace)
    else:
        _forward_channels(x2, float(lam), bool(exact), out2, int(BLOCK), inplace)


def backward_2d(
    x2: np.ndarray, g2: np.ndarray, lam: float, exact: bool, out2: np.ndarray
) -> None:
    """Vector-Jacobian product: ``out2 = J(x2)^T g2`` row by row.

    All arrays C-contiguous ``(channels, M)`` of one dtype (float32/float64);
    ``out2`` may be ``x2`` or ``g2`` itself.  Statistics are recomputed from ``x2``.
    """
    _check(x2, g2, out2)
    alias = 1 if _same(out2, x2) else 2 if _same(out2, g2) else 0
    if use_split(*x2.shape):
        _backward_split(x2, g2, float(lam), bool(exact), out2, int(BLOCK), alias)
    elif x2.dtype == np.float32:
        _backward_channels_f32(x2, g2, float(lam), bool(exact), out2, alias,
                               _chunk(x2.shape[0]))
    else:
        _backward_channels(x2, g2, float(lam), bool(exact), out2, int(BLOCK), alias)


def forward_nlc(x3: np.ndarray, lam: float, exact: bool, out3: np.ndarray) -> None:
    """SimAM forward of channels-last float32 data into ``out3``.

    ``x3[b, i, c]`` is neuron ``i`` of channel ``c`` in batch item ``b``; ``x3`` and
    ``out3`` are C-contiguous ``(batch, M, channels)`` float32 (an ``(N, H, W, C)``
    array viewed with ``M = H W``); ``out3`` may be ``x3`` itself.
    """
    _check(x3, out3, layout="(batch, M, channels)")
    _forward_nlc_f32(x3, float(lam), bool(exact), out3, int(NLC_TILE), _same(x3, out3))


def backward_nlc(
    x3: np.ndarray, g3: np.ndarray, lam: float, exact: bool, out3: np.ndarray
) -> None:
    """Vector-Jacobian product of :func:`forward_nlc` (layout as there); ``out3`` may be
    ``x3`` or ``g3`` itself."""
    _check(x3, g3, out3, layout="(batch, M, channels)")
    alias = 1 if _same(out3, x3) else 2 if _same(out3, g3) else 0
    _backward_nlc_f32(x3, g3, float(lam), bool(exact), out3, int(NLC_TILE), alias)
