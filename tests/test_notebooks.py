"""Every notebook runs top to bottom (its cells assert what they show)."""

import os
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
# Smaller runs than a reader's, injected after each notebook's "parameters" cell (the
# papermill convention): the suite checks that every cell runs and asserts, not accuracy.
TEST_PARAMETERS = {"train_samples": 800, "copies": 2}


def with_test_parameters(notebook):
    index, cell = next((i, c) for i, c in enumerate(notebook.cells)
                       if "parameters" in c.metadata.get("tags", []))
    names = [line.split("=")[0].strip() for line in cell.source.splitlines() if "=" in line]
    overrides = "\n".join(f"{name} = {TEST_PARAMETERS[name]!r}" for name in names)
    notebook.cells.insert(index + 1, nbformat.v4.new_code_cell(overrides))
    return notebook


def test_there_is_a_notebook_per_topic():
    assert len(NOTEBOOKS) >= 4


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path, tmp_path, monkeypatch):
    # the kernel imports this checkout's tflw even when it is not installed
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    notebook = with_test_parameters(nbformat.read(path, as_version=4))
    work = tmp_path / "notebooks"  # beside no shared data: the synthetic fallbacks run
    work.mkdir()
    nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(work)}}).execute()
