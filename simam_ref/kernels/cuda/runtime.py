"""Whether and how ``numba.cuda`` runs here: availability, the simulator, lazy binding.

Importing the package never touches the driver.  Every module that defines kernels
or device functions keeps ``numba.cuda`` in a module global named ``cuda``, bound by
:func:`bind` when its first kernel is built: kernel bodies must reach it as a module
global, because Numba's CUDA simulator swaps such globals for its fake module while
a kernel runs.
"""

from __future__ import annotations

from typing import Any

from ... import constants


def numba_cuda() -> Any:
    """The ``numba.cuda`` module (imported on first use)."""
    from numba import cuda

    return cuda


def bind(namespace: dict[str, Any]) -> Any:
    """Set ``namespace["cuda"]`` (a kernel module's globals) to ``numba.cuda``; return it."""
    if namespace.get("cuda") is None:
        namespace["cuda"] = numba_cuda()
    return namespace["cuda"]


def unavailable_reason() -> str:
    """Why :func:`available` is False ('' when it is True)."""
    try:
        cuda = numba_cuda()
    except Exception as exc:  # ImportError, missing CUDA Python bindings, ...
        return f"numba.cuda cannot be imported: {exc}"
    try:
        if cuda.is_available():
            return ""
    except Exception as exc:
        return f"numba.cuda.is_available() failed: {exc}"
    return (
        "no CUDA GPU or driver was found (set NUMBA_ENABLE_CUDASIM=1 before importing "
        "numba.cuda to use the simulator)"
    )


def available() -> bool:
    """True when a CUDA GPU, or Numba's CUDA simulator, can run the kernels."""
    return unavailable_reason() == ""


def simulator_enabled() -> bool:
    """True when ``numba.cuda`` is Numba's CUDA simulator."""
    return numba_cuda().device_array.__module__.startswith("numba.cuda.simulator")


def use_shuffle() -> bool:
    """Whether newly built kernels reduce with warp shuffles: ``constants.WARP_SHUFFLE``
    when set, else on a GPU and not under the simulator (which has no shuffles)."""
    if constants.WARP_SHUFFLE is not None:
        return bool(constants.WARP_SHUFFLE)
    return not simulator_enabled()
