"""Fast, vectorisable ``exp(-e)`` for the CPU kernels (float32 and float64).

``exp`` is evaluated with hand-written range reduction and a polynomial whose
``2**k`` factor is built by bit-casting an integer (an LLVM ``bitcast`` in an
``@intrinsic``), so LLVM vectorises it: pip Numba has no SVML, and libm ``expf``
in a loop is ~8x slower than memory.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic, overload

from .base import ELEM

__all__ = ["exp_neg_f32", "exp_neg_f64", "exp_neg_like", "one_plus_exp_neg_f32"]

# ---------------------------------------------------------------- fast exp(-e)
# exp(z) = 2**k * exp(r), k = round(z / ln 2), r = z - k ln 2 (|r| <= ln2/2).
# round() by adding 1.5 * 2**(p-1): the integer k lands in the low mantissa bits.
_MAGIC32 = np.float32(12582912.0)  # 1.5 * 2**23
# Relative-minimax polynomial for exp(r) = 1 + r (c1 + c2 r + ... + c5 r**4) on
# |r| <= ln2/2 (Lawson iterations on Chebyshev points in float64, coefficients
# rounded to float32; max relative error 9e-8 before float32 evaluation rounding).
_P32 = (
    np.float32(0.9999997019767761),
    np.float32(0.4999915063381195),
    np.float32(0.1666763573884964),
    np.float32(0.04189793020486832),
    np.float32(0.008290315046906471),
)
# -ln2 and -log2(e) rounded to float32: with the reduction r = -e - k ln2 in one FMA,
# |k| <= 47 makes r's error at most 47 * 2e-9 = 1e-7 absolute (a relative 1e-7 in
# exp(r)), where a second, low-order ln2 step would cost one more operation.
_NEG_LN2_32 = np.float32(-0.6931471805599453)
_NEG_LOG2E32 = np.float32(-1.4426950408889634)
_CLAMP32 = np.float32(32.0)  # exp(-32) = 1.3e-14: 1 + t == 1 in float32 long before
_HALF32 = np.float32(0.5)
_ONE32 = np.float32(1.0)

_MAGIC64 = 6755399441055744.0  # 1.5 * 2**52
_LOG2E64 = 1.4426950408889634
_LN2HI64 = 0.6931467056274414  # 20 significant bits
_LN2LO64 = 4.7493250390316726e-07
_CLAMP64 = 40.0  # exp(-40) = 4e-18 < eps/2


def _pow2_codegen(width: int, bias: int, shift: int):
    """LLVM code for ``2**k`` from ``y = 1.5 * 2**shift + k``: ``y``'s bits as a
    ``width``-bit integer, plus ``bias`` (the exponent bias minus ``y``'s magic bits),
    shifted into the exponent field."""

    def codegen(context, builder, signature, args):
        """Emit the bitcast, add, shift and bitcast back."""
        it = ir.IntType(width)
        bits = builder.bitcast(args[0], it)
        bits = builder.add(bits, ir.Constant(it, bias))
        bits = builder.shl(bits, ir.Constant(it, shift))
        return builder.bitcast(bits, ir.FloatType() if width == 32 else ir.DoubleType())

    return codegen


@intrinsic
def _pow2_from_magic32(typingctx, y):
    """``2**k`` (float32) from ``y = 1.5 * 2**23 + k`` by integer bit arithmetic."""
    if y != types.float32:
        return None
    return types.float32(types.float32), _pow2_codegen(32, 127 - 0x4B400000, 23)


@intrinsic
def _pow2_from_magic64(typingctx, y):
    """``2**k`` (float64) from ``y = 1.5 * 2**52 + k`` by integer bit arithmetic."""
    if y != types.float64:
        return None
    return types.float64(types.float64), _pow2_codegen(64, 1023 - 0x4338000000000000, 52)


# exp_neg_f32 and exp_neg_f64 are dtype twins (same range reduction, each with the
# polynomial and constants of its precision), kept apart so each compiles to
# straight-line code of one type.
@njit(fastmath=ELEM, cache=True, error_model="numpy")
def _exp_neg_clamped_f32(e: np.float32) -> np.float32:
    """``exp(-min(e, 32))`` in float32 for ``e >= 0`` (NaN gives NaN), in 12 vector
    operations (a clamp, a one-step range reduction, a degree-5 polynomial and the
    ``2**k`` bit trick; the previous degree-6, two-step form with a select took 17).
    Max relative error 3e-7 (measured 2.3e-7)."""
    if e > _CLAMP32:  # NaN compares false and stays NaN
        e = _CLAMP32
    y = e * _NEG_LOG2E32 + _MAGIC32
    k = y - _MAGIC32
    r = k * _NEG_LN2_32 - e
    p = _P32[4]
    p = p * r + _P32[3]
    p = p * r + _P32[2]
    p = p * r + _P32[1]
    p = p * r + _P32[0]
    p = p * r + _ONE32
    return p * _pow2_from_magic32(y)


@njit(fastmath=ELEM, cache=True, error_model="numpy")
def exp_neg_f32(e: np.float32) -> np.float32:
    """``exp(-e)`` in float32 for ``e >= 0`` (NaN gives NaN).

    Arguments above 32 give exactly 0, so a backward term ``x exp(-E)`` of a huge
    outlier ``x`` is 0, not ``x exp(-32)``.  Twin of :func:`exp_neg_f64`.
    Vectorises (no libm call).  Max relative error 3e-7 for e in [0, 32]
    (measured 2.3e-7; ``tests/test_fast_exp.py``).
    """
    big = e > _CLAMP32
    t = _exp_neg_clamped_f32(e)
    return np.float32(0.0) if big else t


@njit(fastmath=ELEM, cache=True, error_model="numpy")
def one_plus_exp_neg_f32(e: np.float32) -> np.float32:
    """``1 + exp(-e)`` in float32 for ``e >= 0`` (NaN gives NaN): the forward's
    denominator.  Beyond 32 it is exactly 1 (``1 + exp(-32) == 1`` in float32), so
    it needs no select for large ``e``; the float32 gain ``1/(1 + exp(-e))`` stays
    within 1.5e-7 (measured 1.3e-7, of which float32 rounding of the sum and the
    division is up to 1.2e-7; ``tests/test_fast_exp.py``).
    """
    return _ONE32 + _exp_neg_clamped_f32(e)


@njit(fastmath=ELEM, cache=True, error_model="numpy")
def exp_neg_f64(e: float) -> float:
    """``exp(-e)`` in float64 for ``e >= 0`` (exactly 0 above 40; NaN gives NaN).

    Degree-13 Taylor polynomial on ``|r| <= ln2/2`` (truncation < 1e-17);
    vectorises (twin of :func:`exp_neg_f32`).  Max relative error 5e-16 for e in
    [0, 40] (measured 2.2e-16).
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


def exp_neg_like(e, like):  # pragma: no cover - typing-time helper
    """float64 ``exp(-e)`` at the precision of the scalar ``like``'s type (stub)."""
    raise NotImplementedError


@overload(exp_neg_like)
def _ol_exp_neg_like(e, like):
    """float64 ``exp(-e)`` at the precision of the scalar ``like``'s type: the
    float32 polynomial for a float32 ``like``, else the float64 one."""
    if like == types.float32:
        return lambda e, like: np.float64(exp_neg_f32(np.float32(e)))
    return lambda e, like: exp_neg_f64(e)
