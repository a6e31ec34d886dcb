"""Numba CUDA kernels for SimAM (forward and analytic backward, paper and exact).

Each kernel implements the per-channel algorithm of :mod:`simam_ref.reference` and
recomputes everything from ``x`` (the backward saves no state): channel statistics,
then (backward) the ``P1``/``P2`` reductions, then the output.  One kernel is
compiled per variant (forward/backward, method, precision, reduction, one or two
spatial dimensions, values held in registers).  Modules, in the order data flows:

* :mod:`.runtime`: availability, the simulator, lazy binding of ``numba.cuda``;
* :mod:`.reductions`: warp-shuffle and shared-memory-tree group reductions;
* :mod:`.elements`: a thread's walk over its channel; register and streaming loops;
* :mod:`.statistics`: scale, mean and ``S2`` of a channel;
* :mod:`.pointwise`: channel constants and per-neuron math (float64 from
  :mod:`simam_ref.kernels.neuron`);
* :mod:`.kernels`: the kernels, one per variant, built on first use;
* :mod:`.launch`: launch configuration from :mod:`simam_ref.constants`, read at
  every launch;
* :mod:`.streams`, :mod:`.interop`, :mod:`.layout`: launch streams, foreign device
  arrays, strided views;
* :mod:`.device`: the entry points re-exported here.

Importing this package never touches the driver; :func:`available` says whether a
GPU (or the simulator, ``NUMBA_ENABLE_CUDASIM=1``) can run the kernels.  Tunables
live in :mod:`simam_ref.constants` (``THREADS_PER_BLOCK``, ``GROUP_MIN``,
``ELEMENTS_PER_THREAD``, ``REGISTER_ELEMENTS``, ``MAX_BLOCKS``, ``WARP_SHUFFLE``).
"""

from __future__ import annotations

from ... import constants
from .device import backward_2d, forward_2d, simam_backward_device, simam_device
from .kernels import Kind, kernel
from .launch import launch_config, register_elements
from .layout import split4
from .runtime import available, simulator_enabled, unavailable_reason, use_shuffle
from .streams import stream_handle

__all__ = [
    "Kind",
    "available",
    "backward_2d",
    "forward_2d",
    "kernel",
    "launch_config",
    "register_elements",
    "simam_backward_device",
    "simam_device",
    "simulator_enabled",
    "split4",
    "stream_handle",
    "unavailable_reason",
    "use_shuffle",
]

# the tunables this package used to define: aliases of simam_ref.constants
constants.forward_tunables(__name__, constants.CUDA_TUNABLES)
