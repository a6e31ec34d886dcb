"""Entry points: host rows (``forward_2d``/``backward_2d``) and device arrays of any layout.

Without ``out`` a device call returns an array of the input's kind (see
:func:`.interop.framework_empty`); every device call launches on the stream of
:func:`.streams.stream_handle` and never synchronises the host.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from . import launch, layout, runtime, streams
from .interop import as_device, framework_empty
from .kernels import Kind


def forward_2d(x2: np.ndarray, lam: float, exact: bool, out2: np.ndarray) -> None:
    """SimAM forward of rows of host array ``x2`` into ``out2`` (may be ``x2``) on the GPU."""
    cuda = runtime.numba_cuda()
    dx = cuda.to_device(np.ascontiguousarray(x2))
    channels, m = x2.shape
    v = layout.rows4(dx, channels, m)
    launch.run("forward", (v, v), (1, channels, 1, m), lam, exact, None)
    dx.copy_to_host(out2)


def backward_2d(
    x2: np.ndarray, g2: np.ndarray, lam: float, exact: bool, out2: np.ndarray
) -> None:
    """Vector-Jacobian product of rows of host arrays ``x2``, ``g2`` into ``out2`` on the GPU."""
    cuda = runtime.numba_cuda()
    dx = cuda.to_device(np.ascontiguousarray(x2))
    dg = cuda.to_device(np.ascontiguousarray(g2, dtype=x2.dtype))
    channels, m = x2.shape
    vg = layout.rows4(dg, channels, m)
    launch.run("backward", (layout.rows4(dx, channels, m), vg, vg), (1, channels, 1, m), lam,
               exact, None)
    dg.copy_to_host(out2)


def _inputs(kind: Kind, x: Any, grad_out: Any) -> tuple[list[Any], Any]:
    """``([x, grad_out?] as checked device arrays, x's interface or None)``."""
    xd, xdesc = as_device(x, "x")
    layout.check_strides(xd, "x")
    arrays = [xd]
    if kind == "backward":
        gd, _ = as_device(grad_out, "grad_out")
        layout.check_strides(gd, "grad_out")
        if np.dtype(gd.dtype) != np.dtype(xd.dtype):
            raise TypeError(f"grad_out has dtype {np.dtype(gd.dtype)}, expected "
                            f"{np.dtype(xd.dtype)} (x's)")
        if tuple(gd.shape) != tuple(xd.shape):
            raise ValueError(f"grad_out has shape {tuple(gd.shape)}, expected {tuple(xd.shape)}")
        arrays.append(gd)
    return arrays, xdesc


def _result(arrays: list[Any], x: Any, out: Any, handle: Any, launch_stream: Any) -> tuple:
    """``(result, its device array)``: ``out`` checked against the inputs, or a new array."""
    xd = arrays[0]
    shape, dtype = tuple(int(v) for v in xd.shape), np.dtype(xd.dtype)
    if out is not None:
        od, _ = as_device(out, "out", writable=True)
        layout.check_out(od, shape, dtype)
        layout.same_or_disjoint(od, xd, "x")
        if len(arrays) > 1:
            layout.same_or_disjoint(od, arrays[1], "grad_out")
        return out, od
    result = framework_empty(x, handle)
    if result is None:
        od = runtime.numba_cuda().device_array(shape, dtype=dtype, stream=launch_stream)
        return od, od
    od, _ = as_device(result, "the result", writable=True)
    return result, layout.check_out(od, shape, dtype)


def _run_device(kind: Kind, x: Any, grad_out: Any, lam: float, exact: bool,
                spatial_axes: tuple[int, ...], out: Any, stream: Any = None) -> Any:
    """Check and view the arrays, launch ``kind``'s kernel, return the result array."""
    arrays, xdesc = _inputs(kind, x, grad_out)
    handle = streams.stream_handle(stream, x, xdesc)
    launch_stream = streams.numba_stream(handle)
    result, od = _result(arrays, x, out, handle, launch_stream)
    arrays.append(od)
    shape, spatial = tuple(int(v) for v in od.shape), tuple(spatial_axes)
    plan = layout.split4(shape, spatial, [tuple(int(s) for s in a.strides) for a in arrays])
    if plan is not None:
        shape4, strides4 = plan
        views = tuple(layout.strided_view(a, shape4, st) for a, st in zip(arrays, strides4))
        launch.run(kind, views, shape4, lam, exact, launch_stream)
        return result
    # more than two dimensions on a side: contiguous scratch rows
    m = math.prod(shape[a] for a in spatial)
    channels = math.prod(shape) // m
    rows = [layout.contiguous_rows(a, shape, spatial, launch_stream) for a in arrays[:-1]]
    orow = runtime.numba_cuda().device_array(channels * m, dtype=od.dtype, stream=launch_stream)
    views = tuple(layout.rows4(r, channels, m) for r in (*rows, orow))
    launch.run(kind, views, (1, channels, 1, m), lam, exact, launch_stream)
    layout.contiguous_rows(od, shape, spatial, launch_stream, into=orow)
    return result


def simam_device(
    x: Any, lam: float, exact: bool, spatial_axes: tuple[int, ...], out: Any = None,
    stream: Any = None,
) -> Any:
    """SimAM forward of device array ``x`` over ``spatial_axes``, on the GPU without a host copy.

    ``x`` is a Numba device array or any object with ``__cuda_array_interface__``
    (CuPy, PyTorch CUDA tensors; one with ``requires_grad`` is read detached).
    Returns ``out`` (a writable device array or CAI object of ``x``'s shape and
    dtype; may be ``x`` itself) after writing into it; without ``out`` a new array
    of ``x``'s type: a ``torch.Tensor`` from ``torch.empty_like`` for torch input
    (``x``'s layout, never requiring grad), a ``cupy.ndarray`` from
    ``cupy.empty_like`` for CuPy input (both allocated on the launch stream through
    the framework's caching allocator), else a C-contiguous Numba device array.
    Launches on ``stream`` (see :func:`.streams.stream_handle`) and does not
    synchronise the host.
    """
    return _run_device("forward", x, None, lam, exact, spatial_axes, out, stream)


def simam_backward_device(
    x: Any,
    grad_out: Any,
    lam: float,
    exact: bool,
    spatial_axes: tuple[int, ...],
    out: Any = None,
    stream: Any = None,
) -> Any:
    """Vector-Jacobian product of :func:`simam_device` for device arrays ``x``, ``grad_out``.

    ``grad_out`` must have ``x``'s shape and dtype; ``out`` as for :func:`simam_device`
    (may be ``x`` or ``grad_out``).
    """
    return _run_device("backward", x, grad_out, lam, exact, spatial_axes, out, stream)
