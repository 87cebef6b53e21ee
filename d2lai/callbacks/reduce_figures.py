"""ReduceFigures: under torchrun, each epoch's figures over every rank's samples."""

from __future__ import annotations

from .. import distributed
from .base import Callback

__all__ = ["ReduceFigures"]


class ReduceFigures(Callback):
    """Each rank measures its own part of the data; this turns the training figures and the
    validation figures into means over every rank's samples, so that the epoch line, the
    history and `Metrics` are those one process reports. Before validation, every rank gets
    rank 0's buffers (batch-norm statistics, which differ between ranks unless synchronised),
    so that all ranks validate, and rank 0 saves, the same model. The trainer adds it under
    torchrun."""

    order = 25  # after the training figures (20), before the epoch line (40) and yours (50)

    def on_train_start(self, trainer, loader) -> None:
        self.samples = 0

    def on_train_batch_start(self, trainer, batch) -> None:
        self.samples += len(batch[-1])

    def on_train_epoch_end(self, trainer, logs: dict) -> None:
        logs.update(distributed.mean_over_ranks(logs, self.samples, trainer.device))
        distributed.broadcast_buffers(trainer.model)

    def on_validation_start(self, trainer, loader) -> None:
        self.samples = 0

    def on_validation_batch_start(self, trainer, batch) -> None:
        self.samples += len(batch[-1])

    def on_validation_end(self, trainer, logs: dict) -> None:
        logs.update(distributed.mean_over_ranks(logs, self.samples, trainer.device))
