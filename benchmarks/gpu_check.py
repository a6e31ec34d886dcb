"""Prepared GPU check for the SimAM CUDA kernels (run on a machine with an NVIDIA GPU).

Built so that a short lease always yields numbers: every step runs in its own
``try``, and the JSON (``--json``) is rewritten after every step and every shape.

0. A tiny compile-and-run of the kernels first, with a clear message when numba-cuda
   cannot compile (NVVM, libdevice, NVRTC) or run (driver) them.
1. Real-GPU checks of the things the simulator cannot see: the warp-shuffle
   reductions against the float64 NumPy reference, PyTorch streams (the input is
   written on a side stream and ``simam`` must run on that stream), ``stream=``,
   ``requires_grad`` tensors and, when CuPy is installed, CuPy's current stream.
2. ``pytest tests/test_cuda_kernels.py`` in a subprocess on the real GPU (without
   the simulator switch and without ``tests/conftest.py``, so neither hypothesis
   nor the simulator settings are involved); a missing pytest is reported.
3. Benchmarks ``simam(x_dev, backend="cuda")`` forward and backward on the
   ResNet-50 stage shapes at batch 32 (float32) against PyTorch eager (the official
   formula in torch ops), ``torch.compile`` of it, and a device copy of the same
   bytes (memory roofline).  GPU times are CUDA-event times of back-to-back calls
   behind a spin kernel (``--inner`` per sample, best of ``--repeats``); the
   ``wall`` column is host wall-clock per call without the spin kernel (launch and
   Python overhead included).  ``mem`` says ``L2`` where the bytes of one call fit
   in the L2 cache (50 MB on an H100), ``HBM`` otherwise.  Where a shape runs the
   register kernels (x read once), the JSON also has the streaming kernels' times
   (``kernel_*_streaming_ms``), and ``wall_fwd_torch_alloc_ms`` times a torch call
   without ``out=`` (the result from torch's caching allocator).

Usage::

    python benchmarks/gpu_check.py [--json OUT] [--skip-tests] [--no-compile]
    python benchmarks/gpu_check.py --smoke   # tiny shapes; runs under the simulator

Torch parts are skipped when torch or its CUDA support is missing.  The whole
check should finish in about 6 minutes on an H100, most of it compiling kernel
variants (pytest's own process compiles them again) and ``torch.compile``;
``--budget-s`` stops starting new ``torch.compile`` jobs once that much time has
passed, ``--skip-tests`` saves the pytest run.  Needs numpy, numba and numba-cuda;
uses torch, cupy and pytest when present (not hypothesis, SymPy or z3).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import shutil
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

FULL_SHAPES = [(32, 256, 56, 56), (32, 512, 28, 28), (32, 1024, 14, 14), (32, 2048, 7, 7)]
SMOKE_SHAPES = [(2, 3, 3, 3), (1, 2, 5, 8)]
LAM = 1e-4
L2_DEFAULT = 50 * 2**20  # H100 SXM


def _has_gpu() -> bool:
    return os.path.exists("/dev/nvidiactl") or shutil.which("nvidia-smi") is not None


def _err(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def attempt(result: dict[str, Any], key: str, fn: Callable[[], Any], json_path: str | None
            ) -> Any:
    """Run one step; record its value or its error under ``key`` and save the JSON."""
    t0 = time.perf_counter()
    try:
        value = fn()
        result[key] = value
        return value
    except Exception as exc:  # one failing step must not lose the others
        result[key] = {"error": _err(exc), "trace": traceback.format_exc(limit=6)}
        print(f"[{key}] FAILED: {_err(exc)}", flush=True)
        return None
    finally:
        result.setdefault("step_seconds", {})[key] = round(time.perf_counter() - t0, 2)
        _save(json_path, result, quiet=True)


# ------------------------------------------------------------------ compile check
def compile_check() -> dict[str, Any]:
    """Compile and run the forward and backward kernels once on a tiny array."""
    import numpy as np

    from simam_ref import simam, simam_backward
    from simam_ref.kernels import cuda as kcuda

    x = np.random.default_rng(0).standard_normal((2, 3, 4, 5)).astype(np.float32)
    t0 = time.perf_counter()
    try:
        y = simam(x, LAM, backend="cuda")
        g = simam_backward(x, x, LAM, backend="cuda")
    except Exception as exc:
        raise RuntimeError(
            "the CUDA kernels do not compile or run here: "
            f"{_err(exc)}. numba-cuda needs the CUDA driver, NVVM and libdevice (it looks "
            "them up through cuda-pathfinder / NVRTC: install numba-cuda[cu12] or [cu13] "
            "matching the driver, or set CUDA_HOME)"
        ) from exc
    ref = simam(x.astype(np.float64), LAM, backend="numpy")
    gref = simam_backward(x.astype(np.float64), x.astype(np.float64), LAM, backend="numpy")
    err = float(np.max(np.abs(y - ref) / np.abs(ref)))
    gerr = float(np.max(np.abs(g - gref)) / np.max(np.abs(gref)))
    ok = err < 2e-6 and gerr < 2e-5
    print(f"[compile] ok={ok} in {time.perf_counter() - t0:.1f} s (max rel err fwd {err:.1e}, "
          f"bwd {gerr:.1e}; shuffle reductions: {kcuda.use_shuffle()})", flush=True)
    if not ok:
        raise RuntimeError(f"wrong results: forward rel err {err:.2e}, backward {gerr:.2e}")
    return {"ok": True, "seconds": time.perf_counter() - t0, "fwd_rel_err": err,
            "bwd_rel_err": gerr, "shuffle": kcuda.use_shuffle()}


# -------------------------------------------------------------- real-GPU checks
def reductions_check() -> dict[str, Any]:
    """Warp-shuffle reductions: group sizes 32 (7x7) .. 256 (56x56), both methods."""
    import numpy as np

    from simam_ref import simam, simam_backward

    out = {}
    for shape in ((4, 64, 7, 7), (2, 16, 14, 14), (2, 8, 28, 28), (2, 4, 56, 56), (1, 2, 3, 5)):
        for method in ("paper", "exact"):
            x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
            g = np.random.default_rng(2).standard_normal(shape).astype(np.float32)
            xd, gd = cuda.to_device(x), cuda.to_device(g)
            ref = simam(x.astype(np.float64), LAM, method=method, backend="numpy")
            gref = simam_backward(x.astype(np.float64), g.astype(np.float64), LAM,
                                  method=method, backend="numpy")
            y = simam(xd, LAM, method=method).copy_to_host()
            gx = simam_backward(xd, gd, LAM, method=method).copy_to_host()
            e1 = float(np.max(np.abs(y - ref) / np.maximum(np.abs(ref), 1e-30)))
            e2 = float(np.max(np.abs(gx - gref)) / np.max(np.abs(gref)))
            out[f"{'x'.join(map(str, shape))}/{method}"] = [e1, e2]
            if not (e1 < 2e-6 and e2 < 2e-5):
                raise AssertionError(f"{shape} {method}: rel err fwd {e1:.2e} bwd {e2:.2e}")
    print(f"[reductions] ok: worst fwd {max(v[0] for v in out.values()):.1e}, "
          f"bwd {max(v[1] for v in out.values()):.1e}", flush=True)
    return out


def torch_stream_check(torch: Any) -> dict[str, Any]:
    """simam inside ``torch.cuda.stream(s)`` sees an input written on ``s``."""
    import numpy as np

    from simam_ref import simam, simam_backward

    shape = (8, 64, 28, 28)
    src = torch.randn(shape, device="cuda")
    ref = simam(src.cpu().double().numpy(), LAM, backend="numpy")
    side = torch.cuda.Stream()
    res: dict[str, Any] = {}
    for how in ("current", "explicit"):
        x = torch.zeros(shape, device="cuda")
        torch.cuda.synchronize()
        with torch.cuda.stream(side):
            torch.cuda._sleep(50_000_000)  # keep the side stream busy (~tens of ms)
            x.copy_(src)  # written late, in side-stream order
            if how == "current":
                y = simam(x, LAM)  # default: torch's current stream (side)
        if how == "explicit":
            y = simam(x, LAM, stream=side)
        side.synchronize()
        if not isinstance(y, torch.Tensor):
            raise AssertionError(f"torch input gave a {type(y).__name__}, not a torch.Tensor")
        err = float(np.max(np.abs(y.cpu().numpy() - ref) / np.abs(ref)))
        res[how] = err
        if not err < 2e-6:
            raise AssertionError(f"stream={how}: rel err {err:.2e} (ran before the write?)")
    xg = src.clone().requires_grad_(True)
    y = simam(xg, LAM)  # read detached
    res["requires_grad_read"] = float(np.max(np.abs(y.cpu().numpy() - ref) / np.abs(ref)))
    res["result_requires_grad"] = bool(y.requires_grad)
    try:
        simam(src, LAM, out=torch.empty_like(src).requires_grad_(True))
        raise AssertionError("out= with requires_grad was accepted")
    except ValueError:
        res["requires_grad_out_refused"] = True
    gx = simam_backward(xg, torch.ones_like(src), LAM)
    res["backward_ok"] = bool(np.isfinite(gx.cpu().numpy()).all())
    print(f"[torch streams] ok: {res}", flush=True)
    return res


def cupy_stream_check() -> dict[str, Any]:
    """CuPy arrays: the interface's stream is used (no host synchronisation)."""
    import cupy
    import numpy as np

    from simam_ref import simam

    shape = (4, 32, 14, 14)
    src = cupy.random.standard_normal(shape, dtype=cupy.float32)
    ref = simam(cupy.asnumpy(src).astype(np.float64), LAM, backend="numpy")
    side = cupy.cuda.Stream(non_blocking=True)
    with side:
        x = cupy.zeros(shape, dtype=cupy.float32)
        x[...] = src
        out = cupy.empty_like(x)
        simam(x, LAM, out=out)
        y = simam(x, LAM)  # no out=: a CuPy array from CuPy's pool, on this stream
    side.synchronize()
    if not isinstance(y, cupy.ndarray):
        raise AssertionError(f"cupy input gave a {type(y).__name__}, not a cupy.ndarray")
    err = max(float(np.max(np.abs(cupy.asnumpy(a) - ref) / np.abs(ref))) for a in (out, y))
    if not err < 2e-6:
        raise AssertionError(f"cupy side stream: rel err {err:.2e}")
    print(f"[cupy stream] ok: rel err {err:.1e}", flush=True)
    return {"rel_err": err}


# ------------------------------------------------------------------------- pytest
def run_tests(timeout_s: float) -> dict[str, Any]:
    """``pytest tests/test_cuda_kernels.py`` in a subprocess on the real GPU."""
    if importlib.util.find_spec("pytest") is None:
        msg = "pytest is not installed: NO test signal from tests/ (pip install pytest)"
        print(f"[pytest] {msg}", flush=True)
        return {"rc": None, "error": msg}
    if importlib.util.find_spec("hypothesis") is None:
        # tests/conftest.py imports hypothesis; --noconftest below keeps it out of the run
        print("[pytest] hypothesis is not installed: not needed here (--noconftest)",
              flush=True)
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    cmd = [sys.executable, "-m", "pytest", "tests/test_cuda_kernels.py", "-q", "-ra",
           "--noconftest", "-p", "no:cacheprovider"]
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


def time_wall(fn: Callable[[], Any], sync: Callable[[], Any], repeats: int, inner: int) -> float:
    """Best host wall-clock milliseconds per call (no spin kernel: launch overhead shows)."""
    fn()
    sync()
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        sync()
        best = min(best, (time.perf_counter() - t0) * 1e3 / inner)
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
        print(f"[spin] disabled ({_err(exc)}); times include launch overhead")
        return None
    return lambda: _SPIN[1, 1](n_iter, ns)


def l2_bytes(torch: Any) -> int:
    """The device's L2 cache size (50 MB when it cannot be asked)."""
    try:
        size = int(getattr(cuda.get_current_device(), "L2_CACHE_SIZE", 0))
        if size > 0:
            return size
    except Exception:
        pass
    try:
        if torch is not None:
            return int(torch.cuda.get_device_properties(0).L2_cache_size)
    except Exception:
        pass
    return L2_DEFAULT


# --------------------------------------------------------------------------- torch
def torch_cuda() -> Any:
    """``torch`` when it is importable and sees a CUDA device, else None."""
    try:
        import torch
    except ImportError:
        return None
    try:
        return torch if torch.cuda.is_available() else None
    except Exception:
        return None


def official_torch(torch: Any) -> Callable[[Any], Any]:
    """The official SimAM module's forward, in torch ops."""

    def simam_torch(x):
        n = x.shape[2] * x.shape[3] - 1
        d = (x - x.mean(dim=[2, 3], keepdim=True)).pow(2)
        y = d / (4 * (d.sum(dim=[2, 3], keepdim=True) / n + LAM)) + 0.5
        return x * torch.sigmoid(y)

    return simam_torch


# ------------------------------------------------------------------------ bench
def bench_shape(shape, args, torch, compiled, deadline, pre, l2) -> list[dict[str, Any]]:
    """Rows of results for one shape: forward and forward+backward.

    Each measurement is tried on its own; a failure leaves its cell empty and is
    listed under ``errors``.
    """
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
    errors: dict[str, str] = {}

    def measure(key, fn, event=ev, synchronize=sync, wall=False):
        try:
            if wall:
                t[key] = time_wall(fn, synchronize, args.repeats, args.inner)
            else:
                t[key] = time_events(fn, event, synchronize, args.repeats, args.inner, pre)
        except Exception as exc:
            errors[key] = _err(exc)
            print(f"  [{key}] failed: {_err(exc)}", flush=True)

    def fwd():
        simam(xd, LAM, backend="cuda", out=yd)

    def bwd():
        simam_backward(xd, gd, LAM, backend="cuda", out=gxd)

    measure("kernel_fwd", fwd)
    measure("kernel_bwd", bwd)
    measure("wall_fwd", fwd, wall=True)
    measure("wall_bwd", bwd, wall=True)
    # The same calls through the streaming kernels (x read from memory in every pass)
    # where the register kernels ran: which of the two a shape should use.
    from simam_ref import constants
    from simam_ref.kernels import cuda as kcuda

    m = shape[2] * shape[3]
    regs = kcuda.register_elements(m, kcuda.launch_config(shape[0] * shape[1], m)[2])
    t["register_elements"] = regs
    if regs:
        saved = constants.REGISTER_ELEMENTS
        constants.REGISTER_ELEMENTS = 0
        try:
            measure("kernel_fwd_streaming", fwd)
            measure("kernel_bwd_streaming", bwd)
        finally:
            constants.REGISTER_ELEMENTS = saved
    if "kernel_fwd" in t and "kernel_bwd" in t:
        t["kernel_fwdbwd"] = t["kernel_fwd"] + t["kernel_bwd"]
    if "wall_fwd" in t and "wall_bwd" in t:
        t["wall_fwdbwd"] = t["wall_fwd"] + t["wall_bwd"]

    try:
        flat_src, flat_dst = xd.reshape(n), cuda.device_array(n, dtype=np.float32)
        copy = _copy_kernel()
        tpb = 256 if not args.smoke else 16
        blocks = min(-(-n // tpb), 65535)
        measure("copy_kernel", lambda: copy[blocks, tpb](flat_src, flat_dst))
        measure("copy_memcpy", lambda: flat_dst.copy_to_device(flat_src))
    except Exception as exc:
        errors["copy"] = _err(exc)
    copies = [t[k] for k in ("copy_kernel", "copy_memcpy") if k in t]
    t_copy = min(copies) if copies else None

    if torch is not None:
        try:
            tev = lambda: torch.cuda.Event(enable_timing=True)  # noqa: E731
            tsync = torch.cuda.synchronize
            xt = torch.from_numpy(x).cuda()
            gt = torch.from_numpy(g).cuda()
            xg = xt.clone().requires_grad_(True)
            eager = official_torch(torch)

            def torch_fwdbwd(f):
                def run():
                    y = f(xg)
                    return torch.autograd.grad(y, xg, gt)[0]

                return run

            def eager_fwd():
                with torch.no_grad():
                    eager(xt)

            measure("eager_fwd", eager_fwd, tev, tsync)
            measure("eager_fwdbwd", torch_fwdbwd(eager), tev, tsync)
            # CAI path: a torch tensor straight into the kernel, torch's current stream.
            yt = torch.empty_like(xt)
            measure("kernel_fwd_torch_cai", lambda: simam(xt, LAM, backend="cuda", out=yt),
                    tev, tsync)
            measure("wall_fwd_torch_cai", lambda: simam(xt, LAM, backend="cuda", out=yt),
                    tev, tsync, wall=True)
            # No out=: the result comes from torch's caching allocator.
            measure("wall_fwd_torch_alloc", lambda: simam(xt, LAM, backend="cuda"),
                    tev, tsync, wall=True)
            if compiled is not None and time.perf_counter() < deadline:

                def compiled_fwd():
                    with torch.no_grad():
                        compiled(xt)

                measure("compile_fwd", compiled_fwd, tev, tsync)
                if time.perf_counter() < deadline:
                    measure("compile_fwdbwd", torch_fwdbwd(compiled), tev, tsync)
            # Accuracy spot check against torch eager in float64.
            fwd()
            ref = eager(xt.double()).float()
            got = torch.as_tensor(yd.copy_to_host(), device="cuda")
            t["max_rel_err_vs_torch_f64"] = float(
                ((got - ref).abs() / ref.abs().clamp_min(1e-30)).max())
        except Exception as exc:
            errors["torch"] = _err(exc)
            print(f"  [torch] failed: {_err(exc)}", flush=True)

    rows = []
    for op, n_bytes in (("fwd", 2 * n * item), ("fwdbwd", 5 * n * item)):
        k = t.get(f"kernel_{op}")
        copy_eq = t_copy * n_bytes / (2 * n * item) if t_copy else None  # same bytes
        row = {
            "shape": list(shape),
            "op": op,
            "mem": "L2" if 2 * n * item <= l2 else "HBM",
            "kernel_ms": k,
            "wall_ms": t.get(f"wall_{op}"),
            "kernel_GBps": n_bytes / k / 1e6 if k else None,
            "copy_ms_same_bytes": copy_eq,
            "copy_GBps": 2 * n * item / t_copy / 1e6 if t_copy else None,
            "bw_fraction": copy_eq / k if (copy_eq and k) else None,
            "eager_ms": t.get(f"eager_{op}"),
            "compile_ms": t.get(f"compile_{op}"),
        }
        row["eager_over_kernel"] = row["eager_ms"] / k if (row["eager_ms"] and k) else None
        row["compile_over_kernel"] = (row["compile_ms"] / k
                                      if (row["compile_ms"] and k) else None)
        if op == "fwd":
            row["kernel_bwd_ms"] = t.get("kernel_bwd")
            row["kernel_fwd_torch_cai_ms"] = t.get("kernel_fwd_torch_cai")
            row["wall_fwd_torch_cai_ms"] = t.get("wall_fwd_torch_cai")
            row["wall_fwd_torch_alloc_ms"] = t.get("wall_fwd_torch_alloc")
            row["register_elements"] = t.get("register_elements")
            row["kernel_fwd_streaming_ms"] = t.get("kernel_fwd_streaming")
            row["kernel_bwd_streaming_ms"] = t.get("kernel_bwd_streaming")
            row["max_rel_err_vs_torch_f64"] = t.get("max_rel_err_vs_torch_f64")
            row["errors"] = errors
        rows.append(row)
    return rows


def _fmt(v: Any, spec: str) -> str:
    return "-" if v is None else format(v, spec)


HEAD = (f"{'shape':>20} {'op':>6} {'mem':>4} {'simam ms':>9} {'wall ms':>8} {'GB/s':>7} "
        f"{'copy ms':>8} {'copy/ker':>8} {'eager ms':>9} {'eager/ker':>9} {'compile ms':>10} "
        f"{'comp/ker':>8}")


def print_rows(rows: list[dict[str, Any]], header: bool = False) -> None:
    if header:
        print(HEAD)
        print("-" * len(HEAD))
    for r in rows:
        print(f"{'x'.join(map(str, r['shape'])):>20} {r['op']:>6} {r['mem']:>4} "
              f"{_fmt(r['kernel_ms'], '9.4f'):>9} {_fmt(r['wall_ms'], '8.4f'):>8} "
              f"{_fmt(r['kernel_GBps'], '7.0f'):>7} {_fmt(r['copy_ms_same_bytes'], '8.4f'):>8} "
              f"{_fmt(r['bw_fraction'], '8.2f'):>8} {_fmt(r['eager_ms'], '9.4f'):>9} "
              f"{_fmt(r['eager_over_kernel'], '9.2f'):>9} {_fmt(r['compile_ms'], '10.4f'):>10} "
              f"{_fmt(r['compile_over_kernel'], '8.2f'):>8}", flush=True)


def print_table(rows: list[dict[str, Any]]) -> None:
    print_rows(rows, header=True)
    print("copy/ker: fraction of copy bandwidth (1.0 = roofline); wall: host wall-clock per "
          "call without the spin kernel; mem: where one call's bytes fit (L2 or HBM); "
          "fwdbwd: simam fwd + bwd kernels vs torch forward + autograd backward "
          "(5 array passes)")


# -------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    """Run the check; 0 on success, 1 when a check or the real-GPU pytest run failed."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--smoke", action="store_true",
                   help="tiny shapes, no pytest, no torch.compile (works under the simulator)")
    p.add_argument("--json", metavar="OUT", help="save results as JSON (after every step)")
    p.add_argument("--skip-tests", action="store_true", help="do not run pytest")
    p.add_argument("--no-compile", action="store_true", help="skip torch.compile")
    p.add_argument("--repeats", type=int, default=None, help="samples per timing (best of)")
    p.add_argument("--inner", type=int, default=None, help="back-to-back calls per sample")
    p.add_argument("--spin-ms", type=float, default=None,
                   help="GPU sleep before each timed sample, hides launch overhead (0: off)")
    p.add_argument("--budget-s", type=float, default=180.0,
                   help="start no torch.compile after this many seconds")
    p.add_argument("--test-timeout-s", type=float, default=240.0,
                   help="pytest subprocess limit (each kernel variant compiles on first use)")
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
    failed = False
    from simam_ref.kernels import cuda as kcuda

    if not kcuda.available():
        print(f"CUDA backend unavailable: {kcuda.unavailable_reason()}")
        result["error"] = kcuda.unavailable_reason()
        _save(args.json, result)
        return 1
    global cuda
    from numba import cuda

    from simam_ref import constants

    saved = (constants.THREADS_PER_BLOCK, constants.GROUP_MIN, constants.ELEMENTS_PER_THREAD)
    if args.smoke:  # tests/conftest.py's SIM_LAUNCH: simulated threads are Python threads
        constants.THREADS_PER_BLOCK, constants.GROUP_MIN, constants.ELEMENTS_PER_THREAD = 16, 4, 2
    try:
        try:
            name = getattr(cuda.get_current_device(), "name", "CUDA simulator")
            result["device"] = name.decode() if isinstance(name, bytes) else str(name)
        except Exception as exc:
            result["device"] = f"unknown ({_err(exc)})"
        result["simulator"] = kcuda.simulator_enabled()
        print(f"device: {result['device']}  simulator: {result['simulator']}  "
              f"threads/block: {constants.THREADS_PER_BLOCK}", flush=True)
        if attempt(result, "compile_check", compile_check, args.json) is None:
            print("stopping: the kernels cannot run here (see compile_check in the JSON)")
            return 1
        torch = None if args.smoke else torch_cuda()
        if torch is not None:
            result["torch"] = torch.__version__
        if not result["simulator"]:
            failed |= attempt(result, "reductions_check", reductions_check, args.json) is None
            if torch is not None:
                failed |= attempt(result, "torch_stream_check",
                                  lambda: torch_stream_check(torch), args.json) is None
            if importlib.util.find_spec("cupy") is not None:
                failed |= attempt(result, "cupy_stream_check", cupy_stream_check,
                                  args.json) is None
        if not args.smoke and not args.skip_tests:
            tests = attempt(result, "pytest", lambda: run_tests(args.test_timeout_s), args.json)
            failed |= not (isinstance(tests, dict) and tests.get("rc") == 0)
        compiled = None
        if torch is None:
            print("[torch] no CUDA torch: skipping eager / torch.compile comparisons")
        elif not args.no_compile:
            try:
                compiled = torch.compile(official_torch(torch), dynamic=False)
            except Exception as exc:
                result["compile_error"] = _err(exc)
        pre = None if result["simulator"] else spin_launcher(args.spin_ms)
        result["spin_ms"] = args.spin_ms if pre is not None else 0.0
        l2 = l2_bytes(torch)
        result["l2_bytes"] = l2
        result["rows"] = rows = []
        print(f"\nsimam CUDA kernels, float32, lam={LAM}, method='paper' "
              f"(L2 {l2 / 2**20:.0f} MiB)")
        print_rows([], header=True)
        for shape in SMOKE_SHAPES if args.smoke else FULL_SHAPES:
            t0 = time.perf_counter()
            try:
                new = bench_shape(shape, args, torch, compiled, deadline, pre, l2)
            except Exception as exc:  # keep the other shapes
                result.setdefault("shape_errors", {})[str(shape)] = _err(exc)
                print(f"  {shape}: FAILED {_err(exc)}", flush=True)
                failed = True
                continue
            rows += new
            print_rows(new)
            print(f"  ({shape}: {time.perf_counter() - t0:.1f} s)", flush=True)
            _save(args.json, result, quiet=True)
        print()
        print_table(rows)
    finally:
        constants.THREADS_PER_BLOCK, constants.GROUP_MIN, constants.ELEMENTS_PER_THREAD = saved
        result["seconds"] = time.perf_counter() - t_start
        result["failed"] = failed
        _save(args.json, result)
    print(f"total {result['seconds']:.1f} s")
    return 1 if failed else 0


def _save(path: str | None, result: dict[str, Any], quiet: bool = False) -> None:
    if path:
        Path(path).write_text(json.dumps(result, indent=2, default=str))
        if not quiet:
            print(f"saved {path}")


if __name__ == "__main__":
    sys.exit(main())
