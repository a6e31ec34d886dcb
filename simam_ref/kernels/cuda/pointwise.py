"""Per-channel constants and per-neuron device functions of the forward and backward.

The channel constants ``cc`` (a :class:`Channel`): scale ``s``, mean ``mu``, sum of
squared deviations ``s2`` (scaled units), the scaled and floored regulariser
``lam``, ``ca = 1/(4 (s2/n + lam))``, ``sq = sqrt(ca)``, ``ca4 = 4 ca``,
``inv_n = 1/n``, ``r = M/n``, ``r2 = r**2`` (``n = M - 1``).

float64 input: the inverse energy and the backward's ``alpha``/``beta`` are the
shared functions of :mod:`simam_ref.kernels.neuron` compiled with
``cuda.jit(device=True)``.  float16/float32 input: the inverse energy, ``exp`` and
sigmoid in float32 (the deviation is formed in float64 and scaled by ``sqrt(ca)``
before the cast, so nothing overflows); on a GPU its reciprocals use ``div.approx``
(2 ulp, no IEEE slow path), the exact method's ``1/B`` too, as ``ca / z`` with
``z = B ca`` in ``(0, 1]``.  These float32 forms are deliberate twins of
``neuron.paper_inverse_energy``/``exact_reciprocal``/``exact_inverse_energy``.
``constants.LAM_FLOOR`` is read when a kernel variant is built.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np

from ... import constants
from .. import neuron
from . import runtime

#: ``numba.cuda``, bound by :func:`runtime.bind` (see :mod:`.runtime`).
cuda: Any = None


class Channel(NamedTuple):
    """Per-channel constants of the element math (see the module docstring)."""

    s: float
    mu: float
    s2: float
    lam: float
    ca: float
    sq: float
    ca4: float
    inv_n: float
    r: float
    r2: float


def shared_neuron() -> dict[str, Any]:
    """The functions of :mod:`simam_ref.kernels.neuron` as CUDA device functions."""
    runtime.bind(globals())
    return {name: cuda.jit(device=True)(getattr(neuron, name)) for name in neuron.__all__}


def channel_constants() -> Any:
    """Device function ``(s, mu, s2, lam, m) -> Channel`` (see the module docstring)."""
    runtime.bind(globals())
    f64 = np.float64
    lam_floor = float(constants.LAM_FLOOR)

    @cuda.jit(device=True)
    def channel_consts(s, mu, s2, lam, m):
        """The :class:`Channel` constants from the statistics and ``lam``."""
        n = f64(m - 1)
        inv_n = 1.0 / n
        lam_s = max(lam * s * s, lam_floor)
        ca4 = 1.0 / (s2 * inv_n + lam_s)
        ca = 0.25 * ca4
        r = f64(m) * inv_n
        return Channel(s, mu, s2, lam_s, ca, math.sqrt(ca), ca4, inv_n, r, r * r)

    return channel_consts


def float32_reciprocal() -> Any:
    """Device function ``inv32(y) = 1 / y`` in float32 (``div.approx`` on a GPU)."""
    runtime.bind(globals())
    f32 = np.float32
    if runtime.simulator_enabled():  # no libdevice in the simulator

        @cuda.jit(device=True)
        def inv32_exact(y):
            """``1 / y`` in float32."""
            return f32(1.0) / y

        return inv32_exact

    @cuda.jit(device=True)
    def inv32(y):
        """``1 / y`` in float32 by ``div.approx`` (2 ulp; no IEEE slow path)."""
        return cuda.libdevice.fast_fdividef(f32(1.0), y)

    return inv32


def forward_value(exact: bool, lowp: bool) -> Any:
    """Device function ``op(v, g, cc, e0, e1) = v * sigmoid(E)`` for :func:`.elements.storer`
    (``g``, ``e0``, ``e1`` unused)."""
    f64, f32 = np.float64, np.float32
    nf = shared_neuron()
    paper_e, exact_ib, exact_e = (nf["paper_inverse_energy"], nf["exact_reciprocal"],
                                  nf["exact_inverse_energy"])
    if not lowp:

        @cuda.jit(device=True)
        def forward64(v, g, cc, e0, e1):
            """``x * sigmoid(E)`` of one neuron, float64 in scaled units (twin: ``forward32``)."""
            u = v * cc.s - cc.mu
            d = u * u
            if exact:
                e = exact_e(d, exact_ib(d, cc.s2, cc.r, cc.inv_n, cc.lam), cc.r)
            else:
                e = paper_e(d, cc.ca)
            return v / (1.0 + math.exp(-e))

        return forward64

    inv32 = float32_reciprocal()

    @cuda.jit(device=True)
    def forward32(v, g, cc, e0, e1):
        """``x * sigmoid(E)`` of one neuron, float32 element math (twin: ``forward64``)."""
        u = v - cc.mu
        w = f32(u * cc.sq)
        if exact:
            vt = cc.s2 - cc.r * (u * u)
            if vt < 0.0:
                vt = f64(0.0)
            z = f32((vt * cc.inv_n + cc.lam) * cc.ca4)
            e32 = f32(cc.r2) * (w * w) * inv32(z) + f32(0.5)
        else:
            e32 = w * w + f32(0.5)
        return f32(v) * inv32(f32(1.0) + math.exp(-e32))

    return forward32


def backward_terms(exact: bool, lowp: bool) -> tuple[Any, Any]:
    """Device functions ``(q_sums, gradient)``: ``q_sums(v, g, a, b, cc)`` adds the
    neuron's ``q alpha`` to ``a`` and ``q beta`` to ``b`` (for :func:`.elements.folder`);
    ``gradient(v, g, cc, p1m, p2)`` is its ``grad_x`` (for :func:`.elements.storer`)."""
    f64, f32 = np.float64, np.float32
    nf = shared_neuron()
    paper_e, exact_ib, exact_e = (nf["paper_inverse_energy"], nf["exact_reciprocal"],
                                  nf["exact_inverse_energy"])
    paper_ab, exact_ab, combine = (nf["paper_alpha_beta"], nf["exact_alpha_beta"],
                                   nf["input_gradient"])
    inv32 = float32_reciprocal()
    lim2 = float(constants.BW_OFFSET_LIM) ** 2

    @cuda.jit(device=True)
    def terms(v, cc):
        """``(xs, u, g, t, ib)``: scaled value, deviation, sigmoid(E), exp(-E), 1/B.
        float32 ``exp`` and sigmoid (``lowp``) only for channels within
        ``constants.BW_OFFSET_LIM`` standard deviations of 0 (``mu**2 M <= lim**2
        s2``, ``M = r / inv_n``), as the CPU kernels: further off, their rounding
        dominates gradients that cancel."""
        xs = v * cc.s
        u = xs - cc.mu
        d = u * u
        ib = f64(0.0)
        if lowp and cc.mu * cc.mu * cc.r <= lim2 * cc.s2 * cc.inv_n:  # float32 twin
            if exact:
                vt = cc.s2 - cc.r * d
                if vt < 0.0:
                    vt = f64(0.0)
                # 1/B = ca / z with z = B ca in (0, 1]: a float32 reciprocal.  Below
                # z = 1e-30, E > 1e29 and exp(-E) = 0 makes every use of 1/B vanish.
                z32 = max(f32((vt * cc.inv_n + cc.lam) * cc.ca4), f32(1e-30))
                ib = cc.ca * f64(inv32(z32))
                e32 = f32(cc.r2 * d * ib) + f32(0.5)
            else:
                w = f32(u * cc.sq)
                e32 = w * w + f32(0.5)
            t32 = math.exp(-e32)
            return xs, u, f64(inv32(f32(1.0) + t32)), f64(t32), ib
        if exact:
            ib = exact_ib(d, cc.s2, cc.r, cc.inv_n, cc.lam)
            e = exact_e(d, ib, cc.r)
        else:
            e = paper_e(d, cc.ca)
        t = math.exp(-e)
        return xs, u, 1.0 / (1.0 + t), t, ib

    @cuda.jit(device=True)
    def q_alpha_beta(v, g, cc):
        """``(q alpha, q beta, g_out * sigmoid, u)`` of one neuron, ``q = g_out x g (1 - g)``."""
        xs, u, sg, t, ib = terms(v, cc)
        gv = f64(g)
        qv = gv * xs * sg * (t * sg)
        if exact:
            alpha, beta = exact_ab(u, ib, cc.r, cc.inv_n)
        else:
            alpha, beta = paper_ab(u, cc.ca, cc.inv_n)
        return qv * alpha, qv * beta, gv * sg, u

    @cuda.jit(device=True)
    def q_sums(v, g, a, b, cc):
        """``a + q alpha`` and ``b + q beta``."""
        qa, qb, _, _ = q_alpha_beta(v, g, cc)
        return a + qa, b + qb

    @cuda.jit(device=True)
    def gradient(v, g, cc, p1m, p2):
        """``grad_x = g_out sigmoid + q alpha - mean(q alpha) - u sum(q beta)``."""
        qa, _, gs, u = q_alpha_beta(v, g, cc)
        return combine(gs, qa, p1m, u, p2)

    return q_sums, gradient
