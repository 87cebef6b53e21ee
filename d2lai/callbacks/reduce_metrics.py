"""ReduceMetrics: under torchrun, the callbacks' metrics over every rank's samples."""

from __future__ import annotations

from .. import distributed
from ..metrics import of as metrics_of
from .base import Callback

__all__ = ["ReduceMetrics"]


class ReduceMetrics(Callback):
    """Each rank measures its own part of the data; the fit's metrics are summed over the ranks
    where they are measured (`d2lai.metrics.Measure`), and this turns the metrics callbacks add
    into means over every rank's samples, so that the epoch line, the history and `Metrics` are
    those one process reports. Before validation, every rank gets
    rank 0's buffers (batch-norm statistics, which differ between ranks unless synchronised),
    so that all ranks validate, and rank 0 saves, the same model. The trainer adds it under
    torchrun."""

    order = 25  # after the training metrics (20), before the epoch line (40) and yours (50)

    def on_train_start(self, trainer, loader) -> None:
        self.samples = 0

    def on_train_batch_start(self, trainer, batch) -> None:
        self.samples += len(batch[-1])

    def on_train_epoch_end(self, trainer, logs: dict) -> None:
        logs.update(self.reduce(trainer, logs))
        distributed.broadcast_buffers(trainer.model)

    def on_validation_start(self, trainer, loader) -> None:
        self.samples = 0

    def on_validation_batch_start(self, trainer, batch) -> None:
        self.samples += len(batch[-1])

    def on_validation_end(self, trainer, logs: dict) -> None:
        logs.update(self.reduce(trainer, logs))

    def reduce(self, trainer, logs: dict) -> dict:
        measured = set(metrics_of(trainer).keys())  # summed over the ranks already
        others = {k: v for k, v in logs.items() if k not in measured}
        return distributed.mean_over_ranks(others, self.samples, trainer.device) if others \
            else {}
