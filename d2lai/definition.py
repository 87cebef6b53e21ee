"""What defines a run: everything that changes its numbers, kept with its results and in its
checkpoints, so that a run is never taken for another one that has the same name or file.

A definition is plain JSON: the model (its class, its parameter count and a digest of its
structure: the module tree as printed, each parameter's and buffer's name, shape and dtype),
the optimiser rule, the trainer's limits and clipping, the seed, the callbacks given (each one's
class and settings), and the data (its class, its arguments, the size of each split and digests
of its inputs and labels). `differences` says, setting by setting, how two definitions differ.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from types import SimpleNamespace

import torch
from torch.nn.parameter import is_lazy

from .checkpoint import digest
from .files import json_safe
from .optim import describe_opt

__all__ = ["run_definition", "model_definition", "callbacks_definition", "data_definition",
           "differences"]


def run_definition(trainer, settings: dict | None = None) -> dict:
    """The definition of the run `trainer` makes (with a sweep's `settings`, as its table shows
    them): JSON values only, so that it reads back from a file equal to itself."""
    rule = trainer.opt if trainer.opt is not None else (trainer.optimizer
                                                        or trainer.setup_optimizer())
    definition = {
        **({"settings": settings} if settings is not None else {}),
        "model": model_definition(trainer.model),
        "opt": describe_opt(rule),
        "trainer": {"max_epochs": trainer.max_epochs, "max_steps": trainer.max_steps,
                    "gradient_clip_val": trainer.grad_clip_val},
        "seed": trainer.seed,
        "callbacks": callbacks_definition(trainer.given_callbacks),
        "data": data_definition(trainer.data),
    }
    return json.loads(json.dumps(json_safe(definition), default=_shown))


def callbacks_definition(callbacks) -> dict:
    """Each callback's settings (`Callback.run_settings`), keyed by its class (and number, for
    two of one class), so that a change reads `callbacks.EarlyStopping.patience was 0, is 5`."""
    from .callbacks.base import by_class

    return {key: {k: _value(v) for k, v in c.run_settings().items()}
            for key, c in by_class(c for c in callbacks if c.run_settings() is not None)}


def model_definition(model: torch.nn.Module) -> dict:
    """The model's class, its number of parameters and a digest of its structure (the module
    tree as printed, each parameter's and buffer's name, shape and dtype): a width or a dropout
    rate changed inside the same class makes another model."""
    printed = re.sub(r" at 0x[0-9a-fA-F]+", "", repr(model))  # no addresses of this process
    h = hashlib.sha256(printed.encode())
    for name, t in itertools.chain(model.named_parameters(), model.named_buffers()):
        h.update(f"{name} {'lazy' if is_lazy(t) else tuple(t.shape)} {t.dtype};".encode())
    count = sum(p.numel() for p in model.parameters() if not is_lazy(p))
    return {"type": type(model).__name__, "parameters": count, "structure": h.hexdigest()[:16]}


def data_definition(data) -> dict:
    """The data module's class, its arguments (`args`, or the PyTorch edition's `hparams`) but
    where it is read from, and for in-memory splits their sizes and digests of their inputs and
    of their labels (features scaled, labels the same: another definition)."""
    args = getattr(data, "args", None)
    if args is None:
        args = getattr(data, "hparams", None)
    args = vars(args) if isinstance(args, SimpleNamespace) else \
        dict(args) if isinstance(args, dict) else {}
    definition = {"type": type(data).__name__,
                  **{k: _value(v) for k, v in args.items() if k != "root"}}
    if not ({"batchsize", "batch_size"} & set(definition)) and hasattr(data, "batchsize"):
        definition["batchsize"] = _value(data.batchsize)
    for split in ("train", "val"):
        tensors = getattr(data, split, None)
        if isinstance(tensors, (tuple, list)) and tensors \
                and all(isinstance(t, torch.Tensor) and t.ndim for t in tensors):
            definition[f"{split}_size"] = len(tensors[-1])
            definition[f"{split}_labels"] = _digest(tensors[-1])
            if len(tensors) > 1:
                definition[f"{split}_inputs"] = digest(list(tensors[:-1]))[:16]
    return definition


def differences(before: dict, now: dict, ignore: tuple[str, ...] = (), prefix: str = "",
                when: str = "") -> list[str]:
    """'name was A, is B now' for each setting that differs (nested names dotted, the trainer's
    and the settings' without their group); `when` follows 'was A' ('in the checkpoint')."""
    found = []
    for key in dict.fromkeys([*before, *now]):
        name = key if prefix in ("", "trainer.", "settings.") else f"{prefix}{key}"
        if f"{prefix}{key}" in ignore:
            continue
        a, b = before.get(key), now.get(key)
        if isinstance(a, dict) and isinstance(b, dict) and key != "opt":
            found += differences(a, b, ignore, f"{prefix}{key}.", when)
        elif a != b:
            found.append(f"{name} was {_text(a)}{f' {when}' if when else ''}, is {_text(b)} now")
    return found


def _value(value):
    """A setting as JSON holds it: numbers, strings, lists; small tensors as lists; anything
    else by its name."""
    if isinstance(value, torch.Tensor):
        return value.tolist() if value.numel() <= 16 else f"tensor of shape {tuple(value.shape)}"
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (tuple, list)):
        return [_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _value(v) for k, v in value.items()}
    return _shown(value)


def _shown(value) -> str:
    return getattr(value, "__name__", None) or str(value)


def _digest(labels: torch.Tensor) -> str:
    """A short SHA-256 of a label tensor's values (other data, same sizes: another digest)."""
    values = labels.detach().to("cpu", torch.int64 if not labels.is_floating_point()
                                else torch.float64).contiguous()
    return hashlib.sha256(values.numpy().tobytes()).hexdigest()[:16]


def _text(value) -> str:
    if isinstance(value, dict) and "type" in value:
        from .optim import opt_text

        return opt_text(value)
    return repr(value) if isinstance(value, str) else str(value)
