"""The edition's models and training: `HyperParameters`, `add_to_class`, the `ProgressBoard`,
`Module` and `Classifier`, the models of the linear, convolutional and modern-CNN chapters, and
`Trainer(max_epochs, num_gpus, gradient_clip_val).fit(model, data)`.

Underneath there is one training loop, `d2lai.Trainer`'s (first-batch checks, divergence
watch, whole-set validation, one log line per epoch, Ctrl-C), one board (`d2lai.ProgressBoard`)
and one family of classifiers (`d2lai.AbstractClassifier`: class scores in the last dimension,
(N, C) or (N, T, V), loss and accuracy over every position).
"""

from __future__ import annotations

import collections
import inspect
import math
import os
import warnings

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.axes import Axes
from matplotlib.lines import Line2D
from torch import nn

from .. import board as _board
from .. import distributed as _distributed
from .. import models as _model
from .. import trainer as _trainer
from ..checks import is_real, positive, positive_int
from ..layers import corr2d
from ..precision import Precision
from .tensors import cpu, gpu

__all__ = ["HyperParameters", "add_to_class", "ProgressBoard", "Module", "Classifier",
           "init_cnn", "SGD", "LinearRegressionScratch", "LinearRegression", "SoftmaxRegression",
           "LeNet", "Residual", "ResNeXtBlock", "corr2d", "Trainer"]

Point = collections.namedtuple("Point", ["x", "y"])


# --- the edition's utilities: hyperparameters and methods added to a class --------------------

class HyperParameters:
    """The edition's base class: `save_hyperparameters()` turns a constructor's arguments into
    attributes."""

    def save_hyperparameters(self, ignore=[]):  # noqa: B006 (the edition's signature; not mutated)
        """Set every local variable of the calling function (its arguments, when called first)
        as an attribute, except `self`, the names in `ignore` and names starting with '_';
        `self.hparams` holds them all. Read from the caller's frame, as the edition does."""
        if isinstance(ignore, str) or not isinstance(ignore, (list, tuple, set, frozenset)) \
                or not all(isinstance(name, str) for name in ignore):
            raise TypeError(f"ignore must be a list of argument names, e.g. ['c'], got {ignore!r}")
        frame = inspect.currentframe().f_back
        try:
            local_vars = dict(frame.f_locals)
        finally:
            del frame
        skip = {"self", *ignore}
        self.hparams = {k: v for k, v in local_vars.items()
                        if k not in skip and not k.startswith("_")}
        for k, v in self.hparams.items():
            setattr(self, k, v)


def add_to_class(Class: type):
    """Decorator: `@add_to_class(C)` on `def f(self, ...)` makes `f` a method of class `C` (the
    function is returned too, so its name stays usable)."""
    if not isinstance(Class, type):
        raise TypeError(f"add_to_class takes a class, e.g. @d2l.add_to_class(d2l.Trainer), got "
                        f"{type(Class).__name__}")

    def wrapper(obj):
        name = getattr(obj, "__name__", None)
        if not isinstance(name, str):
            raise TypeError(f"add_to_class decorates a function (def name(self, ...)), got "
                            f"{type(obj).__name__}")
        setattr(Class, name, obj)
        return obj

    return wrapper



# --- the board -----------------------------------------------------------------------------------

def _scalar(value, name: str):
    """A value to draw: a one-element tensor stays a tensor (detached, on its device, so that
    nothing waits for the GPU until a point is drawn); a number becomes a float."""
    if isinstance(value, torch.Tensor):
        if value.numel() != 1 or value.dtype == torch.bool or value.is_complex():
            raise ValueError(f"draw: {name} must be a number or a one-element real tensor, got a "
                             f"{value.dtype} tensor of shape {tuple(value.shape)}")
        return value.detach().reshape(())
    if isinstance(value, np.ndarray) and value.size == 1 and value.dtype.kind in "iuf":
        return float(value.reshape(()))
    if is_real(value):
        return float(value)
    raise TypeError(f"draw: {name} must be a number or a one-element tensor, got "
                    f"{type(value).__name__} {value!r:.60}")


def _mean(values):
    """The mean of numbers and one-element tensors (a float64 tensor when there are tensors)."""
    tensors = [v for v in values if isinstance(v, torch.Tensor)]
    if not tensors:
        return math.fsum(values) / len(values)
    device = tensors[0].device
    return torch.stack([torch.as_tensor(v, dtype=torch.float64).to(device)
                        for v in values]).mean()


class ProgressBoard(HyperParameters, _board.ProgressBoard):
    """The edition's board: `draw(x, y, label, every_n)` adds the mean of every `every_n` points.

    It is d2lai's `ProgressBoard` with the edition's arguments, line styles and colours: live in
    Jupyter (one picture, updated in place), nothing shown or written in a terminal unless asked
    (`board.save('board.png')`). Given `axes`, it draws into those matplotlib axes instead.
    """

    def __init__(self, xlabel=None, ylabel=None, xlim=None, ylim=None, xscale="linear",
                 yscale="linear", ls=["-", "--", "-.", ":"], colors=["C0", "C1", "C2", "C3"],  # noqa: B006
                 fig=None, axes=None, figsize=(3.5, 2.5), display=True):
        self.save_hyperparameters()
        _board.ProgressBoard.__init__(self, xlabel, xscale=xscale, yscale=yscale,
                                      colors=colors, figsize=figsize, live=False)
        self.ls, self.colors = list(ls), list(colors)  # each board its own lists
        if ylabel is not None and not isinstance(ylabel, str):
            raise TypeError(f"ylabel must be a str or None, got {ylabel!r}")
        for name, lim in (("xlim", xlim), ("ylim", ylim)):
            if lim is not None and not (isinstance(lim, (tuple, list)) and len(lim) == 2):
                raise ValueError(f"{name} must be None or [low, high], got {lim!r}")
        if isinstance(ls, str) or not self.ls:
            raise TypeError(f"ls must be a list of matplotlib line styles, got {ls!r}")
        for i, style in enumerate(self.ls):
            try:
                Line2D([], [], linestyle=style)
            except ValueError:
                raise ValueError(f"ls[{i}] is not a matplotlib line style: {style!r}") from None
        if axes is not None and not isinstance(axes, Axes):
            raise TypeError(f"axes must be matplotlib axes or None, got {type(axes).__name__}")
        self.raw_points: dict[str, list[Point]] = collections.OrderedDict()

    @property
    def data(self) -> dict[str, list[Point]]:
        """The points drawn so far, by label (each the mean of `every_n` raw points)."""
        return {label: [Point(x, y) for x, y in zip(*xy, strict=True)]
                for label, xy in self.series.items()}

    def draw(self, x, y, label: str, every_n: int = 1) -> None:
        """Collect `(x, y)` under `label`; once `every_n` are collected, draw their mean x and
        mean y as one point (so a long run gives a smooth curve of few points)."""
        _board.check_label("label", label)
        positive_int("draw: every_n", every_n)
        points = self.raw_points.setdefault(label, [])
        points.append(Point(_scalar(x, "x"), _scalar(y, "y")))
        if len(points) < every_n:
            return
        xs, ys = zip(*points, strict=True)
        points.clear()
        self.live = bool(self.display) and self.axes is None and _board.in_notebook()
        super().draw(_mean(xs), _mean(ys), label)
        if self.display and self.axes is not None:
            self.axes.cla()
            self._plot(self.axes, math.inf)

    def save(self, path: str | os.PathLike = "board.png") -> str:
        """Write the board as an image (.png, .pdf, .svg, ...); the path written."""
        return self.save_plot(path)

    def _plot(self, ax, upto: float, legend_at="best") -> None:
        """Draw every series on `ax` with the edition's line styles, labels and limits."""
        xscale = _board.check_scale("xscale", self.xscale)
        yscale = _board.check_scale("yscale", self.yscale)
        ax.set_xscale(xscale)
        ax.set_yscale(yscale)
        for i, label in enumerate(self.labels()):
            xs, ys = self._points(label, upto)
            ax.plot(xs, ys, label=label, linestyle=self.ls[i % len(self.ls)],
                    color=self.colors[i % len(self.colors)])
        if self.xlim:
            ax.set_xlim(self.xlim)
        if self.ylim:
            ax.set_ylim(self.ylim)
        ax.set_xlabel(self.xlabel or "")
        ax.set_ylabel(self.ylabel or "")
        if self.series:
            ax.legend(loc=legend_at)


# --- models --------------------------------------------------------------------------------------

class Module(_model.AbstractModel, HyperParameters):
    """The edition's base class of models: `loss`, `forward` (through `self.net`), a training
    step that plots its loss on `self.board`, a validation step, and `configure_optimizers`."""

    fields_are_weights = False  # the edition keeps constants as plain tensors (`self.P`)

    def __init__(self, plot_train_per_epoch=2, plot_valid_per_epoch=1):
        super().__init__()
        self.save_hyperparameters()
        positive("plot_train_per_epoch", plot_train_per_epoch)
        positive("plot_valid_per_epoch", plot_valid_per_epoch)
        self.board = ProgressBoard()

    def loss(self, y_hat, y):
        raise NotImplementedError(f"{type(self).__name__} must define loss(y_hat, y)")

    def forward(self, X):
        if not hasattr(self, "net"):
            raise NotImplementedError(f"{type(self).__name__} has no self.net: set it in "
                                      f"__init__, or define forward(X)")
        return self.net(X)

    def plot(self, key: str, value, train: bool) -> None:
        """Draw `value` as 'train_KEY' (x: the fraction of epochs done, averaged over
        1/plot_train_per_epoch of an epoch) or 'val_KEY' (x: the epoch number, averaged over
        1/plot_valid_per_epoch of the validation set)."""
        trainer = getattr(self, "trainer", None)
        if trainer is None:
            raise RuntimeError(f"{type(self).__name__}.plot needs a trainer: train the model "
                               f"with d2l.Trainer(...).fit(model, data)")
        self.board.xlabel = "epoch"
        if train:
            x = trainer.train_batch_idx / trainer.num_train_batches
            n = trainer.num_train_batches / self.plot_train_per_epoch
        else:
            x = trainer.epoch + 1
            n = trainer.num_val_batches / self.plot_valid_per_epoch
        self.board.draw(x, value, ("train_" if train else "val_") + key, every_n=max(1, int(n)))

    def training_step(self, batch):
        loss = self.loss(self(*batch[:-1]), batch[-1])
        self.plot("loss", loss, train=True)
        return loss

    def validation_step(self, batch):
        """Plot the batch's loss, and return it (d2lai sums it over the validation set)."""
        loss = self.loss(self(*batch[:-1]), batch[-1])
        self.plot("loss", loss, train=False)
        return loss

    def configure_optimizers(self):
        """Minibatch SGD over the model's parameters with learning rate `self.lr`."""
        if not hasattr(self, "lr"):
            raise AttributeError(f"{type(self).__name__}.configure_optimizers uses self.lr: give "
                                 f"the model an lr argument and call self.save_hyperparameters()")
        return torch.optim.SGD(self.parameters(), lr=self.lr)

    def apply_init(self, inputs, init=None) -> None:
        """Run `forward(*inputs)` once (lazy layers take their shapes), then apply `init` to
        every module of `self.net`."""
        if not isinstance(inputs, (list, tuple)):
            raise TypeError(f"apply_init takes a list of input tensors, e.g. [X], got "
                            f"{type(inputs).__name__}")
        if init is not None and not callable(init):
            raise TypeError(f"init must be a function of a module (e.g. d2l.init_cnn) or None, "
                            f"got {type(init).__name__}")
        self.forward(*inputs)
        if init is not None:
            self.net.apply(init)


class Classifier(Module, _model.AbstractClassifier):
    """The edition's base class of classifiers: outputs are logits, the loss is cross-entropy,
    validation plots (and returns) the loss and the accuracy.

    Loss and accuracy are d2lai's classifier's: scores (..., num_classes) against labels of as
    many positions, so (N, T, V) outputs of a sequence model count every position, and a model
    that knows its padding (`tgt_pad`) leaves it out.
    """

    output_kind = "logits"
    loss = _model.AbstractClassifier.loss  # not Module's, which asks a subclass for one

    def validation_step(self, batch):
        Y_hat = self(*batch[:-1])
        loss, acc = self.loss(Y_hat, batch[-1]), self.accuracy(Y_hat, batch[-1])
        self.plot("loss", loss, train=False)
        self.plot("acc", acc, train=False)
        return loss, acc

    def layer_summary(self, X_shape) -> None:
        """Print each layer's output shape for a random input of shape `X_shape`. Runs in
        evaluation mode without gradients, so the model is left as it was (and a batch of one
        passes batch-norm layers)."""
        params = list(self.net.parameters())
        X = torch.randn(*X_shape, device=params[0].device if params else None)
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                for layer in self.net:
                    X = layer(X)
                    print(layer.__class__.__name__, "output shape:\t", X.shape)
        finally:
            self.train(was_training)


def init_cnn(module: nn.Module) -> None:
    """Xavier-uniform weights for `nn.Linear` and `nn.Conv2d` layers (use with `apply_init`).
    Lazy layers without a shape yet are left alone, as the edition's constructors apply it
    before the first forward pass; `apply_init` runs that pass, then initialises."""
    if type(module) in (nn.Linear, nn.Conv2d):
        nn.init.xavier_uniform_(module.weight)


class SGD(HyperParameters):
    """Minibatch stochastic gradient descent, from scratch: `p -= lr * p.grad`."""

    def __init__(self, params, lr):
        self.save_hyperparameters()
        self.params = list(params)
        positive("lr", lr, zero=True)
        for i, p in enumerate(self.params):
            if not isinstance(p, torch.Tensor):
                raise TypeError(f"SGD: params[{i}] is a {type(p).__name__}, not a tensor")

    @torch.no_grad()
    def step(self) -> None:
        for param in self.params:
            if param.grad is not None:
                param -= self.lr * param.grad

    def zero_grad(self) -> None:
        for param in self.params:
            if param.grad is not None:
                param.grad.zero_()


class LinearRegressionScratch(Module):
    """Linear regression from scratch: weights `w` ~ N(0, sigma^2), bias `b` = 0."""

    def __init__(self, num_inputs, lr, sigma=0.01):
        super().__init__()
        self.save_hyperparameters()
        positive("num_inputs", num_inputs, integer=True)
        positive("lr", lr, zero=True)
        positive("sigma", sigma, zero=True)
        self.w = nn.Parameter(torch.normal(0, sigma, (num_inputs, 1)))
        self.b = nn.Parameter(torch.zeros(1))

    def forward(self, X):
        return torch.matmul(X, self.w) + self.b

    def loss(self, y_hat, y):
        return ((y_hat - y) ** 2 / 2).mean()

    def configure_optimizers(self):
        return SGD([self.w, self.b], self.lr)


class LinearRegression(Module):
    """Linear regression with `nn.LazyLinear(1)`: weights ~ N(0, 0.01^2) and bias 0, set when
    the layer takes its shape (at the first forward pass)."""

    def __init__(self, lr):
        super().__init__()
        self.save_hyperparameters()
        positive("lr", lr, zero=True)
        self.net = nn.LazyLinear(1)
        self._init_hook = self.net.register_forward_pre_hook(self._init_net)

    def _init_net(self, layer, args) -> None:
        self._init_hook.remove()
        with torch.no_grad():
            layer.weight.normal_(0, 0.01)
            layer.bias.fill_(0)

    def forward(self, X):
        return self.net(X)

    def loss(self, y_hat, y):
        return F.mse_loss(y_hat, y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), self.lr)

    def get_w_b(self):
        return self.net.weight.data, self.net.bias.data


class SoftmaxRegression(Classifier):
    """Softmax regression: flatten, then one lazy linear layer of `num_outputs` logits."""

    def __init__(self, num_outputs, lr):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Flatten(), nn.LazyLinear(num_outputs))

    def forward(self, X):
        return self.net(X)


class LeNet(Classifier):
    """LeNet-5: two sigmoid convolution + average-pooling stages, then three dense layers."""

    def __init__(self, lr=0.1, num_classes=10):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(
            nn.LazyConv2d(6, kernel_size=5, padding=2), nn.Sigmoid(),
            nn.AvgPool2d(kernel_size=2, stride=2),
            nn.LazyConv2d(16, kernel_size=5), nn.Sigmoid(),
            nn.AvgPool2d(kernel_size=2, stride=2), nn.Flatten(),
            nn.LazyLinear(120), nn.Sigmoid(), nn.LazyLinear(84), nn.Sigmoid(),
            nn.LazyLinear(num_classes))


class Residual(nn.Module):
    """ResNet's residual block: two 3x3 convolutions with batch norm, plus the input (through a
    1x1 convolution when `use_1x1conv`, to change channels or stride)."""

    def __init__(self, num_channels, use_1x1conv=False, strides=1):
        super().__init__()
        self.conv1 = nn.LazyConv2d(num_channels, kernel_size=3, padding=1, stride=strides)
        self.conv2 = nn.LazyConv2d(num_channels, kernel_size=3, padding=1)
        self.conv3 = (nn.LazyConv2d(num_channels, kernel_size=1, stride=strides)
                      if use_1x1conv else None)
        self.bn1, self.bn2 = nn.LazyBatchNorm2d(), nn.LazyBatchNorm2d()

    def forward(self, X):
        Y = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(X)))))
        return F.relu(Y + (self.conv3(X) if self.conv3 is not None else X))


class ResNeXtBlock(nn.Module):
    """ResNeXt's block: 1x1 bottleneck, grouped 3x3, 1x1 back to `num_channels`, each with batch
    norm; the input is added (through 1x1 convolution + batch norm when `use_1x1conv`)."""

    def __init__(self, num_channels, groups, bot_mul, use_1x1conv=False, strides=1):
        super().__init__()
        bot = int(round(num_channels * bot_mul))
        self.conv1 = nn.LazyConv2d(bot, kernel_size=1, stride=1)
        self.conv2 = nn.LazyConv2d(bot, kernel_size=3, stride=strides, padding=1,
                                   groups=bot // groups)
        self.conv3 = nn.LazyConv2d(num_channels, kernel_size=1, stride=1)
        self.bn1, self.bn2, self.bn3 = (nn.LazyBatchNorm2d() for _ in range(3))
        self.conv4 = self.bn4 = None
        if use_1x1conv:
            self.conv4 = nn.LazyConv2d(num_channels, kernel_size=1, stride=strides)
            self.bn4 = nn.LazyBatchNorm2d()

    def forward(self, X):
        Y = F.relu(self.bn2(self.conv2(F.relu(self.bn1(self.conv1(X))))))
        Y = self.bn3(self.conv3(Y))
        return F.relu(Y + (self.bn4(self.conv4(X)) if self.conv4 is not None else X))



# --- the trainer ---------------------------------------------------------------------------------

def _length(loader, which: str) -> int:
    try:
        return len(loader)
    except TypeError:
        raise TypeError(f"data.{which}_dataloader() returned a {type(loader).__name__}, which has "
                        f"no length: return a loader such as self.get_tensorloader(...)") from None


class Trainer(HyperParameters, _trainer.Trainer):
    """The edition's trainer: `Trainer(max_epochs, num_gpus, gradient_clip_val).fit(model, data)`,
    and d2lai's `precision="bf16"` (or "16" on a GPU) and `compile=True` (`d2lai.precision`).

    `fit` runs d2lai's training loop; `prepare_data`, `prepare_model`, `prepare_batch`,
    `fit_epoch` and `clip_gradients` can be replaced (`@d2l.add_to_class(d2l.Trainer)`) as the
    edition's chapters do. After `fit`, `trainer.metrics` holds the metrics of the run (whole
    validation set), the model is on the training device and the data back on the CPU. Under
    torchrun it trains data-parallel, each rank on one GPU (`num_gpus > 0`) or on the CPU.
    """

    _batch_offset = 0
    # what a book's own __init__ (`@d2l.add_to_class(d2l.Trainer)`) leaves unset: the book's
    # clipping (down to the norm, only above it), float32, eager
    clip, precision, compile = "max_norm", "32", False

    def __init__(self, max_epochs, num_gpus=0, gradient_clip_val=0, precision="32",
                 compile=False):
        self.save_hyperparameters()
        Precision(precision, compile)  # refused here, not at fit
        positive("max_epochs", max_epochs, integer=True)
        positive("num_gpus", num_gpus, integer=True, zero=True)
        positive("gradient_clip_val", gradient_clip_val, zero=True)
        self.gpus = [gpu(i) for i in range(min(num_gpus, torch.cuda.device_count()))]
        if self.gpus and _distributed.launched():  # under torchrun, each rank its own GPU
            self.gpus = [_distributed.gpu_of_this_rank()]

    @property
    def train_batch_idx(self) -> int:
        """Training batches done in this fit: d2lai's step count, plus those a replaced
        `fit_epoch` counts itself (`self.train_batch_idx += 1`)."""
        return getattr(self, "steps", 0) + self._batch_offset

    @train_batch_idx.setter
    def train_batch_idx(self, value: int) -> None:
        self._batch_offset = value - getattr(self, "steps", 0)

    def prepare_data(self, data) -> None:
        self.train_dataloader = data.train_dataloader()
        self.val_dataloader = data.val_dataloader()
        self.num_train_batches = _length(self.train_dataloader, "train")
        self.num_val_batches = (_length(self.val_dataloader, "val")
                                if self.val_dataloader is not None else 0)

    def prepare_model(self, model) -> None:
        if not isinstance(getattr(model, "board", None), _board.ProgressBoard):
            raise TypeError(f"{type(model).__name__} has no board: derive it from d2l.Module "
                            f"(or d2l.Classifier) and call super().__init__()")
        model.trainer = self
        model.board.xlim = [0, self.max_epochs]
        if getattr(self, "gpus", None):
            model.to(self.gpus[0])
        self.model = model

    def fit(self, model, data) -> None:
        """Train `model` on `data` for `max_epochs` epochs with d2lai's loop."""
        _check_model_and_data(model, data)
        gpus = getattr(self, "gpus", None) or []
        if getattr(self, "num_gpus", 0) and not gpus:
            warnings.warn(f"num_gpus={self.num_gpus} but PyTorch sees no CUDA device: training "
                          f"on the CPU", UserWarning, stacklevel=2)
        device = gpus[0] if gpus else cpu()
        movable = callable(getattr(data, "to", None))
        if movable:
            data.to(device)  # once, so that every batch is cut where the model runs
        try:
            self.prepare_data(data)
            self.prepare_model(model)
            self.optim = model.configure_optimizers()
            if not (callable(getattr(self.optim, "step", None))
                    and callable(getattr(self.optim, "zero_grad", None))):
                raise TypeError(f"{type(model).__name__}.configure_optimizers() returned "
                                f"{type(self.optim).__name__}: it must return an optimiser with "
                                f"step() and zero_grad(), e.g. torch.optim.SGD(self.parameters(), "
                                f"lr=self.lr)")
            _trainer.Trainer.__init__(self, model, data, self.optim, max_epochs=self.max_epochs,
                                      gpu=bool(gpus), gradient_clip_val=self.gradient_clip_val,
                                      board=False, clip="max_norm", precision=self.precision,
                                      compile=self.compile)
            self.train_batch_idx = self.val_batch_idx = 0
            _, self.metrics = _trainer.Trainer.fit(self)
        finally:
            model.to(device)  # d2lai's loop hands the model back on the CPU; the edition keeps it
            if movable and device.type != "cpu":
                data.to(cpu())

    def validate(self) -> dict:
        """d2lai's whole-set validation; counts the batches in `val_batch_idx`."""
        if getattr(self, "val_dataloader", True) is None:
            return {}
        metrics = super().validate()
        self.val_batch_idx += self.num_val_batches
        return metrics


def _check_model_and_data(model, data) -> None:
    if not isinstance(model, nn.Module) or not all(
            callable(getattr(model, name, None))
            for name in ("training_step", "validation_step", "configure_optimizers")):
        raise TypeError(f"trainer.fit(model, data): model must be a d2l.Module (or "
                        f"d2l.Classifier), got {type(model).__name__}")
    if not (callable(getattr(data, "train_dataloader", None))
            and callable(getattr(data, "val_dataloader", None))):
        raise TypeError(f"trainer.fit(model, data): data must be a d2l.DataModule (such as "
                        f"d2l.FashionMNIST), got {type(data).__name__}")

