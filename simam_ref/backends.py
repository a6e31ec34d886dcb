"""The backends behind ``backend=``: loading them, telling device arrays apart, and
serialising CPU kernel calls where Numba's threading layer is not thread-safe.

Backends implement two functions on C-contiguous ``(channels, M)`` arrays of one
float dtype (float32 or float64)::

    forward_2d(x2, lam, exact, out2) -> None
    backward_2d(x2, g2, lam, exact, out2) -> None

``out2`` may be ``x2`` itself (in place) but never partly overlaps it.
"""

from __future__ import annotations

import threading
from types import ModuleType
from typing import Any

import numpy as np

__all__ = ["available_backends"]


def _load_backend(name: str) -> ModuleType:
    if name == "numpy":
        from . import reference

        return reference
    if name == "cpu":
        from .kernels import cpu

        return cpu
    from .kernels import cuda

    if not cuda.available():
        raise ValueError(f"backend='cuda' is not available: {cuda.unavailable_reason()}")
    return cuda


def available_backends() -> list[str]:
    """Backends usable on this machine, fastest first for NumPy input."""
    names = []
    for name in ("cpu", "numpy", "cuda"):
        try:
            _load_backend(name)
        except (ImportError, ValueError):
            continue
        names.append(name)
    return names


def _resolve_backend(backend: str) -> ModuleType:
    """The module behind a validated backend name (``auto``: CPU kernel, else NumPy)."""
    if backend != "auto":
        return _load_backend(backend)
    try:
        return _load_backend("cpu")
    except ImportError:
        return _load_backend("numpy")


def _is_device_array(x: Any) -> bool:
    if isinstance(x, np.ndarray):
        return False
    if type(x).__module__.split(".")[0] == "torch" and hasattr(x, "requires_grad"):
        # torch raises RuntimeError (not AttributeError) from __cuda_array_interface__
        # on tensors that require grad, so hasattr() cannot be asked
        return bool(getattr(x, "is_cuda", False))
    try:
        if hasattr(x, "__cuda_array_interface__"):
            return True
    except Exception:  # an exporter that raises instead of AttributeError: device memory
        return True
    return type(x).__module__.startswith(("numba.cuda", "numba_cuda"))


# ------------------------------------------------------------------ thread safety
#: Serialises CPU kernel calls while Numba's threading layer may be ``workqueue``,
#: which aborts the process when two threads launch parallel regions at once.
_KERNEL_LOCK = threading.Lock()
_layer_is_threadsafe = False


def _needs_kernel_lock() -> bool:
    """Whether a parallel CPU kernel call must hold :data:`_KERNEL_LOCK`.

    True on the ``workqueue`` layer, and before the first parallel launch anywhere
    in the process (``numba.threading_layer()`` is unknown until then, and the
    launch may pick ``workqueue``).  Once ``omp`` or ``tbb`` (both thread-safe) is
    known to be running, never again.
    """
    global _layer_is_threadsafe
    if _layer_is_threadsafe:
        return False
    import numba

    try:
        layer = numba.threading_layer()
    except ValueError:  # no parallel region has run yet: the layer is not chosen
        return True
    if layer == "workqueue":
        return True
    _layer_is_threadsafe = True
    return False


def _guarded(impl: ModuleType, fill: Any) -> Any:
    """``fill`` run under :data:`_KERNEL_LOCK` when ``impl`` (the Numba CPU backend)
    needs it, see :func:`_needs_kernel_lock`."""
    if not impl.__name__.endswith(".kernels.cpu") or not _needs_kernel_lock():
        return fill

    def locked(o2: np.ndarray) -> None:
        with _KERNEL_LOCK:
            fill(o2)

    return locked
