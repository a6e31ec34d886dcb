"""Shared pytest setup.

Without an NVIDIA GPU, run the CUDA kernel tests under Numba's CUDA simulator:
``NUMBA_ENABLE_CUDASIM`` must be set before ``numba.cuda`` is first imported.
"""

import os
import shutil


def _has_nvidia_gpu() -> bool:
    """True when an NVIDIA driver device node or ``nvidia-smi`` is present."""
    return os.path.exists("/dev/nvidiactl") or shutil.which("nvidia-smi") is not None


if not _has_nvidia_gpu():
    os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")


import pytest  # noqa: E402

#: CUDA launch sizes under the simulator (every CUDA thread is a Python thread):
#: 16 threads per block, groups of 4 threads, 2 elements per thread.  The one place
#: tests set them (in :mod:`simam_ref.constants`); tests/test_cuda_kernels.py applies
#: the same values on a GPU where a test needs them (its ``tiny_launch``).
SIM_LAUNCH = {"THREADS_PER_BLOCK": 16, "GROUP_MIN": 4, "ELEMENTS_PER_THREAD": 2}


def set_sim_launch(monkeypatch) -> None:
    """Patch :data:`SIM_LAUNCH` into :mod:`simam_ref.constants` for one test."""
    from simam_ref import constants

    for name, value in SIM_LAUNCH.items():
        monkeypatch.setattr(constants, name, value)


def cancelling_rows(nc: int, m: int, outliers: int, offset: float, seed: int):
    """float32 ``(x, grad_out)`` of ``nc`` two-valued rows of ``m`` neurons, each
    ``offset`` population standard deviations above 0: ``outliers`` neurons (in
    random places) above the mean, the rest (the bulk) at one value below it, and
    ``grad_out`` on the bulk alone.  From about 6.6 standard deviations a bulk value
    can make each bulk neuron's ``go g`` and ``q alpha`` cancel (see
    ``constants.BW_OFFSET_LIM``): the gradient is then far smaller than its terms."""
    import numpy as np

    rng = np.random.default_rng(seed)
    low = -np.sqrt(outliers / (m - outliers))
    row = np.full(m, low)
    row[:outliers] = np.sqrt((m - outliers) / outliers)
    u = np.array([rng.permutation(row) for _ in range(nc)])
    u += 1e-4 * rng.standard_normal((nc, m))
    u = (u - u.mean(axis=1, keepdims=True)) / u.std(axis=1, keepdims=True)
    g = rng.standard_normal((nc, m)) * (np.abs(u - low) < 0.01)
    return (offset + u).astype(np.float32), g.astype(np.float32)


@pytest.fixture(autouse=True)
def _small_cuda_blocks(monkeypatch):
    """Under the simulator keep CUDA blocks small (:data:`SIM_LAUNCH`)."""
    if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
        set_sim_launch(monkeypatch)


from hypothesis import settings  # noqa: E402

# CI gates on a fixed set of examples; locally every run explores new ones.
settings.register_profile("ci", derandomize=True, deadline=None)
if os.environ.get("CI"):
    settings.load_profile("ci")
