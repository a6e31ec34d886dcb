"""Tests for derivations.uniqueness: the Hessian is positive definite (Sylvester)."""

from __future__ import annotations

import random

import numpy as np
import sympy as sp

from derivations import energy as en
from derivations import uniqueness as uq


def test_hessian_positive_definite_by_sylvester():
    proof = uq.hessian_positive_definite()
    h = uq.hessian()
    assert proof.is_positive_definite and all(proof.positive)
    assert len(proof.minors) == 2
    assert sp.expand(proof.minors[1] - h.det()) == 0
    target = 4 * ((en.t - en.mu) ** 2 + 2 * en.sigma**2 + 2 * en.lam)
    assert sp.expand(proof.minors[1] - target) == 0
    for m, c in zip(proof.minors, proof.certificates, strict=True):
        assert sp.expand(m - c) == 0
    assert proof.certificates[1].has((en.t - en.mu) ** 2)
    # the Hessian is label-independent
    assert uq.hessian((2, 0)) == h
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
    assert uq.nonnegative_terms(en.sigma**2 + en.lam)
    assert not uq.nonnegative_terms(en.t**2 - en.lam)
    assert not uq.nonnegative_terms(en.sigma**2)  # nonnegative but no positive term
    cs = uq.complete_square(en.t**2 - 4 * en.t * en.mu + en.lam, en.t)
    assert sp.expand(cs - (en.t**2 - 4 * en.t * en.mu + en.lam)) == 0
    assert cs.has((en.t - 2 * en.mu) ** 2)
