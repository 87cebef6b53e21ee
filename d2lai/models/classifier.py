"""Classifiers: class scores out, cross-entropy as the head calls for, accuracy."""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import nn

from ..metrics import Accuracy, Loss
from .base import AbstractModel

__all__ = ["AbstractClassifier", "HEADS", "accuracy", "check_labels", "class_indices",
           "guess_head"]

# What a classifier's last layer gives, and the loss that goes with it.
HEADS = {
    "probabilities": "-log(p + eps), the book's loss after a softmax",
    "log_probabilities": "nll_loss, after a log_softmax",
    "logits": "cross_entropy, which applies the softmax itself",
}



class AbstractClassifier(AbstractModel):
    """A model whose output scores classes: probabilities, log-probabilities or logits.

    Outputs hold the class scores in their last dimension: (N, C) against labels (N,), or
    (N, T, V) against (N, T) for sequences. The book's nets end in a softmax (probabilities);
    most PyTorch code ends in a Linear layer (logits) or a log_softmax. Set the class attribute
    `output_kind` to one of `HEADS` to declare it; left at None, it is decided from the first
    batch, and the loss follows it, computed stably. `target_mask(y)` says which targets count
    (all, unless a family masks padding).
    """

    output_kind: str | None = None
    METRICS = (Loss(), Accuracy())

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        _former_head(cls, stacklevel=3)

    def loss(self, y_hat: torch.Tensor, y: torch.Tensor, averaged: bool = True) -> torch.Tensor:
        """Cross-entropy of the outputs against integer labels, as the output kind calls for;
        targets outside `target_mask(y)` are left out of the mean (and are 0 if not averaged)."""
        labels = class_indices(y_hat, y).reshape(-1)  # (n,)
        scores = y_hat.reshape(-1, y_hat.shape[-1])  # (n, C)
        if len(scores) != len(labels):
            raise ValueError(f"loss: {len(scores)} predictions but {len(labels)} labels")
        kind = self.output_head(y_hat)
        if kind == "probabilities":  # finite even where p is 0, as Flux computes it
            scores = torch.log(scores + torch.finfo(scores.dtype).eps)
        if kind == "logits":
            losses = F.cross_entropy(scores, labels, reduction="none")
        else:
            losses = F.nll_loss(scores, labels, reduction="none")
        return _masked_mean(losses, self.target_mask(y), averaged)

    def accuracy(self, y_hat: torch.Tensor, y: torch.Tensor, averaged: bool = True):
        """Fraction of targets whose largest score is at the label (0/1 each if not averaged)."""
        preds, labels = y_hat.argmax(dim=-1).reshape(-1), class_indices(y_hat, y).reshape(-1)
        if len(preds) != len(labels):
            raise ValueError(f"accuracy: {len(preds)} predictions but {len(labels)} labels")
        return _masked_mean((preds == labels).float(), self.target_mask(y), averaged)

    def target_mask(self, y: torch.Tensor) -> torch.Tensor | None:
        """Which targets count in the loss and accuracy (a boolean tensor like y); None: all."""
        return None

    def output_head(self, y_hat: torch.Tensor) -> str:
        """The output kind declared, or the one guessed from the first outputs seen (kept)."""
        if isinstance(getattr(type(self), "head", None), str):  # set after the class statement
            _former_head(next(c for c in type(self).__mro__
                              if isinstance(c.__dict__.get("head"), str)), stacklevel=4)
        if self.output_kind is not None:
            if self.output_kind not in HEADS:
                raise ValueError(f"{type(self).__name__}.output_kind must be one of "
                                 f"{', '.join(map(repr, HEADS))} or None, got "
                                 f"{self.output_kind!r}")
            return self.output_kind
        if getattr(self, "_guessed_kind", None) is None:
            self._guessed_kind = guess_head(y_hat)
            if self._guessed_kind == "logits" and bool((y_hat >= 0).all()):
                warnings.warn(
                    f"{type(self).__name__}'s outputs are >= 0 but do not sum to 1 (a ReLU "
                    f"head, or a forgotten softmax): scoring them as logits with cross_entropy. "
                    f"If they are meant as probabilities, end the net in nn.Softmax(dim=-1); to "
                    f"silence this, declare output_kind = 'logits' on the class.",
                    UserWarning, stacklevel=2)
        return self._guessed_kind

    def validation_step(self, batch) -> tuple[torch.Tensor, torch.Tensor]:
        *X, y = batch
        y_hat = self(*X)
        return self.loss(y_hat, y), self.accuracy(y_hat, y)

    def check_batch(self, y_hat: torch.Tensor, y: torch.Tensor, data=None) -> str:
        """Class scores (N, ..., C) for labels (N, ...) in 0..C-1, C the data's classes; the
        declared kind fits the outputs; all labels of in-memory data in range. Returns the
        log's note on the loss."""
        num_classes = getattr(data, "num_classes", None)
        soft = _soft_labels(y_hat, y)
        if soft is not None:
            if type(self).loss is not AbstractClassifier.loss:
                return f"{type(self).__name__} takes {soft}: loss its own"
            if soft == "one-hot labels":
                raise ValueError(f"the labels are one-hot labels: pass class indices "
                                 f"(labels.argmax({y.ndim - 1})) of shape {tuple(y.shape[:-1])}, "
                                 f"which {type(self).__name__}'s loss takes, or give the model a "
                                 f"loss of its own for them")
            raise ValueError(
                f"the labels are {soft} of shape {tuple(y.shape)} (one-hot or smoothed), but "
                f"{type(self).__name__}'s loss takes class indices of shape "
                f"{tuple(y.shape[:-1])}: serve y.argmax(-1), or give the model a loss of its "
                f"own for them, e.g. def loss(self, y_hat, y): return -(y * "
                f"torch.log_softmax(y_hat, -1)).sum(-1).mean()")
        class_indices(y_hat, y)  # fractional labels said as such
        shape = f"({', '.join(map(str, y.shape))}, {num_classes or 'num_classes'})"
        if not isinstance(y_hat, torch.Tensor) or y_hat.ndim != y.ndim + 1 \
                or y_hat.shape[:-1] != y.shape:
            got = tuple(y_hat.shape) if isinstance(y_hat, torch.Tensor) else type(y_hat).__name__
            raise ValueError(f"expected the model to output class scores of shape {shape}, "
                             f"got {got}")
        if num_classes is not None and y_hat.shape[-1] != num_classes:
            raise ValueError(f"expected the model to output {num_classes} class scores per "
                             f"target (the data has {num_classes} classes), got "
                             f"{y_hat.shape[-1]}: output shape {tuple(y_hat.shape)}")
        if y.dtype.is_floating_point or y.dtype.is_complex or y.dtype == torch.bool:
            raise ValueError(f"expected labels as an integer tensor of shape {tuple(y.shape)}, "
                             f"got dtype {y.dtype}")
        check_labels(y, y_hat.shape[-1], "the first batch has labels from")
        for split in ("train", "val", "test"):  # in-memory labels at once: min/max is cheap
            tensors = getattr(data, split, None)
            if isinstance(tensors, (tuple, list)) and tensors \
                    and isinstance(tensors[-1], torch.Tensor) \
                    and not tensors[-1].is_floating_point():
                check_labels(tensors[-1], y_hat.shape[-1], f"the {split} labels range from")
        kind = self.output_kind
        if kind in ("probabilities", "log_probabilities") and guess_head(y_hat) != kind:
            sums = y_hat.sum(-1)
            raise ValueError(
                f"{type(self).__name__} declares output_kind = {kind!r} but its first outputs "
                f"are not {kind.replace('_', '-')} (sums from {float(sums.min()):.3g} to "
                f"{float(sums.max()):.3g}, values from {float(y_hat.min()):.3g} to "
                f"{float(y_hat.max()):.3g}). End the net in "
                f"{'nn.Softmax(dim=-1)' if kind == 'probabilities' else 'nn.LogSoftmax(dim=-1)'}"
                f", or declare output_kind = 'logits'.")
        kind = self.output_head(y_hat)
        own = type(self).loss is not AbstractClassifier.loss
        return (f"{type(self).__name__} outputs {kind.replace('_', '-')}: loss "
                f"{'its own' if own else HEADS[kind]}")


def _former_head(cls, stacklevel: int) -> None:
    """Honour the class attribute `head`, the former name of `output_kind`, with a warning."""
    declared = cls.__dict__.get("head")
    if "head" in cls.__dict__ and (declared is None or isinstance(declared, str)):
        warnings.warn(f"{cls.__name__}: the class attribute `head` is now called `output_kind` "
                      f"(a layer may be called head): write output_kind = {declared!r}",
                      DeprecationWarning, stacklevel=stacklevel)
        cls.output_kind = declared
        del cls.head  # so that a layer assigned as self.head is found


def class_indices(y_hat: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """`y` as int64 class indices; labels shaped like the scores (one-hot) and fractional
    labels (which `.long()` would truncate to another class) are refused, saying what to pass."""
    if isinstance(y_hat, torch.Tensor) and y.ndim >= 2 and y.shape == y_hat.shape:
        raise ValueError(f"labels of shape {tuple(y.shape)}, the shape of the outputs, are "
                         f"one-hot labels: pass class indices (labels.argmax({y.ndim - 1})), "
                         f"of shape {tuple(y.shape[:-1])}")
    if y.is_floating_point():
        fractional = y[y != y.round()]
        if fractional.numel():
            raise ValueError(f"labels must be class indices (integers 0..C-1), got values "
                             f"such as {float(fractional[0]):g}")
    return y.long()


def _masked_mean(values: torch.Tensor, mask: torch.Tensor | None, averaged: bool):
    """The mean of `values` where `mask` holds (all if None); with `averaged` False, the values
    with the masked-out ones set to 0."""
    if mask is None:
        return values.mean() if averaged else values
    keep = mask.reshape(-1).to(values.dtype)
    return (values * keep).sum() / keep.sum().clamp(min=1) if averaged else values * keep


def guess_head(y_hat: torch.Tensor, tol: float = 1e-3) -> str:
    """'probabilities' if the scores are >= 0 and sum to 1 (over the last dimension),
    'log_probabilities' if their logsumexp is 0, else 'logits'; to `tol`, or to what the
    scores' precision allows (a softmax in bfloat16 sums to 1 within a few 1e-3)."""
    tol = max(tol, 4 * torch.finfo(y_hat.dtype).eps) if y_hat.is_floating_point() else tol
    with torch.no_grad():
        p = y_hat.detach().double()
        if not bool(torch.isfinite(p).all()):
            return "logits"
        if bool((p >= 0).all()) and bool(((p.sum(-1) - 1).abs() <= tol).all()):
            return "probabilities"
        if bool((p <= 0).all()) and bool((torch.logsumexp(p, -1).abs() <= tol).all()):
            return "log_probabilities"
        return "logits"


def check_labels(y: torch.Tensor, num_classes: int, what: str) -> None:
    """Refuse labels outside 0..num_classes-1; `what` names them ("the train labels range
    from")."""
    if y.numel():
        lo, hi = int(y.min()), int(y.max())
        if lo < 0 or hi >= num_classes:
            raise ValueError(f"{what} {lo} to {hi}, but the model outputs {num_classes} class "
                             f"scores: expected labels in 0..{num_classes - 1}")


def accuracy(*args, averaged: bool = True) -> torch.Tensor:
    """Fraction of targets whose largest score is at the label (0/1 each if not averaged).

    `accuracy(y_hat, y)` with scores (n, ..., C) and labels (n, ...), or `accuracy(model, y_hat,
    y)` as the Julia text calls it (then the model's own accuracy, which may mask padding).
    """
    model = args[0] if args and isinstance(args[0], nn.Module) else None
    args = args[1:] if model is not None else args
    if len(args) == 3:
        *args, averaged = args
    if len(args) != 2:
        raise TypeError("accuracy takes (y_hat, y) or (model, y_hat, y)")
    y_hat, y = (torch.as_tensor(a) for a in args)
    if y_hat.ndim != y.ndim + 1 or y.ndim == 0 or y_hat.shape[:-1] != y.shape:
        raise ValueError(f"accuracy expects scores of shape (n, ..., num_classes) and labels of "
                         f"shape (n, ...), got {tuple(y_hat.shape)} and {tuple(y.shape)}")
    if y.dtype.is_floating_point or y.dtype == torch.bool:
        raise ValueError(f"accuracy expects integer labels, got dtype {y.dtype}")
    if isinstance(model, AbstractClassifier):
        return model.accuracy(y_hat, y, averaged)
    correct = (y_hat.argmax(dim=-1) == y).float()
    return correct.mean() if averaged else correct


def _soft_labels(y_hat, y) -> str | None:
    """What float labels shaped like the class scores are ("one-hot labels", "soft labels"),
    or None for anything else."""
    if not (isinstance(y_hat, torch.Tensor) and isinstance(y, torch.Tensor)
            and y.is_floating_point() and y.shape == y_hat.shape and y.ndim >= 2):
        return None
    one_hot = bool(((y == 0) | (y == 1)).all()) and bool((y.sum(-1) == 1).all())
    return "one-hot labels" if one_hot else "soft labels (class probabilities)"
