"""Group reductions of two float64 values per thread, built once per kernel variant.

A *group* of ``G`` threads (a power of two dividing the block) owns one channel.
On a GPU the group reduces with warp shuffles: a butterfly within each warp (no
block barrier for ``G <= 32``); above, the warps' partials meet in shared memory
behind one barrier and a second butterfly finishes.  Under Numba's simulator, which
has no shuffles, a shared-memory tree with a barrier at every level.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import runtime

FULL_MASK = 0xFFFFFFFF
WARP = 32
#: Shared float64 words of the shuffle reduction: two slots of (32 + 32) partials.
SHUFFLE_WORDS = 128
#: ``numba.cuda``, bound by :func:`runtime.bind` (see :mod:`.runtime`).
cuda: Any = None


def shared_bytes(shuffle: bool, tpb: int) -> int:
    """Dynamic shared memory a kernel needs: the shuffle slots or two words a thread."""
    return 8 * SHUFFLE_WORDS if shuffle else 16 * tpb


def group_reducer(shuffle: bool, take_max: bool, full_warps: bool = True) -> Any:
    """Device function ``(sh, slot, tid, group, a, b) -> (sum a, sum-or-max b)``.

    Every thread of the block calls it (the barriers need them all); every lane of
    a group gets the group's result.  ``slot`` (0 or 1) picks the half of the
    shuffle path's shared buffer; callers alternate it so that one barrier per
    reduction suffices.  The tree path ignores it and ends with a barrier.
    ``full_warps``: blocks of at least 32 threads (a constant shuffle mask).
    """
    runtime.bind(globals())
    if shuffle:
        return _shuffle_reducer(take_max, full_warps)
    return _tree_reducer(take_max)


def _shuffle_reducer(take_max: bool, full_warps: bool) -> Any:
    """The warp-shuffle form of :func:`group_reducer` (hardware only)."""

    @cuda.jit(device=True)
    def xor_step(a, b, off, mask):
        """One butterfly step: add ``a`` and add-or-max ``b`` with lane ``lane ^ off``."""
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
            mask = FULL_MASK
        else:  # blocks under 32 threads: only their lanes exist
            mask = (1 << cuda.blockDim.x) - 1
        if group <= WARP:
            return butterfly(a, b, group, mask)
        a, b = butterfly(a, b, WARP, mask)
        base = slot * 64
        if (tid & (WARP - 1)) == 0:
            sh[base + (tid >> 5)] = a
            sh[base + 32 + (tid >> 5)] = b
        cuda.syncthreads()
        nw = group >> 5
        k = ((tid & ~(group - 1)) >> 5) + (tid & (nw - 1))
        return butterfly(sh[base + k], sh[base + 32 + k], nw, mask)

    return reduce_shuffle


def _tree_reducer(take_max: bool) -> Any:
    """The shared-memory tree form of :func:`group_reducer` (the simulator's)."""
    f64 = np.float64

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
