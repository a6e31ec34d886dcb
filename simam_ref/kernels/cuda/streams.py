"""The stream a device call launches on, and Numba wrappers of foreign stream handles.

Device calls launch on a stream and never synchronise the host: the ``stream=``
argument when given (a Numba stream, a ``torch.cuda.Stream``, a CuPy stream or a raw
``cudaStream_t`` integer), else the caller's current stream where it can be known:
PyTorch's current stream for torch tensors, the interface's ``stream`` for
``__cuda_array_interface__`` v3 objects (CuPy), a Numba array's own stream,
otherwise the legacy default stream.
"""

from __future__ import annotations

import sys
from typing import Any

from . import runtime

#: Numba wrappers of external stream handles, one per handle (bounded: cleared when full).
_EXTERNAL_STREAMS: dict[int, Any] = {}
_EXTERNAL_STREAMS_MAX = 64


def is_torch(obj: Any) -> bool:
    """True for a torch tensor (checked by its module and ``requires_grad`` attribute)."""
    return type(obj).__module__.split(".")[0] == "torch" and hasattr(obj, "requires_grad")


def _is_numba_stream(stream: Any) -> bool:
    """True for a Numba stream object."""
    return type(stream).__module__.startswith(("numba.cuda", "numba_cuda"))


def stream_handle(stream: Any, x: Any = None, desc: dict[str, Any] | None = None) -> Any:
    """The stream a device call launches on: a Numba stream, a raw handle, or 0.

    ``stream`` wins when given: a Numba stream is returned as is, a
    ``torch.cuda.Stream`` gives its ``cuda_stream``, a CuPy stream its ``ptr``, an
    int is a ``cudaStream_t``.  Otherwise the caller's current stream for ``x``:
    PyTorch's current stream on ``x``'s device for a torch tensor, the interface's
    ``stream`` for ``__cuda_array_interface__`` v3 objects, a Numba array's own
    stream; 0 (the legacy default stream) when none is known.
    """
    if stream is not None:
        if _is_numba_stream(stream):
            return stream
        for attr in ("cuda_stream", "ptr", "handle"):
            value = getattr(stream, attr, None)
            if isinstance(value, int) and not isinstance(value, bool):
                return value
        if isinstance(stream, int) and not isinstance(stream, bool) and stream >= 0:
            return stream
        raise TypeError(
            "stream must be a Numba stream, a torch.cuda.Stream, a CuPy stream or a "
            f"cudaStream_t integer, got {type(stream).__name__} {stream!r}"
        )
    if x is not None and is_torch(x):
        torch = sys.modules.get("torch")
        if torch is not None and torch.cuda.is_available():
            return int(torch.cuda.current_stream(x.device).cuda_stream)
    if desc is not None and desc.get("stream") is not None:
        return int(desc["stream"])
    own = getattr(x, "stream", 0) if getattr(x, "__cuda_ndarray__", False) else 0
    return own if own else 0


def numba_stream(handle: Any) -> Any:
    """A Numba stream for a :func:`stream_handle` result (0: the default stream)."""
    if not isinstance(handle, int):
        return handle
    if handle == 0:
        return 0
    cuda = runtime.numba_cuda()
    if runtime.simulator_enabled():  # the simulator runs everything synchronously
        return cuda.stream()
    # A Numba external stream holds only the handle (no context, no finalizer), so one
    # wrapper per handle serves every call; a handle reused by a new stream names that
    # stream, as the caller means.
    wrapped = _EXTERNAL_STREAMS.get(handle)
    if wrapped is None:
        if len(_EXTERNAL_STREAMS) >= _EXTERNAL_STREAMS_MAX:
            _EXTERNAL_STREAMS.clear()
        wrapped = _EXTERNAL_STREAMS[handle] = cuda.external_stream(handle)
    return wrapped


def raw_handle(handle: Any) -> int:
    """The ``cudaStream_t`` value of a :func:`stream_handle` result (0: default)."""
    if isinstance(handle, int):
        return handle
    try:
        return int(handle.handle or 0)
    except (AttributeError, TypeError, ValueError):
        return 0
