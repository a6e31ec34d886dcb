"""Device array layout: strided views, the common 4-d view, overlap and stride checks,
and the gather/scatter fallback for layouts that need more than two merged dimensions.

The kernels index 4-d views ``(A, B, P, Q)`` with each array's own strides: the
non-spatial axes and the spatial axes are each merged into at most two dimensions
(:func:`split4`), so channels-last and other permuted or padded layouts run in
place.  Only layouts needing more than two dimensions on a side are gathered into a
contiguous scratch (and scattered back) on the launch stream.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from . import runtime
from .interop import is_fake


def strided_view(d: Any, shape: tuple[int, ...], strides: tuple[int, ...]) -> Any:
    """A view of device array ``d``'s memory with the given shape and byte strides."""
    if is_fake(d):
        view = np.lib.stride_tricks.as_strided(d._ary, shape=shape, strides=strides)
        return type(d)(view)
    from numba.cuda.cudadrv.devicearray import DeviceNDArray

    return DeviceNDArray(shape, strides, d.dtype, stream=d.stream, gpu_data=d.gpu_data)


def rows4(d: Any, channels: int, m: int) -> Any:
    """A C-contiguous device array of ``channels * M`` elements as a ``(1, channels, 1, M)``
    view."""
    item = np.dtype(d.dtype).itemsize
    return strided_view(d, (1, channels, 1, m), (channels * m * item, m * item, m * item, item))


def _memory_span(d: Any) -> tuple[int, int, int]:
    """``(pointer, low, high)`` byte addresses spanned by device array ``d``."""
    if is_fake(d):
        ptr = int(d._ary.__array_interface__["data"][0])
    else:
        ptr = int(d.__cuda_array_interface__["data"][0])
    lo = hi = ptr
    for size, stride in zip(d.shape, d.strides, strict=True):
        if size > 1:
            if stride < 0:
                lo += (size - 1) * stride
            else:
                hi += (size - 1) * stride
    return ptr, lo, hi + np.dtype(d.dtype).itemsize


def same_or_disjoint(a: Any, b: Any, what: str) -> bool:
    """True when ``a`` and ``b`` are the same memory; raise if they partly overlap."""
    pa, lo_a, hi_a = _memory_span(a)
    pb, lo_b, hi_b = _memory_span(b)
    if hi_a <= lo_b or hi_b <= lo_a:
        return False
    if pa == pb and tuple(a.shape) == tuple(b.shape) and tuple(a.strides) == tuple(b.strides):
        return True
    raise ValueError(f"out partly overlaps {what}; pass {what} itself or a separate array")


def split4(shape: tuple[int, ...], spatial: tuple[int, ...],
           strides: list[tuple[int, ...]]) -> tuple[tuple[int, ...], list[tuple[int, ...]]] | None:
    """A common 4-d ``(A, B, P, Q)`` view shape and per-array byte strides, or None.

    The non-spatial axes become ``(A, B)`` and the spatial axes ``(P, Q)``; size-1
    axes are dropped and neighbouring axes merged where every array is contiguous
    across them.  None when a side still needs more than two dimensions.
    """
    others = [a for a in range(len(shape)) if a not in spatial]
    o, s = _merged(shape, others, strides), _merged(shape, list(spatial), strides)
    if o is None or s is None:
        return None
    dims = o + s  # dims[3] is a real axis: M >= 2
    # size-1 padding gets the stride a C-contiguous array would have there
    for i in (2, 1, 0):
        if dims[i][0] == 1:
            dims[i] = (1, [dims[i + 1][0] * st for st in dims[i + 1][1]])
    shape4 = tuple(size for size, _ in dims)
    return shape4, [tuple(dims[i][1][k] for i in range(4)) for k in range(len(strides))]


def _merged(shape: tuple[int, ...], axes: list[int],
            strides: list[tuple[int, ...]]) -> list[tuple[int, list[int]]] | None:
    """``axes`` as at most two ``(size, per-array strides)`` dims, padded in front with
    size-1 dims; None when more than two remain after merging."""
    dims: list[tuple[int, list[int]]] = []
    for ax in axes:
        size = shape[ax]
        if size == 1:
            continue
        sts = [st[ax] for st in strides]
        if dims and all(prev == size * cur for prev, cur in zip(dims[-1][1], sts)):
            dims[-1] = (dims[-1][0] * size, sts)
        else:
            dims.append((size, sts))
    if len(dims) > 2:
        return None
    return [(1, [0] * len(strides))] * (2 - len(dims)) + dims


def check_strides(d: Any, name: str) -> Any:
    """Reject negative strides (Numba device views cannot describe them safely)."""
    for size, stride in zip(d.shape, d.strides, strict=True):
        if size > 1 and stride < 0:
            raise ValueError(
                f"{name} has a negative stride {tuple(d.strides)}; pass a copy with positive "
                "strides"
            )
    return d


def check_out(od: Any, shape: tuple[int, ...], dtype: np.dtype) -> Any:
    """Check ``out``'s strides, shape, dtype and that no two elements share memory."""
    check_strides(od, "out")
    if tuple(od.shape) != shape:
        raise ValueError(f"out has shape {tuple(od.shape)}, expected {shape}")
    if np.dtype(od.dtype) != dtype:
        raise TypeError(f"out has dtype {np.dtype(od.dtype)}, expected {dtype}")
    for size, stride in zip(od.shape, od.strides, strict=True):
        if size > 1 and stride == 0:
            raise ValueError("out has overlapping elements (a zero stride); pass a writable array")
    return od


def contiguous_rows(d: Any, shape: tuple[int, ...], spatial: tuple[int, ...], stream: Any,
                    into: Any = None) -> Any:
    """Gather ``d`` into (or, with ``into``, scatter contiguous ``into`` back to) rows."""
    others = tuple(a for a in range(len(shape)) if a not in spatial)
    perm = others + tuple(spatial)
    pshape = tuple(shape[a] for a in perm)
    item = np.dtype(d.dtype).itemsize
    cstrides, acc = [], item
    for size in reversed(pshape):
        cstrides.append(acc)
        acc *= size
    cstrides.reverse()
    permuted = strided_view(d, pshape, tuple(d.strides[a] for a in perm))
    if into is None:
        rows = runtime.numba_cuda().device_array(math.prod(shape), dtype=d.dtype, stream=stream)
        _assign(strided_view(rows, pshape, tuple(cstrides)), permuted, stream)
        return rows
    _assign(permuted, strided_view(into, pshape, tuple(cstrides)), stream)
    return d


def _assign(dst: Any, src: Any, stream: Any) -> None:
    """Device-to-device strided copy ``dst[...] = src`` on ``stream`` (no host sync)."""
    if is_fake(dst):
        dst._ary[...] = src._ary
    else:
        launch_on = stream if stream else runtime.numba_cuda().default_stream()
        dst.setitem(Ellipsis, src, stream=launch_on)
