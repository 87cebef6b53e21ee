"""ProgressBar: one bar an epoch in a terminal, one status line in a notebook, nothing in a log.

In a terminal (standard error is one), each epoch has one tqdm bar over its training batches,
with the latest loss; during validation the bar says so. When the epoch ends the bar is
cleared and the epoch line takes its place, so the screen keeps one line an epoch, as Keras
leaves one finished bar an epoch. While a fit runs, the `d2lai` logger's lines (and the root
logger's, when it prints to the console) are written through tqdm (`logging_redirect_tqdm`),
so that a note never lands on a live bar.

In a notebook, a single text line is updated in place (a display id) at most twice a second:
the saved notebook keeps that one line, not hundreds of bar refreshes. Where standard error is
a file (a log, CI, `nohup`) there is no bar at all: the epoch lines tell the story.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import sys
import time

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from .. import board
from .base import Callback

__all__ = ["ProgressBar"]

logger = logging.getLogger("d2lai")


def _console_loggers() -> list[logging.Logger]:
    """The `d2lai` and root loggers that print to the console (their lines go through tqdm)."""
    def console(h):
        return isinstance(h, logging.StreamHandler) and h.stream in (sys.stdout, sys.stderr)

    return [lg for lg in (logger, logging.root) if any(console(h) for h in lg.handlers)]


class ProgressBar(Callback):
    """A bar an epoch in a terminal, a status line in a notebook, nothing elsewhere.

    Args:
        every_seconds: how often a notebook's status line is redrawn (seconds).

    The trainer adds one when `verbose=True`; `Trainer(..., verbose=False)` has none.

    >>> Trainer(model, data, Descent(0.1), verbose=True)   # a bar an epoch in a terminal
    """

    order = 30
    main_process_only = True

    def __init__(self, every_seconds: float = 0.5):
        self.every_seconds = every_seconds
        self.bar = self.redirect = self.status = None

    def on_fit_start(self, trainer) -> None:
        self.notebook = board.in_notebook()
        self.shown = not self.notebook and sys.stderr.isatty()
        self.bar, self.status, self.drawn = None, None, 0.0
        self.every = 1 if trainer.device.type == "cpu" else 25  # a loss read syncs a GPU
        self.started, self.epochs = time.perf_counter(), 0
        if self.shown:
            self.redirect = logging_redirect_tqdm(loggers=_console_loggers())
            self.redirect.__enter__()

    def title(self, trainer) -> str:
        end = f"/{trainer.stop_epoch}" if trainer.stop_epoch < math.inf else ""
        return f"Epoch {trainer.epoch + 1}{end}"

    def on_train_start(self, trainer, loader) -> None:
        self.total = len(loader) if hasattr(loader, "__len__") else None
        self.done, self.loss = 0, None
        if self.shown:  # 3 columns short of the width: a ^C echoed after it stays on its line
            width = shutil.get_terminal_size().columns if not sys.stderr.isatty() else \
                os.get_terminal_size(sys.stderr.fileno()).columns
            try:
                self.bar = tqdm(total=self.total, desc=self.title(trainer), unit="batch",
                                leave=False, ncols=max(width - 3, 20), file=sys.stderr)
            except KeyboardInterrupt:  # drawn but not made: tqdm cannot clear it, so we do
                sys.stderr.write("\r\x1b[K")
                raise
        self.show(trainer)

    def on_train_batch_end(self, trainer, batch, loss) -> None:
        self.done += 1
        if self.done % self.every == 0:
            self.loss = loss
        if self.bar is not None:
            self.bar.update()
            if self.loss is loss:
                self.bar.set_postfix_str(f"loss {float(loss.detach()):.4f}", refresh=False)
        elif self.notebook:
            self.show(trainer)

    def on_validation_start(self, trainer, loader) -> None:
        self.val_total = len(loader) if hasattr(loader, "__len__") else None
        self.val_done = 0
        if self.bar is not None:
            self.bar.set_postfix_str("validating", refresh=True)
        self.show(trainer, force=True)

    def on_validation_batch_start(self, trainer, batch) -> None:
        self.val_done += 1
        if self.bar is not None:
            of = f"/{self.val_total}" if self.val_total else ""
            self.bar.set_postfix_str(f"validating {self.val_done}{of}", refresh=False)

    def on_epoch_end(self, trainer, epoch: int, logs: dict[str, float]) -> None:
        self.close()  # before the epoch line (order 40) takes its place
        self.epochs += 1

    def show(self, trainer, force: bool = False) -> None:
        """Redraw the notebook's status line (at most every `every_seconds`)."""
        if not self.notebook or (not force and time.perf_counter() - self.drawn
                                 < self.every_seconds):
            return
        self.drawn = time.perf_counter()
        of = f"/{self.total}" if self.total else ""
        loss = "" if self.loss is None else f", loss {float(self.loss.detach()):.4f}"
        self.update(f"{self.title(trainer)}: batch {self.done}{of}{loss}")

    def update(self, text: str) -> None:
        from IPython.display import display

        if self.status is None:
            self.status = display({"text/plain": text}, raw=True, display_id=True)
        else:
            self.status.update({"text/plain": text}, raw=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def on_fit_end(self, trainer, metrics) -> None:
        self.close()
        if self.redirect is not None:
            self.redirect.__exit__(None, None, None)
            self.redirect = None
        if self.notebook and self.status is not None:
            self.update(f"{self.epochs} epoch{'s' * (self.epochs != 1)} in "
                        f"{time.perf_counter() - self.started:.1f} s")
