"""What defines a run (its settings, the trainer's arguments, the data's, the seed) is kept with
its results and in its checkpoints: a run whose definition changed is redone (a sweep) or
refused (a checkpoint), and the message names the setting that differs."""

import json

import pytest
import torch
from conftest import Scripted, TinyClassifier

import d2lai
from chapters import batch_norm_exercises as ex
from d2lai.runs import RunTable, sweep

pytestmark = pytest.mark.usefixtures("one_thread")
QUICK = ["--cpu", "--num-train", "96", "--num-val", "32", "--batchsize", "32"]


class Fits(d2lai.Callback):
    """Counts the fits that start, over all the runs of a sweep: one object the runs share."""

    def __init__(self):
        self.count = 0

    def for_run(self, name):
        return self

    def on_fit_start(self, trainer):
        self.count += 1


def build_on(data):
    return lambda s: (TinyClassifier(16), data, d2lai.Descent(s["lr"]))


# --- sweeps -----------------------------------------------------------------------------------

def test_a_sweep_run_again_with_other_epochs_redoes_its_runs(tiny_data, tmp_path, capsys):
    fits = Fits()
    first = sweep(dict(lr=[0.1, 0.5]), build_on(tiny_data), tmp_path, seed=0, board=False,
                  max_epochs=1, callbacks=[fits])
    assert fits.count == 2 and [r["epoch"] for r in first.records] == [1, 1]
    capsys.readouterr()
    again = sweep(dict(lr=[0.1, 0.5]), build_on(tiny_data), tmp_path, seed=0, board=False,
                  max_epochs=2, callbacks=[fits])
    printed = capsys.readouterr().out
    assert fits.count == 4  # both trained again
    assert [(r["run"], r["epoch"]) for r in again.records] == [
        ("lr=0.1", 1), ("lr=0.1", 2), ("lr=0.5", 1), ("lr=0.5", 2)]
    assert "lr=0.1: max_epochs was 1, is 2 now: training it again" in printed
    assert "skipping" not in printed
    saved = json.loads((tmp_path / "runs.json").read_text())
    assert saved["records"] == again.records
    assert saved["definitions"]["lr=0.5"]["trainer"]["max_epochs"] == 2
    # the same definition once more: nothing to do
    third = sweep(dict(lr=[0.1, 0.5]), build_on(tiny_data), tmp_path, seed=0, board=False,
                  max_epochs=2, callbacks=[fits])
    assert fits.count == 4 and third.records == again.records
    assert "skipping 2 of 2 runs already finished" in capsys.readouterr().out


def test_a_sweep_on_other_data_or_another_seed_redoes_its_runs(tiny_data, fashion_root,
                                                               tmp_path, capsys):
    fits = Fits()
    sweep(dict(lr=[0.1]), build_on(tiny_data), tmp_path, seed=0, board=False, max_epochs=1,
          callbacks=[fits])
    smaller = d2lai.FashionMNISTData(batchsize=32, root=fashion_root, num_train=300)
    sweep(dict(lr=[0.1]), build_on(smaller), tmp_path, seed=0, board=False, max_epochs=1,
          callbacks=[fits])
    printed = capsys.readouterr().out
    assert fits.count == 2
    assert "data.batchsize was 64, is 32 now" in printed and "data.num_train was None, is " \
        "300 now" in printed
    sweep(dict(lr=[0.1]), build_on(smaller), tmp_path, seed=1, board=False, max_epochs=1,
          callbacks=[fits])
    assert fits.count == 3 and "seed was 0, is 1 now" in capsys.readouterr().out


def test_runs_recorded_without_a_definition_are_redone(tiny_data, tmp_path, capsys):
    fits = Fits()
    table = sweep(dict(lr=[0.1]), build_on(tiny_data), tmp_path, seed=0, board=False,
                  max_epochs=1, callbacks=[fits])
    RunTable(table.records).to_json(tmp_path / "runs.json")  # as an older version wrote it
    sweep(dict(lr=[0.1]), build_on(tiny_data), tmp_path, seed=0, board=False, max_epochs=1,
          callbacks=[fits])
    assert fits.count == 2
    assert "lr=0.1: no definition recorded: training it again" in capsys.readouterr().out


def test_the_exercises_redo_runs_whose_epochs_changed(fashion_root, tmp_path, capsys):
    out = tmp_path / "out"
    ex.main(["bias", "--data-root", str(fashion_root), "--out", str(out), *QUICK,
             "--epochs", "1"])
    capsys.readouterr()
    rows = ex.main(["bias", "--data-root", str(fashion_root), "--out", str(out), *QUICK,
                    "--epochs", "2"]).records
    assert "max_epochs was 1, is 2 now: training it again" in capsys.readouterr().out
    assert [r["epochs"] for r in rows] == [2, 2]
    saved = json.loads((out / "bias.json").read_text())
    assert saved["args"]["epochs"] == 2 and [r["epochs"] for r in saved["rows"]] == [2, 2]
    assert max(r["epoch"] for r in saved["records"]) == 2
    assert len(RunTable.from_csv(out / "bias" / "runs.csv")) == 4  # two epochs of two runs


# --- the exercises go on after Ctrl-C ----------------------------------------------------------

def test_the_exercises_go_on_after_ctrl_c_and_restart_starts_over(fashion_root, tmp_path,
                                                                  monkeypatch, capsys):
    armed, built = [True], []

    class StoppedLeNet(ex.LeNet):  # the second LeNet is the third run: Ctrl-C in it
        def __init__(self):
            super().__init__()
            built.append(self)
            self.stop = armed[0] and len(built) == 2

        def training_step(self, batch):
            if self.stop:
                raise KeyboardInterrupt
            return super().training_step(batch)

    monkeypatch.setattr(ex, "LeNet", StoppedLeNet)
    out = tmp_path / "out"
    argv = ["lr-sweep", "--data-root", str(fashion_root), "--out", str(out), *QUICK,
            "--epochs", "1", "--lrs", "0.1", "0.5"]
    ex.main(argv)
    first = capsys.readouterr().out
    assert "interrupted: the sweep stops here; run it again with the same out to go on" in first
    finished = RunTable.from_csv(out / "lr-sweep" / "runs.csv")
    assert finished.runs()[:2] == ["lr=0.1,variant=LeNet", "lr=0.1,variant=BLeNetConcise"]
    armed[0] = False
    rows = ex.main(argv).records  # as the message says: the same command again
    printed = capsys.readouterr().out
    assert "skipping 2 of 4 runs already finished" in printed
    assert "[1/4] lr=0.1,variant=LeNet: training" not in printed
    assert "[3/4] lr=0.5,variant=LeNet: training" in printed
    table = RunTable.from_csv(out / "lr-sweep" / "runs.csv")
    assert table.final().records[:2] == finished.final().records[:2]  # kept as they were
    assert len(rows) == 4 and len(table.runs()) == 4
    ex.main([*argv, "--restart"])
    printed = capsys.readouterr().out
    assert "[1/4] lr=0.1,variant=LeNet: training" in printed and "skipping" not in printed
    ex.main([*argv, "--resume"])  # the former flag: what happens anyway
    assert "skipping 4 of 4 runs already finished" in capsys.readouterr().out


# --- checkpoints -------------------------------------------------------------------------------

def _trainer(data, model=None, **kwargs):
    kwargs.setdefault("verbose", False)
    kwargs.setdefault("board", False)
    return d2lai.Trainer(model or TinyClassifier(), data, d2lai.Descent(0.1), **kwargs)


@pytest.mark.parametrize("other, named", [
    (dict(batchsize=16), "data.batchsize was 64 in the checkpoint, is 16 now"),
    (dict(batchsize=64, num_train=300), "data.num_train was None in the checkpoint, is 300 now"),
])
def test_a_checkpoint_resumed_on_other_data_is_refused(fashion_root, tmp_path, other, named):
    path = tmp_path / "run.pt"
    data = d2lai.FashionMNISTData(batchsize=64, root=fashion_root)
    _trainer(data, max_epochs=1, checkpoint=path, seed=0).fit()
    model = TinyClassifier()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    other = d2lai.FashionMNISTData(root=fashion_root, **other)
    with pytest.raises(ValueError, match=rf"checkpoint {path} is another run's: {named}"):
        _trainer(other, model, max_epochs=2, checkpoint=path, resume=True, seed=0).fit()
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    _, metrics = _trainer(data, max_epochs=2, checkpoint=path, resume=True, seed=0).fit()
    assert metrics.epochs == 2  # the same run, more epochs: goes on


def test_a_checkpoint_resumed_with_another_seed_or_clip_is_refused(tiny_data, tmp_path):
    path = tmp_path / "run.pt"
    _trainer(tiny_data, max_epochs=1, checkpoint=path, seed=0).fit()
    with pytest.raises(ValueError, match="seed was 0 in the checkpoint, is 1 now"):
        _trainer(tiny_data, max_epochs=2, checkpoint=path, resume=True, seed=1).fit()
    with pytest.raises(ValueError, match="gradient_clip_val was 0.0 in the checkpoint, is 1.0"):
        _trainer(tiny_data, max_epochs=2, checkpoint=path, resume=True, seed=0,
                 gradient_clip_val=1.0).fit()


class Tell(d2lai.Callback):
    def on_epoch_start(self, trainer):
        trainer.model.epoch = trainer.epoch


class Remember(d2lai.Callback):
    def __init__(self):
        self.states = {}

    def on_epoch_end(self, trainer, epoch, logs):
        self.states[epoch] = {k: v.clone() for k, v in trainer.model.state_dict().items()}


def test_a_resumed_run_keeps_its_early_stopping_patience_and_best_weights(tiny_data, tmp_path):
    script = [1.0, 2.0, 3.0, 4.0, 5.0]
    path, remember = tmp_path / "run.pt", Remember()
    stop = d2lai.EarlyStopping(patience=2, restore_best_weights=True)
    _, first = _trainer(tiny_data, Scripted(script), max_epochs=2, checkpoint=path, seed=0,
                        callbacks=[Tell(), stop, remember]).fit()
    assert not first.stopped_early and stop.wait == 1
    stop = d2lai.EarlyStopping(patience=2, restore_best_weights=True)  # a new process
    model, metrics = _trainer(tiny_data, Scripted(script), max_epochs=5, checkpoint=path,
                              resume=True, seed=0, callbacks=[Tell(), stop]).fit()
    assert metrics.stopped_early and metrics.epochs == 3  # two epochs without gain: 2 and 3
    assert stop.best == 1.0 and stop.best_epoch == 1 and metrics.epoch == 1
    for k, v in model.state_dict().items():  # the best weights, from before the resume
        assert torch.equal(v, remember.states[1][k]), k
