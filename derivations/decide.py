"""Decide ``claimed == derived`` over the reals: proved, refuted (exact point) or undecided.

The question. Each variable has a domain (``t``, ``mu`` real, ``sigma >= 0``,
``lam > 0`` for the closed form). A claim *holds* iff at every domain point where
the derived form is defined, the claimed form is defined too and equal to it.
*Defined* means: every denominator is non-zero, every ``sqrt`` argument is
``>= 0``, no ``0**negative``, every value real.

Definedness must be read from the expression as the user wrote it: SymPy
simplifies while building (``B/B -> 1``, ``0*sqrt(-1) -> 0``). So both sides are
first put into a small term language (:class:`Term`, tuples), built from the
parsed syntax tree (see :mod:`derivations.check`) or from a SymPy expression
(derived forms, whose definedness is what SymPy holds). From a term we build

* a z3 formula in nonlinear real arithmetic: a denominator ``d`` gives the side
  condition ``d != 0`` and a fresh ``q`` with ``d != 0 -> q*d == n``; ``sqrt(a)``
  a fresh ``s >= 0`` with ``a >= 0 -> s*s == a`` and side condition ``a >= 0``;
  ``Abs`` an ``If``; integer powers are products. The definitions are guarded so
  that they never exclude a point where something is undefined.
* an exact evaluator (SymPy numbers) that re-checks every counterexample.
* for radical-free terms, an independent SymPy decision (``cancel`` of the
  difference plus the definedness of every denominator) used as a cross-check.

``exists a domain point: derived defined and (claim undefined or claim != derived)``
is given to z3's ``nlsat`` (``SolverFor("QF_NRA")``), complete for this
arithmetic: unsat -> proved, sat -> refuted (the model, made rational when
possible, is re-checked exactly before it is reported), unknown -> undecided.

z3 is imported lazily, inside :func:`decide_terms` only.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import sympy as sp
from sympy.core.evalf import PrecisionExhausted

__all__ = [
    "CLAIM_DOMAIN",
    "Decision",
    "Term",
    "TermError",
    "decide_exprs",
    "decide_positive",
    "decide_terms",
    "evaluate",
    "fold_zero_constants",
    "sympy_decide",
    "term_degree",
    "term_from_sympy",
    "term_size",
    "term_to_sympy",
]

Term = tuple
"""``("num", Fraction) | ("var", name) | ("add"|"sub"|"mul"|"div", a, b) | ("neg"|"sqrt"|"abs", a)
| ("pow", a, int)``."""

CLAIM_DOMAIN: dict[str, str] = {"t": "real", "mu": "real", "sigma": "nonneg", "lam": "pos"}
"""Domain of the closed form's variables: ``real``, ``nonneg`` (>= 0) or ``pos`` (> 0)."""

ENGINE = "z3 nlsat (QF_NRA)"


class TermError(ValueError):
    """The expression uses something the decision procedure does not cover."""


class _Undefined(Exception):
    """Raised by :func:`evaluate` where the term is undefined."""


@dataclass
class Decision:
    """Outcome of a decision: ``verdict`` is ``proved``, ``refuted`` or ``undecided``.

    ``point`` (refuted only) maps each variable to an exact SymPy number;
    ``claimed_value`` is ``None`` where the claim is undefined at the point.
    """

    verdict: str
    engine: str
    seconds: float
    point: dict[str, sp.Expr] | None = None
    claimed_value: sp.Expr | None = None
    derived_value: sp.Expr | None = None
    note: str = ""
    sympy_verdict: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def holds(self) -> bool | None:
        """True if proved, False if refuted, None if undecided."""
        return {"proved": True, "refuted": False}.get(self.verdict)


# --- terms --------------------------------------------------------------------------
def term_from_sympy(expr: sp.Expr) -> Term:
    """Term of a SymPy expression (numbers, symbols, ``+ * **``, ``Abs``; exponents in Z/2)."""
    if isinstance(expr, sp.Symbol):
        return ("var", expr.name)
    if expr.is_Rational:
        return ("num", Fraction(int(expr.p), int(expr.q)))
    if isinstance(expr, sp.Add | sp.Mul):
        args = [term_from_sympy(a) for a in expr.args]
        op = "add" if isinstance(expr, sp.Add) else "mul"
        out = args[0]
        for a in args[1:]:
            out = (op, out, a)
        return out
    if isinstance(expr, sp.Abs):
        return ("abs", term_from_sympy(expr.args[0]))
    if isinstance(expr, sp.Pow):
        base, exp = expr.args
        if exp.is_Integer:
            return ("pow", term_from_sympy(base), int(exp))
        if exp.is_Rational and exp.q == 2:
            return ("pow", ("sqrt", term_from_sympy(base)), int(exp.p))
    raise TermError(f"cannot decide expressions containing {sp.sstr(expr)!r}")


def term_to_sympy(term: Term, symbols: Mapping[str, sp.Symbol]) -> sp.Expr:
    """The SymPy expression of a term (SymPy may simplify it; display and cross-check only)."""
    op = term[0]
    if op == "num":
        return sp.Rational(term[1].numerator, term[1].denominator)
    if op == "var":
        return symbols[term[1]]
    if op in ("neg", "sqrt", "abs"):
        a = term_to_sympy(term[1], symbols)
        return {"neg": lambda: -a, "sqrt": lambda: sp.sqrt(a), "abs": lambda: sp.Abs(a)}[op]()
    if op == "pow":
        return term_to_sympy(term[1], symbols) ** term[2]
    a, b = term_to_sympy(term[1], symbols), term_to_sympy(term[2], symbols)
    if op == "add":
        return a + b
    if op == "sub":
        return a - b
    if op == "mul":
        return a * b
    return a / b


def term_size(term: Term) -> int:
    """Number of nodes (shared subterms counted each time)."""
    if term[0] in ("num", "var"):
        return 1
    return 1 + sum(term_size(a) for a in term[1:] if isinstance(a, tuple))


def term_degree(term: Term) -> int:
    """An upper bound on the total degree after clearing denominators and radicals."""
    op = term[0]
    if op == "num":
        return 0
    if op == "var":
        return 1
    if op in ("neg", "abs"):
        return term_degree(term[1])
    if op == "sqrt":
        return max(1, term_degree(term[1]))
    if op == "pow":
        return abs(term[2]) * term_degree(term[1])
    a, b = term_degree(term[1]), term_degree(term[2])
    if op in ("add", "sub"):
        return max(a, b)
    return a + b


def _has(term: Term, ops: tuple[str, ...]) -> bool:
    if term[0] in ops:
        return True
    return any(_has(a, ops) for a in term[1:] if isinstance(a, tuple))


def _vars(term: Term, out: set[str] | None = None) -> set[str]:
    out = set() if out is None else out
    if term[0] == "var":
        out.add(term[1])
    for a in term[1:]:
        if isinstance(a, tuple):
            _vars(a, out)
    return out


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
    if op == "add":
        return a + b
    if op == "sub":
        return a - b
    if op == "mul":
        return a * b
    if _is_zero(b):
        raise _Undefined("division by zero")
    return a / b


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


def decide_terms(
    claimed: Term,
    derived: Term,
    domain: Mapping[str, str] | None = None,
    timeout: float = 10.0,
    assumptions: tuple[Term, ...] = (),
) -> Decision:
    """Decide ``claimed == derived`` on ``domain`` wherever ``derived`` is defined.

    ``domain`` maps variable names to ``real``, ``nonneg`` or ``pos`` (default
    :data:`CLAIM_DOMAIN`); ``assumptions`` are terms required non-zero (e.g.
    ``y_t - y_o``). ``timeout`` (seconds) bounds the solver; running out gives
    ``undecided``.
    """
    z3 = _import_z3()

    start = time.monotonic()
    claimed, derived = fold_zero_constants(claimed), fold_zero_constants(derived)
    domain = dict(CLAIM_DOMAIN if domain is None else domain)
    names = sorted(set(domain) | _vars(claimed) | _vars(derived))
    for name in names:
        domain.setdefault(name, "real")
    variables = {n: z3.Real(n) for n in names}
    tr = _Z3(z3, variables, "_aux")
    c_val, c_def = tr.build(claimed)
    d_val, d_def = tr.build(derived)
    base = []
    for name, kind in domain.items():
        if kind == "nonneg":
            base.append(variables[name] >= 0)
        elif kind == "pos":
            base.append(variables[name] > 0)
    assume = []
    for a in assumptions:
        val, cond = tr.build(a)
        assume += [*cond, val != 0]
    query = [*base, *assume, *tr.defs, *d_def,
             z3.Or(z3.Not(z3.And(*c_def)) if c_def else z3.BoolVal(False), c_val != d_val)]

    def solver(seconds: float) -> Any:
        s = z3.SolverFor("QF_NRA")
        s.set("timeout", max(1, int(seconds * 1000)))
        s.add(*query)
        return s

    s = solver(timeout)
    res = s.check()
    elapsed = time.monotonic() - start
    if res == z3.unsat:
        return Decision("proved", ENGINE, elapsed, note="no domain point where the claim is "
                        "undefined or differs (z3: unsat)")
    if res != z3.sat:
        return Decision("undecided", ENGINE, elapsed,
                        note=f"z3 gave up ({s.reason_unknown() or 'unknown'}); nothing is claimed")
    model = s.model()
    original = {n: _z3_to_sympy(z3, model.eval(variables[n], model_completion=True))
                for n in names}
    point = _rationalize(z3, s, variables, original, start, timeout)
    extra_checks = tuple(
        (lambda p, a=a: (v := _defined_value(a, p)) is not None and not _is_zero(v))
        for a in assumptions
    )
    ok, cv, dv = _refutes(claimed, derived, point, domain, extra_checks)
    if not ok and point is not original:  # pragma: no cover - fall back to the model itself
        point = original
        ok, cv, dv = _refutes(claimed, derived, point, domain, extra_checks)
    elapsed = time.monotonic() - start
    if not ok:  # pragma: no cover - would be a translation bug; never report it as a refutation
        return Decision("undecided", ENGINE, elapsed,
                        note="z3 found a point that the exact re-check did not confirm")
    what = "the claim is undefined there" if cv is None else "the two sides differ there"
    return Decision("refuted", ENGINE, elapsed, point=point, claimed_value=cv, derived_value=dv,
                    note=f"z3 model, re-checked exactly: {what}")


def _rationalize(z3: Any, s: Any, variables: Mapping[str, Any], point: dict[str, sp.Expr],
                 start: float, timeout: float) -> dict[str, sp.Expr]:
    """Replace algebraic model values by nearby rationals where the query stays sat.

    Each irrational coordinate in turn is pinned to a nearby rational (earlier pins
    kept); the solver then finds the others. The result is re-checked exactly.
    """
    if all(v.is_Rational for v in point.values()):
        return point
    fixed: dict[str, sp.Rational] = {}
    for name in sorted(point, key=lambda n: point[n].is_Rational, reverse=True):
        if point[name].is_Rational:
            fixed[name] = point[name]
            continue
        for cand in _candidates(point[name]):
            left = timeout - (time.monotonic() - start)
            if left < 0.2:
                return point
            s.push()
            s.add(*(variables[n] == z3.RealVal(str(v)) for n, v in fixed.items()))
            s.add(variables[name] == z3.RealVal(str(cand)))
            s.set("timeout", max(1, int(min(left / 2, 2.0) * 1000)))
            if s.check() == z3.sat:
                m = s.model()
                trial = {n: _z3_to_sympy(z3, m.eval(variables[n], model_completion=True))
                         for n in point}
                s.pop()
                if all(trial[n] == v for n, v in fixed.items()):
                    point, fixed[name] = trial, cand
                    break
            else:
                s.pop()
        else:
            return point
    return point


def decide_positive(expr: sp.Expr, domain: Mapping[str, str], timeout: float = 10.0) -> Decision:
    """Decide ``expr > 0`` at every domain point where it is defined (z3 ``nlsat``)."""
    z3 = _import_z3()

    start = time.monotonic()
    term = term_from_sympy(expr)
    domain = dict(domain)
    for name in _vars(term):
        domain.setdefault(name, "real")
    variables = {n: z3.Real(n) for n in domain}
    tr = _Z3(z3, variables, "_aux")
    val, cond = tr.build(term)
    s = z3.SolverFor("QF_NRA")
    s.set("timeout", max(1, int(timeout * 1000)))
    for name, kind in domain.items():
        if kind == "nonneg":
            s.add(variables[name] >= 0)
        elif kind == "pos":
            s.add(variables[name] > 0)
    s.add(*tr.defs, *cond, val <= 0)
    res = s.check()
    elapsed = time.monotonic() - start
    if res == z3.unsat:
        return Decision("proved", ENGINE, elapsed, note="no domain point with value <= 0")
    if res == z3.sat:
        m = s.model()
        point = {n: _z3_to_sympy(z3, m.eval(v, model_completion=True))
                 for n, v in variables.items()}
        return Decision("refuted", ENGINE, elapsed, point=point,
                        derived_value=_defined_value(term, point), note="value <= 0 there")
    return Decision("undecided", ENGINE, elapsed, note="z3 gave up")


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


# --- convenience ---------------------------------------------------------------------------
def decide_exprs(claimed: sp.Expr, derived: sp.Expr, domain: Mapping[str, str] | None = None,
                 timeout: float = 10.0, assumptions: tuple[sp.Expr, ...] = ()) -> Decision:
    """:func:`decide_terms` for two SymPy expressions (derived identities, not user text)."""
    return decide_terms(term_from_sympy(claimed), term_from_sympy(derived), domain, timeout,
                        tuple(term_from_sympy(a) for a in assumptions))


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
