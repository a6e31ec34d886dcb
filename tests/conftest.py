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
