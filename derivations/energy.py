"""SimAM energy (seed eq 2), its closed-form minimiser and the Hessian proof.

Everything here is *derived*: the per-neuron energy is collapsed with moment
symbols, the minimiser comes from ``sympy.solve`` on the stationarity equations,
and positive definiteness of the Hessian is shown by hand with Sylvester's
criterion (``Matrix.is_positive_definite`` may answer ``None``).

Conventions: ``t`` is the target neuron, ``mu`` and ``sigma**2`` are the mean and
biased (``1/(M-1)``) variance of the ``M-1`` *other* neurons of the channel,
``lam`` the regulariser, ``y_t`` / ``y_o`` the target / other labels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache

import sympy as sp

__all__ = [
    "B",
    "HessianProof",
    "ClosedForm",
    "W",
    "closed_form",
    "collapsed_energy",
    "complete_square",
    "energy",
    "energy_from_moments",
    "full_energy_concrete",
    "hessian",
    "hessian_positive_definite",
    "lam",
    "m1",
    "m2",
    "mu",
    "nonnegative_terms",
    "pretty_str",
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


def energy(w: sp.Expr = W, b: sp.Expr = B, labels: Sequence[object] = (y_t, y_o)) -> sp.Expr:
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
    e = energy(W, B, labels)
    return sp.expand(sp.diff(e, W)), sp.expand(sp.diff(e, B))


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
    e_min = sp.factor(sp.cancel(energy(w_sol, b_sol, (lt, lo))))
    inv = sp.factor(sp.cancel(1 / e_min))
    return ClosedForm((lt, lo), w_sol, b_sol, e_min, inv)


def closed_form(labels: Sequence[object] = PAPER_LABELS) -> ClosedForm:
    """Solve the stationarity equations for ``(w, b)``; cached per label pair.

    ``labels`` may be numbers (``(1, -1)``, the paper) or the symbols ``(y_t, y_o)``.
    """
    lt, lo = _labels(labels)
    return _closed_form_cached(lt, lo)


# --- Hessian / uniqueness ------------------------------------------------------------
def hessian(labels: Sequence[object] = (y_t, y_o)) -> sp.Matrix:
    """Hessian of the energy in ``(w, b)`` (constant: the energy is quadratic)."""
    return sp.hessian(energy(W, B, labels), (W, B)).applyfunc(sp.expand)


def complete_square(expr: sp.Expr, var: sp.Symbol) -> sp.Expr:
    """Rewrite a quadratic ``a v**2 + c1 v + c0`` as ``a (v + c1/(2a))**2 + (c0 - c1**2/(4a))``.

    Returns ``expr`` unchanged if it is not quadratic in ``var``. The result is
    checked to expand back to ``expr``.
    """
    poly = sp.Poly(sp.expand(expr), var)
    if poly.degree() != 2:
        return expr
    a, c1, c0 = (poly.coeff_monomial(var**k) for k in (2, 1, 0))
    shift = sp.cancel(c1 / (2 * a))
    rest = sp.expand(sp.cancel(c0 - c1**2 / (4 * a)))
    out = sp.Add(a * (var + shift) ** 2, *sp.Add.make_args(rest), evaluate=False)
    if sp.expand(out - expr) != 0:  # pragma: no cover
        raise AssertionError("completing the square failed")
    return out


def nonnegative_terms(expr: sp.Expr) -> bool:
    """True when ``expr`` is a sum of terms each provably >= 0 with at least one > 0."""
    terms = sp.Add.make_args(expr)
    return all(term.is_nonnegative for term in terms) and any(term.is_positive for term in terms)


@dataclass(frozen=True)
class HessianProof:
    """Sylvester's criterion, by hand: leading minors, a certificate form for each, verdict.

    ``certificates[k]`` equals ``minors[k]`` identically (checked) and is written as
    a sum of terms that are visibly nonnegative (squares, ``sigma**2``) plus a
    positive one (``lam``); ``positive[k]`` is computed from that structure.
    """

    hessian: sp.Matrix
    minors: tuple[sp.Expr, ...]
    certificates: tuple[sp.Expr, ...]
    positive: tuple[bool, ...]
    is_positive_definite: bool


def _certificate(minor: sp.Expr) -> sp.Expr:
    """Pull out the numeric content, then complete the square in ``t`` (then ``mu``)."""
    content, primitive = sp.factor_terms(sp.expand(minor)).as_coeff_Mul()
    cert = primitive
    for var in (t, mu):
        if sp.Poly(sp.expand(cert), var).degree() == 2:
            cert = complete_square(cert, var)
            break
    if content == 1:
        return cert
    return sp.Mul(content, cert, evaluate=False)


def _is_positive(cert: sp.Expr) -> bool:
    coeff, rest = cert.as_coeff_Mul()
    if coeff <= 0:
        return False
    if rest.is_positive is True:
        return True
    return nonnegative_terms(rest)


def hessian_positive_definite(labels: Sequence[object] = (y_t, y_o)) -> HessianProof:
    """Prove the Hessian positive definite (so the stationary point is the unique global min)."""
    h = hessian(labels)
    minors = tuple(sp.expand(h[:k, :k].det()) for k in range(1, h.shape[0] + 1))
    certs = tuple(_certificate(m) for m in minors)
    for m, c in zip(minors, certs, strict=True):
        if sp.expand(m - c) != 0:  # pragma: no cover
            raise AssertionError("certificate differs from minor")
    positive = tuple(_is_positive(c) for c in certs)
    return HessianProof(h, minors, certs, positive, all(positive))


@lru_cache(maxsize=256)
def pretty_str(expr: sp.Expr) -> str:
    """Readable string: factored, quadratics in ``t`` written as completed squares.

    Display only (e.g. ``2*(t - mu)/((t - mu)**2 + 2*lam + 2*sigma**2)``); never
    used to decide anything.
    """
    num, den = sp.fraction(sp.factor(sp.cancel(expr)))

    def tidy(part: sp.Expr) -> sp.Expr:
        content, prim = part.as_content_primitive()
        factors: list[sp.Expr] = [] if content == 1 else [content]
        for fac in sp.Mul.make_args(prim):
            base, ex = fac.as_base_exp()
            if base.has(t) and base.is_polynomial(t):
                poly = sp.Poly(base, t)
                if poly.degree() == 2 and poly.LC().is_Number:
                    base = complete_square(base, t)
            factors.append(base if ex == 1 else sp.Pow(base, ex, evaluate=False))
        return factors[0] if len(factors) == 1 else sp.Mul(*factors, evaluate=False)

    top, bottom = tidy(num), tidy(den)
    top_s = sp.sstr(top, order="none")
    if den == 1:
        return top_s
    if isinstance(top, sp.Add):
        top_s = f"({top_s})"
    bottom_s = sp.sstr(bottom, order="none")
    if not bottom.is_Atom:
        bottom_s = f"({bottom_s})"
    return f"{top_s}/{bottom_s}"
