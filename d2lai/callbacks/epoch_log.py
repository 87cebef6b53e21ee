"""EpochLog: one line a `print_every` epochs through the `d2lai` logger, as the Julia text."""

from __future__ import annotations

import logging

from .base import Callback

logger = logging.getLogger("d2lai")

__all__ = ["EpochLog", "JuliaFormatter", "show_logs"]

TITLES = {"train_loss": "Train Loss", "val_loss": "Val Loss", "val_acc": "Val Acc"}


class EpochLog(Callback):
    """`[ Info: Train Loss: 0.4631, Val Loss: 0.3193, Val Acc: 0.8875` every `print_every`
    epochs: at INFO when the trainer is verbose (made visible unless the program set up
    logging itself), at DEBUG when not."""

    order = 40

    def on_fit_start(self, trainer) -> None:
        if trainer.verbose:
            show_logs()

    def on_epoch_end(self, trainer, epoch: int, logs: dict[str, float]) -> None:
        if epoch % trainer.print_every == 0:
            line = ", ".join(f"{title}: {logs[k]:.4f}" for k, title in TITLES.items()
                             if k in logs) or f"Epoch {epoch}"
            logger.log(logging.INFO if trainer.verbose else logging.DEBUG, line)


class JuliaFormatter(logging.Formatter):
    """`[ Info: message`, as Julia's logging macros print it."""

    def format(self, record: logging.LogRecord) -> str:
        return f"[ {record.levelname.capitalize()}: {record.getMessage()}"


def show_logs() -> None:
    """Make the `d2lai` logger's INFO lines visible, unless the program set up logging itself."""
    if not logger.hasHandlers():
        handler = logging.StreamHandler()
        handler.setFormatter(JuliaFormatter())
        logger.addHandler(handler)
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.INFO)
