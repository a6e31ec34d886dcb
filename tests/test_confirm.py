"""SciPy confirmation of the closed form, and the numeric closed-form helpers."""

import numpy as np
import pytest

from simam_ref import confirm
from simam_ref import numeric_energy as cf


@pytest.mark.parametrize(
    "check",
    [confirm.confirm_minimize, confirm.confirm_lstsq, confirm.confirm_energy_check_grad,
     confirm.confirm_backward_check_grad, confirm.confirm_reference_vs_official],
)
def test_confirmation_passes(check):
    result = check()
    assert result.cases > 0
    assert result.passed, result
    assert result.to_json()["passed"] is True


def test_confirmation_fails_on_a_wrong_closed_form(monkeypatch):
    """The SciPy check is able to fail: flip the sign of w_t as paper eq 3 does."""
    wrong_w = lambda channel, lam, labels=(1.0, -1.0): tuple(  # noqa: E731
        -v for v in _true_weights(channel, lam, labels))
    monkeypatch.setattr(confirm, "closed_form_weights", wrong_w)
    assert not confirm.confirm_minimize(channels=2).passed
    assert not confirm.confirm_lstsq(channels=2).passed


_true_weights = cf.closed_form_weights


def test_leave_one_out_stats_by_hand():
    mu, sigma = cf.leave_one_out_stats(np.array([0.0, 1.0, 5.0]))
    np.testing.assert_allclose(mu, [3.0, 2.5, 0.5])
    np.testing.assert_allclose(sigma, [2.0, 2.5, 0.5])


def test_spec_counterexample_numbers():
    """SPEC: other neuron x=0, target t=1, lam -> 0 gives w=2, b=-1 and energy 0."""
    w, b = cf.closed_form_weights(np.array([1.0, 0.0]), 1e-12)
    assert w[0] == pytest.approx(2.0) and b[0] == pytest.approx(-1.0)
    assert cf.energy(w[0], b[0], [1.0, 0.0], 0, 1e-12) == pytest.approx(0.0, abs=1e-9)
    assert cf.energy(-2.0, 1.0, [1.0, 0.0], 0, 0.0) == pytest.approx(8.0)


@pytest.mark.parametrize("labels", [(1.0, -1.0), (2.0, 0.0), (1.0, 0.0), (-1.0, 1.0)])
def test_closed_form_minimises_energy_for_any_labels(labels):
    rng = np.random.default_rng(0)
    x = rng.normal(size=6)
    lam = 0.3
    w, b = cf.closed_form_weights(x, lam, labels)
    e = cf.minimum_energy(x, lam, labels)
    for t in range(x.size):
        e0 = cf.energy(w[t], b[t], x, t, lam, labels)
        assert e0 == pytest.approx(e[t], rel=1e-12)
        np.testing.assert_allclose(cf.energy_gradient(w[t], b[t], x, t, lam, labels), 0,
                                   atol=1e-12)
        for dw, db in rng.normal(scale=0.1, size=(5, 2)):
            assert cf.energy(w[t] + dw, b[t] + db, x, t, lam, labels) > e0


def test_paper_exact_gap_shrinks_like_one_over_m():
    rows = confirm.paper_exact_gap(sizes=(16, 256, 4096), channels=16)
    gaps = [r["max_gain_gap"] for r in rows]
    assert gaps[0] > gaps[1] > gaps[2] > 0
    assert 4 < gaps[1] / gaps[2] < 64  # ~16x per 16x in M
