"""Public entry points: validate input, lay it out as ``(channels, M)``, dispatch.

Backends implement two functions on C-contiguous ``(channels, M)`` arrays of one
float dtype (float32 or float64)::

    forward_2d(x2, lam, exact, out2) -> None
    backward_2d(x2, g2, lam, exact, out2) -> None

``out2`` may be ``x2`` itself (in place) but never partly overlaps it.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from types import ModuleType
from typing import Any

import numpy as np

__all__ = ["BACKENDS", "METHODS", "available_backends", "simam", "simam_backward"]

METHODS = ("paper", "exact")
BACKENDS = ("auto", "numpy", "cpu", "cuda")

Axes = int | Sequence[int] | None


# --------------------------------------------------------------------------- checks
def _check_method(method: str) -> bool:
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    return method == "exact"


def _check_lam(lam: Any) -> float:
    if isinstance(lam, bool) or not isinstance(lam, numbers.Real):
        raise TypeError(f"lam must be a real number, got {type(lam).__name__} {lam!r}")
    value = float(lam)
    if not math.isfinite(value) or value <= 0.0:
        raise ValueError(f"lam must be finite and > 0, got {lam!r}")
    return value


def _check_dtype(dtype: np.dtype, name: str = "x") -> np.dtype:
    dtype = np.dtype(dtype)
    if dtype not in (np.float16, np.float32, np.float64):
        kind = "complex" if dtype.kind == "c" else "non-floating"
        raise TypeError(
            f"{name} must have a real floating dtype (float16, float32 or float64), "
            f"got {kind} dtype {dtype}"
        )
    return dtype


def _spatial_axes(shape: tuple[int, ...], axes: Axes) -> tuple[int, ...]:
    ndim = len(shape)
    if axes is None:
        if ndim < 3:
            raise ValueError(
                f"x has shape {shape} (ndim {ndim}); with the default axes SimAM expects "
                "(N, C, *spatial) with ndim >= 3 — pass axes= to choose the neuron axes"
            )
        return tuple(range(2, ndim))
    raw = (axes,) if isinstance(axes, numbers.Integral) else tuple(axes)
    if not raw:
        raise ValueError("axes must name at least one axis, got ()")
    norm = []
    for a in raw:
        if isinstance(a, bool) or not isinstance(a, numbers.Integral):
            raise TypeError(f"axes must be integers, got {a!r}")
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
    if out.shape != shape:
        raise ValueError(f"out has shape {out.shape}, expected {shape}")
    if out.dtype != dtype:
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


# -------------------------------------------------------------------------- backends
def _load_backend(name: str) -> ModuleType:
    if name == "numpy":
        from . import reference

        return reference
    if name == "cpu":
        from .kernels import cpu

        return cpu
    from .kernels import cuda

    if not cuda.available():
        raise ValueError(f"backend='cuda' is not available: {cuda.unavailable_reason()}")
    return cuda


def available_backends() -> list[str]:
    """Backends usable on this machine, fastest first for NumPy input."""
    names = []
    for name in ("cpu", "numpy", "cuda"):
        try:
            _load_backend(name)
        except (ImportError, ValueError):
            continue
        names.append(name)
    return names


def _resolve_backend(backend: str) -> ModuleType:
    """The module behind a validated backend name (``auto``: CPU kernel, else NumPy)."""
    if backend != "auto":
        return _load_backend(backend)
    try:
        return _load_backend("cpu")
    except ImportError:
        return _load_backend("numpy")


def _is_device_array(x: Any) -> bool:
    if isinstance(x, np.ndarray):
        return False
    if hasattr(x, "__cuda_array_interface__"):
        return True
    return type(x).__module__.startswith(("numba.cuda", "numba_cuda"))


# ---------------------------------------------------------------------------- layout
def _rows(a: np.ndarray, perm: tuple[int, ...], m: int) -> np.ndarray | None:
    """``a`` as a C-contiguous ``(channels, M)`` view, or None if that needs a copy."""
    t = a.transpose(perm)
    if not t.flags.c_contiguous:
        return None
    return t.reshape(-1, m)


class _Layout:
    """Maps an array of any layout to ``(channels, M)`` rows and back."""

    def __init__(self, shape: tuple[int, ...], spatial: tuple[int, ...], m: int):
        others = tuple(a for a in range(len(shape)) if a not in spatial)
        self.perm = others + spatial
        self.m = m

    def rows(self, a: np.ndarray, dtype: np.dtype) -> np.ndarray:
        view = _rows(a, self.perm, self.m) if a.dtype == dtype else None
        if view is not None:
            return view
        return np.ascontiguousarray(a.transpose(self.perm), dtype=dtype).reshape(-1, self.m)

    def run(self, out: np.ndarray, work_dtype: np.dtype, fill) -> np.ndarray:
        """Call ``fill(out_rows)`` and make sure the result lands in ``out``."""
        view = _rows(out, self.perm, self.m) if out.dtype == work_dtype else None
        if view is not None:
            fill(view)
            return out
        tmp = np.empty((math.prod(out.shape) // self.m, self.m), dtype=work_dtype)
        fill(tmp)
        out.transpose(self.perm)[...] = tmp.reshape(out.transpose(self.perm).shape)
        return out


def _prepare(lam: Any, method: str, backend: str) -> tuple[bool, float]:
    """Checks that need no array: ``(exact, lam)``."""
    exact = _check_method(method)
    lam = _check_lam(lam)
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    return exact, lam


# ------------------------------------------------------------------------ public API
def simam(
    x: Any,
    lam: float = 1e-4,
    *,
    method: str = "paper",
    axes: Axes = None,
    out: Any = None,
    backend: str = "auto",
) -> Any:
    """SimAM forward: ``y = x * sigmoid(1 / e_t*)`` for every neuron.

    Parameters
    ----------
    x : ndarray, shape ``(N, C, *spatial)`` (or any shape with ``axes=``)
        float32 or float64 (float16 is computed in float32 and returned as float16).
        A CUDA device array (Numba, CuPy, PyTorch: anything with
        ``__cuda_array_interface__``) runs on the GPU and returns a device array.
    lam : float
        Regulariser ``lambda > 0`` of the energy (the official default is 1e-4).
    method : {"paper", "exact"}
        ``"paper"``: the official module's formula with full-channel statistics.
        ``"exact"``: the true minimiser of eq 2 with leave-one-out statistics.
    axes : int or tuple of int, optional
        Axes spanning one channel's neurons; default every axis after the first two.
    out : ndarray, optional
        Destination of ``x``'s shape and dtype; may be ``x`` itself (in place).
    backend : {"auto", "numpy", "cpu", "cuda"}
        ``"auto"``: the Numba CPU kernel for NumPy input, CUDA for device arrays.

    Returns
    -------
    ndarray of ``x``'s shape and dtype (``out`` when given).
    """
    return _dispatch("forward", x, None, lam, method, axes, out, backend)


def simam_backward(
    x: Any,
    grad_out: Any,
    lam: float = 1e-4,
    *,
    method: str = "paper",
    axes: Axes = None,
    out: Any = None,
    backend: str = "auto",
) -> Any:
    """Vector-Jacobian product of :func:`simam`: ``grad_x = J(x)^T grad_out``.

    Needs only ``x`` and ``grad_out`` (no saved activations): channel statistics
    are recomputed.  ``grad_out`` must have ``x``'s shape; it is cast to ``x``'s
    dtype.  Other parameters and the result are as for :func:`simam`.
    """
    return _dispatch("backward", x, grad_out, lam, method, axes, out, backend)


def _dispatch(kind, x, grad_out, lam, method, axes, out, backend):
    exact, lam = _prepare(lam, method, backend)
    if _is_device_array(x):
        if backend not in ("auto", "cuda"):
            raise ValueError(
                f"x is a CUDA device array; backend={backend!r} needs a NumPy array "
                "(use backend='cuda' or 'auto', or copy it to the host)"
            )
        cuda = _load_backend("cuda")
        shape = tuple(x.shape)
        _check_dtype(np.dtype(str(x.dtype).replace("torch.", "")))
        spatial = _spatial_axes(shape, axes)
        _check_shape(shape, spatial)
        if kind == "forward":
            return cuda.simam_device(x, lam, exact, spatial, out)
        if tuple(grad_out.shape) != shape:
            raise ValueError(f"grad_out has shape {tuple(grad_out.shape)}, expected {shape}")
        return cuda.simam_backward_device(x, grad_out, lam, exact, spatial, out)

    x = np.asarray(x)
    dtype = _check_dtype(x.dtype)
    shape = x.shape
    spatial = _spatial_axes(shape, axes)
    m = _check_shape(shape, spatial)
    if kind == "backward":
        grad_out = np.asarray(grad_out)
        _check_dtype(grad_out.dtype, "grad_out")
        if grad_out.shape != shape:
            raise ValueError(f"grad_out has shape {grad_out.shape}, expected {shape}")
    if out is None:
        out = np.empty(shape, dtype=dtype)
    else:
        _check_out(out, shape, dtype, x)
        if kind == "backward" and np.shares_memory(out, grad_out):
            if not _same_memory(out, grad_out):
                raise ValueError("out partly overlaps grad_out")
    impl = _resolve_backend(backend)
    work = np.dtype(np.float32) if dtype == np.float16 else dtype
    layout = _Layout(shape, spatial, m)
    x2 = layout.rows(x, work)
    if kind == "forward":
        return layout.run(out, work, lambda o2: impl.forward_2d(x2, lam, exact, o2))
    g2 = layout.rows(grad_out, work)
    return layout.run(out, work, lambda o2: impl.backward_2d(x2, g2, lam, exact, o2))
