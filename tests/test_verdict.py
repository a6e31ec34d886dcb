"""Tests for derivations.verdict: the three verdict words, their truth values, the record."""

from __future__ import annotations

import json

import pytest

from derivations import claims as cl
from derivations import verdict as vd


def test_verdict_strings_serialise_as_strings():
    v = vd.Verdict("refuted")
    assert json.dumps({"verdict": v}) == '{"verdict": "refuted"}'
    assert not v and vd.Verdict("proved") and not vd.Verdict("undecided")
    assert vd.Verdict("undecided").holds is None
    with pytest.raises(ValueError):
        vd.Claim("paper", "x", "x", vd.Verdict("maybe"), "d", None, "")


def test_claims_reexports_the_record():
    assert cl.Verdict is vd.Verdict and cl.Claim is vd.Claim


@pytest.mark.parametrize(
    ("word", "holds"), [("proved", True), ("refuted", False), ("undecided", None), ("x", None)]
)
def test_holds_of(word, holds):
    assert vd.holds_of(word) is holds
    if word in vd.VERDICTS:
        assert vd.Verdict(word).holds is holds
        assert vd.verdict_of(holds) == word


@pytest.mark.parametrize(
    ("parts", "expected"),
    [
        (["proved", "proved"], "proved"),
        (["proved", "undecided"], "undecided"),
        (["undecided", "refuted", "proved"], "refuted"),
        ([], "undecided"),
    ],
)
def test_combine_verdicts(parts, expected):
    assert vd.combine_verdicts(parts) == expected


def test_claim_accepts_a_boolean_verdict():
    c = vd.Claim("paper", "x", "x", True, "d", None, "")  # older boolean use
    assert c.verdict == "proved" and c.holds is True and isinstance(c.verdict, vd.Verdict)
    assert vd.Claim("paper", "x", "x", False, "d", {"t": 1}, "").holds is False


def test_as_float_uses_thirty_digits():
    import sympy as sp

    assert vd.as_float(sp.Rational(1, 3)) == 1 / 3
    assert vd.as_float(sp.sqrt(2)) == 2**0.5
