"""Trainer and fit: the book's training loop as a short list of named events.

The loop is the book's: for each batch, the model's training step (forward and loss), backward,
clip, step; then the whole validation set. What each pass measures is the fit's metric list
(`d2lai.metrics`: the model family's, then `metrics=`). Everything else (first-batch checks,
divergence watch, progress bars, epoch lines, the board, checkpoints, early stopping) is a
callback (`d2lai.callbacks`), called at the loop's events in its `order`.
"""

from __future__ import annotations

import inspect
import logging
import math
import os
import time
from dataclasses import dataclass, field, fields, replace

import torch
from torch import nn

from . import checks, distributed
from .board import ProgressBoard
from .callbacks import Callback, Diverged, MonitorCallback
from .callbacks.epoch_log import show_logs
from .callbacks.own import own_callbacks
from .device import get_device, seed
from .metrics import KNOWN, Accuracy, Loss, Measure, MetricList
from .models.rnn import RESCALE_NOTE, clip_gradients, say_once
from .optim import RULES, setup
from .precision import Precision

__all__ = ["Trainer", "Metrics", "fit"]

logger = logging.getLogger("d2lai")


def detached(outputs):
    """`outputs` (a tensor, or tuples, lists and dicts of them) with every tensor detached."""
    if isinstance(outputs, torch.Tensor):
        return outputs.detach()
    if isinstance(outputs, (tuple, list)):
        return type(outputs)(detached(o) for o in outputs)
    if isinstance(outputs, dict):
        return {k: detached(v) for k, v in outputs.items()}
    return outputs


class Trainer:
    """Holds what a run needs; `fit` trains `model` on `data` with the optimiser rule `opt`.

    Args:
        model: an `AbstractModel` (its `training_step`, `validation_step`, `loss`).
        data: an `AbstractData` (or anything with `train_dataloader()`/`val_dataloader()`,
            or `get_dataloader(train=...)`).
        opt: a Flux-named rule (`Descent(0.1)`, bound to the model when `fit` starts), a
            `torch.optim.Optimizer` (per-parameter-group settings such as weight decay go
            there), or None when the model's `configure_optimizers()` returns its own.
        max_epochs: epochs a fit trains (a later `fit` of the same trainer trains that many
            more); None: `max_steps` alone bounds the run.
        gpu: train on the CUDA device when there is one (else the CPU, said once in the log).
        board_yscale: "log10" (or "log") or "identity" (or "linear"): the y scale of the
            board's loss panel; accuracies are always drawn on a linear axis from 0 to 1.
        verbose: log an epoch line every `print_every` epochs and show a progress bar in a
            terminal (a status line in a notebook); False logs them at DEBUG, without bars.
        gradient_clip_val: the global gradient norm to clip to (0: no clipping); the books'
            name of `grad_clip_val`.
        clip: "rescale" (the Julia package's arithmetic, said once when it runs: every step's
            gradient rescaled to norm `gradient_clip_val`) or "max_norm" (scaled down only
            above it, as torch and the PyTorch edition).
        print_every: epochs between epoch lines.
        board: draw the metrics on a `ProgressBoard` (`trainer.board`), live in a notebook.
        board_path: save the board there (PNG, SVG, PDF, ...) when the fit ends.
        on_diverge: at a non-finite loss, "stop" (roll back to the last good state and return)
            or "raise" (`FloatingPointError`).
        checkpoint: save model, optimiser, history and random state there after every epoch.
        resume: go on from `checkpoint` (an error if it does not exist).
        override_opt: resume with another rule than the checkpoint's.
        seed: seed everything before the first fit; each epoch's shuffled order is drawn from
            the seed and the epoch, as the ranks draw it under torchrun.
        callbacks: `d2lai.Callback`s (or one): `EarlyStopping`, `CSVLogger`,
            `TensorBoardLogger`, `LRScheduler`, your own; run in their `order`.
        max_steps: stop after this many optimiser steps (batches) in all.
        precision: "32" (float32), "bf16" (bfloat16 autocast: CPUs with AVX512-BF16 or AMX,
            GPUs since Ampere) or "16" (float16 autocast with a gradient scaler, on a GPU);
            the weights and the optimiser's state stay float32 (`d2lai.precision`).
        compile: compile the training and validation steps with `torch.compile` (the seconds
            it took said on the first epoch line; eager, said once, where it fails).
        metrics: more metrics to measure on every pass, after the model family's (loss,
            accuracy, ...): `d2lai.metrics.TopKAccuracy(5)`, a `torchmetrics.Metric`, or a
            function `(outputs, targets) -> number`; in `trainer.metric_list`.

    The outputs of the model's forward pass of the batch at hand are `trainer.outputs` (for
    the callbacks, at `on_loss` and `on_validation_batch_end`).

    Returns from `fit`: `(model, metrics)`, the model on the CPU and a `Metrics` (the last
    epoch's metrics, `metrics.history` every epoch's, `metrics.best()` the best epoch's).

    >>> trainer = Trainer(model, data, Descent(0.1), max_epochs=10)
    >>> model, metrics = fit(trainer)   # metrics.val_loss, metrics.val_acc, metrics.history
    >>> trainer.evaluate()              # {'val_loss': ..., 'val_acc': ...} again, at any time
    >>> trainer.test()                  # the same over data.test: {'test_loss': ..., ...}
    """

    def __init__(self, model: nn.Module, data, opt=None, max_epochs: int | None = 10,
                 gpu: bool = False, board_yscale: str = "log10", verbose: bool = True,
                 gradient_clip_val: float = 0.0, print_every: int = 1, board: bool = True, *,
                 board_path: str | os.PathLike | None = None, on_diverge: str = "stop",
                 checkpoint: str | os.PathLike | None = None, resume: bool = False,
                 override_opt: bool = False, seed: int | None = None,
                 callbacks: Callback | list[Callback] = (), max_steps: int | None = None,
                 clip: str = "rescale", precision: str = "32", compile: bool = False,
                 metrics: list = ()):
        custom_loop = type(self).fit_epoch is not Trainer.fit_epoch \
            or callable(getattr(type(model), "fit_epoch", None))  # the Julia text's own epoch
        checks.trainable(model, data, opt, custom_loop)
        args = checks.TRAINER(dict(max_epochs=max_epochs, max_steps=max_steps, gpu=gpu,
                                   verbose=verbose, board=board, print_every=print_every,
                                   gradient_clip_val=gradient_clip_val, on_diverge=on_diverge,
                                   resume=resume, override_opt=override_opt, clip=clip,
                                   board_yscale=board_yscale, seed=seed))
        checks.stops(max_epochs, max_steps)
        checks.resumable(resume, checkpoint)
        callbacks = self.given_callbacks = checks.callbacks(callbacks)  # part of the run
        self.model, self.data, self.opt, self.seed = model, data, opt, args["seed"]
        self.max_epochs, self.max_steps = args["max_epochs"], args["max_steps"]
        self.gpu, self.verbose, self.print_every = args["gpu"], args["verbose"], print_every
        self.grad_clip_val, self.clip = args["gradient_clip_val"], args["clip"]
        monitors = [c for c in callbacks if isinstance(c, MonitorCallback)]
        self.monitor = monitors[0].monitor if monitors else None  # None: the family's default
        self.metric_list = MetricList([*getattr(model, "METRICS", (Loss(), Accuracy())),
                                       *checks.metrics(metrics)])
        self.board = ProgressBoard("epoch", yscale=args["board_yscale"],
                                   title=type(model).__name__,
                                   panel_of=self.metric_list.panel) if board else None
        self.outputs = None  # the model's outputs of the batch at hand
        self.amp = Precision(precision, compile)  # how the steps run: autocast, compiled
        own = own_callbacks(self, on_diverge=on_diverge, board_path=board_path,
                            checkpoint=checkpoint, resume=resume, override_opt=override_opt)
        main = distributed.is_main_process()  # under torchrun, rank 0 alone prints and writes
        kept = [c for c in [*own, *callbacks] if main or not c.main_process_only]
        self.callbacks = sorted(kept, key=lambda c: c.order)  # stable: ties keep their order
        self.history: dict[str, list[float]] = {}
        self.notes: list[str] = []  # said on the next epoch line (precision, skipped steps)
        self.timings: dict[str, list[float]] = {"train_s": [], "val_s": []}
        self.epoch = self.steps = 0  # completed epochs and optimiser steps, over all fits
        self.optimizer, self.should_stop, self._fits = None, False, 0
        self.ddp = None  # under torchrun, the training step in DistributedDataParallel

    @property
    def gradient_clip_val(self) -> float:
        """The books' name of `grad_clip_val`."""
        return self.grad_clip_val

    @gradient_clip_val.setter
    def gradient_clip_val(self, value: float) -> None:
        self.grad_clip_val = value

    def fit(self) -> tuple[nn.Module, Metrics]:
        """Train and validate epoch by epoch; return (the model, on the CPU, and its metrics).

        Ctrl-C ends the fit cleanly (`metrics.interrupted`), a non-finite loss rolls back and
        stops it (`metrics.diverged`); both still return what was trained.
        """
        self.prepare()
        diverged = interrupted = False
        try:
            self.emit("on_fit_start")  # a start that fails ends the callbacks it started alone
            self._fits += 1
            while self.epoch < self.stop_epoch and self.steps < self.stop_step \
                    and not self.should_stop:
                self.emit("on_epoch_start")
                tic = time.perf_counter()
                logs = self.fit_epoch()
                toc = time.perf_counter()
                logs = {} if logs is None else logs | self.validate()  # None: it validated itself
                self.end_epoch(logs, toc - tic, time.perf_counter() - toc)
        except Diverged:  # rolled back and logged by the DivergenceWatch
            diverged = True
        except KeyboardInterrupt:
            interrupted = True
            logger.warning("interrupted at epoch %d", self.epoch + 1)
        except Exception as err:
            self.emit("on_exception", err)  # a callback may raise a clearer error instead
            raise
        finally:
            self.model.cpu()
            metrics = Metrics.of(self.history, self.epoch, self.steps, diverged=diverged,
                                 interrupted=interrupted, stopped_early=self.should_stop,
                                 metric_list=self.metric_list)
            self.emit("on_fit_end", metrics)
        return self.model, metrics

    def fit_epoch(self) -> dict[str, float]:
        """One pass over the training set; the epoch's training metrics (`train_loss`, ...)."""
        if callable(getattr(type(self.model), "fit_epoch", None)):  # the Julia text's own
            from .julia import model_epoch

            return model_epoch(self)
        self.model.train()
        measure = Measure(self.metric_list, "train", self.model, self.device)
        for batch in self.batches(train=True, keep=measure.needs_outputs):
            loss = self.training_step(batch)  # the model's forward (self.outputs) and loss
            self.emit("on_loss", batch, loss)  # first-batch checks, divergence watch, ...
            measure.update(self.outputs, batch, loss)
            self.optimizer.zero_grad()
            self.amp.backward(loss)  # loss.backward(), the loss scaled in float16
            with torch.no_grad():  # clipping and the step are no part of the graph
                if self.grad_clip_val > 0:
                    self.amp.unscale(self.optimizer)  # clip the true gradients
                    self.clip_gradients(self.grad_clip_val, self.model)
                self.amp.step(self.optimizer)  # optimizer.step(); in float16 not on overflow
            self.steps += 1
            self.emit("on_train_batch_end", batch, loss)
            if self.steps >= self.stop_step:
                break
        logs = measure.compute()
        self.emit("on_train_epoch_end", logs)
        return logs

    def training_step(self, batch):
        """The model's training step, in the trainer's precision (compiled with `compile`);
        under torchrun through DistributedDataParallel, so that backward combines the
        gradients of all ranks (see `d2lai.distributed`)."""
        step = self.model.training_step if self.ddp is None else self.ddp
        return self.amp.run("training", step, batch)

    @torch.no_grad()
    def validate(self, loader=None) -> dict[str, float]:
        """The metrics over the WHOLE validation set (or `loader`), in evaluation mode:
        `{"val_loss": ..., "val_acc": ...}` for a classifier."""
        self.model.eval()
        measure = Measure(self.metric_list, "val", self.model, self.device)
        for batch in self.batches(train=False, loader=loader, keep=measure.needs_outputs):
            out = self.amp.run("validation", self.model.validation_step, batch)  # loss,
            measure.update(self.outputs, batch, out)  # (loss, acc), or None: nothing
            self.emit("on_validation_batch_end", batch, out)
        logs = measure.compute()
        self.emit("on_validation_end", logs)
        return logs

    def evaluate(self, data=None, name: str = "val") -> dict[str, float]:
        """The fit's metrics (loss, accuracy, yours) over a whole data set, in evaluation mode,
        as `validate` computes them, at any time (before, between or after fits).

        Args:
            data: a data module (its validation set), a data loader or any iterable of
                `(X..., y)` batches; None: the trainer's validation set.
            name: the prefix of the metrics' names.

        Returns:
            `{f"{name}_loss": ..., f"{name}_acc": ..., ...}` (no accuracy for a regression).

        >>> trainer.evaluate()                        # {'val_loss': 0.31, 'val_acc': 0.89}
        >>> trainer.evaluate(other.val_dataloader(), name="other")
        """
        checks.evaluation_data(data)
        if data is not None and not hasattr(data, "__iter__"):
            named = getattr(data, "val_dataloader", None)
            data = named() if callable(named) else data.get_dataloader(train=False)
        self.device = get_device(self.gpu)
        self.model.to(self.device)
        params = next(iter(self.model.parameters()), None)
        self.dtype = params.dtype if params is not None and params.is_floating_point() else None
        self.amp.setup(self.device, self.model)
        hooks, self.hooks = getattr(self, "hooks", None), {e: [] for e in Callback.EVENTS}
        try:  # no callbacks: an evaluation is no part of a fit
            logs = self.validate(data)
        finally:
            self.hooks = hooks
            self.model.cpu()
        return {f"{name}_{k.removeprefix('val_')}": v for k, v in logs.items()}

    def test(self) -> dict[str, float]:
        """`evaluate` over the data's test set (`data.test_dataloader()`), logged as one line:
        `{"test_loss": ..., "test_acc": ...}`. Without `val_split` the test set is the
        validation set, as in the book."""
        loader = getattr(self.data, "test_dataloader", None)
        if not callable(loader):
            raise ValueError(f"{type(self.data).__name__} has no test_dataloader(): pass the "
                             f"test batches to trainer.evaluate(loader, name='test')")
        logs = self.evaluate(loader(), name="test")
        logger.log(logging.INFO if self.verbose else logging.DEBUG, "%s",
                   self.metric_list.format(logs))
        return logs

    def batches(self, train: bool, loader=None, keep: bool = False):
        """The training (or validation) batches of one pass (of `loader` if given), on the
        device; callbacks see each. The model's outputs are kept (`trainer.outputs`) when the
        pass's metrics (`keep`) or its callbacks read them."""
        if loader is None:
            named = getattr(self.data, "train_dataloader" if train else "val_dataloader", None)
            loader = named() if callable(named) else self.data.get_dataloader(train=train)
        kind = "train" if train else "validation"
        readers = self.hooks["on_loss" if train else "on_validation_batch_end"]
        keep = keep or any(getattr(getattr(h, "__self__", None), "reads_outputs", True)
                           for h in readers)
        watch = self.model.register_forward_hook(self.keep_outputs) if keep else None
        try:
            self.emit(f"on_{kind}_start", loader)
            for batch in loader:
                batch, self.outputs = self.prepare_batch(batch), None  # outputs: the step's own
                self.emit(f"on_{kind}_batch_start", batch)
                yield batch
        finally:
            if watch is not None:
                watch.remove()

    def end_epoch(self, logs: dict, train_s: float, val_s: float) -> None:
        """Count the epoch, add the model's own metrics, record them, call the callbacks."""
        self.epoch += 1
        logs = {k: v for k, v in logs.items() if v is not None}
        logs |= self.metric_list.derive(logs)  # perplexity from the loss, ...
        own = getattr(self.model, "epoch_metrics", None)  # a model family's own metrics
        if own is not None:
            logs |= own(logs)
        for name, value in logs.items():
            self.history.setdefault(name, []).append(value)
        self.timings["train_s"].append(train_s)
        self.timings["val_s"].append(val_s)
        self.emit("on_epoch_end", self.epoch, logs | {"train_s": train_s, "val_s": val_s})

    def clip_gradients(self, grad_clip_val: float, model: nn.Module) -> None:
        """Scale the gradients to global norm `grad_clip_val` (`clip="rescale"`), or down to at
        most that (`clip="max_norm"`)."""
        if self.clip == "rescale":
            say_once("rescale", RESCALE_NOTE.format(value=grad_clip_val))
        clip_gradients(grad_clip_val, model, self.clip)

    def prepare_batch(self, batch) -> tuple:
        """The batch as a tuple `(X..., y)` on the training device, in the model's float dtype."""
        return tuple(t.to(self.device, self.dtype if t.is_floating_point() else None,
                          non_blocking=True) if isinstance(t, torch.Tensor) else t
                     for t in batch)

    # --- around the loop ----------------------------------------------------------------------

    def keep_outputs(self, module, args, outputs) -> None:
        """Keep the model's outputs of the batch at hand (a forward hook, for a pass whose
        metrics or callbacks read them: outputs leaving a compiled step change what it fuses,
        10% of a language model's step), detached: what reads them measures, and a compiled
        step whose outputs leave it still in the graph pays for their gradient in backward."""
        self.outputs = detached(outputs)

    def emit(self, event: str, *args) -> None:
        """Call `event` on each callback that overrides it, in the callbacks' order."""
        for hook in self.hooks[event]:
            hook(self, *args)

    def prepare(self) -> None:
        """Device, model and data there, the optimiser, the seed and this fit's limits."""
        if self.verbose:
            show_logs()  # the epoch lines visible, unless the program set up logging itself
        self.device = get_device(self.gpu)
        self.model.to(self.device)
        params = next(iter(self.model.parameters()), None)
        self.dtype = params.dtype if params is not None and params.is_floating_point() else None
        if callable(getattr(self.data, "to", None)):
            self.data.to(self.device)  # once, so batches are cut where the model runs
        if self.optimizer is None:
            self.optimizer = self.setup_optimizer()
        if self.seed is not None and not self._fits:
            seed(self.seed)
        first = self._fits == 0  # a first fit's limits are totals (a resumed run counts)
        self.stop_epoch = (0 if first else self.epoch) + (self.max_epochs or math.inf)
        self.stop_step = (0 if first else self.steps) + (self.max_steps or math.inf)
        self.should_stop = False
        self.hooks = {event: [getattr(c, event) for c in self.callbacks if overrides(c, event)]
                      for event in Callback.EVENTS}
        self.hooks["on_fit_start"] = [self.starting(c) for c in self.callbacks]
        self.hooks["on_fit_end"] = []  # each callback's, once its fit has started

    def starting(self, callback: Callback):
        """`callback.on_fit_start`, after which its `on_fit_end` is due: a fit whose start
        fails ends the callbacks it started, and no other."""
        def start(trainer):
            callback.on_fit_start(trainer)
            if overrides(callback, "on_fit_end"):
                self.hooks["on_fit_end"].append(callback.on_fit_end)
        return start

    def setup_optimizer(self):
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
        checks.optimizer_of(optimizer, self.model)
        return optimizer


@dataclass
class Metrics:
    """How a fit ended: the metrics of epoch `epoch` (the last one, or the one whose weights
    were restored), over the whole validation set; `history` holds every epoch's.

    `val_loss`, `val_acc` (None without accuracy), `train_loss`, `train_acc`: the metrics;
    after a fit, `val_loss` and `val_acc` also hold each batch's value of the last validation
    pass, as the Julia package's `fit` returns them (`metrics.val_acc[-1]`, `len(...)`,
    `statistics.mean(...)`: `d2lai.callbacks.BatchValues`);
    `epochs` completed, `steps` taken; `diverged`, `interrupted`, `stopped_early`: how it
    ended; `monitor`: the metric `best()` chose the epoch by; `modes`: each metric's
    direction ('min' or 'max', as its metric says) and `default_monitor` the metric `best()`
    takes when none is named (both from the fit's metrics). Any other metric of the history
    is an attribute too: `metrics.val_top5_acc`.

    >>> model, metrics = d2lai.fit(trainer)
    >>> metrics.val_acc, metrics.epoch            # the last epoch's
    >>> best = metrics.best()                     # the epoch of the highest val_acc
    >>> best.epoch, best.val_acc, best.val_loss
    """

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
    monitor: str | None = None
    # each metric's direction ('min' or 'max', as its metric says) and the default monitor
    modes: dict[str, str] = field(default_factory=dict, repr=False, compare=False)
    default_monitor: str | None = field(default=None, repr=False, compare=False)

    def __getattr__(self, name: str):
        """Any other metric of the history at `epoch`: `metrics.val_top5_acc`."""
        history = self.__dict__.get("history", {})
        if name.startswith("_") or name not in history:
            raise AttributeError(f"{type(self).__name__} has no {name!r}; the metrics are "
                                 f"{', '.join(history)}")
        values = history[name]
        return values[self.epoch - 1] if 1 <= self.epoch <= len(values) else None

    @classmethod
    def of(cls, history: dict, epochs: int, steps: int, metric_list: MetricList = KNOWN,
           **flags) -> Metrics:
        """The metrics of the last epoch of `history` (metric name -> a value an epoch), with
        the directions of `metric_list`, the fit's metrics."""
        metrics = cls(math.nan, None, math.nan, epochs, steps=steps,
                      history={k: list(v) for k, v in history.items()},
                      modes={k: metric_list.mode(k) for k in history},
                      default_monitor=metric_list.default_monitor(history), **flags)
        return metrics.at_epoch(max(map(len, history.values()), default=0))

    def at_epoch(self, epoch: int) -> Metrics:
        """Take the metrics of `epoch` (from 1) from the history."""
        def get(name, default):
            values = self.history.get(name, [])
            return values[epoch - 1] if 1 <= epoch <= len(values) else default

        self.epoch = epoch
        for f in fields(self):  # val_loss, val_acc, train_loss, train_acc
            metric, split = KNOWN.find(f.name)
            if split is not None:  # a missing loss reads NaN, any other metric None
                setattr(self, f.name, get(f.name, math.nan if isinstance(metric, Loss) else None))
        return self

    def best(self, monitor: str | None = None, mode: str = "auto") -> Metrics:
        """A copy of these metrics at the best epoch of `monitor`.

        Args:
            monitor: a metric of the history; default `val_acc` if there is one, else
                `val_loss`, else `train_loss` (the fit's metrics decide).
            mode: "min", "max", or "auto" (as the metric says: accuracies are maximised).

        Returns:
            A `Metrics` whose `epoch` is the best one (the first on ties; non-finite values
            are passed over; 0 if there is none) and whose `monitor` names the metric.
        """
        monitor = monitor or self.default_monitor or KNOWN.default_monitor(self.history)
        values = self.history.get(monitor, [])
        mode = self.modes.get(monitor, "auto") if mode == "auto" else mode
        pick = min if KNOWN.mode(monitor, mode) == "min" else max
        finite = [i for i, v in enumerate(values) if v is not None and math.isfinite(v)]
        epoch = pick(finite, key=values.__getitem__) + 1 if finite else 0
        return replace(self, monitor=monitor).at_epoch(epoch)


def overrides(callback: Callback, event: str) -> bool:
    """Whether `callback` does something at `event` (the base class's hooks do nothing)."""
    return getattr(type(callback), event) is not getattr(Callback, event)


def fit(trainer: Trainer) -> tuple[nn.Module, Metrics]:
    """`d2lai.fit(trainer)`, as the book calls it: `trainer.fit()`.

    Returns:
        `(model, metrics)`: the trained model, on the CPU, and its `Metrics`.

    >>> model, metrics = d2lai.fit(Trainer(model, data, Descent(0.1), max_epochs=10))
    """
    return trainer.fit()
