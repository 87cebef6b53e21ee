"""LRScheduler: step one of torch's learning-rate schedulers every epoch or every batch."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..checks import one_of
from ..metrics import loss_of
from .base import Callback, fit_metrics

__all__ = ["LRScheduler"]

Scheduler = (torch.optim.lr_scheduler.LRScheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)


class LRScheduler(Callback):
    """Steps a torch learning-rate scheduler after each epoch (`interval="epoch"`) or after
    each optimiser step (`interval="step"`), and adds the epoch's rate to its metrics as `lr`
    (so it is in the epoch line, the history, the board and the loggers).

    Args:
        scheduler: a function of the optimiser that returns the scheduler (the trainer builds
            its optimiser when `fit` starts, from the rule you gave it), or a scheduler already
            built on the optimiser passed to the Trainer as `opt`.
        interval: "epoch" or "step".
        monitor: the metric `ReduceLROnPlateau` watches (default `val_loss`).

    The scheduler is built at the first fit of each trainer and goes on over its later fits;
    its state is part of the trainer's checkpoint, so a resumed run goes on with the rate it
    stopped at. At fit start `monitor` must be one of the fit's metrics, and a schedule of a
    fixed length (`total_steps`, OneCycleLR's) must last as long as the fit.

    >>> from torch.optim.lr_scheduler import StepLR, OneCycleLR
    >>> LRScheduler(lambda opt: StepLR(opt, step_size=5, gamma=0.1))
    >>> LRScheduler(lambda opt: OneCycleLR(opt, max_lr=0.5, total_steps=10 * 469), "step")
    """

    order = 45
    adds_metrics = ("lr",)

    def __init__(self, scheduler: Callable | torch.optim.lr_scheduler.LRScheduler,
                 interval: str = "epoch", monitor: str | None = None):
        if not isinstance(scheduler, Scheduler) and not callable(scheduler):
            raise TypeError(f"LRScheduler takes a torch scheduler, or a function of the "
                            f"optimiser that returns one, e.g. lambda opt: StepLR(opt, 5); "
                            f"got {type(scheduler).__name__}")
        self.make = None if isinstance(scheduler, Scheduler) else scheduler
        self.scheduler = scheduler if self.make is None else None
        self.interval = one_of("interval", interval, ("epoch", "step"))
        self.monitor = loss_of("val") if monitor is None else monitor  # None: val loss

    def on_fit_start(self, trainer) -> None:
        if self.scheduler is None or (self.make is not None
                                      and self.scheduler.optimizer is not trainer.optimizer):
            self.scheduler = self.make(trainer.optimizer)  # another trainer: another run
            if not isinstance(self.scheduler, Scheduler):
                raise TypeError(f"LRScheduler: the function returned "
                                f"{type(self.scheduler).__name__}, not a torch scheduler")
        if self.scheduler.optimizer is not trainer.optimizer:
            raise ValueError("LRScheduler: the scheduler steps another optimiser than the "
                             "trainer's; pass a function, LRScheduler(lambda opt: "
                             "StepLR(opt, 5)), so that it is built on the trainer's")
        self.plateau = isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)
        if self.plateau and self.interval == "step":
            raise ValueError("LRScheduler: ReduceLROnPlateau watches an epoch's metric; use "
                             "interval='epoch'")
        known = fit_metrics(trainer)
        if self.plateau and known is not None and self.monitor not in known:
            self._unknown(known)
        self._check_length(trainer)

    def _unknown(self, metrics) -> None:
        raise ValueError(f"LRScheduler: monitor={self.monitor!r} is not among this fit's "
                         f"metrics; choose one of {', '.join(map(repr, metrics))}")

    def _check_length(self, trainer) -> None:
        """Refuse a schedule of `total_steps` steps (or epochs) shorter than the fit."""
        total = getattr(self.scheduler, "total_steps", None)
        named = getattr(trainer.data, "train_dataloader", None)
        try:
            batches = len(named() if callable(named) else trainer.data.get_dataloader(True))
        except TypeError:  # a loader without a length: nothing to compare
            return
        epochs = trainer.stop_epoch - trainer.epoch
        steps = min(trainer.stop_step - trainer.steps, epochs * batches)
        needed, unit = (steps, "steps") if self.interval == "step" else (epochs, "epochs")
        left = None if total is None else total - self.scheduler.last_epoch
        if left is not None and needed > left:
            raise ValueError(f"LRScheduler: the schedule was built for total_steps={total} "
                             f"({left} left) but this fit takes {needed} {unit}: build it "
                             f"with total_steps={needed + total - left}, e.g. lambda opt: "
                             f"OneCycleLR(opt, max_lr, total_steps=max_epochs * "
                             f"len(data.train_dataloader()))")

    def run_settings(self) -> dict:
        """The schedule as the definition of a run shows it: the scheduler's class and its
        settings, as built on a stand-in optimiser (a function is known by what it builds)."""
        try:
            probe = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
            built = self.scheduler if self.make is None else self.make(probe)
            shown = {"type": type(built).__name__,
                     **{k: v for k, v in built.state_dict().items() if not k.startswith("_")
                        and k not in ("base_lrs", "last_epoch", "verbose")}}
        except Exception:  # built only for the optimiser it was meant for: known by its name
            shown = getattr(self.make, "__qualname__", type(self.scheduler).__name__)
        return {"scheduler": shown, "interval": self.interval, "monitor": self.monitor}

    def state_dict(self) -> dict:
        """The scheduler's state, for the checkpoint: a resumed run goes on with its rate."""
        return {"scheduler": self.scheduler.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.scheduler.load_state_dict(state["scheduler"])
        for group, lr in zip(self.scheduler.optimizer.param_groups, self.scheduler.get_last_lr(),
                             strict=True):
            group["lr"] = lr  # the rate it stopped at, not the rule's

    def on_train_batch_end(self, trainer, batch, loss) -> None:
        if self.interval == "step":
            self.scheduler.step()

    def on_train_epoch_end(self, trainer, logs: dict) -> None:
        logs["lr"] = trainer.optimizer.param_groups[0]["lr"]  # the rate this epoch ended with

    def on_epoch_end(self, trainer, epoch: int, logs: dict[str, float]) -> None:
        if self.interval != "epoch":
            return
        if self.plateau:
            if self.monitor not in logs:
                self._unknown(logs)
            self.scheduler.step(logs[self.monitor])
        else:
            self.scheduler.step()
