"""Tests for derivations.decide and its exact re-check (derivations.evaluation).

The verdicts on the claim corpus are in tests/test_check.py; these are the
decision's own guards: the zero test, z3 imported lazily, a clear error without it.
"""

from __future__ import annotations

import sys
from fractions import Fraction

import pytest
import sympy as sp

from derivations import decide as dc
from derivations.parsing import parse_term


# --- found in review: each test fails without its fix ---------------------------------------
def _alarm(seconds: int):
    """Context manager turning a hang into a test failure (pure-Python loops only)."""
    import contextlib
    import signal

    @contextlib.contextmanager
    def guard():
        def boom(*_):
            raise TimeoutError(f"took more than {seconds} s")

        old = signal.signal(signal.SIGALRM, boom)
        signal.alarm(seconds)
        try:
            yield
        finally:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, old)

    return guard()

def test_zero_test_does_not_start_with_the_minimal_polynomial():
    # 3**(1/4096) - 1 has a minimal polynomial of degree 4096: the re-check of a
    # counterexample hung there; a certified 50-digit value shows it is not 0
    tower = sp.Integer(3)
    for _ in range(12):
        tower = sp.sqrt(tower)
    with _alarm(20):
        assert dc._is_zero(tower - 1) is False
        term = parse_term("sqrt(" * 6 + "3" + ")" * 6 + " - 1")
        assert dc._refutes(term, ("num", Fraction(0)), {}, {})[0]
    # exact zeros are still zeros (evalf cannot certify them; the polynomial does)
    assert dc._is_zero(10**40 * (sp.sqrt(2) + sp.sqrt(3) - sp.sqrt(5 + 2 * sp.sqrt(6))))
    root = sp.CRootOf(sp.Poly([1, 0, 0, 0, -1, -1], sp.Symbol("x")), 0)
    assert dc._is_zero(root**5 - root - 1)
    assert not dc._is_zero(root**5 - root - 1 + sp.Rational(1, 10**45))

def test_missing_z3_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "z3", None)
    with pytest.raises(ImportError, match="pip install z3-solver"):
        dc.decide_terms(("var", "t"), ("var", "t"))

def test_zero_test_at_a_root_is_one_polynomial_remainder():
    # at a counterexample t = CRootOf(P, k) the claim's denominator is exactly 0; the
    # minimal polynomial of the whole expression took seconds per test (x several tests)
    x = sp.Symbol("x")
    root = sp.CRootOf(sp.Poly(x**7 - 3 * x**5 + x**2 - 5, x), 0)
    with _alarm(3):
        assert dc._is_zero((root**7 - 3 * root**5 + root**2 - 5) / (root**2 + 2))
        assert not dc._is_zero((root**7 - 3 * root**5 + root**2 - 4) / (root**2 + 2))
        assert dc._zero_in_one_root(sp.sqrt(2) * root) is None  # not of that form

def test_z3_is_not_imported_by_the_package():
    import subprocess

    code = "import sys, derivations, simam_ref; print('z3' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize(
    ("claimed", "derived", "verdict"),
    [
        ("(t-mu)/((t-mu)**2 + 2*sigma**2 + 2*lam)", "2*(t-mu)/(2*(t-mu)**2 + 4*sigma**2 + 4*lam)",
         "proved"),
        ("t*(t - mu)/(t - mu)", "t", "refuted"),  # undefined where t = mu
        ("t + 1", "t", "refuted"),
        ("lam*(t - 1)/lam", "t - 1", "proved"),  # lam > 0: the denominator never vanishes
        ("sqrt(t**2)", "Abs(t)", None),  # radicals: the cross-check does not answer
    ],
)
def test_sympy_cross_check_on_its_own(claimed, derived, verdict):
    assert dc.sympy_decide(parse_term(claimed), parse_term(derived)) == verdict
