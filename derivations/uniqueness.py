"""Uniqueness of the minimiser: the energy's Hessian is positive definite.

Shown by hand with Sylvester's criterion (``Matrix.is_positive_definite`` may answer
``None``): each leading minor is rewritten as a sum of visibly nonnegative terms
plus a positive one, and the rewrite is checked to expand back to the minor.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import sympy as sp

from .energy import B, W, mu, per_neuron_energy, t, y_o, y_t

__all__ = [
    "HessianProof",
    "complete_square",
    "hessian",
    "hessian_positive_definite",
    "nonnegative_terms",
]


# --- Hessian / uniqueness ------------------------------------------------------------
def hessian(labels: Sequence[object] = (y_t, y_o)) -> sp.Matrix:
    """Hessian of the energy in ``(w, b)`` (constant: the energy is quadratic)."""
    return sp.hessian(per_neuron_energy(W, B, labels), (W, B)).applyfunc(sp.expand)


def complete_square(expr: sp.Expr, var: sp.Symbol) -> sp.Expr:
    """Rewrite a quadratic ``a v**2 + c1 v + c0`` as ``a (v + c1/(2a))**2 + (c0 - c1**2/(4a))``.

    Returns ``expr`` unchanged if it is not quadratic in ``var``. The result is
    checked to expand back to ``expr``.
    """
    poly = sp.Poly(sp.expand(expr), var)
    if poly.degree() != 2:
        return expr
    a, c1, c0 = (poly.coeff_monomial(var**k) for k in (2, 1, 0))
    shift = sp.cancel(c1 / (2 * a))
    rest = sp.expand(sp.cancel(c0 - c1**2 / (4 * a)))
    out = sp.Add(a * (var + shift) ** 2, *sp.Add.make_args(rest), evaluate=False)
    if sp.expand(out - expr) != 0:  # pragma: no cover
        raise AssertionError("completing the square failed")
    return out


def nonnegative_terms(expr: sp.Expr) -> bool:
    """True when ``expr`` is a sum of terms each provably >= 0 with at least one > 0."""
    terms = sp.Add.make_args(expr)
    return all(term.is_nonnegative for term in terms) and any(term.is_positive for term in terms)


@dataclass(frozen=True)
class HessianProof:
    """Sylvester's criterion, by hand: leading minors, a certificate form for each, verdict.

    ``certificates[k]`` equals ``minors[k]`` identically (checked) and is written as
    a sum of terms that are visibly nonnegative (squares, ``sigma**2``) plus a
    positive one (``lam``); ``positive[k]`` is computed from that structure.
    """

    hessian: sp.Matrix
    minors: tuple[sp.Expr, ...]
    certificates: tuple[sp.Expr, ...]
    positive: tuple[bool, ...]
    is_positive_definite: bool


def _certificate(minor: sp.Expr) -> sp.Expr:
    """Pull out the numeric content, then complete the square in ``t`` (then ``mu``)."""
    content, primitive = sp.factor_terms(sp.expand(minor)).as_coeff_Mul()
    cert = primitive
    for var in (t, mu):
        if sp.Poly(sp.expand(cert), var).degree() == 2:
            cert = complete_square(cert, var)
            break
    if content == 1:
        return cert
    return sp.Mul(content, cert, evaluate=False)


def _is_positive(cert: sp.Expr) -> bool:
    coeff, rest = cert.as_coeff_Mul()
    if coeff <= 0:
        return False
    if rest.is_positive is True:
        return True
    return nonnegative_terms(rest)


def hessian_positive_definite(labels: Sequence[object] = (y_t, y_o)) -> HessianProof:
    """Prove the Hessian positive definite (so the stationary point is the unique global min)."""
    h = hessian(labels)
    minors = tuple(sp.expand(h[:k, :k].det()) for k in range(1, h.shape[0] + 1))
    certs = tuple(_certificate(m) for m in minors)
    for m, c in zip(minors, certs, strict=True):
        if sp.expand(m - c) != 0:  # pragma: no cover
            raise AssertionError("certificate differs from minor")
    positive = tuple(_is_positive(c) for c in certs)
    return HessianProof(h, minors, certs, positive, all(positive))
