"""The notebooks of chapters 8, 9 and 10: each runs end to end in quick mode on the data it
generates, shows one board and one status line a fit (not a flood of outputs), prints figures
that say the models learned, and is committed stripped, importing its chapter.

Executing them needs nbclient, nbformat and ipykernel; without them those tests are skipped.
"""

import json
import re

import pytest
from notebooks import ROOT, cell_with, code, execute, first_cell, source, text

NOTEBOOKS = {"rnn": "timemachine.txt", "modern_rnn": "timemachine.txt",
             "attention": "fra-eng.zip"}

pytestmark = pytest.mark.filterwarnings("ignore:.*is not the book's file")


@pytest.fixture(scope="module", params=list(NOTEBOOKS))
def executed(request, tmp_path_factory):
    name = request.param
    nb = execute(ROOT / "chapters" / f"{name}.ipynb", tmp_path_factory.mktemp("no-data"),
                 tmp_path_factory.mktemp(name), timeout=300)
    return name, nb


def test_every_cell_ran_without_error(executed):
    _, nb = executed
    cells = code(nb)
    assert [c["execution_count"] for c in cells] == list(range(1, len(cells) + 1))
    errors = [o for c in cells for o in c["outputs"] if o["output_type"] == "error"]
    assert not errors, f"cells raised: {[(e['ename'], e['evalue']) for e in errors]}"


def test_each_fit_shows_one_board_one_status_line_and_an_epoch_line_each_epoch(executed):
    name, nb = executed
    fits = [c for c in code(nb) if "[ Info: Epoch" in text(c, "stderr")]
    assert len(fits) == {"rnn": 2, "modern_rnn": 6, "attention": 2}[name]
    for cell in fits:
        images = [o for o in cell["outputs"]
                  if o["output_type"] == "display_data" and "image/png" in o["data"]]
        status = [o["data"]["text/plain"] for o in cell["outputs"]
                  if o["output_type"] == "display_data" and "image/png" not in o["data"]]
        assert len(images) == 1, "the board is shown once and redrawn in place"
        assert len(status) == 1 and re.fullmatch(r"'?\d+ epochs in [\d.]+ s'?", status[0]), status
        epochs = int(status[0].strip("'").split()[0])
        log = text(cell, "stderr")
        assert len(re.findall(r"^\[ Info: Epoch \d+/\d+ · ", log, re.M)) == epochs, log
        streams = "".join(o.get("text", "") for o in cell["outputs"]
                          if o["output_type"] == "stream")
        assert "%|" not in streams and "\r" not in streams  # no progress-bar refreshes
        assert len(cell["outputs"]) <= 40 and len(streams) < 6000


def _falls(pairs, by: float) -> list:
    """The (first, last) pairs whose last is not below `by` times the first."""
    return [p for p in pairs if not float(p[1]) < by * float(p[0])]


def test_quick_mode_learns_as_the_printed_figures_say(executed):
    name, nb = executed
    out = "".join(text(c, "stdout") for c in code(nb))
    if name == "rnn":
        pairs = re.findall(r"validation perplexity: ([\d.]+) after epoch 1, ([\d.]+) after", out)
        assert len(pairs) == 2 and not _falls(pairs, 0.8), out
        assert len(re.findall(r"prediction: 'it has.{20}'", out)) == 2, out
    elif name == "modern_rnn":
        pairs = re.findall(r"val ppl +([\d.]+) -> +([\d.]+)", out)
        assert len(pairs) == 6 and not _falls(pairs, 0.9), out  # chance: about 17
    else:
        losses = re.findall(r"validation loss ([\d.]+) -> ([\d.]+)", out)
        accuracies = re.findall(r"token accuracy ([\d.]+) -> ([\d.]+)", out)
        assert len(losses) == 2 and not _falls(losses, 0.8), out
        assert all(float(b) > float(a) + 0.2 and float(b) > 0.5 for a, b in accuracies), out
        bleus = [float(b) for b in re.findall(r"held out .* bleu ([\d.]+)", out)]
        assert len(bleus) == 8 and max(bleus) > 0.3, out  # held-out pairs partly translated


def test_attention_weights_are_drawn_under_their_cells(executed):
    name, nb = executed
    if name != "attention":
        pytest.skip("the attention chapter draws its weights")
    for model in ("bahdanau", "transformer"):
        cell = cell_with(nb, f'attention_heatmap("{model}"')
        assert [o["output_type"] for o in cell["outputs"]] == ["execute_result"]
        assert cell["outputs"][0]["data"]["image/png"]


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_committed_notebook_is_stripped_and_imports_its_chapter(name):
    nb = json.loads((ROOT / "chapters" / f"{name}.ipynb").read_text(encoding="utf-8"))
    assert nb["metadata"]["kernelspec"]["name"] == "python3" and "widgets" not in nb["metadata"]
    for cell in code(nb):
        assert cell["outputs"] == [] and cell["execution_count"] is None, (
            f"cell {cell.get('id')} holds outputs: strip them before committing")
    sources = "\n".join(source(c) for c in code(nb))
    assert f"from chapters.{name} import" in sources
    assert not re.search(r"^class ", sources, re.M)  # the chapter's models are imported


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_quick_mode_generates_data_only_when_d2lai_data_holds_none(name, monkeypatch, tmp_path,
                                                                   tm_root, fra_root):
    notebook = ROOT / "chapters" / f"{name}.ipynb"
    ns = first_cell(notebook, monkeypatch, tmp_path, D2LAI_QUICK="1",
                    D2LAI_DATA=str(tmp_path / "empty"))
    assert (tmp_path / ns["ROOT"]).parent == tmp_path and ns["QUICK_RUN"]
    assert (tmp_path / ns["ROOT"] / NOTEBOOKS[name]).is_file()  # a stand-in, in a temp folder

    given = tm_root if NOTEBOOKS[name] == "timemachine.txt" else fra_root
    (tmp_path / "again").mkdir()
    ns = first_cell(notebook, monkeypatch, tmp_path / "again", D2LAI_QUICK="1",
                    D2LAI_DATA=str(given))
    assert ns["ROOT"] == str(given) and list((tmp_path / "again").iterdir()) == []

    ns = first_cell(notebook, monkeypatch, tmp_path / "again")  # the text's settings
    chapter = __import__(f"chapters.{name}", fromlist=["BOOK"])
    assert ns["S"] == chapter.BOOK and ns["ROOT"] is None and not ns["QUICK_RUN"]
