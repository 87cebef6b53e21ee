"""The RNN-speed benchmark runs end to end on a tiny generated corpus: its table and its JSON
(never its timings, which depend on the machine)."""

import json

import pytest

from bench import rnn_speed


def test_rnn_speed_writes_the_table_and_the_json(tmp_path, capsys, one_thread):
    out = tmp_path / "rnn_speed.json"
    rnn_speed.main(["--epochs", "1", "--batchsize", "32", "--num-steps", "8", "--num-train",
                    "128", "--num-val", "32", "--num-hiddens", "8", "--json", str(out)])
    printed = capsys.readouterr().out
    report = json.loads(out.read_text())
    assert set(report) == {"machine", "settings", "results", "targets"}
    assert report["settings"]["num_train"] == 128 and report["settings"]["data"] == "generated"
    res = report["results"]["scratch"]
    for key in ("bare_beside_verbose", "bare_figures", "d2lai_verbose", "bare_beside_quiet",
                "d2lai_quiet"):
        assert len(res[key]["train_s_epochs"]) == 1  # the warm-up epoch is dropped
        assert res[key]["samples_per_s"] > 0
        ppl = res["perplexity"][key]
        assert 1 < ppl["val_ppl"] < 40 and 1 < ppl["train_ppl"] < 40
    assert set(res["ratios"]) == {"d2lai_verbose/bare", "d2lai_verbose/bare_figures",
                                  "d2lai_quiet/bare"}
    assert all(r > 0 for r in res["ratios"].values())
    # the bare loop is the same training: same batches, same weights, same perplexities
    assert all(d < 1e-5 for d in res["max_weight_diff_vs_bare"].values())
    for figure in ("train_ppl", "val_ppl"):
        assert res["perplexity"]["d2lai_verbose"][figure] == pytest.approx(
            res["perplexity"]["bare_beside_verbose"][figure], rel=1e-5)
    assert all(isinstance(t["held"], bool) for t in report["targets"].values())
    lines = [line for line in printed.splitlines() if line.startswith("scratch")]
    assert len(lines) == 5 and "bare + figures" in lines[1] and "d2lai verbose=False" in lines[4]
    assert "d2lai_verbose/bare <= 1.10" in printed
