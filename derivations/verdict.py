"""What a verdict is: ``proved``, ``refuted`` or ``undecided``, and the :class:`Claim` record.

One home for the three verdict words and their truth values, used by the decision
(:mod:`derivations.decide`), the claim checker (:mod:`derivations.check`) and the
claim catalogue (:mod:`derivations.claims`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import sympy as sp

__all__ = [
    "CLAIM_TIMEOUT",
    "VERDICTS",
    "Claim",
    "Verdict",
    "as_float",
    "combine_verdicts",
    "holds_of",
    "verdict_of",
]

VERDICTS = ("proved", "refuted", "undecided")
"""The three outcomes of deciding a claim."""


def holds_of(verdict: str) -> bool | None:
    """True for ``proved``, False for ``refuted``, None for anything else (``undecided``)."""
    return {"proved": True, "refuted": False}.get(str(verdict))


class Verdict(str):
    """``"proved"``, ``"refuted"`` or ``"undecided"``.

    A ``str`` (JSON writes it as the string); its truth value is ``True`` only for
    ``"proved"``, so code written for the older boolean verdict keeps working.
    """

    __slots__ = ()

    def __bool__(self) -> bool:
        return str.__eq__(self, "proved")

    @property
    def holds(self) -> bool | None:
        """True if proved, False if refuted, None if undecided."""
        return holds_of(self)


def verdict_of(holds: bool | None) -> Verdict:
    """The :class:`Verdict` of a truth value: True proved, False refuted, None undecided."""
    return Verdict({True: "proved", False: "refuted"}.get(holds, "undecided"))  # type: ignore[arg-type]


def combine_verdicts(verdicts: Iterable[str]) -> Verdict:
    """Verdict of a conjunction: refuted if any part is, proved only if every part is."""
    found = {str(v) for v in verdicts}
    if "refuted" in found:
        return Verdict("refuted")
    return Verdict("proved" if found == {"proved"} else "undecided")


@dataclass(frozen=True)
class Claim:
    """One claim: where it is from, what it says, and the computed verdict.

    ``verdict`` is a :class:`Verdict` (``proved``/``refuted``/``undecided``),
    ``holds`` the same as True/False/None, ``engine`` what decided it.
    ``derived`` is what the derivation gives instead (or the proof summary);
    ``counterexample`` is set for refuted claims (values with both sides).
    """

    source: str
    name: str
    statement: str
    verdict: Verdict
    derived: str
    counterexample: dict[str, Any] | None
    note: str
    holds: bool | None = None
    engine: str = ""

    def __post_init__(self) -> None:
        v = self.verdict
        if isinstance(v, bool):
            v = verdict_of(v)
        v = Verdict(v)
        if v not in VERDICTS:
            raise ValueError(f"verdict must be proved/refuted/undecided, got {v!r}")
        object.__setattr__(self, "verdict", v)
        object.__setattr__(self, "holds", v.holds)


# --- shared by the claim modules (claims_*.py) --------------------------------------------
CLAIM_TIMEOUT = 30.0
"""Seconds per solver call in the claim catalogue (its claims take milliseconds)."""


def as_float(value: Any) -> float:
    """A SymPy number as a float, evaluated with 30 digits first (for counterexamples)."""
    return float(sp.N(value, 30))
