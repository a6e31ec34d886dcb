"""Check a user's claim ``"LHS = RHS"`` about SimAM's closed form (``simam check``).

``LHS`` is one of ``w_t``, ``b_t``, ``e_t`` (the minimum energy; ``e_t*`` too) or
``inv_e_t`` (``1/e_t*``; ``1/e_t`` too). ``RHS`` is an expression in ``t``, ``mu``,
``sigma``, ``lam`` (``sigma`` is the standard deviation of the M-1 other neurons;
Greek ``μ σ λ`` are accepted) built from numbers, ``+ - * / **``, unary signs,
parentheses and the functions ``sqrt`` and ``Abs``/``abs``.

Safety: the text is never given to ``eval`` or ``sympify``. It is parsed with
:mod:`ast` and the SymPy expression is built node by node from an allow-list;
anything else raises :class:`ClaimSyntaxError`. ``^`` is accepted as power: it is
rewritten to ``**`` before parsing (XOR means nothing here). Number literals are
made exact from their source text (``0.5`` -> ``1/2``), so ``1/2`` is ``Rational(1, 2)``.

Deciding: ``cancel(claimed - derived) == 0`` proves the claim. Otherwise exact
rational points (``sigma > 0``, ``lam > 0``) are tried until one shows a nonzero
difference, which is returned as the counterexample. If neither happens
(expressions with ``sqrt``/``Abs`` that ``cancel`` cannot decide), ``simplify``
is tried and, failing that, agreement at every sampled point decides ``holds``
(``method`` is then ``"numeric"``).
"""

from __future__ import annotations

import ast
import math
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sympy as sp

from . import energy as en

__all__ = [
    "CheckResult",
    "ClaimSyntaxError",
    "LHS_NAMES",
    "check_claim",
    "decide",
    "find_counterexample",
    "parse_rhs",
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
_NAMES: dict[str, sp.Expr] = {
    "t": en.t,
    "mu": en.mu,
    "μ": en.mu,
    "sigma": en.sigma,
    "σ": en.sigma,
    "lam": en.lam,
    "λ": en.lam,
}
_FUNCS = {"sqrt": sp.sqrt, "Abs": sp.Abs, "abs": sp.Abs}
_MAX_LEN = 2000
_MAX_DEPTH = 60
_MAX_EXPONENT = 64
_MAX_BITS = 4096
_MAX_DECIMAL_EXP = 300
_N_POINTS = 40


class ClaimSyntaxError(ValueError):
    """The claim is not of the form ``LHS = RHS`` or uses something not allowed."""


@dataclass(frozen=True)
class CheckResult:
    """Outcome of :func:`check_claim`.

    ``counterexample`` (only when ``holds`` is False) maps ``t, mu, sigma, lam``
    to floats and has ``claimed`` and ``derived`` values at that point.
    ``method`` is ``"symbolic"`` (proved/disproved exactly) or ``"numeric"``.
    """

    holds: bool
    lhs: str
    claimed: str
    derived: str
    labels: tuple[str, str]
    counterexample: dict[str, float] | None = None
    method: str = "symbolic"
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict: holds, lhs, claimed, derived, labels, counterexample, method, note."""
        return {
            "holds": self.holds,
            "lhs": self.lhs,
            "claimed": self.claimed,
            "derived": self.derived,
            "labels": list(self.labels),
            "counterexample": None if self.counterexample is None else dict(self.counterexample),
            "method": self.method,
            "note": self.note,
        }


# --- safe parsing ---------------------------------------------------------------------
def _token(node: ast.AST, text: str) -> str:
    seg = ast.get_source_segment(text, node)
    return seg if seg is not None else type(node).__name__


def _number(node: ast.Constant, text: str) -> sp.Expr:
    value = node.value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ClaimSyntaxError(f"not allowed: literal {_token(node, text)!r} (only numbers)")
    if isinstance(value, int):
        return sp.Integer(value)
    src = ast.get_source_segment(text, node) or repr(value)
    exponent = re.search(r"[eE]([+-]?[0-9_]+)", src)
    if not math.isfinite(value) or (exponent and abs(int(exponent.group(1))) > _MAX_DECIMAL_EXP):
        raise ClaimSyntaxError(f"number {src!r} is out of range")
    try:
        return sp.Rational(src.replace("_", ""))  # exact decimal: 0.1 -> 1/10
    except (TypeError, ValueError):
        return sp.Rational(repr(value))


def _build(node: ast.AST, text: str, depth: int = 0) -> sp.Expr:
    if depth > _MAX_DEPTH:
        raise ClaimSyntaxError("expression is nested too deeply")
    if isinstance(node, ast.Expression):
        return _build(node.body, text, depth + 1)
    if isinstance(node, ast.Constant):
        return _number(node, text)
    if isinstance(node, ast.Name):
        if node.id in _NAMES:
            return _NAMES[node.id]
        allowed = ", ".join(sorted({"t", "mu", "sigma", "lam"}))
        raise ClaimSyntaxError(f"unknown name {node.id!r}; allowed names: {allowed}")
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.UAdd | ast.USub):
        operand = _build(node.operand, text, depth + 1)
        return operand if isinstance(node.op, ast.UAdd) else -operand
    if isinstance(node, ast.BinOp) and isinstance(
        node.op, ast.Add | ast.Sub | ast.Mult | ast.Div | ast.Pow
    ):
        left = _build(node.left, text, depth + 1)
        right = _build(node.right, text, depth + 1)
        if isinstance(node.op, ast.Add):
            return left + right
        if isinstance(node.op, ast.Sub):
            return left - right
        if isinstance(node.op, ast.Mult):
            return left * right
        if isinstance(node.op, ast.Div):
            if right == 0:
                raise ClaimSyntaxError(f"division by zero in {_token(node, text)!r}")
            return left / right
        if not right.is_number or abs(right) > _MAX_EXPONENT:
            raise ClaimSyntaxError(
                f"exponent {_token(node.right, text)!r} must be a number of size <= {_MAX_EXPONENT}"
            )
        if left == 0 and right.is_negative:
            raise ClaimSyntaxError(f"division by zero in {_token(node, text)!r}")
        if left.is_Rational:
            bits = max(int(left.p).bit_length(), int(left.q).bit_length())
            if bits * abs(right) > _MAX_BITS:
                raise ClaimSyntaxError(f"number {_token(node, text)!r} is too large")
        return left**right
    if isinstance(node, ast.Call):
        func = node.func
        if not isinstance(func, ast.Name) or func.id not in _FUNCS:
            raise ClaimSyntaxError(
                f"not allowed: call {_token(func, text)!r} (only sqrt(...), Abs(...))"
            )
        if len(node.args) != 1 or node.keywords:
            raise ClaimSyntaxError(f"{func.id}() takes exactly one argument")
        return _FUNCS[func.id](_build(node.args[0], text, depth + 1))
    if isinstance(node, ast.BinOp):
        raise ClaimSyntaxError(
            f"not allowed: operator {type(node.op).__name__} in {_token(node, text)!r}"
        )
    raise ClaimSyntaxError(f"not allowed: {_token(node, text)!r} ({type(node).__name__})")


def parse_rhs(text: str) -> sp.Expr:
    """Safely turn an expression in ``t, mu, sigma, lam`` into SymPy (no ``eval``)."""
    if not isinstance(text, str):
        raise ClaimSyntaxError("expression must be a string")
    if len(text) > _MAX_LEN:
        raise ClaimSyntaxError(f"expression longer than {_MAX_LEN} characters")
    src = text.strip().replace("^", "**")
    if not src:
        raise ClaimSyntaxError("empty right-hand side")
    try:
        tree = ast.parse(src, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        raise ClaimSyntaxError(f"cannot parse {text.strip()!r}: {exc}") from None
    return _build(tree, src)


def _split(text: str) -> tuple[str, str]:
    if not isinstance(text, str):
        raise ClaimSyntaxError("claim must be a string")
    if text.count("=") != 1 or "==" in text:
        raise ClaimSyntaxError("claim must look like 'LHS = RHS' with exactly one '='")
    lhs_raw, rhs = text.split("=")
    key = "".join(lhs_raw.split()).lower().replace("{", "").replace("}", "")
    if key not in _LHS_ALIASES:
        raise ClaimSyntaxError(
            f"unknown left-hand side {lhs_raw.strip()!r}; use one of {', '.join(LHS_NAMES)}"
        )
    return _LHS_ALIASES[key], rhs


# --- deciding ----------------------------------------------------------------------------
_FIXED_POINTS: tuple[tuple[int | str, ...], ...] = (
    (1, 0, 1, "1/10"),
    (2, "1/2", "3/2", "1/5"),
    (-1, 1, "1/3", 2),
    (3, -2, 2, "1/7"),
)
_SYMS = (en.t, en.mu, en.sigma, en.lam)


def _points(seed: int = 0) -> list[dict[sp.Symbol, sp.Rational]]:
    pts = [dict(zip(_SYMS, (sp.Rational(v) for v in p), strict=True)) for p in _FIXED_POINTS]
    rng = random.Random(seed)
    while len(pts) < _N_POINTS:
        t_v = sp.Rational(rng.randint(-40, 40), rng.randint(1, 9))
        mu_v = sp.Rational(rng.randint(-40, 40), rng.randint(1, 9))
        sig_v = sp.Rational(rng.randint(1, 40), rng.randint(1, 9))
        lam_v = sp.Rational(rng.randint(1, 40), rng.randint(1, 20))
        pts.append({en.t: t_v, en.mu: mu_v, en.sigma: sig_v, en.lam: lam_v})
    return pts


def _value(expr: sp.Expr, point: dict) -> sp.Expr | None:
    """Exact value at ``point`` (``None`` when undefined, e.g. a zero denominator)."""
    try:
        val = expr.xreplace(point)
    except (ZeroDivisionError, TypeError, ValueError):
        return None
    if not val.is_number or val.has(sp.zoo, sp.nan, sp.oo, -sp.oo) or val.is_real is False:
        return None
    return val


def find_counterexample(claimed: sp.Expr, derived: sp.Expr, seed: int = 0) -> dict | None:
    """First sampled point where ``claimed != derived``, as floats; ``None`` if none found.

    Points where either side is undefined or not real are skipped. ``exact_point``
    holds the same point as exact rationals (strings).
    """
    for point in _points(seed):
        c_val, d_val = _value(claimed, point), _value(derived, point)
        if c_val is None or d_val is None:
            continue
        gap = sp.N(c_val - d_val, 50)
        if abs(gap) > sp.Float("1e-30"):
            out = {str(s): float(point[s]) for s in _SYMS}
            out["claimed"] = float(sp.N(c_val, 20))
            out["derived"] = float(sp.N(d_val, 20))
            out["exact_point"] = {str(s): str(point[s]) for s in _SYMS}
            return out
    return None


def _label_strs(labels: tuple[sp.Expr, sp.Expr]) -> tuple[str, str]:
    return str(labels[0]), str(labels[1])


def decide(
    lhs: str,
    claimed: sp.Expr,
    labels: Sequence[object] = (1, -1),
    claimed_text: str | None = None,
) -> CheckResult:
    """Decide ``lhs == claimed`` (a SymPy expression) against the derived closed form.

    ``lhs`` is one of :data:`LHS_NAMES`. Used by :func:`check_claim` and by the
    claim catalogue, so both decide the same way.
    """
    if lhs not in LHS_NAMES:
        raise ValueError(f"lhs must be one of {LHS_NAMES}, got {lhs!r}")
    if isinstance(labels, str | bytes) or len(labels) != 2:
        raise ValueError(f"labels must be a pair (y_t, y_o), got {labels!r}")
    cf = en.closed_form(tuple(en.to_label(v) for v in labels))
    derived = cf.as_dict()[lhs]
    base = {
        "lhs": lhs,
        "claimed": claimed_text if claimed_text is not None else sp.sstr(claimed),
        "derived": en.pretty_str(derived),
        "labels": _label_strs(cf.labels),
    }
    diff = sp.cancel(sp.together(claimed - derived))
    if diff == 0:
        return CheckResult(holds=True, note="cancel(claimed - derived) == 0", **base)
    counter = find_counterexample(claimed, derived)
    if counter is not None:
        return CheckResult(
            holds=False,
            counterexample=counter,
            note="claimed and derived differ at the counterexample point",
            **base,
        )
    if sp.simplify(diff) == 0:
        return CheckResult(holds=True, note="simplify(claimed - derived) == 0", **base)
    return CheckResult(
        holds=True,
        method="numeric",
        note=f"not proved symbolically; equal at all {_N_POINTS} sampled exact points",
        **base,
    )


def check_claim(text: str, labels: Sequence[object] = (1, -1)) -> CheckResult:
    """Decide ``"LHS = RHS"`` against the derived closed form for ``labels = (y_t, y_o)``.

    Raises :class:`ClaimSyntaxError` for bad claims and ``ValueError`` for bad labels.
    """
    lhs, rhs_text = _split(text)
    claimed = parse_rhs(rhs_text)
    return decide(lhs, claimed, labels, claimed_text=rhs_text.strip())
