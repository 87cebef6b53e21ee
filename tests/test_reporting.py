"""What a fit reports: the epoch line and its figures, the best epoch beside the last (in the
log, Metrics, RunTable.final and the sweep's table), evaluate/test, per-group weight decay."""

import logging
import math
import re

import pytest
import torch
from conftest import Scripted, TinyClassifier

import d2lai
from d2lai.callbacks.epoch_log import format_metrics
from d2lai.runs import RunTable
from d2lai.trainer import Metrics

pytestmark = pytest.mark.usefixtures("one_thread")


class Count(d2lai.Callback):
    def on_epoch_end(self, trainer, epoch, logs):
        trainer.model.epoch = epoch


def _lines(caplog):
    return [r.getMessage() for r in caplog.records if r.name == "d2lai"]


def test_epoch_lines_number_the_epochs_time_them_and_give_training_accuracy(tiny_data, caplog):
    caplog.set_level(logging.INFO, logger="d2lai")
    trainer = d2lai.Trainer(Scripted(accs=[0.5, 0.8, 0.6]), tiny_data, d2lai.Descent(0.1),
                            max_epochs=3, board=False, callbacks=[Count()])
    _, metrics = trainer.fit()
    h, t = metrics.history, trainer.timings
    epochs = [line for line in _lines(caplog) if line.startswith("Epoch ")]
    for e, line in enumerate(epochs):
        seconds = t["train_s"][e] + t["val_s"][e]
        assert line == (f"Epoch {e + 1}/3 · {seconds:.1f} s · Train Loss: "
                        f"{h['train_loss'][e]:.4f}, Train Acc: {h['train_acc'][e]:.4f}, "
                        f"Val Loss: {h['val_loss'][e]:.4f}, Val Acc: {h['val_acc'][e]:.4f}")
    # the final line: the best epoch (by val acc) and its figures, beside the last above it
    best = _lines(caplog)[-1]
    assert best == (f"Best Val Acc at epoch 2/3 · Train Loss: {h['train_loss'][1]:.4f}, "
                    f"Train Acc: {h['train_acc'][1]:.4f}, Val Loss: {h['val_loss'][1]:.4f}, "
                    f"Val Acc: 0.8000")
    assert len(epochs) == 3


def test_the_best_line_follows_early_stoppings_monitor_and_says_when_it_is_the_last(
        tiny_data, caplog):
    caplog.set_level(logging.INFO, logger="d2lai")
    stop = d2lai.EarlyStopping("val_loss", patience=10)
    d2lai.Trainer(TinyClassifier(), tiny_data, d2lai.Descent(0.1), max_epochs=2, board=False,
                  callbacks=[stop]).fit()
    assert re.fullmatch(r"Best Val Loss at epoch \d/2( \(the last\))? · Train Loss: .*",
                        _lines(caplog)[-1])
    caplog.clear()
    d2lai.Trainer(TinyClassifier(), tiny_data, d2lai.Descent(0.1), max_epochs=1,
                  board=False).fit()
    assert not any(line.startswith("Best") for line in _lines(caplog))  # one epoch: no best


def test_a_familys_own_figures_and_a_rate_are_in_the_line_small_values_readable():
    logs = {"train_loss": 1.5, "val_loss": 2.0, "train_ppl": math.exp(1.5),
            "val_ppl": math.exp(2.0), "lr": 3e-5, "train_s": 1.0, "val_s": 0.5, "val_bleu": 0.25}
    assert format_metrics(logs) == ("Train Loss: 1.5000, Train Ppl: 4.4817, Val Loss: 2.0000, "
                                    "Val Ppl: 7.3891, LR: 3e-05, Val Bleu: 0.2500")


def test_a_language_models_line_keeps_its_perplexity(caplog):
    caplog.set_level(logging.INFO, logger="d2lai")
    d2lai.seed(0)

    class Toy(d2lai.AbstractModel):
        def __init__(self):
            super().__init__()
            self.net = torch.nn.Linear(2, 1)

        def loss(self, y_hat, y):
            return ((y_hat - y) ** 2).mean() / 2

        def epoch_metrics(self, logs):
            return {"train_ppl": math.exp(logs["train_loss"]), "val_ppl": math.exp(
                logs["val_loss"])}

    regression = d2lai.SyntheticRegressionData(w=[2.0, -3.4], b=4.2, batchsize=32)
    trainer = d2lai.Trainer(Toy(), regression, d2lai.Descent(0.03), max_epochs=2, board=False)
    _, metrics = trainer.fit()
    line = next(x for x in _lines(caplog) if x.startswith("Epoch 2/2"))
    assert line.endswith(f"Train Loss: {metrics.history['train_loss'][1]:.4f}, Train Ppl: "
                         f"{metrics.history['train_ppl'][1]:.4f}, Val Loss: "
                         f"{metrics.history['val_loss'][1]:.4f}, Val Ppl: "
                         f"{metrics.history['val_ppl'][1]:.4f}")
    assert "Val Acc" not in line


def test_metrics_best_picks_the_monitored_figures_best_epoch():
    history = {"train_loss": [3.0, 2.0, 1.0, 0.5], "val_loss": [2.5, 1.5, float("nan"), 1.7],
               "val_acc": [0.5, 0.88, 0.88, 0.76]}
    last = Metrics.of(history, epochs=4, steps=40)
    best = last.best()
    assert (best.monitor, best.epoch, best.val_acc, best.val_loss) == ("val_acc", 2, 0.88, 1.5)
    assert (last.epoch, last.val_acc) == (4, 0.76)  # untouched: best() is a copy
    low = last.best("val_loss")  # minimised; the NaN of epoch 3 passed over
    assert (low.epoch, low.val_loss, low.train_loss) == (2, 1.5, 2.0)
    assert last.best("train_loss", mode="max").epoch == 1
    assert Metrics.of({"train_loss": [1.0, 0.5]}, 2, 2).best().monitor == "train_loss"
    assert Metrics.of({}, 0, 0).best().epoch == 0


def test_final_puts_the_best_epoch_beside_the_last():
    records = [{"run": "a", "epoch": e, "train_loss": tl, "train_acc": None, "val_loss": vl,
                "val_acc": va, "status": "ok"}
               for e, tl, vl, va in [(1, 2.0, 1.0, 0.70), (2, 1.0, 0.5, 0.88),
                                     (3, 0.5, 0.9, 0.76)]]
    records += [{"run": "b", "epoch": 1, "train_loss": None, "train_acc": None,
                 "val_loss": None, "val_acc": None, "status": "diverged"}]
    final = RunTable(records).final().records
    assert final[0]["epoch"] == 3 and final[0]["val_acc"] == 0.76
    assert (final[0]["best_epoch"], final[0]["best_val_acc"], final[0]["best_val_loss"],
            final[0]["best_train_loss"]) == (2, 0.88, 0.5, 1.0)
    assert final[1]["best_epoch"] is None and final[1]["best_val_acc"] is None
    by_loss = RunTable(records).final("val_loss").records[0]
    assert (by_loss["best_epoch"], by_loss["best_val_loss"]) == (2, 0.5)
    text = RunTable(records).final().format(["run", "epoch", "val_acc", "best_epoch",
                                             "best_val_acc"])
    assert text.splitlines()[1].split() == ["a", "3", "0.7600", "2", "0.8800"]


def test_sweep_returns_the_trained_models_and_their_metrics(tiny_data):
    table = d2lai.sweep(dict(lr=[0.1, 0.5]),
                        lambda s: (TinyClassifier(8), tiny_data, d2lai.Descent(s["lr"])),
                        seed=0, board=False, max_epochs=2)
    assert set(table.models) == set(table.metrics) == {"lr=0.1", "lr=0.5"}
    for run, model in table.models.items():
        last = table.final().records[table.runs().index(run)]
        assert isinstance(model, TinyClassifier) and next(model.parameters()).device.type == "cpu"
        assert table.metrics[run].val_acc == last["val_acc"]
        assert table.metrics[run].best().epoch == last["best_epoch"]
    trainer = d2lai.Trainer(table.models["lr=0.5"], tiny_data, verbose=False)
    assert trainer.evaluate()["val_acc"] == pytest.approx(table.metrics["lr=0.5"].val_acc)
    assert RunTable(table.records).models == {}  # a table built from records has none


def test_evaluate_and_test_use_the_validation_step_over_whole_sets(fashion_root, caplog):
    caplog.set_level(logging.INFO, logger="d2lai")
    data = d2lai.FashionMNISTData(batchsize=64, root=fashion_root, val_split=100)
    model = TinyClassifier()
    trainer = d2lai.Trainer(model, data, d2lai.Descent(0.1), max_epochs=2, board=False)
    before = trainer.evaluate()  # before any fit: no optimiser needed
    _, metrics = trainer.fit()
    after = trainer.evaluate()
    assert after == {"val_loss": pytest.approx(metrics.val_loss),
                     "val_acc": pytest.approx(metrics.val_acc)}
    assert before["val_loss"] > after["val_loss"]
    model.eval()
    with torch.no_grad():  # the test set by hand: 200 images the fit never saw
        p = model(data.transform(data.test[0]))
    acc = float((p.argmax(1) == data.test[1]).double().mean())
    tested = trainer.test()
    assert tested["test_acc"] == pytest.approx(acc) and set(tested) == {"test_loss", "test_acc"}
    assert _lines(caplog)[-1] == (f"Test Loss: {tested['test_loss']:.4f}, "
                                  f"Test Acc: {tested['test_acc']:.4f}")
    named = trainer.evaluate(data.test_dataloader(), name="other")
    assert named == {"other_loss": pytest.approx(tested["test_loss"]),
                     "other_acc": pytest.approx(acc)}
    assert trainer.evaluate(data)["val_acc"] == pytest.approx(metrics.val_acc)
    assert next(model.parameters()).device.type == "cpu"


def test_weight_decay_by_parameter_group_as_the_optim_docs_write_it(tiny_data):
    d2lai.seed(0)
    model = TinyClassifier()
    start = {n: p.detach().clone() for n, p in model.named_parameters()}
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    opt = torch.optim.SGD([{"params": decay, "weight_decay": 0.5},
                           {"params": no_decay, "weight_decay": 0.0}], lr=0.1)
    seen = []

    class Keep(d2lai.Callback):
        def on_train_batch_start(self, trainer, batch):
            seen.append(batch)

    d2lai.Trainer(model, tiny_data, opt, max_steps=1, max_epochs=None, board=False,
                  verbose=False, callbacks=[Keep()]).fit()
    check = TinyClassifier()
    check.load_state_dict({**model.state_dict(), **start})  # the start, same buffers' kind
    check.train()
    check.training_step(seen[0]).backward()
    for name, p in check.named_parameters():
        wd = 0.5 if p.ndim > 1 else 0.0
        expected = start[name] - 0.1 * (p.grad + wd * start[name])
        assert torch.allclose(dict(model.named_parameters())[name], expected, atol=1e-6), name
