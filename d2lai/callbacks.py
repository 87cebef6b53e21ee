"""Callbacks: code that runs around the training loop (at fit start, each epoch's end, fit end).

A callback overrides the hooks it needs; `on_epoch_end` gets the epoch's figures (`logs`) and
may stop the fit by setting `trainer.should_stop = True`.
"""

from __future__ import annotations

import copy
import logging
import math
import os

logger = logging.getLogger("d2lai")

__all__ = ["Callback", "EarlyStopping", "DrawBoard", "monitor_mode"]


class Callback:
    """Hooks the trainer calls; each does nothing unless overridden."""

    def on_fit_start(self, trainer) -> None:
        """Before the first epoch of a fit (the model and data are on their device)."""

    def on_epoch_end(self, trainer, epoch: int, logs: dict[str, float]) -> None:
        """After an epoch's validation, with its figures (`train_loss`, `val_acc`, ...)."""

    def on_fit_end(self, trainer, metrics) -> None:
        """After the last epoch, also when the fit diverged or was interrupted."""


def monitor_mode(monitor: str, mode: str = "auto") -> str:
    """'min' or 'max': 'auto' maximises accuracies and minimises everything else."""
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
    if mode != "auto":
        return mode
    return "max" if "acc" in monitor else "min"


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


class DrawBoard(Callback):
    """Draw each epoch's figures on the trainer's board; save it at the end if a path is given.

    The board marks the best epoch of `monitor` (an EarlyStopping's, else the validation
    accuracy, else the validation loss).
    """

    def __init__(self, board, path: str | os.PathLike | None = None):
        self.board, self.path = board, path

    def on_fit_start(self, trainer) -> None:
        if self.path is not None:
            from .board import check_plot_path

            check_plot_path(self.path)
        for name, values in trainer.history.items():  # a resumed run's earlier epochs
            if values and name not in self.board.series:
                self.board.draw(list(range(1, len(values) + 1)), values, name)

    def on_epoch_end(self, trainer, epoch: int, logs: dict[str, float]) -> None:
        for name in trainer.history:
            if logs.get(name) is not None:
                self.board.draw(epoch, logs[name], name)
        stopper = next((c for c in trainer.callbacks if isinstance(c, EarlyStopping)), None)
        monitor = (stopper.monitor if stopper else "val_acc" if "val_acc" in logs
                   else "val_loss")
        self.board.mark_best(monitor, monitor_mode(monitor, stopper.mode if stopper else "auto"))

    def on_fit_end(self, trainer, metrics) -> None:
        if self.path is None or not self.board.series:
            return
        try:
            saved = self.board.save_plot(self.path)
        except Exception as err:  # the trained model matters more than its picture
            logger.warning("could not save the board to %s: %s", self.path, err)
            return
        logger.log(logging.INFO if trainer.verbose else logging.DEBUG, "board saved to %s", saved)
