"""Command line: ``simam verify | check | bench``."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import textwrap
from collections.abc import Sequence

__all__ = ["main"]


def _status(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _fmt_counterexample(ce: dict | None, width: int = 60) -> str:
    if not ce:
        return "-"
    parts = []
    for k, v in ce.items():
        if k == "approx" and v == ce.get("exact"):
            continue  # rational point: the 17-digit form adds nothing
        if isinstance(v, dict):
            v = "{" + ", ".join(f"{a}={b}" for a, b in v.items()) + "}"
        parts.append(f"{k}={v}")
    return textwrap.shorten("; ".join(parts), width=width, placeholder=" ...")


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) for i, h in enumerate(headers)]
    line = "  ".join("-" * w for w in widths)
    out = ["  ".join(str(h).ljust(w) for h, w in zip(headers, widths)), line]
    out += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)) for r in rows]
    return "\n".join(row.rstrip() for row in out)


def _wrap(label: str, text: str) -> str:
    return textwrap.fill(str(text), width=100, initial_indent=f"    {label:>14}: ",
                         subsequent_indent=" " * 20)


# -------------------------------------------------------------------------- verify
def _verify(args: argparse.Namespace) -> int:
    from derivations import all_claims

    from .confirm import all_confirmations, paper_exact_gap

    _status("[1/3] deriving the closed form and deciding every claim (SymPy + z3) ...")
    claims = all_claims()
    _status("[2/3] numeric confirmation (SciPy minimize, lstsq, check_grad, reference) ...")
    confirmations = all_confirmations()
    _status("[3/3] paper vs exact gap as M grows ...")
    gap = paper_exact_gap()
    decided = all(c.verdict in ("proved", "refuted") for c in claims)
    ok = decided and all(c.passed for c in confirmations)

    if args.json:
        print(json.dumps(_finite({
            "ok": ok,
            "claims": [_claim_json(c) for c in claims],
            "confirmations": [c.to_json() for c in confirmations],
            "paper_exact_gap": gap,
        }), indent=2, default=str, allow_nan=False))
        return 0 if ok else 1

    print("Claims (each decided over the reals; the derived forms come from SymPy)\n")
    rows = [[i, c.source, c.name, str(c.verdict), _short_engine(c.engine)]
            for i, c in enumerate(claims, 1)]
    print(_table(["#", "source", "claim", "verdict", "by"], rows))
    print("\nDetails\n")
    for i, c in enumerate(claims, 1):
        print(f"[{i}] {c.name} ({c.source}): {c.verdict} by {c.engine}")
        print(_wrap("claimed", c.statement))
        print(_wrap("derived", c.derived))
        if c.counterexample:
            print(_wrap("counterexample", _fmt_counterexample(c.counterexample, width=400)))
    print("\nNumeric confirmation\n")
    rows = [
        [c.name, "ok" if c.passed else "MISMATCH", f"{c.max_error:.2e}", f"{c.tolerance:.0e}",
         c.cases, c.description]
        for c in confirmations
    ]
    print(_table(["check", "result", "max error", "tol", "cases", "what"], rows))
    print("\nPaper (full-channel statistics) vs exact (leave-one-out) gain, N(0,1) channels\n")
    rows = [[g["M"], f"{g['max_gain_gap']:.2e}", f"{g['mean_gain_gap']:.2e}"] for g in gap]
    print(_table(["M", "max |gain gap|", "mean |gain gap|"], rows))
    n_proved = sum(c.verdict == "proved" for c in claims)
    n_refuted = sum(c.verdict == "refuted" for c in claims)
    n_open = len(claims) - n_proved - n_refuted
    print(f"\n{len(claims)} claims: {n_proved} proved, {n_refuted} refuted"
          + (f", {n_open} UNDECIDED" if n_open else "")
          + " (refuted claims are errata in the sources: findings, not failures).")
    print("verify: " + ("OK — derivation, solver, SciPy and reference agree" if ok else "FAILED"))
    return 0 if ok else 1


def _finite(obj: object) -> object:
    """Copy of a JSON-ready object with non-finite floats replaced by None (valid JSON)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj


def _claim_json(c: object) -> dict:
    d = dataclasses.asdict(c)
    d["verdict"] = str(d["verdict"])
    return d


def _short_engine(engine: str) -> str:
    if engine.startswith("execution"):
        return "running the code"
    parts = ["z3 nlsat"] if "z3" in engine else []
    if "SymPy" in engine or "Sylvester" in engine:
        parts.append("SymPy")
    return " + ".join(parts) or engine


# --------------------------------------------------------------------------- check
QUESTION = """\
The question: symbols t, mu are real, sigma >= 0, lam > 0; the labels are exact
numbers. A claim "LHS = RHS" holds iff at every point of that domain where the
derived form of LHS is defined, RHS is defined too and equal to it. Defined means:
every denominator non-zero, every sqrt argument >= 0, no 0**negative, every value
real. It is decided, not sampled: z3's nlsat procedure (complete for polynomial
arithmetic over the reals) either proves it, or refutes it with an exact
counterexample point that is re-checked by exact evaluation, or runs out of time
(undecided). Claims without sqrt/Abs are also decided by SymPy (cancel plus
definedness); the two must agree.

Exit status: 0 proved, 1 refuted, 3 undecided, 2 bad input (one line on stderr).
Limits: --timeout bounds the whole check; input length, expression size, total
degree, sqrt nesting, exponents and the digits of numbers and labels are bounded."""


def _labels(text: str) -> tuple[str, str]:
    parts = [v.strip() for v in str(text).split(",")]
    if len(parts) != 2 or not all(parts):
        raise argparse.ArgumentTypeError(f"--labels wants 'YT,YO', e.g. 1,-1; got {text!r}")
    return parts[0], parts[1]


def _timeout(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (0 < value <= 3600):
        raise argparse.ArgumentTypeError(f"--timeout wants seconds in (0, 3600]; got {text!r}")
    return value


def _check_worker(claim: str, labels: tuple, timeout: float) -> dict:
    """The whole check (parsing, SymPy, z3); every failure becomes ``{"error": one line}``."""
    try:
        from derivations.check import check_claim

        return check_claim(claim, labels=labels, timeout=timeout).to_json()
    except ValueError as exc:  # ClaimSyntaxError and bad labels
        return {"error": _one_line(exc)}
    except ImportError as exc:  # z3-solver missing: say so, not "internal error"
        return {"error": _one_line(exc)}
    except (MemoryError, RecursionError):
        return {"error": "the claim is too large to decide (out of memory or recursion)"}
    except Exception as exc:  # noqa: BLE001 - no traceback ever reaches the user
        return {"error": f"internal error while deciding ({type(exc).__name__}: {_one_line(exc)})"}


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return textwrap.shorten(text or type(exc).__name__, width=300, placeholder=" ...")


def _child(conn: object, claim: str, labels: tuple, timeout: float) -> None:
    try:
        conn.send(_check_worker(claim, labels, timeout))
    finally:
        conn.close()


def _run_limited(claim: str, labels: tuple, timeout: float) -> dict:
    """Run the check in a forked child; kill it at ``timeout`` seconds (undecided)."""
    import multiprocessing as mp
    import time

    start = time.monotonic()
    try:
        ctx = mp.get_context("fork")
    except ValueError:  # pragma: no cover - platforms without fork: in-process, solver-bounded
        return _check_worker(claim, labels, timeout)
    recv, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(send, claim, labels, max(0.05, timeout - 0.3)),
                       daemon=True)
    try:
        proc.start()
    except OSError:  # no process to spare (EAGAIN, ENOMEM): in-process, solver-bounded
        send.close()
        recv.close()
        return _check_worker(claim, labels, timeout)
    send.close()
    try:
        if recv.poll(timeout):
            try:
                return recv.recv()
            except EOFError:
                return {"error": "the check stopped unexpectedly (worker exited)"}
        elapsed = time.monotonic() - start
        return {"holds": None, "verdict": "undecided", "engine": "time limit",
                "seconds": round(elapsed, 4), "derived": None, "counterexample": None,
                "note": f"not decided within --timeout {timeout:g} s; nothing is claimed"}
    finally:
        if proc.is_alive():
            proc.kill()
        proc.join(1)
        recv.close()


def _check(args: argparse.Namespace) -> int:
    result = _run_limited(args.claim, args.labels, args.timeout)
    if "error" in result:
        if args.json:
            print(json.dumps({"holds": None, "verdict": None, "error": result["error"],
                              "derived": None, "counterexample": None}))
        else:
            print(f"simam check: error: {result['error']}", file=sys.stderr)
        return 2
    verdict = result["verdict"]
    if args.json:
        print(json.dumps(result, allow_nan=False))
    else:
        shown = {"proved": "proved — the claim holds", "refuted": "refuted — the claim is false",
                 "undecided": "undecided — neither proved nor refuted"}[verdict]
        print(f"{args.claim}\n  verdict : {shown}")
        print(f"  by      : {result['engine']} ({result['seconds']:.2f} s)")
        if result.get("derived"):
            print(f"  derived : {result['lhs']} = {result['derived']}")
        ce = result.get("counterexample")
        if ce:
            ex = ce["exact"]
            where = ", ".join(f"{k}={ex[k]}" for k in ("t", "mu", "sigma", "lam"))
            print(f"  at      : {where}")
            print(f"  claimed : {_value_str(ex['claimed'], ce['approx']['claimed'])}")
            print(f"  derived : {_value_str(ex['derived'], ce['approx']['derived'])}")
        if result.get("note"):
            print(f"  note    : {result['note']}")
    return {"proved": 0, "refuted": 1}.get(verdict, 3)


def _one_line_error(message: str) -> None:
    """Usage errors of ``simam check``: one line on stderr, exit 2."""
    print(f"simam check: error: {' '.join(str(message).split())}", file=sys.stderr)
    raise SystemExit(2)


def _value_str(exact: str | None, approx: str | None) -> str:
    if exact == "undefined":
        return "undefined"
    return exact if exact == approx else f"{exact} (= {approx})"


# --------------------------------------------------------------------------- main
def build_parser() -> argparse.ArgumentParser:
    """The ``simam`` argument parser: subcommands ``verify``, ``check`` and ``bench``."""
    parser = argparse.ArgumentParser(
        prog="simam",
        description="SimAM reference: verify the derivation, judge claims, benchmark kernels.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("verify", help="decide every claim and confirm the closed form numerically")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_verify)

    p = sub.add_parser(
        "check",
        help="decide a claim 'LHS = RHS' (LHS: w_t, b_t, e_t, inv_e_t)",
        description=textwrap.fill(
            "Decide a claim 'LHS = RHS' about the closed form. LHS is w_t, b_t, e_t "
            "(minimum energy) or inv_e_t (1/e_t*); RHS is an expression in t, mu, sigma, lam "
            "(mu, sigma: mean and standard deviation of the M-1 other neurons) with numbers, "
            "+ - * / ** (integer or half-integer exponents), sqrt and Abs.", width=80),
        epilog=QUESTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("claim", help='e.g. "w_t = 2*(t-mu)/((t-mu)**2 + 2*sigma**2 + 2*lam)"')
    p.add_argument("--labels", type=_labels, default=("1", "-1"), metavar="YT,YO",
                   help="exact labels y_t, y_o of eq 1 (default 1,-1; equal labels allowed)")
    p.add_argument("--timeout", type=_timeout, default=10.0, metavar="SECONDS",
                   help="bound on the whole check (default 10); past it: undecided, exit 3")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_check)
    p.error = _one_line_error  # type: ignore[method-assign]

    from . import bench

    p = sub.add_parser("bench", help="time the kernels against NumPy, PyTorch and a copy")
    bench.add_arguments(p)
    p.set_defaults(func=bench.run)
    return parser


def _join_option_values(argv: list[str]) -> list[str]:
    """``--labels -1,1`` -> ``--labels=-1,1`` (argparse reads ``-1,1`` as an option)."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        if argv[i] in ("--labels", "--timeout") and i + 1 < len(argv):
            out.append(f"{argv[i]}={argv[i + 1]}")
            i += 2
            continue
        out.append(argv[i])
        i += 1
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``simam`` console script."""
    parser = build_parser()
    raw = list(sys.argv[1:] if argv is None else argv)
    if raw and raw[0] == "check":
        raw = _join_option_values(raw)
        parser.error = _one_line_error  # type: ignore[method-assign]
    try:
        args = parser.parse_args(raw)
    except SystemExit as exc:  # argparse exits 2 on bad usage
        return int(exc.code or 0)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
