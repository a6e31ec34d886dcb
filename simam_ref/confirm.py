"""Numeric confirmation of the closed form with SciPy, and of the NumPy reference.

Each function draws random channels, solves the problem independently and returns
a :class:`Confirmation` with the worst disagreement found and the tolerance it is
held to.  ``simam verify`` prints them; the tests assert them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass, field

import numpy as np
from scipy import linalg, optimize

from .numeric_energy import closed_form_weights, energy, energy_gradient, minimum_energy
from .official import official_forward
from .reference import backward_2d, forward_2d

__all__ = [
    "Confirmation",
    "all_confirmations",
    "confirm_backward_check_grad",
    "confirm_energy_check_grad",
    "confirm_lstsq",
    "confirm_minimize",
    "confirm_reference_vs_official",
    "official_forward",
    "paper_exact_gap",
]


@dataclass(frozen=True)
class Confirmation:
    """One numeric check: ``passed`` is ``max_error <= tolerance``."""

    name: str
    description: str
    max_error: float
    tolerance: float
    cases: int
    details: dict = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return bool(np.isfinite(self.max_error) and self.max_error <= self.tolerance)

    def to_json(self) -> dict:
        return {**asdict(self), "passed": self.passed}


def _channels(rng: np.random.Generator, count: int, sizes=(2, 3, 5, 9, 16)) -> Iterator:
    for k in range(count):
        m = sizes[k % len(sizes)]
        yield rng.normal(loc=rng.normal(), scale=rng.uniform(0.2, 3.0), size=m)


def _rel(a, b) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.max(np.abs(a - b) / np.maximum(1.0, np.abs(b))))


def _energy_at(p: np.ndarray, x: np.ndarray, t: int, lam: float) -> float:
    return energy(p[0], p[1], x, t, lam)


def _energy_gradient_at(p: np.ndarray, x: np.ndarray, t: int, lam: float) -> np.ndarray:
    return energy_gradient(p[0], p[1], x, t, lam)


def _weighted_output(flat: np.ndarray, go: np.ndarray, lam: float, exact: bool) -> float:
    y = np.empty(go.shape)
    forward_2d(flat.reshape(go.shape), lam, exact, y)
    return float(np.sum(go * y))


def _weighted_output_gradient(flat: np.ndarray, go: np.ndarray, lam: float, exact: bool):
    g = np.empty(go.shape)
    backward_2d(flat.reshape(go.shape), go, lam, exact, g)
    return g.ravel()


def _solve_bfgs(x: np.ndarray, t: int, lam: float) -> tuple[float, float, float]:
    res = optimize.minimize(
        _energy_at,
        x0=np.zeros(2),
        args=(x, t, lam),
        jac=_energy_gradient_at,
        method="BFGS",
        options={"gtol": 1e-11},
    )
    return res.x[0], res.x[1], res.fun


def _solve_lstsq(x: np.ndarray, t: int, lam: float) -> tuple[float, float, float]:
    """Eq 2 as ``|A (w, b) - rhs|^2``: rows ``sqrt(1/(M-1)) (x_i, 1) -> -sqrt(1/(M-1))``,
    ``(t, 1) -> 1`` and ``(sqrt(lam), 0) -> 0``."""
    others = np.delete(x, t)
    k = np.sqrt(1.0 / others.size)
    a = np.vstack([np.column_stack([k * others, np.full(others.size, k)]), [x[t], 1.0],
                   [np.sqrt(lam), 0.0]])
    rhs = np.concatenate([np.full(others.size, -k), [1.0, 0.0]])
    sol = linalg.lstsq(a, rhs)[0]
    return sol[0], sol[1], float(np.sum((a @ sol - rhs) ** 2))


def _worst_per_neuron(solve, seed: int, channels: int, lam: float) -> tuple[float, int]:
    """Largest relative gap between ``solve`` and the closed form over random channels."""
    rng = np.random.default_rng(seed)
    worst, cases = 0.0, 0
    for x in _channels(rng, channels):
        w_cf, b_cf = closed_form_weights(x, lam)
        e_cf = minimum_energy(x, lam)
        for t in range(x.size):
            w, b, e = solve(x, t, lam)
            worst = max(worst, _rel([w, b], [w_cf[t], b_cf[t]]), _rel(e, e_cf[t]))
            cases += 1
    return worst, cases


def confirm_minimize(seed: int = 0, channels: int = 10, lam: float = 0.1) -> Confirmation:
    """``scipy.optimize.minimize`` (BFGS with the analytic gradient) on eq 2 per neuron."""
    worst, cases = _worst_per_neuron(_solve_bfgs, seed, channels, lam)
    return Confirmation(
        "scipy.minimize",
        "BFGS minimum of eq 2 per neuron vs closed-form (w_t, b_t, e_t*)",
        worst,
        1e-6,
        cases,
        {"lam": lam},
    )


def confirm_lstsq(seed: int = 1, channels: int = 10, lam: float = 1e-2) -> Confirmation:
    """Eq 2 is linear least squares in ``(w, b)``: ``scipy.linalg.lstsq`` per neuron."""
    worst, cases = _worst_per_neuron(_solve_lstsq, seed, channels, lam)
    return Confirmation(
        "scipy.lstsq",
        "least-squares solve of eq 2 per neuron vs closed-form (w_t, b_t, e_t*)",
        worst,
        1e-9,
        cases,
        {"lam": lam},
    )


def confirm_energy_check_grad(seed: int = 2, points: int = 20, lam: float = 0.1) -> Confirmation:
    """``scipy.optimize.check_grad`` of the energy gradient at random ``(w, b)``."""
    rng = np.random.default_rng(seed)
    worst = 0.0
    for x in _channels(rng, points):
        t = int(rng.integers(x.size))
        p0 = rng.normal(size=2)
        err = optimize.check_grad(_energy_at, _energy_gradient_at, p0, x, t, lam)
        worst = max(worst, err / max(1.0, float(np.linalg.norm(energy_gradient(*p0, x, t, lam)))))
    return Confirmation(
        "check_grad(energy)",
        "finite differences vs analytic gradient of eq 2",
        worst,
        1e-5,
        points,
    )


def confirm_backward_check_grad(seed: int = 3, points: int = 6, lam: float = 1e-2) -> Confirmation:
    """``check_grad`` of ``sum(grad_out * simam(x))`` against the analytic backward."""
    rng = np.random.default_rng(seed)
    worst, cases = 0.0, 0
    for exact in (False, True):
        for _ in range(points):
            rows, m = int(rng.integers(1, 4)), int(rng.integers(2, 9))
            go = rng.normal(size=(rows, m))
            x0 = rng.normal(size=(rows, m)).ravel()
            err = optimize.check_grad(_weighted_output, _weighted_output_gradient, x0,
                                      go, lam, exact, epsilon=1e-7)
            grad_norm = np.linalg.norm(_weighted_output_gradient(x0, go, lam, exact))
            worst = max(worst, err / max(1.0, float(grad_norm)))
            cases += 1
    return Confirmation(
        "check_grad(backward)",
        "finite differences of simam vs simam_backward (paper and exact, float64)",
        worst,
        1e-5,
        cases,
    )


def confirm_reference_vs_official(seed: int = 4, lam: float = 1e-4) -> Confirmation:
    """NumPy reference (``method='paper'``) vs :func:`official_forward`, float64."""
    from .api import simam

    rng = np.random.default_rng(seed)
    worst, cases = 0.0, 0
    for shape in [(2, 3, 4, 5), (1, 8, 7, 7), (3, 2, 1, 2), (2, 4, 16, 9)]:
        x = rng.normal(scale=rng.uniform(0.1, 10), size=shape) + rng.normal()
        y = simam(x, lam, backend="numpy")
        worst = max(worst, _rel(y, official_forward(x, lam)))
        cases += 1
    return Confirmation(
        "reference vs official",
        "simam(method='paper', backend='numpy') vs a direct transcription of the official code",
        worst,
        1e-13,
        cases,
    )


def paper_exact_gap(
    sizes=(2, 4, 9, 16, 49, 196, 784, 3136), lam: float = 1e-4, seed: int = 5, channels: int = 64
) -> list[dict]:
    """Largest relative gap ``|y_paper - y_exact| / |x|`` on standard normal channels per M."""
    rng = np.random.default_rng(seed)
    rows = []
    for m in sizes:
        x = rng.standard_normal((channels, m))
        yp, ye = np.empty_like(x), np.empty_like(x)
        forward_2d(x, lam, False, yp)
        forward_2d(x, lam, True, ye)
        gain_gap = np.abs(yp - ye) / np.maximum(np.abs(x), 1e-300)
        rows.append({"M": m, "max_gain_gap": float(gain_gap.max()),
                     "mean_gain_gap": float(gain_gap.mean())})
    return rows


def all_confirmations() -> list[Confirmation]:
    """Every numeric confirmation ``simam verify`` reports."""
    return [
        confirm_minimize(),
        confirm_lstsq(),
        confirm_energy_check_grad(),
        confirm_backward_check_grad(),
        confirm_reference_vs_official(),
    ]
