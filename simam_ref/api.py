"""Public entry points: validate input, lay it out as ``(channels, M)``, dispatch.

The argument checks live in :mod:`simam_ref.validation`, the backends (and the
lock around CPU kernel calls) in :mod:`simam_ref.backends`; this module maps any
layout to the ``(channels, M)`` rows the backends take and back.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .backends import (
    _guarded,
    _is_device_array,
    _load_backend,
    _resolve_backend,
    available_backends,
)
from .validation import (
    BACKENDS,
    METHODS,
    Axes,
    Backend,
    Method,
    _check_dtype,
    _check_out,
    _check_shape,
    _prepare,
    _reject_masked,
    _same_memory,
    _spatial_axes,
)

__all__ = [
    "BACKENDS",
    "METHODS",
    "Backend",
    "Method",
    "available_backends",
    "simam",
    "simam_backward",
]


# ---------------------------------------------------------------------------- layout
def _rows(a: np.ndarray, perm: tuple[int, ...], m: int) -> np.ndarray | None:
    """``a`` as a C-contiguous ``(channels, M)`` view, or None if that needs a copy."""
    t = a.transpose(perm)
    if not t.flags.c_contiguous:
        return None
    return t.reshape(-1, m)


def _channels_last_run(kind, impl, x, grad_out, out, spatial, m, lam, exact):
    """Run the backend's channels-last kernel (``forward_nlc``/``backward_nlc``) on
    ``(batch, M, channels)`` views when every array is float32 with its last non-spatial
    axis innermost and the spatial axes just outside it (e.g. ``(N, H, W, C)`` with
    ``axes=(1, 2)``), so no copy is made; None when that does not apply."""
    arrays = (x, out) if kind == "forward" else (x, grad_out, out)
    if not hasattr(impl, "forward_nlc") or any(a.dtype != np.float32 for a in arrays):
        return None
    others = tuple(a for a in range(x.ndim) if a not in spatial)
    if not others or _rows(x, others + spatial, m) is not None:
        return None  # channels-first: the (channels, M) kernels run on a view
    perm = others[:-1] + spatial + others[-1:]
    views = [a.transpose(perm) for a in arrays]
    if not all(v.flags.c_contiguous for v in views):
        return None
    v3 = [v.reshape(-1, m, x.shape[others[-1]]) for v in views]
    if kind == "forward":
        _guarded(impl, lambda o3: impl.forward_nlc(v3[0], lam, exact, o3))(v3[-1])
    else:
        _guarded(impl, lambda o3: impl.backward_nlc(v3[0], v3[1], lam, exact, o3))(v3[-1])
    return out


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


# ------------------------------------------------------------------------ public API
def simam(
    x: Any,
    lam: float = 1e-4,
    *,
    method: Method = "paper",
    axes: Axes = None,
    out: Any = None,
    backend: Backend = "auto",
    stream: Any = None,
) -> Any:
    """SimAM forward: ``y = x * sigmoid(1 / e_t*)`` for every neuron.

    Parameters
    ----------
    x : ndarray, shape ``(N, C, *spatial)`` (or any shape with ``axes=``)
        float32 or float64 (float16 is computed in float32 and returned as float16;
        longdouble is refused: cast to float64).  Only read, never written (unless
        ``out`` is ``x``): read-only arrays (``np.memmap(mode="r")``,
        ``np.frombuffer``, ``np.broadcast_to``) are used as they are, without a copy
        when their channels are C-contiguous rows.  Big-endian (non-native) byte
        order is accepted and converted once (a copy); the result is the same
        number in native byte order.  Masked arrays are refused (pass
        ``x.filled(value)`` or ``x.data``).
        A CUDA device array (Numba, CuPy, PyTorch: anything with
        ``__cuda_array_interface__``) runs on the GPU and returns an array of the
        input's kind (a ``torch.Tensor`` for torch input, a ``cupy.ndarray`` for CuPy
        input, else a Numba device array), or ``out``.  A torch tensor with
        ``requires_grad`` is read as ``x.detach()``: the call records no autograd
        history (use :func:`simam_backward` for the gradient); such a tensor is
        refused as ``out``, and so is an export flagged read-only.
    lam : float or 0-d array
        Regulariser ``lambda > 0`` of the energy (the official default is 1e-4); it
        must be finite and nonzero once converted to float64.
    method : {"paper", "exact"}
        ``"paper"``: the official module's formula with full-channel statistics.
        ``"exact"``: the true minimiser of eq 2 with leave-one-out statistics.
    axes : int or tuple of int, optional
        Axes spanning one channel's neurons; default every axis after the first two.
    out : ndarray, optional
        Destination of ``x``'s shape and dtype (either byte order); may be ``x``
        itself (in place).
    backend : {"auto", "numpy", "cpu", "cuda"}
        ``"auto"``: the Numba CPU kernel for NumPy input, CUDA for device arrays.
    stream : optional
        Device input only (``ValueError`` for host arrays): the CUDA stream to
        launch on — a Numba stream, ``torch.cuda.Stream``, CuPy stream or raw
        ``cudaStream_t`` int.  Default: the caller's current stream where it can
        be known (PyTorch's current stream for torch tensors, the interface's
        ``stream`` for ``__cuda_array_interface__`` v3 objects such as CuPy's, a
        Numba array's own stream), else the legacy default stream.  The call
        never synchronises the host: the result is ready in stream order.

    Returns
    -------
    ndarray of ``x``'s shape and dtype in native byte order (``out`` when given).

    Notes
    -----
    Thread-safe: concurrent calls from several Python threads are fine on every
    Numba threading layer; on ``workqueue`` (not thread-safe itself) the CPU
    kernel calls made here take turns.
    """
    return _dispatch("forward", x, None, lam, method, axes, out, backend, stream)


def simam_backward(
    x: Any,
    grad_out: Any,
    lam: float = 1e-4,
    *,
    method: Method = "paper",
    axes: Axes = None,
    out: Any = None,
    backend: Backend = "auto",
    stream: Any = None,
) -> Any:
    """Vector-Jacobian product of :func:`simam`: ``grad_x = J(x)^T grad_out``.

    Needs only ``x`` and ``grad_out`` (no saved activations): channel statistics
    are recomputed.  ``grad_out`` must have ``x``'s shape; it is cast to ``x``'s
    dtype (native byte order), may be read-only (no copy) and must not be masked.
    Other parameters (``stream`` included), the result and thread safety are as for
    :func:`simam`.
    """
    return _dispatch("backward", x, grad_out, lam, method, axes, out, backend, stream)


def _dispatch(kind, x, grad_out, lam, method, axes, out, backend, stream=None):
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
            return cuda.simam_device(x, lam, exact, spatial, out, stream)
        if tuple(grad_out.shape) != shape:
            raise ValueError(f"grad_out has shape {tuple(grad_out.shape)}, expected {shape}")
        return cuda.simam_backward_device(x, grad_out, lam, exact, spatial, out, stream)
    if stream is not None:
        raise ValueError(
            "stream= applies to CUDA device arrays only; x is a host array "
            f"(backend={backend!r}): drop stream= or pass device arrays"
        )

    _reject_masked(x, "x")
    x = np.asarray(x)
    dtype = _check_dtype(x.dtype)  # native byte order: the result's dtype
    shape = x.shape
    spatial = _spatial_axes(shape, axes)
    m = _check_shape(shape, spatial)
    if kind == "backward":
        _reject_masked(grad_out, "grad_out")
        grad_out = np.asarray(grad_out)
        _check_dtype(grad_out.dtype, "grad_out")
        if grad_out.shape != shape:
            raise ValueError(f"grad_out has shape {grad_out.shape}, expected {shape}")
    if out is None:
        out = np.empty_like(x, dtype=dtype)  # x's memory order (channels-last stays so)
    else:
        _check_out(out, shape, dtype, x)
        if kind == "backward" and np.shares_memory(out, grad_out):
            if not _same_memory(out, grad_out):
                raise ValueError("out partly overlaps grad_out")
    impl = _resolve_backend(backend)
    work = np.dtype(np.float32) if dtype == np.float16 else dtype
    done = _channels_last_run(kind, impl, x, grad_out, out, spatial, m, lam, exact)
    if done is not None:
        return done
    layout = _Layout(shape, spatial, m)
    x2 = layout.rows(x, work)
    if kind == "forward":
        return layout.run(out, work, _guarded(impl, lambda o2: impl.forward_2d(x2, lam, exact, o2)))
    g2 = layout.rows(grad_out, work)
    return layout.run(out, work,
                      _guarded(impl, lambda o2: impl.backward_2d(x2, g2, lam, exact, o2)))
