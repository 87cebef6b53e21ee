"""TensorBoardLogger: a fit's metrics as TensorBoard scalars, for a single Trainer."""

from __future__ import annotations

import os
from pathlib import Path

from ..checks import count
from ..files import check_output_path, run_folder
from ..metrics import KNOWN, MetricList
from ..metrics import of as metrics_of
from .base import Callback

__all__ = ["TensorBoardLogger", "summary_writer", "tag"]


def summary_writer():
    """TensorBoard's SummaryWriter, imported only when asked for (tensorboard is optional);
    an ImportError that says how to install it otherwise.

    >>> writer = summary_writer()("out/tensorboard/run")
    """
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ImportError('TensorBoard logging needs the tensorboard package: '
                          'pip install "d2lai[tensorboard]"') from None
    return SummaryWriter


def tag(name: str, metric_list: MetricList = KNOWN) -> str:
    """The TensorBoard tag of metric `name`, as its metric in `metric_list` (the fit's
    metrics) says: `train_loss` -> `loss/train`,
    `val_acc` -> `accuracy/val`, `val_top5_acc` -> `top5_acc/val`; the passes of one metric
    share a chart.

    >>> tag("val_acc")
    'accuracy/val'
    """
    return metric_list.tag(name)


class TensorBoardLogger(Callback):
    """Writes each epoch's metrics as scalars (`loss/train`, `loss/val`, `accuracy/train`,
    `accuracy/val`, `seconds/epoch`, `lr`, ...) under `logdir`, with the epoch as the step;
    with `every_n_steps`, also the training loss every that many batches (`loss/step`).

    Args:
        logdir: the folder of the event files (`tensorboard --logdir` it, or its parent).
        every_n_steps: batches between `loss/step` points (0: none; each costs a sync).

    Needs `pip install "d2lai[tensorboard]"` (said when the fit starts, before training).

    >>> tb = d2lai.TensorBoardLogger("out/tensorboard/scratch")
    >>> d2lai.fit(Trainer(model, data, Descent(0.1), callbacks=[tb]))
    """

    order = 60
    main_process_only = True

    def __init__(self, logdir: str | os.PathLike, every_n_steps: int = 0):
        self.logdir = Path(logdir).expanduser()
        self.every_n_steps = count("every_n_steps", every_n_steps)
        self.writer = None

    def for_run(self, name: str) -> TensorBoardLogger:
        """A copy for one run of a sweep, writing under `logdir/<run name>/`."""
        return TensorBoardLogger(self.logdir / run_folder(name), self.every_n_steps)

    def on_fit_start(self, trainer) -> None:
        summary_writer()  # said before training if tensorboard is missing
        check_output_path(self.logdir, "logdir", folder=True)

    def on_epoch_start(self, trainer) -> None:
        """Open the event file at the first epoch, when a resumed checkpoint has restored the
        position: points written past it by a run that was killed are purged (TensorBoard
        hides them), so each epoch shows once. With `every_n_steps` the purge goes by steps, so
        `loss/step` shows each step once and an epoch's metrics written past the checkpoint
        may show twice (one event file holds one purge point)."""
        if self.writer is None:
            at = trainer.steps if self.every_n_steps else trainer.epoch
            self.writer = summary_writer()(str(self.logdir), purge_step=at + 1 if at else None)

    def on_train_batch_end(self, trainer, batch, loss) -> None:
        if self.every_n_steps and trainer.steps % self.every_n_steps == 0:
            self.writer.add_scalar("loss/step", float(loss.detach()), trainer.steps)

    def on_epoch_end(self, trainer, epoch: int, logs: dict[str, float]) -> None:
        for name, value in logs.items():
            if name not in ("train_s", "val_s") and isinstance(value, (int, float)):
                self.writer.add_scalar(metrics_of(trainer).tag(name), value, epoch)
        if "train_s" in logs and "val_s" in logs:
            self.writer.add_scalar("seconds/epoch", logs["train_s"] + logs["val_s"], epoch)
        self.writer.flush()

    def on_fit_end(self, trainer, metrics) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
