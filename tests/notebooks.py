"""Running a chapter's notebook in the tests: in a fresh python3 kernel, in quick mode, on the
data it generates itself, and reading its cells' outputs back."""

import json
import os
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MISSING = "executing the notebook needs nbclient, nbformat and ipykernel (pip install them)"


def execute(notebook: Path, empty: Path, cwd: Path, timeout: int = 120):
    """`notebook` run with D2LAI_QUICK=1, D2LAI_DATA=`empty` (a folder with no data set), this
    checkout's code first on the path, in `cwd`; fails the test with the cell's error."""
    for name in ("nbformat", "nbclient", "ipykernel"):
        pytest.importorskip(name, reason=MISSING)
    import nbclient
    import nbformat

    nb = nbformat.read(notebook, as_version=4)
    paths = [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]  # this checkout's code
    env = {**os.environ, "D2LAI_QUICK": "1", "D2LAI_DATA": str(empty),
           "PYTHONPATH": os.pathsep.join(paths), "OMP_NUM_THREADS": "1"}
    env.pop("D2LAI_NUM_TRAIN", None)
    client = nbclient.NotebookClient(nb, timeout=timeout, kernel_name="python3",
                                     resources={"metadata": {"path": str(cwd)}})
    try:
        client.execute(env=env)
    except nbclient.exceptions.CellExecutionError as err:
        pytest.fail(f"{notebook.name} failed:\n{err}", pytrace=False)
    return nb


def code(nb) -> list:
    return [cell for cell in nb["cells"] if cell["cell_type"] == "code"]


def source(cell) -> str:
    src = cell["source"]
    return src if isinstance(src, str) else "".join(src)


def text(cell, stream: str) -> str:
    return "".join(o["text"] for o in cell["outputs"]
                   if o["output_type"] == "stream" and o["name"] == stream)


def cell_with(nb, needle: str):
    """The one code cell whose source contains `needle`."""
    found = [c for c in code(nb) if needle in source(c)]
    assert len(found) == 1, f"expected one code cell with {needle!r}, found {len(found)}"
    return found[0]


def first_cell(notebook: Path, monkeypatch, tmp_path: Path, **env) -> dict:
    """Run the notebook's first code cell (its settings) here with the environment `env`,
    temporary folders under tmp_path; returns the names it defined."""
    for name in ("D2LAI_QUICK", "D2LAI_DATA", "D2LAI_NUM_TRAIN"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    nb = json.loads(notebook.read_text(encoding="utf-8"))
    namespace = {}
    exec(source(code(nb)[0]), namespace)
    return namespace
