"""Decide a user's claim ``"LHS = RHS"`` about SimAM's closed form (``simam check``).

The question. Symbols ``t``, ``mu`` are real, ``sigma >= 0``, ``lam > 0``; the
labels ``(y_t, y_o)`` are exact numbers. A claim *holds* iff at every point of that
domain where the derived form is defined, the claimed right-hand side is defined
too and equal to it. *Defined*: every denominator non-zero, every ``sqrt``
argument ``>= 0``, no ``0**negative``, every value real.

The claim's text is parsed safely by :mod:`derivations.parsing` (never ``eval`` or
``sympify``; bounds in :data:`LIMITS`); what may be written there is described in
that module. ``sigma`` is the standard deviation of the M-1 other neurons.

Deciding: :func:`derivations.decide.decide_terms` (z3's ``nlsat``): proved,
refuted with an exact counterexample (re-checked by exact evaluation), or
undecided. For claims without ``sqrt``/``Abs`` an independent SymPy decision
(``cancel`` plus definedness) must agree, else the verdict is ``undecided``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sympy as sp

from . import decide as dc
from . import display as dp
from . import energy as en
from . import minimizer as mz

# the parser's names are re-exported: ``derivations.check`` is where users import them
from .parsing import (
    LHS_NAMES,
    LIMITS,
    SYMBOLS,
    ClaimSyntaxError,
    parse_label,
    parse_rhs,
    parse_term,
    split_claim,
)
from .verdict import holds_of

__all__ = [
    "LHS_NAMES",
    "LIMITS",
    "CheckResult",
    "ClaimSyntaxError",
    "check_claim",
    "counterexample_json",
    "decide",
    "decide_expr",
    "decide_term",
    "derived_form",
    "parse_label",
    "parse_rhs",
    "parse_term",
]


@dataclass(frozen=True)
class CheckResult:
    """Outcome of :func:`check_claim`.

    ``verdict`` is ``proved``, ``refuted`` or ``undecided``; ``holds`` is True,
    False or None accordingly. ``counterexample`` (refuted only) has floats for
    ``t, mu, sigma, lam, claimed, derived`` (``claimed`` None where the claim is
    undefined) and ``exact`` / ``approx`` (17 digits) strings of the same.
    """

    verdict: str
    lhs: str
    claimed: str
    derived: str
    labels: tuple[str, str]
    engine: str
    seconds: float
    counterexample: dict[str, Any] | None = None
    note: str = ""

    @property
    def holds(self) -> bool | None:
        """True if proved, False if refuted, None if undecided."""
        return holds_of(self.verdict)

    @property
    def method(self) -> str:
        """The engine that decided (older name)."""
        return self.engine

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict (no NaN/Infinity): holds, verdict, engine, seconds, lhs, ..."""
        return {
            "holds": self.holds,
            "verdict": self.verdict,
            "engine": self.engine,
            "seconds": round(self.seconds, 4),
            "lhs": self.lhs,
            "claimed": self.claimed,
            "derived": self.derived,
            "labels": list(self.labels),
            "counterexample": self.counterexample,
            "note": self.note,
        }


# --- deciding --------------------------------------------------------------------------------
def derived_form(lhs: str, labels: Sequence[object] = (1, -1)) -> tuple[sp.Expr, tuple]:
    """The derived closed form for ``lhs`` and exact ``labels``; ``(expr, labels)``.

    Equal labels are a valid problem: the minimiser is ``w = 0``, ``b = y``, ``e = 0``
    (the symbolic-label closed form at ``y_t = y_o``); ``inv_e_t`` is undefined there
    and raises :class:`ClaimSyntaxError`.
    """
    if lhs not in LHS_NAMES:
        raise ValueError(f"lhs must be one of {LHS_NAMES}, got {lhs!r}")
    if isinstance(labels, str | bytes) or len(labels) != 2:
        raise ClaimSyntaxError(f"labels must be a pair (y_t, y_o), got {labels!r}")
    lt, lo = (sp.Rational(f.numerator, f.denominator) for f in map(parse_label, labels))
    if lt != lo:
        return mz.closed_form((lt, lo)).as_dict()[lhs], (lt, lo)
    general = mz.closed_form((en.y_t, en.y_o)).as_dict()
    if lhs == "inv_e_t":
        raise ClaimSyntaxError("inv_e_t = 1/e_t* is undefined for equal labels (e_t* = 0 there)")
    expr = general[lhs].subs({en.y_t: lt, en.y_o: lo})
    if expr.has(sp.zoo, sp.nan, sp.oo):  # pragma: no cover - w, b, e stay finite
        raise ClaimSyntaxError(f"{lhs} is undefined for equal labels")
    return sp.factor(expr), (lt, lo)


def counterexample_json(dec: dc.Decision) -> dict[str, Any]:
    """A refuted decision's point and both values: floats, ``exact`` and ``approx`` strings.

    Keys ``t, mu, sigma, lam`` come first, then any other variable, then ``claimed``
    (None and ``"undefined"`` where the claim is undefined) and ``derived``.
    """
    if dec.point is None:
        raise ValueError("only a refuted decision has a point")
    out: dict[str, Any] = {}
    exact: dict[str, str | None] = {}
    approx: dict[str, str | None] = {}
    order = sorted(dec.point, key=lambda k: (k not in SYMBOLS, list(SYMBOLS).index(k)
                                              if k in SYMBOLS else 0, k))
    values = {**{k: dec.point[k] for k in order}, "claimed": dec.claimed_value,
              "derived": dec.derived_value}
    for key, val in values.items():
        e, f, a = dc.fmt_number(val)
        out[key] = f
        exact[key] = "undefined" if (val is None and key == "claimed") else e
        approx[key] = "undefined" if (val is None and key == "claimed") else a
    out["exact"] = exact
    out["approx"] = approx
    return out


def decide_term(lhs: str, claimed: dc.Term, labels: Sequence[object] = (1, -1),
                claimed_text: str | None = None, timeout: float = 10.0) -> CheckResult:
    """Decide ``lhs == claimed`` (a term) against the derived closed form for ``labels``."""
    start = time.monotonic()
    derived, lab = derived_form(lhs, labels)
    d_term = dc.term_from_sympy(derived)
    text = claimed_text if claimed_text is not None else sp.sstr(
        dc.term_to_sympy(claimed, SYMBOLS))
    left = max(0.05, timeout - (time.monotonic() - start))
    dec = dc.decide_terms(claimed, d_term, dc.CLAIM_DOMAIN, timeout=left)
    engine, note = dec.engine, dec.note
    verdict = dec.verdict
    if verdict != "undecided" and not dc._has(claimed, ("sqrt", "abs")):
        other = dc.sympy_decide(claimed, d_term)
        if other is not None and other != verdict:  # pragma: no cover - must not happen
            verdict, note = "undecided", f"z3 says {dec.verdict}, SymPy says {other}"
        elif other is not None:
            engine += " + SymPy cancel (agrees)"
    counter = counterexample_json(dec) if verdict == "refuted" and dec.point is not None else None
    return CheckResult(
        verdict=verdict,
        lhs=lhs,
        claimed=text,
        derived=dp.pretty_str(derived),
        labels=(str(lab[0]), str(lab[1])),
        engine=engine,
        seconds=time.monotonic() - start,
        counterexample=counter,
        note=note,
    )


def decide_expr(lhs: str, claimed: sp.Expr, labels: Sequence[object] = (1, -1),
                claimed_text: str | None = None, timeout: float = 10.0) -> CheckResult:
    """Decide ``lhs == claimed`` for a SymPy expression (its definedness is SymPy's form)."""
    return decide_term(lhs, dc.term_from_sympy(claimed), labels, claimed_text, timeout)


# deprecated alias: ``decide`` is also the module ``derivations.decide``; say ``decide_expr``
decide = decide_expr


def check_claim(text: str, labels: Sequence[object] = (1, -1),
                timeout: float = 10.0) -> CheckResult:
    """Decide ``"LHS = RHS"`` against the derived closed form for ``labels = (y_t, y_o)``.

    Raises :class:`ClaimSyntaxError` (a ``ValueError``) for bad claims, bad labels,
    claims over :data:`LIMITS`, and ``inv_e_t`` with equal labels. ``timeout`` is
    given to the solver (in-process), which may overrun it on hard inputs (z3's
    ``nlsat`` does not always poll its timer); the CLI runs the whole check in a
    child process that it kills at the limit, the hard bound.
    """
    lhs, rhs_text = split_claim(text)
    claimed = parse_term(rhs_text)
    return decide_term(lhs, claimed, labels, claimed_text=rhs_text.strip(), timeout=timeout)
