"""Exact evaluation of a :data:`~derivations.terms.Term` at a point (SymPy numbers).

Re-checks every counterexample the solver reports: a point refutes a claim only if
the derived form is defined there and the claim is undefined or different.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from fractions import Fraction
from typing import Any

import sympy as sp
from sympy.core.evalf import PrecisionExhausted

from .terms import BINARY_OPS, Term, _vars

__all__ = ["evaluate", "fmt_number", "fold_zero_constants"]

class _Undefined(Exception):
    """Raised by :func:`evaluate` where the term is undefined."""


# --- exact evaluation --------------------------------------------------------------------
def _is_zero(x: sp.Expr) -> bool:
    """Exact zero test for an algebraic number.

    Rationals directly; a value that SymPy's ``evalf`` certifies to 50 significant
    digits (``strict=True``: full accuracy or ``PrecisionExhausted``) and is not 0
    is non-zero; only what is left goes to the minimal polynomial (which can be
    huge for a number such as ``3**(1/4096) - 1``, so it must not come first).
    """
    if x.is_Rational:
        return x == 0
    try:
        approx = sp.N(x, 50, strict=True)
    except PrecisionExhausted:
        approx = None
    if approx is not None and approx.is_number and approx != 0:
        return False
    fast = _zero_in_one_root(x)
    if fast is not None:
        return fast
    if x.is_zero is True:
        return True
    return sp.minimal_polynomial(x, sp.Dummy("z")).is_Symbol


def _zero_in_one_root(x: sp.Expr) -> bool | None:
    """Zero test for a rational function ``A(r)/B(r)`` of one real root ``r = CRootOf(P, k)``.

    ``A(r) == 0`` iff the minimal polynomial of ``r`` divides ``A``: one polynomial
    remainder instead of the minimal polynomial of the whole expression (seconds
    for a quintic's root). ``None`` when ``x`` is not of that form.
    """
    roots = x.atoms(sp.CRootOf)
    if len(roots) != 1:
        return None
    (root,) = roots
    z = sp.Dummy("z")
    y = sp.together(x.xreplace({root: z}))
    num, den = sp.fraction(y)
    try:
        p_num = sp.Poly(num, z, domain="QQ")
        sp.Poly(den, z, domain="QQ")
    except (sp.PolynomialError, sp.CoercionFailed, sp.GeneratorsNeeded):
        return None  # other algebraic numbers (e.g. sqrt(2)) or not polynomial in r
    minpoly = sp.Poly(sp.minimal_polynomial(root, z), z, domain="QQ")
    return p_num.rem(minpoly).is_zero


def _sign(x: sp.Expr) -> int:
    if x.is_Rational:
        return 1 if x > 0 else (-1 if x < 0 else 0)
    if _is_zero(x):
        return 0
    prec = 30
    while prec < 2000:
        v = sp.N(x, prec)
        if v.is_real is not False and abs(v) > sp.Float(10) ** (-prec // 2):
            return 1 if v > 0 else -1
        prec *= 2
    raise _Undefined("cannot determine a sign")  # pragma: no cover - nonzero algebraic


def evaluate(term: Term, point: Mapping[str, sp.Expr]) -> sp.Expr:
    """Exact value of ``term`` at ``point``; raises ``ValueError`` where it is undefined."""
    try:
        return _ev(term, point)
    except _Undefined as exc:
        raise ValueError(str(exc)) from None


def _ev(term: Term, point: Mapping[str, sp.Expr]) -> sp.Expr:
    """Exact value of ``term`` at ``point``; raises ``_Undefined`` where it is undefined."""
    # twin kept on purpose: ``terms.term_to_sympy`` walks terms the same way, for
    # symbols and without the definedness checks made here
    op = term[0]
    if op == "num":
        return sp.Rational(term[1].numerator, term[1].denominator)
    if op == "var":
        return point[term[1]]
    if op == "neg":
        return -_ev(term[1], point)
    if op == "abs":
        a = _ev(term[1], point)
        return a if _sign(a) >= 0 else -a
    if op == "sqrt":
        a = _ev(term[1], point)
        if _sign(a) < 0:
            raise _Undefined("sqrt of a negative number")
        return sp.sqrt(a)
    if op == "pow":
        a = _ev(term[1], point)
        if term[2] < 0 and _is_zero(a):
            raise _Undefined("0**negative")
        return a ** term[2]
    a, b = _ev(term[1], point), _ev(term[2], point)
    if op == "div" and _is_zero(b):
        raise _Undefined("division by zero")
    return BINARY_OPS[op](a, b)


def _count(term: Term, op: str) -> int:
    return (term[0] == op) + sum(_count(a, op) for a in term[1:] if isinstance(a, tuple))


def fold_zero_constants(term: Term, max_radicals: int = 8) -> Term:
    """Replace each variable-free subterm with radicals that is defined and exactly 0 by 0.

    Sound (the subterm has that one value everywhere) and it spares z3 a hard
    algebraic-number problem, e.g. ``10**40*(sqrt(2) + sqrt(3) - sqrt(5 + 2*sqrt(6)))``.
    Subterms with more than ``max_radicals`` ``sqrt`` are left alone (their minimal
    polynomial could be huge).
    """
    if term[0] in ("num", "var"):
        return term
    if not _vars(term) and 0 < _count(term, "sqrt") <= max_radicals:
        value = _defined_value(term, {})
        if value is not None and _is_zero(value):
            return ("num", Fraction(0))
        return term
    return (term[0], *(fold_zero_constants(a, max_radicals) if isinstance(a, tuple) else a
                       for a in term[1:]))


def _defined_value(term: Term, point: Mapping[str, sp.Expr]) -> sp.Expr | None:
    try:
        return _ev(term, point)
    except _Undefined:
        return None


def _in_domain(point: Mapping[str, sp.Expr], domain: Mapping[str, str]) -> bool:
    for name, kind in domain.items():
        s = _sign(point[name])
        if (kind == "nonneg" and s < 0) or (kind == "pos" and s <= 0):
            return False
    return True


def _refutes(claimed: Term, derived: Term, point: Mapping[str, sp.Expr],
             domain: Mapping[str, str], extra: tuple = ()) -> tuple[bool, Any, Any]:
    """Exact re-check: in the domain, derived defined, claim undefined or different."""
    if not _in_domain(point, domain):
        return False, None, None
    for cond in extra:
        if not cond(point):
            return False, None, None
    d_val = _defined_value(derived, point)
    if d_val is None:
        return False, None, None
    c_val = _defined_value(claimed, point)
    if c_val is None:
        return True, None, d_val
    return (not _is_zero(c_val - d_val)), c_val, d_val


def fmt_number(x: sp.Expr | None) -> tuple[str | None, float | None, str | None]:
    """``(exact string, float or None if not finite, 17 significant digits)``."""
    if x is None:
        return None, None, None
    exact = sp.sstr(x)
    approx = sp.N(x, 17)
    try:
        f = float(approx)
    except (TypeError, ValueError):  # pragma: no cover
        f = None
    if f is not None and not math.isfinite(f):
        f = None
    return exact, f, sp.sstr(approx, full_prec=False) if not x.is_Rational else exact
