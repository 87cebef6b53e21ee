"""The loop as named events: their order, callbacks and model families that need no loop edit."""

import math
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import TinyClassifier
from torch import nn

import d2lai
from d2lai import torch as d2l
from d2lai.data import AbstractData


class Recorder(d2lai.Callback):
    """Records every event the trainer calls, in order."""

    def __init__(self):
        self.events = []


for _event in d2lai.Callback.EVENTS:
    setattr(Recorder, _event, lambda self, trainer, *args, _e=_event: self.events.append(_e))


def _compress(events):
    """Runs of the same event as (event, count)."""
    out = []
    for e in events:
        if out and out[-1][0] == e:
            out[-1][1] += 1
        else:
            out.append([e, 1])
    return [tuple(x) for x in out]


def test_a_callback_sees_every_event_in_order(tiny_data):
    recorder = Recorder()
    trainer = d2lai.Trainer(TinyClassifier(), tiny_data, d2lai.Descent(0.1), max_epochs=2,
                            verbose=False, board=False, callbacks=[recorder])
    trainer.fit()
    batches, val_batches = len(tiny_data.train_dataloader()), len(tiny_data.val_dataloader())
    epoch = [("on_epoch_start", 1), ("on_train_start", 1)] + \
        [("on_train_batch_start", 1), ("on_loss", 1), ("on_train_batch_end", 1)] * batches + \
        [("on_train_epoch_end", 1), ("on_validation_start", 1),
         *[("on_validation_batch_start", 1), ("on_validation_batch_end", 1)] * val_batches,
         ("on_validation_end", 1),
         ("on_epoch_end", 1)]
    assert _compress(recorder.events) == [("on_fit_start", 1), *epoch, *epoch,
                                          ("on_fit_end", 1)]


def test_callbacks_run_in_their_order_whatever_the_list_order(tiny_data):
    seen = []

    class Late(d2lai.Callback):
        order = 95  # after the board

        def on_epoch_end(self, trainer, epoch, logs):
            seen.append(("late", "train_loss" in trainer.history))

    class Early(d2lai.Callback):
        order = 5

        def on_epoch_end(self, trainer, epoch, logs):
            seen.append(("early", len(trainer.board.series)))

    trainer = d2lai.Trainer(TinyClassifier(), tiny_data, d2lai.Descent(0.1), max_epochs=1,
                            verbose=False, callbacks=[Late(), Early()])
    trainer.fit()
    assert seen == [("early", 0), ("late", True)]  # early: before the board drew anything
    orders = [c.order for c in trainer.callbacks]
    assert orders == sorted(orders)


def test_one_callback_alone_is_taken_as_a_list(tiny_data):
    stop = d2lai.EarlyStopping("val_acc", patience=0)
    trainer = d2lai.Trainer(TinyClassifier(), tiny_data, d2lai.Descent(0.1), max_epochs=1,
                            verbose=False, callbacks=stop)
    assert stop in trainer.callbacks and trainer.monitor == "val_acc"


# --- a new model family: a class, no edit to the loop -----------------------------------------

class TokenData(AbstractData):
    """Sequences of tokens whose label at each position is the token itself, shifted by one
    (mod V): a per-position classification with padding (token 0) at the ends."""

    def __init__(self, n=256, T=6, V=5, batchsize=32):
        g = torch.Generator().manual_seed(0)
        X = torch.randint(1, V, (n, T), generator=g)
        X[:, -2:] = 0  # padding
        y = torch.where(X == 0, 0, X % (V - 1) + 1)
        self.train, self.val = (X[:192], y[:192]), (X[192:], y[192:])
        self.batchsize, self.num_classes = batchsize, V


class Tagger(d2lai.AbstractClassifier):
    """A per-token classifier: (N, T) tokens in, (N, T, V) logits out; padding masked."""

    output_kind = "logits"

    def __init__(self, V=5):
        super().__init__()
        self.net = nn.Sequential(nn.Embedding(V, 16), nn.ReLU(), nn.Linear(16, V))

    def target_mask(self, y):
        return y != 0

    def epoch_metrics(self, logs):
        return {"train_ppl": math.exp(logs["train_loss"])}


def test_a_sequence_family_trains_through_the_same_loop(caplog):
    data = TokenData()
    d2lai.seed(0)
    trainer = d2lai.Trainer(Tagger(), data, d2lai.Adam(0.05), max_epochs=5, verbose=False)
    model, metrics = trainer.fit()
    assert metrics.val_acc == 1.0 and metrics.history["train_acc"][-1] == 1.0
    assert trainer.history["train_ppl"] == [math.exp(v) for v in trainer.history["train_loss"]]
    X, y = data.val
    y_hat = model(X)
    keep = y != 0
    by_hand = F.cross_entropy(y_hat[keep], y[keep])
    assert torch.allclose(model.loss(y_hat, y), by_hand)


def test_a_sequence_output_that_fits_no_target_is_refused():
    class Wrong(Tagger):
        def forward(self, X):
            return super().forward(X)[:, :-1]  # one position short

    with pytest.raises(ValueError, match=r"class scores of shape \(32, 6, 5\), got "
                                         r"\(32, 5, 5\)"):
        d2lai.Trainer(Wrong(), TokenData(), d2lai.Adam(), verbose=False).fit()
    with pytest.raises(ValueError, match="expected the model to output 5 class scores per "
                                         "target .* got 7"):
        d2lai.Trainer(Tagger(V=7), TokenData(), d2lai.Adam(), verbose=False).fit()


def test_a_regression_family_of_its_own_shape_needs_no_loop_edit():
    class PairData(AbstractData):
        def __init__(self):
            X = torch.randn(200, 3)
            self.train = self.val = (X, torch.stack([X.sum(1), X[:, 0]], 1))
            self.batchsize = 50

    class TwoOutputs(d2lai.AbstractModel):
        def __init__(self):
            super().__init__()
            self.net = nn.Linear(3, 2)

        def loss(self, y_hat, y):
            return F.mse_loss(y_hat, y)

        def epoch_metrics(self, logs):
            return {"val_rmse": math.sqrt(logs["val_loss"])}

    d2lai.seed(0)
    _, metrics = d2lai.Trainer(TwoOutputs(), PairData(), d2lai.Descent(0.3), max_epochs=30,
                               verbose=False).fit()
    assert metrics.val_loss < 1e-3 and metrics.history["val_rmse"][-1] < 0.04


# --- names and boundaries ---------------------------------------------------------------------

class HeadNet(d2lai.AbstractClassifier):
    """A classifier whose last layer is called `head`, as much PyTorch code names it."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(784, 16), nn.ReLU())
        self.head = nn.Linear(16, 10)

    def forward(self, X):
        return self.head(self.body(X))


def test_a_layer_named_head_works_in_both_apis(tiny_data):
    _, metrics = d2lai.Trainer(HeadNet(), tiny_data, d2lai.Descent(0.5), max_epochs=2,
                               verbose=False).fit()
    assert metrics.val_acc > 0.9

    class EditionHead(d2l.Classifier):
        def __init__(self):
            super().__init__()
            self.lr = 0.5
            self.body = nn.Sequential(nn.Flatten(), nn.Linear(784, 16), nn.ReLU())
            self.head = nn.Linear(16, 10)

        def forward(self, X):
            return self.head(self.body(X))

    model = EditionHead()
    assert isinstance(model.head, nn.Linear) and model.output_kind == "logits"
    X = torch.rand(4, 1, 28, 28)
    assert model(X).shape == (4, 10)


def test_the_former_head_declaration_still_works_with_a_warning(tiny_data):
    with pytest.warns(DeprecationWarning, match="now called `output_kind`"):
        class Old(TinyClassifier):
            head = "probabilities"

    assert Old.output_kind == "probabilities" and "head" not in vars(Old)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _, metrics = d2lai.Trainer(Old(), tiny_data, d2lai.Descent(0.1), max_epochs=1,
                                   verbose=False).fit()
    assert metrics.val_acc > 0.5


def test_a_float64_model_gets_float64_batches(tiny_data):
    model = TinyClassifier().double()
    seen = []
    original = model.forward
    model.forward = lambda X: (seen.append(X.dtype), original(X))[1]
    _, metrics = d2lai.Trainer(model, tiny_data, d2lai.Descent(0.1), max_epochs=1,
                               verbose=False).fit()
    assert set(seen) == {torch.float64} and metrics.val_acc > 0.5


def test_a_field_named_train_is_named_in_the_error(tiny_data):
    model = TinyClassifier()
    model.train = True  # hides nn.Module.train()
    with pytest.raises(TypeError, match="has a field named 'train'"):
        d2lai.Trainer(model, tiny_data, d2lai.Descent(0.1))


@pytest.mark.parametrize("kwargs, match", [
    ({"gpu": "no"}, "gpu must be True or False"),
    ({"verbose": "False"}, "verbose must be True or False"),
    ({"board": 1}, "board must be True or False"),
    ({"callbacks": "early"}, "callbacks must be a list"),
])
def test_switches_are_booleans(tiny_data, kwargs, match):
    with pytest.raises((TypeError, ValueError), match=match):
        d2lai.Trainer(TinyClassifier(), tiny_data, d2lai.Descent(0.1), **kwargs)


def test_numpy_integers_are_integers(tiny_data):
    trainer = d2lai.Trainer(TinyClassifier(), tiny_data, d2lai.Descent(0.1),
                            max_epochs=np.int64(1), verbose=False)
    _, metrics = trainer.fit()
    assert metrics.epochs == 1 and type(trainer.max_epochs) is int


def test_training_sums_are_kept_in_float64_whatever_the_loss_dtype():
    from d2lai.metrics import Loss, Measure, MetricList

    measure = Measure(MetricList([Loss()]), "train", None, torch.device("cpu"))
    y = torch.zeros(8192, dtype=torch.long)
    for loss in (torch.tensor(10.0, dtype=torch.float16), torch.tensor(2.0)):
        measure.update(None, (y, y), loss)  # 10 * 8192 overflows float16
    logs = measure.compute()
    assert logs == {"train_loss": 6.0}
