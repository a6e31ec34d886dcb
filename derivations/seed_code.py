"""The seed post's PyTorch snippet, verbatim, and what happens when it is run.

:func:`run_seed_code` compiles it, renames the keyword parameter, runs it with torch
(or the NumPy stand-in of :mod:`simam_ref.official`) and compares the result with the
official formula; :mod:`derivations.claims` turns that report into a verdict.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import numpy as np

from simam_ref.official import ShimTensor, official_forward, shim_torch

__all__ = ["SEED_CODE", "run_seed_code"]

SEED_CODE = (
    "def forward(X,lambda):\n"
    "\tn = X.shape[2] * X.shape[3] - 1\n"
    "\td = (X - X.mean(dim=[2,3])).pow(2)\n"
    "\tv = d.sum(dim=[2,3])/n\n"
    "\tE_inv = d / (4 * (v + lambda)) +0.5\n"
    "\treturn X * torch.sigmoid(E_inv)\n"
)
"""The seed post's PyTorch snippet, verbatim (tabs included)."""


# --- seed code --------------------------------------------------------------------------
def _backend(backend: str) -> tuple[str, Any, Callable[[np.ndarray], Any], Callable]:
    if backend not in ("auto", "torch", "numpy"):
        raise ValueError("backend must be 'auto', 'torch' or 'numpy'")
    if backend in ("auto", "torch"):
        try:
            import torch
        except ImportError:
            if backend == "torch":
                raise
        else:
            return "torch", torch, torch.from_numpy, lambda r: r.detach().numpy()
    return "numpy", shim_torch(), ShimTensor, lambda r: r.data


def run_seed_code(backend: str = "auto", lam: float = 1e-4) -> dict[str, Any]:
    """Compile and run the seed snippet; report what breaks.

    Steps: ``compile`` verbatim (``lambda`` is a keyword -> SyntaxError); rename
    the parameter to ``lam`` and run on a (2,3,4,5) tensor (mean without
    ``keepdim`` does not broadcast) and on (2,2,2,2) (broadcasts silently; compared
    with the official ``keepdim=True`` formula). ``backend``: torch if importable
    (``"auto"``), else a small NumPy shim.
    """
    report: dict[str, Any] = {}
    try:
        compile(SEED_CODE, "<seed>", "exec")
        report["compiles"] = True
    except SyntaxError as exc:
        report["compiles"] = False
        report["syntax_error"] = f"{exc.msg} (line {exc.lineno})"
    renamed = re.sub(r"\blambda\b", "lam", SEED_CODE)
    name, module, wrap, unwrap = _backend(backend)
    report["backend"] = name
    namespace: dict[str, Any] = {"torch": module}
    exec(compile(renamed, "<seed-renamed>", "exec"), namespace)  # noqa: S102 - our own constant
    forward = namespace["forward"]
    rng = np.random.default_rng(0)
    for key, shape in (("shape_2345", (2, 3, 4, 5)), ("shape_2222", (2, 2, 2, 2))):
        x = rng.standard_normal(shape)
        entry: dict[str, Any] = {"shape": list(shape)}
        try:
            out = unwrap(forward(wrap(x), lam))
        except (RuntimeError, ValueError) as exc:
            entry.update(runs=False, error=f"{type(exc).__name__}: {str(exc).splitlines()[0]}")
        else:
            ref = official_forward(x, lam)
            same_shape = out.shape == ref.shape
            diff = float(np.max(np.abs(out - ref))) if same_shape else float("inf")
            entry.update(
                runs=True,
                max_abs_diff_vs_official=diff,
                matches_official=bool(same_shape and diff < 1e-9),
            )
        report[key] = entry
    report["runs_correctly"] = bool(
        report["compiles"]
        and all(
            report[k]["runs"] and report[k]["matches_official"]
            for k in ("shape_2345", "shape_2222")
        )
    )
    return report
