"""Tests for derivations.minimizer: the closed-form minimiser against least squares."""

from __future__ import annotations

import random

import numpy as np
import pytest
import sympy as sp
from oracles import min_energy

from derivations import energy as en
from derivations import minimizer as mz

LABELS = [(1, -1), (2, 0), (1, 0), (-1, 1), (3, sp.Rational(1, 2))]


def others_stats(others: np.ndarray) -> tuple[float, float]:
    return float(np.mean(others)), float(np.sqrt(np.var(others)))  # biased: 1/(M-1) others


def at(expr: sp.Expr, t: float, mu: float, sigma: float, lam: float) -> float:
    return float(expr.subs({en.t: t, en.mu: mu, en.sigma: sigma, en.lam: lam}))


@pytest.mark.parametrize("labels", LABELS)
def test_closed_form_solves_stationarity(labels):
    cf = mz.closed_form(labels)
    for eq in en.stationarity_equations(labels):
        assert sp.cancel(eq.subs({en.W: cf.w_t, en.B: cf.b_t})) == 0
    assert sp.cancel(cf.e_min * cf.inv_e_min - 1) == 0


@pytest.mark.parametrize("labels", [(1, -1), (2, 0), (1, 0), (-1, 1)])
@pytest.mark.parametrize("seed", range(4))
def test_closed_form_matches_brute_force_least_squares(labels, seed):
    rng = np.random.default_rng(seed)
    m_others = int(rng.integers(1, 9))
    others = rng.normal(size=m_others) * rng.uniform(0.1, 3)
    target = float(rng.normal() * 2)
    lam = float(rng.uniform(1e-3, 1.0))
    w_b, b_b, e_b = min_energy(others, target, lam, labels)
    mu, sigma = others_stats(others)
    cf = mz.closed_form(labels)
    assert at(cf.w_t, target, mu, sigma, lam) == pytest.approx(w_b, rel=1e-9, abs=1e-12)
    assert at(cf.b_t, target, mu, sigma, lam) == pytest.approx(b_b, rel=1e-9, abs=1e-12)
    assert at(cf.e_min, target, mu, sigma, lam) == pytest.approx(e_b, rel=1e-9, abs=1e-12)
    assert at(cf.inv_e_min, target, mu, sigma, lam) == pytest.approx(1 / e_b, rel=1e-9)


def test_general_labels_specialise_to_numeric_labels():
    general = mz.closed_form((en.y_t, en.y_o))
    for labels in LABELS:
        num = mz.closed_form(labels)
        subs = {en.y_t: sp.sympify(labels[0]), en.y_o: sp.sympify(labels[1])}
        for key, expr in general.as_dict().items():
            assert sp.cancel(expr.subs(subs) - num.as_dict()[key]) == 0, key


def test_paper_closed_form_random_numeric_substitution():
    cf = mz.closed_form()
    rng = random.Random(1)
    for _ in range(20):
        t, mu = rng.uniform(-5, 5), rng.uniform(-5, 5)
        sigma, lam = rng.uniform(0, 3), rng.uniform(1e-4, 1)
        den = (t - mu) ** 2 + 2 * sigma**2 + 2 * lam
        assert at(cf.w_t, t, mu, sigma, lam) == pytest.approx(2 * (t - mu) / den)
        assert at(cf.b_t, t, mu, sigma, lam) == pytest.approx(-(t + mu) * (t - mu) / den)
        assert at(cf.e_min, t, mu, sigma, lam) == pytest.approx(4 * (sigma**2 + lam) / den)


def test_closed_form_rejects_equal_labels_and_caches():
    with pytest.raises(ValueError, match="differ"):
        mz.closed_form((1, 1))
    with pytest.raises(ValueError):
        mz.closed_form((1, True))
    assert mz.closed_form((1, -1)) is mz.closed_form((1, -1))
    assert mz.closed_form(("1/2", 0.25)).labels == (sp.Rational(1, 2), sp.Rational(1, 4))


@pytest.mark.parametrize("labels", [(1, -1), (en.y_t, en.y_o), ("1/3", "-2/7"), (0, 5)])
def test_closed_form_is_the_solution_of_the_linear_system(labels):
    cf = mz.closed_form(labels)
    lt, lo = en._labels(labels)
    (sol,) = sp.solve(en.stationarity_equations((lt, lo)), [en.W, en.B], dict=True)
    assert sp.cancel(cf.w_t - sol[en.W]) == 0
    assert sp.cancel(cf.b_t - sol[en.B]) == 0
