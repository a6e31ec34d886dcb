"""Tests for derivations.seed_code: the seed's snippet is verbatim and fails both ways.

It does not compile (``lambda`` is a keyword) and, once renamed, its mean without
``keepdim=True`` breaks on non-square maps and is wrong on square ones; the fixed
snippet agrees with the official formula.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from derivations import claims as cl
from derivations import seed_code

SEED = Path(__file__).resolve().parents[1] / "shared" / "seed" / "000_753d9180cf6510c3.txt"
SEED_ALT = Path("/work/shared/seed/000_753d9180cf6510c3.txt")


def test_seed_code_is_verbatim_from_seed():
    path = SEED if SEED.exists() else SEED_ALT
    if not path.exists():
        pytest.skip("seed text not available")
    assert seed_code.SEED_CODE in path.read_text(encoding="utf-8")


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_seed_code_fails_both_ways(backend):
    if backend == "torch":
        pytest.importorskip("torch")
    rep = seed_code.run_seed_code(backend)
    assert rep["backend"] == backend
    assert rep["compiles"] is False and "syntax" in rep["syntax_error"]
    assert rep["shape_2345"]["runs"] is False
    assert rep["shape_2222"]["runs"] is True
    assert rep["shape_2222"]["matches_official"] is False
    assert rep["shape_2222"]["max_abs_diff_vs_official"] > 1e-3
    assert rep["runs_correctly"] is False


def test_fixed_seed_code_would_pass(monkeypatch):
    fixed = seed_code.SEED_CODE.replace("lambda", "lam")
    fixed = fixed.replace("dim=[2,3])", "dim=[2,3], keepdim=True)")
    monkeypatch.setattr(seed_code, "SEED_CODE", fixed)
    rep = seed_code.run_seed_code("numpy")
    assert rep["compiles"] and rep["runs_correctly"]


def test_claims_reexports_the_seed_code():
    assert cl.SEED_CODE is seed_code.SEED_CODE and cl.run_seed_code is seed_code.run_seed_code
