"""Launch configuration: group size, register-kernel choice, blocks, and the launch.

Every launch reads ``constants.THREADS_PER_BLOCK``, ``GROUP_MIN``,
``ELEMENTS_PER_THREAD``, ``REGISTER_ELEMENTS``, ``MAX_BLOCKS``, ``F32_BW_MIN_M`` and
``F32_BW_EXACT_MIN_M`` afresh (tests lower them for simulator speed or coverage);
``constants.WARP_SHUFFLE`` picks the reduction of kernels built from then on.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ... import constants
from . import kernels, runtime
from .kernels import Kind
from .reductions import WARP, shared_bytes


def _pow2_ceil(v: int) -> int:
    """The smallest power of two ``>= v`` (1 for ``v <= 1``)."""
    return 1 << max(0, (int(v) - 1).bit_length())


def _threads_per_block() -> int:
    """``constants.THREADS_PER_BLOCK``, checked to be a power of two in ``[1, 1024]``."""
    tpb = int(constants.THREADS_PER_BLOCK)
    if tpb < 1 or tpb > 1024 or tpb & (tpb - 1):
        raise ValueError(f"THREADS_PER_BLOCK must be a power of two in [1, 1024], got {tpb}")
    return tpb


def launch_config(channels: int, m: int) -> tuple[int, int, int]:
    """``(blocks, threads_per_block, group)`` for ``channels`` rows of ``m`` neurons.

    ``group`` threads share one channel: ``group == threads_per_block`` is the
    one-block-per-channel layout, a smaller group packs several channels per block.
    ``blocks`` covers every channel once (one batch of channels per block).
    """
    tpb = _threads_per_block()
    gmin = min(tpb, _pow2_ceil(max(1, int(constants.GROUP_MIN))))
    want = _pow2_ceil(-(-m // max(1, int(constants.ELEMENTS_PER_THREAD))))
    group = min(tpb, max(gmin, want))
    per_block = tpb // group
    return max(1, -(-channels // per_block)), tpb, group


def register_elements(m: int, group: int) -> int:
    """Values a thread keeps in registers for channels of ``m`` neurons walked by
    ``group`` threads: a power of two ``>= ceil(m / group)``, or 0 (the streaming
    kernel) above ``constants.REGISTER_ELEMENTS``."""
    k = _pow2_ceil(-(-int(m) // int(group)))
    return k if k <= int(constants.REGISTER_ELEMENTS) else 0


def _launch(kern: Any, config: tuple[int, int, Any, int], args: tuple) -> None:
    """``kern[blocks, tpb, stream, shared_bytes](*args)`` (one place to observe launches)."""
    kern[config](*args)


def run(kind: Kind, views: tuple[Any, ...], split: tuple[int, int, int, int], lam: float,
        exact: bool, stream: Any) -> None:
    """Launch the kernel for 4-d ``views`` (``x[, grad_out], out``) of shape ``split``.

    At most ``constants.MAX_BLOCKS`` blocks a launch: more batches of channels take
    several launches on the same stream (argument ``block0``: the first batch).
    """
    _, nb, npp, nq = split
    channels, m = split[0] * nb, npp * nq
    blocks, tpb, group = launch_config(channels, m)
    shuffle = runtime.use_shuffle()
    # float16/float32 in float32 element math, except the backward of rows shorter
    # than F32_BW_MIN_M (F32_BW_EXACT_MIN_M for the exact method): float64 math, see
    # constants.F32_BW_MIN_M
    short = constants.F32_BW_EXACT_MIN_M if exact else constants.F32_BW_MIN_M
    lowp = np.dtype(views[0].dtype) != np.float64 and (kind == "forward" or m >= short)
    kern = kernels.kernel(kind, exact, lowp, shuffle, flat=npp == 1, full_warps=tpb >= WARP,
                          regs=register_elements(m, group))
    gshift = group.bit_length() - 1
    step = max(1, int(constants.MAX_BLOCKS))
    config_stream = stream if stream is not None else 0
    for block0 in range(0, blocks, step):
        args = (*views, float(lam), gshift, channels, nb, m, nq, block0)
        _launch(kern, (min(step, blocks - block0), tpb, config_stream,
                       shared_bytes(shuffle, tpb)), args)
