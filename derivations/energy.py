"""SimAM's per-neuron energy (seed eq 2), its symbols, and its collapse to moments.

The energy of a target neuron ``t`` is collapsed with moment symbols: the average
over the ``M-1`` other neurons depends on them only through their mean ``mu`` and
variance ``sigma**2``.  Its minimiser is in :mod:`derivations.minimizer`, the
uniqueness proof in :mod:`derivations.uniqueness`.

Conventions: ``t`` is the target neuron, ``mu`` and ``sigma**2`` are the mean and
biased (``1/(M-1)``) variance of the ``M-1`` *other* neurons of the channel,
``lam`` the regulariser, ``y_t`` / ``y_o`` the target / other labels.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction

import sympy as sp

__all__ = [
    "B",
    "PAPER_LABELS",
    "W",
    "collapsed_energy",
    "energy",
    "energy_from_moments",
    "full_energy_concrete",
    "lam",
    "m1",
    "m2",
    "mu",
    "per_neuron_energy",
    "sigma",
    "stationarity_equations",
    "t",
    "to_label",
    "y_o",
    "y_t",
]


# --- symbols -----------------------------------------------------------------
t = sp.Symbol("t", real=True)
"""Target neuron value."""
mu = sp.Symbol("mu", real=True)
"""Mean of the M-1 other neurons."""
sigma = sp.Symbol("sigma", nonnegative=True)
"""Standard deviation (biased, 1/(M-1)) of the M-1 other neurons; may be 0."""
lam = sp.Symbol("lam", positive=True)
"""Regulariser lambda > 0."""
y_t = sp.Symbol("y_t", real=True)
"""Label of the target neuron (1 in the paper)."""
y_o = sp.Symbol("y_o", real=True)
"""Label of the other neurons (-1 in the paper)."""
W = sp.Symbol("w", real=True)
"""Weight of the linear separator."""
B = sp.Symbol("b", real=True)
"""Bias of the linear separator."""
m1 = sp.Symbol("m1", real=True)
"""First moment (mean of x_i) of the other neurons."""
m2 = sp.Symbol("m2", nonnegative=True)
"""Second moment (mean of x_i**2) of the other neurons."""
_x = sp.Symbol("x", real=True)  # a generic "other" neuron

Label = int | Fraction | sp.Expr
PAPER_LABELS: tuple[int, int] = (1, -1)


def to_label(value: object) -> sp.Expr:
    """Convert a label (int, Fraction, exact str, float, SymPy expr) to an exact SymPy value."""
    if isinstance(value, bool):
        raise ValueError(f"label must be a number, got bool {value!r}")
    if isinstance(value, sp.Expr):
        return value
    if isinstance(value, int):
        return sp.Integer(value)
    if isinstance(value, Fraction):
        return sp.Rational(value.numerator, value.denominator)
    if isinstance(value, float | str):
        try:
            frac = Fraction(str(value).strip())
        except (ValueError, ZeroDivisionError) as exc:
            raise ValueError(f"label must be a finite rational number, got {value!r}") from exc
        return sp.Rational(frac.numerator, frac.denominator)
    raise ValueError(f"unsupported label type {type(value).__name__}: {value!r}")


def _labels(labels: Sequence[object]) -> tuple[sp.Expr, sp.Expr]:
    if len(labels) != 2:
        raise ValueError(f"labels must be a pair (y_t, y_o), got {labels!r}")
    lt, lo = to_label(labels[0]), to_label(labels[1])
    if (lt - lo).is_zero:
        raise ValueError(f"labels must differ (y_t != y_o), got {labels!r}")
    return lt, lo


# --- energy --------------------------------------------------------------------
def energy_from_moments(w: sp.Expr = W, b: sp.Expr = B, label_o: sp.Expr = y_o) -> sp.Expr:
    """Mean over the others of ``(y_o - (w x_i + b))**2`` written with moments ``m1, m2``.

    The square is expanded as a polynomial in a generic neuron ``x``; the mean of
    ``x**k`` is then replaced by the k-th moment (``1, m1, m2``).
    """
    poly = sp.Poly(sp.expand((label_o - (w * _x + b)) ** 2), _x)
    moments = {0: sp.Integer(1), 1: m1, 2: m2}
    return sp.expand(sum(c * moments[k] for (k,), c in poly.terms()))


def collapsed_energy(w: sp.Expr = W, b: sp.Expr = B, label_o: sp.Expr = y_o) -> sp.Expr:
    """The claimed collapse ``(y_o - w mu - b)**2 + w**2 sigma**2`` of the average term."""
    return (label_o - w * mu - b) ** 2 + w**2 * sigma**2


def per_neuron_energy(
    w: sp.Expr = W, b: sp.Expr = B, labels: Sequence[object] = (y_t, y_o)
) -> sp.Expr:
    """Seed eq 2 for one neuron, with the average over the others collapsed.

    Derived (not assumed): ``energy_from_moments`` with ``m1 = mu`` and
    ``m2 = sigma**2 + mu**2`` is checked to equal ``collapsed_energy`` before use.
    """
    lt, lo = (to_label(v) for v in labels)
    avg = energy_from_moments(W, B, lo).subs({m1: mu, m2: sigma**2 + mu**2})
    collapsed = collapsed_energy(W, B, lo)
    if sp.expand(avg - collapsed) != 0:  # pragma: no cover - would mean the algebra broke
        raise AssertionError("moment expansion does not collapse")
    e = collapsed + (lt - (W * t + B)) ** 2 + lam * W**2
    return e.xreplace({W: w, B: b}) if (w, b) != (W, B) else e


# deprecated alias: ``energy`` is also this module's name (and the numeric
# ``simam_ref.numeric_energy.energy``); new code says ``per_neuron_energy``
energy = per_neuron_energy


def full_energy_concrete(
    others: Sequence[object],
    target: object,
    w: object,
    b: object,
    lam_value: object,
    labels: Sequence[object] = PAPER_LABELS,
) -> sp.Expr:
    """Brute-force seed eq 2 on a concrete channel (explicit sum, exact arithmetic)."""
    lt, lo = (to_label(v) for v in labels)
    xs = [sp.nsimplify(v, rational=True) for v in others]
    if not xs:
        raise ValueError("need at least one other neuron (M >= 2)")
    tt, ww, bb, ll = (sp.nsimplify(v, rational=True) for v in (target, w, b, lam_value))
    avg = sp.Rational(1, len(xs)) * sum((lo - (ww * x + bb)) ** 2 for x in xs)
    return sp.nsimplify(avg + (lt - (ww * tt + bb)) ** 2 + ll * ww**2)


def stationarity_equations(labels: Sequence[object] = (y_t, y_o)) -> tuple[sp.Expr, sp.Expr]:
    """``(de/dw, de/db)`` of the collapsed energy; the minimiser makes both zero."""
    e = per_neuron_energy(W, B, labels)
    return sp.expand(sp.diff(e, W)), sp.expand(sp.diff(e, B))
