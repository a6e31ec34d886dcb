"""Decide ``claimed == derived`` over the reals: proved, refuted (exact point) or undecided.

The question. Each variable has a domain (``t``, ``mu`` real, ``sigma >= 0``,
``lam > 0`` for the closed form). A claim *holds* iff at every domain point where
the derived form is defined, the claimed form is defined too and equal to it.
*Defined* means: every denominator is non-zero, every ``sqrt`` argument is
``>= 0``, no ``0**negative``, every value real.

Definedness must be read from the expression as the user wrote it: SymPy
simplifies while building (``B/B -> 1``, ``0*sqrt(-1) -> 0``). So both sides are
first put into a small term language (:class:`Term`, tuples), built from the
parsed syntax tree (see :mod:`derivations.parsing`) or from a SymPy expression
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

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import sympy as sp

# the term language, the z3 translation, the exact evaluator and the SymPy cross-check
# live in their own modules; their names are re-exported here for the checker and tests
from .crosscheck import sympy_decide
from .evaluation import (
    _defined_value,
    _is_zero,
    _refutes,
    _zero_in_one_root,  # noqa: F401 - re-exported
    evaluate,
    fmt_number,  # noqa: F401 - re-exported
    fold_zero_constants,
)
from .terms import (
    CLAIM_DOMAIN,
    Term,
    TermError,
    _has,  # noqa: F401 - re-exported
    _vars,
    term_degree,
    term_from_sympy,
    term_size,
    term_to_sympy,
)
from .translate import _Z3, _candidates, _import_z3, _z3_to_sympy
from .verdict import holds_of

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

ENGINE = "z3 nlsat (QF_NRA)"


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
        return holds_of(self.verdict)


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


# --- convenience ---------------------------------------------------------------------------
def decide_exprs(claimed: sp.Expr, derived: sp.Expr, domain: Mapping[str, str] | None = None,
                 timeout: float = 10.0, assumptions: tuple[sp.Expr, ...] = ()) -> Decision:
    """:func:`decide_terms` for two SymPy expressions (derived identities, not user text)."""
    return decide_terms(term_from_sympy(claimed), term_from_sympy(derived), domain, timeout,
                        tuple(term_from_sympy(a) for a in assumptions))
