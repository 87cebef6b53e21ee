"""CSVLogger: the metrics of every epoch of a fit, a CSV row each, as Keras's CSVLogger."""

from __future__ import annotations

import csv
import logging
import os
from pathlib import Path

from ..checks import flag
from ..files import check_output_path, run_folder, write_whole
from .base import Callback

logger = logging.getLogger("d2lai")

__all__ = ["CSVLogger"]


class CSVLogger(Callback):
    """Writes a row an epoch to `path`: `epoch`, the metrics (`train_loss`, `train_acc`,
    `val_loss`, `val_acc`, a model family's own, `lr` with a scheduler) and the seconds of
    the training and validation passes (`train_s`, `val_s`).

    Each row is written and the file closed as its epoch ends, so a run that stops (Ctrl-C,
    a crash) keeps the rows of the epochs it finished. The columns are those of the first
    epoch (of the file's header when appending).

    Args:
        path: the CSV file (its folder is made if need be; checked when the fit starts).
        append: add to an existing file instead of starting it afresh. A trainer that goes on
            (a second `fit`, a resumed checkpoint) always appends, and drops the rows of epochs
            past the one it goes on from (written after the checkpoint, before a kill),
            saying so. The choice is made at the first row, once a checkpoint has been read.

    >>> log = d2lai.CSVLogger("out/run.csv")
    >>> d2lai.fit(Trainer(model, data, Descent(0.1), callbacks=[log]))
    >>> d2lai.RunTable.from_csv("out/run.csv")   # or pandas.read_csv
    """

    order = 60
    main_process_only = True

    def __init__(self, path: str | os.PathLike, append: bool = False):
        self.path, self.append = Path(path).expanduser(), flag("append", append)

    def for_run(self, name: str) -> CSVLogger:
        """A copy for one run of a sweep, writing `<folder>/<run name>/<file name>`."""
        return CSVLogger(self.path.parent / run_folder(name) / self.path.name, self.append)

    def on_fit_start(self, trainer) -> None:
        check_output_path(self.path, "CSV file")
        self.columns = None  # the file is started or taken up at the first row

    def _take_up(self, epoch: int) -> None:
        """Start the file, or go on with it before the row of `epoch`: appending, or when the
        trainer goes on (epoch > 1), keeping its header and the rows of earlier epochs."""
        if not self.path.is_file() or not (self.append or epoch > 1):
            self.path.unlink(missing_ok=True)
            return
        with open(self.path, newline="") as f:
            rows = list(csv.reader(f))
        if not rows:
            return
        self.columns, body = rows[0], rows[1:]
        logger.info("CSVLogger: going on with %s from epoch %d", self.path, epoch)
        at = self.columns.index("epoch") if "epoch" in self.columns and epoch > 1 else None
        late = [r for r in body if at is not None and len(r) > at and r[at].isdigit()
                and int(r[at]) >= epoch]
        if late:
            def write(tmp: Path) -> None:
                with open(tmp, "w", newline="") as f:
                    csv.writer(f).writerows([self.columns, *(r for r in body if r not in late)])

            write_whole(self.path, write)
            epochs = ", ".join(r[at] for r in late)
            logger.warning("CSVLogger: dropped the row%s of epoch%s %s from %s: written after "
                           "the checkpoint this run goes on from", "s" * (len(late) > 1),
                           "s" * (len(late) > 1), epochs, self.path)

    def on_epoch_end(self, trainer, epoch: int, logs: dict[str, float]) -> None:
        row = {"epoch": epoch, **logs}
        if self.columns is None:
            self._take_up(epoch)
        new = self.columns is None
        if new:
            self.columns = list(row)
            self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=self.columns, extrasaction="ignore")
            if new:
                writer.writeheader()
            writer.writerow({k: "" if row.get(k) is None else row[k] for k in self.columns})
