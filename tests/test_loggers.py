"""Loggers and schedulers for a single Trainer: CSVLogger, TensorBoardLogger, LRScheduler; and
the trainer's board, its panels, labels and ticks read back from matplotlib's objects."""

import csv
import math

import pytest
import torch
from conftest import TinyClassifier
from PIL import Image
from torch.optim.lr_scheduler import LambdaLR, ReduceLROnPlateau, StepLR

import d2lai

pytestmark = pytest.mark.usefixtures("one_thread")


def _fit(data, callbacks, epochs=3, **kwargs):
    kwargs = {"verbose": False, "board": False, **kwargs}
    trainer = d2lai.Trainer(TinyClassifier(), data, d2lai.Descent(0.1), max_epochs=epochs,
                            callbacks=callbacks, **kwargs)
    trainer.fit()
    return trainer


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_csv_logger_writes_a_row_an_epoch_and_goes_on_with_the_trainer(tiny_data, tmp_path):
    path = tmp_path / "logs" / "run.csv"
    log = d2lai.CSVLogger(path)
    trainer = _fit(tiny_data, [log], epochs=2)
    rows = _rows(path)
    assert list(rows[0]) == ["epoch", "train_loss", "train_acc", "val_loss", "val_acc",
                             "train_s", "val_s"]
    for name, values in trainer.history.items():
        assert [float(r[name]) for r in rows] == pytest.approx(values, rel=1e-12)
    assert [float(r["train_s"]) for r in rows] == pytest.approx(trainer.timings["train_s"])
    trainer.fit()  # a trainer that goes on: its file goes on
    assert [int(r["epoch"]) for r in _rows(path)] == [1, 2, 3, 4]
    _fit(tiny_data, [log], epochs=1)  # a new run with the same logger: the file starts afresh
    assert [int(r["epoch"]) for r in _rows(path)] == [1]
    _fit(tiny_data, [d2lai.CSVLogger(path, append=True)], epochs=1)
    assert [int(r["epoch"]) for r in _rows(path)] == [1, 1]
    table = d2lai.RunTable.from_csv(path)
    assert table.records[0]["epoch"] == 1 and isinstance(table.records[0]["val_acc"], float)


def test_csv_logger_refuses_a_folder_before_training(tiny_data, tmp_path):
    with pytest.raises(IsADirectoryError, match="CSV file .* is a folder"):
        _fit(tiny_data, [d2lai.CSVLogger(tmp_path)])


def test_tensorboard_logger_writes_each_epochs_figures(tiny_data, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logdir = tmp_path / "tb"
    trainer = _fit(tiny_data, [d2lai.TensorBoardLogger(logdir, every_n_steps=5),
                               d2lai.LRScheduler(lambda opt: StepLR(opt, 1, gamma=0.5))])
    events = EventAccumulator(str(logdir))
    events.Reload()
    assert set(events.Tags()["scalars"]) == {"loss/train", "loss/val", "accuracy/train",
                                             "accuracy/val", "lr", "seconds/epoch", "loss/step"}
    for tag, name in (("loss/train", "train_loss"), ("accuracy/val", "val_acc"), ("lr", "lr")):
        got = [(e.step, e.value) for e in events.Scalars(tag)]
        assert got == [(i + 1, pytest.approx(v, rel=1e-6))
                       for i, v in enumerate(trainer.history[name])]
    assert [e.step for e in events.Scalars("loss/step")] == [5, 10, 15, 20, 25, 30]


def test_tensorboard_logger_without_the_package_says_how_to_get_it(tiny_data, tmp_path,
                                                                   monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    with pytest.raises(ImportError, match=r'pip install "d2lai\[tensorboard\]"'):
        _fit(tiny_data, [d2lai.TensorBoardLogger(tmp_path / "tb")])


def test_lr_scheduler_steps_per_epoch_and_records_the_rate(tiny_data):
    trainer = _fit(tiny_data, [d2lai.LRScheduler(lambda opt: StepLR(opt, 2, gamma=0.1))],
                   epochs=5)
    assert trainer.history["lr"] == pytest.approx([0.1, 0.1, 0.01, 0.01, 0.001])
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(1e-3)  # stepped 5 times


def test_lr_scheduler_steps_per_batch(tiny_data):
    steps = []

    class Seen(d2lai.Callback):
        def on_train_batch_start(self, trainer, batch):
            steps.append(trainer.optimizer.param_groups[0]["lr"])

    scheduler = d2lai.LRScheduler(lambda opt: LambdaLR(opt, lambda k: 1 / (1 + k)), "step")
    _fit(tiny_data, [scheduler, Seen()], epochs=2)
    assert steps == pytest.approx([0.1 / (1 + k) for k in range(20)])  # 10 batches an epoch


def test_reduce_on_plateau_watches_the_monitored_figure(tiny_data):
    plateau = d2lai.LRScheduler(lambda opt: ReduceLROnPlateau(opt, mode="max", patience=0),
                                monitor="train_loss")  # "max" of a falling loss: a plateau
    trainer = _fit(tiny_data, [plateau], epochs=3)
    # epoch 1 sets the best; epoch 2's lower loss is no improvement: cut before epoch 3
    assert trainer.history["lr"] == pytest.approx([0.1, 0.1, 0.01])


def test_lr_scheduler_refuses_what_cannot_work(tiny_data):
    other = torch.optim.SGD(TinyClassifier().parameters(), lr=0.1)
    with pytest.raises(ValueError, match="steps another optimiser than the trainer's"):
        _fit(tiny_data, [d2lai.LRScheduler(StepLR(other, 1))])
    with pytest.raises(ValueError, match="interval must be one of"):
        d2lai.LRScheduler(lambda opt: StepLR(opt, 1), "batch")
    with pytest.raises(TypeError, match="function of the optimiser"):
        d2lai.LRScheduler(0.1)
    with pytest.raises(ValueError, match="monitor='val_bleu' is not among"):
        _fit(tiny_data, [d2lai.LRScheduler(lambda opt: ReduceLROnPlateau(opt),
                                           monitor="val_bleu")])
    model = TinyClassifier()  # a scheduler built on the optimiser the trainer is given: fine
    opt = torch.optim.SGD(model.parameters(), lr=0.2)
    trainer = d2lai.Trainer(model, tiny_data, opt, max_epochs=2, verbose=False, board=False,
                            callbacks=[d2lai.LRScheduler(StepLR(opt, 1, gamma=0.5))])
    trainer.fit()
    assert trainer.history["lr"] == pytest.approx([0.2, 0.1])


# --- the trainer's board --------------------------------------------------------------------

def _ticks(ax, axis="y"):
    """The tick labels matplotlib draws inside the axis's limits."""
    ax.figure.canvas.draw()
    low, high = sorted(ax.get_ylim() if axis == "y" else ax.get_xlim())
    ticks = ax.yaxis.get_major_ticks() if axis == "y" else ax.xaxis.get_major_ticks()
    return [t.label1.get_text() for t in ticks
            if t.label1.get_visible() and t.label1.get_text()
            and low <= t.get_loc() <= high]


@pytest.mark.parametrize("yscale", ["log10", "identity"])
def test_board_has_labelled_loss_and_accuracy_panels_with_enough_ticks(tiny_data, tmp_path,
                                                                       yscale):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    trainer = _fit(tiny_data, [], epochs=4, board=True, board_yscale=yscale,
                   board_path=tmp_path / "board.png")
    fig = trainer.board.figure()
    FigureCanvasAgg(fig)
    loss, acc = fig.axes
    assert (loss.get_ylabel(), acc.get_ylabel(), acc.get_xlabel()) == ("loss", "accuracy",
                                                                      "epoch")
    assert loss.get_yscale() == ("log" if yscale == "log10" else "linear")
    assert acc.get_yscale() == "linear"  # accuracies on a linear axis whatever the loss's
    assert [ln.get_label() for ln in loss.get_lines()] == ["train_loss", "val_loss"]
    assert [ln.get_label() for ln in acc.get_lines() if ln.get_gid() != "best"] == [
        "train_acc", "val_acc"]
    labels = _ticks(loss)
    assert len(labels) >= 4, labels  # the former single log axis had two
    assert all(float(t) > 0 for t in labels)  # plain numbers, no 10^-1 forms
    assert len(_ticks(acc)) >= 4 and _ticks(acc, "x") == ["1", "2", "3", "4"]
    assert "best val acc" in loss.get_title()
    with Image.open(tmp_path / "board.png") as im:
        assert im.size[1] > im.size[0]  # two panels stacked: taller than wide


def test_a_log_loss_axis_over_a_narrow_range_still_has_several_ticks():
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from d2lai.board import metric_panel

    board = d2lai.ProgressBoard("epoch", yscale="log10", panel_of=metric_panel)
    board.draw([1, 2, 3], [0.45, 0.41, 0.39], "train_loss")
    board.draw([1, 2, 3], [0.85, 0.87, 0.88], "val_acc")
    board.draw([1, 2, 3], [0.1, 0.05, 0.01], "lr")
    fig = board.figure()
    FigureCanvasAgg(fig)
    assert [ax.get_ylabel() for ax in fig.axes] == ["loss", "accuracy", "learning rate"]
    assert len(_ticks(fig.axes[0])) >= 4
    assert len(_ticks(fig.axes[2])) >= 3  # two decades: 1, 2 and 5 of each
    assert [metric_panel(n) for n in ("val_ppl", "train_acc", "lr", "val_bleu")] == [
        "perplexity", "accuracy", "learning rate", "bleu"]
    assert math.isclose(fig.get_figheight(), 1.2 + 2.6 * 3)
