"""LRScheduler: step one of torch's learning-rate schedulers every epoch or every batch."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..checks import one_of
from .base import Callback

__all__ = ["LRScheduler"]

Scheduler = (torch.optim.lr_scheduler.LRScheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)


class LRScheduler(Callback):
    """Steps a torch learning-rate scheduler after each epoch (`interval="epoch"`) or after
    each optimiser step (`interval="step"`), and adds the epoch's rate to its figures as `lr`
    (so it is in the epoch line, the history, the board and the loggers).

    Args:
        scheduler: a function of the optimiser that returns the scheduler (the trainer builds
            its optimiser when `fit` starts, from the rule you gave it), or a scheduler already
            built on the optimiser passed to the Trainer as `opt`.
        interval: "epoch" or "step".
        monitor: the figure `ReduceLROnPlateau` watches (default `val_loss`).

    The scheduler is built once, at the first fit, and goes on over later fits of the same
    trainer. Its state is not part of a checkpoint.

    >>> from torch.optim.lr_scheduler import StepLR, OneCycleLR
    >>> LRScheduler(lambda opt: StepLR(opt, step_size=5, gamma=0.1))
    >>> LRScheduler(lambda opt: OneCycleLR(opt, max_lr=0.5, total_steps=10 * 469), "step")
    """

    order = 45
    adds_figures = ("lr",)

    def __init__(self, scheduler: Callable | torch.optim.lr_scheduler.LRScheduler,
                 interval: str = "epoch", monitor: str = "val_loss"):
        if not isinstance(scheduler, Scheduler) and not callable(scheduler):
            raise TypeError(f"LRScheduler takes a torch scheduler, or a function of the "
                            f"optimiser that returns one, e.g. lambda opt: StepLR(opt, 5); "
                            f"got {type(scheduler).__name__}")
        self.make = None if isinstance(scheduler, Scheduler) else scheduler
        self.scheduler = scheduler if self.make is None else None
        self.interval = one_of("interval", interval, ("epoch", "step"))
        self.monitor = monitor

    def on_fit_start(self, trainer) -> None:
        if self.scheduler is None:
            self.scheduler = self.make(trainer.optimizer)
            if not isinstance(self.scheduler, Scheduler):
                raise TypeError(f"LRScheduler: the function returned "
                                f"{type(self.scheduler).__name__}, not a torch scheduler")
        if self.scheduler.optimizer is not trainer.optimizer:
            raise ValueError("LRScheduler: the scheduler steps another optimiser than the "
                             "trainer's; pass a function, LRScheduler(lambda opt: "
                             "StepLR(opt, 5)), so that it is built on the trainer's")
        self.plateau = isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)
        if self.plateau and self.interval == "step":
            raise ValueError("LRScheduler: ReduceLROnPlateau watches an epoch's figure; use "
                             "interval='epoch'")

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
                raise ValueError(f"LRScheduler: monitor={self.monitor!r} is not among this "
                                 f"fit's figures; choose one of {', '.join(map(repr, logs))}")
            self.scheduler.step(logs[self.monitor])
        else:
            self.scheduler.step()
