"""Tests for derivations.parsing: safe parsing of a claim, exact literals, limits.

Nothing in a claim's text is ever evaluated: the parser builds terms from an
allow-list, and every rejection is a one-line :class:`ClaimSyntaxError`.
"""

from __future__ import annotations

import builtins
from fractions import Fraction

import pytest
import sympy as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from derivations import energy as en
from derivations import parsing as ps
from derivations.check import check_claim
from derivations.parsing import LIMITS, ClaimSyntaxError, parse_rhs, parse_term


def test_exact_literals():
    assert parse_rhs("1/2") == sp.Rational(1, 2)
    assert parse_rhs("0.5") == sp.Rational(1, 2)
    assert parse_rhs("0.1") == sp.Rational(1, 10)
    assert parse_rhs("1e-40") == sp.Rational(1, 10**40)
    assert parse_rhs("2^3") == 8
    assert parse_rhs("-t + +mu") == -en.t + en.mu
    assert parse_rhs("sqrt(sigma**2)") == en.sigma
    assert parse_rhs("t**(3/2)") == en.t ** sp.Rational(3, 2)

def test_limits_are_one_line_errors():
    for text, word in [
        ("(((t+1)**64)**64)**64", "degree"),
        ("t**65", "exponent"),
        ("*".join(["(" + "+".join(["t"] * 40) + ")"] * 11), "nodes"),
        ("1" * (LIMITS["digits"] + 1), "out of range"),
    ]:
        with pytest.raises(ClaimSyntaxError, match=word) as info:
            parse_term(text)
        assert "\n" not in str(info.value)

DANGEROUS = [
    "w_t = __import__('os').system('touch /tmp/simam_pwned')",
    "w_t = t.__class__",
    "w_t = foo",
    "w_t = lambda: 1",
    "w_t = 'a'",
    'w_t = "a"',
    "w_t = t[0]",
    "w_t = (lambda: 1)()",
    "w_t = open('/tmp/simam_pwned', 'w')",
    "w_t = eval('1')",
    "w_t = sqrt(t, mu)",
    "w_t = sqrt(x=t)",
    "w_t = [t]",
    "w_t = t if mu else lam",
    "w_t = t & mu",
    "w_t = t < mu",
    "w_t = True",
    "w_t = 1j",
    "w_t = None",
    "w_t = 2**10**10",
    "w_t = ((9**64)**64)**64",
    "w_t = (t := 1)",
    "w_t = f'{t}'",
    "w_t = *t",
    "w_t = t; import os",
    "w_t = ",
    "w_t = t = mu",
    "w_t == t",
    "x_t = t",
    "t",
    "w_t = " + "-" * 200 + "t",
    "w_t = t**(1/3)",
    "w_t = t**mu",
    "w_t = " + "t+" * 2000 + "t",
]

@pytest.mark.parametrize("text", DANGEROUS)
def test_rejects_dangerous_or_unknown_input(text, monkeypatch, tmp_path):
    def forbidden(*args, **kwargs):
        raise AssertionError("eval/exec/sympify must not be called")

    monkeypatch.setattr(builtins, "eval", forbidden)
    monkeypatch.setattr(builtins, "exec", forbidden)
    monkeypatch.setattr(sp, "sympify", forbidden)
    monkeypatch.setattr(sp, "parse_expr", forbidden)
    with pytest.raises(ClaimSyntaxError):
        check_claim(text)

def test_error_message_names_the_token():
    with pytest.raises(ClaimSyntaxError, match="foo"):
        check_claim("w_t = 2*foo")
    with pytest.raises(ClaimSyntaxError, match="__class__"):
        check_claim("w_t = t.__class__")
    with pytest.raises(ClaimSyntaxError, match="__import__"):
        check_claim("w_t = __import__('os')")
    assert issubclass(ClaimSyntaxError, ValueError)

def test_nothing_is_executed(tmp_path):
    target = tmp_path / "pwned"
    with pytest.raises(ClaimSyntaxError):
        check_claim(f"w_t = open({str(target)!r}, 'w')")
    with pytest.raises(ClaimSyntaxError):
        check_claim(f"w_t = __import__('pathlib').Path({str(target)!r}).touch()")
    assert not target.exists()

@pytest.mark.parametrize(
    "labels", [(1,), (1, 2, 3), ("a", 1), (True, 0), ("1/0", 1), ("1e3000", -1), ("1e-99", 0)]
)
def test_bad_labels(labels):
    with pytest.raises(ValueError):
        check_claim("w_t = t", labels)

@pytest.mark.parametrize("text", ["1e400", "1e-99999999", "1e99999999", "2.5E+301"])
def test_rejects_out_of_range_literals(text):
    with pytest.raises(ClaimSyntaxError, match="out of range"):
        parse_rhs(text)

ALPHABET = list("tmusiglaebd0123456789.+-*/^()_ ,'\"[]:=") + [
    "t",
    "mu",
    "sigma",
    "lam",
    "sqrt(",
    "Abs(",
    "**",
    "__import__",
    "lambda",
    "os",
    ".",
]

@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(ALPHABET), max_size=25).map("".join))
def test_parser_fuzz_only_builds_allowed_expressions(text):
    try:
        expr = parse_rhs(text)
    except ClaimSyntaxError:
        return
    assert isinstance(expr, sp.Expr)
    assert expr.free_symbols <= {en.t, en.mu, en.sigma, en.lam}

def test_sqrt_towers_are_bounded():
    # z3's nlsat ignored its timer (and interrupts) on a tower of 10 sqrt: in-process
    # check_claim(timeout=5) ran for minutes; deeper than LIMITS['sqrt_nesting'] is exit 2
    deep = "sqrt(" * (LIMITS["sqrt_nesting"] + 1) + "t**2 + 3" + ")" * (LIMITS["sqrt_nesting"] + 1)
    with pytest.raises(ClaimSyntaxError, match="sqrt nested"):
        parse_term(deep)
    with pytest.raises(ClaimSyntaxError, match="sqrt nested"):
        parse_term("(" * 7 + "t" + ")**(1/2)" * 7)  # half-integer powers are sqrt too
    assert parse_term("sqrt(" * 6 + "t" + ")" * 6)

@pytest.mark.parametrize("label", ["1e" + "9" * 5000, "1e-" + "9" * 5000])
def test_label_with_a_huge_exponent_is_a_claim_error(label):
    # int() of a 5000-digit exponent raised Python's own ValueError (not a ClaimSyntaxError)
    with pytest.raises(ClaimSyntaxError, match="out of range"):
        check_claim("w_t = t", (label, -1))


@pytest.mark.parametrize(
    ("text", "lhs"),
    [("w = t", "w_t"), ("b_{t} = t", "b_t"), ("e_t* = t", "e_t"), ("1/e_t = t", "inv_e_t"),
     ("E_inv = t", "inv_e_t")],
)
def test_split_claim_normalises_the_left_side(text, lhs):
    assert ps.split_claim(text) == (lhs, " t")


@pytest.mark.parametrize(
    ("value", "frac"), [(2, Fraction(2)), ("-1/2", Fraction(-1, 2)), ("0.25", Fraction(1, 4)),
                        (Fraction(3, 7), Fraction(3, 7)), (sp.Rational(5, 3), Fraction(5, 3))]
)
def test_parse_label_is_exact(value, frac):
    assert ps.parse_label(value) == frac


def test_check_reexports_the_parser():
    from derivations import check as ck

    for name in ("LHS_NAMES", "LIMITS", "ClaimSyntaxError", "parse_label", "parse_rhs",
                 "parse_term"):
        assert getattr(ck, name) is getattr(ps, name), name
    assert ps.SYMBOLS == {"t": en.t, "mu": en.mu, "sigma": en.sigma, "lam": en.lam}
