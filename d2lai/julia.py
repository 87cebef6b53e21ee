"""The Julia package's helpers around `fit`, which d2lai's `Trainer` does inside itself: given
under their Julia names so that the book's calls run (`construct_nt_args`, `to_gpu`,
`prepare_data`, `prepare_model`, `draw_metrics`, `AbstractTrainer`).
"""

from __future__ import annotations

import abc
import math
from types import SimpleNamespace

import torch
from torch import nn

from .board import ProgressBoard, draw
from .data.base import train_dataloader, val_dataloader
from .device import get_device
from .trainer import Trainer

__all__ = ["AbstractTrainer", "construct_nt_args", "to_gpu", "prepare_data", "prepare_model",
           "draw_metrics"]


class AbstractTrainer(abc.ABC):
    """What `d2lai.fit(trainer)` trains: anything with `fit() -> (model, metrics)`.

    `d2lai.Trainer` is one (registered, so `isinstance(trainer, AbstractTrainer)` holds). To
    change a step of the loop, subclass `d2lai.Trainer` rather than this.
    """

    @abc.abstractmethod
    def fit(self):
        """Train; return (the model, its metrics)."""


AbstractTrainer.register(Trainer)


def construct_nt_args(**kwargs) -> SimpleNamespace:
    """The Julia `construct_nt_args(; a, b)`, a NamedTuple of its keyword arguments: here a
    namespace, `construct_nt_args(W_xi=W, b_i=b).W_xi`."""
    return SimpleNamespace(**kwargs)


def to_gpu(model: nn.Module) -> nn.Module:
    """The model on the CUDA device (on the CPU, with a warning, when there is none)."""
    return model.to(get_device(True))


def prepare_model(model: nn.Module, train_on_gpu: bool = False) -> nn.Module:
    """The model where it will train: on the GPU when `train_on_gpu` (as `fit(gpu=True)`)."""
    return model.to(get_device(train_on_gpu))


def prepare_data(data, train_on_gpu: bool = False):
    """(training loader, validation loader) of a data module; with `train_on_gpu` its tensors
    move to the GPU first, so batches are cut there (as `fit(gpu=True)` does)."""
    if train_on_gpu and callable(getattr(data, "to", None)):
        data.to(get_device(True))
    return train_dataloader(data), val_dataloader(data)


# The Julia text's per-epoch losses, (train_losses, val_losses, val_acc), by the figures' names.
_FIGURES = {"train_losses": "train_loss", "val_losses": "val_loss", "val_acc": "val_acc"}


def draw_metrics(model: nn.Module, epoch: int, trainer, metrics) -> dict[str, float]:
    """Draw one epoch's figures on `trainer.board`, as `fit` does after each epoch: the losses
    and accuracy, then the model family's own figures (a language model's perplexity).

    `metrics` holds the epoch's figures by name (`train_loss`, `val_loss`, `val_acc`, ...) or,
    as the Julia text's `fit_epoch` returns them, lists of batch values (`train_losses`,
    `val_losses`, `val_acc`), whose means are drawn. Returns the figures drawn.
    """
    board = getattr(trainer, "board", None)
    if not isinstance(board, ProgressBoard):
        raise ValueError("draw_metrics draws on trainer.board, but this trainer has none: build "
                         "it with Trainer(..., board=True)")
    items = vars(metrics) if isinstance(metrics, SimpleNamespace) else dict(metrics)
    logs = {}
    for name, value in items.items():
        if isinstance(value, torch.Tensor):
            value = value.detach().double().mean().item()
        elif isinstance(value, (list, tuple)):
            if not value:
                continue  # no accuracy for a regression: nothing to draw
            value = math.fsum(float(v) for v in value) / len(value)
        logs[_FIGURES.get(name, name)] = float(value)
    own = getattr(model, "epoch_figures", None)
    if own is not None:
        logs |= own(logs)
    for name, value in logs.items():
        draw(board, epoch, value, name)
    return logs
