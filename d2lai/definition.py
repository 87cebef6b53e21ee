"""What defines a run: everything that changes its numbers, kept with its results and in its
checkpoints, so that a run is never taken for another one that has the same name or file.

A definition is plain JSON: the model's class, the optimiser rule, the trainer's limits,
clipping, precision and compilation, the seed, and the data (its class, its arguments, the size
of each split and a digest of its labels). `differences` says, setting by setting, how two
definitions differ.
"""

from __future__ import annotations

import hashlib
import json
from types import SimpleNamespace

import torch

from .files import json_safe
from .optim import describe_opt

__all__ = ["run_definition", "data_definition", "differences"]


def run_definition(trainer, settings: dict | None = None) -> dict:
    """The definition of the run `trainer` makes (with a sweep's `settings`, as its table shows
    them): JSON values only, so that it reads back from a file equal to itself."""
    rule = trainer.opt if trainer.opt is not None else (trainer.optimizer
                                                        or trainer.setup_optimizer())
    definition = {
        **({"settings": settings} if settings is not None else {}),
        "model": type(trainer.model).__name__,
        "opt": describe_opt(rule),
        "trainer": {"max_epochs": trainer.max_epochs, "max_steps": trainer.max_steps,
                    "gradient_clip_val": trainer.grad_clip_val, **trainer.amp.definition()},
        "seed": trainer.seed,
        "data": data_definition(trainer.data),
    }
    return json.loads(json.dumps(json_safe(definition), default=_shown))


def data_definition(data) -> dict:
    """The data module's class, its arguments (`args`, or the PyTorch edition's `hparams`) but
    where it is read from, and for in-memory splits their sizes and a digest of their labels."""
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
    return definition


# What a definition written before a setting existed means by its absence.
ABSENT = {"precision": "32", "compile": False}


def differences(before: dict, now: dict, ignore: tuple[str, ...] = (), prefix: str = "",
                when: str = "") -> list[str]:
    """'name was A, is B now' for each setting that differs (nested names dotted, the trainer's
    and the settings' without their group); `when` follows 'was A' ('in the checkpoint')."""
    found = []
    for key in dict.fromkeys([*before, *now]):
        name = key if prefix in ("", "trainer.", "settings.") else f"{prefix}{key}"
        if f"{prefix}{key}" in ignore:
            continue
        a, b = before.get(key, ABSENT.get(key)), now.get(key, ABSENT.get(key))
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
