"""What the public functions accept: the method and backend names, ``lam``, dtypes,
axes, shapes and ``out``, each refused with a one-line error naming the argument."""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from decimal import Decimal
from typing import Any, Literal, get_args

import numpy as np

__all__ = ["BACKENDS", "METHODS", "Axes", "Backend", "Method"]

Method = Literal["paper", "exact"]
"""``"paper"``: the official formula; ``"exact"``: the true minimiser of eq 2."""
Backend = Literal["auto", "numpy", "cpu", "cuda"]
"""Where to compute; ``"auto"`` picks the CUDA kernel for device arrays, else the CPU one."""
# the runtime checks read the same tuples, so the types and the validation agree
METHODS: tuple[str, ...] = get_args(Method)
BACKENDS: tuple[str, ...] = get_args(Backend)

Axes = int | Sequence[int] | None


# --------------------------------------------------------------------------- checks
def _check_method(method: str) -> bool:
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    return method == "exact"


def _short(value: Any) -> str:
    """``repr(value)``, abbreviated when huge (a 400-digit integer, say)."""
    text = repr(value)
    if len(text) > 60:
        text = f"{text[:24]}...{text[-12:]} ({len(text)} characters)"
    return text


def _check_lam(lam: Any) -> float:
    """``lam`` as a positive finite float64, or an error naming its value."""
    if isinstance(lam, np.ndarray) and lam.ndim == 0:
        lam = lam[()]  # a 0-d array is a scalar
    if isinstance(lam, (bool, np.bool_)) or not isinstance(lam, (numbers.Real, Decimal)):
        what = (f"ndarray of shape {lam.shape}" if isinstance(lam, np.ndarray)
                else type(lam).__name__)
        raise TypeError(f"lam must be a real number (or a 0-d array), got {what} {_short(lam)}")
    try:
        value = float(lam)
    except ValueError:  # Decimal('sNaN')
        value = math.nan
    except OverflowError:  # a huge int or Fraction
        value = math.inf if lam > 0 else -math.inf
    if math.isnan(value) or lam <= 0:
        raise ValueError(f"lam must be finite and > 0, got {_short(lam)}")
    if math.isinf(value):
        if value == lam:
            raise ValueError(f"lam must be finite and > 0, got {_short(lam)}")
        raise ValueError(
            f"lam must be finite and > 0, got {_short(lam)}, which overflows float64 "
            "(largest 1.8e308)"
        )
    if value == 0.0:
        raise ValueError(
            f"lam must be finite and > 0, got {_short(lam)}, which is positive but "
            "underflows float64 to 0.0 (smallest 5e-324)"
        )
    return value


_FLOATS = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))


def _check_dtype(dtype: np.dtype, name: str = "x") -> np.dtype:
    """The native-byte-order float16/32/64 dtype of ``dtype``, or a TypeError."""
    dtype = np.dtype(dtype)
    native = dtype.newbyteorder("=")
    if native in _FLOATS:
        return native
    if native.kind == "f":
        raise TypeError(
            f"{name} has dtype {dtype} (longdouble), which is not supported; "
            f"cast it to float64 first ({name}.astype(np.float64))"
        )
    kind = "complex" if dtype.kind == "c" else "non-floating"
    raise TypeError(
        f"{name} must have a real floating dtype (float16, float32 or float64), "
        f"got {kind} dtype {dtype}"
    )


def _reject_masked(a: Any, name: str) -> None:
    """Masked arrays would lose their mask (and masked values would leak): refuse."""
    if isinstance(a, np.ma.MaskedArray):
        raise TypeError(
            f"{name} is a numpy.ma.MaskedArray, whose mask SimAM would ignore; pass "
            f"{name}.filled(value) to choose what masked entries count as, or {name}.data"
        )


def _spatial_axes(shape: tuple[int, ...], axes: Axes) -> tuple[int, ...]:
    ndim = len(shape)
    if axes is None:
        if ndim < 3:
            raise ValueError(
                f"x has shape {shape} (ndim {ndim}); with the default axes SimAM expects "
                "(N, C, *spatial) with ndim >= 3 — pass axes= to choose the neuron axes"
            )
        return tuple(range(2, ndim))
    if isinstance(axes, np.ndarray) and axes.ndim == 0:
        axes = axes[()]
    if isinstance(axes, numbers.Integral):
        raw = (axes,)
    elif isinstance(axes, (str, bytes)) or not hasattr(axes, "__iter__"):
        raise TypeError(
            f"axes must be an int or a sequence of ints, got {type(axes).__name__} {axes!r}"
        )
    else:
        raw = tuple(axes)
    if not raw:
        raise ValueError("axes must name at least one axis, got ()")
    norm = []
    for a in raw:
        if isinstance(a, (bool, np.bool_)) or not isinstance(a, numbers.Integral):
            raise TypeError(f"axes must be integers, got {a!r} in axes={raw!r}")
        if not -ndim <= a < ndim:
            raise ValueError(f"axis {a} is out of range for x of shape {shape} (ndim {ndim})")
        norm.append(int(a) % ndim)
    if len(set(norm)) != len(norm):
        raise ValueError(f"axes contains a duplicate axis: {raw}")
    return tuple(sorted(norm))


def _check_shape(shape: tuple[int, ...], spatial: tuple[int, ...]) -> int:
    if math.prod(shape) == 0:
        raise ValueError(f"x is empty (shape {shape})")
    m = math.prod(shape[a] for a in spatial)
    if m < 2:
        raise ValueError(
            f"each channel needs at least 2 neurons, but axes {spatial} of shape {shape} "
            f"hold M = {m}"
        )
    return m


def _check_out(out: Any, shape: tuple[int, ...], dtype: np.dtype, x: np.ndarray) -> np.ndarray:
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out must be a numpy.ndarray for NumPy input, got {type(out).__name__}")
    _reject_masked(out, "out")
    if out.shape != shape:
        raise ValueError(f"out has shape {out.shape}, expected {shape}")
    if out.dtype.newbyteorder("=") != dtype:  # either byte order
        raise TypeError(f"out has dtype {out.dtype}, expected {dtype}")
    if not out.flags.writeable:
        raise ValueError("out is read-only")
    if np.shares_memory(out, x) and not _same_memory(out, x):
        raise ValueError("out partly overlaps the input; pass the input itself or a separate array")
    return out


def _same_memory(a: np.ndarray, b: np.ndarray) -> bool:
    return (
        a.__array_interface__["data"][0] == b.__array_interface__["data"][0]
        and a.strides == b.strides
        and a.shape == b.shape
    )


def _prepare(lam: Any, method: str, backend: str) -> tuple[bool, float]:
    """Checks that need no array: ``(exact, lam)``."""
    exact = _check_method(method)
    lam = _check_lam(lam)
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    return exact, lam
