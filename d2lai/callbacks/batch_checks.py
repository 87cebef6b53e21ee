"""BatchChecks: the first batches of a fit checked against the model, before anything trains."""

from __future__ import annotations

import logging

import torch
from torch import nn

from ..checks import is_real
from .base import Callback

logger = logging.getLogger("d2lai")

__all__ = ["BatchChecks", "check_loss"]


class BatchChecks(Callback):
    """Checks the first training batch, and the first validation batch right after it, against
    the model (its family's `check_batch`: shapes, labels, output kind) before any step; that
    each pass has batches at all; and what the first training step returns (`check_loss`).

    A model that cannot take the batch, or whose outputs cannot go with the targets, fails
    here with a ValueError saying what was expected and what came, not deep inside torch.
    Labels out of range that first appear in a later batch are named with their epoch.

    >>> Trainer(model, data, Descent(0.1))   # every Trainer has one, first of its callbacks
    """

    order = 0
    reads_outputs = False  # the loss (and accuracy) alone

    def on_fit_start(self, trainer) -> None:
        self.checked, self.batch, self.width, self.loss_checked = set(), None, None, False

    def on_train_start(self, trainer, loader) -> None:
        self.count = 0

    def on_train_batch_start(self, trainer, batch) -> None:
        self.batch = batch  # the one a later error is about
        self.count += 1
        if "training" not in self.checked:
            self.check(trainer, batch, "training")
            if "validation" not in self.checked:  # now, not after a whole training epoch
                self.check_validation(trainer)

    def on_loss(self, trainer, batch, loss) -> None:
        if not self.loss_checked:
            self.loss_checked = True
            check_loss(trainer.model, loss)

    def on_train_epoch_end(self, trainer, logs: dict) -> None:
        if self.count == 0:
            raise ValueError("the training set is empty: its data loader gave no batch")

    def on_validation_start(self, trainer, loader) -> None:
        self.count = 0

    def on_validation_batch_start(self, trainer, batch) -> None:
        self.count += 1
        if "validation" not in self.checked:
            self.check(trainer, batch, "validation")

    def on_validation_end(self, trainer, logs: dict) -> None:
        if self.count == 0:
            raise ValueError("the validation set is empty: its data loader gave no batch")

    def check_validation(self, trainer) -> None:
        """The first validation batch, checked as validation will meet it: a loader that gives
        none, or a batch the model cannot take, found before any training step. Fetching it
        draws no random number (a DataLoader's iterator draws its seed), so the fit's numbers
        are those of a fit that meets it only after training."""
        named = getattr(trainer.data, "val_dataloader", None)
        with torch.random.fork_rng(devices=[]):
            loader = named() if callable(named) else trainer.data.get_dataloader(train=False)
            if loader is None:  # a loop that does not validate (the PyTorch edition allows it)
                return
            batch = next(iter(loader), None)
        if batch is None:
            raise ValueError("the validation set is empty: its data loader gave no batch")
        self.check(trainer, trainer.prepare_batch(batch), "validation")

    def check(self, trainer, batch, kind: str) -> None:
        """Run the model on the batch in evaluation mode and let its family check the output."""
        self.checked.add(kind)
        *X, y = batch
        model = trainer.model
        if kind == "training" and isinstance(y, torch.Tensor) and len(y) == 1 \
                and any(isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training
                        for m in model.modules()):
            raise ValueError(f"the first training batch has 1 sample, but "
                             f"{type(model).__name__} has batch-norm layers, which need at least "
                             f"2 samples a training batch (a variance to normalise by): train "
                             f"on 2 samples or more, in batches of 2 or more")
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                y_hat = model(*X)
        except (RuntimeError, TypeError, IndexError) as err:
            shapes = ", ".join(f"{tuple(x.shape)} {x.dtype}" if isinstance(x, torch.Tensor)
                               else type(x).__name__ for x in X)
            raise ValueError(f"the model cannot take the first {kind} batch "
                             f"(input {shapes}): {err}") from err
        finally:
            model.train(was_training)
        if isinstance(y_hat, torch.Tensor) and isinstance(y, torch.Tensor) \
                and y_hat.ndim == y.ndim + 1 and not y.is_floating_point():
            self.width = y_hat.shape[-1]  # class scores: later labels must stay below this
        check = getattr(model, "check_batch", None)
        note = check(y_hat, y, trainer.data) if check is not None else None
        if note and kind == "training":
            logger.log(logging.INFO if trainer.verbose else logging.DEBUG, "%s", note)

    def on_exception(self, trainer, error: Exception) -> None:
        """Torch's error for labels out of range in a later batch, as a clear ValueError."""
        y = self.batch[-1] if self.batch else None
        if isinstance(error, (IndexError, RuntimeError)) and self.width \
                and isinstance(y, torch.Tensor) and not y.is_floating_point():
            from ..models.classifier import check_labels

            try:
                check_labels(y, self.width,
                             f"a training batch of epoch {trainer.epoch + 1} has labels from")
            except ValueError as clear:
                raise clear from error


def check_loss(model, loss) -> None:
    """Refuse what `model`'s training step returned (`loss`) unless the trainer can
    differentiate it: the batch's loss, a tensor of one value that requires grad.

    >>> check_loss(model, model.training_step(batch))   # a ValueError that says what to return
    """
    must = ("training_step must return the batch's loss: a tensor of one value, computed from "
            "the model's output so that it requires grad (e.g. `*X, y = batch; return "
            "self.loss(self(*X), y)`)")
    name = f"{type(model).__name__}.training_step"
    if loss is None:
        why = "returned None (is its `return` missing?)"
    elif is_real(loss):
        why = (f"returned a {type(loss).__name__} ({loss:.4g}): return the loss tensor itself, "
               f"not loss.item() or float(loss), which the trainer cannot differentiate")
    elif not isinstance(loss, torch.Tensor):
        why = f"returned a {type(loss).__name__}"
    elif loss.numel() != 1:
        why = (f"returned a loss of shape {tuple(loss.shape)}, one value per sample: return "
               f"their mean (loss.mean(), or the loss function's reduction='mean')")
    elif not loss.requires_grad:
        why = ("returned a loss that does not require grad (detached, computed under "
               "torch.no_grad(), or from frozen parameters only)")
    else:
        return
    raise ValueError(f"{name} {why}. {must}")
