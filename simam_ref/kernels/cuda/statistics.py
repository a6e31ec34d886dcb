"""Channel statistics on the GPU: scale ``s``, mean ``mu`` and ``S2`` in scaled units.

* float16/float32 input (``lowp``): one float64 pass over ``v - first`` (sum and sum
  of squares; float32 squares cannot overflow float64), ``s = 1``.
* float64 input: the reference's algorithm (:mod:`simam_ref.reference`): a
  power-of-two scale from ``max|x|``, the mean, then the deviations' sum and sum of
  squares with one correction step (a rescan only where ``sum(x)`` overflowed).

Each pass is a :func:`.elements.folder` loop, so the register and streaming kernels
share this code and sum in the same order.  ``constants.MIN_EXP`` is read when a
kernel variant is built.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np

from ... import constants
from . import runtime
from .elements import folder

#: ``numba.cuda``, bound by :func:`runtime.bind` (see :mod:`.runtime`).
cuda: Any = None


class Affine(NamedTuple):
    """The map ``v -> v * scale - shift`` of the statistics passes."""

    scale: float
    shift: float


def passes() -> tuple[Any, Any, Any]:
    """Per-neuron device functions ``(sum_and_max, scaled_sum, deviation_sums)`` for
    :func:`.elements.folder`; ``cc`` is an :class:`Affine`."""
    runtime.bind(globals())

    @cuda.jit(device=True)
    def sum_and_max(v, g, a, b, cc):
        """``a + v`` and ``max(b, |v|)``."""
        av = abs(v)
        if av > b:
            b = av
        return a + v, b

    @cuda.jit(device=True)
    def scaled_sum(v, g, a, b, cc):
        """``a + v * scale`` (``b`` unchanged)."""
        return a + v * cc.scale, b

    @cuda.jit(device=True)
    def deviation_sums(v, g, a, b, cc):
        """``a + d`` and ``b + d**2`` with ``d = v * scale - shift``."""
        d = v * cc.scale - cc.shift
        return a + d, b + d * d

    return sum_and_max, scaled_sum, deviation_sums


def stats_function(lowp: bool, regs: int, flat: bool, red_sum: Any, red_max: Any) -> Any:
    """Device function ``stats(x, vals, first, c0, c1, valid, sh, slot, tid, walk)
    -> (s, mu, S2, slot)`` of channel ``(c0, c1)`` (every thread of the block calls it;
    ``first`` is the channel's first value, ``slot`` the next reduction slot)."""
    sum_and_max, scaled_sum, deviation_sums = passes()
    deviations = folder(regs, flat, deviation_sums)
    f64 = np.float64

    if lowp:

        @cuda.jit(device=True)
        def stats_shifted(x, vals, first, c0, c1, valid, sh, slot, tid, walk):
            """One float64 pass over ``v - first``: sum and sum of squares."""
            s1 = f64(0.0)
            s2 = f64(0.0)
            if valid:
                s1, s2 = deviations(x, x, vals, vals, c0, c1, walk, s1, s2, Affine(f64(1.0), first))
            s1, s2 = red_sum(sh, slot, tid, walk.group, s1, s2)
            shift = s1 / walk.m
            ss = s2 - s1 * shift
            if ss < 0.0:
                ss = f64(0.0)
            return f64(1.0), first + shift, ss, slot ^ 1

        return stats_shifted

    totals = folder(regs, flat, sum_and_max)
    rescan = folder(regs, flat, scaled_sum)
    min_exp = int(constants.MIN_EXP)
    scale_max = 2.0**-min_exp

    @cuda.jit(device=True)
    def stats_scaled(x, vals, first, c0, c1, valid, sh, slot, tid, walk):
        """The reference's algorithm: power-of-two scale, mean, corrected deviations."""
        group, m = walk.group, walk.m
        total = f64(0.0)
        amax = f64(0.0)
        if valid:
            total, amax = totals(x, x, vals, vals, c0, c1, walk, total, amax, Affine(f64(1.0), 0.0))
        total, amax = red_max(sh, slot, tid, group, total, amax)
        slot ^= 1
        # s = 2**-e with a = mant * 2**e, e clipped to [MIN_EXP, MAX_EXP] (finite
        # doubles have e <= 1024); mant / a is exactly 2**-e (no ldexp: it wants an
        # int32 on the GPU and a Python int in the simulator).
        a = amax if math.isfinite(amax) else f64(1.0)
        mant, e = math.frexp(a)
        if a == 0.0:
            s = f64(1.0)
        elif e < min_exp:
            s = scale_max
        else:
            s = mant / a
        # sum(x) * s equals sum(x * s) unless sum(x) overflowed: rescan then.
        total_s = total * s
        need = valid and math.isfinite(amax) and not math.isfinite(total)
        if cuda.syncthreads_or(1 if need else 0):
            acc = f64(0.0)
            if need:
                acc, _ = rescan(x, x, vals, vals, c0, c1, walk, acc, f64(0.0), Affine(s, 0.0))
            acc, _ = red_sum(sh, slot, tid, group, acc, f64(0.0))
            slot ^= 1
            if need:
                total_s = acc
        mu0 = total_s / m
        su = f64(0.0)
        ss = f64(0.0)
        if valid:
            su, ss = deviations(x, x, vals, vals, c0, c1, walk, su, ss, Affine(s, mu0))
        su, ss = red_sum(sh, slot, tid, group, su, ss)
        mu = mu0 + su / m
        s2 = ss - su * su / m
        if s2 < 0.0:
            s2 = f64(0.0)
        return s, mu, s2, slot ^ 1

    return stats_scaled
