"""Tests for derivations.leave_one_out: identities and exact vs paper 1/e*."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp
from oracles import min_energy, official_inv_energy

from derivations import leave_one_out as loo


def test_loo_identities_general_m():
    ids = loo.loo_identities()
    assert len(ids) == 3 and all(i.holds for i in ids)


@pytest.mark.parametrize(("m", "target"), [(2, 0), (3, 1), (4, 0), (4, 3), (5, 2)])
def test_loo_identities_concrete(m, target):
    assert all(i.holds for i in loo.loo_identities_concrete(m, target))


def test_identity_checker_detects_wrong_identity():
    wrong = loo._identity("bad", loo.s1_others / (loo.M - 1), (loo.M * loo.mu_full + loo.t) / loo.M)
    assert not wrong.holds


def test_exact_inverse_energy_matches_closed_form_and_brute_force():
    assert loo.exact_matches_closed_form()
    rng = np.random.default_rng(3)
    exact, paper = loo.exact_inv_energy_from_full_stats(), loo.paper_inv_energy_from_full_stats()
    for m in (2, 3, 7):
        x = rng.normal(size=m)
        lam = 0.05
        mu, s2 = float(x.mean()), float(np.sum((x - x.mean()) ** 2))
        for k in range(m):
            _, _, e_b = min_energy(np.delete(x, k), float(x[k]), lam)
            subs = {loo.mu_full: mu, loo.S2: s2, loo.M: m, loo.t: float(x[k]), loo.lam: lam}
            assert float(exact.subs(subs)) == pytest.approx(1 / e_b, rel=1e-9)
            official_k = official_inv_energy(x, lam, axes=0)[k]
            assert float(paper.subs(subs)) == pytest.approx(official_k, rel=1e-12)


def test_paper_and_exact_differ_on_concrete_channel():
    vals = loo.inv_energies_on_channel([0, 0, 0, 1], 3, "1/10")
    assert vals["exact"] == vals["direct"] == 3
    assert vals["paper"] == sp.Rational(101, 112)
