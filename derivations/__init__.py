"""Symbolic truth for SimAM: energy, closed form, Hessian, leave-one-out, backward, claims.

Everything is derived with SymPy (nothing is typed as an answer) and every
verdict in :func:`all_claims` / :func:`check_claim` is computed.

One topic per submodule: ``energy`` (the energy and its collapse), ``minimizer``
(closed form), ``uniqueness`` (the Hessian proof), ``leave_one_out``, ``backward``,
``display`` (pretty-printing); the claims: ``verdict`` (the record), ``claims`` (the
catalogue) from ``claims_equations``, ``claims_loo``, ``claims_derivation`` and
``seed_code``; ``simam check``: ``parsing`` (safe parsing) and ``check`` (deciding a
claim), on ``decide`` (the z3 decision, built on ``terms``, ``translate``,
``evaluation`` and ``crosscheck``).
The energy function is ``energy.per_neuron_energy`` (``energy.energy`` is a
deprecated alias), so that ``derivations.energy`` is only the module.
"""

from .backward import (
    check_vjp_formula,
    forward_exprs,
    forward_jacobian,
    inv_energy_exprs,
    prove_vjp_identity,
    vjp_closed_form,
)
from .check import CheckResult, ClaimSyntaxError, check_claim, parse_rhs
from .claims import Claim, all_claims, official_forward_numpy
from .display import pretty_str
from .energy import (
    collapsed_energy,
    energy_from_moments,
    full_energy_concrete,
    per_neuron_energy,
    stationarity_equations,
)
from .leave_one_out import (
    Identity,
    exact_inv_energy_from_full_stats,
    exact_matches_closed_form,
    inv_energies_on_channel,
    loo_identities,
    loo_identities_concrete,
    paper_inv_energy_from_full_stats,
)
from .minimizer import ClosedForm, closed_form
from .seed_code import SEED_CODE, run_seed_code
from .uniqueness import HessianProof, hessian, hessian_positive_definite

__all__ = [
    "SEED_CODE",
    "CheckResult",
    "Claim",
    "ClaimSyntaxError",
    "ClosedForm",
    "HessianProof",
    "Identity",
    "all_claims",
    "check_claim",
    "check_vjp_formula",
    "closed_form",
    "collapsed_energy",
    "energy_from_moments",
    "exact_inv_energy_from_full_stats",
    "exact_matches_closed_form",
    "forward_exprs",
    "forward_jacobian",
    "full_energy_concrete",
    "hessian",
    "hessian_positive_definite",
    "inv_energies_on_channel",
    "inv_energy_exprs",
    "loo_identities",
    "loo_identities_concrete",
    "official_forward_numpy",
    "paper_inv_energy_from_full_stats",
    "per_neuron_energy",
    "parse_rhs",
    "pretty_str",
    "prove_vjp_identity",
    "run_seed_code",
    "stationarity_equations",
    "vjp_closed_form",
]
