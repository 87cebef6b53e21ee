"""Nothing silently wrong, nothing lost: the trainer's and the checkpoints' hard cases."""

import logging
import os
import re

import pytest
import torch
from conftest import FailAt, TinyClassifier
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import d2lai
from chapters.batch_norm import BLeNetScratch
from d2lai.checkpoint import load_checkpoint
from d2lai.data import AbstractData


def _trainer(data, model, opt=None, **kwargs):
    kwargs.setdefault("verbose", False)
    kwargs.setdefault("max_epochs", 2)
    return d2lai.Trainer(model, data, opt or d2lai.Descent(0.1), **kwargs)


# --- divergence rolls back the whole module state ----------------------------------------

class NaNAt(nn.Module):
    """Passes its input through, but NaN at call `at` (training calls only)."""

    def __init__(self, at):
        super().__init__()
        self.at, self.calls = at, 0

    def forward(self, x):
        if torch.is_grad_enabled():
            self.calls += 1
            if self.calls == self.at:
                return x * float("nan")
        return x


def _state(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("make", [BLeNetScratch, TinyClassifier])
def test_divergence_restores_the_epochs_start_buffers_too_so_eval_predicts(tiny_data, make):
    model = make()
    model.net.insert(0, NaNAt(at=13))  # batch 3 of epoch 2: the bad batch's forward moves BN
    states = []
    original = model.training_step
    model.training_step = lambda batch: (states.append(_state(model)), original(batch))[1]
    model, metrics = _trainer(tiny_data, model).fit()
    assert metrics.diverged and metrics.epochs == 1
    after_epoch_1 = states[10]  # before the first batch of epoch 2
    for k, v in model.state_dict().items():  # parameters AND running statistics
        assert torch.equal(v, after_epoch_1[k]), k
    model.eval()
    with torch.no_grad():
        assert bool(torch.isfinite(model(tiny_data.transform(tiny_data.val[0]))).all())


def test_the_model_returned_is_the_one_the_metrics_describe(tiny_data):
    class Blowup(d2lai.Callback):  # the learning rate becomes absurd after epoch 1
        def on_epoch_end(self, trainer, epoch, logs):
            for group in trainer.optimizer.param_groups:
                group["lr"] = 1e30

    trainer = _trainer(tiny_data, TinyClassifier(), max_epochs=3, callbacks=[Blowup()])
    model, metrics = trainer.fit()
    assert metrics.diverged and metrics.epochs == 1
    assert all(bool(torch.isfinite(p).all()) for p in model.parameters())
    model.eval()
    X, y = tiny_data.transform(tiny_data.val[0]), tiny_data.val[1]
    with torch.no_grad():
        y_hat = model(X)
        loss, acc = float(model.loss(y_hat, y)), float(d2lai.accuracy(y_hat, y))
    assert loss == pytest.approx(metrics.val_loss, rel=1e-5)
    assert acc == pytest.approx(metrics.val_acc, rel=1e-6)


def test_weights_the_last_step_made_useless_are_rolled_back_at_validation(tiny_data, caplog):
    class LastStepBlowup(d2lai.Callback):  # epoch 2's last step takes an absurd rate
        def on_train_batch_start(self, trainer, batch):
            if trainer.steps == 19:  # 10 batches an epoch
                for group in trainer.optimizer.param_groups:
                    group["lr"] = 1e30

    seen = []

    class Seen(d2lai.Callback):
        order = 15  # after the divergence watch's look at the weights, before validation

        def on_train_epoch_end(self, trainer, logs):
            seen.append(all(bool(torch.isfinite(p).all()) for p in trainer.model.parameters()))

    trainer = _trainer(tiny_data, TinyClassifier(), max_epochs=3,
                       callbacks=[LastStepBlowup(), Seen()])
    model, metrics = trainer.fit()
    assert seen == [True, True]  # finite, but no longer a model: its validation loss is not
    assert metrics.diverged and metrics.epochs == 1 and trainer.steps == 20
    assert "diverged at epoch 2: the validation loss is nan" in caplog.text
    model.eval()
    X, y = tiny_data.transform(tiny_data.val[0]), tiny_data.val[1]
    with torch.no_grad():
        assert float(model.loss(model(X), y)) == pytest.approx(metrics.val_loss, rel=1e-5)


def test_where_losses_are_looked_at_every_few_batches_the_epoch_is_rolled_back(
        tiny_data, monkeypatch, caplog):
    monkeypatch.setattr(d2lai.callbacks.DivergenceWatch, "check_every", {"cpu": 4})  # as a GPU
    model = TinyClassifier()
    model.net.insert(0, NaNAt(at=17))  # batch 7 of epoch 2: looked at after batch 8
    states = []
    original = model.training_step
    model.training_step = lambda batch: (states.append(_state(model)), original(batch))[1]
    model, metrics = _trainer(tiny_data, model).fit()
    assert metrics.diverged and metrics.epochs == 1
    assert len(states) == 18  # batches 1 to 8 of epoch 2 ran before the look
    assert "diverged at epoch 2, batch 7" in caplog.text
    assert "the model is as it was after epoch 1, whose metrics the fit returns" in caplog.text
    for k, v in model.state_dict().items():
        assert torch.equal(v, states[10][k]), k


def test_non_finite_inputs_are_blamed_not_the_learning_rate(tiny_data, caplog):
    X, y = tiny_data.transform(tiny_data.train[0]), tiny_data.train[1]
    X[100, 0, 3, 3] = float("nan")  # one pixel of one image, in a batch the shuffle picks
    _, metrics = _trainer(Tensors(X, y, 64), TinyClassifier(), max_epochs=1).fit()
    assert metrics.diverged
    assert re.search(r"diverged at epoch 1, batch (\d+) .* the inputs of batch \1 are not "
                     r"finite", caplog.text)
    assert "lower the learning rate" not in caplog.text


# --- resuming with another optimiser ------------------------------------------------------

@pytest.fixture
def ckpt(tiny_data, tmp_path):
    path = tmp_path / "run.pt"
    d2lai.seed(0)
    _trainer(tiny_data, TinyClassifier(), d2lai.Descent(0.1), max_epochs=1,
             checkpoint=path).fit()
    return path


@pytest.mark.parametrize("opt, shown", [
    (d2lai.Descent(0.001), "Descent(lr=0.001)"),
    (d2lai.Momentum(0.1), "Momentum(lr=0.1, rho=0.9)"),
    (d2lai.Adam(), "Adam(lr=0.001"),
])
def test_resuming_with_another_rule_is_refused_naming_both(tiny_data, ckpt, opt, shown):
    model = TinyClassifier()
    before = _state(model)
    with pytest.raises(ValueError, match=r"trained with Descent\(lr=0.1\), but this trainer "
                                         rf"has {shown.replace('(', '.').replace(')', '.')}"):
        _trainer(tiny_data, model, opt, checkpoint=ckpt, resume=True).fit()
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_override_opt_goes_on_with_the_new_rule(tiny_data, ckpt, caplog):
    trainer = _trainer(tiny_data, TinyClassifier(), d2lai.Descent(0.001), checkpoint=ckpt,
                       resume=True, override_opt=True)
    seen = []
    step = trainer.fit_epoch

    def spy():
        seen.append(trainer.optimizer.param_groups[0]["lr"])
        return step()

    trainer.fit_epoch = spy
    _, metrics = trainer.fit()
    assert seen == [0.001] and metrics.epochs == 2
    assert "instead of Descent(lr=0.1)" in caplog.text
    state = load_checkpoint(ckpt)
    assert state["opt"] == {"type": "Descent", "lr": 0.001} and state["epoch"] == 2
    _, metrics = _trainer(tiny_data, TinyClassifier(), d2lai.Adam(), max_epochs=3,
                          checkpoint=ckpt, resume=True, override_opt=True).fit()
    assert metrics.epochs == 3 and not metrics.diverged  # Adam after Descent: a fresh state


# --- checkpoint files ---------------------------------------------------------------------

def test_a_new_run_does_not_overwrite_another_runs_checkpoint(tiny_data, ckpt):
    before = ckpt.read_bytes()
    model = TinyClassifier()
    calls = []
    model.training_step = lambda batch: calls.append(1)
    with pytest.raises(FileExistsError, match="already exists.*resume=True.*delete the file"):
        _trainer(tiny_data, model, checkpoint=ckpt).fit()
    assert ckpt.read_bytes() == before and not calls


def _damage(path, how):
    if how == "empty":
        path.write_bytes(b"")
    elif how == "text":
        path.write_text("these are not the weights you are looking for\n")
    elif how == "header":
        path.write_bytes(b"PK\x03\x04" + os.urandom(200))
    elif how == "structure":
        torch.save([1, 2, 3], path)
    elif how == "missing":
        state = torch.load(path, weights_only=True)
        del state["rng"]
        torch.save(state, path)
    elif how == "bitflip":
        state = torch.load(path, weights_only=True)
        raw = bytearray(path.read_bytes())
        weights = state["model"]["net.1.weight"].numpy().tobytes()
        at = raw.find(weights[:64])
        raw[at + 10] ^= 0x04  # one bit inside a stored weight
        path.write_bytes(bytes(raw))


@pytest.mark.parametrize("how, match", [
    ("empty", "is empty"),
    ("text", "corrupt or not a d2lai checkpoint"),
    ("header", "corrupt or not a d2lai checkpoint"),
    ("structure", "not a d2lai checkpoint"),
    ("missing", "incomplete: it has no rng"),
    ("bitflip", "do not match the checksum"),
])
def test_a_damaged_checkpoint_is_named_and_leaves_the_model_alone(tiny_data, ckpt, how, match):
    _damage(ckpt, how)
    model = TinyClassifier()
    before = _state(model)
    with pytest.raises(ValueError, match=match) as err:
        _trainer(tiny_data, model, checkpoint=ckpt, resume=True).fit()
    assert str(ckpt) in str(err.value) and "weights_only=False" not in str(err.value)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_a_checkpoint_of_another_model_is_refused(tiny_data, ckpt):
    with pytest.raises(ValueError, match="written for another model than BLeNetScratch"):
        _trainer(tiny_data, BLeNetScratch(), checkpoint=ckpt, resume=True).fit()


# --- output paths are checked before the first epoch --------------------------------------

@pytest.mark.parametrize("kwargs, error, match", [
    ({"board_path": "board.xyz"}, ValueError, "xyz"),
    ({"board_path": "afile/board.png"}, NotADirectoryError, "afile"),
    ({"checkpoint": "."}, IsADirectoryError, "is a folder"),
    ({"checkpoint": "afile/run.pt"}, NotADirectoryError, "is a file"),
    ({"checkpoint": "readonly/run.pt"}, PermissionError, "not writable"),
])
def test_bad_output_paths_fail_before_training(tiny_data, tmp_path, monkeypatch, kwargs, error,
                                               match):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile").write_text("x")
    (tmp_path / "readonly").mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if str(p).endswith("readonly")
                        else real_access(p, mode))
    model = TinyClassifier()
    calls = []
    model.training_step = lambda batch: calls.append(1)
    with pytest.raises(error, match=match):
        _trainer(tiny_data, model, **kwargs).fit()
    assert not calls


def test_a_picture_that_cannot_be_saved_at_the_end_only_warns(tiny_data, tmp_path, caplog,
                                                             monkeypatch):
    trainer = _trainer(tiny_data, TinyClassifier(), board_path=tmp_path / "b.png")

    def disk_full(path):
        raise OSError("No space left on device")

    monkeypatch.setattr(trainer.board, "save_plot", disk_full)
    model, metrics = trainer.fit()
    assert metrics.epochs == 2 and isinstance(model, TinyClassifier)
    assert "could not save the board" in caplog.text and "No space left" in caplog.text


# --- fitting twice, optimisers of another model, labels, seeds, empty data ----------------

def test_a_second_fit_trains_more_epochs_numbered_on(tiny_data):
    trainer = _trainer(tiny_data, TinyClassifier(), max_epochs=2)
    trainer.fit()
    _, metrics = trainer.fit()
    assert metrics.epochs == 4 and metrics.epoch == 4 and len(metrics.history["val_acc"]) == 4
    assert all(len(v) == 4 for v in trainer.history.values())
    assert trainer.board.series["val_loss"][0] == [1.0, 2.0, 3.0, 4.0]
    assert len(trainer.timings["train_s"]) == 4


def test_an_optimiser_of_another_models_parameters_is_refused(tiny_data):
    other = TinyClassifier()
    opt = torch.optim.SGD(other.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="holds none of TinyClassifier's parameters"):
        _trainer(tiny_data, TinyClassifier(), opt).fit()


class Tensors(AbstractData):
    def __init__(self, X, y, batchsize=16):
        self.train = self.val = (X, y)
        self.batchsize = batchsize


@pytest.mark.parametrize("dtype", [torch.int32, torch.int16, torch.uint8])
def test_any_integer_label_dtype_trains(tiny_data, dtype):
    X, y = tiny_data.transform(tiny_data.train[0]), tiny_data.train[1].to(dtype)
    _, metrics = _trainer(Tensors(X, y, 64), TinyClassifier()).fit()
    assert metrics.epochs == 2 and metrics.val_acc > 0.5


def test_labels_out_of_range_in_a_later_batch(tiny_data):
    X, y = tiny_data.transform(tiny_data.train[0]), tiny_data.train[1].clone()
    y[-1] = 10  # the last sample: not in the first batch
    with pytest.raises(ValueError, match="the train labels range from 0 to 10, but the model "
                                         "outputs 10 class scores"):
        _trainer(Tensors(X, y, 64), TinyClassifier()).fit()

    class Streamed(AbstractData):  # labels seen only as batches come
        def get_dataloader(self, train=True):
            return DataLoader(TensorDataset(X, y), batch_size=64)

    with pytest.raises(ValueError, match="a training batch of epoch 1 has labels from 0 to 10"):
        _trainer(Streamed(), TinyClassifier()).fit()


@pytest.mark.parametrize("value", [-1, 2**64, 1.5, True])
def test_seeds_outside_the_range_are_refused(tiny_data, value):
    with pytest.raises(ValueError, match=r"seed must be an integer in \[0, 2\*\*64 - 1\]"):
        d2lai.seed(value)
    with pytest.raises(ValueError, match="seed must be"):
        _trainer(tiny_data, TinyClassifier(), seed=value)
    d2lai.seed(2**64 - 1)  # the largest is fine


@pytest.mark.parametrize("split", ["train", "val"])
def test_empty_data_is_named_when_the_trainer_is_built(split):
    data = Tensors(torch.rand(32, 1, 28, 28), torch.zeros(32, dtype=torch.long))
    setattr(data, split, (torch.rand(0, 1, 28, 28), torch.zeros(0, dtype=torch.long)))
    name = "training" if split == "train" else "validation"
    with pytest.raises(ValueError, match=f"the {name} set is empty: data.{split} has 0"):
        _trainer(data, TinyClassifier())
    data = Tensors(torch.rand(32, 1, 28, 28), torch.zeros(31, dtype=torch.long))
    with pytest.raises(ValueError, match=r"different lengths \[31, 32\]"):
        _trainer(data, TinyClassifier())


def test_a_loader_that_gives_no_batch_is_named(tiny_data):
    class Nothing(AbstractData):
        def get_dataloader(self, train=True):
            return [] if train else tiny_data.val_dataloader()

    with pytest.raises(ValueError, match="the training set is empty"):
        _trainer(Nothing(), TinyClassifier()).fit()


def test_max_steps_stops_after_that_many_batches(tiny_data):
    model = FailAt(99, 99)
    _, metrics = _trainer(tiny_data, model, max_epochs=5, max_steps=13).fit()
    assert model.calls == 13 and metrics.steps == 13 and metrics.epochs == 2
    model = FailAt(99, 99)
    _, metrics = _trainer(tiny_data, model, max_epochs=None, max_steps=35).fit()
    assert model.calls == 35 and metrics.epochs == 4  # the step budget alone: 10 + 10 + 10 + 5
    with pytest.raises(ValueError, match=r"max_epochs must be a positive integer, got None "
                                         r"\(None only with max_steps\)"):
        _trainer(tiny_data, TinyClassifier(), max_epochs=None)


def test_divergence_logs_where_and_what_was_restored(tiny_data, caplog):
    with caplog.at_level(logging.WARNING, logger="d2lai"):
        _trainer(tiny_data, FailAt(1, 4)).fit()
    assert "diverged at epoch 1, batch 4 (loss=nan); the model is as it was before training: " \
           "lower the learning rate" in caplog.text
