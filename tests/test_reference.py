"""NumPy reference: official formula, brute-force exact minimiser, backward, properties."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from oracles import exact_by_minimisation, official

from simam_ref import simam, simam_backward

SIG_HALF = 1.0 / (1.0 + np.exp(-0.5))


@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (1, 1, 2, 1), (3, 2, 7, 7), (1, 4, 1, 9)])
@pytest.mark.parametrize("lam", [1e-4, 0.1])
def test_paper_matches_official_transcription(shape, lam):
    rng = np.random.default_rng(sum(shape))
    x = rng.normal(loc=1.5, scale=2.0, size=shape)
    y = simam(x, lam, backend="numpy")
    np.testing.assert_allclose(y, official(x, lam), rtol=1e-13, atol=1e-15)


def test_paper_on_1d_and_3d_spatial():
    rng = np.random.default_rng(0)
    x1 = rng.normal(size=(2, 3, 11))
    np.testing.assert_allclose(simam(x1, backend="numpy"), official(x1, 1e-4, (2,)),
                               rtol=1e-13)
    x3 = rng.normal(size=(2, 2, 3, 4, 5))
    np.testing.assert_allclose(simam(x3, backend="numpy"),
                               official(x3, 1e-4, (2, 3, 4)), rtol=1e-13)


@pytest.mark.parametrize("m", [2, 3, 6, 17])
@pytest.mark.parametrize("lam", [1e-3, 0.5])
def test_exact_matches_brute_force_minimisation(m, lam):
    rng = np.random.default_rng(m)
    x = rng.normal(scale=1.7, size=(3, m))
    y = simam(x, lam, method="exact", axes=1, backend="numpy")
    want = exact_by_minimisation(x, lam, axes=1)
    np.testing.assert_allclose(y, want, rtol=1e-10, atol=1e-12)


def test_exact_differs_from_paper():
    x = np.array([[0.0, 1.0, 3.0]])
    assert not np.allclose(simam(x, 0.1, axes=1, backend="numpy"),
                           simam(x, 0.1, axes=1, method="exact", backend="numpy"))


def finite_difference_vjp(x, go, lam, method, h=1e-6):
    grad = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[idx] += h
        xm[idx] -= h
        yp = simam(xp, lam, method=method, backend="numpy")
        ym = simam(xm, lam, method=method, backend="numpy")
        grad[idx] = np.sum(go * (yp - ym)) / (2 * h)
    return grad


@pytest.mark.parametrize("method", ["paper", "exact"])
@pytest.mark.parametrize("shape", [(1, 2, 2, 3), (2, 1, 1, 2), (1, 1, 5)])
def test_backward_matches_finite_differences(method, shape):
    rng = np.random.default_rng(7)
    x = rng.normal(size=shape)
    go = rng.normal(size=shape)
    g = simam_backward(x, go, 1e-2, method=method, backend="numpy")
    np.testing.assert_allclose(g, finite_difference_vjp(x, go, 1e-2, method), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("method", ["paper", "exact"])
def test_backward_matches_torch_autograd(method):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(11)
    x = rng.normal(size=(2, 3, 4, 5))
    go = rng.normal(size=x.shape)
    lam = 1e-3
    xt = torch.tensor(x, requires_grad=True)
    m = 20
    if method == "paper":
        d = (xt - xt.mean(dim=(2, 3), keepdim=True)) ** 2
        v = d.sum(dim=(2, 3), keepdim=True) / (m - 1)
        e_inv = d / (4 * (v + lam)) + 0.5
    else:  # leave-one-out statistics from a mask over the other neurons
        flat = xt.reshape(2, 3, m)
        mask = 1.0 - torch.eye(m, dtype=xt.dtype)
        mu_t = flat @ mask / (m - 1)
        var_t = (flat**2) @ mask / (m - 1) - mu_t**2
        e_inv = ((flat - mu_t) ** 2 / (4 * (var_t + lam)) + 0.5).reshape(x.shape)
    y = xt * torch.sigmoid(e_inv)
    y.backward(torch.tensor(go))
    g = simam_backward(x, go, lam, method=method, backend="numpy")
    np.testing.assert_allclose(g, xt.grad.numpy(), rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(simam(x, lam, method=method, backend="numpy"),
                               y.detach().numpy(), rtol=1e-12)


def test_float32_in_float32_out_with_float64_statistics():
    rng = np.random.default_rng(3)
    x64 = rng.normal(loc=1e3, scale=1.0, size=(2, 3, 8, 8))
    x32 = x64.astype(np.float32)
    y32 = simam(x32, backend="numpy")
    assert y32.dtype == np.float32
    want = official(x32.astype(np.float64), 1e-4)
    np.testing.assert_allclose(y32, want, rtol=2e-7)


channels = arrays(np.float64, st.tuples(st.integers(1, 3), st.integers(1, 3), st.integers(2, 9)),
                  elements=st.floats(-1e3, 1e3, allow_nan=False))


@settings(max_examples=60, deadline=None)
@given(channels, st.sampled_from(["paper", "exact"]), st.floats(1e-6, 10.0))
def test_gain_between_sigmoid_half_and_one(x, method, lam):
    y = simam(x, lam, method=method, backend="numpy")
    nz = x != 0
    gain = y[nz] / x[nz]
    assert np.all(gain >= SIG_HALF * (1 - 1e-15))
    assert np.all(gain <= 1.0)
    assert np.all(y[~nz] == 0)


@settings(max_examples=40, deadline=None)
@given(channels, st.sampled_from(["paper", "exact"]), st.randoms(use_true_random=False))
def test_spatial_permutation_permutes_output(x, method, random):
    perm = list(range(x.shape[-1]))
    random.shuffle(perm)
    y = simam(x, method=method, backend="numpy")
    y_perm = simam(x[..., perm], method=method, backend="numpy")
    np.testing.assert_allclose(y_perm, y[..., perm], rtol=1e-12, atol=1e-300)


@settings(max_examples=40, deadline=None)
@given(channels, st.sampled_from(["paper", "exact"]), st.floats(-1e3, 1e3))
def test_channels_are_independent(x, method, value):
    y = simam(x, method=method, backend="numpy")
    x2 = x.copy()
    x2[0, 0] = np.roll(x2[0, 0], 1) + value  # change one channel only
    y2 = simam(x2, method=method, backend="numpy")
    keep = np.ones(x.shape[:2], bool)
    keep[0, 0] = False
    np.testing.assert_array_equal(y2[keep], y[keep])
