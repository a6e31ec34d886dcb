"""What ``simam bench`` reports about its run: the machine, the ratios, a table, a chart.

:func:`machine` names the host (CPU model, SIMD level, core and Numba thread
counts, library versions); :func:`ratios` turns one row of times into the
speed-ups ``simam bench`` prints; :func:`format_table` and :func:`plot` render a
report of :func:`simam_ref.bench.run`.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
from typing import Any

import numpy as np

__all__ = ["format_table", "isa_name", "machine", "plot", "ratios"]


def isa_name(features: set[str]) -> str:
    """The widest x86 SIMD level named by CPU feature flags: AVX-512, AVX2 or other."""
    if "avx512f" in features:
        return "AVX-512"
    if "avx2" in features:
        return "AVX2"
    return "other"


def _cpu_features() -> set[str]:
    """CPU feature flags: LLVM's view of the host (what the kernels compile for)."""
    try:
        from llvmlite import binding

        text = binding.get_host_cpu_features().flatten()
        return {f[1:] for f in text.split(",") if f.startswith("+")}
    except Exception:  # noqa: BLE001 - fall back to the kernel's list
        pass
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def machine() -> dict[str, Any]:
    """The host as ``simam bench`` reports it (CPU, ISA, cores, threads, versions, date)."""
    cpu_name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu_name = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    import numba

    info: dict[str, Any] = {
        "cpu": cpu_name,
        "cores": os.cpu_count(),
        "isa": isa_name(_cpu_features()),
        "numba_threads": numba.get_num_threads(),
        "numba": numba.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    try:
        import torch

        info["torch"] = torch.__version__
    except ImportError:
        info["torch"] = None
    return info


def ratios(times: dict[str, float | None]) -> dict[str, float | None]:
    """``kernel/copy`` and the baselines' speed-ups over the kernel (None where missing)."""
    k = times.get("kernel")

    def div(a: float | None, b: float | None) -> float | None:
        return None if a is None or b is None or b == 0 else a / b

    return {
        "kernel/copy": div(k, times.get("copy")),
        "eager/kernel": div(times.get("torch_eager"), k),
        "compile/kernel": div(times.get("torch_compile"), k),
        "numpy/kernel": div(times.get("numpy"), k),
    }


# ----------------------------------------------------------------------- output
def _fmt(v: float | None, spec: str) -> str:
    """``v`` formatted by ``spec``, or ``n/a``."""
    return "n/a" if v is None else format(v, spec)


def format_table(report: dict[str, Any]) -> str:
    """The human-readable table of a :func:`run` report."""
    m, c = report["machine"], report["config"]
    lines = [
        f"simam bench  {m['date']}  {m['cpu']}  ISA={m.get('isa', '?')}  cores={m['cores']}  "
        f"numba threads={m['numba_threads']}  dtype={c['dtype']}  method={c['method']}  "
        f"layout={c.get('layout', 'nchw')}  best of {c['repeat']}",
        f"{'pass':8} {'shape':>16} {'kernel ms':>10} {'GB/s':>7} {'copy ms':>8} "
        f"{'numpy ms':>9} {'eager ms':>9} {'compile ms':>10} | {'k/copy':>7} "
        f"{'eager/k':>8} {'compile/k':>9} {'numpy/k':>8}",
    ]
    notes = []
    for r in report["results"]:
        t, q = r["times_s"], r["ratios"]
        ms = {k: (None if v is None else v * 1e3) for k, v in t.items()}
        lines.append(
            f"{r['pass']:8} {'x'.join(map(str, r['shape'])):>16} {_fmt(ms['kernel'], '10.3f')} "
            f"{_fmt(r['kernel_gbps'], '7.1f')} {_fmt(ms['copy'], '8.3f')} "
            f"{_fmt(ms['numpy'], '9.2f')} {_fmt(ms['torch_eager'], '9.2f')} "
            f"{_fmt(ms['torch_compile'], '10.2f')} | {_fmt(q['kernel/copy'], '7.2f')} "
            f"{_fmt(q['eager/kernel'], '8.1f')} {_fmt(q['compile/kernel'], '9.1f')} "
            f"{_fmt(q['numpy/kernel'], '8.1f')}"
        )
        for name, why in r["unavailable"].items():
            note = f"  {name}: {why}"
            if note not in notes:
                notes.append(note)
    if notes:
        lines.append("unavailable:")
        lines.extend(notes)
    return "\n".join(lines)


def plot(report: dict[str, Any], path: str) -> None:
    """Save a bar chart of the ratios of ``report`` to ``path`` (matplotlib, Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = ["kernel/copy", "eager/kernel", "compile/kernel", "numpy/kernel"]
    res = report["results"]
    short = {"forward": "fwd", "backward": "bwd"}
    labels = [f"{short.get(r['pass'], r['pass'])} {'x'.join(map(str, r['shape']))}"
              for r in res]
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(res)), 4))
    width = 0.8 / len(keys)
    for i, k in enumerate(keys):
        vals = [r["ratios"][k] or 0.0 for r in res]
        ax.bar(np.arange(len(res)) + (i - 1.5) * width, vals, width, label=k)
    ax.set_xticks(np.arange(len(res)), labels, rotation=20, ha="right", fontsize=8)
    ax.set_yscale("log")
    ax.axhline(1.0, color="k", lw=0.8)
    ax.set_ylabel("ratio (log)")
    c = report["config"]
    m = report["machine"]
    ax.set_title(f"SimAM {c['dtype']} {c['method']} {c.get('layout', 'nchw')} "
                 f"({m['cpu']}, {m.get('isa', '?')}, {m['numba_threads']} threads)", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
