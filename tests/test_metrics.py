"""Metrics as objects: a reader adds a figure (top-5 accuracy, a torchmetrics F1, a family's own)
without touching the library, and it is everywhere a built-in figure is."""

import csv
import logging
import math

import pytest
import torch
import torch.nn.functional as F
from conftest import TinyClassifier
from torch import nn

import d2lai
from d2lai.data import AbstractData
from d2lai.metrics import FunctionMetric, Loss, Metric, MetricList, TopKAccuracy


def macro_f1(pred: torch.Tensor, y: torch.Tensor, classes: int) -> float:
    """By hand: the mean over the classes seen (predicted or true) of 2tp / (2tp + fp + fn)."""
    scores = []
    for c in range(classes):
        tp = int(((pred == c) & (y == c)).sum())
        wrong = int(((pred == c) != (y == c)).sum())
        if tp + wrong:
            scores.append(2 * tp / (2 * tp + wrong))
    return sum(scores) / len(scores)


def val_outputs(model, data) -> tuple[torch.Tensor, torch.Tensor]:
    """The model's outputs on the whole validation set, in evaluation mode, and the labels."""
    model.eval()
    with torch.no_grad():
        pairs = [(model(X), y) for X, y in data.val_dataloader()]
    return torch.cat([o for o, _ in pairs]), torch.cat([y for _, y in pairs])


def test_top5_and_a_torchmetrics_f1_are_everywhere_a_figure_is(tiny_data, tmp_path, caplog):
    torchmetrics = pytest.importorskip("torchmetrics")
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    caplog.set_level(logging.INFO, logger="d2lai")
    d2lai.seed(0)
    stop = d2lai.EarlyStopping("val_f1_score", patience=2)
    trainer = d2lai.Trainer(
        TinyClassifier(hidden=4), tiny_data, d2lai.Descent(0.05), max_epochs=3,
        metrics=[TopKAccuracy(5), torchmetrics.classification.MulticlassF1Score(10)],
        callbacks=[stop, d2lai.CSVLogger(tmp_path / "run.csv"),
                   d2lai.TensorBoardLogger(tmp_path / "tb")])
    model, metrics = trainer.fit()
    history = metrics.history
    names = [f"{s}_{m}" for s in ("train", "val") for m in ("top5_acc", "f1_score")]
    assert all(len(history[n]) == 3 for n in names)

    # the last epoch's validation figures, by hand from the trained model
    y_hat, y = val_outputs(model, tiny_data)
    top5 = float((y_hat.topk(5, -1).indices == y[:, None]).any(-1).float().mean())
    assert metrics.val_top5_acc == pytest.approx(top5, abs=1e-6)
    assert metrics.val_f1_score == pytest.approx(macro_f1(y_hat.argmax(-1), y, 10), abs=1e-6)
    assert 0 < metrics.val_f1_score < metrics.val_top5_acc <= 1

    # the epoch line, the board, the CSV file, a RunTable, TensorBoard
    line = next(x.getMessage() for x in caplog.records if x.getMessage().startswith("Epoch 3"))
    assert f"Val Top-5 Acc: {history['val_top5_acc'][-1]:.4f}, Val F1 Score: " \
           f"{history['val_f1_score'][-1]:.4f}" in line and "Train Top-5 Acc" in line
    panels = trainer.board.panels()
    assert {"train_top5_acc", "val_top5_acc"} <= set(panels["accuracy"])
    assert panels["f1 score"] == ["train_f1_score", "val_f1_score"]
    with open(tmp_path / "run.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [float(r["val_f1_score"]) for r in rows] == pytest.approx(history["val_f1_score"])
    table = d2lai.RunTable.from_csv(tmp_path / "run.csv")
    assert [r["val_top5_acc"] for r in table.records] == pytest.approx(history["val_top5_acc"])
    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    assert {"top5_acc/val", "f1_score/train", "f1_score/val"} <= set(events.Tags()["scalars"])
    assert [e.value for e in events.Scalars("f1_score/val")] == pytest.approx(
        history["val_f1_score"], rel=1e-6)

    # monitored: maximised, as torchmetrics says an F1 is; the best epoch of the F1
    assert stop.mode == "max" and stop.best == max(history["val_f1_score"])
    best = metrics.best("val_f1_score")
    assert best.epoch == history["val_f1_score"].index(max(history["val_f1_score"])) + 1

    # and again, on any data, at any time
    assert trainer.evaluate()["val_top5_acc"] == pytest.approx(top5, abs=1e-6)
    assert set(trainer.test()) >= {"test_loss", "test_acc", "test_top5_acc", "test_f1_score"}


def test_a_monitor_of_a_metric_not_measured_lists_the_ones_that_are(tiny_data):
    trainer = d2lai.Trainer(TinyClassifier(), tiny_data, d2lai.Descent(0.1), verbose=False,
                            metrics=[TopKAccuracy(3)], callbacks=[d2lai.EarlyStopping("val_f1")])
    with pytest.raises(ValueError, match="monitor='val_f1' is not among this fit's metrics; "
                                         "choose one of .*'val_top3_acc'"):
        trainer.fit()
    assert trainer.steps == 0


def test_a_plain_function_is_a_metric_averaged_over_the_samples(tiny_data):
    def says_zero(y_hat, y):
        return (y_hat.argmax(-1) == 0).float().mean()

    d2lai.seed(0)
    trainer = d2lai.Trainer(TinyClassifier(), tiny_data, d2lai.Descent(0.1), max_epochs=1,
                            verbose=False, board=False, metrics=says_zero)
    model, metrics = trainer.fit()
    y_hat, _ = val_outputs(model, tiny_data)
    expected = float((y_hat.argmax(-1) == 0).float().mean())
    assert metrics.val_says_zero == pytest.approx(expected, abs=1e-6)
    assert trainer.metric_list.mode("val_says_zero") == "min"  # a function says no direction


def test_what_is_not_a_metric_is_refused_with_what_to_do(tiny_data):
    make = lambda metrics: d2lai.Trainer(TinyClassifier(), tiny_data,  # noqa: E731
                                         d2lai.Descent(0.1), metrics=metrics)
    with pytest.raises(TypeError, match="a metric is a d2lai.metrics.Metric .* got str"):
        make(["top5"])
    with pytest.raises(ValueError, match="a metric from a lambda needs a name"):
        make([lambda y_hat, y: 0.0])
    with pytest.raises(ValueError, match="two metrics are named 'acc'"):
        make([FunctionMetric(lambda y_hat, y: 0.0, name="acc")])
    with pytest.raises(ValueError, match="k must be a positive integer, got 0"):
        TopKAccuracy(0)


def test_evaluate_takes_a_data_module_or_batches_and_says_so_for_a_split(tiny_data):
    trainer = d2lai.Trainer(TinyClassifier(), tiny_data, d2lai.Descent(0.1), verbose=False)
    with pytest.raises(TypeError, match=r"evaluate got a tuple of 2 tensors \(a split such "
                                        r"as data.val\), not batches of it"):
        trainer.evaluate(tiny_data.val)
    with pytest.raises(TypeError, match="evaluate takes a data module, a data loader or an "
                                        "iterable of"):
        trainer.evaluate(3)
    by_module = trainer.evaluate(tiny_data)
    by_loader = trainer.evaluate(tiny_data.val_dataloader())
    assert by_module == pytest.approx(by_loader)


def test_a_callback_reads_the_outputs_of_each_batch_from_the_trainer(tiny_data):
    class Seen(d2lai.Callback):
        def __init__(self):
            self.train, self.val = [], []

        def on_loss(self, trainer, batch, loss):
            self.train.append(trainer.outputs.shape)

        def on_validation_batch_end(self, trainer, batch, out):
            self.val.append(bool(torch.allclose(trainer.model.loss(trainer.outputs, batch[-1]),
                                                out[0])))

    seen = Seen()
    d2lai.Trainer(TinyClassifier(), tiny_data, d2lai.Descent(0.1), max_epochs=1, verbose=False,
                  board=False, callbacks=[seen]).fit()
    assert seen.train[0] == (64, 10) and len(seen.train) == len(tiny_data.train_dataloader())
    assert seen.val and all(seen.val)



def test_the_outputs_a_callback_reads_are_out_of_the_graph_and_the_model_still_learns(tiny_data):
    """Detached: a compiled step whose outputs left it still in the graph paid for their
    gradient in backward; the loss is differentiated as before."""
    class Seen(d2lai.Callback):
        grads = []

        def on_loss(self, trainer, batch, loss):
            self.grads.append(trainer.outputs.requires_grad or trainer.outputs.grad_fn is not None)

    seen = Seen()
    model = TinyClassifier()
    before = [p.detach().clone() for p in model.parameters()]
    d2lai.Trainer(model, tiny_data, d2lai.Descent(0.1), max_steps=2, verbose=False,
                  board=False, callbacks=[seen]).fit()
    assert seen.grads == [False, False]
    assert any(not torch.equal(b, p) for b, p in zip(before, model.parameters(), strict=True))


def test_outputs_of_several_parts_are_detached_part_by_part():
    from d2lai.trainer import detached

    w = torch.ones(2, requires_grad=True)
    out = detached((w * 2, [w * 3, {"h": w * 4}], "kept"))
    assert not out[0].requires_grad and not out[1][0].requires_grad
    assert not out[1][1]["h"].requires_grad and out[2] == "kept"
    assert torch.equal(out[1][1]["h"], torch.full((2,), 4.0))

# --- a family of one's own, in one file ---------------------------------------------------------

class ColumnAbsError(Metric):
    """The mean absolute error of one output column."""

    panel = "absolute error"

    def __init__(self, column: int, name: str):
        self.column, self.name = column, name

    def batch(self, outputs, y, model, loss, reported):
        return (outputs[:, self.column] - y[:, self.column]).abs().mean()


class TwoOutputRegression(d2lai.AbstractModel):
    """Two outputs against two targets: the mean squared error, and each column's error."""

    METRICS = (Loss(), ColumnAbsError(0, "mae_sum"), ColumnAbsError(1, "mae_first"))

    def __init__(self):
        super().__init__()
        self.net = nn.Linear(3, 2)

    def loss(self, y_hat, y):
        return F.mse_loss(y_hat, y)


class PairData(AbstractData):
    def __init__(self):
        X = torch.randn(200, 3, generator=torch.Generator().manual_seed(0))
        Y = torch.stack([X.sum(1), X[:, 0]], 1)
        self.train, self.val, self.batchsize = (X[:150], Y[:150]), (X[150:], Y[150:]), 50


def test_a_two_output_regression_family_of_ones_own_fits_with_no_loop_edit(caplog):
    caplog.set_level(logging.INFO, logger="d2lai")
    d2lai.seed(0)
    data = PairData()
    trainer = d2lai.Trainer(TwoOutputRegression(), data, d2lai.Descent(0.3), max_epochs=20)
    model, metrics = trainer.fit()
    X, Y = data.val
    with torch.no_grad():
        error = (model(X) - Y).abs().mean(0)
    assert metrics.val_mae_sum == pytest.approx(float(error[0]), abs=1e-6)
    assert metrics.val_mae_first == pytest.approx(float(error[1]), abs=1e-6)
    assert metrics.val_mae_sum < 0.05 and metrics.val_acc is None
    assert list(trainer.history) == ["train_loss", "train_mae_sum", "train_mae_first",
                                     "val_loss", "val_mae_sum", "val_mae_first"]
    assert "Val Mae Sum: " in caplog.text and "Best Val Loss at epoch" in caplog.text
    assert trainer.board.panels()["absolute error"] == [
        "train_mae_sum", "train_mae_first", "val_mae_sum", "val_mae_first"]


# --- the list itself ----------------------------------------------------------------------------

def test_a_metric_list_titles_draws_and_ranks_every_figure():
    from d2lai.metrics import KNOWN

    fit = MetricList([*d2lai.AbstractClassifier.METRICS, TopKAccuracy(5)])
    assert fit.keys() == ["train_loss", "train_acc", "train_top5_acc", "val_loss", "val_acc",
                          "val_top5_acc"]
    assert [fit.label(k) for k in ("val_top5_acc", "train_loss", "lr", "val_bleu")] == [
        "Val Top-5 Acc", "Train Loss", "LR", "Val Bleu"]
    assert [fit.tag(k) for k in ("val_acc", "val_top5_acc", "lr")] == [
        "accuracy/val", "top5_acc/val", "lr"]
    assert fit.mode("val_top5_acc") == "max" and fit.mode("val_loss") == "min"
    assert fit.default_monitor({"val_loss": 1, "val_acc": 0.5}) == "val_acc"
    assert KNOWN.default_monitor({"train_loss": 1, "val_loss": 1}) == "val_loss"
    assert MetricList([Loss()]).derive({"train_loss": 1.0}) == {}
    lm = MetricList(d2lai.AbstractRNNClassifier.METRICS)
    assert lm.derive({"train_loss": 1.0, "val_loss": 2.0}) == pytest.approx(
        {"train_ppl": math.e, "val_ppl": math.exp(2)})


def test_the_metric_cost_benchmark_times_each_set_beside_a_step(tmp_path, capsys):
    pytest.importorskip("torchmetrics")
    from bench.metric_cost import main

    report = main(["--batches", "3", "--rounds", "1", "--steps", "2", "--json",
                   str(tmp_path / "cost.json")])
    rows = report["metrics"]
    assert list(rows) == ["before: two in-place sums", "family (loss, accuracy)",
                          "family + top-5", "family + top-5 + torchmetrics F1"]
    assert all(r["us_per_batch"] > 0 and r["share_of_step"] == pytest.approx(
        r["us_per_batch"] / report["step_us"]) for r in rows.values())
    assert (tmp_path / "cost.json").is_file() and "us/batch" in capsys.readouterr().out


def test_the_readmes_add_a_metric_section_is_under_15_lines_of_code():
    """The README shows adding metrics in under 15 lines of code, and the code it shows is
    the code the tests above run (a top-5 accuracy, a torchmetrics F1, a plain function)."""
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    section = re.search(r"^## Add a metric\n(.*?)(?=^## |\Z)", readme, re.M | re.S)
    assert section, "README.md has no '## Add a metric' section"
    code = re.findall(r"```python\n(.*?)```", section.group(1), re.S)
    lines = [ln for block in code for ln in block.splitlines() if ln.strip()]
    assert 0 < len(lines) < 15, lines
    assert "TopKAccuracy(5)" in section.group(1) and "MulticlassF1Score" in section.group(1)
    compile("\n".join(code), "README.md", "exec")  # the code shown is valid Python


def test_outputs_are_kept_only_for_the_passes_whose_metrics_or_callbacks_read_them(tm_root):
    """A language model's training pass measures its loss alone: its outputs are not kept
    (outputs leaving a compiled step change what it fuses) unless a callback reads them; its
    validation accuracy reads them. No forward hook is left on the model."""
    class Quiet(d2lai.Callback):
        reads_outputs = False

        def __init__(self):
            self.train, self.val = [], []

        def on_loss(self, trainer, batch, loss):
            self.train.append(trainer.outputs)

        def on_validation_batch_end(self, trainer, batch, out):
            self.val.append(trainer.outputs)

    class Reader(d2lai.Callback):
        def __init__(self):
            self.train = []

        def on_loss(self, trainer, batch, loss):
            self.train.append(trainer.outputs)

    data = d2lai.TimeMachine(16, 8, num_train=64, num_val=32, root=tm_root)
    V = len(data.vocab)

    def fit(*callbacks):
        model = d2lai.RNNLMScratch(d2lai.RNNScratch(V, 8), V)
        trainer = d2lai.Trainer(model, data, d2lai.Descent(1.0), max_epochs=1, verbose=False,
                                board=False, callbacks=list(callbacks))
        trainer.fit()
        trainer.evaluate()
        assert not model._forward_hooks
        return model

    quiet = Quiet()
    fit(quiet)
    assert len(quiet.train) == 4 and all(o is None for o in quiet.train)
    assert len(quiet.val) == 2 and all(o.shape == (16, 8, V) for o in quiet.val)
    quiet, reader = Quiet(), Reader()
    fit(quiet, reader)
    assert len(reader.train) == 4 and all(o.shape == (16, 8, V) for o in reader.train)
