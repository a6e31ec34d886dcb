"""Tests for derivations.backward: the VJP closed form, proved and checked numerically."""

from __future__ import annotations

import numpy as np
import pytest
from oracles import exact, official

from derivations import backward as bw


@pytest.mark.parametrize(("method", "m"), [("paper", 2), ("paper", 3), ("exact", 2), ("exact", 3)])
def test_vjp_identity_proved_exactly(method, m):
    assert bw.prove_vjp_identity(method, m)


@pytest.mark.parametrize("method", bw.METHODS)
@pytest.mark.parametrize(("m", "seed"), [(2, 0), (3, 1), (3, 2)])
def test_vjp_closed_form_matches_symbolic_jacobian(method, m, seed):
    assert bw.check_vjp_formula(method, m, seed) < 1e-12


def _forward_numpy(x: np.ndarray, lam: float, method: str) -> np.ndarray:
    """Independent forward (tests/oracles.py): exact uses brute-force leave-one-out stats."""
    return official(x, lam, axes=0) if method == "paper" else exact(x, lam, axes=0)


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
