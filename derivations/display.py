"""Readable strings of derived expressions (display only, never used to decide)."""

from __future__ import annotations

from functools import lru_cache

import sympy as sp

from .energy import t
from .uniqueness import complete_square

__all__ = ["pretty_str"]


@lru_cache(maxsize=256)
def pretty_str(expr: sp.Expr) -> str:
    """Readable string: factored, quadratics in ``t`` written as completed squares.

    Display only (e.g. ``2*(t - mu)/((t - mu)**2 + 2*lam + 2*sigma**2)``); never
    used to decide anything.
    """
    num, den = sp.fraction(sp.factor(sp.cancel(expr)))

    def tidy(part: sp.Expr) -> sp.Expr:
        content, prim = part.as_content_primitive()
        factors: list[sp.Expr] = [] if content == 1 else [content]
        for fac in sp.Mul.make_args(prim):
            base, ex = fac.as_base_exp()
            if base.has(t) and base.is_polynomial(t):
                poly = sp.Poly(base, t)
                if poly.degree() == 2 and poly.LC().is_Number:
                    base = complete_square(base, t)
            factors.append(base if ex == 1 else sp.Pow(base, ex, evaluate=False))
        return factors[0] if len(factors) == 1 else sp.Mul(*factors, evaluate=False)

    top, bottom = tidy(num), tidy(den)
    top_s = sp.sstr(top, order="none")
    if den == 1:
        return top_s
    if isinstance(top, sp.Add):
        top_s = f"({top_s})"
    bottom_s = sp.sstr(bottom, order="none")
    if not bottom.is_Atom:
        bottom_s = f"({bottom_s})"
    return f"{top_s}/{bottom_s}"
