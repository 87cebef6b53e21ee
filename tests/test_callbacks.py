"""Callbacks: EarlyStopping with Keras's semantics, stopping a fit, train accuracy, the board."""

import math
from types import SimpleNamespace

import pytest
import torch
from conftest import Scripted, TinyClassifier
from torch import nn

import d2lai
from d2lai.trainer import Metrics


def _run(stopper, values, monitor="val_loss"):
    """Feed `values` of `monitor` epoch by epoch; the epoch it stopped at (0: never)."""
    trainer = SimpleNamespace(model=nn.Linear(1, 1), should_stop=False)
    stopper.on_fit_start(trainer)
    for epoch, value in enumerate(values, start=1):
        stopper.on_epoch_end(trainer, epoch, {monitor: value, "train_loss": 1.0})
        if trainer.should_stop:
            return epoch
    return 0


@pytest.mark.parametrize("kwargs, values, stopped, best", [
    ({}, [1.0, 0.9, 0.95, 0.5], 3, 2),                                  # patience 0
    ({"patience": 2}, [1.0, 1.1, 1.2, 0.5], 3, 1),                       # two epochs without
    ({"patience": 2}, [1.0, 1.1, 0.9, 1.0, 0.8], 0, 5),                  # the wait restarts
    ({"min_delta": 0.1}, [1.0, 0.95, 0.5], 2, 1),                        # too small a gain
    ({"min_delta": -0.1}, [1.0, 0.85, 0.8], 3, 2),                       # |min_delta|
    ({"patience": 2, "baseline": 0.5}, [0.9, 0.8, 0.85], 3, 2),          # baseline not beaten
    ({"patience": 2}, [0.9, 0.8, 0.85], 0, 2),                           # ... without one
    ({"start_from_epoch": 2}, [1.0, 2.0, 3.0, 4.0], 4, 3),               # first two not watched
    ({"mode": "max"}, [0.5, 0.6, 0.55], 3, 2),
])
def test_early_stopping_semantics(kwargs, values, stopped, best):
    stopper = d2lai.EarlyStopping(**kwargs)
    assert _run(stopper, values) == stopped
    assert stopper.best_epoch == best and stopper.stopped_epoch == stopped


def test_auto_mode_maximises_accuracy_and_minimises_losses():
    assert d2lai.EarlyStopping("val_acc").mode == "max"
    assert d2lai.EarlyStopping("val_loss").mode == "min"
    assert _run(d2lai.EarlyStopping("val_acc"), [0.5, 0.6, 0.55], "val_acc") == 3


@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_a_non_finite_monitored_value_stops_at_once(value):
    stopper = d2lai.EarlyStopping(patience=5)
    assert _run(stopper, [1.0, 0.9, value, 0.1]) == 3 and stopper.best == 0.9


def test_an_unknown_monitor_lists_the_available_names(tiny_data):
    trainer = d2lai.Trainer(TinyClassifier(), tiny_data, d2lai.Descent(0.1), verbose=False,
                            callbacks=[d2lai.EarlyStopping("val_accuracy")])
    with pytest.raises(ValueError, match="'val_accuracy' is not among .*'val_loss', 'val_acc'"):
        trainer.fit()


@pytest.mark.parametrize("kwargs, match", [
    ({"patience": -1}, "patience"), ({"patience": 1.5}, "patience"),
    ({"mode": "up"}, "mode"), ({"min_delta": math.nan}, "min_delta"),
    ({"start_from_epoch": -2}, "start_from_epoch"), ({"monitor": ""}, "monitor"),
    ({"baseline": "0.5"}, "baseline"),
])
def test_bad_early_stopping_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        d2lai.EarlyStopping(**kwargs)


class Remember(d2lai.Callback):
    """The weights at the end of each epoch, and the epoch when a fit starts."""

    def __init__(self):
        self.states = {}

    def on_epoch_end(self, trainer, epoch, logs):
        self.states[epoch] = {k: v.clone() for k, v in trainer.model.state_dict().items()}
        trainer.model.epoch = epoch  # the next validation reads script[epoch]


def _fit(model, data, callbacks, max_epochs=5):
    trainer = d2lai.Trainer(model, data, d2lai.Descent(0.1), max_epochs=max_epochs,
                            verbose=False, callbacks=callbacks)
    return trainer, *trainer.fit()


@pytest.mark.parametrize("patience, stopped", [(2, True), (10, False)])
def test_best_weights_are_restored_whether_or_not_it_stopped_early(tiny_data, patience, stopped):
    remember = Remember()
    stopper = d2lai.EarlyStopping(patience=patience, restore_best_weights=True)
    trainer, model, metrics = _fit(Scripted([3, 1, 2, 4, 5]), tiny_data, [remember, stopper])
    assert metrics.stopped_early == stopped and metrics.epochs == (4 if stopped else 5)
    assert stopper.best_epoch == 2 and metrics.epoch == 2 and metrics.val_loss == 1
    for k, v in model.state_dict().items():
        assert torch.equal(v, remember.states[2][k]), k
    assert not torch.equal(remember.states[2]["net.1.weight"], remember.states[4]["net.1.weight"])


def test_one_early_stopping_object_serves_several_fits(tiny_data):
    stopper = d2lai.EarlyStopping(patience=1)
    _, _, first = _fit(Scripted([0.1, 0.2, 0.3, 0.4]), tiny_data, [Remember(), stopper])
    assert first.epochs == 2 and stopper.best == pytest.approx(0.1)
    _, _, second = _fit(Scripted([0.5, 0.4, 0.3, 0.2]), tiny_data, [Remember(), stopper],
                        max_epochs=4)
    assert second.epochs == 4 and not second.stopped_early  # 0.5 is not compared with 0.1
    assert stopper.best == pytest.approx(0.2) and stopper.best_epoch == 4


def test_a_callback_can_stop_a_fit_and_sees_each_epoch(tiny_data):
    class StopAtTwo(d2lai.Callback):
        def __init__(self):
            self.calls = []

        def on_fit_start(self, trainer):
            self.calls.append("start")

        def on_epoch_end(self, trainer, epoch, logs):
            self.calls.append((epoch, sorted(logs)))
            trainer.should_stop = epoch == 2

        def on_fit_end(self, trainer, metrics):
            self.calls.append(("end", metrics.epochs))

    cb = StopAtTwo()
    _, _, metrics = _fit(TinyClassifier(), tiny_data, [cb])
    names = ["train_acc", "train_loss", "train_s", "val_acc", "val_loss", "val_s"]
    assert cb.calls == ["start", (1, names), (2, names), ("end", 2)]
    assert metrics.stopped_early and metrics.epochs == 2


def test_a_fit_whose_start_fails_ends_the_callbacks_it_started_and_no_other(tiny_data):
    """on_fit_start and on_fit_end go through the trainer's one dispatcher, in order; a start
    that raises leaves the callbacks after it unstarted, so their fit does not end either."""
    calls = []

    class Log(d2lai.Callback):
        def __init__(self, name, order, fail=False):
            self.name, self.order, self.fail = name, order, fail

        def on_fit_start(self, trainer):
            calls.append(("start", self.name))
            if self.fail:
                raise RuntimeError("cannot start")

        def on_fit_end(self, trainer, metrics):
            calls.append(("end", self.name))

    with pytest.raises(RuntimeError, match="cannot start"):
        _fit(TinyClassifier(), tiny_data, [Log("c", 70), Log("a", 50), Log("b", 60, fail=True)])
    assert calls == [("start", "a"), ("start", "b"), ("end", "a")]
    calls.clear()
    _fit(TinyClassifier(), tiny_data, [Log("c", 70), Log("a", 50)], max_epochs=1)
    assert calls == [("start", "a"), ("start", "c"), ("end", "a"), ("end", "c")]


def test_the_trainers_own_callbacks_follow_its_arguments(tiny_data, tmp_path):
    from d2lai.callbacks import (
        BatchChecks,
        Checkpoint,
        DivergenceWatch,
        DrawBoard,
        EpochLog,
        ProgressBar,
        SeededShuffle,
        ValidationBatches,
    )
    from d2lai.precision import Precision

    def kinds(**kwargs):
        trainer = d2lai.Trainer(TinyClassifier(), tiny_data, d2lai.Descent(0.1), **kwargs)
        return [type(c) for c in trainer.callbacks]

    assert set(kinds(verbose=False, board=False)) == {BatchChecks, Precision, DivergenceWatch,
                                                      EpochLog, SeededShuffle, ValidationBatches}
    everything = kinds(checkpoint=tmp_path / "run.pt", board_path=tmp_path / "board.png")
    assert {ProgressBar, Checkpoint, DrawBoard} <= set(everything)
    assert len(everything) == 9


def test_train_accuracy_comes_from_the_training_passes(tiny_data):
    """With lr=0 the weights stay put; the accuracy of each training batch can be redone."""
    d2lai.seed(2)
    model = TinyClassifier()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    trainer = d2lai.Trainer(model, tiny_data, d2lai.Descent(0.0), max_epochs=1, verbose=False,
                            seed=3)
    _, metrics = trainer.fit()
    check = TinyClassifier()
    check.load_state_dict(state)
    check.train()
    d2lai.seed(3)
    correct = sum(int((check(X).argmax(1) == y).sum()) for X, y in tiny_data.train_dataloader())
    assert metrics.train_acc == pytest.approx(correct / 600, abs=1e-9)
    assert trainer.history["train_acc"] == [metrics.train_acc]


def test_the_board_marks_the_best_epoch(tiny_data):
    trainer, _, metrics = _fit(Scripted([3, 1, 2]), tiny_data, [Remember()], max_epochs=3)
    best = max(range(3), key=lambda i: metrics.history["val_acc"][i]) + 1
    assert f"at epoch {best}" in trainer.board.figure().axes[0].get_title()
    trainer, _, _ = _fit(Scripted([3, 1, 2]), tiny_data,
                         [Remember(), d2lai.EarlyStopping(patience=5)], max_epochs=3)
    assert "best val loss 1.0000 at epoch 2" in trainer.board.figure().axes[0].get_title()


def test_metrics_of_a_history():
    history = {"train_loss": [3.0, 2.0], "val_loss": [2.5, 1.5], "val_acc": [0.5, 0.7]}
    m = Metrics.of(history, epochs=2, steps=20)
    assert (m.epoch, m.val_loss, m.val_acc, m.train_acc) == (2, 1.5, 0.7, None)
    assert m.at_epoch(1).val_acc == 0.5 and m.history == history
