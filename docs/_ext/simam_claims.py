"""Sphinx extension: the claims page, generated at build time from ``simam verify --json``.

``.. simam-verify:: PART`` (MyST: a ``{simam-verify}`` fence) renders one part of the
report of ``python -m simam_ref.cli verify --json``, run once per page read:

* ``claims``: one row per claim: number, source, claim, verdict;
* ``details``: per claim the verdict, the statement, the derived form, the engine that
  decided it (if given), the note, the counterexample;
* ``confirmations``: the SciPy/reference confirmations;
* ``gap``: the paper vs exact gain gap as M grows.

A claim's ``verdict`` is either a bool (``True`` = holds) or a string
(``"proved"``, ``"refuted"``, ``"undecided"``) with ``holds`` and ``engine`` beside it;
both forms are rendered. Nothing here is pasted: the page is re-read on every build.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.errors import ExtensionError
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

ROOT = Path(__file__).resolve().parents[2]
PARTS = ("claims", "details", "confirmations", "gap")
VERIFY_CMD = [sys.executable, "-m", "simam_ref.cli", "verify", "--json"]
logger = logging.getLogger(__name__)


def run_verify() -> dict[str, Any]:
    """Run ``simam verify --json`` in a subprocess and return its JSON report."""
    env = dict(os.environ)
    paths = [str(ROOT), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    proc = subprocess.run(VERIFY_CMD, cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=1800, check=False)
    try:
        report = json.loads(proc.stdout)
    except json.JSONDecodeError as exc:
        raise ExtensionError(
            f"`simam verify --json` exited {proc.returncode} without a JSON report: "
            f"{proc.stderr.strip()[-2000:]}"
        ) from exc
    if proc.returncode not in (0, 1) or not isinstance(report.get("claims"), list):
        raise ExtensionError(f"`simam verify --json` exited {proc.returncode}: "
                             f"{proc.stderr.strip()[-2000:]}")
    return report


def verdict_text(claim: dict[str, Any]) -> str:
    """The verdict as shown: ``holds``/``fails`` for a bool, else the string itself."""
    verdict = claim.get("verdict")
    if isinstance(verdict, bool):
        return "holds" if verdict else "fails"
    if verdict is None:
        return "undecided"
    return str(verdict)


def verdict_class(claim: dict[str, Any]) -> str:
    """CSS class: ``simam-holds``, ``simam-fails`` or ``simam-undecided``."""
    holds = claim.get("holds", claim.get("verdict"))
    if isinstance(holds, str):
        holds = {"proved": True, "holds": True, "refuted": False, "fails": False}.get(holds)
    if holds is True:
        return "simam-holds"
    if holds is False:
        return "simam-fails"
    return "simam-undecided"


def _compact(value: Any) -> str:
    """A counterexample value on one line: ``k=v; k={k=v, ...}``."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}={_compact(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_compact(v) for v in value) + "]"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def format_counterexample(ce: Any) -> str:
    """Top-level keys separated by ``;`` (nested values compact)."""
    if isinstance(ce, dict):
        return "; ".join(f"{k}={_compact(v)}" for k, v in ce.items())
    return _compact(ce)


def _cell(content: Any) -> nodes.entry:
    entry = nodes.entry()
    if isinstance(content, nodes.Node):
        entry += content
    else:
        entry += nodes.paragraph(text=str(content))
    return entry


def _table(headers: list[str], rows: list[list[Any]], classes: list[str]) -> nodes.table:
    table = nodes.table(classes=classes)
    tgroup = nodes.tgroup(cols=len(headers))
    table += tgroup
    for _ in headers:
        tgroup += nodes.colspec(colwidth=1)
    thead = nodes.thead()
    tgroup += thead
    head = nodes.row()
    thead += head
    for h in headers:
        head += _cell(h)
    tbody = nodes.tbody()
    tgroup += tbody
    for r in rows:
        row = nodes.row()
        tbody += row
        for c in r:
            row += _cell(c)
    return table


def _verdict_node(claim: dict[str, Any]) -> nodes.paragraph:
    para = nodes.paragraph()
    para += nodes.inline(text=verdict_text(claim), classes=["simam-verdict", verdict_class(claim)])
    return para


def _literal(text: str) -> nodes.paragraph:
    para = nodes.paragraph()
    para += nodes.literal(text=text)
    return para


class SimamVerifyDirective(SphinxDirective):
    """Render one part of ``simam verify --json``."""

    required_arguments = 1
    has_content = False

    def _report(self) -> dict[str, Any]:
        # one run per page read, shared by the page's directives
        report = self.env.temp_data.get("simam_verify_report")
        if report is None:
            logger.info("running %s", " ".join(VERIFY_CMD[1:]))
            report = run_verify()
            if not report.get("ok", True):
                logger.warning("simam verify: a numeric confirmation failed",
                               location=self.get_location())
            self.env.temp_data["simam_verify_report"] = report
        return report

    def run(self) -> list[nodes.Node]:
        part = self.arguments[0]
        if part not in PARTS:
            raise self.error(f"simam-verify: unknown part {part!r}; expected one of {PARTS}")
        self.env.note_reread()  # generated: re-run on every build, never stale
        report = self._report()
        claims = report["claims"]
        if part == "claims":
            rows = [[i, c.get("source", ""), c.get("name", ""), _verdict_node(c)]
                    for i, c in enumerate(claims, 1)]
            held = sum(verdict_class(c) == "simam-holds" for c in claims)
            failed = sum(verdict_class(c) == "simam-fails" for c in claims)
            summary = nodes.paragraph(
                text=f"{len(claims)} claims: {held} hold, {failed} fail, "
                f"{len(claims) - held - failed} undecided."
            )
            return [_table(["#", "source", "claim", "verdict"], rows, ["simam-claims"]), summary]
        if part == "details":
            out: list[nodes.Node] = []
            for i, c in enumerate(claims, 1):
                rubric = nodes.rubric(text=f"[{i}] {c.get('name', '')} ({c.get('source', '')})")
                fields = nodes.field_list(classes=["simam-claim-detail"])
                items = [("verdict", _verdict_node(c)),
                         ("claimed", _literal(str(c.get("statement", "")))),
                         ("derived", _literal(str(c.get("derived", ""))))]
                if c.get("engine"):
                    items.append(("engine", nodes.paragraph(text=str(c["engine"]))))
                if c.get("note"):
                    items.append(("note", nodes.paragraph(text=str(c["note"]))))
                if c.get("counterexample"):
                    items.append(("counterexample",
                                  _literal(format_counterexample(c["counterexample"]))))
                for name, body in items:
                    field = nodes.field()
                    field += nodes.field_name(text=name)
                    fbody = nodes.field_body()
                    fbody += body
                    field += fbody
                    fields += field
                out += [rubric, fields]
            return out
        if part == "confirmations":
            rows = [[c.get("name", ""), "ok" if c.get("passed") else "MISMATCH",
                     f"{c.get('max_error', float('nan')):.2e}",
                     f"{c.get('tolerance', float('nan')):.0e}", c.get("cases", ""),
                     c.get("description", "")]
                    for c in report.get("confirmations", [])]
            headers = ["check", "result", "max error", "tol", "cases", "what"]
            return [_table(headers, rows, ["simam-confirmations"])]
        rows = [[g["M"], f"{g['max_gain_gap']:.2e}", f"{g['mean_gain_gap']:.2e}"]
                for g in report.get("paper_exact_gap", [])]
        return [_table(["M", "max |gain gap|", "mean |gain gap|"], rows, ["simam-gap"])]


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("simam-verify", SimamVerifyDirective)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
