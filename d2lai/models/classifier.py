"""Classifiers: class scores out, cross-entropy as the head calls for, accuracy."""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import nn

from .base import AbstractModel

__all__ = ["AbstractClassifier", "HEADS", "accuracy", "guess_head"]

# What a classifier's last layer gives, and the loss that goes with it.
HEADS = {
    "probabilities": "-log(p + eps), the book's loss after a softmax",
    "log_probabilities": "nll_loss, after a log_softmax",
    "logits": "cross_entropy, which applies the softmax itself",
}



class AbstractClassifier(AbstractModel):
    """A model whose output scores classes: probabilities, log-probabilities or logits.

    The book's nets end in a softmax (probabilities); most PyTorch code ends in a Linear layer
    (logits) or a log_softmax. Set the class attribute `head` to one of `HEADS` to declare it;
    left at None, it is decided from the first batch, and the loss follows it, computed stably.
    """

    head: str | None = None

    def loss(self, y_hat: torch.Tensor, y: torch.Tensor, averaged: bool = True) -> torch.Tensor:
        """Cross-entropy of the outputs against integer labels, as the head calls for."""
        reduction = "mean" if averaged else "none"
        y = y.long()
        head = self.output_head(y_hat)
        if head == "logits":
            return F.cross_entropy(y_hat, y, reduction=reduction)
        if head == "log_probabilities":
            return F.nll_loss(y_hat, y, reduction=reduction)
        eps = torch.finfo(y_hat.dtype).eps  # finite even where p is 0, as Flux computes it
        return F.nll_loss(torch.log(y_hat + eps), y, reduction=reduction)

    def output_head(self, y_hat: torch.Tensor) -> str:
        """The head declared, or the one guessed from the first outputs seen (then kept)."""
        if self.head is not None:
            if self.head not in HEADS:
                raise ValueError(f"{type(self).__name__}.head must be one of "
                                 f"{', '.join(map(repr, HEADS))} or None, got {self.head!r}")
            return self.head
        if getattr(self, "_head", None) is None:
            self._head = guess_head(y_hat)
            if self._head == "logits" and bool((y_hat >= 0).all()):
                warnings.warn(
                    f"{type(self).__name__}'s outputs are >= 0 but their rows do not sum to 1 "
                    f"(a ReLU head, or a forgotten softmax): scoring them as logits with "
                    f"cross_entropy. If they are meant as probabilities, end the net in "
                    f"nn.Softmax(dim=1); to silence this, declare head = 'logits' on the class.",
                    UserWarning, stacklevel=2)
        return self._head

    def validation_step(self, batch) -> tuple[torch.Tensor, torch.Tensor]:
        *X, y = batch
        y_hat = self(*X)
        return self.loss(y_hat, y), accuracy(y_hat, y)

    def accuracy(self, y_hat: torch.Tensor, y: torch.Tensor, averaged: bool = True):
        return accuracy(y_hat, y, averaged)

    def check_batch(self, y_hat: torch.Tensor, y: torch.Tensor,
                    num_classes: int | None = None) -> None:
        n = y.shape[0] if y.ndim else 1
        expected = f"({n}, {num_classes if num_classes is not None else 'num_classes'})"
        if y_hat.ndim != 2 or y_hat.shape[0] != n:
            raise ValueError(f"expected the model to output class scores of shape {expected}, "
                             f"got {tuple(y_hat.shape)}")
        if num_classes is not None and y_hat.shape[1] != num_classes:
            raise ValueError(f"expected the model to output {num_classes} class scores per "
                             f"sample (the data has {num_classes} classes), got "
                             f"{y_hat.shape[1]}: output shape {tuple(y_hat.shape)}")
        _check_labels(y, n, y_hat.shape[1])
        if self.head in ("probabilities", "log_probabilities") and guess_head(y_hat) != self.head:
            raise ValueError(
                f"{type(self).__name__} declares head = {self.head!r} but its first outputs "
                f"are not {self.head.replace('_', '-')} (row sums from "
                f"{float(y_hat.sum(1).min()):.3g} to {float(y_hat.sum(1).max()):.3g}, values "
                f"from {float(y_hat.min()):.3g} to {float(y_hat.max()):.3g}). End the net in "
                f"{'nn.Softmax(dim=1)' if self.head == 'probabilities' else 'nn.LogSoftmax(dim=1)'}"
                f", or declare head = 'logits'.")


def guess_head(y_hat: torch.Tensor, tol: float = 1e-3) -> str:
    """'probabilities' if rows are >= 0 and sum to 1, 'log_probabilities' if their logsumexp is
    0, else 'logits'."""
    with torch.no_grad():
        p = y_hat.detach().double()
        if not bool(torch.isfinite(p).all()):
            return "logits"
        if bool((p >= 0).all()) and bool(((p.sum(1) - 1).abs() <= tol).all()):
            return "probabilities"
        if bool((p <= 0).all()) and bool((torch.logsumexp(p, 1).abs() <= tol).all()):
            return "log_probabilities"
        return "logits"


def _check_labels(y: torch.Tensor, n: int, num_classes: int) -> None:
    if y.ndim != 1 or y.dtype.is_floating_point or y.dtype.is_complex or y.dtype == torch.bool:
        raise ValueError(f"expected labels as a 1-D integer tensor of length {n}, got "
                         f"shape {tuple(y.shape)} and dtype {y.dtype}")
    if len(y):
        lo, hi = int(y.min()), int(y.max())
        if lo < 0 or hi >= num_classes:
            raise ValueError(f"expected labels in 0..{num_classes - 1} (one per output "
                             f"class), got labels from {lo} to {hi}")


def accuracy(*args, averaged: bool = True) -> torch.Tensor:
    """Fraction of rows whose largest score is at the label (0/1 per row if not averaged).

    `accuracy(y_hat, y)`, or `accuracy(model, y_hat, y)` as the Julia text calls it.
    """
    if args and isinstance(args[0], nn.Module):
        args = args[1:]
    if len(args) == 3:
        *args, averaged = args
    if len(args) != 2:
        raise TypeError("accuracy takes (y_hat, y) or (model, y_hat, y)")
    y_hat, y = (torch.as_tensor(a) for a in args)
    if y_hat.ndim != 2 or y.ndim != 1 or len(y) != len(y_hat):
        raise ValueError(f"accuracy expects scores of shape (n, num_classes) and labels of "
                         f"shape (n,), got {tuple(y_hat.shape)} and {tuple(y.shape)}")
    if y.dtype.is_floating_point or y.dtype == torch.bool:
        raise ValueError(f"accuracy expects integer labels, got dtype {y.dtype}")
    correct = (y_hat.argmax(dim=1) == y).float()
    return correct.mean() if averaged else correct
