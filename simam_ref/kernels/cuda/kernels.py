"""The compiled kernels: one per variant, built on first use and kept.

A variant is ``(kind, exact, lowp, shuffle, flat, full_warps, regs)``, all
compile-time constants, so each kernel carries only its own arithmetic.  Every
kernel handles one batch of channels per block (``THREADS_PER_BLOCK // G`` channels
of ``G`` threads each, block ``blockIdx.x + block0``): no grid-stride loop, whose
loop-carried state cost up to 60 registers a thread (``benchmarks/cuda_registers.py``
prints both); :func:`.launch.run` launches as many blocks as there are batches.

The forward computes the statistics, the channel constants, then
``out = x sigmoid(E)``; the backward recomputes all of it from ``x`` (no saved
state), reduces ``P1 = sum q alpha`` and ``P2 = sum q beta``, then writes ``grad_x``.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from . import runtime
from .elements import folder, loader, positions, storer
from .pointwise import backward_terms, channel_constants, forward_value
from .reductions import group_reducer
from .statistics import stats_function

#: The two kernel kinds.
Kind = Literal["forward", "backward"]
_KERNELS: dict[tuple[Kind, bool, bool, bool, bool, bool, int], Any] = {}
#: ``numba.cuda``, bound by :func:`runtime.bind` (see :mod:`.runtime`).
cuda: Any = None


def kernel(kind: Kind, exact: bool, lowp: bool, shuffle: bool | None = None,
           flat: bool = True, full_warps: bool = True, regs: int = 0) -> Any:
    """The compiled-on-demand kernel of one variant (``shuffle=None``:
    :func:`.runtime.use_shuffle`; ``flat``: one spatial dimension in the 4-d view;
    ``full_warps``: at least 32 threads per block; ``regs``: 0 for the streaming
    kernel that reads ``x`` from memory in every pass, else the register kernel
    holding ``regs`` values a thread)."""
    if kind not in ("forward", "backward"):
        raise ValueError(f"kind must be 'forward' or 'backward', got {kind!r}")
    regs = int(regs)
    if regs < 0:
        raise ValueError(f"regs must be >= 0, got {regs}")
    shuffle = runtime.use_shuffle() if shuffle is None else bool(shuffle)
    key = (kind, bool(exact), bool(lowp), shuffle, bool(flat),
           bool(full_warps) or not shuffle, regs)
    if key not in _KERNELS:
        _KERNELS[key] = _make_kernel(*key)
    return _KERNELS[key]


def _make_kernel(kind: Kind, exact: bool, lowp: bool, shuffle: bool, flat: bool,
                 full_warps: bool, regs: int) -> Any:
    """Build the kernel of one variant (see :func:`kernel` for the flags)."""
    runtime.bind(globals())
    from numba import float32 as nb_f32
    from numba import float64 as nb_f64

    f64 = np.float64
    red_sum = group_reducer(shuffle, False, full_warps)
    stats = stats_function(lowp, regs, flat, red_sum, group_reducer(shuffle, True, full_warps))
    consts = channel_constants()
    setup, _ = positions(flat)
    load = loader(regs, flat)
    nvals = max(regs, 1)  # streaming kernels never touch their (unused) register arrays
    vdt = nb_f32 if lowp else nb_f64

    if kind == "forward":
        store = storer(regs, flat, forward_value(exact, lowp))

        @cuda.jit
        def forward(x, out, lam, gshift, channels, nb, m, nq, block0):
            """``out = x * sigmoid(E)`` for one batch of channels of the 4-d view ``x``."""
            sh = cuda.shared.array(0, dtype=nb_f64)
            vals = cuda.local.array(nvals, dtype=vdt)
            tid = cuda.threadIdx.x
            walk, c0, c1, valid = setup(tid, gshift, m, nq, nb, channels, block0)
            first = load(x, vals, c0, c1, valid, walk)
            s, mu, s2, _ = stats(x, vals, first, c0, c1, valid, sh, 0, tid, walk)
            cc = consts(s, mu, s2, lam, m)
            if valid:
                store(x, x, vals, vals, out, c0, c1, walk, cc, f64(0.0), f64(0.0))

        return forward

    q_sums, gradient = backward_terms(exact, lowp)
    sums = folder(regs, flat, q_sums)
    store = storer(regs, flat, gradient)

    @cuda.jit
    def backward(x, go, out, lam, gshift, channels, nb, m, nq, block0):
        """Vector-Jacobian product for one batch of channels (recomputed from ``x``)."""
        sh = cuda.shared.array(0, dtype=nb_f64)
        vals = cuda.local.array(nvals, dtype=vdt)
        gvals = cuda.local.array(nvals, dtype=vdt)
        tid = cuda.threadIdx.x
        walk, c0, c1, valid = setup(tid, gshift, m, nq, nb, channels, block0)
        first = load(x, vals, c0, c1, valid, walk)
        load(go, gvals, c0, c1, valid, walk)
        s, mu, s2, slot = stats(x, vals, first, c0, c1, valid, sh, 0, tid, walk)
        cc = consts(s, mu, s2, lam, m)
        p1 = f64(0.0)
        p2 = f64(0.0)
        if valid:
            p1, p2 = sums(x, go, vals, gvals, c0, c1, walk, p1, p2, cc)
        p1, p2 = red_sum(sh, slot, tid, walk.group, p1, p2)
        if valid:
            store(x, go, vals, gvals, out, c0, c1, walk, cc, p1 * (1.0 / f64(m)), p2)

    return backward
