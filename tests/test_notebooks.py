"""Execute every notebook in ``notebooks/`` top to bottom; check they are stored clean.

Each notebook carries its own ``assert`` statements on what it shows, so a
notebook that runs to the end agrees with the library. The kernel runs in a
temporary directory (nothing may be read by relative path) with the Agg backend,
and with the repository root on ``PYTHONPATH`` so an uninstalled checkout works.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
CELL_TIMEOUT_S = 600


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


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_executes(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _kernel_env(monkeypatch)
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        nb,
        timeout=CELL_TIMEOUT_S,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},  # cwd of the kernel
        allow_errors=False,
    )
    try:
        client.execute()
    except nbclient.exceptions.CellExecutionError as exc:  # pragma: no cover - the failure path
        pytest.fail(f"{path.name} failed:\n{exc}", pytrace=False)


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
