"""Device arrays from other frameworks: ``__cuda_array_interface__``, torch, CuPy.

Objects are wrapped without a host synchronisation; a torch tensor with
``requires_grad`` is read through ``detach()`` and refused as ``out``, as is an
export flagged read-only.  Results are allocated by the input's framework
(``torch.empty_like``, ``cupy.empty_like``: their caching allocators, on the launch
stream) or, for other input, as Numba device arrays.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

from . import runtime
from .streams import is_torch, raw_handle


def is_fake(a: Any) -> bool:
    """True for a simulated (host-memory) Numba device array."""
    return type(a).__name__ == "FakeCUDAArray"


def _interface(obj: Any, name: str, writable: bool) -> tuple[Any, dict[str, Any]]:
    """``(owner, __cuda_array_interface__)`` of ``obj``, checked for its role.

    A torch tensor with ``requires_grad`` is read through ``detach()`` (the
    kernels do not record autograd history) and refused as ``out``; an export
    flagged read-only is refused as ``out``.
    """
    if is_torch(obj) and bool(getattr(obj, "requires_grad", False)):
        if writable:
            raise ValueError(
                f"{name} is a torch tensor that requires grad; in-place writes into it "
                "would bypass autograd: pass a tensor without requires_grad"
            )
        obj = obj.detach()
    try:
        desc = obj.__cuda_array_interface__
    except Exception as exc:
        raise TypeError(
            f"{name}: reading its __cuda_array_interface__ failed "
            f"({type(exc).__name__}: {exc})"
        ) from exc
    data = desc.get("data")
    if writable and data is not None and bool(data[1]):
        raise ValueError(f"{name} is read-only (its __cuda_array_interface__ says so); "
                         "pass a writable device array")
    return obj, desc


class _HostView:
    """``__array_interface__`` for a simulated interface whose pointer is host memory."""

    def __init__(self, desc: dict[str, Any], owner: Any):
        """Describe ``desc``'s memory as a NumPy array interface, keeping ``owner`` alive."""
        self.owner = owner
        self.__array_interface__ = {
            "shape": tuple(desc["shape"]),
            "typestr": desc["typestr"],
            "data": (int(desc["data"][0]), bool(desc["data"][1])),
            "strides": desc.get("strides"),
            "version": 3,
        }


def _from_interface(desc: dict[str, Any], owner: Any) -> Any:
    """A Numba device array over an interface's memory, without synchronising."""
    cuda = runtime.numba_cuda()
    if runtime.simulator_enabled():  # the simulator's "device" memory is host memory
        from numba.cuda.simulator.cudadrv.devicearray import FakeCUDAArray

        return FakeCUDAArray(np.asarray(_HostView(desc, owner)))
    return cuda.from_cuda_array_interface(desc, owner=owner, sync=False)


def as_device(obj: Any, name: str, writable: bool = False) -> tuple[Any, Any]:
    """``(device_array, interface_or_None)`` viewing ``obj`` (no copy for device input).

    Numba device arrays (real or simulated) pass through; objects with
    ``__cuda_array_interface__`` are wrapped without a host synchronisation; a
    NumPy array (mixed host/device calls) is copied to the device.
    """
    if getattr(obj, "__cuda_ndarray__", False):
        return obj, None
    if isinstance(obj, np.ndarray):
        if writable:
            raise TypeError(f"{name} must be a CUDA device array for device input, "
                            "got numpy.ndarray")
        return runtime.numba_cuda().to_device(obj), None
    try:
        has = hasattr(obj, "__cuda_array_interface__") or is_torch(obj)
    except Exception:  # an exporter that raises instead of AttributeError
        has = True
    if not has:
        raise TypeError(
            f"{name} must be a CUDA device array (Numba device array or an object with "
            f"__cuda_array_interface__), got {type(obj).__name__}"
        )
    owner, desc = _interface(obj, name, writable)
    return _from_interface(desc, owner), desc


def framework_empty(x: Any, handle: Any) -> Any:
    """A result array like ``x`` allocated by ``x``'s framework, or None.

    torch tensors get ``torch.empty_like`` and CuPy arrays ``cupy.empty_like`` (their
    caching allocators, their types, on ``x``'s device), made current on the launch
    stream when that is not the framework's current one, so the allocator ties the
    block to the stream that writes it.  Other input: None (a Numba device array).
    """
    root = type(x).__module__.split(".")[0]
    mod = sys.modules.get(root) if root in ("torch", "cupy") else None
    if mod is None or not isinstance(x, mod.Tensor if root == "torch" else mod.ndarray):
        return None
    raw = raw_handle(handle)
    if root == "torch":
        base = x.detach() if bool(getattr(x, "requires_grad", False)) else x
        if raw > 2 and mod.cuda.is_available():  # 0, 1, 2: default streams
            device = base.device
            if raw != int(mod.cuda.current_stream(device).cuda_stream):
                with mod.cuda.stream(mod.cuda.ExternalStream(raw, device=device)):
                    return mod.empty_like(base)
        return mod.empty_like(base)
    with x.device:
        if raw > 2 and raw != int(mod.cuda.get_current_stream().ptr):
            with mod.cuda.ExternalStream(raw):
                return mod.empty_like(x)
        return mod.empty_like(x)
