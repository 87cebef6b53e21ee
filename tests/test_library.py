"""Code d2lai did not write: other data modules, optimisers, loops, and the Julia calls."""

from types import SimpleNamespace

import pytest
import torch
from conftest import TinyClassifier
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import d2lai


class LinearRegression(d2lai.AbstractModel):
    """The book's concise linear regression, with an output of `shape` per sample."""

    def __init__(self, squeeze=False):
        super().__init__()
        self.net, self.squeeze = nn.Linear(2, 1), squeeze

    def forward(self, X):
        out = self.net(X)
        return out.reshape(-1) if self.squeeze else out

    def loss(self, y_hat, y):
        return ((y_hat - y) ** 2).mean() / 2


def _regression(**kwargs):
    d2lai.seed(0)
    return d2lai.SyntheticRegressionData(w=[2.0, -3.4], b=4.2, **kwargs)


@pytest.mark.parametrize("squeeze, flat_targets", [(True, False), (False, True)])
def test_regression_outputs_and_targets_of_other_shapes_are_caught(squeeze, flat_targets):
    data = _regression()
    if flat_targets:  # targets (n,) against outputs (n, 1)
        data.y = data.y.reshape(-1)
    with pytest.raises(ValueError, match=r"would broadcast them to \(32, 32\), silently"):
        d2lai.Trainer(LinearRegression(squeeze), data, d2lai.Descent(0.03),
                      verbose=False).fit()


def test_a_regression_validation_step_gives_no_accuracy():
    data = _regression()
    model = LinearRegression()
    loss, acc = model.validation_step(next(iter(data.val_dataloader())))
    assert acc is None and loss.ndim == 0
    _, metrics = d2lai.Trainer(model, data, d2lai.Descent(0.03), max_epochs=3,
                               verbose=False).fit()
    assert metrics.val_acc is None and set(metrics.history) == {"train_loss", "val_loss"}


class LoaderData(d2lai.AbstractData):
    """A PyTorch user's data module: DataLoaders of (image, label) batches, on the CPU."""

    def __init__(self, data):
        self.sets = {train: TensorDataset(data.transform(t[0]), t[1])
                     for train, t in ((True, data.train), (False, data.val))}

    def train_dataloader(self):
        return DataLoader(self.sets[True], batch_size=64, shuffle=True)

    def val_dataloader(self):
        return DataLoader(self.sets[False], batch_size=100)


def test_a_dataloader_data_module_trains(tiny_data):
    d2lai.seed(0)
    _, metrics = d2lai.Trainer(TinyClassifier(), LoaderData(tiny_data), d2lai.Descent(0.1),
                               max_epochs=3, verbose=False).fit()
    assert metrics.val_acc > 0.9 and metrics.history["train_acc"][-1] > 0.9


class PolynomialData(d2lai.AbstractData):
    """A data module written the Julia way: arrays in X, y; arguments in args."""

    def __init__(self, num_train, num_val, num_inputs, batchsize):
        self.args = SimpleNamespace(num_train=num_train, num_val=num_val, batchsize=batchsize)
        n = num_train + num_val
        self.X = torch.randn(n, num_inputs)
        self.y = 0.01 * self.X.sum(1, keepdim=True) + 0.05 + 0.01 * torch.randn(n, 1)

    def get_dataloader(self, train=True):
        a = self.args
        part = slice(0, a.num_train) if train else slice(a.num_train, None)
        return d2lai.TensorLoader((self.X[part], self.y[part]), a.batchsize, shuffle=train)


def test_a_julia_style_data_module_trains():
    d2lai.seed(0)
    data = PolynomialData(200, 100, 20, 5)
    model = LinearRegression()
    model.net = nn.Linear(20, 1)
    _, metrics = d2lai.Trainer(model, data, d2lai.Descent(0.01), max_epochs=5,
                               verbose=False).fit()
    assert metrics.val_loss < 0.01
    first = d2lai.get_dataloader(data)  # train=True by default, as in Julia
    assert len(first) == 40 and d2lai.train_dataloader(data).batchsize == 5


def test_a_model_with_its_own_configure_optimizers(tiny_data):
    class OwnSGD(TinyClassifier):
        def configure_optimizers(self):
            self.configured = torch.optim.SGD(self.parameters(), lr=0.1)
            return self.configured

    model = OwnSGD()
    trainer = d2lai.Trainer(model, tiny_data, max_epochs=2, verbose=False)  # no opt
    _, metrics = trainer.fit()
    assert trainer.optimizer is model.configured and metrics.val_acc > 0.9
    trainer = d2lai.Trainer(OwnSGD(), tiny_data, d2lai.Adam(0.01), max_epochs=1, verbose=False)
    trainer.fit()
    assert isinstance(trainer.optimizer, torch.optim.Adam)  # the rule given wins
    with pytest.raises(ValueError, match="no optimiser: pass opt="):
        d2lai.Trainer(TinyClassifier(), tiny_data, verbose=False).fit()


def test_an_overridden_fit_epoch_is_the_loop_used(tiny_data):
    class SGD:
        """The Julia text's own optimiser: a learning rate and a step."""

        def __init__(self, lr):
            self.lr = lr

    class ScratchTrainer(d2lai.Trainer):
        def fit_epoch(self):
            self.model.train()
            losses = []
            for X, y in self.data.train_dataloader():
                loss = d2lai.training_step(self.model, (X, y))
                self.model.zero_grad()
                loss.backward()
                with torch.no_grad():
                    for p in self.model.parameters():
                        p -= self.opt.lr * p.grad
                losses.append(loss.item())
            self.calls = getattr(self, "calls", 0) + 1
            return {"train_loss": sum(losses) / len(losses)}

    d2lai.seed(0)
    trainer = ScratchTrainer(TinyClassifier(), tiny_data, SGD(0.1), max_epochs=3, verbose=False)
    _, metrics = trainer.fit()
    assert trainer.calls == 3 and metrics.val_acc > 0.9 and metrics.train_acc is None
    with pytest.raises(TypeError, match="opt must be"):
        d2lai.Trainer(TinyClassifier(), tiny_data, SGD(0.1))  # the built-in loop needs a rule


def test_the_julia_functions_of_the_model(tiny_data):
    model = TinyClassifier()
    X, y = next(iter(tiny_data.val_dataloader()))
    y_hat = d2lai.forward(model, X)
    assert torch.equal(y_hat, model(X))
    assert torch.equal(d2lai.loss(model, y_hat, y), model.loss(y_hat, y))
    assert torch.equal(d2lai.accuracy(model, y_hat, y), d2lai.accuracy(y_hat, y))
    assert d2lai.accuracy(model, y_hat, y, False).shape == (len(y),)
    torch.manual_seed(0)
    a = d2lai.training_step(model, (X, y))
    torch.manual_seed(0)
    assert torch.equal(a, model.training_step((X, y)))
    loss, acc = d2lai.validation_step(model, (X, y))
    assert torch.equal(acc, d2lai.accuracy(model(X), y))


@pytest.mark.parametrize("args, match", [
    ((torch.rand(5, 3), torch.zeros(5, 1, dtype=torch.long)), r"\(5, 3\) and \(5, 1\)"),
    ((torch.rand(5, 3), torch.zeros(4, dtype=torch.long)), r"\(5, 3\) and \(4,\)"),
    ((torch.rand(5), torch.zeros(5, dtype=torch.long)), r"\(5,\) and \(5,\)"),
    ((torch.rand(5, 3), torch.zeros(5)), "integer labels"),
])
def test_accuracy_refuses_what_it_cannot_score(args, match):
    with pytest.raises(ValueError, match=match):
        d2lai.accuracy(*args)


def test_accuracy_accepts_numpy_and_lists():
    import numpy as np

    y_hat = np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]])
    assert float(d2lai.accuracy(y_hat, [1, 1, 1])) == pytest.approx(2 / 3)
