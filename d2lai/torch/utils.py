"""The edition's utilities before the object-oriented API: timing, running sums, live curves,
the from-scratch regression pieces, accuracy counts, the Fashion-MNIST loaders and the book's
data files, with the names and signatures of the PyTorch edition's `d2l` module.

The chapters written with plain functions (optimisation, computational performance) train with
these: `Animator` draws their curves, `Accumulator` sums their figures, `Timer` times them.
Data files come through d2lai's one `download` (SHA-1 checked, into d2lai's data folder).
"""

from __future__ import annotations

import numbers
import os
import time

import numpy as np
import torch
from torch import nn

from .. import board as _board
from .. import data as _data
from ..checks import positive_int
from ..data import download as _download
from ..data import download_extract as _download_extract
from ..data import extract as _extract
from ..data.download import DATA_HUB, DATA_URL
from . import set_axes, use_svg_display

__all__ = [
    "Timer", "Benchmark", "Accumulator", "Animator", "check_shape", "check_len", "load_array",
    "synthetic_data", "linreg", "squared_loss", "sgd", "evaluate_loss", "accuracy",
    "evaluate_accuracy_gpu", "train_ch6", "load_data_fashion_mnist", "get_fashion_mnist_labels",
    "DATA_URL", "DATA_HUB", "download", "extract", "download_extract",
]

# DATA_HUB is d2lai's own table: a name the book adds to it is one `download` can fetch.


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
    """Running sums of `n` figures: `add(a, b, ...)` adds one value to each; `acc[i]` reads."""

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


# --- live curves ---------------------------------------------------------------------------------

def _value(v):
    """A point's coordinate as a float (one-element tensors and arrays too); None stays None."""
    if v is None:
        return None
    n = v.numel() if isinstance(v, torch.Tensor) else np.size(v)
    if n != 1:
        raise ValueError(f"Animator.add takes numbers, got {type(v).__name__} of {n} values")
    return float(v)


class Animator:
    """Curves that grow a point at a time: `add(x, (y1, y2, ...))` appends one point to each
    curve (a None skips that curve) and redraws. In Jupyter the picture updates in place;
    elsewhere it stays a pyplot figure (`animator.fig`) to show or save."""

    def __init__(self, xlabel=None, ylabel=None, legend=None, xlim=None, ylim=None,
                 xscale="linear", yscale="linear", fmts=("-", "m--", "g-.", "r:"), nrows=1,
                 ncols=1, figsize=(3.5, 2.5)):
        from matplotlib import pyplot as plt

        nrows, ncols = positive_int("nrows", nrows), positive_int("ncols", ncols)
        if isinstance(fmts, str) or not fmts:
            raise TypeError(f"fmts must be a list of line formats such as ['-', 'm--'], "
                            f"got {fmts!r}")
        legend = [] if legend is None else list(legend)
        use_svg_display()
        self.fig, axes = plt.subplots(nrows, ncols, figsize=figsize)
        self.axes = list(np.ravel(axes))
        self.config_axes = lambda: set_axes(self.axes[0], xlabel, ylabel, xlim, ylim, xscale,
                                            yscale, legend)
        self.X, self.Y, self.fmts = None, None, fmts

    def add(self, x, y) -> None:
        """One point per curve: `y` a value or a sequence of values (one per curve), `x` one
        value for all or one per curve."""
        ys = list(y) if hasattr(y, "__len__") and not _is_scalar(y) else [y]
        xs = list(x) if hasattr(x, "__len__") and not _is_scalar(x) else [x] * len(ys)
        if len(xs) != len(ys):
            raise ValueError(f"Animator.add: {len(xs)} x values for {len(ys)} y values")
        if self.X is None:
            self.X, self.Y = [[] for _ in ys], [[] for _ in ys]
        if len(ys) != len(self.Y):
            raise ValueError(f"Animator.add: {len(ys)} values, but this animator draws "
                             f"{len(self.Y)} curves")
        for i, (a, b) in enumerate(zip(xs, ys, strict=True)):
            a, b = _value(a), _value(b)
            if a is not None and b is not None:
                self.X[i].append(a)
                self.Y[i].append(b)
        ax = self.axes[0]
        ax.cla()
        for i, (xs_i, ys_i) in enumerate(zip(self.X, self.Y, strict=True)):
            ax.plot(xs_i, ys_i, self.fmts[i % len(self.fmts)])
        self.config_axes()
        if _board.in_notebook():
            from IPython import display

            display.display(self.fig)
            display.clear_output(wait=True)


def _is_scalar(v) -> bool:
    return isinstance(v, (torch.Tensor, np.ndarray)) and v.ndim == 0


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

def load_array(data_arrays, batch_size: int, is_train: bool = True) -> _data.TensorLoader:
    """Minibatches of `batch_size` rows of the tensors `data_arrays`, reshuffled every pass
    when `is_train`; the last batch may be smaller."""
    return _data.TensorLoader(tuple(data_arrays), batch_size, shuffle=is_train,
                              merge_single=False)


def synthetic_data(w: torch.Tensor, b, num_examples: int):
    """`X` standard normal (num_examples, len(w)) and `y = X w + b + noise` (num_examples, 1),
    the noise normal with standard deviation 0.01."""
    positive_int("num_examples", num_examples)
    X = torch.normal(0, 1, (num_examples, len(w)))
    y = torch.matmul(X, w) + b
    y = y + torch.normal(0, 0.01, y.shape)
    return X, y.reshape((-1, 1))


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
    animator = Animator(xlabel="epoch", xlim=[1, num_epochs],
                        legend=["train loss", "train acc", "test acc"])
    timer, num_batches = Timer(), len(train_iter)
    for epoch in range(num_epochs):
        metric = Accumulator(3)  # summed loss, right predictions, examples
        net.train()
        for i, (X, y) in enumerate(train_iter):
            timer.start()
            optimizer.zero_grad()
            X, y = X.to(device), y.to(device)
            y_hat = net(X)
            l = loss(y_hat, y)  # noqa: E741 (the book's name)
            l.backward()
            optimizer.step()
            with torch.no_grad():
                metric.add(l * X.shape[0], accuracy(y_hat, y), X.shape[0])
            timer.stop()
            train_l, train_acc = metric[0] / metric[2], metric[1] / metric[2]
            if (i + 1) % max(1, num_batches // 5) == 0 or i == num_batches - 1:
                animator.add(epoch + (i + 1) / num_batches, (train_l, train_acc, None))
        test_acc = evaluate_accuracy_gpu(net, test_iter)
        animator.add(epoch + 1, (None, None, test_acc))
    print(f"loss {train_l:.3f}, train acc {train_acc:.3f}, test acc {test_acc:.3f}")
    print(f"{metric[2] * num_epochs / timer.sum():.1f} examples/sec on {device}")


# --- Fashion-MNIST -------------------------------------------------------------------------------

def load_data_fashion_mnist(batch_size: int, resize=None):
    """(training batches, reshuffled every pass; test batches in order) of Fashion-MNIST:
    float images (N, 1, H, W) in [0, 1], int64 labels. Read from d2lai's data folder
    (`D2LAI_DATA`, else `~/.cache/d2lai`); `resize` an int (square) or (height, width)."""
    if isinstance(resize, numbers.Integral) and not isinstance(resize, bool):
        resize = (int(resize), int(resize))
    data = _data.FashionMNISTData(batch_size=batch_size, resize=resize or None)
    return data.get_dataloader(True), data.get_dataloader(False)


def get_fashion_mnist_labels(labels) -> list[str]:
    """The Fashion-MNIST class names of label indices."""
    names = _data.FashionMNISTData.labels
    return [names[int(i)] for i in labels]


# --- the book's data files -----------------------------------------------------------------------

def download(url: str, folder: str | os.PathLike | None = None, sha1_hash: str | None = None
             ) -> str:
    """The local path of a data file: `url` (or a name in `DATA_HUB`) in `folder` (default:
    d2lai's data folder), downloaded and SHA-1 checked first if it is not there yet."""
    return str(_download(url, sha1_hash, root=folder))


def extract(filename: str | os.PathLike, folder: str | os.PathLike | None = None) -> str:
    """Unpack a zip or tar file into `folder` (default: beside it); the folder."""
    return str(_extract(filename, folder))


def download_extract(name: str, folder: str | None = None) -> str:
    """Download a zip or tar file of `DATA_HUB` and unpack it beside itself; the folder it
    holds (`folder`, else the archive's name without extension)."""
    return str(_download_extract(name, folder))
