"""Numba CUDA kernels for SimAM (forward and analytic backward, paper and exact).

Each kernel implements the per-channel algorithm of :mod:`simam_ref.reference`
and recomputes everything from ``x`` (the backward saves no state): channel
statistics, then (backward) the ``P1``/``P2`` reductions, then the output.

Variants.  One kernel is compiled per (forward/backward, method, precision,
reduction, one or two spatial dimensions): these are compile-time constants, so
each kernel carries only its own arithmetic (:func:`kernel`).

* float16/float32 input: statistics in one shifted float64 pass (sum and sum of
  squares of ``x - x[first]``; float32 squares cannot overflow float64); the
  inverse energy, ``exp`` and sigmoid per element in float32 (the deviation is
  formed in float64 and scaled by ``sqrt(ca)`` before the cast, so nothing
  overflows); the backward's per-element coefficients, sums and output
  combination in float64.  On a GPU the float32 reciprocals use ``div.approx``
  (2 ulp, no IEEE slow path), the exact method's ``1 / b`` too, as ``ca / z``
  with ``z = b * ca`` in ``(0, 1]``.
* float64 input: the reference's power-of-two scaling, two-pass statistics with
  one correction step, float64 throughout.
* Per-channel reciprocals are hoisted out of the element loops; the divisions
  left per element are the sigmoid's and, for the exact method, ``1 / b``.
* Small channels (``M <= k * G`` with ``k <= REGISTER_ELEMENTS``, ``k`` a power of
  two and a compile-time constant): each thread loads its ``k`` values once into a
  ``cuda.local.array`` that the compiler keeps in registers (the loops over it are
  unrolled); the statistics, the backward's two reductions and the output come
  from there, so ``x`` (and ``grad_out``) are read from memory once.  The sums run
  in the same order as in the streaming kernels, which read ``x`` in every pass:
  the two give identical results under the simulator.

Layout.  A *group* of ``G`` threads (``G`` a power of two dividing the block)
owns one channel and walks it with a stride of ``G``; a block holds
``THREADS_PER_BLOCK // G`` groups and the grid strides over channel batches.
``G`` is chosen per launch from ``M`` (:func:`launch_config`).  Reductions are
float64: on a GPU warp shuffles (no block barrier for ``G <= 32``; above, the
warps' partial sums meet in shared memory behind one barrier); under Numba's CUDA
simulator, which has no shuffles, a shared-memory tree.  The choice is made when
a kernel is built (:data:`WARP_SHUFFLE`).  Every launch reads the settings
``THREADS_PER_BLOCK``, ``GROUP_MIN`` and ``ELEMENTS_PER_THREAD`` afresh (tests lower
them for simulator speed).

Device input of any layout.  The kernels index 4-d views ``(A, B, P, Q)`` with
the array's own strides: channel ``c = a * B + b``, neuron ``j = p * Q + q``.
The non-spatial axes and the spatial axes are each merged into at most two
dimensions (axes are merged where every array involved is contiguous across
them), so channels-last and other permuted layouts run in place with no copy.
Only layouts that need more than two dimensions on a side are gathered into a
contiguous scratch (and scattered back) on the launch stream.

Results.  Without ``out`` a device call returns an array of the input's kind:
``torch.empty_like`` for torch tensors and ``cupy.empty_like`` for CuPy arrays
(their caching allocators, on the launch stream), else a Numba device array.

Streams.  Device calls launch on a stream and never synchronise the host: the
``stream=`` argument when given (a Numba stream, a ``torch.cuda.Stream``, a CuPy
stream or a raw ``cudaStream_t`` integer), else the caller's current stream where
it can be known: PyTorch's current stream for torch tensors, the interface's
``stream`` for ``__cuda_array_interface__`` v3 objects (CuPy), a Numba array's own
stream, otherwise the legacy default stream.  The Numba wrapper of an external
stream handle is made once per handle and reused.

Importing this module never touches the driver; :func:`available` says whether
a GPU (or the simulator, ``NUMBA_ENABLE_CUDASIM=1``) can run the kernels.
"""

from __future__ import annotations

import math
import sys
from typing import Any

import numpy as np

from ..reference import LAM_FLOOR

__all__ = [
    "ELEMENTS_PER_THREAD",
    "GROUP_MIN",
    "REGISTER_ELEMENTS",
    "THREADS_PER_BLOCK",
    "WARP_SHUFFLE",
    "available",
    "backward_2d",
    "forward_2d",
    "kernel",
    "launch_config",
    "register_elements",
    "simam_backward_device",
    "simam_device",
    "simulator_enabled",
    "split4",
    "stream_handle",
    "unavailable_reason",
    "use_shuffle",
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
#: Register kernels: a channel with ``M <= REGISTER_ELEMENTS * group`` is read once
#: into registers (``k`` values a thread, ``k`` the power of two at least
#: ``ceil(M / group)``; one kernel variant per ``k``) and the statistics, the
#: backward's reductions and the output come from there.  0 turns them off (every
#: pass streams ``x`` from memory).  Read at every launch.
REGISTER_ELEMENTS = 4
#: Upper bound on the grid size; the kernels grid-stride over channel batches.
MAX_BLOCKS = 1 << 20
#: Reductions: ``None`` picks warp shuffles on a GPU and the shared-memory tree under
#: the simulator (which has no shuffles); ``True``/``False`` forces one.  Read when a
#: kernel variant is first built.
WARP_SHUFFLE: bool | None = None

_MIN_EXP = -1000  # the reference clips frexp exponents to [-1000, 1100]
_SCALE_MAX = 2.0**-_MIN_EXP
_FULL_MASK = 0xFFFFFFFF
_WARP = 32
#: Shared float64 words of the shuffle reduction: two slots of (32 + 32) partials.
_SHUFFLE_WORDS = 128
_KERNELS: dict[tuple[str, bool, bool, bool, bool, bool, int], Any] = {}
#: ``numba.cuda``, bound by :func:`_bind`.  Kernel bodies must reach it as a module
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


def use_shuffle() -> bool:
    """Whether newly built kernels reduce with warp shuffles (see :data:`WARP_SHUFFLE`)."""
    if WARP_SHUFFLE is not None:
        return bool(WARP_SHUFFLE)
    return not simulator_enabled()


def _bind() -> Any:
    global cuda
    if cuda is None:
        cuda = _cuda()
    return cuda


# ------------------------------------------------------------------ reductions
def _group_reducer(shuffle: bool, take_max: bool, full_warps: bool = True) -> Any:
    """Device function ``(sh, slot, tid, group, a, b) -> (sum a, sum-or-max b)``.

    Every thread of the block calls it (the barriers need them all); every lane of
    a group gets the group's result.  ``slot`` (0 or 1) picks the half of the
    shuffle path's shared buffer; callers alternate it so that one barrier per
    reduction suffices.  The tree path ignores it and ends with a barrier.
    ``full_warps``: blocks of at least 32 threads (a constant shuffle mask).
    """
    f64 = np.float64

    if shuffle:

        @cuda.jit(device=True)
        def xor_step(a, b, off, mask):
            a += cuda.shfl_xor_sync(mask, a, off)
            other = cuda.shfl_xor_sync(mask, b, off)
            if take_max:
                if other > b:
                    b = other
            else:
                b += other
            return a, b

        @cuda.jit(device=True)
        def butterfly(a, b, width, mask):
            """Reduce over aligned blocks of ``width`` (<= 32) lanes; all lanes get it."""
            if width > 16:
                a, b = xor_step(a, b, 16, mask)
            if width > 8:
                a, b = xor_step(a, b, 8, mask)
            if width > 4:
                a, b = xor_step(a, b, 4, mask)
            if width > 2:
                a, b = xor_step(a, b, 2, mask)
            if width > 1:
                a, b = xor_step(a, b, 1, mask)
            return a, b

        @cuda.jit(device=True)
        def reduce_shuffle(sh, slot, tid, group, a, b):
            """Butterfly within each warp; above 32, one shared stage and a second
            butterfly over the group's warp partials (no loop, one barrier)."""
            if full_warps:
                mask = _FULL_MASK
            else:  # blocks under 32 threads: only their lanes exist
                mask = (1 << cuda.blockDim.x) - 1
            if group <= _WARP:
                return butterfly(a, b, group, mask)
            a, b = butterfly(a, b, _WARP, mask)
            base = slot * 64
            if (tid & (_WARP - 1)) == 0:
                sh[base + (tid >> 5)] = a
                sh[base + 32 + (tid >> 5)] = b
            cuda.syncthreads()
            nw = group >> 5
            k = ((tid & ~(group - 1)) >> 5) + (tid & (nw - 1))
            return butterfly(sh[base + k], sh[base + 32 + k], nw, mask)

        return reduce_shuffle

    @cuda.jit(device=True)
    def reduce_tree(sh, slot, tid, group, a, b):
        """Shared-memory tree within the group; a barrier at every level."""
        tpb = cuda.blockDim.x
        lane = tid & (group - 1)
        sh[tid] = f64(a)
        sh[tpb + tid] = f64(b)
        cuda.syncthreads()
        step = group >> 1
        while step > 0:
            if lane < step:
                sh[tid] += sh[tid + step]
                other = sh[tpb + tid + step]
                if take_max:
                    if other > sh[tpb + tid]:
                        sh[tpb + tid] = other
                else:
                    sh[tpb + tid] += other
            cuda.syncthreads()
            step >>= 1
        base = tid - lane
        ra = sh[base]
        rb = sh[tpb + base]
        cuda.syncthreads()
        return ra, rb

    return reduce_tree


# ------------------------------------------------------------------ statistics
def _reg_stats_function(lowp: bool, regs: int, red_sum: Any, red_max: Any) -> Any:
    """Register twin of :func:`_stats_function`: the same sums in the same order, over
    the ``regs`` values ``vals[k]`` (neuron ``lane + k * group``) a thread holds."""
    f64 = np.float64

    if lowp:

        @cuda.jit(device=True)
        def rstats_shifted(first, vals, valid, sh, slot, tid, lane, group, m):
            """One float64 pass over ``v - first``: sum and sum of squares."""
            k0 = f64(first)
            s1 = f64(0.0)
            s2 = f64(0.0)
            if valid:
                for k in range(regs):
                    if lane + k * group < m:
                        dv = f64(vals[k]) - k0
                        s1 += dv
                        s2 += dv * dv
            s1, s2 = red_sum(sh, slot, tid, group, s1, s2)
            shift = s1 / m
            ss = s2 - s1 * shift
            if ss < 0.0:
                ss = f64(0.0)
            return f64(1.0), k0 + shift, ss, slot ^ 1

        return rstats_shifted

    @cuda.jit(device=True)
    def rstats_scaled(first, vals, valid, sh, slot, tid, lane, group, m):
        """The reference's algorithm (see ``stats_scaled``) over register values."""
        total = f64(0.0)
        amax = f64(0.0)
        if valid:
            for k in range(regs):
                if lane + k * group < m:
                    v = vals[k]
                    total += v
                    av = abs(v)
                    if av > amax:
                        amax = av
        total, amax = red_max(sh, slot, tid, group, total, amax)
        slot ^= 1
        a = amax if math.isfinite(amax) else f64(1.0)
        mant, e = math.frexp(a)
        if a == 0.0:
            s = f64(1.0)
        elif e < _MIN_EXP:
            s = _SCALE_MAX
        else:
            s = mant / a
        total_s = total * s
        need = valid and math.isfinite(amax) and not math.isfinite(total)
        if cuda.syncthreads_or(1 if need else 0):
            acc = f64(0.0)
            if need:
                for k in range(regs):
                    if lane + k * group < m:
                        acc += vals[k] * s
            acc, _ = red_sum(sh, slot, tid, group, acc, f64(0.0))
            slot ^= 1
            if need:
                total_s = acc
        mu0 = total_s / m
        su = f64(0.0)
        ss = f64(0.0)
        if valid:
            for k in range(regs):
                if lane + k * group < m:
                    dv = vals[k] * s - mu0
                    su += dv
                    ss += dv * dv
        su, ss = red_sum(sh, slot, tid, group, su, ss)
        mu = mu0 + su / m
        s2 = ss - su * su / m
        if s2 < 0.0:
            s2 = f64(0.0)
        return s, mu, s2, slot ^ 1

    return rstats_scaled


def _stats_function(lowp: bool, flat: bool, red_sum: Any, red_max: Any) -> Any:
    """Device function ``-> (s, mu, S2, slot)``: scale, mean and sum of squared
    deviations of channel ``(c0, c1)`` in scaled units (``s = 1`` for low precision)."""
    f64 = np.float64

    if lowp:

        @cuda.jit(device=True)
        def stats_shifted(x, c0, c1, valid, sh, slot, tid, lane, group, m, nq, p0, q0, dp, dq):
            """One float64 pass over ``x - x[first]``: sum and sum of squares."""
            k = f64(0.0)
            s1 = f64(0.0)
            s2 = f64(0.0)
            if valid:
                k = f64(x[c0, c1, 0, 0])
                j, p, q = lane, p0, q0
                while j < m:
                    dv = f64(x[c0, c1, p, q]) - k
                    s1 += dv
                    s2 += dv * dv
                    j += group
                    if flat:
                        q += group
                    else:
                        p += dp
                        q += dq
                        if q >= nq:
                            q -= nq
                            p += 1
            s1, s2 = red_sum(sh, slot, tid, group, s1, s2)
            shift = s1 / m
            ss = s2 - s1 * shift
            if ss < 0.0:
                ss = f64(0.0)
            return f64(1.0), k + shift, ss, slot ^ 1

        return stats_shifted

    @cuda.jit(device=True)
    def stats_scaled(x, c0, c1, valid, sh, slot, tid, lane, group, m, nq, p0, q0, dp, dq):
        """The reference's algorithm: power-of-two scale, mean, corrected deviations."""
        total = f64(0.0)
        amax = f64(0.0)
        if valid:
            j, p, q = lane, p0, q0
            while j < m:
                v = f64(x[c0, c1, p, q])
                total += v
                av = abs(v)
                if av > amax:
                    amax = av
                j += group
                if flat:
                    q += group
                else:
                    p += dp
                    q += dq
                    if q >= nq:
                        q -= nq
                        p += 1
        total, amax = red_max(sh, slot, tid, group, total, amax)
        slot ^= 1
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
                j, p, q = lane, p0, q0
                while j < m:
                    acc += f64(x[c0, c1, p, q]) * s
                    j += group
                    if flat:
                        q += group
                    else:
                        p += dp
                        q += dq
                        if q >= nq:
                            q -= nq
                            p += 1
            acc, _ = red_sum(sh, slot, tid, group, acc, f64(0.0))
            slot ^= 1
            if need:
                total_s = acc
        mu0 = total_s / m
        su = f64(0.0)
        ss = f64(0.0)
        if valid:
            j, p, q = lane, p0, q0
            while j < m:
                dv = f64(x[c0, c1, p, q]) * s - mu0
                su += dv
                ss += dv * dv
                j += group
                if flat:
                    q += group
                else:
                    p += dp
                    q += dq
                    if q >= nq:
                        q -= nq
                        p += 1
        su, ss = red_sum(sh, slot, tid, group, su, ss)
        mu = mu0 + su / m
        s2 = ss - su * su / m
        if s2 < 0.0:
            s2 = f64(0.0)
        return s, mu, s2, slot ^ 1

    return stats_scaled


# ------------------------------------------------------------------------ kernels
def _make_kernel(kind: str, exact: bool, lowp: bool, shuffle: bool, flat: bool,
                 full_warps: bool, regs: int) -> Any:
    """Compile-on-demand kernel for one variant; the flags are compile-time constants
    (``flat``: the spatial axes form one dimension, ``P == 1``; ``regs > 0``: each
    thread keeps its at most ``regs`` values of the channel in registers)."""
    _bind()
    from numba import float32 as nb_f32
    from numba import float64 as nb_f64

    f64 = np.float64
    f32 = np.float32
    red_sum = _group_reducer(shuffle, False, full_warps)
    red_max = _group_reducer(shuffle, True, full_warps)
    stats = _stats_function(lowp, flat, red_sum, red_max)

    if simulator_enabled():  # no libdevice in the simulator

        @cuda.jit(device=True)
        def inv32(y):
            return f32(1.0) / y

    else:

        @cuda.jit(device=True)
        def inv32(y):
            """``1 / y`` in float32 by ``div.approx`` (2 ulp; no IEEE slow path)."""
            return cuda.libdevice.fast_fdividef(f32(1.0), y)

    @cuda.jit(device=True)
    def setup(tid, gshift, nq):
        """Per-thread constants: group, lane, slot in block, element walk start/step."""
        group = 1 << gshift
        lane = tid & (group - 1)
        if flat:  # one spatial dimension: q is the neuron index, p stays 0
            return group, lane, tid >> gshift, 0, lane, 0, group
        p0 = lane // nq
        dp = group // nq
        return group, lane, tid >> gshift, p0, lane - p0 * nq, dp, group - dp * nq

    @cuda.jit(device=True)
    def channel_consts(s, s2, lam, m):
        """``(lam_s, ca, sq, ca4, inv_n, r)``: ``ca = 1/(4(S2/n + lam_s))``, ``sq = sqrt(ca)``."""
        n = f64(m - 1)
        inv_n = 1.0 / n
        lam_s = max(lam * s * s, LAM_FLOOR)
        ca4 = 1.0 / (s2 * inv_n + lam_s)
        ca = 0.25 * ca4
        return lam_s, ca, math.sqrt(ca), ca4, inv_n, f64(m) * inv_n

    if regs:
        vdt = nb_f32 if lowp else nb_f64
        rstats = _reg_stats_function(lowp, regs, red_sum, red_max)

        @cuda.jit(device=True)
        def load(a, vals, c0, c1, valid, lane, group, m, nq, p0, q0, dp, dq):
            """Fill ``vals[k]`` with neuron ``lane + k * group`` (0 past the end); return
            the channel's first element (the shift of the low-precision statistics)."""
            j, p, q = lane, p0, q0
            for k in range(regs):
                if valid and j < m:
                    vals[k] = a[c0, c1, p, q]
                else:
                    vals[k] = 0
                j += group
                if flat:
                    q += group
                else:
                    p += dp
                    q += dq
                    if q >= nq:
                        q -= nq
                        p += 1
            if lowp and valid:
                return f64(a[c0, c1, 0, 0])
            return f64(0.0)

    if lowp:

        @cuda.jit(device=True)
        def forward_value(xv, s, mu, s2, lam_s, ca, sq, ca4, inv_n, r, r2, r2_32):
            """``x * sigmoid(E)`` of one neuron, float32 element math."""
            u = f64(xv) - mu
            w = f32(u * sq)
            if exact:
                vt = s2 - r * (u * u)
                if vt < 0.0:
                    vt = f64(0.0)
                z = f32((vt * inv_n + lam_s) * ca4)
                e32 = r2_32 * (w * w) * inv32(z) + f32(0.5)
            else:
                e32 = w * w + f32(0.5)
            t32 = math.exp(-e32)
            return f32(xv) * inv32(f32(1.0) + t32)

    else:

        @cuda.jit(device=True)
        def forward_value(xv, s, mu, s2, lam_s, ca, sq, ca4, inv_n, r, r2, r2_32):
            """``x * sigmoid(E)`` of one neuron, float64 in scaled units."""
            u = xv * s - mu
            d = u * u
            if exact:
                vt = s2 - r * d
                if vt < 0.0:
                    vt = f64(0.0)
                e64 = r2 * d / (4.0 * (vt * inv_n + lam_s)) + 0.5
            else:
                e64 = d * ca + 0.5
            return xv / (1.0 + math.exp(-e64))

    if kind == "forward" and regs:

        @cuda.jit
        def forward_regs(x, out, lam, gshift, channels, nb, m, nq):
            """``out = x * sigmoid(E)`` with each thread's ``regs`` values held in
            registers: ``x`` is read once (``M <= regs * group``)."""
            sh = cuda.shared.array(0, dtype=nb_f64)
            vals = cuda.local.array(regs, dtype=vdt)
            tid = cuda.threadIdx.x
            group, lane, gid, p0, q0, dp, dq = setup(tid, gshift, nq)
            per_block = cuda.blockDim.x >> gshift
            slot = 0
            base = cuda.blockIdx.x * per_block
            while base < channels:
                c = base + gid
                valid = c < channels
                c0 = c // nb
                c1 = c - c0 * nb
                first = load(x, vals, c0, c1, valid, lane, group, m, nq, p0, q0, dp, dq)
                s, mu, s2, slot = rstats(first, vals, valid, sh, slot, tid, lane, group, m)
                lam_s, ca, sq, ca4, inv_n, r = channel_consts(s, s2, lam, m)
                r2 = r * r
                r2_32 = f32(r2)
                if valid:
                    j, p, q = lane, p0, q0
                    for k in range(regs):
                        if j < m:
                            out[c0, c1, p, q] = forward_value(vals[k], s, mu, s2, lam_s, ca,
                                                              sq, ca4, inv_n, r, r2, r2_32)
                        j += group
                        if flat:
                            q += group
                        else:
                            p += dp
                            q += dq
                            if q >= nq:
                                q -= nq
                                p += 1
                base += cuda.gridDim.x * per_block

        return forward_regs

    if kind == "forward":

        @cuda.jit
        def forward(x, out, lam, gshift, channels, nb, m, nq):
            """``out = x * sigmoid(E)`` per channel of the 4-d view ``x``."""
            sh = cuda.shared.array(0, dtype=nb_f64)
            tid = cuda.threadIdx.x
            group, lane, gid, p0, q0, dp, dq = setup(tid, gshift, nq)
            per_block = cuda.blockDim.x >> gshift
            slot = 0
            base = cuda.blockIdx.x * per_block
            while base < channels:
                c = base + gid
                valid = c < channels
                c0 = c // nb
                c1 = c - c0 * nb
                s, mu, s2, slot = stats(x, c0, c1, valid, sh, slot, tid, lane, group, m, nq,
                                        p0, q0, dp, dq)
                lam_s, ca, sq, ca4, inv_n, r = channel_consts(s, s2, lam, m)
                r2 = r * r
                r2_32 = f32(r2)
                if valid:
                    j, p, q = lane, p0, q0
                    while j < m:
                        out[c0, c1, p, q] = forward_value(x[c0, c1, p, q], s, mu, s2, lam_s,
                                                          ca, sq, ca4, inv_n, r, r2, r2_32)
                        j += group
                        if flat:
                            q += group
                        else:
                            p += dp
                            q += dq
                            if q >= nq:
                                q -= nq
                                p += 1
                base += cuda.gridDim.x * per_block

        return forward

    @cuda.jit(device=True)
    def terms(xv, s, mu, s2, lam_s, ca, sq, ca4, inv_n, r, r2):
        """``(u, g, t, ib)`` for one neuron: deviation, sigmoid(E), exp(-E), 1/b (exact)."""
        xs = f64(xv) * s
        u = xs - mu
        d = u * u
        ib = f64(0.0)
        if exact:
            vt = s2 - r * d
            if vt < 0.0:
                vt = f64(0.0)
            if lowp:
                # 1/b = ca / z with z = b * ca in (0, 1]: a float32 reciprocal.  Below
                # z = 1e-30, E > 1e29 and exp(-E) = 0 makes every use of 1/b vanish.
                z32 = max(f32((vt * inv_n + lam_s) * ca4), f32(1e-30))
                ib = ca * f64(inv32(z32))
            else:
                ib = 1.0 / (4.0 * (vt * inv_n + lam_s))
        if lowp:
            if exact:
                e32 = f32(r2 * d * ib) + f32(0.5)
            else:
                w = f32(u * sq)
                e32 = w * w + f32(0.5)
            t32 = math.exp(-e32)
            g32 = inv32(f32(1.0) + t32)
            return xs, u, f64(g32), f64(t32), ib
        if exact:
            e64 = r2 * d * ib + 0.5
        else:
            e64 = d * ca + 0.5
        t64 = math.exp(-e64)
        return xs, u, 1.0 / (1.0 + t64), t64, ib

    @cuda.jit(device=True)
    def alpha_beta(u, ib, ca, inv_n, r, r2):
        """Coefficients of ``q`` in ``P1`` (``alpha``) and ``P2`` (``beta``)."""
        d = u * u
        if exact:
            dn = d * ib * inv_n
            return u * ib * (2.0 * r2 + 8.0 * r2 * r * dn), 8.0 * r2 * dn * ib
        return u * (2.0 * ca), d * (8.0 * ca * ca * inv_n)

    if regs:

        @cuda.jit
        def backward_regs(x, go, out, lam, gshift, channels, nb, m, nq):
            """Vector-Jacobian product with ``x`` and ``grad_out`` held in registers for
            the statistics, both reductions and the output (each read once)."""
            sh = cuda.shared.array(0, dtype=nb_f64)
            vals = cuda.local.array(regs, dtype=vdt)
            gvals = cuda.local.array(regs, dtype=vdt)
            tid = cuda.threadIdx.x
            group, lane, gid, p0, q0, dp, dq = setup(tid, gshift, nq)
            per_block = cuda.blockDim.x >> gshift
            slot = 0
            inv_m = 1.0 / f64(m)
            base = cuda.blockIdx.x * per_block
            while base < channels:
                c = base + gid
                valid = c < channels
                c0 = c // nb
                c1 = c - c0 * nb
                first = load(x, vals, c0, c1, valid, lane, group, m, nq, p0, q0, dp, dq)
                load(go, gvals, c0, c1, valid, lane, group, m, nq, p0, q0, dp, dq)
                s, mu, s2, slot = rstats(first, vals, valid, sh, slot, tid, lane, group, m)
                lam_s, ca, sq, ca4, inv_n, r = channel_consts(s, s2, lam, m)
                r2 = r * r
                p1 = f64(0.0)
                p2 = f64(0.0)
                if valid:
                    for k in range(regs):
                        if lane + k * group < m:
                            xs, u, g, t, ib = terms(vals[k], s, mu, s2, lam_s, ca, sq, ca4,
                                                    inv_n, r, r2)
                            qv = f64(gvals[k]) * xs * g * (t * g)
                            alpha, beta = alpha_beta(u, ib, ca, inv_n, r, r2)
                            p1 += qv * alpha
                            p2 += qv * beta
                p1, p2 = red_sum(sh, slot, tid, group, p1, p2)
                slot ^= 1
                p1m = p1 * inv_m
                if valid:
                    j, p, q = lane, p0, q0
                    for k in range(regs):
                        if j < m:
                            xs, u, g, t, ib = terms(vals[k], s, mu, s2, lam_s, ca, sq, ca4,
                                                    inv_n, r, r2)
                            gv = f64(gvals[k])
                            qv = gv * xs * g * (t * g)
                            alpha, _ = alpha_beta(u, ib, ca, inv_n, r, r2)
                            out[c0, c1, p, q] = gv * g + qv * alpha - p1m - u * p2
                        j += group
                        if flat:
                            q += group
                        else:
                            p += dp
                            q += dq
                            if q >= nq:
                                q -= nq
                                p += 1
                base += cuda.gridDim.x * per_block

        return backward_regs

    @cuda.jit
    def backward(x, go, out, lam, gshift, channels, nb, m, nq):
        """Vector-Jacobian product per channel (recomputed from ``x``)."""
        sh = cuda.shared.array(0, dtype=nb_f64)
        tid = cuda.threadIdx.x
        group, lane, gid, p0, q0, dp, dq = setup(tid, gshift, nq)
        per_block = cuda.blockDim.x >> gshift
        slot = 0
        inv_m = 1.0 / f64(m)
        base = cuda.blockIdx.x * per_block
        while base < channels:
            c = base + gid
            valid = c < channels
            c0 = c // nb
            c1 = c - c0 * nb
            s, mu, s2, slot = stats(x, c0, c1, valid, sh, slot, tid, lane, group, m, nq,
                                    p0, q0, dp, dq)
            lam_s, ca, sq, ca4, inv_n, r = channel_consts(s, s2, lam, m)
            r2 = r * r
            p1 = f64(0.0)
            p2 = f64(0.0)
            if valid:
                j, p, q = lane, p0, q0
                while j < m:
                    xs, u, g, t, ib = terms(x[c0, c1, p, q], s, mu, s2, lam_s, ca, sq, ca4,
                                            inv_n, r, r2)
                    qv = f64(go[c0, c1, p, q]) * xs * g * (t * g)
                    alpha, beta = alpha_beta(u, ib, ca, inv_n, r, r2)
                    p1 += qv * alpha
                    p2 += qv * beta
                    j += group
                    if flat:
                        q += group
                    else:
                        p += dp
                        q += dq
                        if q >= nq:
                            q -= nq
                            p += 1
            p1, p2 = red_sum(sh, slot, tid, group, p1, p2)
            slot ^= 1
            p1m = p1 * inv_m
            if valid:
                j, p, q = lane, p0, q0
                while j < m:
                    xs, u, g, t, ib = terms(x[c0, c1, p, q], s, mu, s2, lam_s, ca, sq, ca4,
                                            inv_n, r, r2)
                    gv = f64(go[c0, c1, p, q])
                    qv = gv * xs * g * (t * g)
                    alpha, _ = alpha_beta(u, ib, ca, inv_n, r, r2)
                    out[c0, c1, p, q] = gv * g + qv * alpha - p1m - u * p2
                    j += group
                    if flat:
                        q += group
                    else:
                        p += dp
                        q += dq
                        if q >= nq:
                            q -= nq
                            p += 1
            base += cuda.gridDim.x * per_block

    return backward


def kernel(kind: str, exact: bool, lowp: bool, shuffle: bool | None = None,
           flat: bool = True, full_warps: bool = True, regs: int = 0) -> Any:
    """The compiled-on-demand kernel of one variant (``shuffle=None``: :func:`use_shuffle`;
    ``flat``: one spatial dimension in the 4-d view; ``full_warps``: at least 32
    threads per block; ``regs``: 0 for the streaming kernel that reads ``x`` from
    memory in every pass, else the register kernel holding ``regs`` values a thread)."""
    if kind not in ("forward", "backward"):
        raise ValueError(f"kind must be 'forward' or 'backward', got {kind!r}")
    regs = int(regs)
    if regs < 0:
        raise ValueError(f"regs must be >= 0, got {regs}")
    shuffle = use_shuffle() if shuffle is None else bool(shuffle)
    key = (kind, bool(exact), bool(lowp), shuffle, bool(flat), bool(full_warps) or not shuffle,
           regs)
    if key not in _KERNELS:
        _KERNELS[key] = _make_kernel(*key)
    return _KERNELS[key]



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


def register_elements(m: int, group: int) -> int:
    """Values a thread keeps in registers for channels of ``m`` neurons walked by
    ``group`` threads: a power of two ``>= ceil(m / group)``, or 0 (the streaming
    kernel) above :data:`REGISTER_ELEMENTS`."""
    k = _pow2_ceil(-(-int(m) // int(group)))
    return k if k <= int(REGISTER_ELEMENTS) else 0


def _launch(kern: Any, config: tuple[int, int, int, int], args: tuple) -> None:
    """``kern[blocks, tpb, stream, shared_bytes](*args)`` (one place to observe launches)."""
    kern[config](*args)


def _run(kind: str, views: tuple[Any, ...], split: tuple[int, int, int, int], lam: float,
         exact: bool, stream: Any) -> None:
    """Launch one kernel on 4-d ``views`` (``x[, grad_out], out``) of shape ``split``."""
    _bind()
    _, nb, npp, nq = split
    channels, m = split[0] * nb, npp * nq
    blocks, tpb, group = launch_config(channels, m)
    shuffle = use_shuffle()
    lowp = np.dtype(views[0].dtype) != np.float64
    kern = kernel(kind, exact, lowp, shuffle, flat=npp == 1, full_warps=tpb >= _WARP,
                  regs=register_elements(m, group))
    shared = 8 * _SHUFFLE_WORDS if shuffle else 16 * tpb
    gshift = group.bit_length() - 1
    args = (*views, float(lam), gshift, channels, nb, m, nq)
    _launch(kern, (blocks, tpb, stream if stream is not None else 0, shared), args)


# ------------------------------------------------------------------ NumPy (host) API
def _rows4(d: Any, channels: int, m: int) -> Any:
    """A C-contiguous device array of ``channels * M`` elements as a ``(1, channels, 1, M)``
    view."""
    item = np.dtype(d.dtype).itemsize
    return _strided_view(d, (1, channels, 1, m), (channels * m * item, m * item, m * item, item))


def forward_2d(x2: np.ndarray, lam: float, exact: bool, out2: np.ndarray) -> None:
    """SimAM forward of rows of host array ``x2`` into ``out2`` (may be ``x2``) on the GPU."""
    cuda = _bind()
    dx = cuda.to_device(np.ascontiguousarray(x2))
    channels, m = x2.shape
    v = _rows4(dx, channels, m)
    _run("forward", (v, v), (1, channels, 1, m), lam, exact, None)
    dx.copy_to_host(out2)


def backward_2d(
    x2: np.ndarray, g2: np.ndarray, lam: float, exact: bool, out2: np.ndarray
) -> None:
    """Vector-Jacobian product of rows of host arrays ``x2``, ``g2`` into ``out2`` on the GPU."""
    cuda = _bind()
    dx = cuda.to_device(np.ascontiguousarray(x2))
    dg = cuda.to_device(np.ascontiguousarray(g2, dtype=x2.dtype))
    channels, m = x2.shape
    vg = _rows4(dg, channels, m)
    _run("backward", (_rows4(dx, channels, m), vg, vg), (1, channels, 1, m), lam, exact, None)
    dg.copy_to_host(out2)


# ---------------------------------------------------------------- device arrays
def _is_fake(a: Any) -> bool:
    return type(a).__name__ == "FakeCUDAArray"


def _is_torch(obj: Any) -> bool:
    return type(obj).__module__.split(".")[0] == "torch" and hasattr(obj, "requires_grad")


def _interface(obj: Any, name: str, writable: bool) -> tuple[Any, dict[str, Any]]:
    """``(owner, __cuda_array_interface__)`` of ``obj``, checked for its role.

    A torch tensor with ``requires_grad`` is read through ``detach()`` (the
    kernels do not record autograd history) and refused as ``out``; an export
    flagged read-only is refused as ``out``.
    """
    if _is_torch(obj) and bool(getattr(obj, "requires_grad", False)):
        if writable:
            raise ValueError(
                f"{name} is a torch tensor that requires grad; in-place writes into it "
                "would bypass autograd: pass a tensor without requires_grad"
            )
        obj = obj.detach()
    try:
        desc = obj.__cuda_array_interface__
    except Exception as exc:
        raise TypeError(
            f"{name}: reading its __cuda_array_interface__ failed "
            f"({type(exc).__name__}: {exc})"
        ) from exc
    data = desc.get("data")
    if writable and data is not None and bool(data[1]):
        raise ValueError(f"{name} is read-only (its __cuda_array_interface__ says so); "
                         "pass a writable device array")
    return obj, desc


def _from_interface(desc: dict[str, Any], owner: Any) -> Any:
    """A Numba device array over an interface's memory, without synchronising."""
    cuda = _bind()
    if simulator_enabled():  # the simulator's "device" memory is host memory
        from numba.cuda.simulator.cudadrv.devicearray import FakeCUDAArray

        return FakeCUDAArray(np.asarray(_HostView(desc, owner)))
    return cuda.from_cuda_array_interface(desc, owner=owner, sync=False)


class _HostView:
    """``__array_interface__`` for a simulated interface whose pointer is host memory."""

    def __init__(self, desc: dict[str, Any], owner: Any):
        self.owner = owner
        self.__array_interface__ = {
            "shape": tuple(desc["shape"]),
            "typestr": desc["typestr"],
            "data": (int(desc["data"][0]), bool(desc["data"][1])),
            "strides": desc.get("strides"),
            "version": 3,
        }


def _as_device(obj: Any, name: str, writable: bool = False) -> tuple[Any, Any]:
    """``(device_array, interface_or_None)`` viewing ``obj`` (no copy for device input).

    Numba device arrays (real or simulated) pass through; objects with
    ``__cuda_array_interface__`` are wrapped without a host synchronisation; a
    NumPy array (mixed host/device calls) is copied to the device.
    """
    cuda = _bind()
    if getattr(obj, "__cuda_ndarray__", False):
        return obj, None
    if isinstance(obj, np.ndarray):
        if writable:
            raise TypeError(f"{name} must be a CUDA device array for device input, "
                            "got numpy.ndarray")
        return cuda.to_device(obj), None
    try:
        has = hasattr(obj, "__cuda_array_interface__") or _is_torch(obj)
    except Exception:  # an exporter that raises instead of AttributeError
        has = True
    if not has:
        raise TypeError(
            f"{name} must be a CUDA device array (Numba device array or an object with "
            f"__cuda_array_interface__), got {type(obj).__name__}"
        )
    owner, desc = _interface(obj, name, writable)
    return _from_interface(desc, owner), desc


# -------------------------------------------------------------------------- streams
def _is_numba_stream(stream: Any) -> bool:
    return type(stream).__module__.startswith(("numba.cuda", "numba_cuda"))


def stream_handle(stream: Any, x: Any = None, desc: dict[str, Any] | None = None) -> Any:
    """The stream a device call launches on: a Numba stream, a raw handle, or 0.

    ``stream`` wins when given: a Numba stream is returned as is, a
    ``torch.cuda.Stream`` gives its ``cuda_stream``, a CuPy stream its ``ptr``, an
    int is a ``cudaStream_t``.  Otherwise the caller's current stream for ``x``:
    PyTorch's current stream on ``x``'s device for a torch tensor, the interface's
    ``stream`` for ``__cuda_array_interface__`` v3 objects, a Numba array's own
    stream; 0 (the legacy default stream) when none is known.
    """
    if stream is not None:
        if _is_numba_stream(stream):
            return stream
        for attr in ("cuda_stream", "ptr", "handle"):
            value = getattr(stream, attr, None)
            if isinstance(value, int) and not isinstance(value, bool):
                return value
        if isinstance(stream, int) and not isinstance(stream, bool) and stream >= 0:
            return stream
        raise TypeError(
            "stream must be a Numba stream, a torch.cuda.Stream, a CuPy stream or a "
            f"cudaStream_t integer, got {type(stream).__name__} {stream!r}"
        )
    if x is not None and _is_torch(x):
        torch = sys.modules.get("torch")
        if torch is not None and torch.cuda.is_available():
            return int(torch.cuda.current_stream(x.device).cuda_stream)
    if desc is not None and desc.get("stream") is not None:
        return int(desc["stream"])
    own = getattr(x, "stream", 0) if getattr(x, "__cuda_ndarray__", False) else 0
    return own if own else 0


def _numba_stream(handle: Any) -> Any:
    """A Numba stream for a :func:`stream_handle` result (0: the default stream)."""
    if not isinstance(handle, int):
        return handle
    if handle == 0:
        return 0
    cuda = _bind()
    if simulator_enabled():  # the simulator runs everything synchronously
        return cuda.stream()
    # A Numba external stream holds only the handle (no context, no finalizer), so one
    # wrapper per handle serves every call; a handle reused by a new stream names that
    # stream, as the caller means.  Bounded: cleared when full.
    wrapped = _EXTERNAL_STREAMS.get(handle)
    if wrapped is None:
        if len(_EXTERNAL_STREAMS) >= _EXTERNAL_STREAMS_MAX:
            _EXTERNAL_STREAMS.clear()
        wrapped = _EXTERNAL_STREAMS[handle] = cuda.external_stream(handle)
    return wrapped


_EXTERNAL_STREAMS: dict[int, Any] = {}
_EXTERNAL_STREAMS_MAX = 64


def _raw_handle(handle: Any) -> int:
    """The ``cudaStream_t`` value of a :func:`stream_handle` result (0: default)."""
    if isinstance(handle, int):
        return handle
    try:
        return int(handle.handle or 0)
    except (AttributeError, TypeError, ValueError):
        return 0


def _framework_empty(x: Any, handle: Any) -> Any:
    """A result array like ``x`` allocated by ``x``'s framework, or None.

    torch tensors get ``torch.empty_like`` and CuPy arrays ``cupy.empty_like`` (their
    caching allocators, their types, on ``x``'s device), made current on the launch
    stream when that is not the framework's current one, so the allocator ties the
    block to the stream that writes it.  Other input: None (a Numba device array).
    """
    root = type(x).__module__.split(".")[0]
    mod = sys.modules.get(root) if root in ("torch", "cupy") else None
    if mod is None or not isinstance(x, mod.Tensor if root == "torch" else mod.ndarray):
        return None
    raw = _raw_handle(handle)
    if root == "torch":
        base = x.detach() if bool(getattr(x, "requires_grad", False)) else x
        if raw > 2 and mod.cuda.is_available():  # 0, 1, 2: default streams
            device = base.device
            if raw != int(mod.cuda.current_stream(device).cuda_stream):
                with mod.cuda.stream(mod.cuda.ExternalStream(raw, device=device)):
                    return mod.empty_like(base)
        return mod.empty_like(base)
    with x.device:
        if raw > 2 and raw != int(mod.cuda.get_current_stream().ptr):
            with mod.cuda.ExternalStream(raw):
                return mod.empty_like(x)
        return mod.empty_like(x)


# ------------------------------------------------------------------ device layout
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


def split4(shape: tuple[int, ...], spatial: tuple[int, ...],
           strides: list[tuple[int, ...]]) -> tuple[tuple[int, ...], list[tuple[int, ...]]] | None:
    """A common 4-d ``(A, B, P, Q)`` view shape and per-array byte strides, or None.

    The non-spatial axes become ``(A, B)`` and the spatial axes ``(P, Q)``; size-1
    axes are dropped and neighbouring axes merged where every array is contiguous
    across them.  None when a side still needs more than two dimensions.
    """
    others = [a for a in range(len(shape)) if a not in spatial]

    def merged(axes: list[int]) -> list[tuple[int, list[int]]] | None:
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

    o, s = merged(others), merged(list(spatial))
    if o is None or s is None:
        return None
    dims = o + s  # dims[3] is a real axis: M >= 2
    # size-1 padding gets the stride a C-contiguous array would have there
    for i in (2, 1, 0):
        if dims[i][0] == 1:
            dims[i] = (1, [dims[i + 1][0] * st for st in dims[i + 1][1]])
    shape4 = tuple(size for size, _ in dims)
    return shape4, [tuple(dims[i][1][k] for i in range(4)) for k in range(len(strides))]


def _check_strides(d: Any, name: str) -> Any:
    """Reject negative strides (Numba device views cannot describe them safely)."""
    for size, stride in zip(d.shape, d.strides, strict=True):
        if size > 1 and stride < 0:
            raise ValueError(
                f"{name} has a negative stride {tuple(d.strides)}; pass a copy with positive "
                "strides"
            )
    return d


def _check_out(od: Any, shape: tuple[int, ...], dtype: np.dtype) -> Any:
    _check_strides(od, "out")
    if tuple(od.shape) != shape:
        raise ValueError(f"out has shape {tuple(od.shape)}, expected {shape}")
    if np.dtype(od.dtype) != dtype:
        raise TypeError(f"out has dtype {np.dtype(od.dtype)}, expected {dtype}")
    for size, stride in zip(od.shape, od.strides, strict=True):
        if size > 1 and stride == 0:
            raise ValueError("out has overlapping elements (a zero stride); pass a writable array")
    return od


def _contiguous_rows(d: Any, shape: tuple[int, ...], spatial: tuple[int, ...], stream: Any,
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
    permuted = _strided_view(d, pshape, tuple(d.strides[a] for a in perm))
    if into is None:
        rows = _bind().device_array(math.prod(shape), dtype=d.dtype, stream=stream)
        _assign(_strided_view(rows, pshape, tuple(cstrides)), permuted, stream)
        return rows
    _assign(permuted, _strided_view(into, pshape, tuple(cstrides)), stream)
    return d


def _assign(dst: Any, src: Any, stream: Any) -> None:
    """Device-to-device strided copy ``dst[...] = src`` on ``stream`` (no host sync)."""
    if _is_fake(dst):
        dst._ary[...] = src._ary
    else:
        dst.setitem(Ellipsis, src, stream=stream if stream else _bind().default_stream())


def _run_device(kind: str, x: Any, grad_out: Any, lam: float, exact: bool,
                spatial_axes: tuple[int, ...], out: Any, stream: Any = None) -> Any:
    cuda = _bind()
    xd, xdesc = _as_device(x, "x")
    _check_strides(xd, "x")
    dtype = np.dtype(xd.dtype)
    shape = tuple(int(v) for v in xd.shape)
    spatial = tuple(spatial_axes)
    handle = stream_handle(stream, x, xdesc)
    launch_stream = _numba_stream(handle)
    arrays = [xd]
    if kind == "backward":
        gd, _ = _as_device(grad_out, "grad_out")
        _check_strides(gd, "grad_out")
        if np.dtype(gd.dtype) != dtype:
            raise TypeError(f"grad_out has dtype {np.dtype(gd.dtype)}, expected {dtype} (x's)")
        if tuple(gd.shape) != shape:
            raise ValueError(f"grad_out has shape {tuple(gd.shape)}, expected {shape}")
        arrays.append(gd)
    if out is not None:
        od, _ = _as_device(out, "out", writable=True)
        _check_out(od, shape, dtype)
        _same_or_disjoint(od, xd, "x")
        if kind == "backward":
            _same_or_disjoint(od, arrays[1], "grad_out")
        result = out
    else:
        result = _framework_empty(x, handle)
        if result is None:
            od = result = cuda.device_array(shape, dtype=dtype, stream=launch_stream)
        else:
            od, _ = _as_device(result, "the result", writable=True)
            _check_out(od, shape, dtype)
    arrays.append(od)
    plan = split4(shape, spatial, [tuple(int(s) for s in a.strides) for a in arrays])
    if plan is not None:
        shape4, strides4 = plan
        views = tuple(_strided_view(a, shape4, st) for a, st in zip(arrays, strides4))
        _run(kind, views, shape4, lam, exact, launch_stream)
    else:  # more than two dimensions on a side: contiguous scratch rows
        m = math.prod(shape[a] for a in spatial)
        channels = math.prod(shape) // m
        rows = [_contiguous_rows(a, shape, spatial, launch_stream) for a in arrays[:-1]]
        orow = cuda.device_array(channels * m, dtype=dtype, stream=launch_stream)
        views = tuple(_rows4(r, channels, m) for r in (*rows, orow))
        _run(kind, views, (1, channels, 1, m), lam, exact, launch_stream)
        _contiguous_rows(od, shape, spatial, launch_stream, into=orow)
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
    Launches on ``stream`` (see :func:`stream_handle`) and does not synchronise the
    host.
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
