"""Tests for derivations.check: safe parsing and deciding user claims."""

from __future__ import annotations

import builtins
import json
from fractions import Fraction

import pytest
import sympy as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from derivations import energy as en
from derivations.check import CheckResult, ClaimSyntaxError, check_claim, parse_rhs

LABELS = [(1, -1), (2, 0), (1, 0), (-1, 1)]
DEN = "((t-mu)**2 + 2*sigma**2 + 2*lam)"


def rewritten_forms(yt: int, yo: int) -> list[str]:
    """Equal-but-rewritten forms of the closed form for labels (yt, yo)."""
    dy, sy = f"({yt - yo})", f"({yt + yo})"
    dy2 = (yt - yo) ** 2
    return [
        f"w_t = {dy}*(t-mu)/{DEN}",
        f"w_t = ({dy}/2)*(t-mu)/((t-mu)**2/2 + sigma**2 + lam)",
        f"w_t = -{dy}*(mu-t)/(t**2 - 2*t*mu + mu**2 + 2*(sigma^2 + lam))",
        f"b_t = {sy}/2 - {dy}*(t+mu)*(t-mu)/(2*{DEN})",
        f"e_t = {dy}**2*(sigma**2+lam)/{DEN}",
        f"e_t = {dy2}*(sigma**2+lam)/{DEN}",
        f"inv_e_t = (t-mu)**2/({dy2}*(sigma**2+lam)) + 2/{dy2}",
        f"inv_e_t = ((t-mu)^2 + 2*sigma^2 + 2*lam)/({dy}**2*(sigma^2 + lam))",
    ]


def wrong_forms(yt: int, yo: int) -> list[str]:
    dy, sy = f"({yt - yo})", f"({yt + yo})"
    dy2 = (yt - yo) ** 2
    return [
        f"w_t = -{dy}*(t-mu)/{DEN}",
        f"w_t = {dy}*(t-mu)/((t-mu)**2 + sigma**2 + 2*lam)",
        f"b_t = {sy}/2 - {dy}*(t-mu)*(t-mu)/(2*{DEN})",
        f"e_t = {dy}**2*(mu**2+lam)/{DEN}",
        f"inv_e_t = (t-mu)**2/({dy2}*(sigma**2+lam)) + 1/{dy2}",
        "inv_e_t = (t-mu)**2/(4*(sigma**2+lam)) + 0.51",
    ]


@pytest.mark.parametrize("labels", LABELS)
def test_rewritten_forms_hold(labels):
    for text in rewritten_forms(*labels):
        res = check_claim(text, labels)
        assert res.holds, (labels, text, res)
        assert res.counterexample is None
        assert res.method == "symbolic"


def test_paper_rewrites_from_the_brief_hold():
    for text in [
        "w_t = 2*(t-mu)/((t-mu)**2 + 2*sigma**2 + 2*lam)",
        "w_t = (t-mu)/((t-mu)**2/2 + sigma**2 + lam)",
        "b_t = -(t+mu)*(t-mu)/((t-mu)**2+2*sigma**2+2*lam)",
        "inv_e_t = (t-mu)**2/(4*(sigma**2+lam)) + 1/2",
        "inv_e_t = (t-mu)**2/(4*(sigma**2+lam)) + 0.5",
        "1/e_t* = (t - μ)^2/(4*(σ^2 + λ)) + 1/2",
        "e_t* = 4*(sigma**2 + lam)/((t-mu)**2 + 2*sigma**2 + 2*lam)",
    ]:
        assert check_claim(text).holds, text


def _value(text_rhs: str, ce: dict) -> float:
    pt = {en.t: ce["t"], en.mu: ce["mu"], en.sigma: ce["sigma"], en.lam: ce["lam"]}
    return float(parse_rhs(text_rhs).subs(pt))


@pytest.mark.parametrize("labels", LABELS)
def test_wrong_forms_fail_with_real_counterexample(labels):
    cf = en.closed_form(labels).as_dict()
    for text in wrong_forms(*labels):
        res = check_claim(text, labels)
        assert not res.holds, (labels, text)
        ce = res.counterexample
        assert ce is not None and ce["sigma"] > 0 and ce["lam"] > 0
        lhs, rhs = text.split("=")
        claimed = _value(rhs, ce)
        derived = float(
            cf[res.lhs].subs(
                {en.t: ce["t"], en.mu: ce["mu"], en.sigma: ce["sigma"], en.lam: ce["lam"]}
            )
        )
        assert ce["claimed"] == pytest.approx(claimed)
        assert ce["derived"] == pytest.approx(derived)
        assert abs(claimed - derived) > 1e-9


def test_same_text_depends_on_labels():
    text = "w_t = 2*(t-mu)/((t-mu)**2 + 2*sigma**2 + 2*lam)"
    assert check_claim(text, (1, -1)).holds
    assert check_claim(text, (2, 0)).holds
    assert not check_claim(text, (1, 0)).holds
    assert not check_claim(text, (-1, 1)).holds
    assert check_claim(text, (Fraction(1, 2), Fraction(-3, 2))).holds


def test_exact_literals():
    assert parse_rhs("1/2") == sp.Rational(1, 2)
    assert parse_rhs("0.5") == sp.Rational(1, 2)
    assert parse_rhs("0.1") == sp.Rational(1, 10)
    assert parse_rhs("2^3") == 8
    assert parse_rhs("-t + +mu") == -en.t + en.mu
    assert parse_rhs("sqrt(sigma**2)") == en.sigma


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
    "w_t = t/0",
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


@pytest.mark.parametrize("labels", [(1, 1), (2, 2.0), (1,), (1, 2, 3), ("a", 1), (True, 0)])
def test_bad_labels(labels):
    with pytest.raises(ValueError):
        check_claim("w_t = t", labels)


def test_result_to_json():
    res = check_claim("w_t = -2*(t-mu)/((t-mu)**2 + 2*sigma**2 + 2*lam)")
    assert isinstance(res, CheckResult)
    data = res.to_json()
    assert {"holds", "lhs", "claimed", "derived", "labels", "counterexample", "method"} <= set(data)
    assert data["holds"] is False and data["lhs"] == "w_t"
    assert {"t", "mu", "sigma", "lam", "claimed", "derived"} <= set(data["counterexample"])
    json.dumps(data)
    ok = check_claim("w_t = 2*(t-mu)/((t-mu)**2 + 2*sigma**2 + 2*lam)").to_json()
    assert ok["holds"] is True and ok["counterexample"] is None


def test_fallback_when_cancel_is_inconclusive():
    # sqrt((sigma + lam)**2) == sigma + lam, which cancel() alone does not see
    text = (
        "e_t = 4*sqrt(sigma**2 + 2*sigma*lam + lam**2)*(sigma**2 + lam)"
        "/((sigma + lam)*((t-mu)**2 + 2*sigma**2 + 2*lam))"
    )
    res = check_claim(text)
    assert res.holds and res.note.startswith(("simplify", "not proved"))
    wrong = text.replace("4*sqrt", "5*sqrt")
    assert not check_claim(wrong).holds


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


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(ALPHABET), max_size=25).map("".join))
def test_parser_fuzz_only_builds_allowed_expressions(text):
    try:
        expr = parse_rhs(text)
    except ClaimSyntaxError:
        return
    assert isinstance(expr, sp.Expr)
    assert expr.free_symbols <= {en.t, en.mu, en.sigma, en.lam}
