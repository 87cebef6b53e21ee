"""Callbacks: code that runs around the training loop, at its named events.

The loop's events, in the order a fit meets them:

    on_fit_start
      on_epoch_start
        on_train_start(loader)        then for each batch:
          on_train_batch_start(batch)   the batch is on the device
          on_loss(batch, loss)          after the model's training step (forward and loss)
          on_train_batch_end(batch, loss)   after backward, clipping and the optimiser's step
        on_train_epoch_end(logs)      the training pass is over, its metrics measured: callbacks
                                      add their metrics
        on_validation_start(loader)
          on_validation_batch_start(batch)
          on_validation_batch_end(batch, out)   after the model's validation step
        on_validation_end(logs)
      on_epoch_end(epoch, logs)       the epoch's metrics, validation included
    on_fit_end(metrics)               also when the fit diverged, was interrupted or failed
    on_exception(error)               a callback may raise a clearer error instead

Each hook takes the trainer first; at `on_loss` and `on_validation_batch_end`,
`trainer.outputs` holds the model's outputs of the batch (no forward hook of your own needed).
Callbacks run in the order of their `order` (smaller first; the trainer's own: checks 0,
divergence 10, sums over ranks 25, progress bar 30,
epoch line 40, checkpoint 80, board 90; a learning-rate scheduler 45, yours 50, the CSV and
TensorBoard loggers 60), and may stop the fit by setting `trainer.should_stop = True`.

A callback of your own:

    class PrintLoss(d2lai.Callback):
        def on_train_batch_end(self, trainer, batch, loss):
            if trainer.steps % 100 == 0:
                print(trainer.steps, float(loss))

    Trainer(model, data, Descent(0.1), callbacks=[PrintLoss()])
"""

from __future__ import annotations

import copy
import inspect

from ..metrics import KNOWN, MetricList, loss_of
from ..metrics import of as metrics_of

__all__ = ["Callback", "MonitorCallback", "monitor_mode", "default_monitor", "fit_metrics",
           "by_class"]


class Callback:
    """Hooks the trainer calls at its events; each does nothing unless overridden.

    `order` places it among the trainer's callbacks; `main_process_only` callbacks (those that
    print, draw or write files) run on rank 0 alone when training is spread over processes.
    A callback that adds metrics to the epoch's logs names them in `adds_metrics`, so that a
    monitor of one of them is known to exist when the fit starts. Its `run_settings()` are
    part of what defines a run (a sweep's rerun retrains a run whose callbacks changed), and a
    sweep gives each run its own copy, `for_run(name)`. One that keeps a state across epochs
    defines `state_dict()` and `load_state_dict(state)`: checkpoints keep it. One that
    overrides `on_loss` or `on_validation_batch_end` is taken to read `trainer.outputs` there;
    one that does not says `reads_outputs = False` (outputs kept for nobody cost a compiled
    step its fusions).

    >>> class Every100(d2lai.Callback):
    ...     def on_train_batch_end(self, trainer, batch, loss):
    ...         if trainer.steps % 100 == 0:
    ...             print(trainer.steps, float(loss))
    >>> Trainer(model, data, Descent(0.1), callbacks=[Every100()])
    """

    order = 50
    main_process_only = False
    reads_outputs = True  # at on_loss and on_validation_batch_end, if it overrides them
    adds_metrics: tuple[str, ...] = ()
    EVENTS = ("on_fit_start", "on_epoch_start", "on_train_start", "on_train_batch_start",
              "on_loss", "on_train_batch_end", "on_train_epoch_end", "on_validation_start",
              "on_validation_batch_start", "on_validation_batch_end", "on_validation_end",
              "on_epoch_end", "on_fit_end", "on_exception")

    def for_run(self, name: str) -> Callback:
        """This callback for one run of a sweep (`name`): a copy of its own, so that no state
        passes from run to run; a logger's copy writes files named by the run."""
        return copy.deepcopy(self)

    def run_settings(self) -> dict | None:
        """What this callback adds to the definition of a run (`d2lai.definition`): its
        constructor's arguments, as kept in attributes of the same names; None leaves it out."""
        names = [n for n in inspect.signature(type(self).__init__).parameters if n != "self"]
        return {n: getattr(self, n) for n in names if hasattr(self, n)}

    def on_fit_start(self, trainer) -> None:
        """Before the first epoch of a fit (the model and data are on their device)."""

    def on_epoch_start(self, trainer) -> None:
        """Before an epoch's training pass."""

    def on_train_start(self, trainer, loader) -> None:
        """Before the first training batch of an epoch; `loader` gives the batches."""

    def on_train_batch_start(self, trainer, batch) -> None:
        """A training batch `(X..., y)`, on the device, before the training step."""

    def on_loss(self, trainer, batch, loss) -> None:
        """The training step's loss of `batch`, before backward."""

    def on_train_batch_end(self, trainer, batch, loss) -> None:
        """After the optimiser's step on `batch`."""

    def on_train_epoch_end(self, trainer, logs: dict) -> None:
        """After the training pass: add metrics to `logs` (`train_loss`, ...)."""

    def on_validation_start(self, trainer, loader) -> None:
        """Before the first validation batch."""

    def on_validation_batch_start(self, trainer, batch) -> None:
        """A validation batch, on the device."""

    def on_validation_batch_end(self, trainer, batch, out) -> None:
        """After the validation step of `batch`, which returned `out` (a loss, or `(loss,
        accuracy)`); its outputs are `trainer.outputs`."""

    def on_validation_end(self, trainer, logs: dict) -> None:
        """After the validation pass, with its metrics (`val_loss`, `val_acc`)."""

    def on_epoch_end(self, trainer, epoch: int, logs: dict[str, float]) -> None:
        """After an epoch's validation, with its metrics (`train_loss`, `val_acc`, ...)."""

    def on_fit_end(self, trainer, metrics) -> None:
        """After the last epoch, also when the fit diverged, was interrupted or failed."""

    def on_exception(self, trainer, error: Exception) -> None:
        """The fit is failing with `error`: raise a clearer error, or do nothing."""


def default_monitor(names, metric_list: MetricList = KNOWN) -> str:
    """The metric a fit is judged by when none is named: the validation accuracy if it is
    among `names` (metric names, or a dict of metrics), else the validation loss, else the
    training loss (as `metric_list`, the fit's metrics, ranks them).

    >>> default_monitor({"train_loss": 0.5, "val_loss": 0.4})
    'val_loss'
    """
    return metric_list.default_monitor(names)


def monitor_mode(monitor: str, mode: str = "auto", metric_list: MetricList = KNOWN) -> str:
    """'min' or 'max' for metric `monitor`: `mode` itself, or for 'auto' what its metric in
    `metric_list` (the fit's metrics) says: accuracies are maximised, losses minimised.

    >>> monitor_mode("val_acc")
    'max'
    """
    return metric_list.mode(monitor, mode)


class MonitorCallback(Callback):
    """A callback that watches one metric (`monitor`) for its best value (`mode`), better only
    by more than `min_delta`: the base of EarlyStopping; the trainer's board and its final line
    use the first one it is given.

    >>> class Best(MonitorCallback):
    ...     def on_epoch_end(self, trainer, epoch, logs):
    ...         if self.better(self.value(logs), getattr(self, "best", None)):
    ...             self.best = self.value(logs)
    """

    def __init__(self, monitor: str | None = None, mode: str = "auto", min_delta: float = 0):
        monitor = loss_of("val") if monitor is None else monitor  # None: the validation loss
        if not isinstance(monitor, str) or not monitor:
            raise ValueError(f"{type(self).__name__}: monitor must be a metric name such as "
                             f"'val_loss', got {monitor!r}")
        self.monitor, self.mode, self.min_delta = monitor, monitor_mode(monitor, mode), min_delta
        self.asked_mode = mode

    def on_fit_start(self, trainer) -> None:
        """Refuse a monitor that is none of the fit's metrics, before anything trains; take
        the direction of an 'auto' mode from its metric."""
        known = fit_metrics(trainer)
        if known is not None and self.monitor not in known:
            self.value(dict.fromkeys(known))
        self.mode = metrics_of(trainer).mode(self.monitor, self.asked_mode)

    def better(self, value: float, reference: float | None) -> bool:
        """Whether `value` beats `reference` (None: nothing yet) by more than `min_delta`."""
        if reference is None:
            return True
        if self.mode == "min":
            return value + self.min_delta < reference
        return value - self.min_delta > reference

    def value(self, logs: dict) -> float | None:
        """The monitored metric of an epoch; an unknown name lists the ones there are."""
        if self.monitor not in logs:
            raise ValueError(f"{type(self).__name__}: monitor={self.monitor!r} is not among this "
                             f"fit's metrics; choose one of {', '.join(map(repr, logs))}")
        return logs[self.monitor]


def fit_metrics(trainer) -> list[str] | None:
    """The metrics the fit of `trainer` will log each epoch, before it starts: its metrics'
    (`trainer.metric_list`), the model's own `epoch_metrics` and the callbacks'
    (`adds_metrics`); None if the model's own cannot be known before it trains.

    >>> fit_metrics(Trainer(BLeNetConcise(), data, Descent(0.1)))
    ['train_loss', 'train_acc', 'val_loss', 'val_acc']
    """
    if not hasattr(trainer, "metric_list"):
        return None
    names = trainer.metric_list.keys()
    own = getattr(trainer.model, "epoch_metrics", None)
    try:  # from stand-in values
        names += list(own(dict.fromkeys(names, 1.0))) if own is not None else []
    except Exception:  # metrics that need real values: known after the first epoch only
        return None
    return list(dict.fromkeys([*names, *(f for c in trainer.callbacks
                                          for f in getattr(c, "adds_metrics", ()))]))


fit_figures = fit_metrics  # its earlier name


def by_class(callbacks):
    """(key, callback) for each of `callbacks`, keyed by its class name (and number, for a
    second one of a class: `EarlyStopping#2`): how checkpoints and run definitions name them.

    >>> [key for key, _ in by_class([EarlyStopping(), CSVLogger("a.csv"), EarlyStopping()])]
    ['EarlyStopping', 'CSVLogger', 'EarlyStopping#2']
    """
    seen: dict[str, int] = {}
    for callback in callbacks:
        name = type(callback).__name__
        seen[name] = seen.get(name, 0) + 1
        yield (name if seen[name] == 1 else f"{name}#{seen[name]}"), callback
