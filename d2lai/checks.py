"""Argument checks in one place: each says which argument is wrong, what it must be, what came.

Checks run once, where a value enters (a constructor, a data module, fit start), so that the
code of the book below them reads as the book does. Integers accept any integral type
(`numpy.int64` too), never `bool`; flags accept only `True` and `False`. A refused value raises
`ArgumentError`, which is both a ValueError and a TypeError (a wrong type and a wrong value are
both a bad argument), so either `except` catches it.
"""

from __future__ import annotations

import math
import numbers
from functools import partial

__all__ = ["ArgumentError", "is_int", "is_real", "positive", "positive_int", "count", "flag",
           "number", "one_of", "Check", "scale", "seed", "TRAINER", "stops", "resumable",
           "trainable", "own_epoch", "data_module", "callbacks", "metrics", "optimizer_of",
           "unreached", "evaluation_data"]


class ArgumentError(ValueError, TypeError):
    """An argument that cannot be used: its name, what it must be, and what came."""


def is_int(value) -> bool:
    """Whether `value` is an integer (`numpy.int64` too), never a `bool`."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_real(value) -> bool:
    """Whether `value` is a real number (an int, a float, `numpy.float32`, ...), never a `bool`."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def positive(name: str, value, integer: bool = False, zero: bool = False,
             allow_none: bool = False):
    """`value` if it is a finite number > 0 (>= 0 with `zero`; an int with `integer`), or None
    when `allow_none`."""
    if value is None and allow_none:
        return None
    ok = is_int(value) if integer else is_real(value) and math.isfinite(value)
    if not ok or not (value >= 0 if zero else value > 0):
        raise ArgumentError(f"{name} must be a {'non-negative' if zero else 'positive'} "
                            f"{'integer' if integer else 'number'}, got {value!r}")
    return int(value) if integer else value


def positive_int(name: str, value, allow_none: bool = False) -> int | None:
    """`value` as an int if it is an integer > 0 (or None when `allow_none`)."""
    return positive(name, value, integer=True, allow_none=allow_none)


def count(name: str, value, low: int = 0) -> int:
    """`value` as an int if it is an integer >= `low` (a ValueError otherwise)."""
    if not is_int(value) or value < low:
        raise ArgumentError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def flag(name: str, value, none_means: str | None = None) -> bool | None:
    """`value` if it is True or False: a string such as "False" would read as true. With
    `none_means` (what None does), None too."""
    if value is None and none_means is not None:
        return None
    if not isinstance(value, bool):
        also = f", False or None (None: {none_means})" if none_means is not None else " or False"
        raise ArgumentError(f"{name} must be True{also}, got {value!r}")
    return value


def number(name: str, value, low: float = -math.inf, high: float = math.inf, *,
           open_low: bool = False, open_high: bool = False, allow_none: bool = False,
           digits: str = "g"):
    """`value` as a float if it is a real number in the interval (NaN never is); the bounds
    said in the error with the format `digits`."""
    if value is None and allow_none:
        return None
    ok = (is_real(value)
          and (low < value if open_low else low <= value)
          and (value < high if open_high else value <= high))  # NaN fails every comparison
    if not ok:
        span = (f"{'(' if open_low else '['}{low:{digits}}, {high:{digits}}"
                f"{')' if open_high else ']'}"
                if (low, high) != (-math.inf, math.inf) else "")
        what = f"a number in {span}" if span else "a finite number"
        raise ArgumentError(f"{name} must be {what}, got {value!r}")
    if (low, high) == (-math.inf, math.inf) and not math.isfinite(value):
        raise ArgumentError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def one_of(name: str, value, choices) -> object:
    """`value` if it is one of `choices`."""
    if isinstance(value, bool) or value not in choices:
        raise ArgumentError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value


class Check:
    """A table of argument checks run in one call: `Check(name=check, ...)(args, owner)`.

    Each check is a function of (name, value) that returns the value as it is kept or raises;
    `functools.partial` sets its options (`partial(number, low=0)`). The error names `owner`.
    """

    def __init__(self, **table):
        self.table = table

    def __call__(self, args: dict, owner: str = "") -> dict:
        checked = {}
        for name, check in self.table.items():
            try:
                checked[name] = check(name, args[name])
            except ArgumentError as err:
                raise ArgumentError(f"{owner}: {err}" if owner else str(err)) from None
        return checked


# --- what a Trainer takes ----------------------------------------------------------------------

def scale(name: str, value) -> str:
    """`value` as matplotlib's name of one of the book's axis scales (`"identity"`, `"log10"`,
    ...: `d2lai.board.SCALES`)."""
    from .board import check_scale

    return check_scale(name, value)


def seed(name: str, value) -> int | None:
    """`value` as an int if it is a seed `d2lai.device.seed` takes, or None (no seeding)."""
    from .device import check_seed

    return None if value is None else check_seed(value)


TRAINER = Check(
    max_epochs=partial(positive_int, allow_none=True), max_steps=partial(positive_int,
                                                                         allow_none=True),
    print_every=positive_int, gpu=flag, verbose=flag, board=flag, resume=flag,
    override_opt=flag, gradient_clip_val=partial(number, low=0, high=math.inf, open_high=True),
    on_diverge=partial(one_of, choices=("stop", "raise")),
    clip=partial(one_of, choices=("rescale", "max_norm")), board_yscale=scale, seed=seed)


def stops(max_epochs, max_steps) -> None:
    """Refuse a run with no end: `max_epochs=None` needs `max_steps`."""
    if max_epochs is None and max_steps is None:
        raise ArgumentError("max_epochs must be a positive integer, got None (None only with "
                            "max_steps)")


def resumable(resume: bool, checkpoint) -> None:
    """Refuse `resume=True` without a checkpoint to resume from."""
    if resume and checkpoint is None:
        raise ArgumentError("resume=True needs checkpoint='path.pt' to resume from")


def trainable(model, data, opt, custom_loop: bool) -> None:
    """Refuse a model, data module or optimiser `Trainer(...)` cannot train, saying why."""
    import torch
    from torch import nn

    from .optim import ACCEPTED, RULES

    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module (a d2lai.AbstractClassifier, say), "
                        f"got {type(model).__name__}")
    if not hasattr(model, "training_step") or not hasattr(model, "validation_step"):
        raise TypeError(f"model {type(model).__name__} has no training_step/validation_step: "
                        f"make it a subclass of d2lai.AbstractModel or AbstractClassifier")
    if "train" in vars(model) or not callable(getattr(model, "train", None)):
        raise TypeError(f"model {type(model).__name__} has a field named 'train', which hides "
                        f"nn.Module.train() (the switch to training mode): rename the field")
    if callable(getattr(model, "epoch_figures", None)):
        raise TypeError(f"model {type(model).__name__} defines epoch_figures, which the trainer "
                        f"no longer calls: rename it epoch_metrics (same arguments, same return)")
    if not custom_loop:
        own_epoch(model)
    data_module(data)
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


OWN_EPOCH = """\
{where}: the Julia text's own fit_epoch(model, opt; train_dataloader, val_dataloader,
gradient_clip_val). d2lai.Trainer would ignore a function assigned so, so it is refused.
Write it as a method of the model's class, fit_epoch(self, opt, train_dataloader=None,
val_dataloader=None, gradient_clip_val=0.0), returning the text's losses (the trainer runs
it each epoch, as Julia dispatches on the model), or as a method of a Trainer subclass,
where the text's arguments are self.model, self.optimizer (the rule bound to the model) or
self.opt (the opt given), self.data.train_dataloader(), self.data.val_dataloader() and
self.gradient_clip_val:

    class MyTrainer(d2lai.Trainer):
        def fit_epoch(self):
            losses = []
            for batch in self.data.train_dataloader():
                ...                               # the text's update
                losses.append(loss.item())
            return {{"train_loss": sum(losses) / len(losses)}}   # then fit validates

    model, metrics = d2lai.fit(MyTrainer(model, data, opt, max_epochs=5))

(Return None instead if your fit_epoch validates and records its metrics itself.)"""


def own_epoch(model) -> None:
    """Refuse an epoch assigned to `d2lai.fit_epoch`, which the trainer would silently ignore
    (a `fit_epoch` method of the model's class is the Julia text's, and runs)."""
    import sys

    if "fit_epoch" in vars(sys.modules[__package__]):
        where = "d2lai.fit_epoch was assigned"
    else:
        return
    raise TypeError(OWN_EPOCH.format(where=where))


def data_module(data) -> None:
    """Refuse what is not a data module: train_dataloader() and val_dataloader(), or
    get_dataloader(train)."""
    if not ((callable(getattr(data, "train_dataloader", None))
             and callable(getattr(data, "val_dataloader", None)))
            or callable(getattr(data, "get_dataloader", None))):
        raise TypeError(f"data must be a data module with train_dataloader() and "
                        f"val_dataloader(), or get_dataloader(train) (a d2lai.AbstractData such "
                        f"as FashionMNISTData), got {type(data).__name__}")


def callbacks(value) -> list:
    """A list of `d2lai.Callback`s: one callback alone is taken as a list of one."""
    from .callbacks import Callback

    value = [value] if isinstance(value, Callback) else value
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise TypeError(f"callbacks must be a list of d2lai.Callback objects, got "
                        f"{type(value).__name__}")
    value = list(value)
    bad = [c for c in value if not isinstance(c, Callback)]
    if bad:
        raise TypeError(f"callbacks must be d2lai.Callback objects, got "
                        f"{', '.join(type(c).__name__ for c in bad)}")
    return value


def metrics(value) -> list:
    """A list of metrics (`d2lai.metrics.Metric`s, torchmetrics objects or functions); one
    alone is taken as a list of one. Each is checked by `d2lai.metrics.as_metric`."""
    from .metrics import as_metric

    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__") \
            or type(value).__module__.startswith("torchmetrics"):
        value = [value]
    return [as_metric(m) for m in value]


def optimizer_of(optimizer, model) -> None:
    """Refuse a torch optimiser that holds none of the model's parameters, and a model whose
    weights the optimiser would not reach (kept where torch does not look for them)."""
    import torch

    unreached(model, optimizer)

    if isinstance(optimizer, torch.optim.Optimizer):
        ours = {id(p) for p in model.parameters()}
        theirs = [p for g in optimizer.param_groups for p in g["params"]]
        if theirs and not any(id(p) in ours for p in theirs):
            raise ValueError(f"the optimiser holds none of {type(model).__name__}'s "
                             f"parameters (was it built over another model?): build it over "
                             f"model.parameters(), or pass a rule such as Descent(0.1)")


UNREACHED = """\
{model}.{path} is {what} that the optimiser would not train: torch sees the weights of \
nn.Parameters, of registered modules, and of lists of them (nn.ModuleList), not {where}. \
{fix}"""


def unreached(model, optimizer) -> None:
    """Refuse, before training, weights of `model` the optimiser cannot reach: modules kept in
    plain lists, dicts or namespaces, tensors that require grad kept as plain fields, and (on
    a model whose plain fields are weights, as the Julia text's structs) floating tensors kept
    so. Nothing is checked when the optimiser's tensors cannot be listed."""
    import torch

    if isinstance(optimizer, torch.optim.Optimizer):
        reached = {id(p) for g in optimizer.param_groups for p in g["params"]}
    else:
        params = getattr(optimizer, "params", None)
        if not isinstance(params, (list, tuple)) or not all(isinstance(p, torch.Tensor)
                                                            for p in params):
            return
        reached = {id(p) for p in params}
    reached |= {id(p) for p in model.parameters() if not p.requires_grad}
    name = type(model).__name__
    for owner, module in model.named_modules():
        strict = getattr(module, "fields_are_weights", False) \
            and not type(module).__module__.startswith("d2lai.")  # the reader's own classes
        for key, value in vars(module).items():
            if key.startswith("_") or key == "training":
                continue
            path = f"{owner}.{key}" if owner else key
            _unreached_in(name, path, value, reached, strict, plain=False)


def _unreached_in(model: str, path: str, value, reached: set, strict: bool, plain: bool) -> None:
    import torch
    from torch import nn

    if isinstance(value, nn.Module):
        if plain and any(id(p) not in reached for p in value.parameters()):
            raise ValueError(UNREACHED.format(
                model=model, path=path, what=f"a {type(value).__name__}", where="modules kept in "
                "plain lists, dicts or namespaces", fix="Keep cells in an nn.ModuleList (a list "
                "assigned to a field of a d2lai.AbstractModel becomes one), or in a field named "
                "in the class's trainable = (...)."))
        return
    if isinstance(value, torch.Tensor):
        if id(value) in reached or not value.is_floating_point():
            return
        if value.requires_grad or (strict and value.grad_fn is None):
            raise ValueError(UNREACHED.format(
                model=model, path=path, what=f"a tensor of shape {tuple(value.shape)}",
                where="plain tensors", fix="Name the field in the class's trainable = (...), "
                "as the text's Flux.@layer ... trainable = (...), or wrap it in nn.Parameter "
                "(a constant: register_buffer)."))
        return
    items = vars(value).items() if type(value).__name__ == "SimpleNamespace" else \
        value.items() if isinstance(value, dict) else \
        enumerate(value) if isinstance(value, (list, tuple)) else ()
    for key, item in items:
        sub = f"{path}[{key}]" if isinstance(key, int) else f"{path}.{key}"
        _unreached_in(model, sub, item, reached, strict, plain=True)


def evaluation_data(data) -> None:
    """Refuse what `trainer.evaluate` cannot read: it takes None, a data module, a data loader
    or an iterable of `(X..., y)` batches (a split's tuple of tensors is no batches)."""
    import torch

    if data is None or callable(getattr(data, "val_dataloader", None)) \
            or callable(getattr(data, "get_dataloader", None)):
        return
    if isinstance(data, (tuple, list)) and data and all(isinstance(t, torch.Tensor) for t in data):
        kind = "tuple" if isinstance(data, tuple) else type(data).__name__
        raise ArgumentError(f"evaluate got a {kind} of {len(data)} tensors (a "
                            f"split such as data.val), not batches of it: pass the data module, "
                            f"or d2lai.TensorLoader(data.val, batchsize)")
    if not hasattr(data, "__iter__") or isinstance(data, (str, bytes, torch.Tensor)):
        raise ArgumentError(f"evaluate takes a data module, a data loader or an iterable of "
                            f"(X..., y) batches, got {type(data).__name__}")
    if hasattr(data, "__len__") and len(data) == 0:
        raise ArgumentError(f"evaluate got no batches (an empty {type(data).__name__}): pass "
                            f"a loader of at least one batch")
