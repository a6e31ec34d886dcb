"""How a group's threads walk the neurons of their channel, and loops over that walk.

The kernels index 4-d views ``(A, B, P, Q)`` with the arrays' own strides: channel
``c = a * B + b`` at ``(c0, c1)``, neuron ``j = p * Q + q``.  Lane ``l`` of a group
of ``G`` threads visits neurons ``l, l + G, l + 2G, ...``; its *walk* is the tuple
``(lane, group, m, nq, p0, q0, dp, dq)``: start ``(p0, q0)``, step ``(dp, dq)``
(``flat``: one spatial dimension, ``P == 1``, and ``q`` is the neuron index).

Two ways to visit a lane's neurons, chosen when a kernel is built:

* streaming (``regs == 0``): read ``x`` (and ``grad_out``) from memory at every visit;
* registers (``regs = k > 0``, ``M <= k * G``): :func:`loader` reads each value once
  into a ``cuda.local.array`` of ``k`` that the compiler keeps in registers (the
  loops over it are unrolled), and every later pass reads it from there.

Both visit the same neurons in the same order, so their sums agree bit for bit.
:func:`folder` and :func:`storer` turn a per-neuron device function into a loop of
either kind.  Array indices are cast to unsigned (``_U``): Numba then emits no
negative-index wraparound in the element loops.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from . import runtime

_U = np.uint64


class Walk(NamedTuple):
    """A lane's walk over its channel: neurons ``lane, lane + group, ...`` below ``m``,
    the first at ``(p0, q0)``, each next ``(dp, dq)`` further with ``q`` wrapped at ``nq``."""

    lane: int
    group: int
    m: int
    nq: int
    p0: int
    q0: int
    dp: int
    dq: int

#: ``numba.cuda``, bound by :func:`runtime.bind` (see :mod:`.runtime`).
cuda: Any = None


def positions(flat: bool) -> tuple[Any, Any]:
    """Device functions ``(setup, advance)`` of the element walk (``flat``: ``P == 1``)."""
    runtime.bind(globals())

    @cuda.jit(device=True)
    def walk_of(lane, group, m, nq):
        """The :class:`Walk` of lane ``lane`` in a group of ``group`` threads."""
        if flat:  # one spatial dimension: q is the neuron index, p stays 0
            return Walk(lane, group, m, nq, 0, lane, 0, group)
        p0 = lane // nq
        dp = group // nq
        return Walk(lane, group, m, nq, p0, lane - p0 * nq, dp, group - dp * nq)

    @cuda.jit(device=True)
    def setup(tid, gshift, m, nq, nb, channels, block0):
        """``(walk, c0, c1, valid)``: the thread's walk and channel ``c = c0 * nb + c1``
        (block ``blockIdx.x + block0`` holds one batch of channels; ``valid``: it exists)."""
        c = (cuda.blockIdx.x + block0) * (cuda.blockDim.x >> gshift) + (tid >> gshift)
        c0 = c // nb
        return walk_of(tid & ((1 << gshift) - 1), 1 << gshift, m, nq), c0, c - c0 * nb, \
            c < channels

    @cuda.jit(device=True)
    def advance(j, p, q, walk):
        """The lane's next neuron: ``(j + group, p, q)`` with ``q`` wrapped into ``[0, Q)``."""
        group, nq, dp, dq = walk.group, walk.nq, walk.dp, walk.dq
        j += group
        if flat:
            q += group
        else:
            p += dp
            q += dq
            if q >= nq:
                q -= nq
                p += 1
        return j, p, q

    return setup, advance


def loader(regs: int, flat: bool) -> Any:
    """Device function ``load(a, vals, c0, c1, valid, walk) -> float64 a[c0, c1, 0, 0]``.

    With ``regs > 0`` it also fills ``vals[k]`` with the lane's ``k``-th neuron of
    channel ``(c0, c1)`` (0 past the end); streaming kernels leave ``vals`` alone.
    The returned first element is the shift of the low-precision statistics.
    """
    _, advance = positions(flat)
    f64 = np.float64

    @cuda.jit(device=True)
    def load(a, vals, c0, c1, valid, walk):
        """Fill the lane's register values (``regs > 0``); return the channel's first."""
        if regs:
            j, p, q = walk.lane, walk.p0, walk.q0
            for k in range(regs):
                if valid and j < walk.m:
                    vals[k] = a[_U(c0), _U(c1), _U(p), _U(q)]
                else:
                    vals[k] = 0
                j, p, q = advance(j, p, q, walk)
        if valid:
            return f64(a[_U(c0), _U(c1), 0, 0])
        return f64(0.0)

    return load


def folder(regs: int, flat: bool, op: Any) -> Any:
    """Device function ``fold(x, go, vals, gvals, c0, c1, walk, a, b, cc) -> (a, b)``:
    ``a, b = op(v, g, a, b, cc)`` over the lane's neurons (``v`` from ``x`` or ``vals``
    as float64, ``g`` from ``go`` or ``gvals``; ``cc`` passes per-channel constants)."""
    _, advance = positions(flat)
    f64 = np.float64

    if regs:

        @cuda.jit(device=True)
        def fold_registers(x, go, vals, gvals, c0, c1, walk, a, b, cc):
            """``op`` over the ``regs`` values the lane holds (unrolled)."""
            for k in range(regs):
                if walk.lane + k * walk.group < walk.m:
                    a, b = op(f64(vals[k]), gvals[k], a, b, cc)
            return a, b

        return fold_registers

    @cuda.jit(device=True)
    def fold_streaming(x, go, vals, gvals, c0, c1, walk, a, b, cc):
        """``op`` over the lane's neurons read from memory."""
        j, p, q = walk.lane, walk.p0, walk.q0
        while j < walk.m:
            i0, i1, i2, i3 = _U(c0), _U(c1), _U(p), _U(q)
            a, b = op(f64(x[i0, i1, i2, i3]), go[i0, i1, i2, i3], a, b, cc)
            j, p, q = advance(j, p, q, walk)
        return a, b

    return fold_streaming


def storer(regs: int, flat: bool, op: Any) -> Any:
    """Device function ``store(x, go, vals, gvals, out, c0, c1, walk, cc, e0, e1)``:
    ``out[...] = op(v, g, cc, e0, e1)`` at each of the lane's neurons (``v``, ``g`` as
    in :func:`folder`; ``e0``, ``e1``: two more per-channel scalars)."""
    _, advance = positions(flat)
    f64 = np.float64

    if regs:

        @cuda.jit(device=True)
        def store_registers(x, go, vals, gvals, out, c0, c1, walk, cc, e0, e1):
            """Write ``op`` of each held value to its neuron (unrolled)."""
            j, p, q = walk.lane, walk.p0, walk.q0
            for k in range(regs):
                if j < walk.m:
                    out[_U(c0), _U(c1), _U(p), _U(q)] = op(f64(vals[k]), gvals[k], cc, e0, e1)
                j, p, q = advance(j, p, q, walk)

        return store_registers

    @cuda.jit(device=True)
    def store_streaming(x, go, vals, gvals, out, c0, c1, walk, cc, e0, e1):
        """Write ``op`` of each neuron read from memory."""
        j, p, q = walk.lane, walk.p0, walk.q0
        while j < walk.m:
            i0, i1, i2, i3 = _U(c0), _U(c1), _U(p), _U(q)
            out[i0, i1, i2, i3] = op(f64(x[i0, i1, i2, i3]), go[i0, i1, i2, i3], cc, e0, e1)
            j, p, q = advance(j, p, q, walk)

    return store_streaming
