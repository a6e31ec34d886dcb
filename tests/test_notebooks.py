"""Execute every notebook in ``notebooks/`` top to bottom; check they are stored clean.

Each notebook carries its own ``assert`` statements on what it shows (in check
cells after the figures), so a notebook that runs to the end agrees with the
library. 01 and 05 are also run with ``lam = 0.1`` (the paper's ImageNet value)
injected after their cell tagged ``parameters`` (papermill's convention, done
here without papermill): a learner's change of a parameter must not break the
story. The kernel runs in a temporary directory (nothing may be read by
relative path) with the Agg backend, and with the repository root on
``PYTHONPATH`` so an uninstalled checkout works.

The course structure is checked too: a ``# `` title first, an introduction, a
Summary, 3-6 Exercises and References with links in every notebook, the
notation box in 01, and imports of project code only from ``derivations`` and
``simam_ref``.
"""

from __future__ import annotations

import ast
import os
import re
import tempfile
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
CELL_TIMEOUT_S = 600
PARAMETRISED = ("01_energy_function.ipynb", "05_kernels_and_attention_maps.ipynb")
LINKS = (
    "https://proceedings.mlr.press/v139/yang21o.html",
    "https://github.com/ZjjConan/SimAM",
    "https://github.com/ZjjConan/SimAM/issues/11",
)
STDLIB = {"contextlib", "io", "json", "time"}
THIRD_PARTY = {"IPython", "matplotlib", "numpy", "scipy", "sympy"}
ALLOWED_IMPORTS = STDLIB | THIRD_PARTY | {"derivations", "simam_ref"}


def _kernel_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Environment inherited by the kernel subprocess."""
    paths = [str(ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(dict.fromkeys(paths)))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    if "NUMBA_CACHE_DIR" not in os.environ:
        # shared across notebooks and runs (Numba keys entries by source and signature),
        # outside the repository
        cache = Path(tempfile.gettempdir()) / "simam_ref_notebooks_numba_cache"
        monkeypatch.setenv("NUMBA_CACHE_DIR", str(cache))


def _execute(nb, name: str, cwd: Path):
    """Run ``nb`` in a fresh kernel with working directory ``cwd``; fail the test on error."""
    client = nbclient.NotebookClient(
        nb,
        timeout=CELL_TIMEOUT_S,
        kernel_name="python3",
        resources={"metadata": {"path": str(cwd)}},
        allow_errors=False,
    )
    try:
        client.execute()
    except nbclient.exceptions.CellExecutionError as exc:  # pragma: no cover - the failure path
        pytest.fail(f"{name} failed:\n{exc}", pytrace=False)
    return nb


def inject_parameters(nb, params: dict[str, object]) -> int:
    """Insert a cell assigning ``params`` right after the cell tagged ``parameters``.

    Returns the index of the new cell. Raises ``ValueError`` when no cell is tagged.
    """
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and "parameters" in cell.metadata.get("tags", []):
            src = "\n".join(f"{key} = {value!r}" for key, value in params.items())
            new = nbformat.v4.new_code_cell(src, metadata={"tags": ["injected-parameters"]})
            nb.cells.insert(i + 1, new)
            return i + 1
    raise ValueError("no code cell is tagged 'parameters'")


def _stream_text(nb) -> str:
    return "".join(
        out.get("text", "")
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.get("outputs", [])
        if out.get("output_type") == "stream"
    )


def _markdown(nb) -> str:
    return "\n\n".join(c.source for c in nb.cells if c.cell_type == "markdown")


def _section(text: str, heading: str) -> str:
    """Text under ``## heading`` up to the next level-1/2 heading ('' if absent)."""
    m = re.search(rf"^## {re.escape(heading)}\s*$(.*?)(?=^#{{1,2}} |\Z)", text, re.M | re.S)
    return m.group(1) if m else ""


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_executes(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _kernel_env(monkeypatch)
    _execute(nbformat.read(path, as_version=4), path.name, tmp_path)


@pytest.mark.parametrize("name", PARAMETRISED)
def test_notebook_executes_with_lam_injected(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _kernel_env(monkeypatch)
    nb = nbformat.read(NOTEBOOK_DIR / name, as_version=4)
    inject_parameters(nb, {"lam": 0.1})
    nb = _execute(nb, f"{name} with lam = 0.1", tmp_path)
    # the injected value reached the notebook (each prints its lam in its setup cell)
    assert "lam = 0.1" in _stream_text(nb), name


def test_inject_parameters_needs_a_tagged_cell() -> None:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("lam = 1")])
    with pytest.raises(ValueError, match="parameters"):
        inject_parameters(nb, {"lam": 0.1})
    nb.cells[0].metadata["tags"] = ["parameters"]
    assert inject_parameters(nb, {"lam": 0.1}) == 1
    assert nb.cells[1].source == "lam = 0.1"


def test_notebooks_present_and_stripped() -> None:
    assert len(NOTEBOOKS) >= 5, f"expected >= 5 notebooks in {NOTEBOOK_DIR}, found {NOTEBOOKS}"
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        assert nb.metadata.get("kernelspec", {}).get("name") == "python3", path.name
        for i, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            assert cell.get("outputs") == [], f"{path.name} cell {i} has stored outputs"
            assert cell.get("execution_count") is None, f"{path.name} cell {i} has a count"
        assert any(c.cell_type == "markdown" for c in nb.cells), path.name
        assert any("assert " in c.source for c in nb.cells if c.cell_type == "code"), path.name


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_is_a_lesson(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    first = nb.cells[0]
    assert first.cell_type == "markdown" and first.source.startswith("# "), path.name
    assert "**What this notebook shows.**" in first.source, path.name
    assert "**What it assumes.**" in first.source, path.name
    text = _markdown(nb)
    assert _section(text, "Summary").strip(), f"{path.name}: no Summary"
    exercises = re.findall(r"^\d+\. ", _section(text, "Exercises"), re.M)
    assert 3 <= len(exercises) <= 6, f"{path.name}: {len(exercises)} exercises"
    refs = _section(text, "References")
    for link in LINKS:
        assert f"<{link}>" in refs, f"{path.name}: References lack {link}"
    assert "seed" in refs, path.name
    # a tagged parameters cell, if any, is the first code cell
    code = [c for c in nb.cells if c.cell_type == "code"]
    tagged = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) <= 1, path.name
    if path.name in PARAMETRISED:
        assert tagged, f"{path.name}: no cell tagged 'parameters'"
    if tagged:
        assert code[0] is tagged[0], f"{path.name}: the parameters cell is not the first code cell"


def test_notation_box_and_seed_defined_in_01() -> None:
    nb = nbformat.read(NOTEBOOK_DIR / "01_energy_function.ipynb", as_version=4)
    text = _markdown(nb)
    box = _section(text, "Notation (used in all five notebooks)")
    for symbol in (r"\mu_t", r"\sigma_t^2", r"\mu =", "S_2", "v = S_2/(M-1)", r"\lambda"):
        assert symbol in box, symbol
    assert "population" in box and "not" in box.lower()
    first_seed = text.lower().index("seed")
    assert "the *seed* is" in text.lower()[first_seed - 200 : first_seed + 200]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_imports(path: Path) -> None:
    """Project code comes from ``derivations`` and ``simam_ref`` only (no formula copied)."""
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        src = "\n".join(line for line in cell.source.splitlines() if not line.startswith("%"))
        for node in ast.walk(ast.parse(src)):
            if isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                mods = [node.module or ""]
            else:
                continue
            for mod in mods:
                assert mod.split(".")[0] in ALLOWED_IMPORTS, f"{path.name} imports {mod}"
