"""Tests for derivations.claims_loo: the identities are proved, the official statistics refuted.

The counterexample channel is recomputed with the least-squares oracle and the
official formula from tests/oracles.py.
"""

from __future__ import annotations

import numpy as np
import pytest
from oracles import min_energy, official_inv_energy

from derivations import claims_loo
from derivations.verdict import Claim


@pytest.fixture(scope="module")
def claims() -> dict[str, Claim]:
    return {c.name: c for c in claims_loo.loo_claims()}


def test_leave_one_out_counterexample(claims):
    ce = claims["code uses leave-one-out statistics"].counterexample
    x = np.array(ce["channel"], dtype=float)
    k, lam = ce["target_index"], ce["lam"]
    _, _, e_min = min_energy(np.delete(x, k), x[k], lam)
    assert ce["derived"] == pytest.approx(1 / e_min)
    assert ce["claimed"] == pytest.approx(official_inv_energy(x, lam, axes=0)[k])
    assert abs(ce["claimed"] - ce["derived"]) > 0.1


def test_loo_verdicts_and_display(claims):
    ids = claims["leave-one-out identities"]
    assert ids.verdict == "proved" and ids.counterexample is None
    assert ids.derived.startswith("exact 1/e_t* = 1/2 + ") and "d = (t - mu)**2" in ids.derived
    assert claims["code uses leave-one-out statistics"].verdict == "refuted"
