"""Numba CUDA kernels for SimAM (forward and analytic backward, paper and exact).

Each kernel implements the per-channel algorithm of :mod:`simam_ref.reference`
on a C-contiguous ``(channels, M)`` device array: power-of-two scaling, two-pass
float64 statistics with one correction step, the paper or exact inverse energy,
and a fused output pass.  The backward recomputes everything from ``x`` (no
saved state): statistics, then the ``P1``/``P2`` reductions, then the output.

Layout.  A *group* of ``G`` threads (``G`` a power of two dividing the block)
owns one channel and walks it with a stride of ``G``; a block holds
``THREADS_PER_BLOCK // G`` groups and the grid strides over channel batches.
``G`` is chosen per launch from ``M`` (:func:`launch_config`): large channels get
the whole block (one block per channel), tiny ones (``7x7 = 49`` neurons) get
``GROUP_MIN`` threads (one warp), so a block works on many channels at once.
Reductions run in float64 through one dynamic shared-memory buffer, a tree
within each group separated by ``syncthreads`` — no warp shuffles, so the same
code runs under Numba's CUDA simulator.  Every launch reads the module settings
``THREADS_PER_BLOCK``, ``GROUP_MIN`` and ``ELEMENTS_PER_THREAD`` afresh (tests
lower them for simulator speed); nothing about them is baked in at compile time.

Device input of any layout.  With the spatial axes trailing and contiguous (any
permutation whose ``(others..., spatial...)`` order is C-contiguous) the
``(channels, M)`` view is free and the kernels work in place on the caller's
memory.  Otherwise ``x`` (and ``grad_out``) are gathered into a contiguous device
scratch with a strided device-to-device assignment, and the result is scattered
into ``out`` the same way.  A freshly allocated result is C-contiguous in ``x``'s
shape.

Importing this module never touches the driver; :func:`available` says whether
a GPU (or the simulator, ``NUMBA_ENABLE_CUDASIM=1``) can run the kernels.
"""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any

import numpy as np

from ..reference import LAM_FLOOR

__all__ = [
    "ELEMENTS_PER_THREAD",
    "GROUP_MIN",
    "THREADS_PER_BLOCK",
    "available",
    "backward_2d",
    "forward_2d",
    "launch_config",
    "simam_backward_device",
    "simam_device",
    "unavailable_reason",
]

#: Threads per block (a power of two, at most 1024).  Read at every launch.
THREADS_PER_BLOCK = 256
#: Smallest group of threads per channel (one warp on a GPU).  Read at every launch.
GROUP_MIN = 32
#: Target elements per thread when sizing a group: channels with
#: ``M <= GROUP_MIN * ELEMENTS_PER_THREAD`` get ``GROUP_MIN`` threads (many
#: channels per block), channels with ``M > THREADS_PER_BLOCK * ELEMENTS_PER_THREAD / 2``
#: get the whole block (one block per channel).
ELEMENTS_PER_THREAD = 8
#: Upper bound on the grid size; the kernels grid-stride over channel batches.
MAX_BLOCKS = 1 << 20

_MIN_EXP = -1000  # the reference clips frexp exponents to [-1000, 1100]
_SCALE_MAX = 2.0**-_MIN_EXP
_KERNELS: SimpleNamespace | None = None
#: ``numba.cuda``, bound by :func:`_build`.  Kernel bodies must reach it as a module
#: global: the simulator swaps module globals for its fake module while they run.
cuda: Any = None


# ------------------------------------------------------------------- availability
def _cuda() -> Any:
    """The ``numba.cuda`` module (imported on first use)."""
    from numba import cuda

    return cuda


def unavailable_reason() -> str:
    """Why :func:`available` is False ('' when it is True)."""
    try:
        cuda = _cuda()
    except Exception as exc:  # ImportError, missing CUDA Python bindings, ...
        return f"numba.cuda cannot be imported: {exc}"
    try:
        if cuda.is_available():
            return ""
    except Exception as exc:
        return f"numba.cuda.is_available() failed: {exc}"
    return (
        "no CUDA GPU or driver was found (set NUMBA_ENABLE_CUDASIM=1 before importing "
        "numba.cuda to use the simulator)"
    )


def available() -> bool:
    """True when a CUDA GPU, or Numba's CUDA simulator, can run the kernels."""
    return unavailable_reason() == ""


def simulator_enabled() -> bool:
    """True when ``numba.cuda`` is Numba's CUDA simulator."""
    return _cuda().device_array.__module__.startswith("numba.cuda.simulator")


# ------------------------------------------------------------------------ kernels
def _build() -> SimpleNamespace:
    """Compile-on-demand kernels (lazily, so importing never needs a driver)."""
    global cuda
    cuda = _cuda()
    from numba import float64 as nb_f64

    f64 = np.float64
    f32 = np.float32

    @cuda.jit(device=True)
    def group_sum2(sh, tid, lane, group, tpb, a, b):
        """Sums of ``a`` and ``b`` over the group of ``tid`` (whole block participates)."""
        sh[tid] = a
        sh[tpb + tid] = b
        cuda.syncthreads()
        step = group // 2
        while step > 0:
            if lane < step:
                sh[tid] += sh[tid + step]
                sh[tpb + tid] += sh[tpb + tid + step]
            cuda.syncthreads()
            step //= 2
        base = tid - lane
        ra = sh[base]
        rb = sh[tpb + base]
        cuda.syncthreads()
        return ra, rb

    @cuda.jit(device=True)
    def group_sum_max(sh, tid, lane, group, tpb, a, b):
        """Sum of ``a`` and maximum of ``b`` over the group of ``tid``."""
        sh[tid] = a
        sh[tpb + tid] = b
        cuda.syncthreads()
        step = group // 2
        while step > 0:
            if lane < step:
                sh[tid] += sh[tid + step]
                other = sh[tpb + tid + step]
                if other > sh[tpb + tid]:
                    sh[tpb + tid] = other
            cuda.syncthreads()
            step //= 2
        base = tid - lane
        ra = sh[base]
        rb = sh[tpb + base]
        cuda.syncthreads()
        return ra, rb

    @cuda.jit(device=True)
    def channel_stats(x, c, valid, lane, tid, group, tpb, m, sh):
        """``(s, mu, S2)`` of channel ``c`` (scaled units), as in the reference."""
        total = f64(0.0)
        amax = f64(0.0)
        if valid:
            for j in range(lane, m, group):
                v = f64(x[c, j])
                total += v
                av = abs(v)
                if av > amax:
                    amax = av
        total, amax = group_sum_max(sh, tid, lane, group, tpb, total, amax)
        # s = 2**-e with a = mant * 2**e, e clipped to [_MIN_EXP, 1100] (finite
        # doubles have e <= 1024); mant / a is exactly 2**-e (no ldexp: it wants an
        # int32 on the GPU and a Python int in the simulator).
        a = amax if math.isfinite(amax) else f64(1.0)
        mant, e = math.frexp(a)
        if a == 0.0:
            s = f64(1.0)
        elif e < _MIN_EXP:
            s = _SCALE_MAX
        else:
            s = mant / a
        # sum(x) * s equals sum(x * s) unless sum(x) overflowed: rescan then.
        total_s = total * s
        need = valid and math.isfinite(amax) and not math.isfinite(total)
        if cuda.syncthreads_or(1 if need else 0):
            acc = f64(0.0)
            if need:
                for j in range(lane, m, group):
                    acc += f64(x[c, j]) * s
            acc, _ = group_sum2(sh, tid, lane, group, tpb, acc, f64(0.0))
            if need:
                total_s = acc
        mu0 = total_s / m
        su = f64(0.0)
        ss = f64(0.0)
        if valid:
            for j in range(lane, m, group):
                dv = f64(x[c, j]) * s - mu0
                su += dv
                ss += dv * dv
        su, ss = group_sum2(sh, tid, lane, group, tpb, su, ss)
        mu = mu0 + su / m
        s2 = ss - su * su / m
        if s2 < 0.0:
            s2 = f64(0.0)
        return s, mu, s2

    @cuda.jit(device=True)
    def sigmoid_pair(e_inv, lowp):
        """``(sigmoid(E), exp(-E))``; float32 ``exp`` for float32/float16 data."""
        if lowp:
            t32 = math.exp(f32(-e_inv))
            g32 = f32(1.0) / (f32(1.0) + t32)
            return f64(g32), f64(t32)
        t = math.exp(-e_inv)
        return 1.0 / (1.0 + t), t

    @cuda.jit(device=True)
    def energy_terms(u, exact, s2, lam_s, n, r, ca):
        """``(E, B)``: inverse energy and its denominator (``4(var + lam)``)."""
        d = u * u
        if exact:
            var_t = s2 - r * d
            if var_t < 0.0:
                var_t = f64(0.0)
            b = 4.0 * (var_t / n + lam_s)
            return (r * r) * d / b + 0.5, b
        return d * ca + 0.5, f64(0.0)

    @cuda.jit
    def forward(x, out, lam, exact, lowp, group, channels, m):
        """``out = x * sigmoid(E)`` per channel row of ``x``."""
        sh = cuda.shared.array(0, dtype=nb_f64)
        tid = cuda.threadIdx.x
        tpb = cuda.blockDim.x
        lane = tid % group
        per_block = tpb // group
        n = f64(m - 1)
        r = f64(m) / n
        for base in range(cuda.blockIdx.x * per_block, channels, cuda.gridDim.x * per_block):
            c = base + tid // group
            valid = c < channels
            s, mu, s2 = channel_stats(x, c, valid, lane, tid, group, tpb, m, sh)
            lam_s = max(lam * s * s, LAM_FLOOR)
            ca = 1.0 / (4.0 * (s2 / n + lam_s))
            if valid:
                for j in range(lane, m, group):
                    xv = f64(x[c, j])
                    e_inv, _ = energy_terms(xv * s - mu, exact, s2, lam_s, n, r, ca)
                    g, _ = sigmoid_pair(e_inv, lowp)
                    out[c, j] = xv * g

    @cuda.jit
    def backward(x, go, out, lam, exact, lowp, group, channels, m):
        """Vector-Jacobian product per channel row (recomputed from ``x``)."""
        sh = cuda.shared.array(0, dtype=nb_f64)
        tid = cuda.threadIdx.x
        tpb = cuda.blockDim.x
        lane = tid % group
        per_block = tpb // group
        n = f64(m - 1)
        r = f64(m) / n
        for base in range(cuda.blockIdx.x * per_block, channels, cuda.gridDim.x * per_block):
            c = base + tid // group
            valid = c < channels
            s, mu, s2 = channel_stats(x, c, valid, lane, tid, group, tpb, m, sh)
            lam_s = max(lam * s * s, LAM_FLOOR)
            a = 4.0 * (s2 / n + lam_s)
            ca = 1.0 / a
            pa = 2.0 / a
            pb = 8.0 / (n * a * a)
            p1 = f64(0.0)
            p2 = f64(0.0)
            if valid:
                for j in range(lane, m, group):
                    xs = f64(x[c, j]) * s
                    u = xs - mu
                    e_inv, b = energy_terms(u, exact, s2, lam_s, n, r, ca)
                    g, t = sigmoid_pair(e_inv, lowp)
                    q = f64(go[c, j]) * xs * g * (t * g)
                    d = u * u
                    if exact:
                        alpha = 2.0 * r * r * u / b + 8.0 * r * r * r * u * d / (n * b * b)
                        beta = 8.0 * r * r * d / (n * b * b)
                    else:
                        alpha = u * pa
                        beta = d * pb
                    p1 += q * alpha
                    p2 += q * beta
            p1, p2 = group_sum2(sh, tid, lane, group, tpb, p1, p2)
            p1m = p1 / m
            if valid:
                for j in range(lane, m, group):
                    xs = f64(x[c, j]) * s
                    u = xs - mu
                    e_inv, b = energy_terms(u, exact, s2, lam_s, n, r, ca)
                    g, t = sigmoid_pair(e_inv, lowp)
                    gv = f64(go[c, j])
                    q = gv * xs * g * (t * g)
                    if exact:
                        d = u * u
                        alpha = 2.0 * r * r * u / b + 8.0 * r * r * r * u * d / (n * b * b)
                    else:
                        alpha = u * pa
                    out[c, j] = gv * g + q * alpha - p1m - u * p2

    return SimpleNamespace(forward=forward, backward=backward)


def _kernels() -> SimpleNamespace:
    global _KERNELS
    if _KERNELS is None:
        _KERNELS = _build()
    return _KERNELS


# ------------------------------------------------------------------------- launch
def _pow2_ceil(v: int) -> int:
    return 1 << max(0, (int(v) - 1).bit_length())


def _threads_per_block() -> int:
    tpb = int(THREADS_PER_BLOCK)
    if tpb < 1 or tpb > 1024 or tpb & (tpb - 1):
        raise ValueError(f"THREADS_PER_BLOCK must be a power of two in [1, 1024], got {tpb}")
    return tpb


def launch_config(channels: int, m: int) -> tuple[int, int, int]:
    """``(blocks, threads_per_block, group)`` for ``channels`` rows of ``m`` neurons.

    ``group`` threads share one channel: ``group == threads_per_block`` is the
    one-block-per-channel layout, a smaller group packs several channels per block.
    """
    tpb = _threads_per_block()
    gmin = min(tpb, _pow2_ceil(max(1, int(GROUP_MIN))))
    want = _pow2_ceil(-(-m // max(1, int(ELEMENTS_PER_THREAD))))
    group = min(tpb, max(gmin, want))
    per_block = tpb // group
    blocks = max(1, min(MAX_BLOCKS, -(-channels // per_block)))
    return blocks, tpb, group


def _launch_forward(x2: Any, out2: Any, lam: float, exact: bool) -> None:
    channels, m = (int(v) for v in x2.shape)
    blocks, tpb, group = launch_config(channels, m)
    lowp = np.dtype(x2.dtype) != np.float64
    kern = _kernels().forward
    kern[blocks, tpb, 0, 16 * tpb](x2, out2, float(lam), bool(exact), lowp, group, channels, m)


def _launch_backward(x2: Any, g2: Any, out2: Any, lam: float, exact: bool) -> None:
    channels, m = (int(v) for v in x2.shape)
    blocks, tpb, group = launch_config(channels, m)
    lowp = np.dtype(x2.dtype) != np.float64
    kern = _kernels().backward
    kern[blocks, tpb, 0, 16 * tpb](
        x2, g2, out2, float(lam), bool(exact), lowp, group, channels, m
    )


# ------------------------------------------------------------------ NumPy (host) API
def forward_2d(x2: np.ndarray, lam: float, exact: bool, out2: np.ndarray) -> None:
    """SimAM forward of rows of host array ``x2`` into ``out2`` (may be ``x2``) on the GPU."""
    cuda = _cuda()
    dx = cuda.to_device(np.ascontiguousarray(x2))
    _launch_forward(dx, dx, lam, exact)
    dx.copy_to_host(out2)


def backward_2d(
    x2: np.ndarray, g2: np.ndarray, lam: float, exact: bool, out2: np.ndarray
) -> None:
    """Vector-Jacobian product of rows of host arrays ``x2``, ``g2`` into ``out2`` on the GPU."""
    cuda = _cuda()
    dx = cuda.to_device(np.ascontiguousarray(x2))
    dg = cuda.to_device(np.ascontiguousarray(g2, dtype=x2.dtype))
    _launch_backward(dx, dg, dg, lam, exact)
    dg.copy_to_host(out2)


# ---------------------------------------------------------------- device arrays
def _is_fake(a: Any) -> bool:
    return type(a).__name__ == "FakeCUDAArray"


def _as_device(obj: Any, name: str) -> Any:
    """A Numba device array viewing ``obj`` (no copy for device input).

    Numba device arrays (real or simulated) pass through; objects with
    ``__cuda_array_interface__`` are wrapped with ``numba.cuda.as_cuda_array``;
    a NumPy array (mixed host/device calls) is copied to the device.
    """
    cuda = _cuda()
    if getattr(obj, "__cuda_ndarray__", False):
        return obj
    if hasattr(obj, "__cuda_array_interface__"):
        return cuda.as_cuda_array(obj)
    if isinstance(obj, np.ndarray):
        return cuda.to_device(obj)
    raise TypeError(
        f"{name} must be a CUDA device array (Numba device array or an object with "
        f"__cuda_array_interface__), got {type(obj).__name__}"
    )


def _strided_view(d: Any, shape: tuple[int, ...], strides: tuple[int, ...]) -> Any:
    """A view of device array ``d``'s memory with the given shape and byte strides."""
    if _is_fake(d):
        view = np.lib.stride_tricks.as_strided(d._ary, shape=shape, strides=strides)
        return type(d)(view)
    from numba.cuda.cudadrv.devicearray import DeviceNDArray

    return DeviceNDArray(shape, strides, d.dtype, stream=d.stream, gpu_data=d.gpu_data)


def _memory_span(d: Any) -> tuple[int, int, int]:
    """``(pointer, low, high)`` byte addresses spanned by device array ``d``."""
    if _is_fake(d):
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


def _same_or_disjoint(a: Any, b: Any, what: str) -> bool:
    """True when ``a`` and ``b`` are the same memory; raise if they partly overlap."""
    pa, lo_a, hi_a = _memory_span(a)
    pb, lo_b, hi_b = _memory_span(b)
    if hi_a <= lo_b or hi_b <= lo_a:
        return False
    if pa == pb and tuple(a.shape) == tuple(b.shape) and tuple(a.strides) == tuple(b.strides):
        return True
    raise ValueError(f"out partly overlaps {what}; pass {what} itself or a separate array")


class _DeviceLayout:
    """Maps a device array of any layout to ``(channels, M)`` rows and back."""

    def __init__(self, shape: tuple[int, ...], spatial: tuple[int, ...]):
        others = tuple(a for a in range(len(shape)) if a not in spatial)
        self.perm = others + tuple(spatial)
        self.shape = shape
        self.m = math.prod(shape[a] for a in spatial)
        self.channels = math.prod(shape) // self.m

    def rows_view(self, d: Any) -> Any | None:
        """``d`` as a C-contiguous ``(channels, M)`` view, or None when that needs a copy."""
        item = np.dtype(d.dtype).itemsize
        expected = item
        for ax in reversed(self.perm):
            size, stride = self.shape[ax], d.strides[ax]
            if size != 1 and stride != expected:
                return None
            expected *= size
        return _strided_view(d, (self.channels, self.m), (self.m * item, item))

    def permuted(self, d: Any) -> Any:
        """``d`` with its axes in ``(others..., spatial...)`` order (a view)."""
        shape = tuple(self.shape[a] for a in self.perm)
        strides = tuple(d.strides[a] for a in self.perm)
        return _strided_view(d, shape, strides)

    def gather(self, d: Any, dtype: np.dtype) -> Any:
        """Rows of ``d``: a free view when possible, else a contiguous device copy."""
        view = self.rows_view(d)
        if view is not None:
            return view
        scratch = _cuda().device_array((self.channels, self.m), dtype=dtype)
        _assign(_strided_view(scratch, *self._perm_desc(scratch)), self.permuted(d))
        return scratch

    def scatter(self, rows: Any, d: Any) -> None:
        """Copy contiguous ``rows`` into device array ``d`` of any layout."""
        _assign(self.permuted(d), _strided_view(rows, *self._perm_desc(rows)))

    def _perm_desc(self, rows: Any) -> tuple[tuple[int, ...], tuple[int, ...]]:
        shape = tuple(self.shape[a] for a in self.perm)
        item = np.dtype(rows.dtype).itemsize
        strides = []
        acc = item
        for size in reversed(shape):
            strides.append(acc)
            acc *= size
        return shape, tuple(reversed(strides))


def _assign(dst: Any, src: Any) -> None:
    """Device-to-device strided copy ``dst[...] = src`` (same shape)."""
    if _is_fake(dst):
        dst._ary[...] = src._ary
    else:
        dst[...] = src


def _check_strides(d: Any, name: str) -> Any:
    """Reject negative strides (Numba device views cannot describe them safely)."""
    for size, stride in zip(d.shape, d.strides, strict=True):
        if size > 1 and stride < 0:
            raise ValueError(
                f"{name} has a negative stride {tuple(d.strides)}; pass a copy with positive "
                "strides"
            )
    return d


def _check_out(out: Any, shape: tuple[int, ...], dtype: np.dtype) -> Any:
    if isinstance(out, np.ndarray):
        raise TypeError("out must be a CUDA device array for device input, got numpy.ndarray")
    od = _check_strides(_as_device(out, "out"), "out")
    if tuple(od.shape) != shape:
        raise ValueError(f"out has shape {tuple(od.shape)}, expected {shape}")
    if np.dtype(od.dtype) != dtype:
        raise TypeError(f"out has dtype {np.dtype(od.dtype)}, expected {dtype}")
    for size, stride in zip(od.shape, od.strides, strict=True):
        if size > 1 and stride == 0:
            raise ValueError("out has overlapping elements (a zero stride); pass a writable array")
    return od


def _run_device(kind: str, x: Any, grad_out: Any, lam: float, exact: bool,
                spatial_axes: tuple[int, ...], out: Any) -> Any:
    cuda = _cuda()
    xd = _check_strides(_as_device(x, "x"), "x")
    dtype = np.dtype(xd.dtype)
    shape = tuple(int(v) for v in xd.shape)
    layout = _DeviceLayout(shape, tuple(spatial_axes))
    gd = None
    if kind == "backward":
        gd = _check_strides(_as_device(grad_out, "grad_out"), "grad_out")
        if np.dtype(gd.dtype) != dtype:
            raise TypeError(f"grad_out has dtype {np.dtype(gd.dtype)}, expected {dtype} (x's)")
        if tuple(gd.shape) != shape:
            raise ValueError(f"grad_out has shape {tuple(gd.shape)}, expected {shape}")
    od = None
    if out is not None:
        od = _check_out(out, shape, dtype)
        _same_or_disjoint(od, xd, "x")
        if gd is not None:
            _same_or_disjoint(od, gd, "grad_out")
    x2 = layout.gather(xd, dtype)
    g2 = layout.gather(gd, dtype) if gd is not None else None
    result = cuda.device_array(shape, dtype=dtype) if od is None else od
    o2 = layout.rows_view(result)
    target = o2 if o2 is not None else cuda.device_array((layout.channels, layout.m), dtype)
    if kind == "forward":
        _launch_forward(x2, target, lam, exact)
    else:
        _launch_backward(x2, g2, target, lam, exact)
    if o2 is None:
        layout.scatter(target, result)
    return out if out is not None else result


def simam_device(
    x: Any, lam: float, exact: bool, spatial_axes: tuple[int, ...], out: Any = None
) -> Any:
    """SimAM forward of device array ``x`` over ``spatial_axes``, on the GPU without a host copy.

    ``x`` is a Numba device array or any object with ``__cuda_array_interface__``
    (CuPy, PyTorch CUDA tensors).  Returns a new C-contiguous Numba device array,
    or ``out`` (a device array or CAI object of ``x``'s shape and dtype; may be
    ``x`` itself) after writing into it.
    """
    return _run_device("forward", x, None, lam, exact, spatial_axes, out)


def simam_backward_device(
    x: Any,
    grad_out: Any,
    lam: float,
    exact: bool,
    spatial_axes: tuple[int, ...],
    out: Any = None,
) -> Any:
    """Vector-Jacobian product of :func:`simam_device` for device arrays ``x``, ``grad_out``.

    ``grad_out`` must have ``x``'s shape and dtype; ``out`` as for :func:`simam_device`
    (may be ``x`` or ``grad_out``).
    """
    return _run_device("backward", x, grad_out, lam, exact, spatial_axes, out)
