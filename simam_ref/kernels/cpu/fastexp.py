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

__all__ = ["exp_neg_f32", "exp_neg_f64", "exp_neg_like"]

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
def exp_neg_f32(e: np.float32) -> np.float32:
    """``exp(-e)`` in float32 for ``e >= 0`` (0 beyond the clamp, NaN gives NaN).

    Arguments above 32 give exactly 0 (``1 + exp(-32) == 1`` in float32).
    Twin of :func:`exp_neg_f64`.
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
