"""Registers, spills and barriers of every SimAM CUDA kernel variant, without a GPU.

Compiles each kernel (forward/backward x paper/exact x float16/float32/float64, warp
shuffle reductions as on hardware; the streaming kernels, ``k = 0``, and the register
kernels holding ``k`` values a thread) to PTX for a compute capability with Numba's
NVVM, then runs ``ptxas -v`` on it.  Needs the CUDA toolkit's libNVVM, libdevice
and ``ptxas`` (found under ``$CUDA_HOME`` or ``/usr/local/cuda*``); no driver, no
GPU, no NVRTC: where numba-cuda would ask a device or NVRTC for the architecture
or the libdevice path, this script answers for it.

Usage::

    python benchmarks/cuda_registers.py [--cc 9.0] [--layout C A] [--regs 0 2 4] [--json OUT]

``local``: ``ld.local``/``st.local`` in the PTX (0: the register kernels' arrays live in
registers); ``spill``: ptxas spill stores.  ``before``: commit e04659e (one kernel per
precision, runtime flags); ``prev``: the kernels with a grid-stride loop over channel
batches (before they became one batch per block), same variant.  A summary of the
largest count per kernel and precision ends the output.

Occupancy column: resident warps per SM at 256 threads per block on sm_90
(65536 registers per SM, 64 warps at most), from the register count alone.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

#: ptxas -v at commit e04659e (one kernel for every method and precision, runtime
#: ``exact``/``lowp`` flags, shared-memory tree reductions), sm_90, CUDA 13.0.
BEFORE = {
    ("forward", "float16"): 70, ("forward", "float32"): 70, ("forward", "float64"): 69,
    ("backward", "float16"): 94, ("backward", "float32"): 96, ("backward", "float64"): 94,
}
#: ptxas -v of the kernels with a grid-stride loop (one kernel per variant, warp
#: shuffles), sm_90, CUDA 13.0: a line per kernel, method and dtype, the counts in the
#: order of :data:`_PREV_ORDER`.
_PREV_FILE = Path(__file__).with_name("cuda_registers_prev.txt")
_PREV_ORDER = (("C", 0), ("A", 0), ("A4", 0), ("C", 1), ("C", 2), ("C", 4))


def previous_counts() -> dict[tuple[str, str, str, str, int], int]:
    """:data:`_PREV_FILE` keyed by ``(kernel, method, dtype, layout, k)``."""
    out = {}
    for line in _PREV_FILE.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        kind, method, dtype, *regs = line.split()
        for (layout, k), n in zip(_PREV_ORDER, regs, strict=True):
            out[(kind, method, dtype, layout, k)] = int(n)
    return out


def _toolkit_dirs() -> list[str]:
    dirs = [os.environ.get(k) for k in ("CUDA_HOME", "CUDA_PATH")]
    dirs += sorted(glob.glob("/usr/local/cuda*"), reverse=True)
    return [d for d in dirs if d and os.path.isdir(d)]


def find_ptxas() -> str | None:
    """``ptxas`` on PATH or in a CUDA toolkit directory."""
    found = shutil.which("ptxas")
    if found:
        return found
    for d in _toolkit_dirs():
        cand = os.path.join(d, "bin", "ptxas")
        if os.access(cand, os.X_OK):
            return cand
    return None


def find_libdevice() -> str | None:
    for d in _toolkit_dirs():
        hits = sorted(glob.glob(os.path.join(d, "nvvm", "libdevice", "libdevice*.bc")))
        if hits:
            return hits[-1]
    return None


def patch_numba_cuda(cc: tuple[int, int], libdevice: str | None) -> None:
    """Let numba-cuda compile to PTX with no device and no NVRTC."""
    from numba.cuda import dispatcher
    from numba.cuda.cudadrv import libs, nvrtc, nvvm

    dispatcher.get_current_device = lambda: SimpleNamespace(compute_capability=cc)
    nvrtc.get_arch_option = lambda major, minor: f"compute_{major}{minor}"
    if libdevice:
        libs.get_libdevice = lambda: libdevice
        nvvm.get_libdevice = lambda: libdevice


def ptxas_report(ptxas: str, ptx: str, cc: tuple[int, int]) -> dict[str, Any]:
    """Registers, spill bytes and stack frame from ``ptxas -v``."""
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "k.ptx")
        Path(src).write_text(ptx)
        proc = subprocess.run([ptxas, "-v", f"-arch=sm_{cc[0]}{cc[1]}", src, "-o",
                               os.path.join(tmp, "k.cubin")],
                              capture_output=True, text=True, check=False)
    text = proc.stderr + proc.stdout
    if proc.returncode != 0:
        raise RuntimeError(f"ptxas failed: {text.strip()[-500:]}")

    def grab(pattern: str) -> int:
        hit = re.search(pattern, text)
        return int(hit.group(1)) if hit else 0

    return {
        "registers": grab(r"Used (\d+) registers"),
        "spill_stores": grab(r"(\d+) bytes spill stores"),
        "stack": grab(r"(\d+) bytes stack frame"),
    }


def warps_per_sm(registers: int, tpb: int = 256) -> int:
    """Resident warps per SM limited by registers (sm_90: 64K registers, 64 warps)."""
    per_warp = -(-max(registers, 1) * 32 // 256) * 256  # allocation granularity 256
    blocks = 65536 // (per_warp * (tpb // 32))
    return min(64, blocks * (tpb // 32))


def summary(rows: list[dict[str, Any]]) -> None:
    """Print the largest register count per (kernel, dtype): now, prev and before."""
    print("\nlargest per kernel and dtype (all variants above): now / prev / before")
    for kind in ("forward", "backward"):
        parts = []
        for dtype in ("float16", "float32", "float64"):
            sel = [r for r in rows if r["kernel"] == kind and r["dtype"] == dtype]
            if sel:
                now = max(r["registers"] for r in sel)
                old = max((r["prev"] or 0) for r in sel)
                parts.append(f"{dtype} {now} / {old or '-'} / {BEFORE[(kind, dtype)]}")
        print(f"  {kind:>8}: " + ";  ".join(parts))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cc", default="9.0", help="compute capability, e.g. 9.0")
    p.add_argument("--layout", nargs="+", default=["C", "A", "A4"],
                   help="C: contiguous rows (NCHW), A: any strides with the spatial axes "
                        "merged into one dimension (e.g. NHWC), A4: two spatial dimensions")
    p.add_argument("--regs", nargs="+", type=int, default=[0, 1, 2, 4],
                   help="values a thread keeps in registers (0: the streaming kernels)")
    p.add_argument("--reg-layout", nargs="+", default=["C"],
                   help="layouts compiled for the register kernels (regs > 0)")
    p.add_argument("--tree", action="store_true",
                   help="also the shared-memory tree reductions (the simulator's)")
    p.add_argument("--json", metavar="OUT")
    args = p.parse_args(argv)
    if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
        print("unset NUMBA_ENABLE_CUDASIM: the simulator cannot compile kernels")
        return 2
    cc = tuple(int(v) for v in args.cc.split("."))
    ptxas = find_ptxas()
    if ptxas is None:
        print("ptxas not found (set CUDA_HOME to a CUDA toolkit)")
        return 2
    patch_numba_cuda(cc, find_libdevice())
    from numba import cuda, types

    from simam_ref.kernels import cuda as kcuda


    rows = []
    prev = previous_counts()
    print(f"{'kernel':>9} {'method':>6} {'dtype':>8} {'layout':>6} {'reduce':>7} {'k':>2} "
          f"{'regs':>5} {'prev':>5} {'before':>6} {'spill':>5} {'local':>5} {'warps/SM':>8} "
          f"{'bar':>4} {'div.f64':>7}")
    variants = [(k, layout) for k in args.regs for layout in args.layout
                if k == 0 or layout in args.reg_layout]
    for kind in ("forward", "backward"):
        for method in ("paper", "exact"):
            for dtype in ("float16", "float32", "float64"):
                for k, layout in variants:
                    for shuffle in (True, False) if args.tree else (True,):
                        arr = types.Array(getattr(types, dtype), 4, layout[0])
                        i64 = types.int64
                        n_arr = 2 if kind == "forward" else 3
                        sig = (*([arr] * n_arr), types.float64, i64, i64, i64, i64, i64, i64)
                        kern = kcuda.kernel(kind, method == "exact", dtype != "float64",
                                            shuffle, flat=layout != "A4", regs=k)
                        ptx, _ = cuda.compile_ptx(kern.py_func, sig, cc=cc)
                        rep = ptxas_report(ptxas, ptx, cc)
                        row = {
                            "kernel": kind, "method": method, "dtype": dtype,
                            "layout": layout, "reduce": "shuffle" if shuffle else "tree",
                            "register_elements": k, **rep,
                            "local_memory_ops": len(re.findall(r"\b(?:ld|st)\.local", ptx)),
                            "before": BEFORE[(kind, dtype)],
                            "prev": prev.get((kind, method, dtype, layout, k)),
                            "warps_per_sm_256": warps_per_sm(rep["registers"]),
                            "bar_sync": len(re.findall(r"\bbar(?:rier)?\.sync", ptx)),
                            "div_rn_f64": ptx.count("div.rn.f64"),
                        }
                        rows.append(row)
                        print(f"{kind:>9} {method:>6} {dtype:>8} {layout:>6} "
                              f"{row['reduce']:>7} {k:>2} {row['registers']:>5} "
                              f"{row['prev'] or '-':>5} {row['before']:>6} "
                              f"{row['spill_stores']:>5} "
                              f"{row['local_memory_ops']:>5} {row['warps_per_sm_256']:>8} "
                              f"{row['bar_sync']:>4} {row['div_rn_f64']:>7}", flush=True)
    summary(rows)
    if args.json:
        Path(args.json).write_text(json.dumps({"cc": list(cc), "rows": rows}, indent=2))
        print(f"saved {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
