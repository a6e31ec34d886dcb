"""Public entry points: validate input, lay it out as ``(channels, M)``, dispatch.

Backends implement two functions on C-contiguous ``(channels, M)`` arrays of one
float dtype (float32 or float64)::

    forward_2d(x2, lam, exact, out2) -> None
    backward_2d(x2, g2, lam, exact, out2) -> None

``out2`` may be ``x2`` itself (in place) but never partly overlaps it.
"""

from __future__ import annotations

import math
import numbers
import threading
from collections.abc import Sequence
from decimal import Decimal
from types import ModuleType
from typing import Any, Literal, get_args

import numpy as np

__all__ = [
    "BACKENDS",
    "METHODS",
    "Backend",
    "Method",
    "available_backends",
    "simam",
    "simam_backward",
]

Method = Literal["paper", "exact"]
"""``"paper"``: the official formula; ``"exact"``: the true minimiser of eq 2."""
Backend = Literal["auto", "numpy", "cpu", "cuda"]
"""Where to compute; ``"auto"`` picks the CUDA kernel for device arrays, else the CPU one."""
# the runtime checks read the same tuples, so the types and the validation agree
METHODS: tuple[str, ...] = get_args(Method)
BACKENDS: tuple[str, ...] = get_args(Backend)

Axes = int | Sequence[int] | None


# --------------------------------------------------------------------------- checks
def _check_method(method: str) -> bool:
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    return method == "exact"


def _short(value: Any) -> str:
    """``repr(value)``, abbreviated when huge (a 400-digit integer, say)."""
    text = repr(value)
    if len(text) > 60:
        text = f"{text[:24]}...{text[-12:]} ({len(text)} characters)"
    return text


def _check_lam(lam: Any) -> float:
    """``lam`` as a positive finite float64, or an error naming its value."""
    if isinstance(lam, np.ndarray) and lam.ndim == 0:
        lam = lam[()]  # a 0-d array is a scalar
    if isinstance(lam, (bool, np.bool_)) or not isinstance(lam, (numbers.Real, Decimal)):
        what = (f"ndarray of shape {lam.shape}" if isinstance(lam, np.ndarray)
                else type(lam).__name__)
        raise TypeError(f"lam must be a real number (or a 0-d array), got {what} {_short(lam)}")
    try:
        value = float(lam)
    except ValueError:  # Decimal('sNaN')
        value = math.nan
    except OverflowError:  # a huge int or Fraction
        value = math.inf if lam > 0 else -math.inf
    if math.isnan(value) or lam <= 0:
        raise ValueError(f"lam must be finite and > 0, got {_short(lam)}")
    if math.isinf(value):
        if value == lam:
            raise ValueError(f"lam must be finite and > 0, got {_short(lam)}")
        raise ValueError(
            f"lam must be finite and > 0, got {_short(lam)}, which overflows float64 "
            "(largest 1.8e308)"
        )
    if value == 0.0:
        raise ValueError(
            f"lam must be finite and > 0, got {_short(lam)}, which is positive but "
            "underflows float64 to 0.0 (smallest 5e-324)"
        )
    return value


_FLOATS = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))


def _check_dtype(dtype: np.dtype, name: str = "x") -> np.dtype:
    """The native-byte-order float16/32/64 dtype of ``dtype``, or a TypeError."""
    dtype = np.dtype(dtype)
    native = dtype.newbyteorder("=")
    if native in _FLOATS:
        return native
    if native.kind == "f":
        raise TypeError(
            f"{name} has dtype {dtype} (longdouble), which is not supported; "
            f"cast it to float64 first ({name}.astype(np.float64))"
        )
    kind = "complex" if dtype.kind == "c" else "non-floating"
    raise TypeError(
        f"{name} must have a real floating dtype (float16, float32 or float64), "
        f"got {kind} dtype {dtype}"
    )


def _reject_masked(a: Any, name: str) -> None:
    """Masked arrays would lose their mask (and masked values would leak): refuse."""
    if isinstance(a, np.ma.MaskedArray):
        raise TypeError(
            f"{name} is a numpy.ma.MaskedArray, whose mask SimAM would ignore; pass "
            f"{name}.filled(value) to choose what masked entries count as, or {name}.data"
        )


def _spatial_axes(shape: tuple[int, ...], axes: Axes) -> tuple[int, ...]:
    ndim = len(shape)
    if axes is None:
        if ndim < 3:
            raise ValueError(
                f"x has shape {shape} (ndim {ndim}); with the default axes SimAM expects "
                "(N, C, *spatial) with ndim >= 3 — pass axes= to choose the neuron axes"
            )
        return tuple(range(2, ndim))
    if isinstance(axes, np.ndarray) and axes.ndim == 0:
        axes = axes[()]
    if isinstance(axes, numbers.Integral):
        raw = (axes,)
    elif isinstance(axes, (str, bytes)) or not hasattr(axes, "__iter__"):
        raise TypeError(
            f"axes must be an int or a sequence of ints, got {type(axes).__name__} {axes!r}"
        )
    else:
        raw = tuple(axes)
    if not raw:
        raise ValueError("axes must name at least one axis, got ()")
    norm = []
    for a in raw:
        if isinstance(a, (bool, np.bool_)) or not isinstance(a, numbers.Integral):
            raise TypeError(f"axes must be integers, got {a!r} in axes={raw!r}")
        if not -ndim <= a < ndim:
            raise ValueError(f"axis {a} is out of range for x of shape {shape} (ndim {ndim})")
        norm.append(int(a) % ndim)
    if len(set(norm)) != len(norm):
        raise ValueError(f"axes contains a duplicate axis: {raw}")
    return tuple(sorted(norm))


def _check_shape(shape: tuple[int, ...], spatial: tuple[int, ...]) -> int:
    if math.prod(shape) == 0:
        raise ValueError(f"x is empty (shape {shape})")
    m = math.prod(shape[a] for a in spatial)
    if m < 2:
        raise ValueError(
            f"each channel needs at least 2 neurons, but axes {spatial} of shape {shape} "
            f"hold M = {m}"
        )
    return m


def _check_out(out: Any, shape: tuple[int, ...], dtype: np.dtype, x: np.ndarray) -> np.ndarray:
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out must be a numpy.ndarray for NumPy input, got {type(out).__name__}")
    _reject_masked(out, "out")
    if out.shape != shape:
        raise ValueError(f"out has shape {out.shape}, expected {shape}")
    if out.dtype.newbyteorder("=") != dtype:  # either byte order
        raise TypeError(f"out has dtype {out.dtype}, expected {dtype}")
    if not out.flags.writeable:
        raise ValueError("out is read-only")
    if np.shares_memory(out, x) and not _same_memory(out, x):
        raise ValueError("out partly overlaps the input; pass the input itself or a separate array")
    return out


def _same_memory(a: np.ndarray, b: np.ndarray) -> bool:
    return (
        a.__array_interface__["data"][0] == b.__array_interface__["data"][0]
        and a.strides == b.strides
        and a.shape == b.shape
    )


# -------------------------------------------------------------------------- backends
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


# ---------------------------------------------------------------------------- layout
def _rows(a: np.ndarray, perm: tuple[int, ...], m: int) -> np.ndarray | None:
    """``a`` as a C-contiguous ``(channels, M)`` view, or None if that needs a copy."""
    t = a.transpose(perm)
    if not t.flags.c_contiguous:
        return None
    return t.reshape(-1, m)


def _channels_last_run(kind, impl, x, grad_out, out, spatial, m, lam, exact):
    """Run the backend's channels-last kernel (``forward_nlc``/``backward_nlc``) on
    ``(batch, M, channels)`` views when every array is float32 with its last non-spatial
    axis innermost and the spatial axes just outside it (e.g. ``(N, H, W, C)`` with
    ``axes=(1, 2)``), so no copy is made; None when that does not apply."""
    arrays = (x, out) if kind == "forward" else (x, grad_out, out)
    if not hasattr(impl, "forward_nlc") or any(a.dtype != np.float32 for a in arrays):
        return None
    others = tuple(a for a in range(x.ndim) if a not in spatial)
    if not others or _rows(x, others + spatial, m) is not None:
        return None  # channels-first: the (channels, M) kernels run on a view
    perm = others[:-1] + spatial + others[-1:]
    views = [a.transpose(perm) for a in arrays]
    if not all(v.flags.c_contiguous for v in views):
        return None
    v3 = [v.reshape(-1, m, x.shape[others[-1]]) for v in views]
    if kind == "forward":
        _guarded(impl, lambda o3: impl.forward_nlc(v3[0], lam, exact, o3))(v3[-1])
    else:
        _guarded(impl, lambda o3: impl.backward_nlc(v3[0], v3[1], lam, exact, o3))(v3[-1])
    return out


class _Layout:
    """Maps an array of any layout to ``(channels, M)`` rows and back."""

    def __init__(self, shape: tuple[int, ...], spatial: tuple[int, ...], m: int):
        others = tuple(a for a in range(len(shape)) if a not in spatial)
        self.perm = others + spatial
        self.m = m

    def rows(self, a: np.ndarray, dtype: np.dtype) -> np.ndarray:
        view = _rows(a, self.perm, self.m) if a.dtype == dtype else None
        if view is not None:
            return view
        return np.ascontiguousarray(a.transpose(self.perm), dtype=dtype).reshape(-1, self.m)

    def run(self, out: np.ndarray, work_dtype: np.dtype, fill) -> np.ndarray:
        """Call ``fill(out_rows)`` and make sure the result lands in ``out``."""
        view = _rows(out, self.perm, self.m) if out.dtype == work_dtype else None
        if view is not None:
            fill(view)
            return out
        tmp = np.empty((math.prod(out.shape) // self.m, self.m), dtype=work_dtype)
        fill(tmp)
        out.transpose(self.perm)[...] = tmp.reshape(out.transpose(self.perm).shape)
        return out


def _prepare(lam: Any, method: str, backend: str) -> tuple[bool, float]:
    """Checks that need no array: ``(exact, lam)``."""
    exact = _check_method(method)
    lam = _check_lam(lam)
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    return exact, lam


# ------------------------------------------------------------------------ public API
def simam(
    x: Any,
    lam: float = 1e-4,
    *,
    method: Method = "paper",
    axes: Axes = None,
    out: Any = None,
    backend: Backend = "auto",
    stream: Any = None,
) -> Any:
    """SimAM forward: ``y = x * sigmoid(1 / e_t*)`` for every neuron.

    Parameters
    ----------
    x : ndarray, shape ``(N, C, *spatial)`` (or any shape with ``axes=``)
        float32 or float64 (float16 is computed in float32 and returned as float16;
        longdouble is refused: cast to float64).  Only read, never written (unless
        ``out`` is ``x``): read-only arrays (``np.memmap(mode="r")``,
        ``np.frombuffer``, ``np.broadcast_to``) are used as they are, without a copy
        when their channels are C-contiguous rows.  Big-endian (non-native) byte
        order is accepted and converted once (a copy); the result is the same
        number in native byte order.  Masked arrays are refused (pass
        ``x.filled(value)`` or ``x.data``).
        A CUDA device array (Numba, CuPy, PyTorch: anything with
        ``__cuda_array_interface__``) runs on the GPU and returns an array of the
        input's kind (a ``torch.Tensor`` for torch input, a ``cupy.ndarray`` for CuPy
        input, else a Numba device array), or ``out``.  A torch tensor with
        ``requires_grad`` is read as ``x.detach()``: the call records no autograd
        history (use :func:`simam_backward` for the gradient); such a tensor is
        refused as ``out``, and so is an export flagged read-only.
    lam : float or 0-d array
        Regulariser ``lambda > 0`` of the energy (the official default is 1e-4); it
        must be finite and nonzero once converted to float64.
    method : {"paper", "exact"}
        ``"paper"``: the official module's formula with full-channel statistics.
        ``"exact"``: the true minimiser of eq 2 with leave-one-out statistics.
    axes : int or tuple of int, optional
        Axes spanning one channel's neurons; default every axis after the first two.
    out : ndarray, optional
        Destination of ``x``'s shape and dtype (either byte order); may be ``x``
        itself (in place).
    backend : {"auto", "numpy", "cpu", "cuda"}
        ``"auto"``: the Numba CPU kernel for NumPy input, CUDA for device arrays.
    stream : optional
        Device input only (``ValueError`` for host arrays): the CUDA stream to
        launch on — a Numba stream, ``torch.cuda.Stream``, CuPy stream or raw
        ``cudaStream_t`` int.  Default: the caller's current stream where it can
        be known (PyTorch's current stream for torch tensors, the interface's
        ``stream`` for ``__cuda_array_interface__`` v3 objects such as CuPy's, a
        Numba array's own stream), else the legacy default stream.  The call
        never synchronises the host: the result is ready in stream order.

    Returns
    -------
    ndarray of ``x``'s shape and dtype in native byte order (``out`` when given).

    Notes
    -----
    Thread-safe: concurrent calls from several Python threads are fine on every
    Numba threading layer; on ``workqueue`` (not thread-safe itself) the CPU
    kernel calls made here take turns.
    """
    return _dispatch("forward", x, None, lam, method, axes, out, backend, stream)


def simam_backward(
    x: Any,
    grad_out: Any,
    lam: float = 1e-4,
    *,
    method: Method = "paper",
    axes: Axes = None,
    out: Any = None,
    backend: Backend = "auto",
    stream: Any = None,
) -> Any:
    """Vector-Jacobian product of :func:`simam`: ``grad_x = J(x)^T grad_out``.

    Needs only ``x`` and ``grad_out`` (no saved activations): channel statistics
    are recomputed.  ``grad_out`` must have ``x``'s shape; it is cast to ``x``'s
    dtype (native byte order), may be read-only (no copy) and must not be masked.
    Other parameters (``stream`` included), the result and thread safety are as for
    :func:`simam`.
    """
    return _dispatch("backward", x, grad_out, lam, method, axes, out, backend, stream)


def _dispatch(kind, x, grad_out, lam, method, axes, out, backend, stream=None):
    exact, lam = _prepare(lam, method, backend)
    if _is_device_array(x):
        if backend not in ("auto", "cuda"):
            raise ValueError(
                f"x is a CUDA device array; backend={backend!r} needs a NumPy array "
                "(use backend='cuda' or 'auto', or copy it to the host)"
            )
        cuda = _load_backend("cuda")
        shape = tuple(x.shape)
        _check_dtype(np.dtype(str(x.dtype).replace("torch.", "")))
        spatial = _spatial_axes(shape, axes)
        _check_shape(shape, spatial)
        if kind == "forward":
            return cuda.simam_device(x, lam, exact, spatial, out, stream)
        if tuple(grad_out.shape) != shape:
            raise ValueError(f"grad_out has shape {tuple(grad_out.shape)}, expected {shape}")
        return cuda.simam_backward_device(x, grad_out, lam, exact, spatial, out, stream)
    if stream is not None:
        raise ValueError(
            "stream= applies to CUDA device arrays only; x is a host array "
            f"(backend={backend!r}): drop stream= or pass device arrays"
        )

    _reject_masked(x, "x")
    x = np.asarray(x)
    dtype = _check_dtype(x.dtype)  # native byte order: the result's dtype
    shape = x.shape
    spatial = _spatial_axes(shape, axes)
    m = _check_shape(shape, spatial)
    if kind == "backward":
        _reject_masked(grad_out, "grad_out")
        grad_out = np.asarray(grad_out)
        _check_dtype(grad_out.dtype, "grad_out")
        if grad_out.shape != shape:
            raise ValueError(f"grad_out has shape {grad_out.shape}, expected {shape}")
    if out is None:
        out = np.empty_like(x, dtype=dtype)  # x's memory order (channels-last stays so)
    else:
        _check_out(out, shape, dtype, x)
        if kind == "backward" and np.shares_memory(out, grad_out):
            if not _same_memory(out, grad_out):
                raise ValueError("out partly overlaps grad_out")
    impl = _resolve_backend(backend)
    work = np.dtype(np.float32) if dtype == np.float16 else dtype
    done = _channels_last_run(kind, impl, x, grad_out, out, spatial, m, lam, exact)
    if done is not None:
        return done
    layout = _Layout(shape, spatial, m)
    x2 = layout.rows(x, work)
    if kind == "forward":
        return layout.run(out, work, _guarded(impl, lambda o2: impl.forward_2d(x2, lam, exact, o2)))
    g2 = layout.rows(grad_out, work)
    return layout.run(out, work,
                      _guarded(impl, lambda o2: impl.backward_2d(x2, g2, lam, exact, o2)))
