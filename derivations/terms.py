"""The small term language of :mod:`derivations.decide`: tuples that keep definedness.

SymPy simplifies while building (``B/B -> 1``, ``0*sqrt(-1) -> 0``), so a claim is
first put into a :data:`Term` built from its syntax tree (:mod:`derivations.parsing`)
or from a SymPy expression, and every later step reads definedness from the term.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from fractions import Fraction
from typing import Any

import sympy as sp

__all__ = ["BINARY_OPS", "CLAIM_DOMAIN", "Term", "TermError", "sqrt_depth", "term_bits",
           "term_constant", "term_degree", "term_from_sympy", "term_size", "term_to_sympy"]

Term = tuple
"""``("num", Fraction) | ("var", name) | ("add"|"sub"|"mul"|"div", a, b) | ("neg"|"sqrt"|"abs", a)
| ("pow", a, int)``."""

CLAIM_DOMAIN: dict[str, str] = {"t": "real", "mu": "real", "sigma": "nonneg", "lam": "pos"}
"""Domain of the closed form's variables: ``real``, ``nonneg`` (>= 0) or ``pos`` (> 0)."""


BINARY_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "add": operator.add,
    "sub": operator.sub,
    "mul": operator.mul,
    "div": operator.truediv,
}
"""The binary term operators and what each computes (one table for every evaluator)."""


class TermError(ValueError):
    """The expression uses something the decision procedure does not cover."""


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
    # twin kept on purpose: ``evaluation._ev`` walks terms the same way but checks
    # definedness at each node (numbers only); this one builds symbols, unchecked
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
    return BINARY_OPS[op](term_to_sympy(term[1], symbols), term_to_sympy(term[2], symbols))


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


def term_constant(term: Term) -> Fraction | None:
    """Exact value of a variable-free, radical-free term of ``+ - * /``; None otherwise.

    None too where a division by zero occurs (used to read exponents such as ``3/2``).
    """
    op = term[0]
    if op == "num":
        return term[1]
    if op == "neg":
        v = term_constant(term[1])
        return None if v is None else -v
    if op in BINARY_OPS:
        a, b = term_constant(term[1]), term_constant(term[2])
        if a is None or b is None or (op == "div" and b == 0):
            return None
        return BINARY_OPS[op](a, b)
    return None


def term_bits(term: Term) -> int:
    """Upper bound on the bit size of the constants the term builds."""
    op = term[0]
    if op == "num":
        return max(term[1].numerator.bit_length(), term[1].denominator.bit_length(), 1)
    if op == "var":
        return 1
    if op in ("neg", "abs", "sqrt"):
        return term_bits(term[1])
    if op == "pow":
        return abs(term[2]) * term_bits(term[1])
    a, b = term_bits(term[1]), term_bits(term[2])
    return max(a, b) + 1 if op in ("add", "sub") else a + b


def sqrt_depth(term: Term) -> int:
    """How many ``sqrt`` are nested at most (a tower of depth k has degree 2**k)."""
    inner = max((sqrt_depth(a) for a in term[1:] if isinstance(a, tuple)), default=0)
    return inner + (term[0] == "sqrt")


def _has(term: Term, ops: tuple[str, ...]) -> bool:
    """Whether any node of ``term`` is one of the operators ``ops``."""
    if term[0] in ops:
        return True
    return any(_has(a, ops) for a in term[1:] if isinstance(a, tuple))


def _vars(term: Term, out: set[str] | None = None) -> set[str]:
    """The variable names in ``term`` (added to ``out`` when given)."""
    out = set() if out is None else out
    if term[0] == "var":
        out.add(term[1])
    for a in term[1:]:
        if isinstance(a, tuple):
            _vars(a, out)
    return out
