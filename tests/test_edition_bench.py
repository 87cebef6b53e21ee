"""The edition benchmark runs end to end on tiny generated data: its table and its JSON, with
the book's `d2l` when it is installed (never its timings, which depend on the machine)."""

import importlib.util
import json

import pytest

from bench import edition_speed


def test_edition_speed_writes_the_table_and_the_json(fashion_root, tmp_path, capsys,
                                                      one_thread, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the book's data folder is ../data: nothing may land there
    out = tmp_path / "edition_speed.json"
    edition_speed.main(["--data-root", str(fashion_root), "--repeats", "1", "--rnn-epochs", "1",
                        "--rnn-num-train", "256", "--rnn-num-val", "128", "--imdb-reviews", "40",
                        "--json", str(out)])
    printed = capsys.readouterr().out
    report = json.loads(out.read_text())
    book = importlib.util.find_spec("d2l") is not None
    assert report["settings"]["book_installed"] is book
    assert report["settings"]["fashion"] == "--data-root"
    assert report["settings"]["num_images"] == 600
    libraries = ["d2l", "d2lai"] if book else ["d2lai"]
    for workload, figure in (("bn", "val_acc"), ("rnn", "val_ppl"), ("sentiment", "test_acc")):
        res = report["results"][workload]
        for name in libraries:
            assert len(res[name]["fit_s"]) == 1 and res[name]["fit_s_median"] > 0
            assert len(res[name][figure]) == 1
        assert all(1 < res[n]["val_ppl"][0] < 40 for n in libraries) if figure == "val_ppl" \
            else all(0 <= res[n][figure][0] <= 1 for n in libraries)
        assert ("ratio_fit_d2l/d2lai" in res) is book
    if book:  # the same scratch model from the same seed: perplexities close
        ppl = report["results"]["rnn"]
        assert ppl["d2l"]["val_ppl"][0] == pytest.approx(ppl["d2lai"]["val_ppl"][0], rel=0.05)
        assert set(report["targets"]) == {"bn: d2l/d2lai >= 1.6",
                                          "bn: |accuracy difference| <= 0.02",
                                          "sentiment: d2l/d2lai data >= 1.0",
                                          "sentiment: d2l/d2lai fit >= 0.95"}
        assert "d2l/d2lai: fit" in printed
    else:
        assert "pip install --no-deps d2l==1.0.3" in printed
    assert not (tmp_path.parent / "data").exists()


def test_edition_speed_refuses_bad_flags(capsys):
    with pytest.raises(SystemExit):
        edition_speed.parse_args(["--workloads", "bn,cnn"])
    assert "--workloads takes a comma-separated list of bn, rnn, sentiment" in \
        capsys.readouterr().err
    with pytest.raises(SystemExit):
        edition_speed.parse_args(["--repeats", "0"])
