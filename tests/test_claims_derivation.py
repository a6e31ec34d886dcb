"""Tests for derivations.claims_derivation: collapse, uniqueness and general labels."""

from __future__ import annotations

import pytest

from derivations import claims_derivation as cd
from derivations.verdict import Claim


@pytest.fixture(scope="module")
def claims() -> dict[str, Claim]:
    listed = [cd.collapse_claim(), cd.uniqueness_claim(), *cd.general_label_claims()]
    return {c.name: c for c in listed}


def test_uniqueness_claim_reports_sylvester_minors(claims):
    c = claims["unique global minimum"]
    assert "minor 2 = 4*((t - mu)**2 + 2*lam + 2*sigma**2)" in c.derived


def test_derivation_claims_are_proved_by_z3(claims):
    assert set(claims) == {
        "energy collapse (eq 2)",
        "unique global minimum",
        "general labels (w_t)",
        "general labels (b_t)",
        "general labels (e_t)",
    }
    for c in claims.values():
        assert c.verdict == "proved" and c.counterexample is None, c.name
        assert "z3 nlsat" in c.engine, c.name
