"""Tests for derivations.terms: the term language, its measures and its SymPy form."""

from __future__ import annotations

from fractions import Fraction

import pytest
import sympy as sp

from derivations import terms as tm
from derivations.parsing import SYMBOLS, parse_term


def test_binary_ops_table():
    assert set(tm.BINARY_OPS) == {"add", "sub", "mul", "div"}
    assert [tm.BINARY_OPS[op](Fraction(3), Fraction(2)) for op in ("add", "sub", "mul", "div")] \
        == [5, 1, 6, Fraction(3, 2)]


@pytest.mark.parametrize(
    ("text", "value"),
    [("3/2", Fraction(3, 2)), ("-(1 - 1/4)*2", Fraction(-3, 2)), ("1/(2 - 2)", None),
     ("t + 1", None), ("sqrt(4)", None)],
)
def test_term_constant(text, value):
    assert tm.term_constant(parse_term(text)) == value


def test_term_bits_and_sqrt_depth():
    assert tm.term_bits(parse_term("2**10")) == 20  # 2 needs 2 bits, ten times
    assert tm.term_bits(parse_term("t")) == 1
    assert tm.term_bits(parse_term("3*5")) == 2 + 3
    assert tm.sqrt_depth(parse_term("sqrt(t + sqrt(mu)) + sqrt(lam)")) == 2
    assert tm.sqrt_depth(parse_term("t")) == 0


@pytest.mark.parametrize("text", ["(t - mu)**2/(4*(sigma**2 + lam)) + 1/2", "Abs(t)*sqrt(lam)",
                                  "-t - 3*mu"])
def test_sympy_round_trip(text):
    expr = tm.term_to_sympy(parse_term(text), SYMBOLS)
    assert tm.term_to_sympy(tm.term_from_sympy(expr), SYMBOLS) == expr
    t, mu, sigma, lam = (SYMBOLS[k] for k in ("t", "mu", "sigma", "lam"))
    assert sp.simplify(expr - sp.sympify(text, locals={"t": t, "mu": mu, "sigma": sigma,
                                                       "lam": lam})) == 0
