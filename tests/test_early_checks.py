"""Mistakes found before the first step, not after an epoch; values that mean nothing refused
where they enter; what a training step must return, said at the first batch."""

import logging
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import TinyClassifier
from torch import nn

import chapters.batch_norm as chapter
import d2lai
from d2lai.data import AbstractData
from d2lai.testing import write_fake_fashion_mnist

pytestmark = pytest.mark.usefixtures("one_thread")


class Counted(TinyClassifier):
    """Counts its training steps."""

    steps = 0

    def training_step(self, batch):
        type(self).steps += 1
        return super().training_step(batch)


class Linear(d2lai.AbstractModel):
    def __init__(self, outputs=1):
        super().__init__()
        self.net = nn.Linear(2, outputs)
        self.steps = 0

    def loss(self, y_hat, y):
        return F.mse_loss(y_hat, y)

    def training_step(self, batch):
        self.steps += 1
        return super().training_step(batch)


def _regression(**kwargs):
    d2lai.seed(0)
    return d2lai.SyntheticRegressionData(w=[2.0, -3.4], b=4.2, **kwargs)


# --- a monitor and an empty validation set, at fit start -------------------------------------

def test_an_unknown_monitor_is_refused_before_the_first_step(tiny_data):
    Counted.steps = 0
    trainer = d2lai.Trainer(Counted(), tiny_data, d2lai.Descent(0.1), verbose=False,
                            callbacks=[d2lai.EarlyStopping("val_accuracy")])
    with pytest.raises(ValueError, match="monitor='val_accuracy' is not among this fit's "
                                         "metrics; choose one of 'train_loss', 'train_acc', "
                                         "'val_loss', 'val_acc'"):
        trainer.fit()
    assert Counted.steps == 0


def test_an_accuracy_monitor_on_a_regression_is_refused_before_the_first_step():
    model = Linear()
    trainer = d2lai.Trainer(model, _regression(), d2lai.Descent(0.03), verbose=False,
                            callbacks=[d2lai.EarlyStopping("val_acc")])
    with pytest.raises(ValueError, match="monitor='val_acc' is not among this fit's metrics; "
                                         "choose one of 'train_loss', 'val_loss'"):
        trainer.fit()
    assert model.steps == 0


def test_a_family_names_its_figures_its_own_included():
    from d2lai.models.rnn import RNNLMScratch, RNNScratch

    assert Linear().metric_names() == ["train_loss", "val_loss"]
    assert TinyClassifier().metric_names() == ["train_loss", "train_acc", "val_loss", "val_acc"]
    assert RNNLMScratch(RNNScratch(5, 8), vocab_size=5).metric_names() == [  # no train_acc:
        "train_loss", "val_loss", "val_acc", "train_ppl", "val_ppl"]  # its batches not scored

    class Odd(Linear):  # its own figures cannot be known without real values: no check
        def epoch_metrics(self, logs):
            return {"val_rmse": math.sqrt(logs["val_loss"] - 2)}

    assert Odd().metric_names() is None


def test_a_monitor_of_a_models_or_a_callbacks_own_figure_is_accepted():
    class WithRMSE(Linear):
        def epoch_metrics(self, logs):
            return {"val_rmse": math.sqrt(logs["val_loss"])}

    class LearningRate(d2lai.Callback):
        adds_metrics = ("lr",)

        def on_train_epoch_end(self, trainer, logs):
            logs["lr"] = trainer.optimizer.param_groups[0]["lr"]

    for monitor in ("val_rmse", "lr"):
        stop = d2lai.EarlyStopping(monitor, patience=0, mode="min")
        _, metrics = d2lai.Trainer(WithRMSE(), _regression(), d2lai.Descent(0.03), max_epochs=3,
                                   verbose=False, callbacks=[LearningRate(), stop]).fit()
        assert metrics.epochs == (3 if monitor == "val_rmse" else 2)


class NoValidation(AbstractData):
    def __init__(self, data):
        self.train, self.batchsize = data.train, 64
        self.transform = data.transform

    def val_dataloader(self):
        return []


def test_an_empty_validation_loader_is_found_before_a_training_epoch(tiny_data):
    Counted.steps = 0
    with pytest.raises(ValueError, match="the validation set is empty: its data loader gave "
                                         "no batch"):
        d2lai.Trainer(Counted(), NoValidation(tiny_data), d2lai.Descent(0.1),
                      verbose=False).fit()
    assert Counted.steps == 0


def test_the_first_validation_batch_is_checked_before_a_training_epoch(tiny_data):
    class ShortValidation(AbstractData):  # images of another size in the validation set
        def __init__(self):
            self.train = (tiny_data.transform(tiny_data.train[0]), tiny_data.train[1])
            self.val = (torch.rand(50, 1, 20, 20), tiny_data.val[1][:50])
            self.batchsize = 64

    Counted.steps = 0
    with pytest.raises(ValueError, match=r"the model cannot take the first validation batch"):
        d2lai.Trainer(Counted(), ShortValidation(), d2lai.Descent(0.1), verbose=False).fit()
    assert Counted.steps == 0


def test_checking_the_first_validation_batch_early_changes_no_number(tiny_data):
    """The shuffle and the weights are the same as a fit that validates only after training."""
    d2lai.seed(0)
    _, metrics = d2lai.Trainer(TinyClassifier(), tiny_data, d2lai.Descent(0.1), max_epochs=1,
                               verbose=False).fit()
    d2lai.seed(0)
    model = TinyClassifier()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    model.train()
    for X, y in tiny_data.train_dataloader():
        loss = model.loss(model(X), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        X, y = tiny_data.transform(tiny_data.val[0]), tiny_data.val[1]
        assert float(model.loss(model(X), y)) == pytest.approx(metrics.val_loss, rel=1e-5)


# --- values that mean nothing ---------------------------------------------------------------

@pytest.mark.parametrize("kwargs, match", [
    ({"baseline": math.nan}, "baseline"), ({"baseline": math.inf}, "baseline"),
    ({"min_delta": math.inf}, "min_delta"),
])
def test_early_stopping_refuses_values_that_would_never_compare(kwargs, match):
    with pytest.raises(ValueError, match=match):
        d2lai.EarlyStopping(**kwargs)


@pytest.mark.parametrize("kwargs, match", [
    ({"noise": math.nan}, "noise must be a number in"), ({"noise": -0.1}, "noise"),
    ({"noise": math.inf}, "noise"), ({"b": math.inf}, "b must be a finite number"),
    ({"b": math.nan}, "b must be a finite number"),
    ({"w": [1.0, math.nan]}, "w must hold finite numbers"),
])
def test_synthetic_regression_data_refuses_values_that_mean_nothing(kwargs, match):
    args = {"w": [2.0, -3.4], "b": 4.2} | kwargs
    with pytest.raises(ValueError, match=match):
        d2lai.SyntheticRegressionData(**args)


@pytest.mark.parametrize("kwargs, match", [
    ({"num_train": 10**9}, r"num_train=1000000000, but the training part has 600 images: "
                           r"ask for at most 600 \(or None for all\)"),
    ({"num_val": 50000}, r"num_val=50000, but the validation part \(the test set\) has 200 "
                         r"images"),
    ({"num_train": 501, "val_split": 100}, "num_train=501, but the training part has 500"),
    ({"num_val": np.int64(101), "val_split": 100}, "num_val=101, but the validation part has "
                                                   "100"),
])
def test_more_samples_than_there_are_are_refused_saying_how_many(fashion_root, kwargs, match):
    with pytest.raises(ValueError, match=match):
        d2lai.FashionMNISTData(root=fashion_root, **kwargs)
    split = kwargs.get("val_split")
    there = {"num_train": 600 - (split or 0), "num_val": split or 200}  # all there is: fine
    data = d2lai.FashionMNISTData(root=fashion_root, val_split=split,
                                  **{k: there[k] for k in kwargs if k != "val_split"})
    assert (len(data.train[0]), len(data.val[0])) == (there["num_train"], there["num_val"])


def test_the_cli_refuses_more_samples_than_there_are(fashion_root, tmp_path):
    with pytest.raises(SystemExit, match="error: .*num_train=99999999, but the training part "
                                         "has 600 images"):
        chapter.main(["--data-root", str(fashion_root), "--out", str(tmp_path), "--cpu",
                      "--num-train", "99999999"])


def test_a_regression_output_of_another_width_than_its_targets_is_refused():
    model = Linear(outputs=3)
    with pytest.raises(ValueError, match=r"output has shape \(32, 3\) but the targets have "
                                         r"shape \(32, 1\)"):
        d2lai.Trainer(model, _regression(), d2lai.Descent(0.03), verbose=False).fit()
    assert model.steps == 0


# --- what a training step must return -------------------------------------------------------

@pytest.mark.parametrize("step, match", [
    (lambda model, batch: None, r"returned None \(is its `return` missing\?\)"),
    (lambda model, batch: d2lai.AbstractClassifier.training_step(model, batch).item(),
     r"returned a float \(\d\.\d+\): return the loss tensor itself"),
    (lambda model, batch: model.loss(model(batch[0]), batch[1], averaged=False),
     r"returned a loss of shape \(64,\), one value per sample: return their mean"),
    (lambda model, batch: d2lai.AbstractClassifier.training_step(model, batch).detach(),
     r"returned a loss that does not require grad"),
    (lambda model, batch: (d2lai.AbstractClassifier.training_step(model, batch), 0.5),
     r"returned a tuple"),
])
def test_what_a_training_step_returns_is_checked_at_the_first_batch(tiny_data, step, match):
    class Wrong(TinyClassifier):
        def training_step(self, batch):
            return step(self, batch)

    with pytest.raises(ValueError, match=rf"Wrong.training_step {match}.*"):
        d2lai.Trainer(Wrong(), tiny_data, d2lai.Descent(0.1), verbose=False).fit()
    with pytest.raises(ValueError, match="must return the batch's loss: a tensor of one value"):
        d2lai.Trainer(Wrong(), tiny_data, d2lai.Descent(0.1), verbose=False).fit()


# --- the rest -------------------------------------------------------------------------------

@pytest.mark.parametrize("content", [b"", None])
def test_an_empty_gz_is_named_not_the_file_it_unpacks_to(tmp_path, content):
    import gzip

    raw = write_fake_fashion_mnist(tmp_path, num_train=60, num_val=20, gz=True)
    gz = raw / "train-labels-idx1-ubyte.gz"
    if content is None:  # a whole gzip file holding nothing
        with gzip.open(gz, "wb"):
            pass
    else:
        gz.write_bytes(content)
    with pytest.raises(ValueError, match=rf"{gz} is empty.*Delete it"):
        d2lai.FashionMNISTData(root=tmp_path, download=False)
    assert not (raw / "train-labels-idx1-ubyte").exists()  # nothing half made to delete


def test_a_gz_holding_a_wrong_file_is_named_with_what_it_unpacked_to(tmp_path):
    import gzip

    raw = write_fake_fashion_mnist(tmp_path, num_train=60, num_val=20, gz=True)
    with gzip.open(raw / "t10k-labels-idx1-ubyte.gz", "wb") as f:
        f.write(b"not an IDX file at all")
    with pytest.raises(ValueError, match=r"t10k-labels-idx1-ubyte is corrupt .* unpacked from "
                                         r".*t10k-labels-idx1-ubyte.gz: delete both"):
        d2lai.FashionMNISTData(root=tmp_path, download=False)


def test_a_non_finite_first_figure_stops_early_without_a_logging_error(tiny_data, capfd, caplog):
    class OddScore(TinyClassifier):
        def epoch_metrics(self, logs):
            return {"val_score": math.nan}

    class NaNValidation(TinyClassifier):
        def validation_step(self, batch):
            loss, acc = super().validation_step(batch)
            return loss * math.nan, acc

    for restore in (False, True):
        with caplog.at_level(logging.INFO, logger="d2lai"):
            stop = d2lai.EarlyStopping("val_score", restore_best_weights=restore)
            _, metrics = d2lai.Trainer(OddScore(), tiny_data, d2lai.Descent(0.1), max_epochs=3,
                                       verbose=True, board=False, callbacks=[stop]).fit()
            assert metrics.stopped_early and metrics.epochs == 1
            stop = d2lai.EarlyStopping(restore_best_weights=restore)
            _, metrics = d2lai.Trainer(NaNValidation(), tiny_data, d2lai.Descent(0.1),
                                       max_epochs=3, verbose=True, board=False,
                                       callbacks=[stop]).fit()
            assert metrics.diverged and metrics.epochs == 0  # rolled back to before training
    assert "early stopping at epoch 1: val_score is nan" in caplog.text
    assert "diverged at epoch 1: the validation loss is nan" in caplog.text
    assert "Logging error" not in capfd.readouterr().err


def test_one_training_sample_with_batch_norm_is_refused_clearly(fashion_root):
    data = d2lai.FashionMNISTData(root=fashion_root, num_train=1, batchsize=64)
    with pytest.raises(ValueError, match=r"the first training batch has 1 sample, but "
                                         r"TinyClassifier has batch-norm layers, which need "
                                         r"at least 2 samples"):
        d2lai.Trainer(TinyClassifier(), data, d2lai.Descent(0.1), verbose=False).fit()
    data = d2lai.FashionMNISTData(root=fashion_root, num_train=2, batchsize=64)
    _, metrics = d2lai.Trainer(TinyClassifier(), data, d2lai.Descent(0.1), max_epochs=1,
                               verbose=False).fit()
    assert metrics.epochs == 1


def test_a_pytorch_edition_data_module_without_validation_still_trains():
    from d2lai import torch as d2l

    class NoValidation(d2l.SyntheticRegressionData):
        def get_dataloader(self, train):
            return super().get_dataloader(train) if train else None

    d2lai.seed(0)
    data = NoValidation(w=torch.tensor([2.0, -3.4]), b=4.2)
    model = d2l.LinearRegression(lr=0.03)
    trainer = d2l.Trainer(max_epochs=2)
    trainer.fit(model, data)
    assert trainer.epoch == 2 and "val_loss" not in trainer.history


def test_a_training_accuracy_monitor_on_a_language_model_is_refused_before_it_trains(tmp_path):
    from d2lai.testing import write_fake_time_machine

    write_fake_time_machine(tmp_path, num_chars=3000)
    data = d2lai.TimeMachine(32, 8, num_train=64, num_val=32, root=tmp_path)
    V = len(data.vocab)
    model = d2lai.RNNLMScratch(d2lai.RNNScratch(V, 8), V)
    stop = d2lai.EarlyStopping("train_acc")
    with pytest.raises(ValueError, match="monitor='train_acc' is not among this fit's metrics"):
        d2lai.Trainer(model, data, d2lai.Descent(1.0), verbose=False, board=False,
                      callbacks=[stop]).fit()
    assert model.rnn.W_xh.grad is None  # refused before the first step
