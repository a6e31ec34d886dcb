"""Command line: ``simam verify | check | bench``."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import textwrap
from collections.abc import Sequence
from fractions import Fraction

__all__ = ["main"]


def _status(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _fmt_counterexample(ce: dict | None, width: int = 60) -> str:
    if not ce:
        return "-"
    parts = []
    for k, v in ce.items():
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

    _status("[1/3] deriving the closed form and judging every claim (SymPy) ...")
    claims = all_claims()
    _status("[2/3] numeric confirmation (SciPy minimize, lstsq, check_grad, reference) ...")
    confirmations = all_confirmations()
    _status("[3/3] paper vs exact gap as M grows ...")
    gap = paper_exact_gap()
    ok = all(c.passed for c in confirmations)

    if args.json:
        print(json.dumps({
            "ok": ok,
            "claims": [dataclasses.asdict(c) for c in claims],
            "confirmations": [c.to_json() for c in confirmations],
            "paper_exact_gap": gap,
        }, indent=2, default=str))
        return 0 if ok else 1

    print("Claims (every verdict computed by SymPy from the energy of eq 2)\n")
    rows = [[i, c.source, c.name, "holds" if c.verdict else "FAILS"]
            for i, c in enumerate(claims, 1)]
    print(_table(["#", "source", "claim", "verdict"], rows))
    print("\nDetails\n")
    for i, c in enumerate(claims, 1):
        print(f"[{i}] {c.name} ({c.source}): {'holds' if c.verdict else 'FAILS'}")
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
    errata = [c for c in claims if not c.verdict]
    print(f"\n{len(claims)} claims: {len(claims) - len(errata)} hold, {len(errata)} fail "
          f"(errata in the sources are findings, not failures).")
    print("verify: " + ("OK — derivation, SciPy and reference agree" if ok else "FAILED"))
    return 0 if ok else 1


# --------------------------------------------------------------------------- check
def _labels(text: str) -> tuple[Fraction, Fraction]:
    try:
        y_t, y_o = (Fraction(v.strip()) for v in text.split(","))
    except ValueError as exc:
        msg = f"--labels wants 'YT,YO', e.g. 1,-1; got {text!r}"
        raise argparse.ArgumentTypeError(msg) from exc
    return y_t, y_o


def _check(args: argparse.Namespace) -> int:
    from derivations import ClaimSyntaxError, check_claim

    try:
        result = check_claim(args.claim, labels=args.labels)
    except (ClaimSyntaxError, ValueError) as exc:
        if args.json:
            print(json.dumps({"holds": None, "error": str(exc), "derived": None,
                              "counterexample": None}))
        else:
            print(f"simam check: error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result.to_json(), default=str))
    else:
        verdict = "holds" if result.holds else "FAILS"
        print(f"{args.claim}\n  verdict : {verdict}\n  derived : {result.lhs} = {result.derived}")
        if result.counterexample:
            print(f"  differs : {_fmt_counterexample(result.counterexample, width=200)}")
    return 0 if result.holds else 1


# --------------------------------------------------------------------------- main
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="simam",
        description="SimAM reference: verify the derivation, judge claims, benchmark kernels.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("verify", help="judge every claim and confirm the closed form numerically")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_verify)

    p = sub.add_parser(
        "check",
        help="judge a claim 'LHS = RHS' (LHS: w_t, b_t, e_t, inv_e_t)",
        description="RHS is an expression in t, mu, sigma, lam (mu, sigma: mean and standard "
        "deviation of the M-1 other neurons). Exit 0 holds, 1 fails, 2 bad input.",
    )
    p.add_argument("claim", help='e.g. "w_t = 2*(t-mu)/((t-mu)**2 + 2*sigma**2 + 2*lam)"')
    p.add_argument("--labels", type=_labels, default=(1, -1), metavar="YT,YO",
                   help="labels y_t, y_o of eq 1 (default 1,-1)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_check)

    from . import bench

    p = sub.add_parser("bench", help="time the kernels against NumPy, PyTorch and a copy")
    bench.add_arguments(p)
    p.set_defaults(func=bench.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``simam`` console script."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on bad usage
        return int(exc.code or 0)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
