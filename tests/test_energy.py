"""Tests for derivations.energy: the per-neuron energy and its collapse to moments."""

from __future__ import annotations

import random

import pytest
import sympy as sp

from derivations import energy as en


def test_moment_expansion_collapses():
    avg = en.energy_from_moments().subs({en.m1: en.mu, en.m2: en.sigma**2 + en.mu**2})
    assert sp.expand(avg - en.collapsed_energy()) == 0
    # and using the wrong second moment (m2 = sigma^2) would not collapse
    wrong = en.energy_from_moments().subs({en.m1: en.mu, en.m2: en.sigma**2})
    assert sp.expand(wrong - en.collapsed_energy()) != 0


@pytest.mark.parametrize("seed", range(3))
def test_collapsed_energy_matches_explicit_sum(seed):
    rng = random.Random(seed)
    others = [sp.Rational(rng.randint(-9, 9), rng.randint(1, 5)) for _ in range(5)]
    tt, w, b = (sp.Rational(rng.randint(-9, 9), 4) for _ in range(3))
    lam_v = sp.Rational(1, 10)
    mu_v = sum(others) / len(others)
    var_v = sum((x - mu_v) ** 2 for x in others) / len(others)
    for labels in [(1, -1), (2, 0)]:
        brute = en.full_energy_concrete(others, tt, w, b, lam_v, labels)
        sig = sp.Symbol("s2")
        coll = en.per_neuron_energy(w, b, labels).subs(en.sigma**2, sig)
        coll = coll.subs({en.t: tt, en.mu: mu_v, sig: var_v, en.lam: lam_v})
        assert sp.nsimplify(coll - brute) == 0


def test_energy_function_is_per_neuron_energy():
    import derivations

    # ``energy`` is the module; the function is ``per_neuron_energy`` (old name kept)
    assert en.energy is en.per_neuron_energy is derivations.per_neuron_energy
    assert derivations.energy is en
    e = en.per_neuron_energy(en.W, en.B, (1, -1))
    assert sp.expand(e - (en.collapsed_energy(label_o=-1) + (1 - en.W * en.t - en.B) ** 2
                          + en.lam * en.W**2)) == 0
