"""The per-neuron math of :mod:`simam_ref.kernels.neuron`, in the compiled forms the
CPU kernels call, against the NumPy reference (an independent transcription)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from numba import njit

from simam_ref import reference
from simam_ref.kernels import neuron

# the compiled forms the CPU kernels call
from simam_ref.kernels.cpu.backward import (
    _exact_ab,
    _exact_e,
    _exact_ib,
    _grad,
    _paper_ab,
    _paper_e,
)


@njit
def _channel(x, go, s, mu, s2, lam, exact, e_out, grad_out):
    """Inverse energy and input gradient of one channel from the shared functions."""
    m = x.shape[0]
    n = m - 1.0
    inv_n = 1.0 / n
    r = m / n
    k = 1.0 / (4.0 * (s2 * inv_n + lam))
    qa = np.empty(m)
    us = np.empty(m)
    gg = np.empty(m)
    p1 = 0.0
    p2 = 0.0
    for i in range(m):
        xs = x[i] * s
        u = xs - mu
        d = u * u
        if exact:
            ib = _exact_ib(d, s2, r, inv_n, lam)
            e = _exact_e(d, ib, r)
            alpha, beta = _exact_ab(u, ib, r, inv_n)
        else:
            e = _paper_e(d, k)
            alpha, beta = _paper_ab(u, k, inv_n)
        t = math.exp(-e)
        g = 1.0 / (1.0 + t)
        q = go[i] * xs * g * (t * g)
        e_out[i] = e
        us[i] = u
        gg[i] = go[i] * g
        qa[i] = q * alpha
        p1 += q * alpha
        p2 += q * beta
    for i in range(m):
        grad_out[i] = _grad(gg[i], qa[i], p1 / m, us[i], p2)


@pytest.mark.parametrize("exact", [False, True], ids=["paper", "exact"])
@pytest.mark.parametrize("lam", [1e-4, 0.5])
def test_shared_neuron_math_matches_the_reference(exact, lam):
    rng = np.random.default_rng(7)
    x2 = rng.normal(size=(6, 23)) * np.array([[1e-3], [1.0], [3.0], [1e3], [1e-30], [7.0]])
    x2[5, 4] = 40.0  # an outlier: the exact method's r d close to S2
    g2 = rng.normal(size=x2.shape)
    e_ref, _, st = reference.inverse_energy(x2, lam, exact)
    grad_ref = np.empty_like(x2)
    reference.backward_2d(x2, g2, lam, exact, grad_ref)
    for c in range(x2.shape[0]):
        e = np.empty(x2.shape[1])
        grad = np.empty(x2.shape[1])
        _channel(x2[c], g2[c], st.scale[c, 0], st.mean[c, 0], st.s2[c, 0], st.lam[c, 0],
                 exact, e, grad)
        np.testing.assert_allclose(e, e_ref[c], rtol=1e-13)
        np.testing.assert_allclose(grad, grad_ref[c], rtol=1e-11,
                                   atol=1e-13 * np.abs(grad_ref[c]).max())


def test_exact_terms_vanish_at_the_mean_with_a_huge_reciprocal():
    """``u = 0`` gives ``alpha = beta = 0`` even when ``1/B`` is near float64's limit."""
    alpha, beta = neuron.exact_alpha_beta(0.0, 1e300, 1.5, 0.5)
    assert (alpha, beta) == (0.0, 0.0)
    # var clipped at 0: S2 below r d by rounding gives 1/B = 1/(4 lam), not a negative B
    assert neuron.exact_reciprocal(1.0, 1.4, 1.5, 0.5, 0.25) == 1.0
