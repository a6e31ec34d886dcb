"""Translation of a :data:`~derivations.terms.Term` into z3 nonlinear real arithmetic.

A denominator ``d`` gives the side condition ``d != 0`` and a fresh ``q`` with
``d != 0 -> q*d == n``; ``sqrt(a)`` a fresh ``s >= 0`` with ``a >= 0 -> s*s == a``;
``Abs`` an ``If``; integer powers are products.  z3 is imported lazily.
"""

from __future__ import annotations

from collections.abc import Mapping
from fractions import Fraction
from typing import Any

import sympy as sp

from .terms import Term, TermError

__all__: list[str] = []


def _import_z3() -> Any:
    """z3, imported only on the decision path (the package itself imports without it)."""
    try:
        import z3
    except ImportError:
        raise ImportError("deciding claims needs the z3-solver package "
                          "(pip install z3-solver)") from None
    return z3


# --- z3 translation ----------------------------------------------------------------------
class _Z3:
    """Term -> z3 real expression, with definitions (always asserted) and side conditions."""

    def __init__(self, z3: Any, variables: Mapping[str, Any], prefix: str) -> None:
        self.z3 = z3
        self.vars = variables
        self.prefix = prefix
        self.defs: list[Any] = []
        self.cache: dict[Term, tuple[Any, list[Any]]] = {}
        self.n = 0

    def fresh(self) -> Any:
        self.n += 1
        return self.z3.Real(f"{self.prefix}{self.n}")

    def power(self, a: Any, n: int) -> Any:
        """``a**n`` (n >= 1) by repeated squaring through fresh variables."""
        result, base = None, a
        while n:
            if n & 1:
                result = base if result is None else result * base
            n >>= 1
            if n:
                sq = self.fresh()
                self.defs.append(sq == base * base)
                base = sq
        return result

    def build(self, term: Term) -> tuple[Any, list[Any]]:
        """``(value, definedness conditions)``."""
        if term in self.cache:
            return self.cache[term]
        z3 = self.z3
        op = term[0]
        if op == "num":
            out = (z3.RealVal(f"{term[1].numerator}/{term[1].denominator}"), [])
        elif op == "var":
            out = (self.vars[term[1]], [])
        elif op in ("neg", "abs", "sqrt"):
            a, ca = self.build(term[1])
            if op == "neg":
                out = (-a, ca)
            elif op == "abs":
                out = (z3.If(a >= 0, a, -a), ca)
            else:
                s = self.fresh()
                self.defs += [s >= 0, z3.Implies(a >= 0, s * s == a)]
                out = (s, [*ca, a >= 0])
        elif op == "pow":
            a, ca = self.build(term[1])
            n = term[2]
            if n == 0:
                out = (z3.RealVal(1), ca)
            elif n > 0:
                out = (self.power(a, n), ca)
            else:
                p = self.power(a, -n)
                q = self.fresh()
                self.defs.append(z3.Implies(a != 0, q * p == 1))
                out = (q, [*ca, a != 0])
        else:
            (a, ca), (b, cb) = self.build(term[1]), self.build(term[2])
            if op == "add":
                out = (a + b, ca + cb)
            elif op == "sub":
                out = (a - b, ca + cb)
            elif op == "mul":
                out = (a * b, ca + cb)
            elif term[2][0] == "num" and term[2][1] != 0:
                out = (a / b, ca + cb)
            else:
                q = self.fresh()
                self.defs.append(z3.Implies(b != 0, q * b == a))
                out = (q, [*ca, *cb, b != 0])
        self.cache[term] = out
        return out


def _z3_to_sympy(z3: Any, val: Any) -> sp.Expr:
    if isinstance(val, z3.RatNumRef):
        return sp.Rational(val.numerator_as_long(), val.denominator_as_long())
    if isinstance(val, z3.IntNumRef):
        return sp.Integer(val.as_long())
    if isinstance(val, z3.AlgebraicNumRef):
        coeffs = [int(str(c)) for c in val.poly()]
        x = sp.Symbol("x")
        poly = sp.Poly(sum(c * x**k for k, c in enumerate(coeffs)), x)
        root = sp.CRootOf(poly, val.index() - 1)
        if poly.degree() <= 3:  # print low-degree irrationals with radicals when short
            approx = root.evalf(30)
            for r in sp.roots(poly, x):
                if (len(sp.sstr(r)) <= 60 and r.is_real
                        and abs(sp.N(r - approx, 30)) < sp.Float("1e-20")):
                    return r
        return root
    raise TermError(f"unexpected model value {val}")  # pragma: no cover


def _candidates(x: sp.Expr) -> list[sp.Rational]:
    """Rationals near an algebraic number: continued-fraction convergents, then roundings."""
    f = Fraction(str(sp.N(x, 40)))
    out: list[Fraction] = []
    for d in (1, 2, 10, 100, 10**4, 10**8):
        c = f.limit_denominator(d)
        if c not in out:
            out.append(c)
    return [sp.Rational(c.numerator, c.denominator) for c in out]
