"""Benchmark harness behind ``simam bench`` (also ``python -m simam_ref.bench``).

Times the SimAM kernel (forward, and with ``--backward`` the vector-Jacobian
product) on ResNet-50 stage shapes at batch 32, best of ``--repeat`` rounds (each
round times every task once, so the ratios compare times taken under the same
load on a shared machine), against

* ``copy``: a Numba parallel copy of the same array (the memory roofline),
* ``numpy``: the NumPy backend,
* ``torch_eager``: PyTorch eager running the official formula
  ``x * sigmoid(d / (4 (v + lam)) + 0.5)`` (the paper formula, whatever ``--method``),
* ``torch_compile``: ``torch.compile`` of that function.

``--layout nhwc`` times channels-last arrays: the kernel and NumPy get the
``(N, H, W, C)`` array with ``axes=(1, 2)``, PyTorch gets the same memory as an
``(N, C, H, W)`` tensor in ``channels_last`` format.

For ``--backward`` the torch baselines time ``autograd.grad`` of the formula
*including its forward* (autograd needs the graph), while ``simam_backward`` needs
no forward: it recomputes the channel statistics from ``x``.

Ratios: ``kernel/copy`` (lower is better, 1.0 is the roofline) and
``baseline/kernel`` speed-ups (higher is better).  Effective GB/s counts the bytes
the kernel must move: read ``x`` and write ``y`` (forward); read ``x`` and
``grad_out`` and write ``grad_x`` (backward).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from .bench_report import format_table, isa_name, machine, plot, ratios

__all__ = [
    "RESNET50_SHAPES",
    "add_arguments",
    "format_table",
    "isa_name",
    "main",
    "plot",
    "run",
]

#: ResNet-50 stage outputs at batch 32 (N, C, H, W).
RESNET50_SHAPES: tuple[tuple[int, int, int, int], ...] = (
    (32, 256, 56, 56),
    (32, 512, 28, 28),
    (32, 1024, 14, 14),
    (32, 2048, 7, 7),
)
QUICK_SHAPE = (2, 8, 16, 16)
BASELINES = ("copy", "numpy", "torch_eager", "torch_compile")


# ---------------------------------------------------------------------- CLI glue
def _shape(text: str) -> tuple[int, ...]:
    try:
        dims = tuple(int(v) for v in text.replace("x", ",").split(",") if v.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"bad shape {text!r}: {exc}") from None
    if len(dims) < 3 or min(dims) < 1:
        raise argparse.ArgumentTypeError(f"shape must be N,C,*spatial with dims >= 1: {text!r}")
    return dims


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``bench`` options to ``parser``."""
    parser.add_argument("--shape", type=_shape, action="append", metavar="N,C,H,W",
                        help="shape to time (repeatable); default: ResNet-50 stages, batch 32")
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    parser.add_argument("--method", choices=("paper", "exact"), default="paper")
    parser.add_argument("--lam", type=float, default=1e-4, help="lambda (default 1e-4)")
    parser.add_argument("--repeat", type=int, default=10, metavar="N",
                        help="best of N timed rounds after one warm-up (default 10)")
    parser.add_argument("--layout", choices=("nchw", "nhwc"), default="nchw",
                        help="memory layout of the input: channels-first (default) or "
                        "channels-last (N, H, W, C) with axes=(1, 2)")
    parser.add_argument("--backward", action="store_true",
                        help="also time the backward (vector-Jacobian product)")
    parser.add_argument("--backend", default="cpu", choices=("cpu", "cuda", "numpy", "auto"),
                        help="backend of the timed kernel (default cpu)")
    parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch baselines")
    parser.add_argument("--no-compile", action="store_true",
                        help="skip torch.compile (its compile takes tens of seconds)")
    parser.add_argument("--no-numpy", action="store_true", help="skip the NumPy baseline")
    parser.add_argument("--quick", action="store_true",
                        help=f"one small shape {QUICK_SHAPE}, 3 repeats (smoke test)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--plot", metavar="FILE.png", help="save a bar chart of the ratios")
    parser.add_argument("--seed", type=int, default=0)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m simam_ref.bench``."""
    parser = argparse.ArgumentParser(prog="simam bench", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


# ----------------------------------------------------------------------- timing
_COPY = None


def _parallel_copy() -> Callable[[np.ndarray, np.ndarray], None]:
    """A Numba ``prange`` copy of a flat array (compiled once, cached)."""
    global _COPY
    if _COPY is None:
        from numba import njit, prange

        @njit(parallel=True, cache=True)
        def copy(src, dst):  # pragma: no cover - compiled
            for i in prange(src.shape[0]):
                dst[i] = src[i]

        _COPY = copy
    return _COPY


# ------------------------------------------------------------------- torch side
def _torch_formula(torch: Any, lam: float, ndim: int) -> Callable[[Any], Any]:
    dims = tuple(range(2, ndim))

    def simam_official(x):
        n = math.prod(x.shape[2:]) - 1
        d = (x - x.mean(dim=dims, keepdim=True)).pow(2)
        e_inv = d / (4 * (d.sum(dim=dims, keepdim=True) / n + lam)) + 0.5
        return x * torch.sigmoid(e_inv)

    return simam_official


def _torch_setup(no_torch: bool) -> tuple[Any, str | None]:
    if no_torch:
        return None, "skipped (--no-torch)"
    try:
        import numba
        import torch
    except ImportError as exc:
        return None, f"torch not installed ({exc})"
    torch.set_num_threads(numba.get_num_threads())
    return torch, None


def _torch_fns(torch: Any, lam: float, ndim: int, backward: bool, compiled: bool):
    f = _torch_formula(torch, lam, ndim)
    if compiled:
        f = torch.compile(f, dynamic=False)
    if not backward:
        return f

    def vjp(x, g):
        xg = x.detach().requires_grad_(True)
        return torch.autograd.grad(f(xg), xg, g)[0]

    return vjp


# ----------------------------------------------------------------------- driver
def _tasks(args: argparse.Namespace, torch_ok: bool) -> list[str]:
    names = ["kernel", "copy"]
    if not args.no_numpy:
        names.append("numpy")
    if torch_ok:
        names.append("torch_eager")
        if not args.no_compile:
            names.append("torch_compile")
    return names


def run(args: argparse.Namespace) -> int:
    """Run the benchmark described by ``args`` (see :func:`add_arguments`)."""
    from . import simam, simam_backward

    shapes = [QUICK_SHAPE] if args.quick else list(args.shape or RESNET50_SHAPES)
    repeat = 3 if args.quick else max(1, args.repeat)
    dtype = np.dtype(args.dtype)
    torch, torch_reason = _torch_setup(args.no_torch)
    passes = ["forward"] + (["backward"] if args.backward else [])
    names = _tasks(args, torch is not None)
    total = len(shapes) * len(passes) * len(names)
    step = 0
    results = []
    rng = np.random.default_rng(args.seed)
    for shape in shapes:
        label = "x".join(map(str, shape))
        x = rng.standard_normal(shape).astype(dtype)
        g = rng.standard_normal(shape).astype(dtype)
        if args.layout == "nhwc":  # channels-last memory, (N, *spatial, C)
            order = (0, *range(2, len(shape)), 1)
            x = np.ascontiguousarray(x.transpose(order))
            g = np.ascontiguousarray(g.transpose(order))
        out = np.empty_like(x)
        for kind in passes:
            times: dict[str, float | None] = {}
            unavailable: dict[str, str] = {}
            if torch is None:
                unavailable.update(torch_eager=torch_reason, torch_compile=torch_reason)
            if args.no_numpy:
                unavailable["numpy"] = "skipped (--no-numpy)"
            if torch is not None and args.no_compile:
                unavailable["torch_compile"] = "skipped (--no-compile)"
            fns: dict[str, Callable[[], Any]] = {}
            firsts: dict[str, float] = {}
            for name in names:  # build and warm up (compiles) every task first
                step += 1
                print(f"[{step}/{total}] {kind} {name} {label}", file=sys.stderr, flush=True)
                try:
                    fn = _task(name, kind, x, g, out, args, torch, simam, simam_backward)
                    t0 = time.perf_counter()
                    fn()
                    firsts[name] = time.perf_counter() - t0
                    fns[name] = fn
                except Exception as exc:  # a baseline failing must not stop the run
                    if name == "kernel":
                        raise
                    times[name] = None
                    unavailable[name] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
            times.update(_best_interleaved(fns, firsts, repeat))
            nbytes = x.nbytes * (2 if kind == "forward" else 3)
            k = times["kernel"]
            results.append({
                "shape": list(shape),
                "pass": kind,
                "bytes": nbytes,
                "times_s": {n: times.get(n) for n in ("kernel", *BASELINES)},
                "gbps": {n: (nbytes if n != "copy" else 2 * x.nbytes) / t / 1e9
                         for n, t in times.items() if t},
                "kernel_gbps": nbytes / k / 1e9,
                "ratios": ratios(times),
                "unavailable": unavailable,
            })
    report = {
        "machine": machine(),
        "config": {"dtype": dtype.name, "method": args.method, "lam": args.lam,
                   "layout": args.layout,
                   "repeat": repeat, "backend": args.backend,
                   "torch_formula": "paper (official)"},
        "results": results,
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(format_table(report))
    if args.plot:
        plot(report, args.plot)
    return 0


def _best_interleaved(fns: dict[str, Callable[[], Any]], firsts: dict[str, float],
                      repeat: int, budget_s: float = 40.0) -> dict[str, float]:
    """Best wall time of each warmed-up task over ``repeat`` rounds (fewer if over
    budget); every round times each task once, so on a shared machine the tasks
    whose ratios are reported see the same load."""
    rounds = max(1, min(repeat, int(budget_s / max(sum(firsts.values()), 1e-9))))
    best = {name: math.inf for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t0)
    return best


def _task(name, kind, x, g, out, args, torch, simam, simam_backward) -> Callable[[], Any]:
    """The zero-argument callable that ``name`` times (see the module docstring)."""
    lam, method = args.lam, args.method
    nhwc = getattr(args, "layout", "nchw") == "nhwc"
    axes = tuple(range(1, x.ndim - 1)) if nhwc else None
    if name in ("kernel", "numpy"):
        backend = args.backend if name == "kernel" else "numpy"
        if kind == "forward":
            return lambda: simam(x, lam, method=method, axes=axes, out=out, backend=backend)
        return lambda: simam_backward(x, g, lam, method=method, axes=axes, out=out,
                                      backend=backend)
    if name == "copy":
        copy = _parallel_copy()
        src, dst = x.reshape(-1), out.reshape(-1)
        return lambda: copy(src, dst)
    fn = _torch_fns(torch, lam, x.ndim, kind == "backward", name == "torch_compile")
    tx, tg = torch.from_numpy(x), torch.from_numpy(g)
    if nhwc:  # the same memory as an (N, C, *spatial) tensor in channels_last format
        back = (0, x.ndim - 1, *range(1, x.ndim - 1))
        tx, tg = tx.permute(back), tg.permute(back)
    args_t = (tx,) if kind == "forward" else (tx, tg)

    def call():
        with torch.inference_mode(kind == "forward"):
            return fn(*args_t)

    return call


if __name__ == "__main__":
    sys.exit(main())
