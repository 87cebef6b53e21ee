"""DivergenceWatch: stop at the first non-finite loss, the model as it was after the last
whole epoch (whose metrics the fit returns)."""

from __future__ import annotations

import logging
import math

import torch

from ..checks import one_of
from ..distributed import any_rank, launched
from ..metrics import Loss
from .base import Callback

logger = logging.getLogger("d2lai")

__all__ = ["Diverged", "DivergenceWatch"]


class Diverged(Exception):
    """A non-finite loss stopped the fit; the model was rolled back."""


class DivergenceWatch(Callback):
    """Look at the training losses without a sync per batch (every batch on the CPU, before its
    step; every 25 where a sync costs); at the first non-finite one, put the whole module state
    (parameters and buffers) back as it was at the start of the epoch, and stop the fit (or
    raise `FloatingPointError` with `on_diverge="raise"`). The model returned is then the one
    the returned metrics describe. Weights that turn non-finite at the epoch's last step are
    caught before validation, and weights whose validation loss is not finite after it.

    Args:
        on_diverge: "stop" or "raise".

    >>> Trainer(model, data, Descent(100.0), on_diverge="raise")   # every Trainer has one
    """

    order = 10
    reads_outputs = False  # the loss (and accuracy) alone
    check_every = {"cpu": 1}  # batches between looks at the losses, by device type

    def __init__(self, on_diverge: str = "stop"):
        self.on_diverge = one_of("on_diverge", on_diverge, ("stop", "raise"))

    def on_epoch_start(self, trainer) -> None:
        self.good = None
        self.every = self.check_every.get(trainer.device.type, 25)
        self.window = torch.zeros(self.every, device=trainer.device)
        self.inputs_ok = torch.ones(self.every, dtype=torch.bool, device=trainer.device)
        self.pending, self.batches, self.steps = 0, 0, trainer.steps
        self.read_each = self.every == 1 and not launched()  # one process, reads cost no sync

    def on_train_batch_start(self, trainer, batch) -> None:
        if self.good is None:  # after the first-batch check: lazy layers have their shapes
            self.good = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}

    def on_loss(self, trainer, batch, loss) -> None:
        if self.read_each:  # the loss read as a number: the cheapest look there is
            self.batches += 1
            if not math.isfinite(loss.item()):
                self.window[0], self.pending = loss.detach(), 1
                self.look(trainer, batch)
            return
        self.window[self.pending] = loss.detach()
        if self.every > 1:  # on the device, no sync: kept to blame the data if need be
            self.inputs_ok[self.pending] = _finite_inputs(batch)
        self.pending += 1
        self.batches += 1
        if self.every == 1:
            self.look(trainer, batch)

    def on_train_batch_end(self, trainer, batch, loss) -> None:
        if self.pending >= self.every:
            self.look(trainer)

    def on_train_epoch_end(self, trainer, logs: dict) -> None:
        self.look(trainer)
        weights = [p.detach() for p in trainer.model.parameters()]
        if weights and not bool(torch.stack([w.isfinite().all() for w in weights]).all()):
            self.stop(trainer, f"diverged at epoch {trainer.epoch + 1}: the weights are not "
                               f"finite after its last step", "lower the learning rate, or "
                               "clip gradients with gradient_clip_val")

    def on_validation_end(self, trainer, logs: dict) -> None:
        loss = logs.get(Loss().key("val"))
        if loss is not None and not math.isfinite(loss):  # weights finite, but no model
            self.stop(trainer, f"diverged at epoch {trainer.epoch + 1}: the validation loss is "
                               f"{loss} (the training losses were finite)",
                      "lower the learning rate or clip gradients with gradient_clip_val, or "
                      "check the validation data")

    def look(self, trainer, batch=None) -> None:
        """Stop at the first non-finite loss not yet looked at (one sync)."""
        if self.pending == 0:
            return
        bad = any_rank(~torch.isfinite(self.window[:self.pending])).nonzero()  # alike on all ranks
        if len(bad) == 0:
            self.pending = 0
            return
        k = int(bad[0])
        number = self.batches - self.pending + k + 1
        loss = float(self.window[k])
        inputs_ok = _finite_inputs(batch) if batch is not None else self.inputs_ok[k]
        if not bool(inputs_ok):
            advice = (f"the inputs of batch {number} are not finite (NaN or infinity in the "
                      f"data), so the learning rate is not the cause: check the data")
        elif self.steps == 0 and number == 1:
            advice = ("the loss was not finite before any update, so the learning rate is not "
                      "the cause: check the model's outputs, its loss and the data")
        else:
            advice = "lower the learning rate, or clip gradients with gradient_clip_val"
        self.stop(trainer, f"diverged at epoch {trainer.epoch + 1}, batch {number} "
                           f"(loss={loss})", advice)

    def stop(self, trainer, what: str, advice: str) -> None:
        trainer.model.load_state_dict(self.good)
        where = (f"after epoch {trainer.epoch}, whose metrics the fit returns" if trainer.epoch
                 else "before training")
        message = f"{what}; the model is as it was {where}: {advice}"
        logger.warning("%s", message)
        if self.on_diverge == "raise":
            raise FloatingPointError(f"training {message}")
        raise Diverged(message)


def _finite_inputs(batch) -> torch.Tensor:
    """Whether the floating-point inputs of a batch `(X..., y)` are all finite (a 0-D tensor)."""
    flags = [x.isfinite().all() for x in batch[:-1]
             if isinstance(x, torch.Tensor) and x.is_floating_point()]
    return torch.stack(flags).all() if flags else torch.tensor(True)
