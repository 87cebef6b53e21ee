"""The chapter's notebook: it runs end to end on small generated data, and is committed stripped.

Executing it needs nbclient, nbformat and ipykernel; without them those tests are skipped.
The checks of the committed file and of the quick-run switch need nothing extra.
"""

import base64
import io
import json
import re
from pathlib import Path

import pytest
from notebooks import ROOT, cell_with, code, execute, first_cell, source, text

NOTEBOOK = ROOT / "chapters" / "batch_norm.ipynb"
QUICK_EPOCHS = 3  # the notebook's number of epochs under D2LAI_QUICK=1


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    """The notebook run in a fresh python3 kernel with D2LAI_QUICK=1 on the data it generates
    itself (D2LAI_DATA holds none)."""
    return execute(NOTEBOOK, tmp_path_factory.mktemp("no-data"),
                   tmp_path_factory.mktemp("notebook"))


def test_every_cell_ran_without_error(executed):
    cells = code(executed)
    assert [c["execution_count"] for c in cells] == list(range(1, len(cells) + 1))
    errors = [o for c in cells for o in c["outputs"] if o["output_type"] == "error"]
    assert not errors, f"cells raised: {[(e['ename'], e['evalue']) for e in errors]}"


@pytest.mark.parametrize("model", ["model", "concise"])
def test_training_shows_the_live_board_and_logs_each_epoch(executed, model):
    import matplotlib.image

    cell = cell_with(executed, f"Trainer({model}, data")
    images = [o["data"]["image/png"] for o in cell["outputs"]
              if o["output_type"] == "display_data" and "image/png" in o["data"]]
    # The board is shown once and then updated in place (display_id), not appended each epoch.
    assert len(images) == 1, f"expected one live board, got {len(images)} images"
    png = base64.b64decode(images[0])
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    pixels = matplotlib.image.imread(io.BytesIO(png), format="png")
    assert pixels.ndim == 3 and pixels.shape[0] > 100 and pixels.shape[1] > 100
    assert len({tuple(p) for p in pixels.reshape(-1, pixels.shape[2])}) > 10  # drawn, not blank
    lines = re.findall(rf"^\[ Info: Epoch \d/{QUICK_EPOCHS} · [\d.]+ s · Train Loss: [\d.]+, "
                       r"Train Acc: [\d.]+, Val Loss: [\d.]+, Val Acc: ([\d.]+)$",
                       text(cell, "stderr"), re.M)
    assert len(lines) == QUICK_EPOCHS, text(cell, "stderr")
    assert "[ Info: Best Val Acc at epoch " in text(cell, "stderr")


@pytest.mark.parametrize("model", ["model", "concise"])
def test_progress_is_one_status_line_updated_in_place_not_hundreds_of_bars(executed, model):
    cell = cell_with(executed, f"Trainer({model}, data")
    texts = [o["data"]["text/plain"] for o in cell["outputs"]
             if o["output_type"] == "display_data" and "image/png" not in o["data"]]
    assert texts == [f"{QUICK_EPOCHS} epochs in " + texts[0].split(" in ")[1]], texts
    assert texts[0].endswith(" s")  # the final state of the status line: one output
    streams = "".join(o.get("text", "") for o in cell["outputs"] if o["output_type"] == "stream")
    assert "%|" not in streams and "\r" not in streams and "0%" not in streams
    assert len(cell["outputs"]) <= 10  # board, status line, a few runs of log lines
    assert len(streams) < 3000
    assert "widgets" not in executed["metadata"]


def test_quick_mode_learns(executed):
    out = text(cell_with(executed, "Trainer(concise, data"), "stdout")
    scratch, concise = map(float, re.search(
        r"validation accuracy: scratch ([\d.]+), concise ([\d.]+)", out).groups())
    assert scratch > 0.5 and concise > 0.5, out  # chance is 0.1


def test_gamma_beta_and_the_check_against_torch_are_printed(executed):
    out = text(cell_with(executed, "first_batch_norm(model)"), "stdout")
    values = {}
    for name in ("gamma", "beta"):
        match = re.search(rf"{name}\s*=\s*\[([^\]]*)\]", out)
        assert match, f"{name} not printed:\n{out}"
        values[name] = [float(v) for v in match.group(1).split()]
        assert len(values[name]) == 6, out  # one per channel of the first convolution
    assert values["gamma"] != [1.0] * 6 or values["beta"] != [0.0] * 6, "training moved nothing"

    out = text(cell_with(executed, "ref = nn.BatchNorm1d(3)"), "stdout")
    diffs = [float(d) for d in re.findall(r"largest difference from torch: (\S+)", out)]
    assert len(diffs) == 2 and max(diffs) < 1e-5, out  # training and prediction mode

    out = text(cell_with(executed, "Trainer(concise, data"), "stdout")
    assert re.search(r"validation accuracy: scratch [\d.]+, concise [\d.]+", out), out


def test_committed_notebook_is_stripped_and_imports_the_chapter():
    nb = json.loads(NOTEBOOK.read_text(encoding="utf-8"))
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    assert "widgets" not in nb["metadata"]
    for cell in code(nb):
        assert cell["outputs"] == [] and cell["execution_count"] is None, (
            f"cell {cell.get('id')} holds outputs: strip them before committing")
        assert set(cell["metadata"]) <= {"tags"}, cell["metadata"]
    sources = "\n".join(source(c) for c in code(nb))
    assert "from chapters.batch_norm import" in sources
    for name in ("batch_norm", "BatchNormLayer", "BLeNetScratch", "BLeNetConcise"):
        assert not re.search(rf"^\s*(def|class) {name}\b", sources, re.M), f"{name} is copied"


def _setup_cell(monkeypatch, tmp_path, **env) -> dict:
    return first_cell(NOTEBOOK, monkeypatch, tmp_path, **env)


def test_quick_run_generates_data_when_d2lai_data_holds_none(monkeypatch, tmp_path):
    import d2lai

    empty = tmp_path / "empty"
    empty.mkdir()
    ns = _setup_cell(monkeypatch, tmp_path, D2LAI_QUICK="1", D2LAI_DATA=str(empty))
    assert (ns["EPOCHS"], ns["NUM_TRAIN"], ns["NUM_VAL"]) == (QUICK_EPOCHS, 2048, 512)
    assert Path(ns["ROOT"]).parent == tmp_path
    data = d2lai.FashionMNISTData(batchsize=ns["BATCHSIZE"], num_train=ns["NUM_TRAIN"],
                                  num_val=ns["NUM_VAL"], root=ns["ROOT"], download=False)
    assert (len(data.train[0]), len(data.val[0])) == (2048, 512)


def test_quick_run_uses_d2lai_data_when_it_holds_data(monkeypatch, tmp_path, fashion_root):
    ns = _setup_cell(monkeypatch, tmp_path, D2LAI_QUICK="1", D2LAI_DATA=str(fashion_root))
    assert ns["ROOT"] == str(fashion_root) and ns["EPOCHS"] == QUICK_EPOCHS
    assert list(tmp_path.iterdir()) == []  # nothing generated


def test_a_real_data_subset_is_a_setting(monkeypatch, tmp_path, fashion_root):
    ns = _setup_cell(monkeypatch, tmp_path, D2LAI_NUM_TRAIN="500", D2LAI_DATA=str(fashion_root))
    assert (ns["NUM_TRAIN"], ns["NUM_VAL"], ns["EPOCHS"]) == (500, None, 10)
    assert ns["ROOT"] == str(fashion_root) and list(tmp_path.iterdir()) == []
    nb = json.loads(NOTEBOOK.read_text(encoding="utf-8"))
    assert "NUM_TRAIN" in "".join(nb["cells"][0]["source"])  # the reader is told of it


@pytest.mark.parametrize("quick", [None, "0", ""])
def test_without_quick_the_chapter_settings_apply(monkeypatch, tmp_path, quick):
    env = {} if quick is None else {"D2LAI_QUICK": quick}
    ns = _setup_cell(monkeypatch, tmp_path, **env)
    assert (ns["EPOCHS"], ns["BATCHSIZE"], ns["LR"]) == (10, 128, 0.1)
    assert (ns["NUM_TRAIN"], ns["NUM_VAL"], ns["ROOT"]) == (None, None, None)
    assert list(tmp_path.iterdir()) == []
