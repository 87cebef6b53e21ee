"""Any classifier head: probabilities, log-probabilities or logits, declared or guessed."""

import logging
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import d2lai
from d2lai.models import guess_head

HEADS = {"softmax": nn.Softmax(dim=1), "log_softmax": nn.LogSoftmax(dim=1), "linear": None}


class Net(d2lai.AbstractClassifier):
    """An MLP whose last layer is `head` (None: the logits themselves)."""

    def __init__(self, head=None):
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(784, 32), nn.ReLU(), nn.Linear(32, 10))
        self.net = nn.Sequential(self.body, *([head] if head is not None else []))


def _fit(model, data, **kwargs):
    trainer = d2lai.Trainer(model, data, d2lai.Descent(0.1), max_epochs=3, verbose=False,
                            seed=0, **kwargs)
    return trainer.fit()


@pytest.mark.parametrize("name", HEADS)
def test_each_head_scores_like_cross_entropy_on_the_logits(tiny_data, name):
    model = Net(HEADS[name])
    X, y = next(iter(tiny_data.train_dataloader()))
    loss = model.loss(model(X), y)
    assert torch.allclose(loss, F.cross_entropy(model.body(X), y), atol=1e-5)
    per_sample = model.loss(model(X), y, averaged=False)
    assert per_sample.shape == (len(y),) and bool((per_sample >= 0).all())
    assert torch.equal(model.accuracy(model(X), y), d2lai.accuracy(model.body(X), y))


def test_the_three_heads_train_to_the_same_accuracy(tiny_data):
    accs = {name: _fit(Net(head), tiny_data)[1].val_acc for name, head in HEADS.items()}
    assert min(accs.values()) > 0.9, accs
    assert max(accs.values()) - min(accs.values()) < 0.05, accs


def test_the_head_is_guessed_and_logged_once(tiny_data, caplog):
    with caplog.at_level(logging.INFO, logger="d2lai"):
        d2lai.Trainer(Net(), tiny_data, d2lai.Descent(0.1), max_epochs=2,
                      board=False).fit()
    lines = [r.getMessage() for r in caplog.records if "outputs" in r.getMessage()]
    assert lines == ["Net outputs logits: loss cross_entropy, which applies the softmax itself"]

    class OwnLoss(Net):
        def loss(self, y_hat, y):
            return super().loss(y_hat, y)

    caplog.clear()
    with caplog.at_level(logging.INFO, logger="d2lai"):
        d2lai.Trainer(OwnLoss(), tiny_data, d2lai.Descent(0.1), max_epochs=1, board=False).fit()
    assert "OwnLoss outputs logits: loss its own" in caplog.text
    assert guess_head(torch.softmax(torch.randn(4, 3), 1)) == "probabilities"
    assert guess_head(torch.log_softmax(torch.randn(4, 3), 1)) == "log_probabilities"
    assert guess_head(torch.randn(4, 3)) == "logits"


def test_a_relu_head_trains_on_a_true_cross_entropy_with_a_warning(tiny_data):
    model = Net(nn.ReLU())
    X, y = next(iter(tiny_data.train_dataloader()))
    with pytest.warns(UserWarning, match=r"do not sum to 1 .* nn.Softmax\(dim=-1\)"):
        loss = model.loss(model(X), y)
    assert torch.allclose(loss, F.cross_entropy(model(X), y), atol=1e-6) and loss >= 0
    with pytest.warns(UserWarning, match="scoring them as logits"):
        _, metrics = _fit(Net(nn.ReLU()), tiny_data)
    assert all(v >= 0 for v in metrics.history["train_loss"])
    assert metrics.history["train_loss"][-1] < metrics.history["train_loss"][0]


def test_a_declared_head_overrides_the_guess(tiny_data):
    class ReluLogits(Net):
        output_kind = "logits"

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # declared: no warning
        model = ReluLogits(nn.ReLU())
        X, y = next(iter(tiny_data.train_dataloader()))
        assert torch.allclose(model.loss(model(X), y), F.cross_entropy(model(X), y))


@pytest.mark.parametrize("declared, hint", [("probabilities", r"nn.Softmax\(dim=-1\)"),
                                            ("log_probabilities", r"nn.LogSoftmax\(dim=-1\)")])
def test_a_declared_head_that_does_not_fit_the_outputs_is_refused(tiny_data, declared, hint):
    class Wrong(Net):
        output_kind = declared

    model = Wrong()  # ends in a Linear layer: logits
    with pytest.raises(ValueError, match=f"declares output_kind = '{declared}' .*{hint}"):
        _fit(model, tiny_data)
    Wrong.output_kind = "softmax"
    with pytest.raises(ValueError, match="output_kind must be one of"):
        model.loss(torch.zeros(2, 10), torch.zeros(2, dtype=torch.long))


def test_a_nan_at_the_first_batch_does_not_blame_the_learning_rate(tiny_data):
    class Broken(Net):
        def loss(self, y_hat, y):
            return super().loss(y_hat, y) * float("nan")

    with pytest.raises(FloatingPointError, match="before any update, so the learning rate is "
                                                 "not the cause") as err:
        _fit(Broken(), tiny_data, on_diverge="raise")
    assert "lower the learning rate" not in str(err.value)
