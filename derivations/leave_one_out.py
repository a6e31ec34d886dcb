"""Leave-one-out statistics from full-channel statistics (exact SimAM vs official code).

The derivation (seed eq 3-5) uses the mean ``mu_t`` and biased variance
``sigma_t**2`` of the ``M-1`` neurons *other* than ``t``; the official code uses
the full-channel mean ``mu`` and ``v = S2/(M-1)`` with ``S2 = sum_all (x - mu)**2``.
This module proves the O(1) conversion identities

* ``mu_t = (M mu - t)/(M-1)``
* ``t - mu_t = M (t - mu)/(M-1)``
* ``sum_{i != t} (x_i - mu_t)**2 = S2 - M (t - mu)**2/(M-1)``

symbolically (moment sums ``s1_others, s2_others`` of the others) and on a concrete
channel of explicit symbols, and builds both ``1/e_t*`` formulas.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import sympy as sp

from . import energy as en
from . import minimizer as mz

__all__ = [
    "M",
    "S2",
    "Identity",
    "exact_inv_energy_from_full_stats",
    "exact_matches_closed_form",
    "lam",
    "inv_energies_on_channel",
    "loo_identities",
    "loo_identities_concrete",
    "mu_full",
    "paper_inv_energy_from_full_stats",
    "s1_others",
    "s2_others",
    "t",
]

M = sp.Symbol("M", integer=True, positive=True)
"""Number of neurons in the channel (M >= 2)."""
mu_full = sp.Symbol("mu", real=True)
"""Full-channel mean (all M neurons, target included).

The same SymPy symbol as :data:`derivations.energy.mu` (printed ``mu`` in both), which
there is the mean of the M-1 *others*: never mix expressions of the two modules
without substituting one of them first (as :func:`exact_matches_closed_form` does).
"""
S2 = sp.Symbol("S2", nonnegative=True)
"""Full-channel sum of squared deviations ``sum_all (x - mu)**2``."""
s1_others = sp.Symbol("s1_others", real=True)
"""Sum of the M-1 other neurons."""
s2_others = sp.Symbol("s2_others", nonnegative=True)
"""Sum of squares of the M-1 other neurons."""
t = en.t
lam = en.lam


@dataclass(frozen=True)
class Identity:
    """``lhs == rhs`` with ``holds`` computed as ``cancel(lhs - rhs) == 0``."""

    name: str
    lhs: sp.Expr
    rhs: sp.Expr
    holds: bool


def _identity(name: str, lhs: sp.Expr, rhs: sp.Expr) -> Identity:
    """An :class:`Identity` with ``holds`` computed by ``cancel``."""
    return Identity(name, lhs, rhs, sp.cancel(sp.expand(lhs - rhs)) == 0)


def _full_from_others(
    sum_others: sp.Expr, sumsq_others: sp.Expr, t_: sp.Expr, m: sp.Expr
) -> tuple[sp.Expr, sp.Expr]:
    """Full-channel ``(mu, S2)`` from the others' sum, their sum of squares and the target."""
    mu_ = (sum_others + t_) / m
    s2_full = sumsq_others + t_**2 - m * mu_**2  # sum x^2 - M mu^2
    return mu_, s2_full


def _three_identities(
    m: sp.Expr, t_: sp.Expr, mu_: sp.Expr, s2_full: sp.Expr, mu_t: sp.Expr, loo_ss: sp.Expr
) -> list[Identity]:
    """The three identities from ``mu``, ``S2``, the others' mean and squared deviations."""
    n = m - 1
    return [
        _identity("mu_t = (M mu - t)/(M-1)", mu_t, (m * mu_ - t_) / n),
        _identity("t - mu_t = M (t - mu)/(M-1)", t_ - mu_t, m * (t_ - mu_) / n),
        _identity(
            "sum_{i!=t} (x_i - mu_t)^2 = S2 - M (t - mu)^2/(M-1)",
            loo_ss,
            s2_full - m * (t_ - mu_) ** 2 / n,
        ),
    ]


def loo_identities() -> list[Identity]:
    """The three identities for general ``M``, in the others' sums ``s1_others, s2_others``."""
    n = M - 1
    mu_, s2_full = _full_from_others(s1_others, s2_others, t, M)
    mu_t = s1_others / n
    loo_ss = s2_others - s1_others**2 / n  # sum_{i!=t} (x_i - mu_t)^2
    return _three_identities(M, t, mu_, s2_full, mu_t, loo_ss)


def loo_identities_concrete(m: int = 4, target: int = 0) -> list[Identity]:
    """The same identities on a channel of explicit symbols ``x0..x{m-1}`` (direct expansion)."""
    if m < 2 or not 0 <= target < m:
        raise ValueError("need m >= 2 and 0 <= target < m")
    xs = sp.symbols(f"x0:{m}", real=True)
    tt = xs[target]
    others = [x for i, x in enumerate(xs) if i != target]
    n = m - 1
    mu_ = sp.Add(*xs) / m
    s2_full = sp.Add(*[(x - mu_) ** 2 for x in xs])
    mu_t = sp.Add(*others) / n
    loo_ss = sp.Add(*[(x - mu_t) ** 2 for x in others])
    return _three_identities(sp.Integer(m), tt, mu_, s2_full, mu_t, loo_ss)


def exact_inv_energy_from_full_stats() -> sp.Expr:
    """Exact ``1/e_t*`` (true minimiser of eq 2) in full-channel ``mu, S2, M, t, lam``.

    ``(t - mu_t)**2/(4 (sigma_t**2 + lam)) + 1/2`` with ``t - mu_t = M (t-mu)/(M-1)``
    and ``sigma_t**2 = (S2 - M (t-mu)**2/(M-1))/(M-1)``.
    """
    n = M - 1
    d_t = (M * (t - mu_full) / n) ** 2
    var_t = (S2 - M * (t - mu_full) ** 2 / n) / n
    return d_t / (4 * (var_t + lam)) + sp.Rational(1, 2)


def paper_inv_energy_from_full_stats() -> sp.Expr:
    """Official code's ``E_inv = d/(4 (v + lam)) + 1/2``, ``d = (t-mu)**2``, ``v = S2/(M-1)``."""
    v = S2 / (M - 1)
    return (t - mu_full) ** 2 / (4 * (v + lam)) + sp.Rational(1, 2)


def exact_matches_closed_form() -> bool:
    """Check ``exact_inv_energy_from_full_stats`` equals the closed form's ``1/e_min``.

    The closed form is written in the others' ``mu_t, sigma_t``; both sides are
    expressed with the others' sums ``s1_others, s2_others`` and compared with ``cancel``.
    """
    n = M - 1
    mu_, s2_full = _full_from_others(s1_others, s2_others, t, M)
    mu_t = s1_others / n
    var_t = (s2_others - s1_others**2 / n) / n
    cf = mz.closed_form().inv_e_min
    sig = sp.Symbol("sig2", nonnegative=True)  # stands for sigma_t**2
    via_cf = cf.subs(en.sigma**2, sig).subs({en.mu: mu_t, sig: var_t})
    via_full = exact_inv_energy_from_full_stats().subs({mu_full: mu_, S2: s2_full})
    return sp.cancel(sp.together(via_cf - via_full)) == 0


def inv_energies_on_channel(
    channel: Sequence[object], target: int, lam_value: object
) -> dict[str, sp.Expr]:
    """Exact and paper ``1/e_t*`` for ``channel[target]`` as exact SymPy numbers.

    Also returns ``direct``: the closed form evaluated with the others' statistics
    computed directly (no identities), which must equal ``exact``.
    """
    xs = [sp.nsimplify(v, rational=True) for v in channel]
    m = len(xs)
    if m < 2 or not 0 <= target < m:
        raise ValueError("need at least 2 neurons and a valid target index")
    lam_v = sp.nsimplify(lam_value, rational=True)
    tt = xs[target]
    mu_v = sp.Add(*xs) / m
    s2_v = sp.Add(*[(x - mu_v) ** 2 for x in xs])
    others = [x for i, x in enumerate(xs) if i != target]
    mu_t = sp.Add(*others) / (m - 1)
    var_t = sp.Add(*[(x - mu_t) ** 2 for x in others]) / (m - 1)
    stats = {mu_full: mu_v, S2: s2_v, M: m, t: tt, lam: lam_v}
    direct = mz.closed_form().inv_e_min.subs(
        {en.t: tt, en.mu: mu_t, en.sigma: sp.sqrt(var_t), en.lam: lam_v}
    )
    return {
        "exact": sp.nsimplify(exact_inv_energy_from_full_stats().subs(stats)),
        "paper": sp.nsimplify(paper_inv_energy_from_full_stats().subs(stats)),
        "direct": sp.nsimplify(direct),
    }
