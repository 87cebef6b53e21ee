"""BatchChecks: the first batches of a fit checked against the model, before anything trains."""

from __future__ import annotations

import logging

import torch

from .base import Callback

logger = logging.getLogger("d2lai")

__all__ = ["BatchChecks"]


class BatchChecks(Callback):
    """Checks the first training and validation batch against the model (its family's
    `check_batch`: shapes, labels, output kind), and that each pass has batches at all.

    A model that cannot take the batch, or whose outputs cannot go with the targets, fails
    here with a ValueError saying what was expected and what came, not deep inside torch.
    Labels out of range that first appear in a later batch are named with their epoch.

    >>> Trainer(model, data, Descent(0.1))   # every Trainer has one, first of its callbacks
    """

    order = 0

    def on_fit_start(self, trainer) -> None:
        self.checked, self.batch, self.width = set(), None, None

    def on_train_start(self, trainer, loader) -> None:
        self.count = 0

    def on_train_batch_start(self, trainer, batch) -> None:
        self.batch = batch  # the one a later error is about
        self.count += 1
        if "training" not in self.checked:
            self.check(trainer, batch, "training")

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

    def check(self, trainer, batch, kind: str) -> None:
        """Run the model on the batch in evaluation mode and let its family check the output."""
        self.checked.add(kind)
        *X, y = batch
        model = trainer.model
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
