"""Decide a user's claim ``"LHS = RHS"`` about SimAM's closed form (``simam check``).

The question. Symbols ``t``, ``mu`` are real, ``sigma >= 0``, ``lam > 0``; the
labels ``(y_t, y_o)`` are exact numbers. A claim *holds* iff at every point of that
domain where the derived form is defined, the claimed right-hand side is defined
too and equal to it. *Defined*: every denominator non-zero, every ``sqrt``
argument ``>= 0``, no ``0**negative``, every value real.

``LHS`` is one of ``w_t``, ``b_t``, ``e_t`` (the minimum energy; ``e_t*`` too) or
``inv_e_t`` (``1/e_t*``; ``1/e_t`` too). ``RHS`` is an expression in ``t``, ``mu``,
``sigma``, ``lam`` (``sigma`` is the standard deviation of the M-1 other neurons;
Greek ``μ σ λ`` are accepted) built from numbers, ``+ - * / **`` (integer or
half-integer exponents), unary signs, parentheses and ``sqrt``, ``Abs``/``abs``.

Safety: the text is never given to ``eval`` or ``sympify``. It is parsed with
:mod:`ast` and turned node by node into a :data:`~derivations.decide.Term` from an
allow-list (so definedness is read from what was written: SymPy would turn
``B/B`` into ``1``); anything else raises :class:`ClaimSyntaxError`. ``^`` means
power. Number literals are exact from their source text (``0.1`` -> ``1/10``).

Deciding: :func:`derivations.decide.decide_terms` (z3's ``nlsat``): proved,
refuted with an exact counterexample (re-checked by exact evaluation), or
undecided. For claims without ``sqrt``/``Abs`` an independent SymPy decision
(``cancel`` plus definedness) must agree, else the verdict is ``undecided``.

Limits (exceeding one raises :class:`ClaimSyntaxError`): :data:`LIMITS`.
"""

from __future__ import annotations

import ast
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import sympy as sp

from . import decide as dc
from . import display as dp
from . import energy as en
from . import minimizer as mz

__all__ = [
    "LHS_NAMES",
    "LIMITS",
    "CheckResult",
    "ClaimSyntaxError",
    "check_claim",
    "decide",
    "derived_form",
    "parse_label",
    "parse_rhs",
    "parse_term",
]

LHS_NAMES = ("w_t", "b_t", "e_t", "inv_e_t")
_LHS_ALIASES = {
    "w_t": "w_t",
    "w": "w_t",
    "b_t": "b_t",
    "b": "b_t",
    "e_t": "e_t",
    "e_t*": "e_t",
    "e_t^*": "e_t",
    "e_t**": "e_t",
    "inv_e_t": "inv_e_t",
    "1/e_t": "inv_e_t",
    "1/e_t*": "inv_e_t",
    "e_inv": "inv_e_t",
}
_NAMES = {"t": "t", "mu": "mu", "μ": "mu", "sigma": "sigma", "σ": "sigma", "lam": "lam",
          "λ": "lam"}
_SYMBOLS = {"t": en.t, "mu": en.mu, "sigma": en.sigma, "lam": en.lam}

LIMITS: dict[str, int] = {
    "characters": 2000,  # input length
    "nesting": 60,  # syntax tree depth
    "nodes": 400,  # expression size
    "exponent": 64,  # |n| in x**n
    "degree": 48,  # total degree after clearing denominators
    "digits": 60,  # digits of any number literal or label (numerator, denominator)
    "constant_bits": 4096,  # size of constants built with powers
    "sqrt_nesting": 6,  # sqrt inside sqrt (z3 can ignore its timer on deeper towers)
}
"""Bounds on a claim; each gives a one-line error."""


class ClaimSyntaxError(ValueError):
    """The claim is not of the form ``LHS = RHS``, uses something not allowed, or is too big."""


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
        return {"proved": True, "refuted": False}.get(self.verdict)

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


# --- numbers ------------------------------------------------------------------------------
_DECIMAL = re.compile(r"^[+-]?(\d[\d_]*)?(\.[\d_]*)?([eE][+-]?\d+)?$")


def _exact(src: str, what: str) -> Fraction:
    """Exact value of a decimal or ``p/q`` string, bounded before anything big is built."""
    text = src.strip().replace("_", "")
    parts = text.split("/")
    if len(parts) > 2 or not text:
        raise ClaimSyntaxError(f"{what} {src!r} is not an exact number")
    out = []
    for part in parts:
        m = _DECIMAL.match(part.strip())
        if not m or not (m.group(1) or (m.group(2) or "").strip(".")):
            raise ClaimSyntaxError(f"{what} {src!r} is not an exact number")
        digits = len((m.group(1) or "") + (m.group(2) or "")) - bool(m.group(2))
        exp_text = m.group(3)[1:] if m.group(3) else "0"
        # never int() an exponent of thousands of digits (Python refuses past 4300)
        exp = int(exp_text) if len(exp_text.lstrip("+-").lstrip("0")) <= 6 else 10**7
        if digits > LIMITS["digits"] or abs(exp) > LIMITS["digits"]:
            raise ClaimSyntaxError(
                f"{what} {src!r} is out of range (at most {LIMITS['digits']} digits and "
                f"exponents of size {LIMITS['digits']})")
        out.append(Fraction(part.strip()))
    if len(out) == 2:
        if out[1] == 0:
            raise ClaimSyntaxError(f"{what} {src!r} divides by zero")
        return out[0] / out[1]
    return out[0]


def parse_label(value: object) -> Fraction:
    """An exact label from an int, Fraction or string (``"1"``, ``"-1/2"``, ``"0.25"``)."""
    if isinstance(value, bool):
        raise ClaimSyntaxError(f"label must be a number, got {value!r}")
    if isinstance(value, Fraction):
        frac = value
    elif isinstance(value, int):
        frac = Fraction(value)
    elif isinstance(value, sp.Rational):
        frac = Fraction(int(value.p), int(value.q))
    elif isinstance(value, str | float):
        frac = _exact(str(value), "label")
    else:
        raise ClaimSyntaxError(f"label must be an exact number, got {value!r}")
    limit = 10 ** LIMITS["digits"]
    if abs(frac.numerator) > limit or frac.denominator > limit:
        raise ClaimSyntaxError(f"label {value!r} is out of range")
    return frac


# --- safe parsing into a term ----------------------------------------------------------------
def _token(node: ast.AST, text: str) -> str:
    seg = ast.get_source_segment(text, node)
    return seg if seg is not None else type(node).__name__


def _const_value(term: dc.Term) -> Fraction | None:
    """Exact value of a variable-free, radical-free term (exponents); None otherwise."""
    op = term[0]
    if op == "num":
        return term[1]
    if op == "neg":
        v = _const_value(term[1])
        return None if v is None else -v
    if op in ("add", "sub", "mul", "div"):
        a, b = _const_value(term[1]), _const_value(term[2])
        if a is None or b is None:
            return None
        if op == "div":
            if b == 0:
                return None
            return a / b
        return a + b if op == "add" else a - b if op == "sub" else a * b
    return None


def _bits(term: dc.Term) -> int:
    """Upper bound on the bit size of the constants the term builds."""
    op = term[0]
    if op == "num":
        return max(term[1].numerator.bit_length(), term[1].denominator.bit_length(), 1)
    if op == "var":
        return 1
    if op in ("neg", "abs", "sqrt"):
        return _bits(term[1])
    if op == "pow":
        return abs(term[2]) * _bits(term[1])
    a, b = _bits(term[1]), _bits(term[2])
    return max(a, b) + 1 if op in ("add", "sub") else a + b


def _sqrt_depth(term: dc.Term) -> int:
    """How many ``sqrt`` are nested at most (a tower of depth k has degree 2**k)."""
    inner = max((_sqrt_depth(a) for a in term[1:] if isinstance(a, tuple)), default=0)
    return inner + (term[0] == "sqrt")


def _build(node: ast.AST, text: str, depth: int = 0) -> dc.Term:
    if depth > LIMITS["nesting"]:
        raise ClaimSyntaxError(f"expression is nested more than {LIMITS['nesting']} deep")
    if isinstance(node, ast.Expression):
        return _build(node.body, text, depth + 1)
    if isinstance(node, ast.Constant):
        value = node.value
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ClaimSyntaxError(f"not allowed: literal {_token(node, text)!r} (only numbers)")
        return ("num", _exact(_token(node, text), "number"))
    if isinstance(node, ast.Name):
        if node.id in _NAMES:
            return ("var", _NAMES[node.id])
        raise ClaimSyntaxError(f"unknown name {node.id!r}; allowed names: lam, mu, sigma, t")
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.UAdd | ast.USub):
        operand = _build(node.operand, text, depth + 1)
        return operand if isinstance(node.op, ast.UAdd) else ("neg", operand)
    ops = {ast.Add: "add", ast.Sub: "sub", ast.Mult: "mul", ast.Div: "div", ast.Pow: "pow"}
    if isinstance(node, ast.BinOp) and type(node.op) in ops:
        op = ops[type(node.op)]
        left = _build(node.left, text, depth + 1)
        right = _build(node.right, text, depth + 1)
        if op != "pow":
            return (op, left, right)
        exp = _const_value(right)
        if exp is None or exp.denominator not in (1, 2) or abs(exp) > LIMITS["exponent"]:
            raise ClaimSyntaxError(
                f"exponent {_token(node.right, text)!r} must be an integer or half-integer "
                f"number of size <= {LIMITS['exponent']}")
        if exp.denominator == 2:
            return ("pow", ("sqrt", left), exp.numerator)
        return ("pow", left, exp.numerator)
    if isinstance(node, ast.Call):
        func = node.func
        if not isinstance(func, ast.Name) or func.id not in ("sqrt", "Abs", "abs"):
            raise ClaimSyntaxError(
                f"not allowed: call {_token(func, text)!r} (only sqrt(...), Abs(...))")
        if len(node.args) != 1 or node.keywords:
            raise ClaimSyntaxError(f"{func.id}() takes exactly one argument")
        arg = _build(node.args[0], text, depth + 1)
        return ("sqrt", arg) if func.id == "sqrt" else ("abs", arg)
    if isinstance(node, ast.BinOp):
        raise ClaimSyntaxError(
            f"not allowed: operator {type(node.op).__name__} in {_token(node, text)!r}")
    raise ClaimSyntaxError(f"not allowed: {_token(node, text)!r} ({type(node).__name__})")


def parse_term(text: str) -> dc.Term:
    """Safely turn an expression in ``t, mu, sigma, lam`` into a term, within :data:`LIMITS`."""
    if not isinstance(text, str):
        raise ClaimSyntaxError("expression must be a string")
    if len(text) > LIMITS["characters"]:
        raise ClaimSyntaxError(f"expression longer than {LIMITS['characters']} characters")
    src = text.strip().replace("^", "**")
    if not src:
        raise ClaimSyntaxError("empty right-hand side")
    try:
        tree = ast.parse(src, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ClaimSyntaxError(f"cannot parse {text.strip()!r}: {msg}") from None
    try:
        term = _build(tree, src)
    except RecursionError:
        raise ClaimSyntaxError("expression is nested too deeply") from None
    if dc.term_size(term) > LIMITS["nodes"]:
        raise ClaimSyntaxError(f"expression has more than {LIMITS['nodes']} nodes")
    if dc.term_degree(term) > LIMITS["degree"]:
        raise ClaimSyntaxError(f"total degree above {LIMITS['degree']} (after clearing "
                               "denominators); the decision procedure would not finish")
    if _bits(term) > LIMITS["constant_bits"]:
        raise ClaimSyntaxError(f"constants larger than {LIMITS['constant_bits']} bits")
    if _sqrt_depth(term) > LIMITS["sqrt_nesting"]:
        raise ClaimSyntaxError(f"sqrt nested more than {LIMITS['sqrt_nesting']} deep")
    return term


def parse_rhs(text: str) -> sp.Expr:
    """The SymPy expression of a right-hand side (SymPy may simplify it; for display)."""
    return dc.term_to_sympy(parse_term(text), _SYMBOLS)


def _split(text: str) -> tuple[str, str]:
    if not isinstance(text, str):
        raise ClaimSyntaxError("claim must be a string")
    if len(text) > LIMITS["characters"] + 20:
        raise ClaimSyntaxError(f"claim longer than {LIMITS['characters']} characters")
    if text.count("=") != 1 or "==" in text:
        raise ClaimSyntaxError("claim must look like 'LHS = RHS' with exactly one '='")
    lhs_raw, rhs = text.split("=")
    key = "".join(lhs_raw.split()).lower().replace("{", "").replace("}", "")
    if key not in _LHS_ALIASES:
        raise ClaimSyntaxError(
            f"unknown left-hand side {lhs_raw.strip()!r}; use one of {', '.join(LHS_NAMES)}")
    return _LHS_ALIASES[key], rhs


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


def _point_json(dec: dc.Decision) -> dict[str, Any]:
    out: dict[str, Any] = {}
    exact: dict[str, str | None] = {}
    approx: dict[str, str | None] = {}
    order = sorted(dec.point, key=lambda k: (k not in _SYMBOLS, list(_SYMBOLS).index(k)
                                              if k in _SYMBOLS else 0, k))
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
        dc.term_to_sympy(claimed, _SYMBOLS))
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
    counter = _point_json(dec) if verdict == "refuted" and dec.point is not None else None
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


def decide(lhs: str, claimed: sp.Expr, labels: Sequence[object] = (1, -1),
           claimed_text: str | None = None, timeout: float = 10.0) -> CheckResult:
    """Decide ``lhs == claimed`` for a SymPy expression (its definedness is SymPy's form)."""
    return decide_term(lhs, dc.term_from_sympy(claimed), labels, claimed_text, timeout)


def check_claim(text: str, labels: Sequence[object] = (1, -1),
                timeout: float = 10.0) -> CheckResult:
    """Decide ``"LHS = RHS"`` against the derived closed form for ``labels = (y_t, y_o)``.

    Raises :class:`ClaimSyntaxError` (a ``ValueError``) for bad claims, bad labels,
    claims over :data:`LIMITS`, and ``inv_e_t`` with equal labels. ``timeout`` is
    given to the solver (in-process), which may overrun it on hard inputs (z3's
    ``nlsat`` does not always poll its timer); the CLI runs the whole check in a
    child process that it kills at the limit, the hard bound.
    """
    lhs, rhs_text = _split(text)
    claimed = parse_term(rhs_text)
    return decide_term(lhs, claimed, labels, claimed_text=rhs_text.strip(), timeout=timeout)
