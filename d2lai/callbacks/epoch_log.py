"""EpochLog: one line an epoch through the `d2lai` logger, the Julia text's metrics and more.

    [ Info: Epoch 3/10 · 6.1 s · Train Loss: 0.4012, Train Acc: 0.8571, Val Loss: 0.3990,
      Val Acc: 0.8604   (one line)

The metrics keep the Julia text's titles (`Train Loss`, `Val Loss`, `Val Acc`), so a reader can
hold the line against the book's; the epoch, its seconds and the training accuracy come first
and between. A model family's own metrics (perplexity: `Train Ppl`, `Val Ppl`) and a learning
rate follow. At the end of a fit of two epochs or more, one more line names the best epoch of
the monitored metric with its metrics, beside the last one printed above it.

Where the lines go: the `d2lai` logger, to standard error by default (as Python's logging and
Julia's `@info`), or where `show_logs(stream)` sends them; a program that set up logging itself
keeps its own handlers. The chapter's command lines send them to standard output, with the
tables, so that `> run.log` holds a run's whole story.
"""

from __future__ import annotations

import logging
import math
import sys

from .. import distributed
from ..metrics import KNOWN, MetricList
from ..metrics import of as metrics_of
from .base import Callback

logger = logging.getLogger("d2lai")

__all__ = ["EpochLog", "JuliaFormatter", "show_logs", "format_metrics"]

def format_metrics(logs: dict[str, float], metric_list: MetricList = KNOWN) -> str:
    """`Train Loss: 0.4012, Train Acc: 0.8571, Val Loss: ...`: the metrics of `logs` (name ->
    value), titled and ordered as `metric_list` (the fit's metrics) says, then any others
    (titled from their names), timings left out.

    >>> format_metrics({"val_acc": 0.86, "train_loss": 0.4})
    'Train Loss: 0.4000, Val Acc: 0.8600'
    """
    return metric_list.format(logs)


format_figures = format_metrics  # its earlier name


class EpochLog(Callback):
    """Logs `Epoch 3/10 · 6.1 s · Train Loss: ..., Val Acc: ...` every `print_every` epochs
    and, at the end of a fit of two epochs or more, the best epoch of the monitored metric:
    at INFO when the trainer is verbose, at DEBUG when not.

    >>> Trainer(model, data, Descent(0.1), print_every=5)   # every Trainer has one
    """

    order = 40
    main_process_only = True

    def on_epoch_end(self, trainer, epoch: int, logs: dict[str, float]) -> None:
        if epoch % trainer.print_every == 0:
            end = f"/{trainer.stop_epoch}" if trainer.stop_epoch < math.inf else ""
            seconds = logs.get("train_s", 0.0) + logs.get("val_s", 0.0)
            text = metrics_of(trainer).format(logs)
            notes = "".join(f" · {note}" for note in trainer.notes)  # bf16 autocast, ...
            trainer.notes.clear()
            line = f"Epoch {epoch}{end} · {seconds:.1f} s{notes}" + (f" · {text}"
                                                                     if text else "")
            logger.log(logging.INFO if trainer.verbose else logging.DEBUG, "%s", line)

    def on_fit_end(self, trainer, metrics) -> None:
        epochs = max(map(len, metrics.history.values()), default=0)
        best = metrics.best(trainer.monitor) if epochs >= 2 else None
        if best is None or not best.epoch:
            return
        at_best = {k: v[best.epoch - 1] for k, v in metrics.history.items()
                   if len(v) >= best.epoch}
        title = metrics_of(trainer).label(best.monitor)
        last = " (the last)" if best.epoch == epochs else ""
        logger.log(logging.INFO if trainer.verbose else logging.DEBUG, "%s",
                   f"Best {title} at epoch {best.epoch}/{epochs}{last} · "
                   f"{metrics_of(trainer).format(at_best)}")


class JuliaFormatter(logging.Formatter):
    """`[ Info: message`, as Julia's logging macros print it.

    >>> handler.setFormatter(JuliaFormatter())
    """

    def format(self, record: logging.LogRecord) -> str:
        return f"[ {record.levelname.capitalize()}: {record.getMessage()}"


class ConsoleHandler(logging.StreamHandler):
    """A stream handler that looks up `sys.stdout` or `sys.stderr` when it writes (so it
    follows a redirection made later), or writes to the file object it was given."""

    def __init__(self, stream="stderr"):
        self.target = stream
        super().__init__()

    @property
    def stream(self):
        if self.target in ("stdout", "stderr"):
            return getattr(sys, self.target)
        return self.target

    @stream.setter
    def stream(self, value) -> None:  # StreamHandler.__init__ sets it; the target decides
        pass


def show_logs(stream=None) -> None:
    """Make the `d2lai` logger's INFO lines (epoch lines, notes, warnings) visible.

    Args:
        stream: where the lines go: `"stderr"` (what `None` gives on first use), `"stdout"`
            (the stream looked up at each line, so later redirections are followed), or an
            open text file. Without it, a program that set up logging itself (a handler on the
            root logger or on `d2lai`) keeps its own handlers; with it, d2lai's console
            handler is (re)placed on that stream.

    >>> d2lai.show_logs("stdout")   # the epoch lines with what print() writes
    """
    ours = [h for h in logger.handlers if isinstance(h, ConsoleHandler)]
    if stream is not None or not logger.hasHandlers():
        for handler in ours:
            logger.removeHandler(handler)
        handler = ConsoleHandler("stderr" if stream is None else stream)
        handler.setFormatter(JuliaFormatter())
        if not distributed.is_main_process():  # under torchrun, rank 0 alone tells the story
            handler.setLevel(logging.WARNING)
        logger.addHandler(handler)
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.INFO)
