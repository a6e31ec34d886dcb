"""Numba CPU kernels for SimAM: fused, parallel, deterministic.

The entry points take C-contiguous ``(channels, M)`` arrays of one dtype (float32
or float64), or channels-last ``(batch, M, channels)`` float32 arrays, and follow
the per-channel algorithm documented in :mod:`simam_ref.reference` (float64
statistics, two-pass mean with one correction step, power-of-two scaling of
extreme float64 channels, paper/exact inverse energy, analytic backward).

Modules, by concern:

* :mod:`.fastexp` -- vectorisable ``exp(-e)`` (:func:`exp_neg_f32`, :func:`exp_neg_f64`);
* :mod:`.base` -- compile options, limits, records and typing-time helpers;
* :mod:`.stats` -- channel statistics (scale, mean, ``S2``);
* :mod:`.simd_sums` -- float64 sums of float32 rows and channels-last columns as
  explicit vector code;
* :mod:`.elements` -- per-neuron forward outputs;
* :mod:`.forward` -- forward row loops, channel and split paths;
* :mod:`.grouped`, :mod:`.grouped_backward` -- float32 paper forward and backward of
  short rows in groups;
* :mod:`.backward` -- backward with float64 element math, channel and split paths;
* :mod:`.backward_f32` -- float32 paper backward of the channel path;
* :mod:`.nlc`, :mod:`.nlc_backward` -- channels-last forward and backward.

Paths: the **channel path** (``prange`` over channels, one thread per channel) is
the usual case; the **split path** (fewer than ``SPLIT_MAX_CHANNELS`` channels of at
least ``SPLIT_MIN_M`` neurons) runs every pass over ``(channel, block)`` work items.
The path is chosen from the shape alone and every reduction has a fixed order, so
results are bit-identical run to run and for every thread count.  Tunables are
read from :mod:`simam_ref.constants` at every call.
"""

from __future__ import annotations

import numba
import numpy as np

from ... import constants
from . import backward, backward_f32, forward, grouped, grouped_backward, nlc, nlc_backward
from .base import chunk
from .fastexp import exp_neg_f32, exp_neg_f64

__all__ = [
    "backward_2d",
    "backward_nlc",
    "exp_neg_f32",
    "exp_neg_f64",
    "forward_2d",
    "forward_nlc",
    "use_split",
]

# the tunables this package used to define: aliases of simam_ref.constants
constants.forward_tunables(__name__, constants.CPU_TUNABLES)


def use_split(channels: int, m: int) -> bool:
    """Whether the within-channel split path runs for ``channels`` rows of ``M``.

    A function of the shape alone (not of the thread count), so every thread count
    runs the same code and gets the same bits.
    """
    return m >= constants.SPLIT_MIN_M and channels < constants.SPLIT_MAX_CHANNELS


def group_rows(nc: int, m: int, elems: int) -> tuple[int, int]:
    """``(rows, per_item)``: rows per group of the grouped kernels for ``nc`` rows of
    ``m`` neurons (``elems // m``, up to ``GROUP_GROWTH`` times more while each running
    thread still gets ``GROUPS_PER_THREAD`` groups) and groups per work item (at most
    32, as many work items as that leaves a thread ``GROUPS_PER_THREAD``).  A row's
    bits do not depend on its group or its work item."""
    per_thread = constants.GROUPS_PER_THREAD * numba.get_num_threads()
    share = nc * m // per_thread
    rows = max(1, min(constants.GROUP_GROWTH * elems, max(elems, share)) // m)
    return rows, max(1, min(32, -(-nc // rows) // per_thread))


def _check(*arrays: np.ndarray, layout: str = "(channels, M)") -> None:
    """Validate kernel arrays (inputs first, the output last).

    ``layout`` is ``"(channels, M)"`` (float32 or float64, 2-D) or
    ``"(batch, M, channels)"`` (the channels-last kernels: float32 only, 3-D).
    """
    first = arrays[0]
    rows = layout == "(channels, M)"
    ndim, dtypes = (2, (np.float32, np.float64)) if rows else (3, (np.float32,))
    if first.dtype not in dtypes:
        names = " or ".join(np.dtype(d).name for d in dtypes)
        raise TypeError(f"cpu kernels on {layout} arrays need {names}, got {first.dtype}")
    for a in arrays:
        if a.ndim != ndim or a.shape != first.shape or a.dtype != first.dtype:
            raise ValueError(f"all arrays must share one {ndim}-D {layout} shape and dtype")
        if not a.flags.c_contiguous:
            raise ValueError(f"cpu kernels need C-contiguous {layout} arrays")
    if not arrays[-1].flags.writeable:
        raise ValueError("the output array is read-only")
    if first.shape[1] < 2:
        raise ValueError(f"each channel needs at least 2 neurons, got M = {first.shape[1]}")


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether ``a`` and ``b`` start at the same address (the kernels' aliasing test)."""
    return a.__array_interface__["data"][0] == b.__array_interface__["data"][0]


def _alias(out: np.ndarray, x: np.ndarray, g: np.ndarray) -> int:
    """Which input the backward's output is: 1 ``x``, 2 ``grad_out``, 0 neither."""
    return 1 if _same(out, x) else 2 if _same(out, g) else 0


def forward_2d(x2: np.ndarray, lam: float, exact: bool, out2: np.ndarray) -> None:
    """SimAM forward of each row of ``x2`` into ``out2``.

    ``x2``, ``out2``: C-contiguous ``(channels, M)``, both float32 or both float64;
    ``out2`` may be ``x2`` itself.  ``lam`` > 0; ``exact`` selects the
    leave-one-out minimiser instead of the paper formula.
    """
    _check(x2, out2)
    inplace = _same(x2, out2)
    lam, exact = float(lam), bool(exact)
    nc, m = x2.shape
    if use_split(nc, m):
        forward.forward_split(x2, lam, exact, out2, int(constants.BLOCK), inplace)
    elif x2.dtype == np.float32 and not exact and m <= constants.FLAT_MAX_M:
        group, per_item = group_rows(nc, m, constants.FLAT_ELEMS)
        grouped.forward_flat_f32(x2, x2.reshape(-1), lam, out2, out2.reshape(-1), inplace,
                                 group, per_item)
    elif x2.dtype == np.float32:
        forward.forward_channels_f32(x2, lam, exact, out2, inplace)
    else:
        forward.forward_channels(x2, lam, exact, out2, int(constants.BLOCK), inplace)


def backward_2d(
    x2: np.ndarray, g2: np.ndarray, lam: float, exact: bool, out2: np.ndarray
) -> None:
    """Vector-Jacobian product: ``out2 = J(x2)^T g2`` row by row.

    All arrays C-contiguous ``(channels, M)`` of one dtype (float32/float64);
    ``out2`` may be ``x2`` or ``g2`` itself.  Statistics are recomputed from ``x2``.
    """
    _check(x2, g2, out2)
    alias = _alias(out2, x2, g2)
    lam, exact = float(lam), bool(exact)
    nc, m = x2.shape
    if x2.dtype == np.float32 and m < short_rows_min(exact):
        out2[...] = _backward_short_f64(x2, g2, lam, exact)
    elif use_split(nc, m):
        backward.backward_split(x2, g2, lam, exact, out2, int(constants.BLOCK), alias)
    elif x2.dtype == np.float32 and not exact and m <= constants.FLAT_BW_MAX_M:
        group, per_item = group_rows(nc, m, constants.FLAT_BW_ELEMS)
        grouped_backward.backward_flat_f32(x2, g2, lam, out2, alias, group, per_item)
    elif x2.dtype == np.float32:
        backward_f32.backward_channels_f32(x2, g2, lam, exact, out2, alias, chunk(x2.shape[0]),
                                           int(constants.BW_SUMS_BLOCK))
    else:
        backward.backward_channels(x2, g2, lam, exact, out2, int(constants.BLOCK), alias)


def short_rows_min(exact: bool) -> int:
    """Shortest float32 row whose backward runs the float32 code:
    ``constants.F32_BW_EXACT_MIN_M`` for the exact method, else ``F32_BW_MIN_M``."""
    return int(constants.F32_BW_EXACT_MIN_M if exact else constants.F32_BW_MIN_M)


def _backward_short_f64(x2: np.ndarray, g2: np.ndarray, lam: float, exact: bool) -> np.ndarray:
    """float64 backward of float32 rows shorter than :func:`short_rows_min`
    (``(channels, M)``; returns float64): on short rows the gradient is a small
    difference of large terms, which float32 ``exp`` and terms cannot resolve."""
    x64, g64 = x2.astype(np.float64), g2.astype(np.float64)
    out = np.empty_like(x64)
    backward.backward_channels(x64, g64, lam, exact, out, int(constants.BLOCK), 0)
    return out


def forward_nlc(x3: np.ndarray, lam: float, exact: bool, out3: np.ndarray) -> None:
    """SimAM forward of channels-last float32 data into ``out3``.

    ``x3[b, i, c]`` is neuron ``i`` of channel ``c`` in batch item ``b``; ``x3`` and
    ``out3`` are C-contiguous ``(batch, M, channels)`` float32 (an ``(N, H, W, C)``
    array viewed with ``M = H W``); ``out3`` may be ``x3`` itself.
    """
    _check(x3, out3, layout="(batch, M, channels)")
    nlc.forward_nlc_f32(x3, float(lam), bool(exact), out3, int(constants.NLC_TILE),
                        _same(x3, out3), int(constants.NLC_ROW_CALL),
                        int(constants.NLC_COLUMN_MIN))


def backward_nlc(
    x3: np.ndarray, g3: np.ndarray, lam: float, exact: bool, out3: np.ndarray
) -> None:
    """Vector-Jacobian product of :func:`forward_nlc` (layout as there); ``out3`` may be
    ``x3`` or ``g3`` itself."""
    _check(x3, g3, out3, layout="(batch, M, channels)")
    if x3.shape[1] < short_rows_min(exact):  # as backward_2d: float64, rows of M
        rows = [np.ascontiguousarray(a.transpose(0, 2, 1)).reshape(-1, a.shape[1])
                for a in (x3, g3)]
        out3[...] = _backward_short_f64(*rows, float(lam), bool(exact)).reshape(
            x3.shape[0], x3.shape[2], x3.shape[1]).transpose(0, 2, 1)
        return
    nlc_backward.backward_nlc_f32(x3, g3, float(lam), bool(exact), out3,
                                  int(constants.NLC_TILE), _alias(out3, x3, g3),
                                  int(constants.NLC_ROW_CALL), int(constants.NLC_COLUMN_MIN))
