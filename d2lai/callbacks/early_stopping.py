"""EarlyStopping: stop when a metric has stopped improving, as Keras does."""

from __future__ import annotations

import copy
import logging
import math
from functools import partial

from ..checks import Check, count, flag, number
from .base import MonitorCallback

logger = logging.getLogger("d2lai")

__all__ = ["EarlyStopping"]

ARGS = Check(patience=count, start_from_epoch=count, min_delta=number,
             baseline=partial(number, allow_none=True), restore_best_weights=flag)


class EarlyStopping(MonitorCallback):
    """Stop when `monitor` has not improved for `patience` epochs (Keras's semantics).

    An improvement beats the best so far by more than `min_delta`; with `baseline`, the wait
    restarts only when the value also beats the baseline. Epochs up to `start_from_epoch` are
    not watched. With `restore_best_weights`, the model gets the weights (and buffers) of its
    best epoch back at the end of every fit, stopped early or not. A non-finite value stops at
    once. Everything is reset at each fit, so one object can serve several runs.

    Args:
        monitor: the metric watched (`val_loss`, `val_acc`, `train_loss`, ...); None: the
            validation loss.
        min_delta: the least change that counts as an improvement.
        patience: epochs without improvement before stopping.
        mode: "min", "max" or "auto" (accuracies maximised, the rest minimised).
        baseline: a value to beat before the wait restarts.
        restore_best_weights: give the model its best epoch's weights at the end.
        start_from_epoch: epochs not watched at the start.

    >>> stop = d2lai.EarlyStopping("val_acc", patience=3, restore_best_weights=True)
    >>> model, metrics = d2lai.fit(Trainer(model, data, Descent(0.1), max_epochs=50,
    ...                                    callbacks=[stop]))   # metrics.stopped_early
    """

    def __init__(self, monitor: str | None = None, min_delta: float = 0, patience: int = 0,
                 mode: str = "auto", baseline: float | None = None,
                 restore_best_weights: bool = False, start_from_epoch: int = 0):
        args = ARGS(dict(patience=patience, start_from_epoch=start_from_epoch,
                         min_delta=min_delta, baseline=baseline,
                         restore_best_weights=restore_best_weights), "EarlyStopping")
        super().__init__(monitor, mode, abs(args["min_delta"]))
        self.patience, self.baseline = args["patience"], args["baseline"]
        self.restore_best_weights = args["restore_best_weights"]
        self.start_from_epoch = args["start_from_epoch"]
        self.reset()

    def on_fit_start(self, trainer) -> None:
        super().on_fit_start(trainer)  # the monitor is one of the fit's metrics
        self.reset()

    def reset(self) -> None:
        self.best, self.best_epoch, self.best_state = None, 0, None
        self.wait, self.stopped_epoch = 0, 0

    def state_dict(self) -> dict:
        """What a checkpoint keeps, so that a resumed run keeps its patience and best weights."""
        return {"best": self.best, "best_epoch": self.best_epoch, "wait": self.wait,
                "stopped_epoch": self.stopped_epoch, "best_state": self.best_state}

    def load_state_dict(self, state: dict) -> None:
        for key in ("best", "best_epoch", "wait", "stopped_epoch", "best_state"):
            setattr(self, key, state[key])

    def on_epoch_end(self, trainer, epoch: int, logs: dict[str, float]) -> None:
        value = self.value(logs)
        if epoch <= self.start_from_epoch:
            return
        if value is None or not math.isfinite(value):
            self.stopped_epoch = epoch
            trainer.should_stop = True
            logger.warning("early stopping at epoch %d: %s is %s", epoch, self.monitor, value)
            return
        if self.restore_best_weights and self.best_state is None:
            self._remember(trainer, epoch)
        self.wait += 1
        if self.better(value, self.best):
            self.best = value
            self._remember(trainer, epoch)
            if self.baseline is None or self.better(value, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience:
            self.stopped_epoch = epoch
            trainer.should_stop = True

    def _remember(self, trainer, epoch: int) -> None:
        self.best_epoch = epoch
        if self.restore_best_weights:
            self.best_state = copy.deepcopy(trainer.model.state_dict())

    def on_fit_end(self, trainer, metrics) -> None:
        if self.stopped_epoch and self.best is not None:
            logger.info("early stopping at epoch %d: best %s %.4f at epoch %d",
                        self.stopped_epoch, self.monitor, self.best, self.best_epoch)
        if self.restore_best_weights and self.best_state is not None:
            trainer.model.load_state_dict(self.best_state)
            metrics.at_epoch(self.best_epoch)  # the metrics of the weights returned
            logger.info("restored the weights of epoch %d (best %s)", self.best_epoch,
                        self.monitor)
