"""Tests for derivations.claims: the catalogue's verdicts and fields.

Each topic's counterexamples are tested with its module: tests/test_claims_equations.py,
tests/test_claims_loo.py, tests/test_claims_derivation.py; the record in tests/test_verdict.py,
the seed's code in tests/test_seed_code.py.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from derivations import claims as cl
from derivations import energy as en
from derivations import minimizer as mz

EXPECTED = {
    "energy collapse (eq 2)": "proved",
    "paper eq 3 (w_t)": "refuted",
    "seed eq 3 (w_t)": "refuted",
    "paper eq 4 (b_t)": "proved",
    "seed eq 4 (b_t)": "refuted",
    "paper eq 5 (e_t*)": "proved",
    "seed eq 5 (e_t*)": "refuted",
    "official E_inv": "proved",
    "leave-one-out identities": "proved",
    "code uses leave-one-out statistics": "refuted",
    "unique global minimum": "proved",
    "general labels (w_t)": "proved",
    "general labels (b_t)": "proved",
    "general labels (e_t)": "proved",
    "seed code runs": "refuted",
}


@pytest.fixture(scope="module")
def claims() -> dict[str, cl.Claim]:
    listed = cl.all_claims()
    out = {c.name: c for c in listed}
    assert len(out) == len(listed)  # names are unique
    return out


def test_all_claims_listed_with_expected_verdicts(claims):
    assert set(claims) == set(EXPECTED)
    for name, expected in EXPECTED.items():
        assert claims[name].verdict == expected, name
        assert claims[name].holds is (expected == "proved"), name


def test_claim_fields_and_counterexample_presence(claims):
    for c in claims.values():
        assert isinstance(c.verdict, str) and c.verdict in ("proved", "refuted")
        assert bool(c.verdict) is (c.verdict == "proved")  # older boolean use keeps working
        assert c.source in {"paper", "seed", "official code", "derivation", "generalization"}
        assert c.statement and c.derived and c.engine
        if c.verdict == "proved":
            assert c.counterexample is None, c.name
        else:
            assert c.counterexample, c.name
        json.dumps(c.counterexample, allow_nan=False)  # printable / serialisable


def test_algebraic_claims_are_decided_by_the_solver(claims):
    for c in claims.values():
        if c.name == "seed code runs":
            assert c.engine.startswith("execution")
        else:
            assert "z3 nlsat" in c.engine, c.name


def test_official_forward_matches_torch_formula():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(1).normal(size=(2, 3, 4, 5))
    xt = torch.from_numpy(x)
    n = 4 * 5 - 1
    d = (xt - xt.mean(dim=[2, 3], keepdim=True)).pow(2)
    v = d.sum(dim=[2, 3], keepdim=True) / n
    ref = (xt * torch.sigmoid(d / (4 * (v + 1e-4)) + 0.5)).numpy()
    np.testing.assert_allclose(cl.official_forward_numpy(x, 1e-4), ref, rtol=1e-12)


def test_verdicts_follow_the_derivation(monkeypatch):
    """If the derived w_t had the paper's sign, the eq-3 verdict would flip (not hard-coded)."""
    from derivations import check as ck

    real = mz.closed_form()
    flipped = mz.ClosedForm(real.labels, -real.w_t, real.b_t, real.e_min, real.inv_e_min)
    monkeypatch.setattr(ck.mz, "closed_form", lambda labels=(1, -1): flipped)
    assert ck.decide_expr(
        "w_t", -2 * (en.t - en.mu) / ((en.t - en.mu) ** 2 + 2 * en.sigma**2 + 2 * en.lam), (1, -1)
    ).holds
