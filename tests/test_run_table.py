"""RunTable: what is saved reads back as it was, any run name can be plotted, and records that
cannot be a run's are refused by name."""

import io
import json
import math

import pytest

from d2lai.runs import RunTable, _finished


def _record(run, epoch=1, **extra):
    return {"run": run, "epoch": epoch, "train_loss": 0.5, "train_acc": 0.8, "val_loss": 0.6,
            "val_acc": 0.7, "epoch_s": 1.5, "run_s": 1.5 * epoch, "status": "ok", **extra}


def test_csv_reads_each_column_back_as_its_type(tmp_path):
    records = [
        _record("a", code="007", flag="True", ratio=float("nan"), lr=1, clip=None, net="mlp"),
        _record("b", code="x1", flag="no", ratio=0.5, lr=0.25, clip=1.0, net="cnn"),
        _record("c", code="12", flag="True", ratio=2.0, lr=1e-05, clip=2.5, net="True"),
        _record("d", epoch=0, code="0", flag="False", ratio=1.0, lr=3, clip=None, net="7",
                status="diverged") | {k: None for k in ("train_loss", "train_acc", "val_loss",
                                                         "val_acc", "epoch_s")},
    ]
    back = RunTable.from_csv(RunTable(records).to_csv(tmp_path / "runs.csv")).records
    assert [r["code"] for r in back] == ["007", "x1", "12", "0"]    # a column of text stays text
    assert [r["flag"] for r in back] == ["True", "no", "True", "False"]
    assert [r["net"] for r in back] == ["mlp", "cnn", "True", "7"]
    assert math.isnan(back[0]["ratio"]) and [r["ratio"] for r in back[1:]] == [0.5, 2.0, 1.0]
    assert [(r["lr"], type(r["lr"])) for r in back] == [(1, int), (0.25, float),
                                                        (1e-05, float), (3, int)]
    assert [r["clip"] for r in back] == [None, 1.0, 2.5, None]
    assert [type(r["epoch"]) for r in back] == [int] * 4
    assert back[3]["val_loss"] is None and back[3]["status"] == "diverged"
    for a, b in zip(back, records, strict=True):
        assert {k: v for k, v in a.items() if k != "ratio"} == \
            {k: v for k, v in b.items() if k != "ratio"}


def test_a_column_of_booleans_and_of_numbers_read_back_as_such(tmp_path):
    records = [_record("a", bn=True, seed=0, drop=0.5), _record("b", bn=False, seed=12, drop=0.0)]
    back = RunTable.from_csv(RunTable(records).to_csv(tmp_path / "t.csv")).records
    assert back == records
    assert [type(r["bn"]) for r in back] == [bool, bool]
    assert [type(r["seed"]) for r in back] == [int, int]


def test_json_keeps_strings_that_look_like_numbers(tmp_path):
    records = [_record("a", code="007", flag="True", note=""), _record("b", code=7, flag=True,
                                                                       note=None)]
    back = RunTable.from_json(RunTable(records).to_json(tmp_path / "runs.json")).records
    assert back == records
    assert [type(r["code"]) for r in back] == [str, int]


@pytest.mark.parametrize("name", ["_baseline", r"lr=$\frac$", "a$b", "$x$"])
def test_any_run_name_is_shown_as_it_is_in_the_legends(name):
    table = RunTable([_record(name, lr=0.1), _record(name, epoch=2, lr=0.1),
                      _record("other", lr=1.0)])
    fig = table.plot_curves("val_acc")
    fig.savefig(io.BytesIO(), format="png")  # mathtext would fail here, at drawing
    shown = [t.get_text() for t in fig.legends[0].get_texts()]
    assert len(shown) == 2 and shown[1] == "other"
    assert shown[0].replace("\\$", "$") == name
    fig = RunTable([_record("a", lr=0.1, group=name), _record("b", lr=1.0, group=name)]) \
        .plot_final("val_acc", "lr", by="group")
    fig.savefig(io.BytesIO(), format="png")
    shown = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert [s.replace("\\$", "$") for s in shown] == [f"group={name}"]


@pytest.mark.parametrize("records, match", [
    ([{"epoch": 1, "val_loss": 0.5}], r"record 1 has no 'run'"),
    ([_record("a"), {"run": "", "epoch": 1}], r"record 2: 'run' must be a run's name"),
    ([_record("a"), {"run": 3, "epoch": 1}], r"record 2: 'run' must be a run's name"),
    ([_record("a"), "lr=0.1"], r"record 2 is a str, not a dict"),
])
def test_records_that_are_no_runs_records_are_refused_by_number(records, match):
    with pytest.raises(ValueError, match=match):
        table = RunTable(records)  # a table of other rows may print (it has no runs) ...
        table.runs()  # ... but what needs runs needs each record's
    for needs_runs in ("final", "runs", "plot_curves"):
        with pytest.raises(ValueError, match=match):
            getattr(RunTable(records), needs_runs)()
    RunTable([{"variant": "a", "lr": 0.1}]).format()


def test_a_runs_json_record_without_run_is_named(tmp_path):
    path = tmp_path / "runs.json"
    path.write_text(json.dumps({"records": [_record("a"), {"epoch": 1, "status": "ok"}]}))
    with pytest.raises(ValueError, match=r"runs.json: record 2 has no 'run'"):
        RunTable.from_json(path)


def test_a_record_without_figures_is_not_a_finished_run(tmp_path):
    records = [_record("complete"), {"run": "edited", "epoch": 1, "status": "ok"},
               _record("no-losses") | {"train_loss": None, "val_loss": None},
               _record("diverged-at-once", epoch=0, status="diverged")
               | {k: None for k in ("train_loss", "train_acc", "val_loss", "val_acc")}]
    RunTable(records).to_json(tmp_path / "runs.json")
    assert sorted({r["run"] for r in _finished(tmp_path)[0]}) == ["complete", "diverged-at-once"]
