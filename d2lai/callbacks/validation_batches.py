"""ValidationBatches: the last validation pass batch by batch, as the Julia package's `fit`
returns it (`(val_loss = [...], val_acc = [...])`, one value a batch)."""

from __future__ import annotations

import torch

from ..metrics import Accuracy, loss_of
from .base import Callback

__all__ = ["BatchValues", "ValidationBatches"]

NAMES = (loss_of("val"), Accuracy().key("val"))  # what a validation step returns: (loss, acc)


class BatchValues(float):
    """A metric over the whole validation set that also holds the value of each of its batches,
    as the Julia text indexes them: `metrics.val_acc[-1]` (its `val_acc[end]`, the last
    batch's), `statistics.mean(metrics.val_acc)` (its `mean(val_acc)`, the mean over batches),
    `list(metrics.val_acc)`. As a number it is the whole set's metric; `batches` is the tuple
    (`len(metrics.val_acc.batches)`). It has no `len()`: a number with a length is taken for a
    list by `pytest.approx` and the like, which would then compare the batches.
    """

    batches: tuple[float, ...]

    def __new__(cls, value: float, batches) -> BatchValues:
        number = super().__new__(cls, value)
        number.batches = tuple(float(v) for v in batches)
        return number

    def __getitem__(self, index):
        return self.batches[index]

    def __iter__(self):
        return iter(self.batches)

    def __reduce__(self):
        return type(self), (float(self), self.batches)


class ValidationBatches(Callback):
    """Keeps each validation batch's loss and accuracy (the model's `validation_step`) of the
    last pass, and gives them to the fit's `Metrics` when they are that pass's metrics: its
    `val_loss` and `val_acc` become `BatchValues`. The trainer adds it."""

    order = 95  # last: the other callbacks see the metrics as they were
    reads_outputs = False  # the loss (and accuracy) alone

    def on_validation_start(self, trainer, loader) -> None:
        self.epoch, self.values = trainer.epoch + 1, {name: [] for name in NAMES}

    def on_validation_batch_end(self, trainer, batch, out) -> None:
        loss, acc = out if isinstance(out, (tuple, list)) else (out, None)
        for name, value in zip(NAMES, (loss, acc), strict=True):
            if isinstance(value, torch.Tensor) and value.numel() == 1:
                self.values[name].append(value.detach())  # read at the end: no sync a batch
            elif isinstance(value, (int, float)):
                self.values[name].append(value)

    def on_fit_end(self, trainer, metrics) -> None:
        if getattr(self, "epoch", None) != metrics.epoch:
            return  # no validation pass, or the metrics are another epoch's (restored)
        for name, values in self.values.items():
            whole = getattr(metrics, name)
            if values and whole is not None:
                setattr(metrics, name, BatchValues(whole, [float(v) for v in values]))
