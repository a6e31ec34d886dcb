"""Count where the official SimAM formula fails and show this project does not.

Runs the official module in the input's own precision (PyTorch when installed,
else a NumPy transcription) and ``simam`` on every available backend, and prints
a Markdown table of non-finite outputs and the error against a float64 (or, for
float64 input, scaled) reference.  The README's "Numerics" section quotes it.

    python benchmarks/official_failures.py
"""

from __future__ import annotations

import numpy as np

from simam_ref import available_backends, simam
from simam_ref.confirm import official_forward

SHAPE = (2, 3, 8, 8)  # 384 neurons


def official_in_input_precision(x: np.ndarray) -> tuple[np.ndarray, str]:
    try:
        import torch
    except ImportError:
        return official_forward(x, 1e-4, dtype=x.dtype), "numpy"
    xt = torch.from_numpy(x)
    n = x.shape[2] * x.shape[3] - 1
    d = (xt - xt.mean(dim=[2, 3], keepdim=True)).pow(2)
    v = d.sum(dim=[2, 3], keepdim=True) / n
    e_inv = d / (4 * (v + 1e-4)) + 0.5
    return (xt * torch.sigmoid(e_inv)).numpy(), f"torch {torch.__version__}"


def cases() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    z = rng.standard_normal(SHAPE)
    outlier = np.ones(SHAPE, np.float32)
    outlier[0, 0, 3, 3] = 1e25
    return {
        "float32, N(0,1)": z.astype(np.float32),
        "float32, N(0,1) x 1e20": (z * 1e20).astype(np.float32),
        "float32, N(0,1) x 1e30": (z * 1e30).astype(np.float32),
        "float32, one 1e25 among ones": outlier,
        "float32, 1e-30 x N(0,1)": (z * 1e-30).astype(np.float32),
        "float16, N(0,1) x 300": (z * 300).astype(np.float16),
        "float32, H*W = 1": z[:, :, :1, :1].astype(np.float32),
    }


def main() -> None:
    backends = [b for b in available_backends() if b != "cuda"]
    rows = []
    for name, x in cases().items():
        official, engine = official_in_input_precision(x)
        bad = int(np.sum(~np.isfinite(official)))
        cells = [name, f"{bad} / {x.size}"]
        for backend in backends:
            try:
                y = simam(x, backend=backend)
            except ValueError as exc:
                cells.append(f"ValueError: {str(exc).split(',')[0]}")
                continue
            ref = official_forward(x.astype(np.float64), 1e-4)
            err = np.max(np.abs(y - ref) / np.maximum(np.abs(ref), np.finfo(x.dtype).tiny))
            cells.append(f"{int(np.sum(~np.isfinite(y)))} non-finite, rel err {err:.1e}")
        rows.append(cells)
    header = ["input", f"official ({engine}) non-finite"] + [f"simam {b}" for b in backends]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for r in rows:
        print("| " + " | ".join(r) + " |")


if __name__ == "__main__":
    main()
