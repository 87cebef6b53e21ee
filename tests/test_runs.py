"""Runs: grid names, sweep records and statuses, resuming, Ctrl-C, the table's files and plots."""

import json
import math
import sys

import pytest
from conftest import FailAt, TinyClassifier
from torch import nn

import d2lai
from d2lai.runs import COLUMNS, Run, RunTable, _status, grid, sweep
from d2lai.trainer import Metrics

QUIET = {"board": False, "max_epochs": 2}


pytestmark = pytest.mark.usefixtures("one_thread")


class Blind(TinyClassifier):
    """Stuck: blind to its input, it can only learn the classes' frequencies (about 10%)."""

    def forward(self, X):
        return super().forward(X * 0)


def tiny_build(data, log=None):
    """A build for settings hidden/lr (and model, a class): counts its calls in `log`."""
    def build(s):
        if log is not None:
            log.append(dict(s))
        return s.get("model", TinyClassifier)(s.get("hidden", 16)), data, \
            d2lai.Descent(s.get("lr", 0.1))
    return build


def check_png(path):
    assert path.is_file() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# --- grid -----------------------------------------------------------------------------------

def test_grid_expands_every_combination_once_the_last_setting_fastest():
    runs = grid(dict(net=[TinyClassifier, nn.Linear], lr=[0.01, 0.1, 1e-5],
                     batchsize=[128, 1000]))
    assert len(runs) == 2 * 3 * 2 and all(isinstance(r, Run) for r in runs)
    assert [r.name for r in runs[:4]] == [
        "net=TinyClassifier,lr=0.01,batchsize=128", "net=TinyClassifier,lr=0.01,batchsize=1000",
        "net=TinyClassifier,lr=0.1,batchsize=128", "net=TinyClassifier,lr=0.1,batchsize=1000"]
    assert runs[5].name == "net=TinyClassifier,lr=1e-05,batchsize=1000"
    assert runs[6].settings == {"net": nn.Linear, "lr": 0.01, "batchsize": 128}
    assert runs[6].columns == {"net": "Linear", "lr": 0.01, "batchsize": 128}
    assert len({r.name for r in runs}) == 12
    assert [r.name for r in grid(dict(lr=[0.1, 0.01]))] == ["lr=0.1", "lr=0.01"]  # given order


def test_grid_names_values_given_as_a_dict():
    a, b = (lambda: 1), (lambda: 2)
    runs = grid({"make": {"first": a, "second": b}, "bn": [True, False]})
    assert [r.name for r in runs] == ["make=first,bn=True", "make=first,bn=False",
                                      "make=second,bn=True", "make=second,bn=False"]
    assert runs[2].settings["make"] is b and runs[2].columns == {"make": "second", "bn": True}


@pytest.mark.parametrize("settings, error, message", [
    ({"make": [lambda: 1, lambda: 2]}, ValueError, r"'make' has two values shown as '<lambda>'"
                                                   r".*name them with a dict"),
    ({"lr": [0.1, 0.1]}, ValueError, r"'lr' has two values shown as '0.1'"),
    ({"lr": []}, ValueError, "'lr' has no values"),
    ({"lr": 0.1}, TypeError, "'lr' must be a list of values .* got float 0.1"),
    ({"lr": "0.1"}, TypeError, "'lr' must be a list"),
    ({}, ValueError, "non-empty dict of settings"),
    ({"epoch": [1, 2]}, ValueError, "'epoch' would hide the table's column"),
    ({1: [1]}, TypeError, "setting names must be non-empty strings"),
])
def test_grid_refuses_bad_settings(settings, error, message):
    with pytest.raises(error, match=message):
        grid(settings)


# --- sweep: records, statuses, files --------------------------------------------------------

def test_sweep_records_every_epoch_as_a_seeded_plain_fit_gives_it(tiny_data, capsys):
    table = sweep(dict(hidden=[8, 32], lr=[0.5]), tiny_build(tiny_data), seed=0, **QUIET)
    assert table.runs() == ["hidden=8,lr=0.5", "hidden=32,lr=0.5"] and len(table) == 4
    first = table.records[0]
    assert list(first) == [*COLUMNS, "hidden", "lr"]
    assert [r["epoch"] for r in table.records] == [1, 2, 1, 2]
    assert all(r["status"] == "ok" and r["epoch_s"] > 0 for r in table.records)
    assert table.records[1]["run_s"] >= table.records[0]["run_s"] + table.records[1]["epoch_s"]
    d2lai.seed(0)  # the same run by hand: the same figures, epoch by epoch
    trainer = d2lai.Trainer(TinyClassifier(32), tiny_data, d2lai.Descent(0.5), seed=0,
                            verbose=False, **QUIET)
    trainer.fit()
    for key in ("train_loss", "train_acc", "val_loss", "val_acc"):
        assert [r[key] for r in table.records[2:]] == trainer.history[key]
    assert [r["hidden"] for r in table.final().records] == [8, 32]
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == "[1/2] hidden=8,lr=0.5: training"
    assert printed[1].startswith("[1/2] hidden=8,lr=0.5: ok after 2 epochs")
    assert f"val acc {table.records[1]['val_acc']:.4f}" in printed[1]


def test_records_round_trip_through_csv_and_json(tiny_data, tmp_path):
    table = sweep({"model": [TinyClassifier, FailAt], "lr": [0.1, 1e-3]},
                  lambda s: (s["model"](*([] if s["model"] is TinyClassifier else [1, 2])),
                             tiny_data, d2lai.Descent(s["lr"])), tmp_path, seed=0, **QUIET)
    saved = json.loads((tmp_path / "runs.json").read_text())
    assert saved["records"] == table.records  # written as each run finished
    assert RunTable.from_json(tmp_path / "runs.json").records == table.records
    assert RunTable.from_csv(tmp_path / "runs.csv").records == table.records
    back = RunTable.from_csv(table.to_csv(tmp_path / "again.csv")).records
    assert back == table.records
    assert [type(back[0][k]) for k in ("epoch", "val_acc", "lr", "model")] == [int, float,
                                                                                float, str]
    diverged = back[-1]
    assert diverged["model"] == "FailAt" and diverged["status"] == "diverged"
    assert diverged["val_loss"] is None and diverged["epoch"] == 0
    assert not list(tmp_path.glob("*.tmp"))


def test_a_diverged_and_a_stuck_run_are_marked_and_the_sweep_goes_on(tiny_data, capsys):
    models = {"nan-in-epoch-2": lambda: FailAt(2, 3), "stuck": Blind,
              "nan-at-once": lambda: FailAt(1, 1), "fine": TinyClassifier}
    table = sweep({"model": models}, lambda s: (s["model"](), tiny_data, d2lai.Descent(0.5)),
                  seed=0, **QUIET)
    final = {r["model"]: r for r in table.final().records}
    assert {k: r["status"] for k, r in final.items()} == {  # stuck after 20 steps: no progress
        "nan-in-epoch-2": "diverged", "stuck": "no progress", "nan-at-once": "diverged",
        "fine": "ok"}
    assert final["nan-in-epoch-2"]["epoch"] == 1 and final["nan-in-epoch-2"]["val_acc"] > 0.15
    assert final["nan-at-once"]["epoch"] == 0 and final["nan-at-once"]["train_loss"] is None
    stuck = [r for r in table.records if r["model"] == "stuck"]
    assert all(r["train_loss"] == pytest.approx(math.log(10), abs=0.05) for r in stuck)
    assert stuck[-1]["val_acc"] < 0.15
    assert "[2/4] model=stuck: no progress after 2 epochs" in capsys.readouterr().out


def _metrics(val_acc, losses, steps=1000, **flags):
    history = {"train_loss": losses, "val_loss": [1.0] * len(losses),
               "val_acc": [val_acc] * len(losses)}
    return Metrics.of(history, len(losses), steps, **flags)


@pytest.mark.parametrize("val_acc, losses, classes, flags, status", [
    (0.9, [2.0, 1.0], 10, {}, "ok"),
    (0.149, [2.0, 1.0], 10, {}, "failed"),        # chance: below 1.5 / 10
    (0.151, [2.0, 1.0], 10, {}, "ok"),
    (0.7, [0.6, 0.5], 2, {}, "failed"),           # two classes: below 0.75
    (0.9, [2.0, 2.0, 2.5], 10, {}, "failed"),     # the loss never fell below the first epoch's
    (0.3, [14.5, 13.2], 10, {}, "failed"),        # worse than a uniform guess: log(10) = 2.30
    (0.3, [14.5, 2.31], 10, {}, "failed"),
    (0.3, [14.5, 2.30], 10, {}, "ok"),
    (0.9, [0.8, 0.69], 2, {}, "ok"),              # two classes: log(2) = 0.693
    (0.9, [0.8, 0.7], 2, {}, "failed"),
    (0.9, [2.0, 2.5, 1.9], 10, {}, "ok"),
    (0.9, [2.0], 10, {}, "ok"),                   # one epoch: no trend to judge
    (0.9, [2.0, float("nan")], 10, {}, "diverged"),
    (0.9, [2.0, 1.0], 10, {"diverged": True}, "diverged"),
    (0.1, [2.0, 1.0], 10, {"interrupted": True}, "interrupted"),
    (None, [2.0, 1.0], None, {}, "ok"),           # no accuracy (a regression)
    # stuck in a run too short to tell: what was observed, not a verdict
    (0.1, [2.3, 2.3], 10, {"steps": 499}, "no progress"),
    (0.1, [2.3, 2.3], 10, {"steps": 500}, "failed"),
    (0.9, [2.0, 2.0, 2.5], 10, {"steps": 24}, "no progress"),
    (0.9, [2.0, 1.0], 10, {"steps": 24}, "ok"),
])
def test_status_rules(val_acc, losses, classes, flags, status):
    records = [{"train_loss": x} for x in losses]
    assert _status(_metrics(val_acc, losses, **flags), records, classes) == status


def test_a_finished_sweep_is_skipped_and_a_restart_redoes_it(tiny_data, tmp_path, capsys):
    log = []
    first = sweep(dict(lr=[0.1, 0.5]), tiny_build(tiny_data, log), tmp_path, seed=0, **QUIET)
    assert len(log) == 2
    again = sweep(dict(lr=[0.1, 0.5, 1.0]), tiny_build(tiny_data, log), tmp_path, seed=0,
                  **QUIET)
    # the finished runs are built again, to compare what defines them; only the new one trains
    assert log[2:] == [{"lr": 0.1}, {"lr": 0.5}, {"lr": 1.0}]
    assert again.records[:4] == first.records and again.runs()[-1] == "lr=1"
    out = capsys.readouterr().out
    assert f"skipping 2 of 3 runs already finished in {tmp_path}" in out
    assert "[3/3] lr=1: training" in out and "[1/3]" not in out
    redo = sweep(dict(lr=[0.5]), tiny_build(tiny_data, log), tmp_path, restart=True, seed=0,
                 **QUIET)
    assert log[5:] == [{"lr": 0.5}] and redo.runs() == ["lr=0.5"]
    assert [r["val_acc"] for r in redo.records] == [r["val_acc"] for r in first.records[2:]]
    assert RunTable.from_json(tmp_path / "runs.json").runs() == ["lr=0.5"]  # the old table went


def test_ctrl_c_stops_the_sweep_after_saving_and_a_rerun_redoes_the_interrupted_run(
        tiny_data, tmp_path, capsys):
    log, interrupt = [], [True]

    def build(s):
        log.append(s["lr"])
        model = FailAt(2, 4, error=KeyboardInterrupt()) if s["lr"] == 0.2 and interrupt[0] \
            else TinyClassifier()
        return model, tiny_data, d2lai.Descent(s["lr"])

    table = sweep(dict(lr=[0.1, 0.2, 0.3]), build, tmp_path, seed=0, max_epochs=3, board=False)
    assert log == [0.1, 0.2]  # the third run never started
    assert [(r["run"], r["epoch"], r["status"]) for r in table.records] == [
        ("lr=0.1", 1, "ok"), ("lr=0.1", 2, "ok"), ("lr=0.1", 3, "ok"),
        ("lr=0.2", 1, "interrupted")]
    assert RunTable.from_json(tmp_path / "runs.json").records == table.records
    assert "interrupted: the sweep stops here" in capsys.readouterr().out
    interrupt[0] = False
    again = sweep(dict(lr=[0.1, 0.2, 0.3]), build, tmp_path, seed=0, max_epochs=3, board=False)
    assert log[2:] == [0.1, 0.2, 0.3]  # the finished run built to compare, not trained
    assert "[1/3]" not in capsys.readouterr().out
    assert again.runs() == ["lr=0.1", "lr=0.2", "lr=0.3"] and len(again) == 9
    assert {r["status"] for r in again.records} == {"ok"}


def test_seed_as_a_setting_and_callbacks_and_build_dicts(tiny_data):
    class StopAt2(d2lai.Callback):
        def on_epoch_end(self, trainer, epoch, logs):
            trainer.should_stop = epoch == 2

    def build(s):
        return {"model": TinyClassifier(), "data": tiny_data, "opt": d2lai.Descent(0.5),
                "max_epochs": 4}

    table = sweep(dict(seed=[3, 4], lr=[0.5]), build, board=False,
                  callbacks=[StopAt2()])
    again = sweep(dict(seed=[3], lr=[0.5]), build, board=False, callbacks=[StopAt2()])
    assert [r["epoch"] for r in table.records] == [1, 2, 1, 2]  # build's max_epochs, stopped
    assert [r["val_loss"] for r in again.records] == [r["val_loss"] for r in table.records[:2]]
    assert table.records[1]["val_loss"] != table.records[3]["val_loss"]


def test_sweep_refuses_bad_arguments_before_training(tiny_data, tmp_path, monkeypatch):
    build = tiny_build(tiny_data)
    with pytest.raises(TypeError, match="sweep got max_epoch, which Trainer does not take"):
        sweep(dict(lr=[0.1]), build, max_epoch=2)
    with pytest.raises(TypeError, match="sweep got model: pass model, data and opt from build"):
        sweep(dict(lr=[0.1]), build, model=TinyClassifier())
    with pytest.raises(TypeError, match="build must be a function"):
        sweep(dict(lr=[0.1]), "build")
    with pytest.raises(TypeError, match="dict of settings or a list of d2lai.Run"):
        sweep(["lr=0.1"], build)
    with pytest.raises(ValueError, match="two runs are named 'a'"):
        sweep([Run("a", {}), Run("a", {"lr": 1})], build)
    with pytest.raises(TypeError, match=r"build must return \(model, data, opt\).*returned int"):
        sweep(dict(lr=[0.1]), lambda s: 3, board=False)
    with pytest.raises(TypeError, match="build returned max_epoch, which Trainer does not take"):
        sweep(dict(lr=[0.1]), lambda s: {"model": TinyClassifier(), "data": tiny_data,
                                         "max_epoch": 1}, board=False)
    with pytest.raises(ValueError, match="tensorboard=True needs out="):
        sweep(dict(lr=[0.1]), build, tensorboard=True)
    a_file = tmp_path / "file"
    a_file.write_text("")
    with pytest.raises(NotADirectoryError, match="is a file"):
        sweep(dict(lr=[0.1]), build, a_file)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "runs.json").write_text('{"records": 3}')
    with pytest.raises(ValueError, match="runs.json is not a table of runs.*restart=True"):
        sweep(dict(lr=[0.1]), build, tmp_path / "bad")
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # as if not installed
    with pytest.raises(ImportError, match=r'pip install "d2lai\[tensorboard\]"'):
        sweep(dict(lr=[0.1]), build, tmp_path, tensorboard=True)
    assert not (tmp_path / "runs.json").exists()  # nothing was trained


# --- the table ------------------------------------------------------------------------------

RECORDS = [
    {"run": "lr=0.01", "epoch": 1, "train_loss": 2.0, "val_acc": 0.3, "epoch_s": 1.25,
     "status": "ok", "lr": 0.01},
    {"run": "lr=0.01", "epoch": 2, "train_loss": 1.0, "val_acc": 0.6, "epoch_s": 1.0,
     "status": "ok", "lr": 0.01},
    {"run": "lr=0.1", "epoch": 1, "train_loss": 0.5, "val_acc": 0.8, "epoch_s": 1.0,
     "status": "ok", "lr": 0.1},
    {"run": "lr=1", "epoch": 1, "train_loss": 2.3, "val_acc": 0.1, "epoch_s": 1.0,
     "status": "failed", "lr": 1.0},
    {"run": "lr=1e+30", "epoch": 0, "train_loss": None, "val_acc": float("nan"),
     "epoch_s": None, "status": "diverged", "lr": 1e30},
]


def test_text_table_is_aligned_and_formats_figures_seconds_and_settings(tmp_path):
    table = RunTable(RECORDS)
    lines = str(table).splitlines()
    assert lines[0].split() == ["run", "epoch", "train", "loss", "val", "acc", "epoch", "s",
                                "status", "lr"]
    assert lines[1].split() == ["lr=0.01", "1", "2.0000", "0.3000", "1.2", "ok", "0.01"]
    assert lines[5].split() == ["lr=1e+30", "0", "-", "-", "-", "diverged", "1e+30"]
    assert len({len(line) for line in lines}) == 1  # the last column is right-aligned
    assert lines[0].index("status") == lines[5].index("diverged")  # text columns left-aligned
    assert table.format(["run", "val_acc"]).splitlines()[3].split() == ["lr=0.1", "0.8000"]
    with pytest.raises(ValueError, match="column 'val_loss' is not a column; the columns are"):
        table.format(["val_loss"])
    assert table.final().runs() == table.runs() == ["lr=0.01", "lr=0.1", "lr=1", "lr=1e+30"]
    assert [r["epoch"] for r in table.final().records] == [2, 1, 1, 0]
    saved = json.loads(table.to_json(tmp_path / "t.json").read_text())
    assert saved["records"][4]["val_acc"] is None  # strict JSON: NaN as null


def test_to_pandas(monkeypatch):
    pd = pytest.importorskip("pandas")
    frame = RunTable(RECORDS).to_pandas()
    assert isinstance(frame, pd.DataFrame) and frame.shape == (5, 7)
    assert list(frame.columns) == list(RECORDS[0])
    assert frame.groupby("run")["val_acc"].max()["lr=0.01"] == 0.6


def test_to_pandas_without_pandas_says_how_to_get_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(ImportError, match="pip install pandas"):
        RunTable(RECORDS).to_pandas()


def test_plots_are_written_with_failures_marked(tmp_path):
    table = RunTable(RECORDS)
    fig = table.plot_curves(["train_loss", "val_acc"], tmp_path / "curves.png")
    check_png(tmp_path / "curves.png")
    assert len(fig.axes) == 2
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels == ["lr=0.01", "lr=0.1", "lr=1 (failed)", "lr=1e+30 (diverged)"]
    fig = table.plot_final("val_acc", "lr", tmp_path / "final.png")
    check_png(tmp_path / "final.png")
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"  # 0.01 .. 1e30: many decades
    good, diverged, failed = ax.get_lines()
    assert list(good.get_xdata()) == [0.01, 0.1] and list(good.get_ydata()) == [0.6, 0.8]
    # the failed run where it ended (0.1, at chance), on an axis from 0 to 1, not at the bottom
    # of an axis that fits the good runs alone
    assert list(failed.get_xdata()) == [1.0] and list(failed.get_ydata()) == [0.1]
    assert failed.get_marker() == "x" and failed.get_label() == "val acc: failed"
    assert ax.get_ylim() == (0, 1) and len([t for t in ax.get_yticks() if 0 <= t <= 1]) == 11
    assert ax.get_ylabel() == "final val acc"
    # the diverged run has no value: a mark under the axis (axes coordinates), said so
    assert list(diverged.get_xdata()) == [1e30] and list(diverged.get_ydata()) == [0]
    assert diverged.get_marker() == "v" and diverged.get_label() == \
        "val acc: diverged (no val_acc)"
    fig = table.plot_curves(["train_loss", "val_acc"])
    assert fig.axes[1].get_ylim() == (0, 1) and fig.axes[0].get_ylabel() == "train loss"
    assert len([t for t in fig.axes[0].get_yticks()
                if fig.axes[0].get_ylim()[0] <= t <= fig.axes[0].get_ylim()[1]]) >= 4
    narrow = RunTable([dict(r, run=f"b{i}", lr=1 + i, net=["a", "b"][i % 2])
                       for i, r in enumerate(RECORDS[:4])])
    fig = narrow.plot_final("val_acc", "lr", by="net")
    assert fig.axes[0].get_xscale() == "linear"
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == [
        "net=a", "net=b", "net=b: failed"]
    with pytest.raises(ValueError, match="'val_loss' is not a column"):
        table.plot_curves("val_loss")
    with pytest.raises(ValueError, match="matplotlib can write only"):
        table.plot_curves("val_acc", tmp_path / "curves.nope")


# --- TensorBoard ----------------------------------------------------------------------------

def test_tensorboard_writes_each_runs_scalars_and_hparams_in_its_own_folder(tiny_data, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    table = sweep({"hidden": [8], "lr": [0.5, 1e30]}, tiny_build(tiny_data), tmp_path,
                  tensorboard=True, seed=0, **QUIET)
    board = tmp_path / "tensorboard"
    assert sorted(p.name for p in board.iterdir()) == ["hidden=8,lr=0.5", "hidden=8,lr=1e+30"]
    for run in table.runs():
        folder = board / run
        assert all(p.is_file() and p.name.startswith("events.out.tfevents")
                   for p in folder.iterdir())  # no timestamped sub-folder
        events = EventAccumulator(str(folder))
        events.Reload()
        records = [r for r in table.records if r["run"] == run]
        hp = plugin_data_pb2.HParamsPluginData.FromString(
            events.PluginTagToContent("hparams")["_hparams_/session_start_info"])
        values = {k: v.number_value or v.string_value
                  for k, v in hp.session_start_info.hparams.items()}
        assert values == {"hidden": 8, "lr": records[0]["lr"], "status": records[0]["status"]}
        experiment = plugin_data_pb2.HParamsPluginData.FromString(
            events.PluginTagToContent("hparams")["_hparams_/experiment"]).experiment
        assert [m.name.tag for m in experiment.metric_infos] == [
            "hparam/train_loss", "hparam/train_acc", "hparam/val_loss", "hparam/val_acc"]
        scalars = events.Tags()["scalars"]
        if records[0]["status"] == "diverged":
            assert scalars == []
            continue
        assert set(scalars) == {"loss/train", "loss/val", "accuracy/train", "accuracy/val",
                                "seconds/epoch", "hparam/train_loss", "hparam/train_acc",
                                "hparam/val_loss", "hparam/val_acc"}
        for tag, key in (("loss/train", "train_loss"), ("accuracy/val", "val_acc"),
                         ("seconds/epoch", "epoch_s")):
            got = [(e.step, e.value) for e in events.Scalars(tag)]
            assert got == [(r["epoch"], pytest.approx(r[key], rel=1e-6)) for r in records]
        final = events.Scalars("hparam/val_acc")
        assert [(e.step, e.value) for e in final] == [(2, pytest.approx(records[-1]["val_acc"]))]
    again = sweep({"hidden": [8], "lr": [0.5]}, tiny_build(tiny_data), tmp_path,
                  restart=True, tensorboard=True, seed=0, **QUIET)
    assert len(list((board / again.runs()[0]).iterdir())) == 1  # the earlier events went
