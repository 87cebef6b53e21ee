"""ProgressBar: a bar for each training and validation pass, in terminals and notebooks."""

from __future__ import annotations

import math
import sys

try:  # notebook progress widgets when Jupyter can draw them, text bars otherwise
    import ipywidgets  # noqa: F401
    from tqdm.auto import tqdm
except ImportError:
    from tqdm import tqdm

from .. import board
from .base import Callback

__all__ = ["ProgressBar"]


class ProgressBar(Callback):
    """tqdm bars over the batches (with the latest loss looked at), shown only in a terminal or
    a notebook: a log file or CI gets the epoch lines alone."""

    order = 30

    def on_fit_start(self, trainer) -> None:
        self.shown, self.bar = board.in_notebook() or sys.stderr.isatty(), None

    def open(self, loader, desc: str) -> None:
        if self.shown:
            total = len(loader) if hasattr(loader, "__len__") else None
            self.bar = tqdm(total=total, desc=desc, unit="batch", leave=False,
                            dynamic_ncols=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def on_train_start(self, trainer, loader) -> None:
        end = f"/{trainer.stop_epoch}" if trainer.stop_epoch < math.inf else ""
        self.open(loader, f"epoch {trainer.epoch + 1}{end}")
        self.every = 1 if trainer.device.type == "cpu" else 25  # a loss read syncs a GPU

    def on_train_batch_end(self, trainer, batch, loss) -> None:
        if self.bar is not None:
            self.bar.update()
            if self.bar.n % self.every == 0:
                self.bar.set_postfix_str(f"loss {float(loss):.4f}", refresh=False)

    def on_train_epoch_end(self, trainer, logs: dict) -> None:
        self.close()

    def on_validation_start(self, trainer, loader) -> None:
        self.open(loader, "validating")

    def on_validation_batch_start(self, trainer, batch) -> None:
        if self.bar is not None:
            self.bar.update()

    def on_validation_end(self, trainer, logs: dict) -> None:
        self.close()

    def on_fit_end(self, trainer, metrics) -> None:
        self.close()
