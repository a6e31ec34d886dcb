"""Numba CPU kernels for SimAM: fused, parallel, deterministic.

Both entry points take C-contiguous ``(channels, M)`` arrays of one dtype
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
    "backward_2d",
    "exp_neg_f32",
    "exp_neg_f64",
    "forward_2d",
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
                    xb[i] = _exact_fast_f32(xb[i], mu_hi, mu_lo, kk, r2, q, floor)
            else:
                for i in range(nb):
                    ob[i] = _exact_fast_f32(xb[i], mu_hi, mu_lo, kk, r2, q, floor)
        elif inplace:
            for i in range(nb):
                xb[i] = _paper_fast_f32(xb[i], mu_hi, mu_lo, kk)
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
                xb[i] = _exact_f32(xb[i], mu, s2, r, a, b, c0)
        else:
            for i in range(nb):
                ob[i] = _exact_f32(xb[i], mu, s2, r, a, b, c0)
    elif inplace:
        for i in range(nb):
            xb[i] = _paper_f32(xb[i], mu, c)
    else:
        for i in range(nb):
            ob[i] = _paper_f32(xb[i], mu, c)


@njit(**_NB)
def _fwd_block_f64(xb, ob, s, mu, s2, r, four_n, four_lam, c, exact, inplace):
    nb = xb.shape[0]
    r2 = r * r
    if exact:
        if inplace:
            for i in range(nb):
                xb[i] = _exact_f64(xb[i], s, mu, s2, r, r2, four_n, four_lam)
        else:
            for i in range(nb):
                ob[i] = _exact_f64(xb[i], s, mu, s2, r, r2, four_n, four_lam)
    elif inplace:
        for i in range(nb):
            xb[i] = _paper_f64(xb[i], s, mu, c)
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
    (separate loops so LLVM sees a single array, see :func:`_fwd_block`)."""
    if alias == 1:
        for i in range(xb.shape[0]):
            xb[i] = _bw_val(xb[i], gb[i], s, mu, k, lam_s, n, exact, p1m, p2)
    elif alias == 2:
        for i in range(xb.shape[0]):
            gb[i] = _bw_val(xb[i], gb[i], s, mu, k, lam_s, n, exact, p1m, p2)
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


# --------------------------------------------------------------------- public
def use_split(channels: int, m: int) -> bool:
    """Whether the within-channel split path runs for ``channels`` rows of ``M``.

    A function of the shape alone (not of the thread count), so every thread count
    runs the same code and gets the same bits.
    """
    return m >= SPLIT_MIN_M and channels < SPLIT_MAX_CHANNELS


def _check(*arrays: np.ndarray) -> None:
    first = arrays[0]
    if first.dtype not in (np.float32, np.float64):
        raise TypeError(f"cpu kernels need float32 or float64 arrays, got {first.dtype}")
    for a in arrays:
        if a.ndim != 2 or a.shape != first.shape or a.dtype != first.dtype:
            raise ValueError("all arrays must share one 2-D (channels, M) shape and dtype")
        if not a.flags.c_contiguous:
            raise ValueError("cpu kernels need C-contiguous (channels, M) arrays")
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
    kernel = _backward_split if use_split(*x2.shape) else _backward_channels
    kernel(x2, g2, float(lam), bool(exact), out2, int(BLOCK), alias)
