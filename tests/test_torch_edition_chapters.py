"""The PyTorch edition's chapters, typed as its readers type them, with one line changed:
`from d2l import torch as d2l` became `from d2lai import torch as d2l`.

Batch normalization (scratch and concise LeNets), linear regression (scratch and concise), and
the chapters that replace Trainer methods (`@d2l.add_to_class(d2l.Trainer)`): the scratch
training loop, the GPU chapter's `__init__`/`prepare_batch`/`prepare_model`, the RNN chapter's
`clip_gradients`. Each trains on generated data (tiny Fashion-MNIST files, synthetic regression).
"""

import logging
import random
import re

import pytest
import torch
from torch import nn

from d2lai import torch as d2l


@pytest.fixture(autouse=True)
def _restore_classes():
    """Undo what a test's `@d2l.add_to_class(...)` did to the library's classes."""
    classes = (d2l.Trainer, d2l.Module, d2l.Classifier, d2l.DataModule, d2l.FashionMNIST,
               d2l.SyntheticRegressionData)
    saved = {cls: dict(vars(cls)) for cls in classes}
    yield
    for cls, attrs in saved.items():
        for name in set(vars(cls)) - set(attrs):
            delattr(cls, name)
        for name, value in attrs.items():
            if vars(cls).get(name) is not value:
                setattr(cls, name, value)


@pytest.fixture
def fashion(fashion_root, monkeypatch):
    """The edition's FashionMNIST reads the tiny generated files (600 training, 200 test)."""
    monkeypatch.setenv("D2LAI_DATA", str(fashion_root))


def _no_cuda_warning():
    if torch.cuda.is_available():
        from contextlib import nullcontext
        return nullcontext()
    return pytest.warns(UserWarning, match="num_gpus=1 but PyTorch sees no CUDA device")


# --- Batch normalization (chapter_convolutional-modern/batch-norm.md), as typed --------------

def batch_norm(X, gamma, beta, moving_mean, moving_var, eps, momentum):
    # Use is_grad_enabled to determine whether we are in training mode
    if not torch.is_grad_enabled():
        # In prediction mode, use mean and variance obtained by moving average
        X_hat = (X - moving_mean) / torch.sqrt(moving_var + eps)
    else:
        assert len(X.shape) in (2, 4)
        if len(X.shape) == 2:
            # When using a fully connected layer, calculate the mean and
            # variance on the feature dimension
            mean = X.mean(dim=0)
            var = ((X - mean) ** 2).mean(dim=0)
        else:
            # When using a two-dimensional convolutional layer, calculate the
            # mean and variance on the channel dimension (axis=1). Here we
            # need to maintain the shape of X, so that the broadcasting
            # operation can be carried out later
            mean = X.mean(dim=(0, 2, 3), keepdim=True)
            var = ((X - mean) ** 2).mean(dim=(0, 2, 3), keepdim=True)
        # In training mode, the current mean and variance are used
        X_hat = (X - mean) / torch.sqrt(var + eps)
        # Update the mean and variance using moving average
        moving_mean = (1.0 - momentum) * moving_mean + momentum * mean
        moving_var = (1.0 - momentum) * moving_var + momentum * var
    Y = gamma * X_hat + beta  # Scale and shift
    return Y, moving_mean.data, moving_var.data


class BatchNorm(nn.Module):
    # num_features: the number of outputs for a fully connected layer or the
    # number of output channels for a convolutional layer. num_dims: 2 for a
    # fully connected layer and 4 for a convolutional layer
    def __init__(self, num_features, num_dims):
        super().__init__()
        if num_dims == 2:
            shape = (1, num_features)
        else:
            shape = (1, num_features, 1, 1)
        # The scale parameter and the shift parameter (model parameters) are
        # initialized to 1 and 0, respectively
        self.gamma = nn.Parameter(torch.ones(shape))
        self.beta = nn.Parameter(torch.zeros(shape))
        # The variables that are not model parameters are initialized to 0 and
        # 1
        self.moving_mean = torch.zeros(shape)
        self.moving_var = torch.ones(shape)

    def forward(self, X):
        # If X is not on the main memory, copy moving_mean and moving_var to
        # the device where X is located
        if self.moving_mean.device != X.device:
            self.moving_mean = self.moving_mean.to(X.device)
            self.moving_var = self.moving_var.to(X.device)
        # Save the updated moving_mean and moving_var
        Y, self.moving_mean, self.moving_var = batch_norm(
            X, self.gamma, self.beta, self.moving_mean,
            self.moving_var, eps=1e-5, momentum=0.1)
        return Y


class BNLeNetScratch(d2l.Classifier):
    def __init__(self, lr=0.1, num_classes=10):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(
            nn.LazyConv2d(6, kernel_size=5), BatchNorm(6, num_dims=4),
            nn.Sigmoid(), nn.AvgPool2d(kernel_size=2, stride=2),
            nn.LazyConv2d(16, kernel_size=5), BatchNorm(16, num_dims=4),
            nn.Sigmoid(), nn.AvgPool2d(kernel_size=2, stride=2),
            nn.Flatten(), nn.LazyLinear(120),
            BatchNorm(120, num_dims=2), nn.Sigmoid(), nn.LazyLinear(84),
            BatchNorm(84, num_dims=2), nn.Sigmoid(),
            nn.LazyLinear(num_classes))


class BNLeNet(d2l.Classifier):
    def __init__(self, lr=0.1, num_classes=10):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(
            nn.LazyConv2d(6, kernel_size=5), nn.LazyBatchNorm2d(),
            nn.Sigmoid(), nn.AvgPool2d(kernel_size=2, stride=2),
            nn.LazyConv2d(16, kernel_size=5), nn.LazyBatchNorm2d(),
            nn.Sigmoid(), nn.AvgPool2d(kernel_size=2, stride=2),
            nn.Flatten(), nn.LazyLinear(120), nn.LazyBatchNorm1d(),
            nn.Sigmoid(), nn.LazyLinear(84), nn.LazyBatchNorm1d(),
            nn.Sigmoid(), nn.LazyLinear(num_classes))


class BNLeNetSized(d2l.Classifier):
    """The concise net with the sizes written out: nn.BatchNorm2d/1d after lazy layers."""

    def __init__(self, lr=0.1, num_classes=10):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(
            nn.LazyConv2d(6, kernel_size=5), nn.BatchNorm2d(6),
            nn.Sigmoid(), nn.AvgPool2d(kernel_size=2, stride=2),
            nn.LazyConv2d(16, kernel_size=5), nn.BatchNorm2d(16),
            nn.Sigmoid(), nn.AvgPool2d(kernel_size=2, stride=2),
            nn.Flatten(), nn.LazyLinear(120), nn.BatchNorm1d(120),
            nn.Sigmoid(), nn.LazyLinear(84), nn.BatchNorm1d(84),
            nn.Sigmoid(), nn.LazyLinear(num_classes))


def test_batch_norm_chapter_scratch_lenet_trains(fashion, caplog, monkeypatch):
    modes = []  # (training mode?) of every call of the scratch layers' first instance
    forward = BatchNorm.forward

    def spy(self, X):
        if self.gamma.shape[1] == 6:
            modes.append(torch.is_grad_enabled())
        return forward(self, X)

    monkeypatch.setattr(BatchNorm, "forward", spy)
    caplog.set_level(logging.INFO, logger="d2lai")
    torch.manual_seed(0)
    with _no_cuda_warning():
        trainer = d2l.Trainer(max_epochs=2, num_gpus=1)
        data = d2l.FashionMNIST(batch_size=128)
        model = BNLeNetScratch(lr=0.1)
        model.apply_init([next(iter(data.get_dataloader(True)))[0]], d2l.init_cnn)
        trainer.fit(model, data)
    gamma, beta = model.net[1].gamma.reshape((-1,)), model.net[1].beta.reshape((-1,))
    assert gamma.shape == beta.shape == (6,)
    assert not torch.equal(gamma, torch.ones(6)) and not torch.equal(beta, torch.zeros(6))
    # 600 images in batches of 128: 5 training batches an epoch, 2 validation batches
    assert trainer.num_train_batches == 5 and trainer.num_val_batches == 2
    assert trainer.train_batch_idx == 10 and trainer.val_batch_idx == 4
    # the moving statistics move only on training batches (and on apply_init's batch, as in
    # the edition); validation runs without gradients, so the layer predicts from them
    assert sum(modes) == 1 + 10 and len(modes) - sum(modes) >= 4
    history = trainer.metrics.history
    assert trainer.metrics.epochs == 2 and not trainer.metrics.diverged
    assert history["train_loss"][1] < history["train_loss"][0]
    assert len(history["val_acc"]) == 2 and 0 <= trainer.metrics.val_acc <= 1
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Epoch ")]
    assert len(lines) == 2 and "Val Acc" in lines[0]
    board = model.board.data
    assert set(board) == {"train_loss", "val_loss", "val_acc"}
    assert [p.x for p in board["val_acc"]] == [1, 2] and model.board.xlim == [0, 2]


@pytest.mark.parametrize("Net", [BNLeNet, BNLeNetSized])
def test_batch_norm_chapter_concise_lenet_trains(fashion, Net):
    torch.manual_seed(0)
    with _no_cuda_warning():
        trainer = d2l.Trainer(max_epochs=1, num_gpus=1)
        data = d2l.FashionMNIST(batch_size=128)
        model = Net(lr=0.1)
        model.apply_init([next(iter(data.get_dataloader(True)))[0]], d2l.init_cnn)
        trainer.fit(model, data)
    bn = model.net[1]
    assert type(bn) is nn.BatchNorm2d and bn.weight.shape == (6,)
    assert bn.num_batches_tracked == 1 + 5  # apply_init's batch, then 5 training batches
    assert not torch.equal(bn.weight, torch.ones(6))
    assert trainer.metrics.epochs == 1 and trainer.metrics.val_acc is not None


def test_the_scratch_layer_normalises_as_torch_batch_norm_does():
    X = torch.randn(16, 6, 5, 5) * 3 + 1
    ours, theirs = BatchNorm(6, num_dims=4), nn.BatchNorm2d(6)
    torch.testing.assert_close(ours(X), theirs(X), atol=1e-5, rtol=1e-5)
    Z = torch.randn(16, 120)
    torch.testing.assert_close(BatchNorm(120, num_dims=2)(Z), nn.BatchNorm1d(120)(Z),
                               atol=1e-5, rtol=1e-5)


# --- Linear regression (chapter_linear-regression/*.md), as typed ----------------------------

def test_linear_regression_scratch_chapter_with_its_own_training_loop(caplog):
    class LinearRegressionScratch(d2l.Module):
        """The linear regression model implemented from scratch."""
        def __init__(self, num_inputs, lr, sigma=0.01):
            super().__init__()
            self.save_hyperparameters()
            self.w = d2l.normal(0, sigma, (num_inputs, 1), requires_grad=True)
            self.b = d2l.zeros(1, requires_grad=True)

    @d2l.add_to_class(LinearRegressionScratch)
    def forward(self, X):
        return d2l.matmul(X, self.w) + self.b

    @d2l.add_to_class(LinearRegressionScratch)
    def loss(self, y_hat, y):
        l = (y_hat - y) ** 2 / 2  # noqa: E741 (the chapter's name)
        return d2l.reduce_mean(l)

    class SGD(d2l.HyperParameters):
        """Minibatch stochastic gradient descent."""
        def __init__(self, params, lr):
            self.save_hyperparameters()

        def step(self):
            for param in self.params:
                param -= self.lr * param.grad

        def zero_grad(self):
            for param in self.params:
                if param.grad is not None:
                    param.grad.zero_()

    @d2l.add_to_class(LinearRegressionScratch)
    def configure_optimizers(self):
        return SGD([self.w, self.b], self.lr)

    @d2l.add_to_class(d2l.Trainer)
    def prepare_batch(self, batch):
        return batch

    @d2l.add_to_class(d2l.Trainer)
    def fit_epoch(self):
        self.model.train()
        for batch in self.train_dataloader:
            loss = self.model.training_step(self.prepare_batch(batch))
            self.optim.zero_grad()
            with torch.no_grad():
                loss.backward()
                if self.gradient_clip_val > 0:  # To be discussed later
                    self.clip_gradients(self.gradient_clip_val, self.model)
                self.optim.step()
            self.train_batch_idx += 1
        if self.val_dataloader is None:
            return
        self.model.eval()
        for batch in self.val_dataloader:
            with torch.no_grad():
                self.model.validation_step(self.prepare_batch(batch))
            self.val_batch_idx += 1

    caplog.set_level(logging.INFO, logger="d2lai")
    torch.manual_seed(0)
    model = LinearRegressionScratch(2, lr=0.03)
    data = d2l.SyntheticRegressionData(w=d2l.tensor([2, -3.4]), b=4.2)
    trainer = d2l.Trainer(max_epochs=3)
    trainer.fit(model, data)
    with torch.no_grad():
        error_w = data.w - d2l.reshape(model.w, data.w.shape)
        error_b = data.b - model.b
    assert error_w.abs().max() < 0.3 and error_b.abs().max() < 0.3
    # the chapter's loop counted the batches; 1000 samples in batches of 32: 32 an epoch
    assert trainer.train_batch_idx == trainer.val_batch_idx == 3 * 32
    assert [p.x for p in model.board.data["val_loss"]] == [1, 2, 3]
    train = [p.y for p in model.board.data["train_loss"]]
    assert len(train) == 6 and train[-1] < train[0] / 10
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Epoch")]
    assert [line.split(" · ")[0] for line in lines] == ["Epoch 1/3", "Epoch 2/3", "Epoch 3/3"]
    assert all(re.fullmatch(r"Epoch \d/3 · \d+\.\d s", line) for line in lines)  # no figures


def test_linear_regression_scratch_from_the_library():
    torch.manual_seed(0)
    model = d2l.LinearRegressionScratch(2, lr=0.03)
    data = d2l.SyntheticRegressionData(w=d2l.tensor([2, -3.4]), b=4.2)
    trainer = d2l.Trainer(max_epochs=3)
    trainer.fit(model, data)
    with torch.no_grad():
        error_w = data.w - d2l.reshape(model.w, data.w.shape)
        error_b = data.b - model.b
    assert error_w.abs().max() < 0.3 and error_b.abs().max() < 0.3
    losses = trainer.metrics.history["val_loss"]
    assert len(losses) == 3 and losses[2] < losses[0]


def test_linear_regression_concise_chapter():
    class LinearRegression(d2l.Module):
        """The linear regression model implemented with high-level APIs."""
        def __init__(self, lr):
            super().__init__()
            self.save_hyperparameters()
            self.net = nn.LazyLinear(1)
            self.net.weight.data.normal_(0, 0.01)
            self.net.bias.data.fill_(0)

    @d2l.add_to_class(LinearRegression)
    def forward(self, X):
        return self.net(X)

    @d2l.add_to_class(LinearRegression)
    def loss(self, y_hat, y):
        fn = nn.MSELoss()
        return fn(y_hat, y)

    @d2l.add_to_class(LinearRegression)
    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), self.lr)

    @d2l.add_to_class(LinearRegression)
    def get_w_b(self):
        return (self.net.weight.data, self.net.bias.data)

    for Model in (LinearRegression, d2l.LinearRegression):
        torch.manual_seed(0)
        model = Model(lr=0.03)
        data = d2l.SyntheticRegressionData(w=d2l.tensor([2, -3.4]), b=4.2)
        trainer = d2l.Trainer(max_epochs=3)
        trainer.fit(model, data)
        w, b = model.get_w_b()
        assert (data.w - d2l.reshape(w, data.w.shape)).abs().max() < 0.05
        assert abs(data.b - b) < 0.05


def test_synthetic_data_chapter_loaders():
    class SyntheticRegressionData(d2l.DataModule):
        """Synthetic data for linear regression."""
        def __init__(self, w, b, noise=0.01, num_train=1000, num_val=1000,
                     batch_size=32):
            super().__init__()
            self.save_hyperparameters()
            n = num_train + num_val
            self.X = d2l.randn(n, len(w))
            noise = d2l.randn(n, 1) * noise
            self.y = d2l.matmul(self.X, d2l.reshape(w, (-1, 1))) + b + noise

    data = SyntheticRegressionData(w=d2l.tensor([2, -3.4]), b=4.2)

    @d2l.add_to_class(SyntheticRegressionData)
    def get_dataloader(self, train):
        if train:
            indices = list(range(0, self.num_train))
            # The examples are read in random order
            random.shuffle(indices)
        else:
            indices = list(range(self.num_train, self.num_train+self.num_val))
        for i in range(0, len(indices), self.batch_size):
            batch_indices = d2l.tensor(indices[i: i+self.batch_size])
            yield self.X[batch_indices], self.y[batch_indices]

    X, y = next(iter(data.train_dataloader()))
    assert X.shape == (32, 2) and y.shape == (32, 1)
    with pytest.raises(TypeError, match="no length: return a loader such as"):
        d2l.Trainer(max_epochs=1).fit(d2l.LinearRegression(lr=0.03), data)

    @d2l.add_to_class(d2l.DataModule)
    def get_tensorloader(self, tensors, train, indices=slice(0, None)):
        tensors = tuple(a[indices] for a in tensors)
        dataset = torch.utils.data.TensorDataset(*tensors)
        return torch.utils.data.DataLoader(dataset, self.batch_size,
                                           shuffle=train)

    @d2l.add_to_class(SyntheticRegressionData)
    def get_dataloader(self, train):  # noqa: F811 (the chapter's second version)
        i = slice(0, self.num_train) if train else slice(self.num_train, None)
        return self.get_tensorloader((self.X, self.y), train, i)

    X, y = next(iter(data.train_dataloader()))
    assert X.shape == (32, 2) and len(data.train_dataloader()) == 32
    model = d2l.LinearRegression(lr=0.03)
    d2l.Trainer(max_epochs=2).fit(model, data)  # torch DataLoaders, d2lai's loop
    w, b = model.get_w_b()
    assert (data.w - w.reshape(-1)).abs().max() < 0.1


# --- Chapters that replace Trainer methods --------------------------------------------------

def test_gpu_chapter_overrides(fashion):
    @d2l.add_to_class(d2l.Trainer)  #@save
    def __init__(self, max_epochs, num_gpus=0, gradient_clip_val=0):
        self.save_hyperparameters()
        self.gpus = [d2l.gpu(i) for i in range(min(num_gpus, d2l.num_gpus()))]

    @d2l.add_to_class(d2l.Trainer)  #@save
    def prepare_batch(self, batch):
        if self.gpus:
            batch = [d2l.to(a, self.gpus[0]) for a in batch]
        return batch

    @d2l.add_to_class(d2l.Trainer)  #@save
    def prepare_model(self, model):
        model.trainer = self
        model.board.xlim = [0, self.max_epochs]
        if self.gpus:
            model.to(self.gpus[0])
        self.model = model

    torch.manual_seed(0)
    with _no_cuda_warning():
        trainer = d2l.Trainer(max_epochs=2, num_gpus=1)
        data = d2l.FashionMNIST(batch_size=128)
        model = d2l.SoftmaxRegression(num_outputs=10, lr=0.1)
        trainer.fit(model, data)
    assert trainer.gpus == [d2l.gpu(0)][:d2l.num_gpus()]
    assert model.trainer is trainer and model.board.xlim == [0, 2]
    assert trainer.metrics.epochs == 2 and trainer.metrics.val_acc > 0.3


def _clip_run(clip, fashion_root):
    """Parameters before and after one epoch of a LeNet with lr 0.5, clipped at `clip`."""
    torch.manual_seed(0)
    data = d2l.FashionMNIST(batch_size=128, root=fashion_root)
    model = d2l.LeNet(lr=0.5)
    model.apply_init([next(iter(data.get_dataloader(True)))[0]], d2l.init_cnn)
    before = torch.cat([p.detach().reshape(-1).clone() for p in model.parameters()])
    trainer = d2l.Trainer(max_epochs=1, gradient_clip_val=clip)
    trainer.fit(model, data)
    after = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    return float((after - before).norm()), trainer.train_batch_idx


def test_rnn_chapter_clip_gradients(fashion_root):
    @d2l.add_to_class(d2l.Trainer)  #@save
    def clip_gradients(self, grad_clip_val, model):
        params = [p for p in model.parameters() if p.requires_grad]
        norm = torch.sqrt(sum(torch.sum((p.grad ** 2)) for p in params))  # noqa: UP034
        if norm > grad_clip_val:
            for param in params:
                param.grad[:] *= grad_clip_val / norm

    free, _ = _clip_run(0, fashion_root)
    moved, steps = _clip_run(1e-3, fashion_root)
    # each step moves the weights by lr times a gradient of norm <= 1e-3
    assert 0 < moved <= steps * 0.5 * 1e-3 * (1 + 1e-4) and free > 100 * moved


# --- Softmax regression from scratch, weight decay: models and data of the reader's own ---------

def test_softmax_regression_scratch_chapter(fashion):
    def softmax(X):
        X_exp = d2l.exp(X)
        partition = d2l.reduce_sum(X_exp, 1, keepdims=True)
        return X_exp / partition  # The broadcasting mechanism is applied here

    class SoftmaxRegressionScratch(d2l.Classifier):
        def __init__(self, num_inputs, num_outputs, lr, sigma=0.01):
            super().__init__()
            self.save_hyperparameters()
            self.W = torch.normal(0, sigma, size=(num_inputs, num_outputs),
                                  requires_grad=True)
            self.b = torch.zeros(num_outputs, requires_grad=True)

        def parameters(self):
            return [self.W, self.b]

    @d2l.add_to_class(SoftmaxRegressionScratch)
    def forward(self, X):
        X = d2l.reshape(X, (-1, self.W.shape[0]))
        return softmax(d2l.matmul(X, self.W) + self.b)

    def cross_entropy(y_hat, y):
        return -d2l.reduce_mean(d2l.log(y_hat[list(range(len(y_hat))), y]))

    @d2l.add_to_class(SoftmaxRegressionScratch)
    def loss(self, y_hat, y):
        return cross_entropy(y_hat, y)

    torch.manual_seed(0)
    data = d2l.FashionMNIST(batch_size=256)
    model = SoftmaxRegressionScratch(num_inputs=784, num_outputs=10, lr=0.1)
    trainer = d2l.Trainer(max_epochs=3)
    trainer.fit(model, data)
    assert trainer.metrics.val_acc > 0.5

    X, y = next(iter(data.val_dataloader()))
    preds = d2l.argmax(model(X), axis=1)
    assert preds.shape == (200,)
    wrong = d2l.astype(preds, y.dtype) != y
    X, y, preds = X[wrong], y[wrong], preds[wrong]
    labels = [a+'\n'+b for a, b in zip(  # noqa: B905 (the chapter's code)
        data.text_labels(y), data.text_labels(preds))]
    data.visualize([X, y], labels=labels)
    d2l.plt.close("all")


@pytest.mark.filterwarnings("ignore:Converting a tensor with requires_grad")
def test_weight_decay_chapter():
    class Data(d2l.DataModule):
        def __init__(self, num_train, num_val, num_inputs, batch_size):
            self.save_hyperparameters()
            n = num_train + num_val
            self.X = d2l.randn(n, num_inputs)
            noise = d2l.randn(n, 1) * 0.01
            w, b = d2l.ones((num_inputs, 1)) * 0.01, 0.05
            self.y = d2l.matmul(self.X, w) + b + noise

        def get_dataloader(self, train):
            i = slice(0, self.num_train) if train else slice(self.num_train, None)
            return self.get_tensorloader([self.X, self.y], train, i)

    def l2_penalty(w):
        return d2l.reduce_sum(w**2) / 2

    class WeightDecayScratch(d2l.LinearRegressionScratch):
        def __init__(self, num_inputs, lambd, lr, sigma=0.01):
            super().__init__(num_inputs, lr, sigma)
            self.save_hyperparameters()

        def loss(self, y_hat, y):
            return (super().loss(y_hat, y) +
                    self.lambd * l2_penalty(self.w))

    class WeightDecay(d2l.LinearRegression):
        def __init__(self, wd, lr):
            super().__init__(lr)
            self.save_hyperparameters()
            self.wd = wd

        def configure_optimizers(self):
            return torch.optim.SGD([
                {'params': self.net.weight, 'weight_decay': self.wd},
                {'params': self.net.bias}], lr=self.lr)

    torch.manual_seed(0)
    data = Data(num_train=20, num_val=100, num_inputs=200, batch_size=5)
    trainer = d2l.Trainer(max_epochs=10)

    def train_scratch(lambd):
        model = WeightDecayScratch(num_inputs=200, lambd=lambd, lr=0.01)
        model.board.yscale = 'log'
        trainer.fit(model, data)
        return float(l2_penalty(model.w)), trainer.metrics

    free, free_metrics = train_scratch(0)
    decayed, decayed_metrics = train_scratch(3)
    assert decayed < free / 5 and decayed_metrics.val_loss < free_metrics.val_loss
    model = WeightDecay(wd=3, lr=0.01)
    model.board.yscale = 'log'
    trainer.fit(model, data)
    assert float(l2_penalty(model.get_w_b()[0])) < free / 5
    assert trainer.metrics.epochs == 10 and len(model.board.data["val_loss"]) == 10
