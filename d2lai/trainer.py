"""Trainer and fit: the book's training loop, whole-set validation, logs and callbacks."""

from __future__ import annotations

import inspect
import logging
import math
import os
import sys
import time
from dataclasses import dataclass, field

import torch
from torch import nn

try:  # notebook progress widgets when Jupyter can draw them, text bars otherwise
    import ipywidgets  # noqa: F401
    from tqdm.auto import tqdm
except ImportError:
    from tqdm import tqdm

from .board import ProgressBoard, _in_notebook, check_scale
from .callbacks import Callback, Checkpoint, DrawBoard
from .device import check_seed, get_device, seed
from .models import HEADS, AbstractClassifier
from .optim import ACCEPTED, RULES, setup

__all__ = ["Trainer", "Metrics", "fit"]

logger = logging.getLogger("d2lai")


class Trainer:
    """Holds what a run needs; `fit` trains `model` on `data` with optimiser rule `opt`.

    `max_epochs` epochs a fit (a later `fit` of the same trainer trains that many more, going
    on from where the last one stopped), at most `max_steps` batches if given (then
    `max_epochs=None` leaves the number of epochs to the step budget). `callbacks`
    run at fit start, at each epoch's end and at fit end (see `d2lai.callbacks`).
    """

    check_every = {"cpu": 1}  # batches between looks at the losses: 25 where a sync costs

    def __init__(self, model: nn.Module, data, opt=None, max_epochs: int | None = 10,
                 gpu: bool = False, board_yscale: str = "log10", verbose: bool = True,
                 gradient_clip_val: float = 0.0, print_every: int = 1, board: bool = True, *,
                 board_path: str | os.PathLike | None = None, on_diverge: str = "stop",
                 checkpoint: str | os.PathLike | None = None, resume: bool = False,
                 override_opt: bool = False, seed: int | None = None,
                 callbacks: list[Callback] = (), max_steps: int | None = None):
        custom_loop = type(self).fit_epoch is not Trainer.fit_epoch
        _check_arguments(model, data, opt, custom_loop, max_epochs=max_epochs,
                         print_every=print_every, max_steps=max_steps,
                         gradient_clip_val=gradient_clip_val, on_diverge=on_diverge,
                         resume=resume, checkpoint=checkpoint, seed=seed, callbacks=callbacks)
        check_scale("board_yscale", board_yscale)
        self.model, self.data, self.opt = model, data, opt
        self.max_epochs, self.max_steps = max_epochs, max_steps
        self.gpu, self.verbose = gpu, verbose
        self.gradient_clip_val, self.print_every = float(gradient_clip_val), print_every
        self.on_diverge, self.seed = on_diverge, seed
        self.board = ProgressBoard("epoch", yscale=board_yscale,
                                   title=type(model).__name__) if board else None
        self.callbacks = [*([Checkpoint(checkpoint, resume, override_opt)] if checkpoint else []),
                          *callbacks, *([DrawBoard(self.board, board_path)] if board else [])]
        self.history: dict[str, list[float]] = {}
        self.timings: dict[str, list[float]] = {"train_s": [], "val_s": []}
        self.epoch = self.steps = 0  # completed epochs and optimiser steps, over all fits
        self.optimizer, self.should_stop, self._fits = None, False, 0

    def fit(self) -> tuple[nn.Module, Metrics]:
        """Train and validate epoch by epoch; return (the model, on the CPU, and its metrics)."""
        if self.verbose:
            _show_logs()
        self.device = get_device(self.gpu)
        self.model.to(self.device)
        if callable(getattr(self.data, "to", None)):
            self.data.to(self.device)  # once, so batches are cut where the model runs
        if self.optimizer is None:
            self.optimizer = self._setup_optimizer()
        if self.seed is not None and not self._fits:
            seed(self.seed)
        first = self._fits == 0  # a first fit's limits are totals (a resumed run counts)
        self._end_epoch_n = (0 if first else self.epoch) + (self.max_epochs or math.inf)
        self._end_step = (0 if first else self.steps) + (self.max_steps or math.inf)
        self._checked, self.should_stop, diverged, interrupted = set(), False, False, False
        started = []
        try:
            for callback in self.callbacks:
                callback.on_fit_start(self)
                started.append(callback)
            self._fits += 1
            while (self.epoch < self._end_epoch_n and self.steps < self._end_step
                   and not self.should_stop):
                tic = time.perf_counter()
                figures = self.fit_epoch()
                toc = time.perf_counter()
                if figures is None:  # a fit_epoch that validates itself (the PyTorch edition's)
                    figures = {}
                else:
                    figures |= self.validate()
                self._end_epoch(figures, toc - tic, time.perf_counter() - toc)
        except _Diverged as err:
            diverged = True
            logger.warning("%s", err)
            if self.on_diverge == "raise":
                raise FloatingPointError(f"training {err}") from None
        except KeyboardInterrupt:
            interrupted = True
            logger.warning("interrupted at epoch %d", self.epoch + 1)
        finally:
            self.model.cpu()
            metrics = Metrics.of(self.history, self.epoch, self.steps, diverged=diverged,
                                 interrupted=interrupted, stopped_early=self.should_stop)
            for callback in started:
                callback.on_fit_end(self, metrics)
        return self.model, metrics

    def fit_epoch(self) -> dict[str, float]:
        """One pass over the training set; the epoch's mean training loss (and accuracy).

        Losses are looked at without a sync per batch (every batch on the CPU, before its step;
        every 25 on a GPU): a non-finite one stops the fit with the model rolled back to the
        state before the batches not yet looked at.
        """
        self.model.train()
        sums = _EpochSums(self.check_every.get(self.device.type, 25), self.steps, self.device)
        for batch in self._batches(train=True):
            if sums.all_checked():
                good = _snapshot(self.model, weights=sums.every > 1)
            loss, y_hat = self._training_step(batch)
            sums.add(loss, y_hat, batch[-1])
            if sums.due():
                self._look(sums, good)
            self.optimizer.zero_grad()
            loss.backward()
            with torch.no_grad():  # clipping and the step are no part of the graph
                if self.gradient_clip_val > 0:
                    self.clip_gradients(self.gradient_clip_val, self.model)
                self.optimizer.step()
            self.steps += 1
            if self.steps >= self._end_step:
                break
        self._look(sums, good)
        return sums.means()

    @torch.no_grad()
    def validate(self) -> dict[str, float | None]:
        """Loss (and accuracy) over the WHOLE validation set, in evaluation mode."""
        self.model.eval()
        sums, n, with_acc = torch.zeros(2, dtype=torch.float64, device=self.device), 0, False
        for batch in self._batches(train=False):
            out = self.model.validation_step(batch)
            if out is None:  # a step that only plots its figures: nothing to sum
                continue
            loss, acc = _loss_and_acc(out)
            k = len(batch[-1])
            sums[0] += torch.as_tensor(loss, dtype=torch.float64, device=self.device) * k
            if acc is not None:
                sums[1] += torch.as_tensor(acc, dtype=torch.float64, device=self.device) * k
                with_acc = True
            n += k
        if n == 0:
            return {}
        loss, acc = (sums / n).tolist()
        return {"val_loss": loss, "val_acc": acc if with_acc else None}

    def clip_gradients(self, grad_clip_val: float, model: nn.Module) -> None:
        """Scale the gradients down so that their global norm is at most `grad_clip_val`."""
        nn.utils.clip_grad_norm_(model.parameters(), grad_clip_val)

    def prepare_batch(self, batch) -> tuple:
        """The batch as a tuple `(X..., y)` on the training device."""
        return tuple(t.to(self.device, non_blocking=True) if isinstance(t, torch.Tensor) else t
                     for t in batch)

    # --- the pieces around the loop ---------------------------------------------------------

    def _batches(self, train: bool):
        """One pass of batches, on the device, the first checked, behind a progress bar."""
        kind = "training" if train else "validation"
        named = getattr(self.data, "train_dataloader" if train else "val_dataloader", None)
        loader = named() if callable(named) else self.data.get_dataloader(train=train)
        bars = self.verbose and (_in_notebook() or sys.stderr.isatty())  # not into log files
        end = f"/{self._end_epoch_n}" if self._end_epoch_n < math.inf else ""
        desc = f"epoch {self.epoch + 1}{end}" if train else "validating"
        self._bar = tqdm(loader, desc=desc, unit="batch", leave=False, disable=not bars,
                         dynamic_ncols=True)
        count = 0
        with self._bar:
            for batch in self._bar:
                batch = self.prepare_batch(batch)
                self._check_first(batch, kind)
                count += 1
                yield batch
        if count == 0:
            raise ValueError(f"the {kind} set is empty: its data loader gave no batch")

    def _training_step(self, batch) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The model's training loss of a batch, and its output when a classifier's."""
        outputs = []
        hook = self.model.register_forward_hook(lambda module, args, out: outputs.append(out))
        try:
            loss = self.model.training_step(batch)
        except (IndexError, RuntimeError) as err:
            _explain_labels(err, batch[-1], getattr(self, "_num_scores", None), self.epoch + 1)
            raise
        finally:
            hook.remove()
        y_hat = outputs[-1] if outputs and hasattr(self.model, "accuracy") else None
        return loss, y_hat

    def _look(self, sums: _EpochSums, good: dict) -> None:
        """Stop (rolled back to `good`) at the first non-finite loss not yet looked at."""
        bad = sums.check()
        if bad is not None:
            self.model.load_state_dict(good, strict=False)
            batch, loss = bad
            raise _Diverged(self.epoch + 1, batch, loss, sums.checked + 1,
                            first_step=sums.steps == 0 and batch == 1)
        if self.verbose and sums.count:
            self._bar.set_postfix_str(f"loss {sums.last:.4f}", refresh=False)

    def _end_epoch(self, figures: dict, train_s: float, val_s: float) -> None:
        """Record an epoch's figures, log them every `print_every`, run the callbacks."""
        self.epoch += 1
        figures = {k: v for k, v in figures.items() if v is not None}
        for name, value in figures.items():
            self.history.setdefault(name, []).append(value)
        self.timings["train_s"].append(train_s)
        self.timings["val_s"].append(val_s)
        if self.epoch % self.print_every == 0:
            line = ", ".join(f"{title}: {figures[k]:.4f}" for k, title in _TITLES.items()
                             if k in figures) or f"Epoch {self.epoch}"
            logger.log(logging.INFO if self.verbose else logging.DEBUG, line)
        for callback in self.callbacks:
            callback.on_epoch_end(self, self.epoch, figures | {"train_s": train_s,
                                                               "val_s": val_s})

    def _setup_optimizer(self):
        """The rule bound to the model, the optimiser given, or the model's own optimiser."""
        own = getattr(self.model, "configure_optimizers", None)
        takes_rule = own is not None and len(inspect.signature(own).parameters) > 0
        if self.opt is None:
            if own is None or takes_rule:
                raise ValueError(f"no optimiser: pass opt= (e.g. d2lai.Descent(0.1)), or give "
                                 f"{type(self.model).__name__} a configure_optimizers() that "
                                 f"returns one")
            optimizer = own()
        elif isinstance(self.opt, RULES):
            optimizer = own(self.opt) if takes_rule else setup(self.opt, self.model)
        else:
            optimizer = self.opt
        if isinstance(optimizer, torch.optim.Optimizer):
            ours = {id(p) for p in self.model.parameters()}
            theirs = [p for g in optimizer.param_groups for p in g["params"]]
            if theirs and not any(id(p) in ours for p in theirs):
                raise ValueError(f"the optimiser holds none of {type(self.model).__name__}'s "
                                 f"parameters (was it built over another model?): build it over "
                                 f"model.parameters(), or pass a rule such as Descent(0.1)")
        return optimizer

    def _check_first(self, batch, kind: str) -> None:
        """On the first batch of each kind, check shapes and labels (errors say expected/got)."""
        if kind in self._checked:
            return
        self._checked.add(kind)
        *X, y = batch
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.no_grad():
                y_hat = self.model(*X)
        except (RuntimeError, TypeError, IndexError) as err:
            shapes = ", ".join(f"{tuple(x.shape)} {x.dtype}" if isinstance(x, torch.Tensor)
                               else type(x).__name__ for x in X)
            raise ValueError(f"the model cannot take the first {kind} batch "
                             f"(input {shapes}): {err}") from err
        finally:
            self.model.train(was_training)
        if hasattr(self.model, "check_batch"):
            self.model.check_batch(y_hat, y, getattr(self.data, "num_classes", None))
        if kind == "training" and hasattr(self.model, "output_head"):
            head = self.model.output_head(y_hat)
            self._num_scores = y_hat.shape[1]
            own = type(self.model).loss is not AbstractClassifier.loss
            logger.log(logging.INFO if self.verbose else logging.DEBUG, "%s outputs %s: loss %s",
                       type(self.model).__name__, head.replace("_", "-"),
                       "its own" if own else HEADS[head])
            _check_all_labels(self.data, self._num_scores)


@dataclass
class Metrics:
    """How a fit ended: the figures of epoch `epoch` (the last one, or the one whose weights
    were restored), over the whole validation set; `history` holds every epoch's."""

    val_loss: float
    val_acc: float | None
    train_loss: float
    epochs: int
    diverged: bool = False
    interrupted: bool = False
    train_acc: float | None = None
    stopped_early: bool = False
    epoch: int = 0
    steps: int = 0
    history: dict[str, list[float]] = field(default_factory=dict)

    @classmethod
    def of(cls, history: dict, epochs: int, steps: int, **flags) -> Metrics:
        metrics = cls(math.nan, None, math.nan, epochs, steps=steps,
                      history={k: list(v) for k, v in history.items()}, **flags)
        return metrics.at_epoch(len(history.get("train_loss", [])))

    def at_epoch(self, epoch: int) -> Metrics:
        """Take the figures of `epoch` (from 1) from the history."""
        def get(name, default):
            values = self.history.get(name, [])
            return values[epoch - 1] if 1 <= epoch <= len(values) else default

        self.epoch = epoch
        self.val_loss, self.train_loss = get("val_loss", math.nan), get("train_loss", math.nan)
        self.val_acc, self.train_acc = get("val_acc", None), get("train_acc", None)
        return self


_TITLES = {"train_loss": "Train Loss", "val_loss": "Val Loss", "val_acc": "Val Acc"}


class _Diverged(Exception):
    def __init__(self, epoch: int, batch: int, loss, restored_before: int, first_step: bool):
        advice = ("the loss was not finite before any update, so the learning rate is not the "
                  "cause: check the model's outputs, its loss and the data" if first_step else
                  "lower the learning rate, or clip gradients with gradient_clip_val")
        super().__init__(f"diverged at epoch {epoch}, batch {batch} (loss={float(loss)}); the "
                         f"model is as it was before batch {restored_before}: {advice}")


class _EpochSums:
    """An epoch's loss and correct-prediction sums, on the device (no sync per batch).

    The losses not yet looked at wait in a small preallocated window: no tensor is kept per
    batch, which would fragment the heap between large batches and grow memory all epoch.
    """

    def __init__(self, every: int, steps: int, device: torch.device):
        self.every, self.steps, self.with_acc = every, steps, True
        self.window = torch.zeros(every, device=device)
        self.sums = torch.zeros(2, dtype=torch.float64, device=device)  # loss x size, correct
        self.count = self.checked = self.samples = 0
        self.last = math.nan

    def all_checked(self) -> bool:
        return self.checked == self.count

    def due(self) -> bool:
        return self.count - self.checked >= self.every

    def add(self, loss: torch.Tensor, y_hat: torch.Tensor | None, y: torch.Tensor) -> None:
        loss = loss.detach()
        self.window[self.count - self.checked] = loss
        self.sums[0] += loss.double() * len(y)
        if isinstance(y_hat, torch.Tensor) and y_hat.ndim == 2 and y.ndim == 1 \
                and len(y_hat) == len(y):
            self.sums[1] += (y_hat.detach().argmax(1) == y).sum()
        else:
            self.with_acc = False
        self.count += 1
        self.samples += len(y)

    def check(self) -> tuple[int, float] | None:
        """(batch number from 1, loss) of the first non-finite loss not yet looked at, or None."""
        pending = self.count - self.checked
        if pending == 0:
            return None
        bad = (~torch.isfinite(self.window[:pending])).nonzero()
        if len(bad):
            return self.checked + int(bad[0]) + 1, float(self.window[int(bad[0])])
        self.last, self.checked = float(self.window[pending - 1]), self.count
        return None

    def means(self) -> dict[str, float]:
        loss, correct = self.sums.tolist()
        out = {"train_loss": loss / self.samples}
        if self.with_acc:
            out["train_acc"] = correct / self.samples
        return out


def _snapshot(model: nn.Module, weights: bool) -> dict[str, torch.Tensor]:
    """Copies of the model's buffers (and parameters too if `weights`), to roll back to."""
    named = model.state_dict() if weights else dict(model.named_buffers())
    return {k: v.detach().clone() for k, v in named.items()}


def _loss_and_acc(out) -> tuple:
    if isinstance(out, (tuple, list)):
        return out[0], (out[1] if len(out) > 1 else None)
    return out, None


def _explain_labels(err: Exception, y, num_scores: int | None, epoch: int) -> None:
    """Turn torch's error for out-of-range labels in a later batch into a clear ValueError."""
    if num_scores and isinstance(y, torch.Tensor) and y.numel() and not y.is_floating_point():
        lo, hi = int(y.min()), int(y.max())
        if lo < 0 or hi >= num_scores:
            raise ValueError(f"a training batch of epoch {epoch} has labels from {lo} to {hi}, "
                             f"but the model outputs {num_scores} class scores: expected labels "
                             f"in 0..{num_scores - 1}") from err


def _check_all_labels(data, num_scores: int) -> None:
    """Check the whole label tensors of in-memory data at once (min/max is cheap)."""
    for split in ("train", "val", "test"):
        tensors = getattr(data, split, None)
        if not isinstance(tensors, (tuple, list)) or not tensors:
            continue
        y = tensors[-1]
        if isinstance(y, torch.Tensor) and y.numel() and not y.is_floating_point():
            lo, hi = int(y.min()), int(y.max())
            if lo < 0 or hi >= num_scores:
                raise ValueError(f"the {split} labels range from {lo} to {hi}, but the model "
                                 f"outputs {num_scores} class scores: expected labels in "
                                 f"0..{num_scores - 1}")


def _check_arguments(model, data, opt, custom_loop: bool, **args) -> None:
    """Refuse what `Trainer(...)` cannot train, with the argument's name and what came."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module (a d2lai.AbstractClassifier, say), "
                        f"got {type(model).__name__}")
    if not hasattr(model, "training_step") or not hasattr(model, "validation_step"):
        raise TypeError(f"model {type(model).__name__} has no training_step/validation_step: "
                        f"make it a subclass of d2lai.AbstractModel or AbstractClassifier")
    if not ((callable(getattr(data, "train_dataloader", None))
             and callable(getattr(data, "val_dataloader", None)))
            or callable(getattr(data, "get_dataloader", None))):
        raise TypeError(f"data must be a data module with train_dataloader() and "
                        f"val_dataloader(), or get_dataloader(train) (a d2lai.AbstractData such "
                        f"as FashionMNISTData), got {type(data).__name__}")
    for split in ("train", "val"):
        tensors = getattr(data, split, None)
        if isinstance(tensors, (tuple, list)) and tensors \
                and all(isinstance(t, torch.Tensor) and t.ndim for t in tensors):
            lengths = sorted({len(t) for t in tensors})
            if len(lengths) > 1:
                raise ValueError(f"data.{split} holds tensors of different lengths {lengths}: "
                                 f"inputs and labels must have one row per sample")
            if lengths == [0]:
                raise ValueError(f"the {'training' if split == 'train' else 'validation'} set "
                                 f"is empty: data.{split} has 0 samples")
    stepper = callable(getattr(opt, "step", None)) and callable(getattr(opt, "zero_grad", None))
    if not (opt is None or isinstance(opt, RULES) or stepper or custom_loop):
        raise TypeError(f"opt must be {ACCEPTED}, or None when the model has its own "
                        f"configure_optimizers(); got {type(opt).__name__}")
    for name in ("max_epochs", "print_every", "max_steps"):
        value, optional = args[name], {"max_steps": True, "max_epochs": args["max_steps"]}
        if (value is not None or not optional.get(name)) and (
                isinstance(value, bool) or not isinstance(value, int) or value <= 0):
            raise ValueError(f"{name} must be a positive integer, got {value!r}"
                             + (" (None only with max_steps)" if name == "max_epochs" else ""))
    clip = args["gradient_clip_val"]
    if isinstance(clip, bool) or not isinstance(clip, (int, float)) or not 0 <= clip < math.inf:
        raise ValueError(f"gradient_clip_val must be a finite number >= 0 (0 turns clipping "
                         f"off), got {clip!r}")
    if args["on_diverge"] not in ("stop", "raise"):
        raise ValueError(f"on_diverge must be 'stop' or 'raise', got {args['on_diverge']!r}")
    if args["resume"] and args["checkpoint"] is None:
        raise ValueError("resume=True needs checkpoint='path.pt' to resume from")
    if args["seed"] is not None:
        check_seed(args["seed"])
    bad = [c for c in args["callbacks"] if not isinstance(c, Callback)]
    if bad:
        raise TypeError(f"callbacks must be d2lai.Callback objects, got "
                        f"{', '.join(type(c).__name__ for c in bad)}")


class _JuliaFormatter(logging.Formatter):
    """`[ Info: message`, as Julia's logging macros print it."""

    def format(self, record: logging.LogRecord) -> str:
        return f"[ {record.levelname.capitalize()}: {record.getMessage()}"


def _show_logs() -> None:
    """Make the `d2lai` logger's INFO lines visible, unless the program set up logging itself."""
    if not logger.hasHandlers():
        handler = logging.StreamHandler()
        handler.setFormatter(_JuliaFormatter())
        logger.addHandler(handler)
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.INFO)


def fit(trainer: Trainer) -> tuple[nn.Module, Metrics]:
    """`d2lai.fit(trainer)`, as the book calls it."""
    return trainer.fit()
