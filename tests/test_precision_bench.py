"""The precision benchmark runs end to end on tiny generated data (no assertion on time)."""

import json

from bench import precision as bench


def test_precision_bench_writes_the_table_and_the_json(tmp_path, capsys, one_thread):
    out = tmp_path / "precision.json"
    bench.main(["--quick", "--workloads", "lenet-concise", "--modes", "32,bf16", "--json",
                str(out)])
    printed = capsys.readouterr().out
    assert "CPU: " in printed and "lenet-concise" in printed and "vs bare" in printed
    report = json.loads(out.read_text())
    rows = report["workloads"]["lenet-concise"]["modes"]
    assert set(rows) == {"32", "bf16"}
    for row in rows.values():
        assert row["d2lai"]["epoch_s"] > 0 and row["bare"]["epoch_s"] > 0
        assert row["ratio_to_bare"] > 0 and 0 <= row["figures"]["val_acc"] <= 1
        assert 0 <= row["bare_figures"]["val_acc"] <= 1
    assert rows["32"]["d2lai_speedup"] == 1.0
    assert report["targets"]["d2lai/bare"]["mode"].startswith("lenet-concise")
    again = tmp_path / "again.json"  # --update keeps what was measured, adds the rest
    out.replace(again)
    bench.main(["--quick", "--workloads", "lenet-concise", "--modes", "bf16", "--update",
                "--json", str(again)])
    assert set(json.loads(again.read_text())["workloads"]["lenet-concise"]["modes"]) == {
        "32", "bf16"}
