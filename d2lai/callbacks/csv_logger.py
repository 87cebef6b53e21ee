"""CSVLogger: the figures of every epoch of a fit, a CSV row each, as Keras's CSVLogger."""

from __future__ import annotations

import csv
import os
from pathlib import Path

from ..checks import flag
from ..files import check_output_path
from .base import Callback

__all__ = ["CSVLogger"]


class CSVLogger(Callback):
    """Writes a row an epoch to `path`: `epoch`, the figures (`train_loss`, `train_acc`,
    `val_loss`, `val_acc`, a model family's own, `lr` with a scheduler) and the seconds of
    the training and validation passes (`train_s`, `val_s`).

    Each row is written and the file closed as its epoch ends, so a run that stops (Ctrl-C,
    a crash) keeps the rows of the epochs it finished. The columns are those of the first
    epoch (of the file's header when appending).

    Args:
        path: the CSV file (its folder is made if need be; checked when the fit starts).
        append: add to an existing file instead of starting it afresh. A trainer that goes on
            (a second `fit`, a resumed checkpoint) always appends.

    >>> log = d2lai.CSVLogger("out/run.csv")
    >>> d2lai.fit(Trainer(model, data, Descent(0.1), callbacks=[log]))
    >>> d2lai.RunTable.from_csv("out/run.csv")   # or pandas.read_csv
    """

    order = 60
    main_process_only = True

    def __init__(self, path: str | os.PathLike, append: bool = False):
        self.path, self.append = Path(path).expanduser(), flag("append", append)

    def on_fit_start(self, trainer) -> None:
        check_output_path(self.path, "CSV file")
        self.columns = None
        if self.path.is_file() and (self.append or trainer.epoch > 0):
            with open(self.path, newline="") as f:
                self.columns = next(csv.reader(f), None)
        elif self.path.exists():
            self.path.unlink()

    def on_epoch_end(self, trainer, epoch: int, logs: dict[str, float]) -> None:
        row = {"epoch": epoch, **logs}
        new = self.columns is None
        if new:
            self.columns = list(row)
            self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=self.columns, extrasaction="ignore")
            if new:
                writer.writeheader()
            writer.writerow({k: "" if row.get(k) is None else row[k] for k in self.columns})
