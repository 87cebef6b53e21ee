"""The edition's function-style utilities, from before its object-oriented API and reused by
its later chapters: timing (`Timer`, `Benchmark`), running sums (`Accumulator`), shape checks,
the from-scratch regression pieces (`linreg`, `squared_loss`, `sgd`), accuracy counts and the
classifier training loop of the convolutional chapters (`train_ch6`).
"""

from __future__ import annotations

import time

import numpy as np
import torch
from torch import nn

from ..checks import positive_int
from .plotting import Animator

__all__ = [
    "Timer", "Benchmark", "Accumulator", "check_shape", "check_len", "linreg", "squared_loss",
    "sgd", "evaluate_loss", "accuracy", "evaluate_accuracy_gpu", "train_ch6",
]


# --- timing and running sums ---------------------------------------------------------------------

class Timer:
    """Records running times: `start()`, then `stop()` adds the seconds since to `times`."""

    def __init__(self):
        self.times: list[float] = []
        self.start()

    def start(self) -> None:
        self.tik = time.perf_counter()

    def stop(self) -> float:
        """Record and return the seconds since the last `start()`."""
        self.times.append(time.perf_counter() - self.tik)
        return self.times[-1]

    def avg(self) -> float:
        """The mean recorded time."""
        if not self.times:
            raise ValueError("Timer.avg: no time recorded yet; call timer.stop() first")
        return sum(self.times) / len(self.times)

    def sum(self) -> float:
        return sum(self.times)

    def cumsum(self) -> list[float]:
        """The running total after each recorded time."""
        return np.cumsum(self.times).tolist()


class Benchmark:
    """`with Benchmark('what'):` prints how long the block took. GPU work runs asynchronously:
    call `torch.cuda.synchronize()` at the end of the block to time it, not just its launch."""

    def __init__(self, description: str = "Done"):
        self.description = description

    def __enter__(self) -> Benchmark:
        self.timer = Timer()
        return self

    def __exit__(self, *exc) -> None:
        print(f"{self.description}: {self.timer.stop():.4f} sec")


class Accumulator:
    """Running sums of `n` values: `add(a, b, ...)` adds one value to each; `acc[i]` reads."""

    def __init__(self, n: int):
        self.data = [0.0] * positive_int("n", n)

    def add(self, *args) -> None:
        if len(args) != len(self.data):
            raise ValueError(f"Accumulator.add: {len(args)} values for {len(self.data)} sums")
        self.data = [a + float(b) for a, b in zip(self.data, args, strict=True)]

    def reset(self) -> None:
        self.data = [0.0] * len(self.data)

    def __getitem__(self, idx):
        return self.data[idx]


# --- shape checks --------------------------------------------------------------------------------

def check_len(a, n: int) -> None:
    """Fail unless `a` has length `n`."""
    if len(a) != n:
        raise AssertionError(f"list's length {len(a)} != expected length {n}")


def check_shape(a, shape) -> None:
    """Fail unless tensor `a` has shape `shape`."""
    if tuple(a.shape) != tuple(shape):
        raise AssertionError(f"tensor's shape {tuple(a.shape)} != expected shape {tuple(shape)}")


# --- linear regression from scratch --------------------------------------------------------------

def linreg(X: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The linear model `X w + b`."""
    return torch.matmul(X, w) + b


def squared_loss(y_hat: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Half the squared error, one per example (`y` reshaped like `y_hat`)."""
    return (y_hat - y.reshape(y_hat.shape)) ** 2 / 2


def sgd(params, lr: float, batch_size: int) -> None:
    """One minibatch SGD step on gradients summed over `batch_size` examples, then zero the
    gradients: `p -= lr * p.grad / batch_size`."""
    with torch.no_grad():
        for param in params:
            if param.grad is None:
                raise RuntimeError("sgd: a parameter has no gradient; call l.sum().backward() "
                                   "first, on parameters made with requires_grad=True")
            param -= lr * param.grad / batch_size
            param.grad.zero_()


def evaluate_loss(net, data_iter, loss) -> float:
    """The mean of `loss(net(X), y)` over every example of `data_iter` (no gradients)."""
    metric = Accumulator(2)  # sum of losses, number of losses
    with torch.no_grad():
        for X, y in data_iter:
            out = net(X)
            l = loss(out, y.reshape(out.shape))  # noqa: E741 (the book's name)
            metric.add(l.sum(), l.numel())
    return metric[0] / metric[1]


# --- classification ------------------------------------------------------------------------------

def accuracy(y_hat: torch.Tensor, y: torch.Tensor) -> float:
    """How many predictions are right: rows of scores (argmax) or predicted labels, against
    labels `y`."""
    if y_hat.ndim > 1 and y_hat.shape[1] > 1:
        y_hat = y_hat.argmax(dim=1)
    y_hat = y_hat.reshape(y.shape) if y_hat.numel() == y.numel() else y_hat
    if y_hat.shape != y.shape:
        raise ValueError(f"accuracy: predictions of shape {tuple(y_hat.shape)} for labels of "
                         f"shape {tuple(y.shape)}")
    return float((y_hat.type(y.dtype) == y).sum())


def evaluate_accuracy_gpu(net, data_iter, device=None) -> float:
    """The accuracy of `net` over `data_iter`, computed on `device` (default: where the net's
    parameters are) in evaluation mode without gradients; the net's mode is restored after."""
    was_training = isinstance(net, nn.Module) and net.training
    if isinstance(net, nn.Module):
        net.eval()
        if device is None:
            param = next(iter(net.parameters()), None)
            device = param.device if param is not None else None
    metric = Accumulator(2)  # right predictions, predictions
    try:
        with torch.no_grad():
            for X, y in data_iter:
                if device is not None:
                    X = [x.to(device) for x in X] if isinstance(X, list) else X.to(device)
                    y = y.to(device)
                metric.add(accuracy(net(X), y), y.numel())
    finally:
        if was_training:
            net.train()
    if metric[1] == 0:
        raise ValueError("evaluate_accuracy_gpu: data_iter gave no examples")
    return metric[0] / metric[1]


def train_ch6(net: nn.Module, train_iter, test_iter, num_epochs: int, lr: float, device) -> None:
    """Train a classifier with minibatch SGD and cross-entropy on `device` (Xavier-uniform
    weights first), drawing training loss and accuracy and test accuracy as it goes."""
    num_epochs = positive_int("num_epochs", num_epochs)

    def init_weights(m):
        if type(m) in (nn.Linear, nn.Conv2d):
            nn.init.xavier_uniform_(m.weight)

    net.apply(init_weights)
    print("training on", device)
    net.to(device)
    optimizer = torch.optim.SGD(net.parameters(), lr=lr)
    loss = nn.CrossEntropyLoss()

    def step(X, y):
        net.train()
        optimizer.zero_grad()
        X, y = X.to(device), y.to(device)
        y_hat = net(X)
        l = loss(y_hat, y)  # noqa: E741 (the book's name)
        l.backward()
        optimizer.step()
        return l.detach() * X.shape[0], accuracy(y_hat, y)

    _train_epochs(net, train_iter, test_iter, num_epochs, device, step)


def _train_epochs(net: nn.Module, train_iter, test_iter, num_epochs: int, on, step,
                  ylim=None) -> None:
    """The function-style training loop of `train_ch6` and `train_ch13`: `step(X, y)` trains on
    one batch and returns (summed loss, right predictions); training loss and accuracy are
    drawn five times an epoch, test accuracy after each, and the last metrics printed with
    the examples per second on `on`."""
    num_epochs = positive_int("num_epochs", num_epochs)
    num_batches = len(train_iter)
    if num_batches == 0:
        raise ValueError("train_iter gives no batches: the training set is smaller than one "
                         "batch (with drop_last=True) or empty")
    animator = Animator(xlabel="epoch", xlim=[1, num_epochs], ylim=ylim,
                        legend=["train loss", "train acc", "test acc"])
    timer = Timer()
    for epoch in range(num_epochs):
        metric = Accumulator(4)  # summed loss, right predictions, examples, predictions
        for i, (X, y) in enumerate(train_iter):
            timer.start()
            l, acc = step(X, y)  # noqa: E741 (the book's name)
            metric.add(l, acc, y.shape[0], y.numel())
            timer.stop()
            if (i + 1) % max(1, num_batches // 5) == 0 or i == num_batches - 1:
                animator.add(epoch + (i + 1) / num_batches,
                             (metric[0] / metric[2], metric[1] / metric[3], None))
        test_acc = evaluate_accuracy_gpu(net, test_iter)
        animator.add(epoch + 1, (None, None, test_acc))
    print(f"loss {metric[0] / metric[2]:.3f}, train acc {metric[1] / metric[3]:.3f}, "
          f"test acc {test_acc:.3f}")
    print(f"{metric[2] * num_epochs / timer.sum():.1f} examples/sec on {on}")
