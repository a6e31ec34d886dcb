"""Tests for derivations.claims_equations: eq 3-5 and ``E_inv``, their counterexamples.

Every counterexample is recomputed here from plain floats and the least-squares
oracle (tests/oracles.py), independently of the SymPy values the module reports.
"""

from __future__ import annotations

import pytest
from oracles import min_energy

from derivations import claims_equations as ce_mod
from derivations.verdict import Claim


@pytest.fixture(scope="module")
def claims() -> dict[str, Claim]:
    return {c.name: c for c in ce_mod.equation_claims()}


def _energy(others, t, w, b, lam):
    return (
        sum((-1 - (w * x + b)) ** 2 for x in others) / len(others)
        + (1 - (w * t + b)) ** 2
        + lam * w**2
    )


@pytest.mark.parametrize("name", ["paper eq 3 (w_t)", "seed eq 3 (w_t)"])
def test_eq3_counterexample_claimed_point_is_not_minimum(claims, name):
    ce = claims[name].counterexample
    for case in (ce, ce["lam_zero"]):
        assert case["claimed"] != pytest.approx(case["derived"])
        assert case["energy_at_claimed"] > case["energy_at_derived"] + 1e-9
        w_min, b_min, e_min = min_energy(case["others"], case["t"], case["lam"])
        assert case["derived"] == pytest.approx(w_min)
        assert case["b_derived"] == pytest.approx(b_min)
        assert case["energy_at_derived"] == pytest.approx(e_min, abs=1e-12)
        e_claimed = _energy(
            case["others"], case["t"], case["claimed"], case["b_claimed"], case["lam"]
        )
        assert case["energy_at_claimed"] == pytest.approx(e_claimed)
    assert ce["lam"] > 0
    spec = ce["lam_zero"]  # SPEC: M-1=1, x=0, t=1, lam=0 -> w=2, b=-1 (0) vs w=-2, b=1 (8)
    assert (spec["derived"], spec["b_derived"], spec["energy_at_derived"]) == (2, -1, 0)
    assert (spec["claimed"], spec["b_claimed"], spec["energy_at_claimed"]) == (-2, 1, 8)


def _eval(name: str, ce: dict) -> tuple[float, float]:
    t, mu, s, lam = ce["t"], ce["mu"], ce["sigma"], ce["lam"]
    den = (t - mu) ** 2 + 2 * s**2 + 2 * lam
    w = 2 * (t - mu) / den
    if name == "seed eq 4 (b_t)":
        return -0.5 * (t - mu) * w, -0.5 * (t + mu) * w
    if name == "seed eq 5 (e_t*)":
        return 4 * (mu**2 + lam) / den, 4 * (s**2 + lam) / den
    raise KeyError(name)


@pytest.mark.parametrize("name", ["seed eq 4 (b_t)", "seed eq 5 (e_t*)"])
def test_typo_counterexamples_recomputed_independently(claims, name):
    ce = claims[name].counterexample
    claimed, derived = _eval(name, ce)
    assert ce["claimed"] == pytest.approx(claimed)
    assert ce["derived"] == pytest.approx(derived)
    assert abs(claimed - derived) > 1e-6


def test_equation_verdicts(claims):
    refuted = {name for name, c in claims.items() if c.verdict == "refuted"}
    assert refuted == {"paper eq 3 (w_t)", "seed eq 3 (w_t)", "seed eq 4 (b_t)", "seed eq 5 (e_t*)"}
    proved = {name for name, c in claims.items() if c.verdict == "proved"}
    assert proved == {"paper eq 4 (b_t)", "paper eq 5 (e_t*)", "official E_inv"}


def test_eq3_claim_with_the_right_sign_is_proved():
    c = ce_mod.eq3_claim("test", "2*(t-mu)/((t-mu)**2 + 2*sigma**2 + 2*lam)")
    assert c.verdict == "proved" and c.counterexample is None and c.name == "test eq 3 (w_t)"
