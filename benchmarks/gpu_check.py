"""Prepared GPU check for the SimAM CUDA kernels (run on a machine with an NVIDIA GPU).

1. Runs ``pytest tests/test_cuda_kernels.py`` for real (a subprocess without the
   simulator environment variable).
2. Benchmarks ``simam(x_dev, backend="cuda")`` forward and backward on the
   ResNet-50 stage shapes at batch 32 (float32) against PyTorch eager (the official
   formula in torch ops), ``torch.compile`` of it, and a device copy of the same
   bytes (memory roofline).  Times are CUDA-event times of back-to-back calls
   (``--inner`` per sample, best of ``--repeats``), so host launch overhead shows up
   only where it exceeds the GPU time (the small shapes).

Usage::

    python benchmarks/gpu_check.py [--json OUT] [--skip-tests] [--no-compile]
    python benchmarks/gpu_check.py --smoke   # tiny shapes; runs under the simulator

Torch parts are skipped when torch or its CUDA support is missing.  The whole
check aims to finish within about 4 minutes on an H100; ``--budget-s`` stops
starting new ``torch.compile`` jobs once that much time has passed.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

FULL_SHAPES = [(32, 256, 56, 56), (32, 512, 28, 28), (32, 1024, 14, 14), (32, 2048, 7, 7)]
SMOKE_SHAPES = [(2, 3, 3, 3), (1, 2, 5, 8)]
LAM = 1e-4


def _has_gpu() -> bool:
    return os.path.exists("/dev/nvidiactl") or shutil.which("nvidia-smi") is not None


# ------------------------------------------------------------------------- pytest
def run_tests(timeout_s: float) -> dict[str, Any]:
    """``pytest tests/test_cuda_kernels.py`` in a subprocess on the real GPU."""
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    cmd = [sys.executable, "-m", "pytest", "tests/test_cuda_kernels.py", "-q", "-ra"]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=timeout_s, check=False)
        rc, text = proc.returncode, proc.stdout + proc.stderr
    except subprocess.TimeoutExpired as exc:
        rc, text = -1, f"pytest timed out after {timeout_s:.0f} s\n{exc.stdout or ''}"
    tail = "\n".join(str(text).strip().splitlines()[-15:])
    print(f"[pytest] rc={rc} in {time.perf_counter() - t0:.1f} s\n{tail}\n", flush=True)
    return {"rc": rc, "seconds": time.perf_counter() - t0, "tail": tail}


# ------------------------------------------------------------------------ timing
def time_events(fn: Callable[[], Any], event: Callable[[], Any], sync: Callable[[], Any],
                repeats: int, inner: int, pre: Callable[[], Any] | None = None) -> float:
    """Best per-call milliseconds of ``inner`` back-to-back calls, over ``repeats``.

    ``pre`` (the spin kernel) keeps the GPU busy while the calls are enqueued, so
    the events time the GPU work rather than Python launch overhead.
    """
    fn()
    sync()
    best = math.inf
    for _ in range(repeats):
        start, end = event(), event()
        t0 = time.perf_counter()
        if pre is not None:
            pre()
        start.record()
        for _ in range(inner):
            fn()
        end.record()
        end.synchronize()
        wall = (time.perf_counter() - t0) * 1e3
        ms = start.elapsed_time(end)
        if ms is None or ms <= 0:  # the simulator records no timing
            ms = wall
        best = min(best, ms / inner)
    return best


#: ``numba.cuda``, bound in :func:`main` (after the simulator switch).  Kernels reach
#: it as a module global: the simulator swaps module globals while they run.
cuda: Any = None
_COPY: Any = None
_SPIN: Any = None


def _copy_kernel() -> Any:
    """A grid-stride element copy kernel (the bandwidth roofline), compiled once."""
    global _COPY
    if _COPY is None:

        @cuda.jit
        def copy(src, dst):
            i = cuda.grid(1)
            step = cuda.gridsize(1)
            for k in range(i, src.size, step):
                dst[k] = src[k]

        _COPY = copy
    return _COPY


def spin_launcher(spin_ms: float) -> Callable[[], Any] | None:
    """A launcher of a one-thread kernel that sleeps ~``spin_ms`` on the GPU (or None)."""
    global _SPIN
    if spin_ms <= 0:
        return None
    import numpy as np

    try:
        if _SPIN is None:

            @cuda.jit
            def spin(n_iter, ns):
                for _ in range(n_iter):
                    cuda.nanosleep(ns)

            _SPIN = spin
        n_iter, ns = max(1, int(spin_ms * 50)), np.uint32(20_000)
        _SPIN[1, 1](n_iter, ns)
        cuda.synchronize()
    except Exception as exc:  # old GPU or toolkit without nanosleep
        print(f"[spin] disabled ({type(exc).__name__}: {exc}); times include launch overhead")
        return None
    return lambda: _SPIN[1, 1](n_iter, ns)


# --------------------------------------------------------------------------- torch
def torch_cuda() -> Any:
    """``torch`` when it is importable and sees a CUDA device, else None."""
    try:
        import torch
    except ImportError:
        return None
    return torch if torch.cuda.is_available() else None


def official_torch(torch: Any) -> Callable[[Any], Any]:
    """The official SimAM module's forward, in torch ops."""

    def simam_torch(x):
        n = x.shape[2] * x.shape[3] - 1
        d = (x - x.mean(dim=[2, 3], keepdim=True)).pow(2)
        y = d / (4 * (d.sum(dim=[2, 3], keepdim=True) / n + LAM)) + 0.5
        return x * torch.sigmoid(y)

    return simam_torch


# ------------------------------------------------------------------------ bench
def bench_shape(shape, args, torch, compiled, deadline, pre) -> list[dict[str, Any]]:
    """Rows of results for one shape: forward and forward+backward."""
    import numpy as np

    from simam_ref import simam, simam_backward

    n = math.prod(shape)
    item = 4
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape, dtype=np.float32)
    g = rng.standard_normal(shape, dtype=np.float32)
    xd, gd = cuda.to_device(x), cuda.to_device(g)
    yd, gxd = cuda.device_array_like(xd), cuda.device_array_like(xd)
    ev, sync = cuda.event, cuda.synchronize
    t: dict[str, float] = {}

    def timed(fn, event=ev, synchronize=sync):
        return time_events(fn, event, synchronize, args.repeats, args.inner, pre)

    def fwd():
        simam(xd, LAM, backend="cuda", out=yd)

    def bwd():
        simam_backward(xd, gd, LAM, backend="cuda", out=gxd)

    t["kernel_fwd"] = timed(fwd)
    t["kernel_bwd"] = timed(bwd)
    t["kernel_fwdbwd"] = t["kernel_fwd"] + t["kernel_bwd"]

    flat_src, flat_dst = xd.reshape(n), cuda.device_array(n, dtype=np.float32)
    copy = _copy_kernel()
    tpb = 256 if not args.smoke else 16
    blocks = min(-(-n // tpb), 65535)
    t["copy_kernel"] = timed(lambda: copy[blocks, tpb](flat_src, flat_dst))
    t["copy_memcpy"] = timed(lambda: flat_dst.copy_to_device(flat_src))
    t_copy = min(t["copy_kernel"], t["copy_memcpy"])

    if torch is not None:
        tev = lambda: torch.cuda.Event(enable_timing=True)  # noqa: E731
        xt = torch.from_numpy(x).cuda()
        gt = torch.from_numpy(g).cuda()
        xg = xt.clone().requires_grad_(True)
        eager = official_torch(torch)

        def torch_fwdbwd(f):
            def run():
                y = f(xg)
                return torch.autograd.grad(y, xg, gt)[0]

            return run

        tsync = torch.cuda.synchronize
        with torch.no_grad():
            t["eager_fwd"] = timed(lambda: eager(xt), tev, tsync)
        t["eager_fwdbwd"] = timed(torch_fwdbwd(eager), tev, tsync)
        # CAI path: a torch tensor straight into the kernel (no host copy).
        yt = torch.empty_like(xt)
        t["kernel_fwd_torch_cai"] = timed(lambda: simam(xt, LAM, backend="cuda", out=yt), tev,
                                          tsync)
        if compiled is not None and time.perf_counter() < deadline:
            with torch.no_grad():
                t["compile_fwd"] = timed(lambda: compiled(xt), tev, tsync)
            if time.perf_counter() < deadline:
                t["compile_fwdbwd"] = timed(torch_fwdbwd(compiled), tev, tsync)
        # Accuracy spot check against torch eager in float64.
        ref = eager(xt.double()).float()
        got = torch.as_tensor(yd.copy_to_host(), device="cuda")
        t["max_rel_err_vs_torch_f64"] = float(((got - ref).abs() / ref.abs().clamp_min(1e-30))
                                              .max())

    rows = []
    for op, n_bytes in (("fwd", 2 * n * item), ("fwdbwd", 5 * n * item)):
        k = t[f"kernel_{op}"]
        copy_eq = t_copy * n_bytes / (2 * n * item)  # copy time for the same bytes
        row = {
            "shape": list(shape),
            "op": op,
            "kernel_ms": k,
            "kernel_GBps": n_bytes / k / 1e6,
            "copy_ms_same_bytes": copy_eq,
            "copy_GBps": 2 * n * item / t_copy / 1e6,
            "bw_fraction": copy_eq / k,
            "eager_ms": t.get(f"eager_{op}"),
            "compile_ms": t.get(f"compile_{op}"),
        }
        row["eager_over_kernel"] = row["eager_ms"] / k if row["eager_ms"] else None
        row["compile_over_kernel"] = row["compile_ms"] / k if row["compile_ms"] else None
        if op == "fwd":
            row["kernel_bwd_ms"] = t["kernel_bwd"]
            row["kernel_fwd_torch_cai_ms"] = t.get("kernel_fwd_torch_cai")
            row["max_rel_err_vs_torch_f64"] = t.get("max_rel_err_vs_torch_f64")
        rows.append(row)
    return rows


def _fmt(v: Any, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def print_table(rows: list[dict[str, Any]]) -> None:
    head = (f"{'shape':>20} {'op':>6} {'simam ms':>9} {'GB/s':>7} {'copy ms':>8} "
            f"{'copy/ker':>8} {'eager ms':>9} {'eager/ker':>9} {'compile ms':>10} "
            f"{'comp/ker':>8}")
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{'x'.join(map(str, r['shape'])):>20} {r['op']:>6} {r['kernel_ms']:9.4f} "
              f"{r['kernel_GBps']:7.0f} {r['copy_ms_same_bytes']:8.4f} "
              f"{r['bw_fraction']:8.2f} {_fmt(r['eager_ms'], '9.4f'):>9} "
              f"{_fmt(r['eager_over_kernel'], '9.2f'):>9} {_fmt(r['compile_ms'], '10.4f'):>10} "
              f"{_fmt(r['compile_over_kernel'], '8.2f'):>8}")
    print("copy/ker: fraction of copy bandwidth (1.0 = roofline); fwdbwd: simam fwd + bwd "
          "kernels vs torch forward + autograd backward (5 array passes)")


# -------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    """Run the check; returns 0 on success, 1 when the real-GPU pytest run failed."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--smoke", action="store_true",
                   help="tiny shapes, no pytest, no torch.compile (works under the simulator)")
    p.add_argument("--json", metavar="OUT", help="save results as JSON")
    p.add_argument("--skip-tests", action="store_true", help="do not run pytest")
    p.add_argument("--no-compile", action="store_true", help="skip torch.compile")
    p.add_argument("--repeats", type=int, default=None, help="samples per timing (best of)")
    p.add_argument("--inner", type=int, default=None, help="back-to-back calls per sample")
    p.add_argument("--spin-ms", type=float, default=None,
                   help="GPU sleep before each timed sample, hides launch overhead (0: off)")
    p.add_argument("--budget-s", type=float, default=180.0,
                   help="start no torch.compile after this many seconds")
    p.add_argument("--test-timeout-s", type=float, default=150.0)
    args = p.parse_args(argv)
    args.repeats = args.repeats or (1 if args.smoke else 10)
    args.inner = args.inner or (1 if args.smoke else 20)
    if args.spin_ms is None:
        args.spin_ms = 0.0 if args.smoke else 20.0
    t_start = time.perf_counter()
    deadline = t_start + args.budget_s

    if args.smoke and not _has_gpu():
        os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")
    result: dict[str, Any] = {"smoke": args.smoke, "argv": argv or sys.argv[1:]}
    if not args.smoke and not args.skip_tests:
        result["pytest"] = run_tests(args.test_timeout_s)

    from simam_ref.kernels import cuda as kcuda

    if not kcuda.available():
        print(f"CUDA backend unavailable: {kcuda.unavailable_reason()}")
        result["error"] = kcuda.unavailable_reason()
        _save(args.json, result)
        return 1
    global cuda
    from numba import cuda

    saved = (kcuda.THREADS_PER_BLOCK, kcuda.GROUP_MIN, kcuda.ELEMENTS_PER_THREAD)
    if args.smoke:
        kcuda.THREADS_PER_BLOCK, kcuda.GROUP_MIN, kcuda.ELEMENTS_PER_THREAD = 16, 4, 2
    try:
        name = getattr(cuda.get_current_device(), "name", "CUDA simulator")
        result["device"] = name.decode() if isinstance(name, bytes) else str(name)
        result["simulator"] = kcuda.simulator_enabled()
        torch = None if args.smoke else torch_cuda()
        compiled = None
        if torch is None:
            print("[torch] no CUDA torch: skipping eager / torch.compile comparisons")
        else:
            result["torch"] = torch.__version__
            if not args.no_compile:
                compiled = torch.compile(official_torch(torch), dynamic=False)
        print(f"device: {result['device']}  simulator: {result['simulator']}  "
              f"threads/block: {kcuda.THREADS_PER_BLOCK}", flush=True)
        pre = None if result["simulator"] else spin_launcher(args.spin_ms)
        result["spin_ms"] = args.spin_ms if pre is not None else 0.0
        rows = []
        for shape in SMOKE_SHAPES if args.smoke else FULL_SHAPES:
            t0 = time.perf_counter()
            rows += bench_shape(shape, args, torch, compiled, deadline, pre)
            print(f"  {shape}: {time.perf_counter() - t0:.1f} s", flush=True)
        print()
        print("simam CUDA kernels, float32, lam=1e-4, method='paper'")
        print_table(rows)
        result["rows"] = rows
    finally:
        kcuda.THREADS_PER_BLOCK, kcuda.GROUP_MIN, kcuda.ELEMENTS_PER_THREAD = saved
    result["seconds"] = time.perf_counter() - t_start
    print(f"total {result['seconds']:.1f} s")
    _save(args.json, result)
    return 0 if result.get("pytest", {}).get("rc", 0) == 0 else 1


def _save(path: str | None, result: dict[str, Any]) -> None:
    if path:
        Path(path).write_text(json.dumps(result, indent=2, default=str))
        print(f"saved {path}")


if __name__ == "__main__":
    sys.exit(main())
