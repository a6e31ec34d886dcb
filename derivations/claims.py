"""Every claim of the SimAM paper / seed post, with a *computed* verdict: the catalogue.

Each algebraic :class:`Claim` is decided over the reals by the same engine as
``simam check`` (:mod:`derivations.decide`: z3's ``nlsat``, with SymPy as the
source of the derived forms and as a cross-check); the seed's code is judged by
running it. Nothing is hard-coded. ``verdict`` is ``"proved"``, ``"refuted"`` or
``"undecided"``; a refuted claim carries a concrete counterexample with both values.

The claims live by topic: :mod:`derivations.claims_equations` (eq 3-5 and the
official ``E_inv``), :mod:`derivations.claims_loo` (leave-one-out statistics),
:mod:`derivations.claims_derivation` (collapse, uniqueness, general labels); the
record and its verdict are :mod:`derivations.verdict`. This module lists them in
reading order and judges the seed's code.
"""

from __future__ import annotations

# the official code's NumPy transcription lives on the numeric side; re-exported here
# under its historical name (``derivations.official_forward_numpy``)
from simam_ref.official import official_forward as official_forward_numpy

from .claims_derivation import collapse_claim, general_label_claims, uniqueness_claim
from .claims_equations import equation_claims
from .claims_loo import loo_claims
from .seed_code import SEED_CODE, run_seed_code
from .verdict import Claim, Verdict, verdict_of

__all__ = [
    "SEED_CODE",
    "Claim",
    "Verdict",
    "all_claims",
    "official_forward_numpy",
    "run_seed_code",
    "seed_code_claim",
]

_EXEC = "execution (compile + run)"


def seed_code_claim() -> Claim:
    """The seed's PyTorch snippet, compiled verbatim and run: refuted if it fails or is wrong."""
    rep = run_seed_code()
    counter = {
        k: rep[k] for k in ("syntax_error", "backend", "shape_2345", "shape_2222") if k in rep
    }
    return Claim(
        "seed",
        "seed code runs",
        "the PyTorch snippet in the seed post runs and computes SimAM",
        verdict_of(bool(rep["runs_correctly"])),
        "needs a parameter name other than `lambda` and X.mean(dim=[2,3], keepdim=True) "
        "(as the official module)",
        None if rep["runs_correctly"] else counter,
        "compiled verbatim, then run after renaming `lambda` -> `lam`",
        engine=f"{_EXEC}, backend {rep['backend']}",
    )


def all_claims() -> list[Claim]:
    """All claims with computed verdicts (a few seconds; closed forms are cached).

    Each verdict is a :class:`Verdict` string (``proved``/``refuted``/``undecided``)
    that is truthy only when proved; ``engine`` says what decided it.
    """
    return [
        collapse_claim(),
        *equation_claims(),
        *loo_claims(),
        uniqueness_claim(),
        *general_label_claims(),
        seed_code_claim(),
    ]
