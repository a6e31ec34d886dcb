"""Analytic vector-Jacobian product of SimAM's forward map ``y_j = x_j sigmoid(E_j)``.

Closed form (both methods), with ``u_i = x_i - mu``, ``d_i = u_i**2``, ``n = M-1``,
``S2 = sum_i d_i``, ``g_i = sigmoid(E_i)``, ``q_i = go_i x_i g_i (1 - g_i)``::

    grad_j = go_j g_j + q_j alpha_j - (sum_i q_i alpha_i)/M - u_j (sum_i q_i beta_i)

* paper: ``A = 4 (S2/n + lam)``, ``E_i = d_i/A + 1/2``, ``alpha_i = 2 u_i/A``,
  ``beta_i = 8 d_i/(n A**2)``.
* exact: ``r = M/n``, ``s_i = (S2 - r d_i)/n``, ``B_i = 4 (s_i + lam)``,
  ``E_i = r**2 d_i/B_i + 1/2``, ``alpha_i = 2 r**2 u_i/B_i + 8 r**3 u_i**3/(n B_i**2)``,
  ``beta_i = 8 r**2 d_i/(n B_i**2)``.

It is confirmed two ways: ``prove_vjp_identity`` shows with exact rational
algebra that ``sum_j q_j dE_j/dx_k`` equals the bracketed terms for free symbols
``q_j`` (the chain rule does the rest), and ``check_vjp_formula`` compares
``J^T go`` of the SymPy Jacobian with ``vjp_closed_form`` at random points.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from functools import lru_cache

import sympy as sp

__all__ = [
    "METHODS",
    "check_vjp_formula",
    "forward_exprs",
    "forward_jacobian",
    "inv_energy_exprs",
    "prove_vjp_identity",
    "vjp_closed_form",
]

METHODS = ("paper", "exact")
LAM = sp.Symbol("lam", positive=True)


def _check(method: str, m: int) -> None:
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if m < 2:
        raise ValueError(f"need at least 2 neurons per channel, got M={m}")


def _xs(m: int) -> tuple[sp.Symbol, ...]:
    return tuple(sp.symbols(f"x0:{m}", real=True))


def inv_energy_exprs(method: str, m: int) -> tuple[sp.Expr, ...]:
    """``E_i`` (= ``1/e_i*``) for explicit symbols ``x0..x{m-1}`` and ``lam``.

    Built from the definitions (mean, sums of squares of the *others* for
    ``exact``), not from the O(1) identities, so the check is independent.
    """
    _check(method, m)
    xs = _xs(m)
    n = m - 1
    half = sp.Rational(1, 2)
    if method == "paper":
        mu = sp.Add(*xs) / m
        var = sp.Add(*[(x - mu) ** 2 for x in xs]) / n
        return tuple((x - mu) ** 2 / (4 * (var + LAM)) + half for x in xs)
    out = []
    for k, x in enumerate(xs):
        others = [xi for i, xi in enumerate(xs) if i != k]
        mu_t = sp.Add(*others) / n
        var_t = sp.Add(*[(xi - mu_t) ** 2 for xi in others]) / n
        out.append((x - mu_t) ** 2 / (4 * (var_t + LAM)) + half)
    return tuple(out)


def forward_exprs(method: str, m: int) -> tuple[sp.Expr, ...]:
    """Forward map ``y_i = x_i / (1 + exp(-E_i))`` as SymPy expressions."""
    xs = _xs(m)
    return tuple(x / (1 + sp.exp(-e)) for x, e in zip(xs, inv_energy_exprs(method, m), strict=True))


@lru_cache(maxsize=16)
def forward_jacobian(method: str, m: int) -> sp.Matrix:
    """Symbolic Jacobian ``J[j, k] = dy_j/dx_k`` of the forward map (cached)."""
    return sp.Matrix(forward_exprs(method, m)).jacobian(sp.Matrix(_xs(m)))


def _sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    ez = math.exp(z)
    return ez / (1.0 + ez)


def _alpha_beta_e(
    x: Sequence, lam: object, method: str, symbolic: bool = False
) -> tuple[list, list, list, list]:
    """Return ``(u, E, alpha, beta)`` of the closed form.

    The one place the closed form is typed: plain floats for ``vjp_closed_form``,
    exact SymPy expressions (``symbolic=True``) for ``prove_vjp_identity``.
    """
    m = len(x)
    _check(method, m)
    add = (lambda v: sp.Add(*v)) if symbolic else math.fsum
    num = sp.Integer if symbolic else float
    n, mm, half = num(m - 1), num(m), num(1) / num(2)
    mean = add(x) / mm
    u = [xi - mean for xi in x]
    d = [ui * ui for ui in u]
    s2 = add(d)
    if method == "paper":
        a = 4 * (s2 / n + lam)
        e = [di / a + half for di in d]
        alpha = [2 * ui / a for ui in u]
        beta = [8 * di / (n * a * a) for di in d]
        return u, e, alpha, beta
    r = mm / n
    e, alpha, beta = [], [], []
    for ui, di in zip(u, d, strict=True):
        bi = 4 * ((s2 - r * di) / n + lam)
        e.append(r * r * di / bi + half)
        alpha.append(2 * r * r * ui / bi + 8 * r**3 * ui**3 / (n * bi * bi))
        beta.append(8 * r * r * di / (n * bi * bi))
    return u, e, alpha, beta


def vjp_closed_form(
    x: Sequence[float], go: Sequence[float], lam: float, method: str = "paper"
) -> list[float]:
    """Closed-form ``J^T go`` for one channel, pure Python floats (a checking aid)."""
    if len(go) != len(x):
        raise ValueError("x and go must have the same length")
    m = len(x)
    u, e, alpha, beta = _alpha_beta_e(x, lam, method)
    g = [_sigmoid(ei) for ei in e]
    q = [goi * xi * gi * (1.0 - gi) for goi, xi, gi in zip(go, x, g, strict=True)]
    qa = math.fsum(qi * ai for qi, ai in zip(q, alpha, strict=True))
    qb = math.fsum(qi * bi for qi, bi in zip(q, beta, strict=True))
    return [go[j] * g[j] + q[j] * alpha[j] - qa / m - u[j] * qb for j in range(m)]


@lru_cache(maxsize=16)
def prove_vjp_identity(method: str, m: int) -> bool:
    """Exact proof for given ``M``: ``sum_j q_j dE_j/dx_k = q_k a_k - sum(q a)/M - u_k sum(q b)``.

    ``q_j`` are free symbols, so with the chain rule
    ``dy_j/dx_k = delta_jk g_j + x_j g_j (1-g_j) dE_j/dx_k`` this proves the VJP
    formula for every cotangent. Rational-function algebra only (no ``exp``).
    """
    _check(method, m)
    xs = _xs(m)
    qs = sp.symbols(f"q0:{m}", real=True)
    es = inv_energy_exprs(method, m)
    u, e_closed, alpha, beta = _alpha_beta_e(xs, LAM, method, symbolic=True)
    for e_def, e_cf in zip(es, e_closed, strict=True):  # same E_i as the definition
        if sp.cancel(sp.together(e_def - e_cf)) != 0:
            return False
    qa = sp.Add(*[q * a_ for q, a_ in zip(qs, alpha, strict=True)])
    qb = sp.Add(*[q * b_ for q, b_ in zip(qs, beta, strict=True)])
    for k, xk in enumerate(xs):
        rhs = qs[k] * alpha[k] - qa / m - u[k] * qb
        # both sides are linear in q: compare the coefficient of each q_j, i.e.
        # dE_j/dx_k == d(rhs)/dq_j; a rational function is 0 iff its numerator expands to 0
        for e_j, q_j in zip(es, qs, strict=True):
            diff = sp.diff(e_j, xk) - sp.diff(rhs, q_j)
            if sp.expand(sp.numer(sp.together(diff))) != 0:
                return False
    return True


def check_vjp_formula(method: str = "paper", m: int = 3, seed: int = 0) -> float:
    """Max abs difference between ``J^T go`` (SymPy Jacobian, 40 digits) and the closed form.

    ``x``, ``go`` and ``lam`` are random rationals drawn from ``seed``; the caller
    asserts the result is ~1e-12 or smaller.
    """
    _check(method, m)
    rng = random.Random(seed)
    xs_sym = _xs(m)

    def rat() -> sp.Rational:
        return sp.Rational(rng.randint(-300, 300), rng.randint(50, 150))

    x_val = [rat() for _ in range(m)]
    go_val = [rat() for _ in range(m)]
    lam_val = sp.Rational(rng.randint(1, 100), 1000)
    jac = forward_jacobian(method, m)
    subs = {**dict(zip(xs_sym, x_val, strict=True)), LAM: lam_val}
    jt_go = jac.T.xreplace(subs) * sp.Matrix(go_val)
    sym = [float(v.evalf(40)) for v in jt_go]
    closed = vjp_closed_form(
        [float(v) for v in x_val], [float(v) for v in go_val], float(lam_val), method
    )
    return max(abs(a - b) for a, b in zip(sym, closed, strict=True))
