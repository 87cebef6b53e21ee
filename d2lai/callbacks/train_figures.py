"""TrainFigures: the epoch's mean training loss and accuracy, from the training passes."""

from __future__ import annotations

import torch

from .base import Callback

__all__ = ["TrainFigures"]


class TrainFigures(Callback):
    """Sums each batch's loss (and, for a model with `accuracy`, its correct predictions) on
    the device as the batches go, without a sync per batch; the means go into the epoch's
    figures as `train_loss` and `train_acc`. The outputs are taken from the model's forward
    pass by one hook, registered for the fit, not recomputed. A model family whose
    `train_accuracy` is False (a language model: its figure is perplexity) is not scored.

    >>> model, metrics = d2lai.fit(trainer)   # every Trainer has one: metrics.train_acc
    """

    order = 20

    def on_fit_start(self, trainer) -> None:
        scores = (getattr(trainer.model, "accuracy", None)
                  if getattr(trainer.model, "train_accuracy", True) else None)
        self.accuracy, self.outputs = scores, None
        self.hook = (trainer.model.register_forward_hook(self.keep) if scores is not None
                     else None)

    def keep(self, module, args, outputs) -> None:
        self.outputs = outputs

    def on_train_start(self, trainer, loader) -> None:
        zero = torch.zeros((), dtype=torch.float64, device=trainer.device)
        self.loss_sum, self.correct = zero, zero.clone()  # summed in place, no sync
        self.samples, self.with_acc = 0, self.accuracy is not None

    def on_loss(self, trainer, batch, loss) -> None:
        y, outputs = batch[-1], self.outputs
        self.outputs = None
        n = len(y)
        self.loss_sum.add_(loss.detach(), alpha=n)  # in float64: no half-precision overflow
        if self.with_acc:
            if isinstance(outputs, torch.Tensor) and isinstance(y, torch.Tensor) \
                    and outputs.shape[:-1] == y.shape:
                self.correct.add_(self.accuracy(outputs.detach(), y), alpha=n)
            else:
                self.with_acc = False
        self.samples += n

    def on_train_epoch_end(self, trainer, logs: dict) -> None:
        if self.samples:
            loss, acc = (torch.stack([self.loss_sum, self.correct]) / self.samples).tolist()
            logs["train_loss"] = loss
            if self.with_acc:
                logs["train_acc"] = acc

    def on_fit_end(self, trainer, metrics) -> None:
        if self.hook is not None:
            self.hook.remove()
