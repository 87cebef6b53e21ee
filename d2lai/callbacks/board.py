"""DrawBoard: the trainer's progress board, drawn each epoch and saved at the end."""

from __future__ import annotations

import logging
import os

from ..metrics import of as metrics_of
from .base import Callback

logger = logging.getLogger("d2lai")

__all__ = ["DrawBoard"]


class DrawBoard(Callback):
    """Draw each epoch's metrics on the trainer's board; save it at the end if a path is given.

    The board stars the best epoch of the trainer's `monitor` (its first EarlyStopping's
    metric, else the validation accuracy, else the validation loss).

    Args:
        board: the `ProgressBoard` to draw on.
        path: where to save it when the fit ends (None: not saved).

    >>> Trainer(model, data, Descent(0.1), board_path="out/board.png")   # adds one
    """

    order = 90
    main_process_only = True

    def __init__(self, board, path: str | os.PathLike | None = None):
        self.board, self.path = board, path

    def on_fit_start(self, trainer) -> None:
        if self.path is not None:
            from ..board import check_plot_path

            check_plot_path(self.path)
        for name, values in trainer.history.items():  # a resumed run's earlier epochs
            if values and name not in self.board.series:
                self.board.draw(list(range(1, len(values) + 1)), values, name)

    def on_epoch_end(self, trainer, epoch: int, logs: dict[str, float]) -> None:
        for name in trainer.history:
            if logs.get(name) is not None:
                self.board.draw(epoch, logs[name], name)
        monitor = trainer.monitor or metrics_of(trainer).default_monitor(logs)
        self.board.mark_best(monitor, metrics_of(trainer).mode(monitor))

    def on_fit_end(self, trainer, metrics) -> None:
        if self.path is None or not self.board.series:
            return
        try:
            saved = self.board.save_plot(self.path)
        except Exception as err:  # the trained model matters more than its picture
            logger.warning("could not save the board to %s: %s", self.path, err)
            return
        logger.log(logging.INFO if trainer.verbose else logging.DEBUG, "board saved to %s", saved)
