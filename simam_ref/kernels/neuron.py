"""Per-neuron SimAM math, written once for every compiled target.

Plain Python functions of float scalars: :mod:`simam_ref.kernels.cpu` compiles
them with ``njit(inline="always")`` and :mod:`simam_ref.kernels.cuda` with
``cuda.jit(device=True)``.  They call nothing but arithmetic, so both compilers
(and Numba's CUDA simulator, which runs them as Python) accept them unchanged.
The exponential is left to the caller: each target has its own (a vectorisable
polynomial on the CPU, ``math.exp`` on the GPU).

Notation (see :mod:`simam_ref.reference`, the independent NumPy oracle): a
neuron's scaled deviation from its channel mean is ``u``, ``d = u**2``; the
channel has ``M`` neurons, ``n = M - 1``, ``inv_n = 1/n``, ``r = M/n``, ``S2`` the
sum of squared deviations and ``lam`` the (scaled, floored) regulariser.

* paper: ``k = 1 / (4 (S2/n + lam))``, ``E = d k + 1/2``;
* exact: ``1/B = 1 / (4 (max(S2 - r d, 0)/n + lam))``, ``E = r**2 d / B + 1/2``.

The backward writes ``q = grad_out * x * g * (1 - g)`` (``g = sigmoid(E)``) and
``grad_x = grad_out g + q alpha - mean(q alpha) - u sum(q beta)``; the functions
below give ``alpha`` and ``beta`` (derived in :mod:`derivations.backward`).
"""

from __future__ import annotations

__all__ = [
    "exact_alpha_beta",
    "exact_inverse_energy",
    "exact_reciprocal",
    "input_gradient",
    "paper_alpha_beta",
    "paper_inverse_energy",
]


def paper_inverse_energy(d: float, k: float) -> float:
    """Paper method: ``E = d k + 1/2`` with ``k = 1/(4 (S2/n + lam))``."""
    return d * k + 0.5


def exact_reciprocal(d: float, s2: float, r: float, inv_n: float, lam: float) -> float:
    """Exact method: ``1/B``, ``B = 4 (var + lam)`` with the others' variance
    ``var = max(S2 - r d, 0) / n`` (clipped: rounding may take it below 0)."""
    v = s2 - r * d
    if v < 0.0:
        v = 0.0
    return 1.0 / (4.0 * (v * inv_n + lam))


def exact_inverse_energy(d: float, inv_b: float, r: float) -> float:
    """Exact method: ``E = r**2 d / B + 1/2`` given ``inv_b = 1/B``."""
    return r * r * d * inv_b + 0.5


def paper_alpha_beta(u: float, k: float, inv_n: float) -> tuple[float, float]:
    """Paper method: ``(alpha, beta) = (2 u k, 8 d k**2 / n)``."""
    return 2.0 * u * k, u * u * k * k * (8.0 * inv_n)


def exact_alpha_beta(u: float, inv_b: float, r: float, inv_n: float) -> tuple[float, float]:
    """Exact method: ``alpha = 2 r**2 u/B + 8 r**3 u**3 / (n B**2)``,
    ``beta = 8 r**2 d / (n B**2)``.

    Written with ``u/B`` and ``d/B`` so that ``u = 0`` gives zeros even when ``1/B``
    is huge (its square is never formed on its own).
    """
    r2 = r * r
    ui = u * inv_b
    di = u * ui
    dn = di * inv_n
    return ui * (2.0 * r2 + 8.0 * r2 * r * dn), 8.0 * r2 * dn * inv_b


def input_gradient(go_gain: float, q_alpha: float, mean_q_alpha: float, u: float,
                   sum_q_beta: float) -> float:
    """``grad_x = grad_out g + q alpha - mean(q alpha) - u sum(q beta)`` of one neuron."""
    return go_gain + q_alpha - mean_q_alpha - u * sum_q_beta
