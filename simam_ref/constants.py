"""Every tunable number and numeric limit of simam-ref, in one place.

The NumPy reference, the CPU kernels and the CUDA kernels read these.  The
launch and tiling sizes (CPU and CUDA sections below) are read by the Python
entry points at every call, so tests monkeypatch them here
(``monkeypatch.setattr(constants, "BLOCK", 64)``) and a patched value takes effect
on the next call; none of them changes a result's value except through the
summation order, which depends on the shape and these constants alone (never on
the thread count).  The numeric limits are compiled into the kernels (CPU kernels
when first compiled, CUDA kernels when a variant is first built): they are fixed
for the process, and Numba's on-disk cache keeps a CPU kernel's value until the
kernel's own file changes, so after editing a limit here clear that cache (the
``__pycache__`` folders of ``simam_ref/kernels/cpu``, or ``NUMBA_CACHE_DIR``).

The tunables used to live on the kernel modules (``kernels.cpu.BLOCK``,
``kernels.cuda.THREADS_PER_BLOCK``, ...); those names still read the values here,
and assigning them is an error that says to set them here (:func:`forward_tunables`).
"""

from __future__ import annotations

import sys
import types

# ---------------------------------------------------------------- numeric limits
#: Floor of the scaled regulariser ``lam * s**2``: keeps every denominator (and
#: its square) finite and nonzero; it changes a result only where ``lam`` is
#: ``2**-500`` of the channel's squared scale.
LAM_FLOOR = 2.0**-500
#: The per-channel power-of-two scale ``2**-e`` clips the ``frexp`` exponent ``e``
#: of ``max|x|`` to ``[MIN_EXP, MAX_EXP]``.
MIN_EXP = -1000
MAX_EXP = 1100
#: The float32 backward (CPU and CUDA) runs channels whose mean is at most this many
#: standard deviations from 0 (``mu**2 <= BW_OFFSET_LIM**2 S2 / M``); channels
#: further off run in float64.  A neuron's gradient is ``go g (1 + P) - mean(q
#: alpha) - u sum(q beta)`` with ``P = x u (1 - g) / (2 sigma**2)`` (``sigma**2 =
#: S2/n + lam``): from ``|mu| = 6.6`` standard deviations some ``u`` in ``(-mu, 0)``
#: has ``P = -1``, and rows whose neurons sit there, with ``grad_out`` on them alone,
#: leave a gradient far smaller than its terms, whose float32 rounding (``exp``'s
#: included) then dominates: 4e-5 to 3.7e-4 of a row's largest gradient at 7
#: standard deviations (16-49 neurons, two-valued rows), 5.7e-6 with a nearly
#: constant ``grad_out`` at 1000.  Below the limit ``|P| <= 0.68``, and the same
#: rows (16-784 neurons) are within 7.7e-7.
BW_OFFSET_LIM = 5.0

# ------------------------------------------------------------------ CPU kernels
#: Elements per partial-sum block.  Fixed (never derived from the thread count),
#: so the summation order, hence every bit of the result, is fixed.  Tests may
#: lower it to exercise the multi-block code on small arrays.
BLOCK = 4096
#: The within-channel split runs only for channels at least this long ...
SPLIT_MIN_M = 32768
#: ... and when there are fewer channels than this (a constant, never the thread
#: count, so the path, hence the bits, depend on the shape alone).
SPLIT_MAX_CHANNELS = 16
#: float32 rows shorter than this run the backward in float64 (CPU: a float64 copy
#: of the rows, both layouts; CUDA: the float64 element math, float16 input too)
#: with the paper method (the exact method: :data:`F32_BW_EXACT_MIN_M`);
#: 2, the shortest row, turns it off.  It was 16: float32 terms lost up
#: to 0.23 of a row's largest gradient at ``M = 2``, 3.5e-5 at ``M = 4``, 2e-6 at
#: ``M = 8`` (float64 terms with a float32 ``exp``: 2.7e-5 at ``M = 2``), but on rows
#: far off 0 (offsets up to 1e5), which :data:`BW_OFFSET_LIM` now sends to float64
#: at any length.  Within it, rows of 2-15 neurons are within 5.6e-7 on the CPU
#: (normal and two-valued rows, ``lam`` 1e-8 to 10, spreads 1e-3 to 1e3, ``grad_out``
#: of one sign, on the bulk alone, or the Jacobian's smallest singular vector), and
#: the float32 backward of 32x2048x3x3 takes 0.14x the float64 copy's time.
F32_BW_MIN_M = 2
#: :data:`F32_BW_MIN_M` of the exact method, whose leave-one-out terms cancel nearer
#: 0 on short rows: float64 element math with the float32 ``exp`` was off by up to
#: 6.2e-4 of a row's largest gradient at 8 neurons, 1.4e-5 at 9, 8.5e-6 at 10 and
#: 2.0e-6 at 12 (two-valued rows 4.5-5 standard deviations off 0, ``grad_out`` on
#: the bulk alone), and within 1.2e-6 from 14 neurons up.
F32_BW_EXACT_MIN_M = 16
#: float32 rows of at most this many neurons run the paper forward in groups of
#: whole rows: one vector loop over the group instead of one per row, so a
#: 49-neuron row has no scalar tail.
FLAT_MAX_M = 128
#: About this many neurons a group of the grouped forward (whole rows: ``FLAT_ELEMS //
#: M`` of them; its ``z`` scratch: 16 KiB) on small inputs; groups grow to
#: :data:`GROUP_GROWTH` times this on large ones (see :data:`GROUPS_PER_THREAD`).
FLAT_ELEMS = 4096
#: float32 rows of at most this many neurons run the paper backward in groups of
#: whole rows (:mod:`.kernels.cpu.grouped_backward`: ``exp`` and the gain of a group
#: in one vector loop, each row's sums and output from the scratch).  Larger than
#: :data:`FLAT_MAX_M`: the grouped backward pays up to 64x64 rows (0.83-0.92x the
#: channel path's time at 28x28 and 56x56), where the grouped forward does not.
FLAT_BW_MAX_M = 4096
#: About this many neurons a group of the grouped backward on small inputs (its three
#: float32 scratch rows: about 111 KiB); groups grow to :data:`GROUP_GROWTH` times
#: this on large ones (scratch about 400 KiB a thread, in L2 on hosts with 1 MiB).
FLAT_BW_ELEMS = 8192
#: Groups of the grouped kernels grow from :data:`FLAT_ELEMS` (:data:`FLAT_BW_ELEMS`)
#: up to this many times that while every thread still gets at least
#: :data:`GROUPS_PER_THREAD` groups: measured in one process at the ResNet-50 stage
#: shapes (batch 32, 2 threads, interleaved, best of 21-25), groups 4x larger took
#: 0.89-0.92x the forward's time at 7x7 (0.92x at 10x10, 0.98x at 4x4) and
#: 0.94-0.97x the backward's at 7x7 to 56x56.  The cap leaves a many-thread host
#: enough work items to balance (``kernels.cpu.group_rows``; a thread count changes
#: only the grouping, never a row's bits) and keeps the scratch, once groups grow,
#: near 3/32 of the input (the backward's 12 bytes a neuron of a group, a thread).
GROUP_GROWTH = 4
#: See :data:`GROUP_GROWTH`.
GROUPS_PER_THREAD = 32
#: Neurons per block of the float32 paper backward's sums pass: a block's terms are
#: stored in L1 scratch, then summed in float64.
BW_SUMS_BLOCK = 1024
#: Most channels per work item of the channels-last kernels.
NLC_TILE = 4096
#: Channels-last tiles of at least this many channels run each neuron row's vector
#: loop as a call of its own: nested in the loop over rows, LLVM keeps the ``exp``
#: constants out of AVX2's 16 vector registers and reloads them in every iteration
#: (12 broadcasts in a 37-instruction loop; 24 instructions as a call; 0.84-0.90x
#: the forward's time at the ResNet-50 stage shapes, 0.89-0.99x the backward's).
#: A call costs ~12 ns, so narrower tiles keep the nested loops (a call per row
#: was 1.5-2.4x slower at 3 and 16 channels).
NLC_ROW_CALL = 256
#: Channels-last tiles of at least this many channels sum their statistics in blocks
#: of rows with 32 channels' float64 accumulators in registers
#: (:func:`.kernels.cpu.simd_sums.column_moments_f32`); narrower tiles keep one loop
#: over rows with the accumulators in L1 (the blocked loop reads each block in
#: strided 128-byte pieces, which cost more than it saves at 256 and 512 channels:
#: 1.14-1.19x the forward's time at 32x512x28x28, 0.62-0.92x at 14x14 and 7x7).
#: Both paths add in the same order: the bits do not depend on the path.
NLC_COLUMN_MIN = 1024

# ----------------------------------------------------------------- CUDA kernels
#: Threads per block (a power of two, at most 1024).
THREADS_PER_BLOCK = 256
#: Smallest group of threads per channel (one warp on a GPU).
GROUP_MIN = 32
#: Target elements per thread when sizing a group: channels with
#: ``M <= GROUP_MIN * ELEMENTS_PER_THREAD`` get ``GROUP_MIN`` threads (many
#: channels per block), channels with ``M > THREADS_PER_BLOCK * ELEMENTS_PER_THREAD / 2``
#: get the whole block (one block per channel).
ELEMENTS_PER_THREAD = 8
#: Register kernels: a channel with ``M <= REGISTER_ELEMENTS * group`` is read once
#: into registers and the statistics, the backward's reductions and the output
#: come from there.  0 turns them off (every pass streams ``x`` from memory).
REGISTER_ELEMENTS = 4
#: Most blocks per launch; more batches of channels take several launches on the
#: same stream.
MAX_BLOCKS = 1 << 20
#: Reductions: ``None`` picks warp shuffles on a GPU and the shared-memory tree
#: under the simulator (which has no shuffles); ``True``/``False`` forces one.
#: Read when a kernel variant is first built.
WARP_SHUFFLE: bool | None = None


#: The tunables each kernel package used to define itself (see :func:`forward_tunables`).
CPU_TUNABLES = ("BLOCK", "SPLIT_MIN_M", "SPLIT_MAX_CHANNELS", "FLAT_MAX_M", "FLAT_ELEMS",
                "BW_SUMS_BLOCK", "NLC_TILE")
CUDA_TUNABLES = ("THREADS_PER_BLOCK", "GROUP_MIN", "ELEMENTS_PER_THREAD", "REGISTER_ELEMENTS",
                 "MAX_BLOCKS", "WARP_SHUFFLE")


class _ForwardingModule(types.ModuleType):
    """A module whose names listed in its ``_TUNABLES`` read this module's values and
    refuse assignment (a copy there would silently do nothing)."""

    def __getattr__(self, name: str):
        """``module.NAME`` of a forwarded tunable reads ``constants.NAME``."""
        if name in self.__dict__.get("_TUNABLES", ()):
            return globals()[name]
        raise AttributeError(f"module {self.__name__!r} has no attribute {name!r}")

    def __setattr__(self, name: str, value: object) -> None:
        """Assigning a forwarded tunable is an error that names its home."""
        if name in self.__dict__.get("_TUNABLES", ()):
            raise AttributeError(f"{self.__name__}.{name} is read from simam_ref.constants: "
                                 f"set simam_ref.constants.{name} instead")
        super().__setattr__(name, value)


def forward_tunables(module_name: str, names: tuple[str, ...]) -> None:
    """Make ``module_name.NAME`` for each of ``names`` read ``constants.NAME``, and
    assigning it an error naming ``constants``: code written against the old
    per-module tunables reads the right value, and a write cannot silently miss."""
    module = sys.modules[module_name]
    module.__dict__["_TUNABLES"] = frozenset(names)
    module.__class__ = _ForwardingModule
