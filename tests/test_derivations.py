"""Tests for derivations.energy, derivations.leave_one_out and derivations.backward."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import sympy as sp

from derivations import backward as bw
from derivations import energy as en
from derivations import leave_one_out as loo

LABELS = [(1, -1), (2, 0), (1, 0), (-1, 1), (3, sp.Rational(1, 2))]


def brute_force_min(others: np.ndarray, target: float, lam: float, labels=(1.0, -1.0)):
    """Minimise the full (non-collapsed) seed eq 2 as a linear least-squares problem."""
    yt, yo = (float(v) for v in labels)
    n = len(others)
    rows = [[x / math.sqrt(n), 1 / math.sqrt(n)] for x in others]
    rhs = [yo / math.sqrt(n)] * n
    rows += [[target, 1.0], [math.sqrt(lam), 0.0]]
    rhs += [yt, 0.0]
    a, y = np.array(rows), np.array(rhs)
    sol, *_ = np.linalg.lstsq(a, y, rcond=None)
    energy = float(np.sum((a @ sol - y) ** 2))
    return float(sol[0]), float(sol[1]), energy


def others_stats(others: np.ndarray) -> tuple[float, float]:
    return float(np.mean(others)), float(np.sqrt(np.var(others)))  # biased: 1/(M-1) others


def at(expr: sp.Expr, t: float, mu: float, sigma: float, lam: float) -> float:
    return float(expr.subs({en.t: t, en.mu: mu, en.sigma: sigma, en.lam: lam}))


# --- energy -------------------------------------------------------------------------------
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
        coll = en.energy(w, b, labels).subs(en.sigma**2, sig)
        coll = coll.subs({en.t: tt, en.mu: mu_v, sig: var_v, en.lam: lam_v})
        assert sp.nsimplify(coll - brute) == 0


@pytest.mark.parametrize("labels", LABELS)
def test_closed_form_solves_stationarity(labels):
    cf = en.closed_form(labels)
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
    w_b, b_b, e_b = brute_force_min(others, target, lam, labels)
    mu, sigma = others_stats(others)
    cf = en.closed_form(labels)
    assert at(cf.w_t, target, mu, sigma, lam) == pytest.approx(w_b, rel=1e-9, abs=1e-12)
    assert at(cf.b_t, target, mu, sigma, lam) == pytest.approx(b_b, rel=1e-9, abs=1e-12)
    assert at(cf.e_min, target, mu, sigma, lam) == pytest.approx(e_b, rel=1e-9, abs=1e-12)
    assert at(cf.inv_e_min, target, mu, sigma, lam) == pytest.approx(1 / e_b, rel=1e-9)


def test_general_labels_specialise_to_numeric_labels():
    general = en.closed_form((en.y_t, en.y_o))
    for labels in LABELS:
        num = en.closed_form(labels)
        subs = {en.y_t: sp.sympify(labels[0]), en.y_o: sp.sympify(labels[1])}
        for key, expr in general.as_dict().items():
            assert sp.cancel(expr.subs(subs) - num.as_dict()[key]) == 0, key


def test_paper_closed_form_random_numeric_substitution():
    cf = en.closed_form()
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
        en.closed_form((1, 1))
    with pytest.raises(ValueError):
        en.closed_form((1, True))
    assert en.closed_form((1, -1)) is en.closed_form((1, -1))
    assert en.closed_form(("1/2", 0.25)).labels == (sp.Rational(1, 2), sp.Rational(1, 4))


def test_hessian_positive_definite_by_sylvester():
    proof = en.hessian_positive_definite()
    h = en.hessian()
    assert proof.is_positive_definite and all(proof.positive)
    assert len(proof.minors) == 2
    assert sp.expand(proof.minors[1] - h.det()) == 0
    target = 4 * ((en.t - en.mu) ** 2 + 2 * en.sigma**2 + 2 * en.lam)
    assert sp.expand(proof.minors[1] - target) == 0
    for m, c in zip(proof.minors, proof.certificates, strict=True):
        assert sp.expand(m - c) == 0
    assert proof.certificates[1].has((en.t - en.mu) ** 2)
    # the Hessian is label-independent
    assert en.hessian((2, 0)) == h
    # numeric: both eigenvalues positive at random points
    rng = random.Random(0)
    for _ in range(10):
        pt = {
            en.t: rng.uniform(-9, 9),
            en.mu: rng.uniform(-9, 9),
            en.sigma: rng.uniform(0, 2),
            en.lam: rng.uniform(1e-6, 1),
        }
        eig = np.linalg.eigvalsh(np.array(h.subs(pt), dtype=float))
        assert np.all(eig > 0)


def test_positivity_helpers_can_say_no():
    assert en.nonnegative_terms(en.sigma**2 + en.lam)
    assert not en.nonnegative_terms(en.t**2 - en.lam)
    assert not en.nonnegative_terms(en.sigma**2)  # nonnegative but no positive term
    cs = en.complete_square(en.t**2 - 4 * en.t * en.mu + en.lam, en.t)
    assert sp.expand(cs - (en.t**2 - 4 * en.t * en.mu + en.lam)) == 0
    assert cs.has((en.t - 2 * en.mu) ** 2)


def test_pretty_str_is_display_of_same_expression():
    from derivations.check import parse_rhs

    assert en.pretty_str(en.closed_form().w_t) == "2*(t - mu)/((t - mu)**2 + 2*lam + 2*sigma**2)"
    for labels in [(1, -1), (1, 0), (2, 0)]:
        for key, expr in en.closed_form(labels).as_dict().items():
            back = parse_rhs(en.pretty_str(expr))  # round-trip through the safe parser
            assert sp.cancel(back - expr) == 0, (labels, key)


# --- leave-one-out ----------------------------------------------------------------------------
def test_loo_identities_general_m():
    ids = loo.loo_identities()
    assert len(ids) == 3 and all(i.holds for i in ids)


@pytest.mark.parametrize(("m", "target"), [(2, 0), (3, 1), (4, 0), (4, 3), (5, 2)])
def test_loo_identities_concrete(m, target):
    assert all(i.holds for i in loo.loo_identities_concrete(m, target))


def test_identity_checker_detects_wrong_identity():
    wrong = loo._identity("bad", loo.s1 / (loo.M - 1), (loo.M * loo.mu_full + loo.t) / loo.M)
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
            _, _, e_b = brute_force_min(np.delete(x, k), float(x[k]), lam)
            subs = {loo.mu_full: mu, loo.S2: s2, loo.M: m, loo.t: float(x[k]), loo.lam: lam}
            assert float(exact.subs(subs)) == pytest.approx(1 / e_b, rel=1e-9)
            official = (x[k] - mu) ** 2 / (4 * (s2 / (m - 1) + lam)) + 0.5
            assert float(paper.subs(subs)) == pytest.approx(official, rel=1e-12)


def test_paper_and_exact_differ_on_concrete_channel():
    vals = loo.inv_energies_on_channel([0, 0, 0, 1], 3, "1/10")
    assert vals["exact"] == vals["direct"] == 3
    assert vals["paper"] == sp.Rational(101, 112)


# --- backward --------------------------------------------------------------------------------
@pytest.mark.parametrize(("method", "m"), [("paper", 2), ("paper", 3), ("exact", 2), ("exact", 3)])
def test_vjp_identity_proved_exactly(method, m):
    assert bw.prove_vjp_identity(method, m)


@pytest.mark.parametrize("method", bw.METHODS)
@pytest.mark.parametrize(("m", "seed"), [(2, 0), (3, 1), (3, 2)])
def test_vjp_closed_form_matches_symbolic_jacobian(method, m, seed):
    assert bw.check_vjp_formula(method, m, seed) < 1e-12


def _forward_numpy(x: np.ndarray, lam: float, method: str) -> np.ndarray:
    """Independent forward: exact uses leave-one-out stats computed by brute force."""
    m = len(x)
    if method == "paper":
        d = (x - x.mean()) ** 2
        e = d / (4 * (d.sum() / (m - 1) + lam)) + 0.5
    else:
        e = np.empty(m)
        for k in range(m):
            o = np.delete(x, k)
            e[k] = (x[k] - o.mean()) ** 2 / (4 * (o.var() + lam)) + 0.5
    return x / (1 + np.exp(-e))


@pytest.mark.parametrize("method", bw.METHODS)
def test_vjp_closed_form_matches_finite_differences(method):
    rng = np.random.default_rng(7)
    x, go, lam = rng.normal(size=6), rng.normal(size=6), 0.1
    grad = np.array(bw.vjp_closed_form(list(x), list(go), lam, method))
    h = 1e-6
    fd = np.empty(6)
    for k in range(6):
        xp, xm = x.copy(), x.copy()
        xp[k] += h
        xm[k] -= h
        fd[k] = go @ (_forward_numpy(xp, lam, method) - _forward_numpy(xm, lam, method)) / (2 * h)
    np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-8)


def test_checks_detect_a_wrong_formula(monkeypatch):
    original = bw._alpha_beta_e

    def wrong(x, lam, method, symbolic=False):
        u, e, alpha, beta = original(x, lam, method, symbolic)
        return u, e, alpha, [2 * b for b in beta]

    monkeypatch.setattr(bw, "_alpha_beta_e", wrong)
    assert bw.check_vjp_formula("paper", 3, 0) > 1e-6
    assert not bw.prove_vjp_identity.__wrapped__("paper", 3)


def test_backward_input_validation():
    with pytest.raises(ValueError):
        bw.check_vjp_formula("nope", 3, 0)
    with pytest.raises(ValueError):
        bw.vjp_closed_form([1.0], [1.0], 0.1)
    with pytest.raises(ValueError):
        bw.vjp_closed_form([1.0, 2.0], [1.0], 0.1)
    jac = bw.forward_jacobian("paper", 2)
    assert jac.shape == (2, 2)
