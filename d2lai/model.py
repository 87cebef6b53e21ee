"""Models: what a model must say about its loss, its training step and its validation step."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["AbstractModel", "AbstractClassifier", "accuracy"]


class AbstractModel(nn.Module):
    """A model that knows its loss. Subclasses set `self.net` (or override `forward`) and `loss`."""

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        return self.net(X)

    def loss(self, y_hat: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} must define loss(y_hat, y)")

    def training_step(self, batch) -> torch.Tensor:
        """Loss of one batch `(X..., y)`; the trainer differentiates it."""
        *X, y = batch
        return self.loss(self(*X), y)

    def validation_step(self, batch):
        """Loss of one validation batch (classifiers also return the accuracy)."""
        *X, y = batch
        return self.loss(self(*X), y)

    def configure_optimizers(self, rule) -> torch.optim.Optimizer:
        """Bind an optimiser rule (`Descent(0.1)`, ...) to this model's trainable parameters."""
        from .optim import setup

        return setup(rule, self)

    def check_batch(self, y_hat: torch.Tensor, y: torch.Tensor,
                    num_classes: int | None = None) -> None:
        """Raise a ValueError when a batch and the model's output cannot go together."""
        if y_hat.shape[0] != y.shape[0]:
            raise ValueError(f"the model returned {y_hat.shape[0]} outputs for a batch of "
                             f"{y.shape[0]} targets (output shape {tuple(y_hat.shape)})")


class AbstractClassifier(AbstractModel):
    """A model whose output is class probabilities (its net ends in a softmax, as in the book)."""

    def loss(self, y_hat: torch.Tensor, y: torch.Tensor, averaged: bool = True) -> torch.Tensor:
        """Cross-entropy of probabilities: -log(p_y + eps), finite even where p_y is 0 (as Flux)."""
        eps = torch.finfo(y_hat.dtype).eps
        return F.nll_loss(torch.log(y_hat + eps), y, reduction="mean" if averaged else "none")

    def validation_step(self, batch) -> tuple[torch.Tensor, torch.Tensor]:
        *X, y = batch
        y_hat = self(*X)
        return self.loss(y_hat, y), accuracy(y_hat, y)

    def accuracy(self, y_hat: torch.Tensor, y: torch.Tensor, averaged: bool = True):
        return accuracy(y_hat, y, averaged)

    def check_batch(self, y_hat: torch.Tensor, y: torch.Tensor,
                    num_classes: int | None = None) -> None:
        n = y.shape[0]
        expected = f"({n}, {num_classes if num_classes is not None else 'num_classes'})"
        if y_hat.ndim != 2 or y_hat.shape[0] != n:
            raise ValueError(f"expected the model to output class probabilities of shape "
                             f"{expected}, got {tuple(y_hat.shape)}")
        if num_classes is not None and y_hat.shape[1] != num_classes:
            raise ValueError(f"expected the model to output {num_classes} class probabilities "
                             f"per sample (the data has {num_classes} classes), got "
                             f"{y_hat.shape[1]}: output shape {tuple(y_hat.shape)}")
        if y.ndim != 1 or y.dtype.is_floating_point or y.dtype == torch.bool:
            raise ValueError(f"expected labels as a 1-D integer tensor of length {n}, got "
                             f"shape {tuple(y.shape)} and dtype {y.dtype}")
        lo, hi = int(y.min()), int(y.max())
        if lo < 0 or hi >= y_hat.shape[1]:
            raise ValueError(f"expected labels in 0..{y_hat.shape[1] - 1} (one per output "
                             f"class), got labels from {lo} to {hi}")


def accuracy(y_hat: torch.Tensor, y: torch.Tensor, averaged: bool = True) -> torch.Tensor:
    """Fraction of rows whose largest entry is at the label (0/1 per row if not averaged)."""
    correct = (y_hat.argmax(dim=1) == y).float()
    return correct.mean() if averaged else correct
