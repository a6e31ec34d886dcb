"""The closed-form minimiser ``(w_t, b_t)`` of the energy and the minimum ``e_t*``.

Derived, not typed: the stationarity equations of
:func:`derivations.energy.per_neuron_energy`
are solved as a 2x2 linear system (Cramer's rule), for numeric or symbolic labels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import sympy as sp

from .energy import PAPER_LABELS, B, W, _labels, per_neuron_energy, stationarity_equations

__all__ = ["ClosedForm", "closed_form"]


# --- closed form -------------------------------------------------------------------
@dataclass(frozen=True)
class ClosedForm:
    """Minimiser ``(w_t, b_t)`` of the energy, the minimum ``e_min`` and ``1/e_min``."""

    labels: tuple[sp.Expr, sp.Expr]
    w_t: sp.Expr
    b_t: sp.Expr
    e_min: sp.Expr
    inv_e_min: sp.Expr

    def as_dict(self) -> dict[str, sp.Expr]:
        """The four expressions keyed ``w_t, b_t, e_t, inv_e_t`` (the CLI's names)."""
        return {"w_t": self.w_t, "b_t": self.b_t, "e_t": self.e_min, "inv_e_t": self.inv_e_min}


@lru_cache(maxsize=64)
def _closed_form_cached(lt: sp.Expr, lo: sp.Expr) -> ClosedForm:
    eqs = stationarity_equations((lt, lo))
    # a 2x2 linear system: Cramer's rule (same expressions as sp.solve, several times faster)
    a, rhs = sp.linear_eq_to_matrix(eqs, [W, B])
    det = sp.expand(a[0, 0] * a[1, 1] - a[0, 1] * a[1, 0])
    if det == 0:  # pragma: no cover - the Hessian is positive definite
        raise AssertionError("expected a unique stationary point")
    w_sol = sp.factor(sp.cancel((rhs[0] * a[1, 1] - a[0, 1] * rhs[1]) / det))
    b_sol = sp.factor(sp.cancel((a[0, 0] * rhs[1] - rhs[0] * a[1, 0]) / det))
    e_min = sp.factor(sp.cancel(per_neuron_energy(w_sol, b_sol, (lt, lo))))
    inv = sp.factor(sp.cancel(1 / e_min))
    return ClosedForm((lt, lo), w_sol, b_sol, e_min, inv)


def closed_form(labels: Sequence[object] = PAPER_LABELS) -> ClosedForm:
    """Solve the stationarity equations for ``(w, b)``; cached per label pair.

    ``labels`` may be numbers (``(1, -1)``, the paper) or the symbols ``(y_t, y_o)``.
    """
    lt, lo = _labels(labels)
    return _closed_form_cached(lt, lo)
