"""An independent SymPy decision for radical- and Abs-free terms (a cross-check of z3)."""

from __future__ import annotations

import random
from collections.abc import Mapping

import sympy as sp

from .evaluation import _refutes
from .terms import CLAIM_DOMAIN, Term, _has, _vars, term_to_sympy

__all__ = ["sympy_decide"]

# --- SymPy cross-check (radical-free terms) -----------------------------------------------
def _denominators(term: Term, out: list[Term]) -> list[Term]:
    op = term[0]
    if op == "div":
        out.append(term[2])
    if op == "pow" and term[2] < 0:
        out.append(term[1])
    for a in term[1:]:
        if isinstance(a, tuple):
            _denominators(a, out)
    return out


def _domain_symbols(names: set[str], domain: Mapping[str, str]) -> dict[str, sp.Symbol]:
    kinds = {"real": {"real": True}, "nonneg": {"nonnegative": True}, "pos": {"positive": True}}
    return {n: sp.Symbol(n, **kinds[domain.get(n, "real")]) for n in names}


def _positive_by_squares(poly: sp.Expr, depth: int = 0) -> bool:
    """``poly > 0`` shown by completing squares: ``a v**2 + b v + c >= c - b**2/(4a)``."""
    if poly.is_positive:
        return True
    if depth > 4:
        return False
    for v in sorted(poly.free_symbols, key=lambda s: s.name):
        p = sp.Poly(poly, v)
        if p.degree() != 2:
            continue
        a, b, c = p.all_coeffs()
        if not (a.is_number and a > 0):
            continue
        if _positive_by_squares(sp.expand(c - b**2 / (4 * a)), depth + 1):
            return True
    return False


def _definite(poly: sp.Expr) -> bool:
    """True when SymPy's assumptions (and completed squares) show ``poly`` never vanishes."""
    if poly.is_positive or poly.is_negative:
        return True
    _, factors = sp.factor_list(poly)
    return all(f.is_positive or f.is_negative or _positive_by_squares(sp.expand(f))
               or _positive_by_squares(sp.expand(-f)) for f, _ in factors)


def sympy_decide(claimed: Term, derived: Term, domain: Mapping[str, str] | None = None,
                 seed: int = 0) -> str | None:
    """Independent SymPy verdict for radical- and Abs-free terms, or ``None`` (cannot tell).

    ``cancel(claimed - derived) != 0`` refutes (two different rational functions
    differ on an open set of the domain). Otherwise the claim holds iff none of
    its denominators vanishes where the derived form is defined: a denominator
    that SymPy's sign assumptions show definite is fine, an identically zero one
    refutes, and one with a real root found at a random rational slice refutes.
    """
    if _has(claimed, ("sqrt", "abs")) or _has(derived, ("sqrt", "abs")):
        return None
    domain = dict(CLAIM_DOMAIN if domain is None else domain)
    names = _vars(claimed) | _vars(derived) | set(domain)
    for name in names:
        domain.setdefault(name, "real")
    syms = _domain_symbols(names, domain)
    c, d = term_to_sympy(claimed, syms), term_to_sympy(derived, syms)
    if c.has(sp.zoo, sp.nan, sp.oo) or d.has(sp.zoo, sp.nan, sp.oo):
        return None
    if sp.cancel(sp.together(c - d)) != 0:
        return "refuted"
    rng = random.Random(seed)
    for den in _denominators(claimed, []):
        raw = sp.together(term_to_sympy(den, syms))
        num = sp.numer(sp.cancel(raw))
        if num == 0:
            return "refuted"
        if num.is_number or _definite(sp.numer(raw)) or _definite(num):
            continue
        if not _finds_root(num, claimed, derived, domain, syms, rng):
            return None
        return "refuted"
    return "proved"


def _finds_root(num: sp.Expr, claimed: Term, derived: Term, domain: Mapping[str, str],
                syms: Mapping[str, sp.Symbol], rng: random.Random) -> bool:
    free = sorted(s.name for s in num.free_symbols)
    for var in free:
        for _ in range(6):
            point = {}
            for n, kind in domain.items():
                lo = 1 if kind == "pos" else (0 if kind == "nonneg" else -5)
                point[n] = sp.Rational(rng.randint(lo * 4, 20), rng.randint(1, 4))
            sliced = sp.Poly(num.subs({syms[n]: v for n, v in point.items() if n != var}),
                             syms[var])
            if sliced.degree() < 1:
                continue
            for root in sp.real_roots(sliced):
                trial = dict(point)
                trial[var] = root
                if _refutes(claimed, derived, trial, domain)[0]:
                    return True
    return False
