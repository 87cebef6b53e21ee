"""The optimisation chapter's helpers: 2-D traces of an update rule on a function of two
variables, and the airfoil regression that each optimiser of the chapter is trained on (from
scratch with `train_ch11`, with a `torch.optim` class with `train_concise_ch11`).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..checks import positive_int
from .data import download, load_array
from .plotting import Animator, set_figsize
from .utils import Timer, evaluate_loss, linreg, squared_loss

__all__ = ["annotate", "train_2d", "show_trace_2d", "get_data_ch11", "train_ch11",
           "train_concise_ch11"]


def annotate(text: str, xy, xytext) -> None:
    """Write `text` at `xytext` on the current axes, with an arrow to the point `xy`."""
    from matplotlib import pyplot as plt

    plt.gca().annotate(text, xy=xy, xytext=xytext, arrowprops=dict(arrowstyle="->"))


def train_2d(trainer, steps: int = 20, f_grad=None) -> list[tuple]:
    """Run an update rule `steps` times from (x1, x2) = (-5, -2); the points visited.

    `trainer(x1, x2, s1, s2)` (or `trainer(x1, x2, s1, s2, f_grad)` when `f_grad` is given)
    returns the next (x1, x2, s1, s2); s1 and s2 are the rule's state (momentum, running
    averages), starting at 0.
    """
    steps = positive_int("steps", steps)
    x1, x2, s1, s2 = -5, -2, 0, 0
    results = [(x1, x2)]
    for _ in range(steps):
        if f_grad:
            x1, x2, s1, s2 = trainer(x1, x2, s1, s2, f_grad)
        else:
            x1, x2, s1, s2 = trainer(x1, x2, s1, s2)
        results.append((x1, x2))
    print(f"epoch {steps}, x1: {float(x1):f}, x2: {float(x2):f}")
    return results


def show_trace_2d(f, results) -> None:
    """Plot the points of `train_2d` over the contour lines of `f(x1, x2)`."""
    from matplotlib import pyplot as plt

    set_figsize()
    xs, ys = zip(*[(float(a), float(b)) for a, b in results], strict=True)
    plt.plot(xs, ys, "-o", color="#ff7f0e")
    x1, x2 = torch.meshgrid(torch.arange(-5.5, 1.0, 0.1), torch.arange(-3.0, 1.0, 0.1),
                            indexing="ij")
    plt.contour(x1, x2, f(x1, x2), colors="#1f77b4")
    plt.xlabel("x1")
    plt.ylabel("x2")


def get_data_ch11(batch_size: int = 10, n: int = 1500):
    """(minibatches, number of features) of the first `n` rows of the airfoil self-noise data,
    every column standardised; the last column is the target. Read (downloaded once) as
    `airfoil_self_noise.dat` in d2lai's data folder: tab-separated numbers, one row a line."""
    n = positive_int("n", n)
    path = download("airfoil")
    data = np.genfromtxt(path, dtype=np.float32, delimiter="\t", ndmin=2)
    if data.shape[1] < 2 or np.isnan(data).any():
        raise ValueError(f"{path} must hold rows of tab-separated numbers, features then the "
                         f"target (the book's airfoil_self_noise.dat); got shape "
                         f"{data.shape} with {int(np.isnan(data).sum())} unreadable values")
    std = data.std(axis=0)
    if (std == 0).any():
        raise ValueError(f"{path}: column(s) {np.flatnonzero(std == 0).tolist()} hold one value "
                         f"only, so they cannot be standardised")
    data = torch.from_numpy((data - data.mean(axis=0)) / std)
    data_iter = load_array((data[:n, :-1], data[:n, -1]), batch_size, is_train=True)
    return data_iter, data.shape[1] - 1


def _draw_loss(animator: Animator, n: int, batch: int, data_iter, net, loss, scale=1.0):
    animator.add(n / batch / len(data_iter), (evaluate_loss(net, data_iter, loss) * scale,))


def train_ch11(trainer_fn, states, hyperparams: dict, data_iter, feature_dim: int,
               num_epochs: int = 2):
    """Linear regression from scratch, updated by `trainer_fn([w, b], states, hyperparams)`
    after each minibatch's backward pass; the loss over the whole set is drawn every 200
    examples. Returns (the cumulated training times, the losses drawn)."""
    num_epochs = positive_int("num_epochs", num_epochs)
    w = torch.normal(mean=0.0, std=0.01, size=(positive_int("feature_dim", feature_dim), 1),
                     requires_grad=True)
    b = torch.zeros(1, requires_grad=True)
    net, loss = (lambda X: linreg(X, w, b)), squared_loss
    animator = Animator(xlabel="epoch", ylabel="loss", xlim=[0, num_epochs], ylim=[0.22, 0.35])
    n, timer = 0, Timer()
    for _ in range(num_epochs):
        for X, y in data_iter:
            loss(net(X), y).mean().backward()
            trainer_fn([w, b], states, hyperparams)
            n += X.shape[0]
            if n % 200 == 0:
                timer.stop()
                _draw_loss(animator, n, X.shape[0], data_iter, net, loss)
                timer.start()
    if animator.Y is None:  # fewer than 200 examples seen: draw the final loss once
        timer.stop()
        _draw_loss(animator, n, X.shape[0], data_iter, net, loss)
    print(f"loss: {animator.Y[0][-1]:.3f}, {timer.sum() / num_epochs:.3f} sec/epoch")
    return timer.cumsum(), animator.Y[0]


def train_concise_ch11(trainer_fn, hyperparams: dict, data_iter, num_epochs: int = 4):
    """Linear regression with `nn.Linear` and the optimiser `trainer_fn(params,
    **hyperparams)` (a `torch.optim` class); the loss is drawn every 200 examples, as by
    `train_ch11`. Returns (the cumulated training times, the losses drawn)."""
    num_epochs = positive_int("num_epochs", num_epochs)
    num_inputs = next(iter(data_iter))[0].shape[1]
    net = nn.Sequential(nn.Linear(num_inputs, 1))
    nn.init.normal_(net[0].weight, std=0.01)
    optimizer = trainer_fn(net.parameters(), **hyperparams)
    loss = nn.MSELoss(reduction="none")  # the squared error without the book's 1/2: halved below
    animator = Animator(xlabel="epoch", ylabel="loss", xlim=[0, num_epochs], ylim=[0.22, 0.35])
    n, timer = 0, Timer()
    for _ in range(num_epochs):
        for X, y in data_iter:
            optimizer.zero_grad()
            out = net(X)
            loss(out, y.reshape(out.shape)).mean().backward()
            optimizer.step()
            n += X.shape[0]
            if n % 200 == 0:
                timer.stop()
                _draw_loss(animator, n, X.shape[0], data_iter, net, loss, scale=0.5)
                timer.start()
    if animator.Y is None:
        timer.stop()
        _draw_loss(animator, n, X.shape[0], data_iter, net, loss, scale=0.5)
    print(f"loss: {animator.Y[0][-1]:.3f}, {timer.sum() / num_epochs:.3f} sec/epoch")
    return timer.cumsum(), animator.Y[0]
