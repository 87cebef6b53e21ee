"""EarlyStopping: stop when a figure has stopped improving, as Keras does."""

from __future__ import annotations

import copy
import logging
import math

from .base import Callback, monitor_mode

logger = logging.getLogger("d2lai")

__all__ = ["EarlyStopping"]


class EarlyStopping(Callback):
    """Stop when `monitor` has not improved for `patience` epochs (Keras's semantics).

    An improvement beats the best so far by more than `min_delta`; with `baseline`, the wait
    restarts only when the value also beats the baseline. Epochs up to `start_from_epoch` are
    not watched. With `restore_best_weights`, the model gets the weights (and buffers) of its
    best epoch back at the end of every fit, stopped early or not. A non-finite value stops at
    once. Everything is reset at each fit, so one object can serve several runs.
    """

    def __init__(self, monitor: str = "val_loss", min_delta: float = 0, patience: int = 0,
                 mode: str = "auto", baseline: float | None = None,
                 restore_best_weights: bool = False, start_from_epoch: int = 0):
        for name, value in (("patience", patience), ("start_from_epoch", start_from_epoch)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"EarlyStopping: {name} must be an integer >= 0, got {value!r}")
        if isinstance(min_delta, bool) or not isinstance(min_delta, (int, float)) \
                or not math.isfinite(min_delta):
            raise ValueError(f"EarlyStopping: min_delta must be a finite number, got "
                             f"{min_delta!r}")
        if baseline is not None and (isinstance(baseline, bool)
                                     or not isinstance(baseline, (int, float))):
            raise ValueError(f"EarlyStopping: baseline must be a number or None, got "
                             f"{baseline!r}")
        if not isinstance(monitor, str) or not monitor:
            raise ValueError(f"EarlyStopping: monitor must be a metric name such as "
                             f"'val_loss', got {monitor!r}")
        self.monitor, self.mode = monitor, monitor_mode(monitor, mode)
        self.min_delta, self.patience, self.baseline = abs(min_delta), patience, baseline
        self.restore_best_weights, self.start_from_epoch = restore_best_weights, start_from_epoch
        self.on_fit_start(None)

    def _better(self, value: float, reference: float | None) -> bool:
        if reference is None:
            return True
        if self.mode == "min":
            return value + self.min_delta < reference
        return value - self.min_delta > reference

    def on_fit_start(self, trainer) -> None:
        self.best, self.best_epoch, self.best_state = None, 0, None
        self.wait, self.stopped_epoch = 0, 0

    def on_epoch_end(self, trainer, epoch: int, logs: dict[str, float]) -> None:
        if self.monitor not in logs:
            raise ValueError(f"EarlyStopping: monitor={self.monitor!r} is not among this fit's "
                             f"figures; choose one of {', '.join(map(repr, logs))}")
        value = logs[self.monitor]
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
        if self._better(value, self.best):
            self.best = value
            self._remember(trainer, epoch)
            if self.baseline is None or self._better(value, self.baseline):
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
        if self.stopped_epoch:
            logger.info("early stopping at epoch %d: best %s %.4f at epoch %d",
                        self.stopped_epoch, self.monitor, self.best, self.best_epoch)
        if self.restore_best_weights and self.best_state is not None:
            trainer.model.load_state_dict(self.best_state)
            metrics.at_epoch(self.best_epoch)  # the figures of the weights returned
            logger.info("restored the weights of epoch %d (best %s)", self.best_epoch,
                        self.monitor)
