"""Style checks of the source tree: ruff is clean, docstrings are there, modules stay small.

* ``ruff check`` of the whole repository passes (the rules are in ``pyproject.toml``).
* Docstrings, read with :mod:`ast` (nothing is imported): every module has one;
  every function and class defined at module level in ``simam_ref/kernels/``
  (private ones too: each states what it computes) and every public one in the
  rest of ``simam_ref/`` and in ``derivations/``.
* No module under ``simam_ref/`` or ``derivations/`` is longer than
  :data:`MAX_LINES` lines.

Each case is one module, so a failure names the file.
"""

from __future__ import annotations

import ast
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("simam_ref", "derivations")
KERNELS = Path("simam_ref", "kernels")
MAX_LINES = 350

MODULES = sorted(
    path.relative_to(ROOT) for pkg in PACKAGES for path in (ROOT / pkg).rglob("*.py")
)


def _ids(path: Path) -> str:
    return path.as_posix()


def undocumented(source: str, all_private: bool) -> list[str]:
    """What lacks a docstring: ``"module"`` and each module-level function/class name.

    Private names (leading underscore) count only when ``all_private`` is true.
    """
    tree = ast.parse(source)
    missing = [] if ast.get_docstring(tree) else ["module"]
    for node in tree.body:
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            continue
        if node.name.startswith("_") and not all_private:
            continue
        if not ast.get_docstring(node):
            missing.append(f"{node.name} (line {node.lineno})")
    return missing


def test_modules_are_found():
    names = {p.as_posix() for p in MODULES}
    assert {"simam_ref/api.py", "derivations/check.py", "derivations/claims.py"} <= names
    assert any(p.is_relative_to(KERNELS) for p in MODULES)


def test_the_docstring_check_sees_what_is_missing():
    src = 'def f():\n    pass\n\n\ndef _g():\n    pass\n\n\nclass C:\n    """Doc."""\n'
    assert undocumented(src, all_private=False) == ["module", "f (line 1)"]
    assert undocumented(src, all_private=True) == ["module", "f (line 1)", "_g (line 5)"]
    assert undocumented('"""Doc."""\n', all_private=True) == []


@pytest.mark.parametrize("path", MODULES, ids=_ids)
def test_docstrings(path: Path):
    all_private = path.is_relative_to(KERNELS)
    missing = undocumented((ROOT / path).read_text(encoding="utf-8"), all_private)
    what = "function/class" if all_private else "public function/class"
    assert not missing, f"{path.as_posix()}: no docstring on {what}: {', '.join(missing)}"


@pytest.mark.parametrize("path", MODULES, ids=_ids)
def test_module_length(path: Path):
    lines = len((ROOT / path).read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{path.as_posix()}: {lines} lines (at most {MAX_LINES})"


def test_ruff_is_clean():
    if importlib.util.find_spec("ruff") is None:
        pytest.skip("ruff is not installed (it is in the dev extra)")
    out = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", "--output-format=concise", "."],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, f"ruff check . failed:\n{out.stdout[-4000:]}{out.stderr[-2000:]}"


def _layout_section() -> str:
    """The README's ``## Layout`` section (up to the next ``## `` heading)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index("\n## Layout")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


def _layout_entry(layout: str, folder: str) -> str:
    """The Layout entry that starts with ``folder`` and its continuation lines."""
    lines = layout.splitlines()
    for i, line in enumerate(lines):
        if line.lstrip().startswith(folder):
            entry = [line]
            for nxt in lines[i + 1 :]:
                if not nxt.startswith(" " * 16):  # the next entry (or the end)
                    break
                entry.append(nxt)
            return "\n".join(entry)
    return ""


@pytest.mark.parametrize("path", [p for p in MODULES if p.name != "__init__.py"], ids=_ids)
def test_readme_layout_names_every_module(path):
    """The README's Layout section names every module of the packages, so it cannot
    drift from the tree: as ``name.py`` (a whole word: ``check.py`` is not
    ``crosscheck.py``), or, for a module of a kernel package such as
    ``kernels/cpu/``, by its bare name inside that package's entry.  Package files
    (``__init__.py``) are named by their folder."""
    layout = _layout_section()
    stem = re.escape(path.stem)
    named = re.search(rf"(?<!\w){stem}\.py\b", layout) is not None
    if not named and path.parent != KERNELS and path.is_relative_to(KERNELS):
        entry = _layout_entry(layout, f"kernels/{path.parent.name}/")
        named = re.search(rf"\b{stem}\b", entry) is not None
    assert named, f"README.md's Layout section does not mention {path.as_posix()}"
