"""Tests for derivations.check: sound verdicts on a corpus of claims (z3 and SymPy agree).

Parsing and its safety are tested in tests/test_parsing.py, the decision's own guards
in tests/test_decide.py.

The corpus (tests/data/check_corpus.json) lists claims with their expected verdict
(proved, refuted, or error = exit 2); every refutation's point is re-checked here
with plain SymPy, independently of the engine's own exact re-check.
"""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import pytest
import sympy as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from derivations import decide as dc
from derivations import energy as en
from derivations.check import (
    CheckResult,
    ClaimSyntaxError,
    check_claim,
    derived_form,
    parse_rhs,
    parse_term,
)

CORPUS = json.loads((Path(__file__).parent / "data" / "check_corpus.json").read_text("utf-8"))
DEN = "((t-mu)**2 + 2*sigma**2 + 2*lam)"
W = f"2*(t-mu)/{DEN}"
SYMS = {"t": en.t, "mu": en.mu, "sigma": en.sigma, "lam": en.lam}


def _labels(row: dict) -> tuple[str, str]:
    return tuple(row.get("labels", ("1", "-1")))


def _id(row: dict) -> str:
    return f"{row['expect']}:{row['why']}"


def test_corpus_is_big_and_balanced():
    kinds = [r["expect"] for r in CORPUS]
    assert len(CORPUS) >= 80
    assert kinds.count("proved") >= 30 and kinds.count("refuted") >= 30
    assert kinds.count("error") >= 8


def _independent_values(row: dict, res: CheckResult) -> tuple[sp.Expr | None, sp.Expr]:
    """Claimed and derived values at the counterexample, by plain SymPy substitution."""
    ex = res.counterexample["exact"]
    point = {SYMS[k]: sp.sympify(ex[k]) for k in SYMS}  # the engine's own output, trusted text
    derived = derived_form(res.lhs, _labels(row))[0].xreplace(point)
    claimed = parse_rhs(row["claim"].split("=", 1)[1]).xreplace(point)
    return claimed, derived


@pytest.mark.parametrize("row", CORPUS, ids=_id)
def test_corpus_verdicts(row):
    try:
        res = check_claim(row["claim"], _labels(row), timeout=20)
    except ClaimSyntaxError as exc:
        assert row["expect"] == "error", (row, str(exc))
        assert "\n" not in str(exc)
        return
    assert res.verdict == row["expect"], (row, res)
    assert res.holds is {"proved": True, "refuted": False}[row["expect"]]
    if res.verdict == "proved":
        assert res.counterexample is None
        return
    ce = res.counterexample
    assert ce is not None and ce["sigma"] >= 0 and ce["lam"] > 0
    json.dumps(res.to_json(), allow_nan=False)
    claimed, derived = _independent_values(row, res)
    assert sp.simplify(derived - sp.sympify(ce["exact"]["derived"])) == 0
    if ce["exact"]["claimed"] == "undefined":
        return  # e.g. 0*sqrt(-1): plain SymPy would simplify the undefined part away
    assert sp.simplify(claimed - sp.sympify(ce["exact"]["claimed"])) == 0
    assert sp.simplify(claimed - derived) != 0


def _radical_free(row: dict) -> bool:
    rhs = row["claim"].split("=", 1)[1]
    return "sqrt" not in rhs and "Abs" not in rhs


@pytest.mark.parametrize(
    "row", [r for r in CORPUS if r["expect"] != "error" and _radical_free(r)], ids=_id
)
def test_sympy_and_z3_agree_without_radicals(row):
    claimed = parse_term(row["claim"].split("=", 1)[1])
    lhs = check_claim(row["claim"].split("=", 1)[0] + "= 0", _labels(row)).lhs
    derived = dc.term_from_sympy(derived_form(lhs, _labels(row))[0])
    z3_verdict = dc.decide_terms(claimed, derived, timeout=20).verdict
    sympy_verdict = dc.sympy_decide(claimed, derived)
    assert z3_verdict == row["expect"]
    assert sympy_verdict in (None, z3_verdict), row


def test_sympy_cross_check_decides_most_radical_free_claims():
    rows = [r for r in CORPUS if r["expect"] != "error" and _radical_free(r)]
    decided = 0
    for row in rows:
        lhs = check_claim(row["claim"].split("=", 1)[0] + "= 0", _labels(row)).lhs
        derived = dc.term_from_sympy(derived_form(lhs, _labels(row))[0])
        decided += dc.sympy_decide(parse_term(row["claim"].split("=", 1)[1]), derived) is not None
    assert decided >= 0.75 * len(rows), (decided, len(rows))


def test_definedness_is_read_from_the_syntax_tree():
    # SymPy would simplify both of these to the closed form
    assert parse_rhs(f"{W}*(t-mu)/(t-mu)") == parse_rhs(W)
    assert check_claim(f"w_t = {W}*(t-mu)/(t-mu)").verdict == "refuted"
    assert check_claim(f"w_t = {W} + 0*sqrt(-1)").verdict == "refuted"
    res = check_claim("w_t = sqrt(-1)")
    assert res.verdict == "refuted" and res.counterexample["exact"]["claimed"] == "undefined"
    assert res.counterexample["claimed"] is None


def test_nothing_holds_unless_proved():
    res = check_claim(f"w_t = {W} + 1e-31")
    assert res.verdict == "refuted" and res.holds is False
    assert res.counterexample["exact"]["claimed"] != res.counterexample["exact"]["derived"]


def test_undecided_is_not_holds():
    hard = (f"w_t = {W} + 0*((sqrt(t**2+1)+sqrt(mu**2+2)+sqrt(sigma+3)+sqrt(lam+5))**12 - 7)**-1")
    res = check_claim(hard, timeout=0.5)
    assert res.verdict in ("undecided", "proved")  # never refuted: the claim is true
    if res.verdict == "undecided":
        assert res.holds is None and res.counterexample is None


def test_algebraic_counterexample_is_exact():
    # differs only where t**2 == 2: the point must be t = +-sqrt(2), printed exactly
    res = check_claim(f"w_t = {W}*(t**2 - 2)**2/(t**2 - 2)**2")
    assert res.verdict == "refuted"
    ex = res.counterexample["exact"]
    assert sp.sympify(ex["t"]) ** 2 == 2 and ex["claimed"] == "undefined"
    assert abs(res.counterexample["t"]) == pytest.approx(2**0.5, rel=1e-15)
    assert res.counterexample["approx"]["t"].lstrip("-").startswith("1.414213562373095")


@pytest.mark.parametrize("labels", [(1, 1), ("2", "2.0"), (Fraction(-1, 2), "-0.5")])
def test_equal_labels_are_a_valid_problem(labels):
    y = sp.Rational(str(Fraction(str(labels[0]))))
    assert check_claim("w_t = 0", labels).verdict == "proved"
    assert check_claim(f"b_t = {y}", labels).verdict == "proved"
    assert check_claim("e_t = 0", labels).verdict == "proved"
    assert check_claim(f"b_t = {y} + 1", labels).verdict == "refuted"
    with pytest.raises(ClaimSyntaxError, match="undefined for equal labels"):
        check_claim("inv_e_t = 1", labels)


# --- hypothesis: rewrites are proved, perturbations refuted -------------------------------
TRUE_FORMS = [
    ("w_t", "2*(t-mu)", DEN),
    ("b_t", "-(t+mu)*(t-mu)", DEN),
    ("e_t", "4*(sigma**2 + lam)", DEN),
    ("inv_e_t", DEN, "(4*(sigma**2 + lam))"),
]
POSITIVE = ["(lam + 1)", "(sigma**2 + 2)", "((t-mu)**2 + lam)", "(t**2 + 1)", "3", "lam",
            "(Abs(t) + 1)", "sqrt(lam)", "(sqrt(sigma) + 1)"]
ZERO = ["(t - t)", "(sqrt(sigma)**2 - sigma)", "(Abs(mu)**2 - mu**2)", "(sqrt(lam**2) - lam)",
        "((t+mu)**2 - t**2 - 2*t*mu - mu**2)"]


@st.composite
def rewritten(draw):
    lhs, num, den = draw(st.sampled_from(TRUE_FORMS))
    for _ in range(draw(st.integers(1, 3))):
        k = draw(st.integers(0, 2))
        p = draw(st.sampled_from(POSITIVE))
        if k == 0:  # multiply numerator and denominator by a positive factor
            num, den = f"({num})*{p}", f"({den})*{p}"
        elif k == 1:  # swap sigma**2 for an equal radical / Abs form
            alt = draw(st.sampled_from(["Abs(sigma)**2", "sqrt(sigma**4)", "sqrt(sigma)**4"]))
            num, den = num.replace("sigma**2", alt), den.replace("sigma**2", alt)
        else:  # add an exact zero, possibly with a huge coefficient
            z = draw(st.sampled_from(ZERO))
            c = draw(st.sampled_from(["1", "10**40", "7/3"]))
            num = f"({num}) + {c}*{z}*{p}"
    return f"{lhs} = ({num})/({den})"


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rewritten())
def test_random_rewrites_of_true_forms_are_proved(claim):
    assert check_claim(claim, timeout=20).verdict == "proved", claim


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(TRUE_FORMS),
    st.integers(1, 40),
    st.sampled_from(["1", "t", "mu**2", "sigma", "lam", "t*mu"]),
    st.sampled_from(["+", "-"]),
)
def test_random_perturbations_are_refuted(form, k, monomial, sign):
    lhs, num, den = form
    claim = f"{lhs} = ({num})/({den}) {sign} 1e-{k}*{monomial}"
    res = check_claim(claim, timeout=20)
    assert res.verdict == "refuted", claim
    ex = res.counterexample["exact"]
    assert sp.sympify(ex["claimed"]) != sp.sympify(ex["derived"])


# --- the brief's rewrites, labels, JSON ------------------------------------------------------
def test_paper_rewrites_from_the_brief_hold():
    for text in [
        "w_t = 2*(t-mu)/((t-mu)**2 + 2*sigma**2 + 2*lam)",
        "w_t = (t-mu)/((t-mu)**2/2 + sigma**2 + lam)",
        "b_t = -(t+mu)*(t-mu)/((t-mu)**2+2*sigma**2+2*lam)",
        "inv_e_t = (t-mu)**2/(4*(sigma**2+lam)) + 1/2",
        "1/e_t* = (t - μ)^2/(4*(σ^2 + λ)) + 1/2",
        "e_t* = 4*(sigma**2 + lam)/((t-mu)**2 + 2*sigma**2 + 2*lam)",
    ]:
        res = check_claim(text)
        assert res.verdict == "proved" and res.holds is True, text
        assert "z3" in res.engine


def test_same_text_depends_on_labels():
    assert check_claim(f"w_t = {W}", (1, -1)).holds
    assert check_claim(f"w_t = {W}", (2, 0)).holds
    assert check_claim(f"w_t = {W}", (1, 0)).holds is False
    assert check_claim(f"w_t = {W}", (-1, 1)).holds is False
    assert check_claim(f"w_t = {W}", (Fraction(1, 2), Fraction(-3, 2))).holds


def test_result_to_json():
    res = check_claim(f"w_t = -{W}")
    assert isinstance(res, CheckResult)
    data = res.to_json()
    assert {"holds", "verdict", "engine", "seconds", "lhs", "claimed", "derived", "labels",
            "counterexample"} <= set(data)
    assert data["holds"] is False and data["verdict"] == "refuted" and data["lhs"] == "w_t"
    ce = data["counterexample"]
    assert {"t", "mu", "sigma", "lam", "claimed", "derived", "exact", "approx"} <= set(ce)
    json.dumps(data, allow_nan=False)
    ok = check_claim(f"w_t = {W}").to_json()
    assert ok["holds"] is True and ok["verdict"] == "proved" and ok["counterexample"] is None


def test_decide_expr_takes_a_sympy_expression():
    from derivations import check as ck

    w = 2 * (en.t - en.mu) / ((en.t - en.mu) ** 2 + 2 * en.sigma**2 + 2 * en.lam)
    assert ck.decide_expr("w_t", w).verdict == "proved"
    assert ck.decide_expr("w_t", -w).verdict == "refuted"
    assert ck.decide is ck.decide_expr  # the older name (also the module's) stays importable


def test_counterexample_json_orders_the_point_and_keeps_both_values():
    from derivations import check as ck

    domain = {**dc.CLAIM_DOMAIN, "y_t": "real", "y_o": "real"}
    dec = dc.decide_exprs(en.y_t * en.t, en.y_o * en.t, domain)
    assert dec.verdict == "refuted"
    ce = ck.counterexample_json(dec)
    assert list(ce) == ["t", "mu", "sigma", "lam", "y_o", "y_t", "claimed", "derived", "exact",
                        "approx"]
    ex = ce["exact"]
    point = {en.t: sp.sympify(ex["t"]), en.y_t: sp.sympify(ex["y_t"]),
             en.y_o: sp.sympify(ex["y_o"])}
    assert sp.sympify(ex["claimed"]) == (en.y_t * en.t).xreplace(point)
    assert sp.sympify(ex["derived"]) == (en.y_o * en.t).xreplace(point)
    assert ex["claimed"] != ex["derived"]
    json.dumps(ce, allow_nan=False)
    with pytest.raises(ValueError, match="refuted"):
        ck.counterexample_json(dc.decide_exprs(en.t, en.t))
