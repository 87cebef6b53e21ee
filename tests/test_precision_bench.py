"""The precision benchmark runs end to end on tiny generated data (no assertion on time)."""

import json

import pytest

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


def test_the_accuracy_target_is_the_mean_over_the_main_run_and_the_seeds():
    """One 2-epoch run's accuracy differs from another's, seeded otherwise, by about 0.01:
    the target takes the mean of float32's minus bf16's over the main run and the seeds."""
    def report(main_32, main_bf16, seeds):
        modes = {"32": {"figures": {"val_acc": main_32}, "ratio_to_bare": 1.0,
                        "d2lai_speedup": 1.0},
                 "bf16": {"figures": {"val_acc": main_bf16}, "ratio_to_bare": 1.0,
                          "d2lai_speedup": 2.3}}
        return {"workloads": {"resnet18": {"modes": modes, "seeds": seeds}}}

    seeds = {"1": {"32": 0.8345, "bf16": 0.8184}, "2": {"32": 0.84, "bf16": 0.838}}
    lost = bench.accuracy_lost(report(0.8467, 0.8628, seeds)["workloads"]["resnet18"])
    assert lost == pytest.approx([-0.0161, 0.0161, 0.002])
    target = bench.held(report(0.8467, 0.8628, seeds))["resnet18 val_acc lost"]
    assert target["value"] == pytest.approx(0.002 / 3) and target["held"]
    assert target["mode"] == "bf16, mean of 3 runs"
    worse = bench.held(report(0.85, 0.83, {"1": {"32": 0.85, "bf16": 0.835}}))
    assert worse["resnet18 val_acc lost"]["value"] == pytest.approx(0.0175)
    assert not worse["resnet18 val_acc lost"]["held"]


def test_the_accuracy_study_alone_and_its_seeds_are_parsed_or_refused(capsys):
    args = bench.parse_args(["--workloads", "resnet18", "--modes", "", "--accuracy-seeds", "1,2"])
    assert args.modes == [] and args.accuracy_seeds == [1, 2]
    with pytest.raises(SystemExit):
        bench.parse_args(["--accuracy-seeds", "1,x"])
    assert "--accuracy-seeds takes comma-separated integers, got '1,x'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        bench.parse_args(["--modes", ""])
    seeds = {"1": {"32": 0.8, "bf16": 0.8}}
    study_alone = {"workloads": {"resnet18": {"modes": {}, "seeds": seeds}}}
    assert bench.held(study_alone) == {}  # no rows: no speed target to miss
