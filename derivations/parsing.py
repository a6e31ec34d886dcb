"""Safe parsing of a claim ``"LHS = RHS"`` into a :data:`~derivations.terms.Term`.

``LHS`` is one of ``w_t``, ``b_t``, ``e_t`` (the minimum energy; ``e_t*`` too) or
``inv_e_t`` (``1/e_t*``; ``1/e_t`` too). ``RHS`` is an expression in ``t``, ``mu``,
``sigma``, ``lam`` (Greek ``μ σ λ`` are accepted) built from numbers, ``+ - * / **``
(integer or half-integer exponents), unary signs, parentheses and ``sqrt``,
``Abs``/``abs``; ``^`` means power.

Safety: the text is never given to ``eval`` or ``sympify``. It is parsed with
:mod:`ast` and turned node by node into a term from an allow-list (so definedness is
read from what was written: SymPy would turn ``B/B`` into ``1``); anything else
raises :class:`ClaimSyntaxError`. Number literals and labels are exact from their
source text (``0.1`` -> ``1/10``). Bounds on a claim: :data:`LIMITS`. Deciding the
parsed claim is :mod:`derivations.check`.
"""

from __future__ import annotations

import ast
import re
from fractions import Fraction

import sympy as sp

from . import energy as en
from .terms import Term, sqrt_depth, term_bits, term_constant, term_degree, term_size, term_to_sympy

__all__ = [
    "LHS_NAMES",
    "LIMITS",
    "SYMBOLS",
    "ClaimSyntaxError",
    "parse_label",
    "parse_rhs",
    "parse_term",
    "split_claim",
]

LHS_NAMES = ("w_t", "b_t", "e_t", "inv_e_t")
"""The left-hand sides a claim may have (aliases such as ``e_t*`` and ``1/e_t`` map to them)."""
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
SYMBOLS: dict[str, sp.Symbol] = {"t": en.t, "mu": en.mu, "sigma": en.sigma, "lam": en.lam}
"""The SymPy symbol of each variable name a claim may use."""

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
    """The source text of ``node`` (its node type where the text is not available)."""
    seg = ast.get_source_segment(text, node)
    return seg if seg is not None else type(node).__name__


def _build(node: ast.AST, text: str, depth: int = 0) -> Term:
    """The term of an allowed syntax-tree node; :class:`ClaimSyntaxError` for anything else."""
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
        exp = term_constant(right)
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


def parse_term(text: str) -> Term:
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
    if term_size(term) > LIMITS["nodes"]:
        raise ClaimSyntaxError(f"expression has more than {LIMITS['nodes']} nodes")
    if term_degree(term) > LIMITS["degree"]:
        raise ClaimSyntaxError(f"total degree above {LIMITS['degree']} (after clearing "
                               "denominators); the decision procedure would not finish")
    if term_bits(term) > LIMITS["constant_bits"]:
        raise ClaimSyntaxError(f"constants larger than {LIMITS['constant_bits']} bits")
    if sqrt_depth(term) > LIMITS["sqrt_nesting"]:
        raise ClaimSyntaxError(f"sqrt nested more than {LIMITS['sqrt_nesting']} deep")
    return term


def parse_rhs(text: str) -> sp.Expr:
    """The SymPy expression of a right-hand side (SymPy may simplify it; for display)."""
    return term_to_sympy(parse_term(text), SYMBOLS)


def split_claim(text: str) -> tuple[str, str]:
    """``(lhs, rhs_text)`` of ``"LHS = RHS"``; ``lhs`` is one of :data:`LHS_NAMES`."""
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
