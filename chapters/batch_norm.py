"""Batch Normalization: the layer from scratch, the two batch-normalized LeNets, and their training.

Run the chapter with `python -m chapters.batch_norm` (`--help` for the flags), or on several
processes with `torchrun --nproc_per_node=2 -m chapters.batch_norm --cpu` (add `--sync-bn` for
statistics over the whole batch).

The "batch" of batch normalisation, across ranks. Trained data-parallel, each of N ranks
computes its part of every batch: with `--batchsize 128` on 2 ranks, each rank's forward pass
sees 64 images. Every other layer does not care how the batch is cut: the gradients of the parts,
combined, are the gradient of the whole batch, and the ranks take one process's step. Batch
normalisation does care, because its output depends on the batch it normalises with: by default
each rank uses the mean and variance of its own 64 images, so the model trains as if with
batch-norm batches of 64 (noisier statistics, a little more regularisation), and its moving
statistics are rank 0's. That is what torch's `BatchNorm2d` does under DistributedDataParallel,
and usually what one wants when each rank's part is large: no communication inside the forward
pass.

With synchronised statistics (`d2lai.distributed.sync_batch_norm(model)`, `--sync-bn`) the
batch of batch normalisation is the whole global batch again: each layer sums the ranks' sums
of values and of squared deviations (`mean_var_over_ranks`), normalises with the mean and
variance of all 128 images, and its gradient flows back across the ranks the same way, so
training equals one process's with batch 128. It costs two small all-reduces per layer and per
step, in the forward and in the backward pass; worth it when each rank's part is small (a few
images per GPU, as in detection or segmentation), where per-rank statistics are too noisy. For
torch's layers the conversion is torch's `SyncBatchNorm`; for the scratch layer it is the
`sync` switch of `batch_norm` below, one line around the same mathematics.
"""

from __future__ import annotations

import argparse
import inspect
import math
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
import torch
from torch import nn

import d2lai
from chapters.cli import (
    HelpFormatter,
    check_outputs,
    common_flags,
    fit_and_record,
    learning_rate,
    load_data,
    run,
    speed,
    tensorboard,
    write_or_say,
)
from d2lai import AbstractClassifier, Descent, RunTable, Trainer
from d2lai.checks import ArgumentError, Check, count, flag, number, positive_int
from d2lai.distributed import is_main_process, mean_var_over_ranks, say, sync_batch_norm

__all__ = ["batch_norm", "BatchNormLayer", "BLeNetScratch", "BLeNetConcise", "main"]


def batch_norm(X: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor,
               moving_mean: torch.Tensor, moving_var: torch.Tensor, eps: float,
               momentum: float, train_mode: bool = True, sync: bool = False):
    """Batch normalization of X; returns (Y, new moving mean, new moving variance).

    Training mode normalises with the batch mean and biased batch variance and moves the
    moving statistics towards the batch's (the variance unbiased, as torch does); prediction
    mode normalises with the moving statistics. Both then scale by gamma and shift by beta.
    With `sync`, under torchrun, the batch is every rank's part of it together.
    """
    check_batch_norm(X, (gamma, beta, moving_mean, moving_var), eps, momentum, train_mode)
    if not train_mode:
        X_hat = (X - moving_mean) / torch.sqrt(moving_var + eps)
        return gamma * X_hat + beta, moving_mean, moving_var
    # Fully connected: statistics over the batch. Convolutional: per channel over N, H and W.
    dims = (0,) if X.ndim == 2 else (0, 2, 3)
    mean = X.mean(dim=dims, keepdim=True)
    var = ((X - mean) ** 2).mean(dim=dims, keepdim=True)
    n = X.numel() // X.shape[1]  # values behind each feature's statistics
    if sync:  # the batch is all ranks' parts: their statistics together (module docstring)
        mean, var, n = mean_var_over_ranks(X, dims)
    X_hat = (X - mean) / torch.sqrt(var + eps)
    with torch.no_grad():
        new_mean = (1 - momentum) * moving_mean + momentum * mean
        new_var = (1 - momentum) * moving_var + momentum * var * (n / (n - 1))
    return gamma * X_hat + beta, new_mean, new_var


class BatchNormLayer(nn.Module):
    """Batch normalization from scratch: trainable gamma and beta, moving statistics as buffers.

    `norm_fn` is the mathematics (default `batch_norm`); pass another function with the same
    signature and return value to try a variant without rewriting the layer. `sync=True`
    (or `d2lai.distributed.sync_batch_norm(model)`) computes the statistics over every rank's
    part of the batch under torchrun; `norm_fn` must then take `sync=` as `batch_norm` does.
    """

    def __init__(self, num_features: int, num_dims: int,
                 norm_fn: Callable = batch_norm, eps: float = 1e-5, momentum: float = 0.1,
                 sync: bool = False):
        super().__init__()
        args = LAYER_ARGS(dict(num_features=num_features, num_dims=num_dims, eps=eps,
                               momentum=momentum, sync=sync))
        if sync and "sync" not in inspect.signature(norm_fn).parameters:
            raise ArgumentError(f"sync=True needs a norm_fn that takes sync= (as batch_norm "
                                f"does); {getattr(norm_fn, '__name__', norm_fn)!r} does not")
        shape = (1, num_features) if num_dims == 2 else (1, num_features, 1, 1)
        self.num_features, self.num_dims = args["num_features"], args["num_dims"]
        self.norm_fn, self.eps, self.momentum = norm_fn, args["eps"], args["momentum"]
        self.sync = args["sync"]
        self.gamma = nn.Parameter(torch.ones(shape))
        self.beta = nn.Parameter(torch.zeros(shape))
        self.register_buffer("moving_mean", torch.zeros(shape))
        self.register_buffer("moving_var", torch.ones(shape))

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        check_layer_input(self, X)
        norm_fn = partial(self.norm_fn, sync=True) if self.sync else self.norm_fn
        # Statistics in the layer's own dtype (float32) even when X comes in bfloat16 or
        # float16 under mixed precision, as torch's BatchNorm keeps them; Y goes out as X came.
        Y, moving_mean, moving_var = norm_fn(
            X.to(self.moving_mean.dtype), self.gamma, self.beta, self.moving_mean,
            self.moving_var, self.eps, self.momentum, train_mode=self.training)
        if self.training:
            with torch.no_grad():
                self.moving_mean.copy_(moving_mean)
                self.moving_var.copy_(moving_var)
        return Y.to(X.dtype)

    def extra_repr(self) -> str:
        return f"{self.num_features}, {self.num_dims}"


# --- the checks, once at each boundary (kept apart so that the mathematics reads as the book) ---

def _num_dims(name: str, value) -> int:
    if isinstance(value, bool) or value not in (2, 4):
        raise ArgumentError(f"{name} must be 2 (fully connected) or 4 (convolutional), got "
                            f"{value!r}")
    return value


LAYER_ARGS = Check(num_features=positive_int, num_dims=_num_dims,
                   eps=partial(number, low=0, high=math.inf, open_low=True, open_high=True),
                   momentum=partial(number, low=0, high=1), sync=flag)


def check_batch_norm(X: torch.Tensor, params: tuple, eps: float, momentum: float,
                     train_mode: bool) -> None:
    """batch_norm's arguments: 2-D or 4-D input, one parameter value per feature (channel),
    eps in (0, inf), momentum in [0, 1], and more than one value per feature to train on.
    Costs a few microseconds when all is well (the layer calls it every batch)."""
    if X.ndim not in (2, 4):
        raise ValueError(f"batch_norm takes 2-D input (N x features) or 4-D input "
                         f"(N x C x H x W), got a {X.ndim}-D tensor of shape {tuple(X.shape)}")
    if not (isinstance(eps, float) and 0 < eps < math.inf and isinstance(momentum, float)
            and 0 <= momentum <= 1):
        LAYER_ARGS.table["eps"]("eps", eps)
        LAYER_ARGS.table["momentum"]("momentum", momentum)
    stats = (1, X.shape[1]) if X.ndim == 2 else (1, X.shape[1], 1, 1)
    if any(not isinstance(p, torch.Tensor) or p.shape != stats for p in params):
        _check_params(X, stats, params)
    if train_mode and X.numel() // max(X.shape[1], 1) < 2:
        raise ValueError(
            f"batch normalization in training mode needs more than one value per feature, got "
            f"input of shape {tuple(X.shape)}: the variance of a single sample is 0 (and its "
            f"unbiased estimate undefined), so the layer would normalise by nothing. Use a batch "
            f"of 2 or more samples, or call model.eval() to use the moving statistics.")


def _check_params(X: torch.Tensor, stats: tuple, params: tuple) -> None:
    """Each parameter and statistic holds one value per feature (channel) of X, in any shape
    that broadcasts to `stats`."""
    names = ("gamma", "beta", "moving_mean", "moving_var")
    for name, p in zip(names, params, strict=True):
        ok = (isinstance(p, torch.Tensor) and p.ndim <= X.ndim and p.numel() == X.shape[1]
              and tuple(torch.broadcast_shapes(p.shape, stats)) == stats)
        if not ok:
            got = tuple(p.shape) if isinstance(p, torch.Tensor) else type(p).__name__
            raise ValueError(f"batch_norm: {name} must hold one value per "
                             f"{'feature' if X.ndim == 2 else 'channel'} of X, shaped {stats} "
                             f"for input of shape {tuple(X.shape)}; got {got}")


def check_layer_input(layer: BatchNormLayer, X: torch.Tensor) -> None:
    """The layer's input: its layout (2-D or 4-D) and its number of features (channels)."""
    if X.ndim != layer.num_dims:
        layout = "N x features" if layer.num_dims == 2 else "N x C x H x W"
        raise ValueError(f"{layer!r} expects {layer.num_dims}-D input ({layout}), got shape "
                         f"{tuple(X.shape)}")
    if X.shape[1] != layer.num_features:
        raise ValueError(f"{layer!r} expected {layer.num_features} "
                         f"{'features' if layer.num_dims == 2 else 'channels'}, got "
                         f"{X.shape[1]} (input shape {tuple(X.shape)})")


class BLeNetScratch(AbstractClassifier):
    """LeNet with the scratch BatchNormLayer after each conv and dense layer (the text's chain)."""

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, 6, kernel_size=5), BatchNormLayer(6, 4), nn.Sigmoid(),
            nn.Conv2d(6, 6, kernel_size=2, stride=2),
            nn.Conv2d(6, 16, kernel_size=5), BatchNormLayer(16, 4), nn.Sigmoid(),
            nn.Conv2d(16, 16, kernel_size=2, stride=2),
            nn.Flatten(),
            nn.Linear(16 * 4 * 4, 120), BatchNormLayer(120, 2), nn.Sigmoid(),
            nn.Linear(120, 84), BatchNormLayer(84, 2), nn.Sigmoid(),
            nn.Linear(84, count("num_classes", num_classes, low=2)), nn.Softmax(dim=1),
        )


class BLeNetConcise(AbstractClassifier):
    """The same idea with torch's built-in BatchNorm2d/BatchNorm1d and max pooling."""

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, 6, kernel_size=5), nn.BatchNorm2d(6), nn.Sigmoid(),
            nn.MaxPool2d(2, stride=2),
            nn.Conv2d(6, 16, kernel_size=5), nn.BatchNorm2d(16), nn.Sigmoid(),
            nn.MaxPool2d(2, stride=2),
            nn.Flatten(),
            nn.Linear(16 * 4 * 4, 120), nn.BatchNorm1d(120), nn.Sigmoid(),
            nn.Linear(120, 84), nn.BatchNorm1d(84), nn.Sigmoid(),
            nn.Linear(84, count("num_classes", num_classes, low=2)), nn.Softmax(dim=1),
        )


MODELS = {"scratch": BLeNetScratch, "concise": BLeNetConcise}


def first_batch_norm(model: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """The scale gamma and shift beta of the model's first batch-norm layer, flattened."""
    for layer in model.modules():
        if isinstance(layer, BatchNormLayer):
            return layer.gamma.detach().flatten(), layer.beta.detach().flatten()
        if isinstance(layer, nn.modules.batchnorm._BatchNorm):
            return layer.weight.detach(), layer.bias.detach()
    raise ValueError(f"{type(model).__name__} has no batch-norm layer")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m chapters.batch_norm", parents=[common_flags("out")],
        formatter_class=HelpFormatter,
        description="Train the chapter's batch-normalized LeNets on Fashion-MNIST. The epoch "
                    "lines and the tables go to standard output (--log FILE copies them), "
                    "progress bars to the terminal; Ctrl-C stops after saving (exit status "
                    "130).")
    p.add_argument("--model", choices=["scratch", "concise", "both"], default="both",
                   help="which LeNet to train: scratch (the chapter's BatchNormLayer), "
                        "concise (torch's BatchNorm2d/1d), or both, one after the other")
    p.add_argument("--lr", type=learning_rate, default=0.1, help="learning rate of Descent")
    p.add_argument("--sync-bn", action="store_true",
                   help="under torchrun: batch-norm statistics over all ranks' parts of each "
                        "batch (without it, each rank its own part's)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, dict]:
    """Train the chosen models as the chapter does; print gamma/beta and a summary table with
    each model's last and best epoch (also written to OUT/summary.csv)."""
    args = parse_args(argv)
    out = Path(args.out)
    if args.seed is not None:
        d2lai.seed(args.seed)
    names = list(MODELS) if args.model == "both" else [args.model]
    check_outputs(out, [*(f"{n}-history.json" for n in names), "summary.csv"],
                  [f"{n}-board.png" for n in names])  # before anything is trained
    data = load_data(args)
    tensorboard(args)  # installed? (before anything is trained)
    results = {}
    for name in names:
        model = MODELS[name]()
        if args.sync_bn:
            model = sync_batch_norm(model)
        trainer = Trainer(model, data, Descent(args.lr), max_epochs=args.epochs,
                          gpu=not args.cpu, board_yscale="identity",
                          board_path=out / f"{name}-board.png",
                          callbacks=tensorboard(args, out / "tensorboard" / name), **speed(args))
        say(f"\n{type(model).__name__}: {sum(p.numel() for p in model.parameters())} "
            f"parameters, {args.epochs} epochs of Descent({args.lr}), batch {args.batchsize}")
        results[name] = fit_and_record(name, trainer, out)
        gamma, beta = first_batch_norm(trainer.model)
        show = partial(np.array2string, precision=4, max_line_width=100)
        say(f"first batch-norm layer:\n  gamma = {show(gamma.numpy())}\n"
            f"  beta  = {show(beta.numpy())}")
        if results[name]["metrics"]["interrupted"]:  # Ctrl-C: stop, do not start the next
            break
    if is_main_process():  # under torchrun, rank 0 alone prints and writes
        table = summary(results)
        table.print()
        write_or_say(out / "summary.csv", table.to_csv)
    return results



def summary(results: dict[str, dict]) -> RunTable:
    """A row a model: its last epoch's figures and, beside them, its best epoch (by validation
    accuracy) and that epoch's validation figures: a net that ends below its best shows it."""
    rows = []
    for r in results.values():
        m, b = r["metrics"], r["best"]
        rows.append({"model": r["model"], "epochs": m["epochs"],
                     **{k: m[k] for k in ("train_loss", "train_acc", "val_loss", "val_acc")},
                     "best_epoch": b["epoch"] or None, "best_val_loss": b["val_loss"],
                     "best_val_acc": b["val_acc"], "seconds": r["seconds"]})
    return RunTable(rows)


if __name__ == "__main__":
    run(main)
