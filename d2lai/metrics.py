"""Metrics: what a fit measures over each pass, as objects the whole library reads.

A metric has a name (`acc`), the passes it is measured on (`train_acc`, `val_acc`), how a
batch adds to it (a per-batch mean weighted by the batch's samples, or a `torchmetrics` state),
whether higher is better, and where it is drawn (its board panel, its TensorBoard group, its
title on the epoch line). A model family declares its own (`metrics()`: a classifier's loss and
accuracy, a language model's perplexity); `Trainer(..., metrics=[...])` adds more:

    from torchmetrics.classification import MulticlassF1Score

    def says_zero(y_hat, y):  # a plain function: a per-batch mean
        return (y_hat.argmax(-1) == 0).float().mean()

    Trainer(model, data, Descent(0.1),
            metrics=[d2lai.metrics.TopKAccuracy(5), MulticlassF1Score(10), says_zero])

The epoch line, the board, `Metrics.history`, the CSV and TensorBoard loggers, the monitors of
`EarlyStopping`, `RunTable` columns and the sums over ranks under torchrun all read one list,
`trainer.metrics` (a `MetricList`).
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Callable, Iterable

import torch

from . import distributed

__all__ = ["Metric", "Loss", "Accuracy", "TopKAccuracy", "Perplexity", "LearningRate",
           "FunctionMetric", "TorchMetric", "MetricList", "Measure", "as_metric", "of", "loss_of",
           "KNOWN"]

SPLITS = ("train", "val", "test")
UNREPORTED = "unreported"  # a validation step that returned its loss alone: no accuracy


class Metric:
    """A metric measured over a pass: the mean over its samples of a per-batch value.

    Subclasses give `batch(outputs, y, model, loss, reported)`: the batch's mean (a 0-d tensor
    or a number), or None where the batch cannot be scored (the metric is then left out of the
    pass). `weight(y)` is what the mean is weighted by (the batch's samples).

    Attributes:
        name: the metric's name without its pass (`acc` -> `train_acc`, `val_acc`).
        title: its title on the epoch line (`Acc` -> `Train Acc`).
        panel: the board's panel it is drawn on; `group`: its TensorBoard group.
        higher_is_better: what a monitor maximises (`mode="auto"`).
        splits: the passes it is measured on (None: once an epoch, no pass, as `lr`).
        needs_outputs: whether it reads the model's outputs (else the loss alone).

    >>> class MeanAbsError(Metric):
    ...     name, panel = "mae", "absolute error"
    ...     def batch(self, outputs, y, model, loss, reported):
    ...         return (outputs - y).abs().mean()
    >>> Trainer(model, data, Descent(0.1), metrics=[MeanAbsError()])   # train_mae, val_mae
    """

    name = "metric"
    title: str | None = None
    panel: str | None = None
    group: str | None = None
    higher_is_better = False
    splits: tuple = ("train", "val")
    needs_outputs = True

    def batch(self, outputs, y, model, loss, reported):
        raise NotImplementedError(f"{type(self).__name__} must define batch(outputs, y, model, "
                                  f"loss, reported)")

    def weight(self, y) -> int:
        return len(y)

    def key(self, split: str | None) -> str:
        """The metric's name in a pass: `val_acc`."""
        return self.name if split is None else f"{split}_{self.name}"

    def keys(self) -> list[str]:
        return [self.key(s) for s in self.splits]

    def label(self, split: str | None) -> str:
        """Its title on the epoch line: `Val Acc`."""
        title = self.title or self.name.replace("_", " ").title()
        return title if split is None else f"{split.title()} {title}"

    def tag(self, split: str | None) -> str:
        """Its TensorBoard tag: `accuracy/val`."""
        group = self.group or self.name
        return group if split is None else f"{group}/{split}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


class Loss(Metric):
    """The model's loss, as its training and validation steps return it: `train_loss`,
    `val_loss`. Every family declares it first.

    >>> MetricList([Loss()]).keys()
    ['train_loss', 'val_loss']
    """

    name, title, panel, group, needs_outputs = "loss", "Loss", "loss", "loss", False

    def batch(self, outputs, y, model, loss, reported):
        return loss.detach() if isinstance(loss, torch.Tensor) else loss


def _scores(outputs, y) -> bool:
    """Whether `outputs` are class scores (..., C) for labels `y` (...)."""
    return isinstance(outputs, torch.Tensor) and isinstance(y, torch.Tensor) \
        and outputs.shape[:-1] == y.shape


class Accuracy(Metric):
    """The fraction of targets whose largest score is at the label (the model's `accuracy`,
    which may mask padding); in validation, the accuracy the step reports (none if it returns
    its loss alone, as the book's steps that plot their own metrics).

    Args:
        splits: the passes it is measured on (a language model: validation only).

    >>> Accuracy(splits=("val",)).keys()
    ['val_acc']
    """

    name, title, panel, group, higher_is_better = "acc", "Acc", "accuracy", "accuracy", True

    def __init__(self, splits: tuple = ("train", "val")):
        self.splits = tuple(splits)

    def batch(self, outputs, y, model, loss, reported):
        if reported is not None:
            return None if reported is UNREPORTED else reported
        score = getattr(model, "accuracy", None)
        return score(outputs.detach(), y) if score is not None and _scores(outputs, y) else None


class TopKAccuracy(Metric):
    """The fraction of targets whose label is among the `k` largest scores: `top5_acc`.

    Args:
        k: how many of the largest scores count (all of them if there are fewer classes).
        splits: the passes it is measured on.

    >>> Trainer(model, data, Descent(0.1), metrics=[TopKAccuracy(5)])   # metrics.val_top5_acc
    """

    panel, higher_is_better = "accuracy", True

    def __init__(self, k: int = 5, splits: tuple = ("train", "val")):
        from .checks import positive_int

        self.k, self.splits = positive_int("k", k), tuple(splits)
        self.name, self.title = f"top{self.k}_acc", f"Top-{self.k} Acc"

    def batch(self, outputs, y, model, loss, reported):
        if not _scores(outputs, y):
            return None
        top = outputs.detach().topk(min(self.k, outputs.shape[-1]), dim=-1).indices  # (..., k)
        return (top == y.unsqueeze(-1)).any(-1).float().mean()


class FunctionMetric(Metric):
    """A plain function `(outputs, targets) -> number` (a batch's mean), averaged over the
    samples; `Trainer(metrics=[fn])` wraps a function so.

    Args:
        fn: the function.
        name: the metric's name (default: the function's; a lambda needs one).
        higher_is_better: what a monitor maximises.
        splits: the passes it is measured on.

    >>> FunctionMetric(lambda y_hat, y: (y_hat.argmax(-1) == 0).float().mean(), "zeros")
    FunctionMetric('zeros')
    """

    def __init__(self, fn: Callable, name: str | None = None, higher_is_better: bool = False,
                 splits: tuple = ("train", "val")):
        self.fn, self.higher_is_better, self.splits = fn, higher_is_better, tuple(splits)
        self.name = name or _snake(getattr(fn, "__name__", "metric"))
        if self.name == "<lambda>" or not self.name.isidentifier():
            raise ValueError("a metric from a lambda needs a name: "
                             "FunctionMetric(lambda y_hat, y: ..., name='my_metric')")

    def batch(self, outputs, y, model, loss, reported):
        value = self.fn(outputs.detach(), y)
        return value.detach() if isinstance(value, torch.Tensor) else value


class Perplexity(Metric):
    """exp of a pass's mean loss: a language model's metric, derived from the epoch's loss.

    >>> MetricList([Loss(), Perplexity()]).derive({"val_loss": 0.0})
    {'val_ppl': 1.0}
    """

    name, title, panel, group, needs_outputs = "ppl", "Ppl", "perplexity", "perplexity", False
    of = "loss"

    def derive(self, values: dict[str, float]) -> float | None:
        """From the pass's other metrics (by metric name); None if the loss is missing."""
        loss = values.get(self.of)
        return None if loss is None else (math.exp(loss) if loss < 709 else math.inf)


class LearningRate(Metric):
    """The rate an epoch ended with; set by `LRScheduler`, measured on no pass.

    >>> KNOWN.label("lr"), KNOWN.panel("lr")
    ('LR', 'learning rate')
    """

    name, title, panel, group, splits = "lr", "LR", "learning rate", "lr", (None,)


class TorchMetric(Metric):
    """A `torchmetrics.Metric` as it is: `update(outputs, targets)` each batch, `compute()`
    at the end of the pass (summed over the ranks by torchmetrics itself under torchrun); a
    fresh copy each pass. Its direction is the object's `higher_is_better`.

    Args:
        metric: the torchmetrics object (`Trainer(metrics=[obj])` wraps it so).
        name: the metric's name (default: from its class, `MulticlassF1Score` -> `f1_score`).
        splits: the passes it is measured on.

    >>> TorchMetric(MulticlassF1Score(10)).keys()
    ['train_f1_score', 'val_f1_score']
    """

    def __init__(self, metric, name: str | None = None, splits: tuple = ("train", "val")):
        self.metric, self.splits = metric, tuple(splits)
        self.name = name or _snake(re.sub(r"^(Multiclass|Binary|Multilabel)", "",
                                          type(metric).__name__))
        self.higher_is_better = bool(getattr(metric, "higher_is_better", False))

    def state(self, device):
        """A fresh copy for one pass, on `device`."""
        state = copy.deepcopy(self.metric).to(device)
        state.reset()
        return state


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


def as_metric(m) -> Metric:
    """`m` as a `Metric`: a `Metric` as it is, a `torchmetrics.Metric` as a `TorchMetric`, a
    function `(outputs, targets) -> number` as a `FunctionMetric`; a TypeError otherwise.

    >>> as_metric(TopKAccuracy(5)).name
    'top5_acc'
    """
    if isinstance(m, Metric):
        return m
    if type(m).__module__.startswith("torchmetrics"):
        return TorchMetric(m)
    if callable(m):
        return FunctionMetric(m)
    raise TypeError(f"a metric is a d2lai.metrics.Metric (e.g. TopKAccuracy(5)), a "
                    f"torchmetrics.Metric or a function (outputs, targets) -> number; got "
                    f"{type(m).__name__}")


class MetricList(list):
    """The metrics of a fit, in order: the model family's, then the trainer's `metrics=`.
    Every metric's title, panel, tag and direction is looked up here (those of `KNOWN` for a
    metric a callback adds, such as `lr`).

    Args:
        metrics: `Metric`s, torchmetrics objects or functions (see `as_metric`); two of one
            name are refused.

    >>> fit = MetricList([Loss(), Accuracy(), TopKAccuracy(5)])
    >>> fit.label("val_top5_acc"), fit.panel("val_top5_acc"), fit.mode("val_top5_acc")
    ('Val Top-5 Acc', 'accuracy', 'max')
    """

    def __init__(self, metrics: Iterable = ()):
        super().__init__()
        for m in metrics:
            m = as_metric(m)
            if any(m.name == other.name for other in self):
                raise ValueError(f"two metrics are named {m.name!r}: name one of them "
                                 f"(e.g. FunctionMetric(fn, name='other'))")
            self.append(m)

    def keys(self) -> list[str]:
        """Every metric's name: the measured ones by pass, then the derived ones by pass."""
        measured = [m.key(s) for s in (*SPLITS, None) for m in self
                    if s in m.splits and not hasattr(m, "derive")]
        return measured + [m.key(s) for s in (*SPLITS, None) for m in self
                           if s in m.splits and hasattr(m, "derive")]

    def find(self, key: str) -> tuple[Metric | None, str | None]:
        """The metric of a name and its pass (`val_acc` -> Accuracy, 'val'); one of
        the metrics every fit knows (`KNOWN`: `lr`, `train_ppl`) if none of this list's."""
        split, _, name = key.partition("_")
        for m in self:
            if m.name == key:
                return m, None
            if split in SPLITS and m.name == name:
                return m, split
        return (None, None) if self is KNOWN else KNOWN.find(key)

    def label(self, key: str) -> str:
        m, split = self.find(key)
        return m.label(split) if m else key.replace("_", " ").title()

    def panel(self, key: str) -> str:
        m, _ = self.find(key)
        if m is None:
            split, _, name = key.partition("_")
            return (name if split in SPLITS and name else key).replace("_", " ")
        return m.panel or m.name.replace("_", " ")

    def tag(self, key: str) -> str:
        m, split = self.find(key)
        return m.tag(split) if m else key

    def mode(self, key: str, mode: str = "auto") -> str:
        """'min' or 'max' for metric `key`: `mode`, or for 'auto' the metric's direction."""
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
        if mode != "auto":
            return mode
        m, _ = self.find(key)
        return "max" if (m.higher_is_better if m else "acc" in key) else "min"

    def default_monitor(self, names) -> str:
        """The metric a fit is judged by when none is named: the validation metric of the first
        metric that is better higher, else of the first, else the first training metric."""
        ranked = sorted(self, key=lambda m: not m.higher_is_better)
        keys = [m.key(s) for s in ("val", "train") for m in ranked if s in m.splits]
        return next((k for k in keys if k in names), keys[0] if keys else "train_loss")

    def derive(self, logs: dict[str, float]) -> dict[str, float]:
        """The derived metrics (perplexity) of an epoch's others, pass by pass."""
        out = {}
        for split in (*SPLITS, None):
            values = {k.removeprefix(f"{split}_"): v for k, v in logs.items()
                      if v is not None and (split is None or k.startswith(f"{split}_"))}
            for m in self:
                if hasattr(m, "derive") and split in m.splits \
                        and (value := m.derive(values)) is not None:
                    out[m.key(split)] = value
        return out

    def format(self, logs: dict[str, float]) -> str:
        """`Train Loss: 0.4012, Train Acc: 0.8571, Val Loss: ...`: the metrics of `logs` pass by
        pass, those of this list (and of `KNOWN`) in its order, then any others; timings left
        out."""
        known = [*self, *(m for m in KNOWN if m.name not in {x.name for x in self})]
        order = [m.key(s) for s in (*SPLITS, None) for m in known
                 if s in m.splits or (s == "test" and "val" in m.splits)]
        mine = [k for k in order if k in logs]
        names = mine + [k for k in logs if k not in mine and k not in ("train_s", "val_s")]
        return ", ".join(f"{self.label(k)}: {_number(logs[k])}" for k in names
                         if isinstance(logs[k], (int, float)))


# the metrics every fit knows how to title and draw, whatever it measures
KNOWN = MetricList([Loss(), Accuracy(), Perplexity(), LearningRate()])


def loss_of(split: str = "val") -> str:
    """The name of the loss on the pass `split` ("train", "val" or "test"): `val_loss` is
    what a monitor watches when none is named, as Keras's do.

    >>> loss_of("train")
    'train_loss'
    """
    return Loss().key(split)


def of(trainer) -> MetricList:
    """The metric list of `trainer`'s fit (the metrics every fit knows, for a stand-in).

    >>> of(trainer).format({"val_loss": 0.3})
    'Val Loss: 0.3000'
    """
    return getattr(trainer, "metric_list", KNOWN)


def _number(value: float) -> str:
    """4 decimals in the usual range, 4 significant digits for tiny or huge values (a rate)."""
    return f"{value:.4f}" if value == 0 or 1e-3 <= abs(value) < 1e5 or not math.isfinite(value) \
        else f"{value:.4g}"


class Measure:
    """One pass's sums: `update` after each batch's step, `compute` at the end.

    Per-batch means are added, times their weight, into 0-d float64 tensors on the device (no
    sync per batch, no half-precision overflow); `compute` divides once, summed over the ranks
    under torchrun. torchmetrics objects keep their own state.

    Args:
        metrics: the fit's metrics; those measured on `split` are.
        split: "train", "val" or "test" (the validation metrics, named `test_...`).
        model: the model (its `accuracy`).
        device: where the sums are kept (the model's).

    >>> measure = Measure(trainer.metrics, "val", model, device)
    >>> for batch in batches: measure.update(outputs, batch, model.validation_step(batch))
    >>> measure.compute()   # {'val_loss': ..., 'val_acc': ...}
    """

    def __init__(self, metrics: MetricList, split: str, model, device):
        self.split, self.model = split, model
        self.unreported = None if split == "train" else UNREPORTED
        mine = [m for m in metrics if split in m.splits or (split == "test" and "val" in m.splits)]
        self.means = [m for m in mine if not hasattr(m, "derive") and not hasattr(m, "state")]
        self.states = {m.name: m.state(device) for m in mine if hasattr(m, "state")}
        zero = torch.zeros((), dtype=torch.float64, device=device)
        self.sums = [zero.clone() for _ in self.means]  # 0-d each: added in place, no indexing
        self.weights = [0] * len(self.means)
        self.on = [True] * len(self.means)
        self.count = 0  # samples seen

    @property
    def needs_outputs(self) -> bool:
        """Whether a metric of this pass reads the model's outputs (not the loss alone)."""
        return bool(self.states) or any(m.needs_outputs for m in self.means)

    def update(self, outputs, batch, out) -> None:
        """Add one batch: the model's `outputs`, the batch `(X..., y)`, and what the step
        returned (a loss, `(loss, accuracy)`, or None: nothing to add)."""
        if out is None:
            return
        loss, reported = out if isinstance(out, (tuple, list)) else (out, self.unreported)
        y = batch[-1]
        for i, m in enumerate(self.means):
            if self.on[i]:
                value = m.batch(outputs, y, self.model, loss, reported)
                if value is None:  # a batch it cannot score: left out of this pass
                    self.on[i] = False
                    continue
                w = m.weight(y)
                if isinstance(value, torch.Tensor):
                    self.sums[i].add_(value, alpha=w)  # in float64: no half-precision overflow
                else:
                    self.sums[i] += float(value) * w
                self.weights[i] += w
        if self.states and isinstance(outputs, torch.Tensor):
            for state in self.states.values():
                state.update(outputs.detach(), y)
        self.count += len(y)

    def compute(self) -> dict[str, float]:
        """The pass's metrics by name (`val_loss`, ...): one sync, summed over the ranks."""
        if not self.count:
            return {}
        k = len(self.means)
        weights = torch.tensor([float(w) for w in self.weights], dtype=torch.float64,
                               device=self.sums[0].device) if k else None
        both = distributed.sum_over_ranks(torch.cat([torch.stack(self.sums), weights])).tolist() \
            if k else []
        values = {m.name: s / w for m, s, w, on in zip(self.means, both[:k], both[k:], self.on,
                                                        strict=True) if on and w}
        for name, state in self.states.items():
            values[name] = float(state.compute())
        return {f"{self.split}_{k}": v for k, v in values.items()}
