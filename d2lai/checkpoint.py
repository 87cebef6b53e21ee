"""Checkpoints: a run's whole state after each epoch, written atomically, checked before use.

A checkpoint holds the model (parameters and buffers), the optimiser's state and rule, the
history, the epoch and step counts and the random-number state, plus a SHA-256 digest of all of
it: a damaged file is refused with its name and what is wrong, before the model is touched.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import pickle
from pathlib import Path

import torch

from .callbacks import Callback
from .device import rng_state, set_rng_state
from .files import check_output_path, write_whole

logger = logging.getLogger("d2lai")

__all__ = ["Checkpoint", "describe_opt", "load_checkpoint", "save_checkpoint"]

FORMAT = "d2lai-checkpoint-1"
KEYS = ("format", "epoch", "steps", "model", "optimizer", "opt", "history", "rng")
_HYPER = (bool, int, float, str, tuple, type(None))


def describe_opt(opt) -> dict:
    """The rule and its hyperparameters, e.g. {'type': 'Descent', 'lr': 0.1}, to compare runs."""
    if dataclasses.is_dataclass(opt) and not isinstance(opt, type):
        return {"type": type(opt).__name__, **{f.name: _plain(getattr(opt, f.name))
                                               for f in dataclasses.fields(opt)}}
    if isinstance(opt, torch.optim.Optimizer):
        skip = {"params", "foreach", "fused", "capturable", "differentiable", "maximize"}
        group = opt.param_groups[0] if opt.param_groups else {}
        return {"type": type(opt).__name__,
                **{k: _plain(v) for k, v in group.items() if k not in skip
                   and isinstance(v, _HYPER)}}
    attrs = {k: v for k, v in vars(opt).items() if not k.startswith("_")
             and isinstance(v, (bool, int, float))}
    return {"type": type(opt).__name__, **attrs}


def opt_text(desc: dict) -> str:
    """`Descent(lr=0.1)` from a description."""
    def show(v):
        if isinstance(v, dict) and "type" in v:
            return opt_text(v)
        return f"[{', '.join(map(show, v))}]" if isinstance(v, list) else repr(v)

    return f"{desc['type']}({', '.join(f'{k}={show(v)}' for k, v in desc.items() if k != 'type')})"


def _plain(value):
    """Numbers, strings and lists as they are; a nested rule (a chain's) described with its type."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return describe_opt(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _digest(value, h=None) -> str:
    """SHA-256 of a nested structure of tensors, numbers, strings, lists and dicts."""
    h = h or hashlib.sha256()
    if isinstance(value, torch.Tensor):
        t = value.detach().cpu()
        h.update(f"T{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).contiguous().view(torch.uint8).numpy().tobytes())
    elif isinstance(value, dict):
        h.update(b"D")
        for k in sorted(value, key=str):
            h.update(repr(k).encode())
            _digest(value[k], h)
    elif isinstance(value, (list, tuple)):
        h.update(f"L{len(value)}".encode())
        for v in value:
            _digest(v, h)
    else:
        h.update(repr(value).encode())
    return h.hexdigest()


def save_checkpoint(path: str | os.PathLike, state: dict) -> Path:
    """Write `state` (with its digest), whole or not at all."""
    state = {"format": FORMAT, **state}
    state["digest"] = _digest(state)
    return write_whole(path, lambda tmp: torch.save(state, tmp))


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Read and check a checkpoint whole; a ValueError names the file and what is wrong."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"checkpoint {path} is a folder, not a checkpoint file")
    start_over = "Delete it (or choose another checkpoint path) to start over."
    if path.stat().st_size == 0:
        raise ValueError(f"checkpoint {path} is empty (0 bytes): a write was cut short. "
                         f"{start_over}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError,
            AttributeError, IndexError, KeyError, TypeError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        if "weights_only" in reason or "Unsupported global" in reason:
            reason = "it holds objects a checkpoint never holds"
        raise ValueError(f"checkpoint {path} is corrupt or not a d2lai checkpoint "
                         f"({reason[:200]}). {start_over}") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValueError(f"checkpoint {path} is not a d2lai checkpoint (no '{FORMAT}' "
                         f"format mark). {start_over}")
    missing = [k for k in (*KEYS, "digest") if k not in state]
    if missing:
        raise ValueError(f"checkpoint {path} is incomplete: it has no {', '.join(missing)}. "
                         f"{start_over}")
    digest = state.pop("digest")
    if _digest(state) != digest:
        raise ValueError(f"checkpoint {path} is corrupt: its contents do not match the "
                         f"checksum stored with them (the file was damaged). {start_over}")
    return state


def check_model_state(model: torch.nn.Module, saved: dict, path: Path) -> None:
    """Refuse a checkpoint of another model (keys or shapes differ) before loading any of it."""
    own = model.state_dict()
    missing, unexpected = own.keys() - saved.keys(), saved.keys() - own.keys()
    shapes = [f"{k} {tuple(saved[k].shape)} vs {tuple(v.shape)}" for k, v in own.items()
              if k in saved and tuple(saved[k].shape) != tuple(v.shape)]
    if missing or unexpected or shapes:
        parts = [f"missing {sorted(missing)[:5]}" if missing else "",
                 f"unexpected {sorted(unexpected)[:5]}" if unexpected else "",
                 f"shapes differ: {shapes[:5]}" if shapes else ""]
        raise ValueError(f"checkpoint {path} was written for another model than "
                         f"{type(model).__name__}: {'; '.join(p for p in parts if p)}")


def _rule(trainer):
    """What the reader chose: the rule given to the trainer, else the model's own optimiser."""
    return trainer.opt if trainer.opt is not None else trainer.optimizer


class Checkpoint(Callback):
    """Save the run after every epoch; with `resume`, continue from the file at fit start.

    A new run refuses to overwrite another run's checkpoint. Resuming with another optimiser
    rule (type or hyperparameters) than the one saved is an error unless `override_opt`: then
    the new rule's hyperparameters apply from here on (its state is kept when the type is the
    same, and starts afresh when it is not).
    """

    def __init__(self, path: str | os.PathLike, resume: bool = False, override_opt: bool = False):
        self.path, self.resume, self.override_opt = Path(path), resume, override_opt
        self.owner = None  # the trainer whose run the file holds

    def on_fit_start(self, trainer) -> None:
        check_output_path(self.path, "checkpoint")
        if self.owner is trainer or not self.path.exists():
            if self.resume and self.owner is None:
                logger.info("no checkpoint at %s yet: starting from epoch 1", self.path)
            self.owner = trainer
            return
        if not self.resume:
            raise FileExistsError(
                f"checkpoint {self.path} already exists, from another run. Pass resume=True "
                f"to continue that run, or delete the file (or choose another path) to start "
                f"over.")
        self.restore(trainer, load_checkpoint(self.path))
        self.owner = trainer

    def restore(self, trainer, state: dict) -> None:
        """Put a checked checkpoint's state into the trainer, its model and optimiser."""
        check_model_state(trainer.model, state["model"], self.path)
        saved, ours = state["opt"], describe_opt(_rule(trainer))
        same_type = saved["type"] == ours["type"]
        if saved != ours and not self.override_opt:
            raise ValueError(
                f"checkpoint {self.path} was trained with {opt_text(saved)}, but this trainer "
                f"has {opt_text(ours)}. Pass the checkpoint's rule to continue the run as it "
                f"was, or override_opt=True to go on with the new one.")
        trainer.model.load_state_dict(state["model"])
        if same_type:
            hyper = [{k: v for k, v in g.items() if k != "params"}
                     for g in getattr(trainer.optimizer, "param_groups", [])]
            try:
                trainer.optimizer.load_state_dict(state["optimizer"])
            except (ValueError, KeyError, RuntimeError) as err:
                raise ValueError(f"checkpoint {self.path}: its optimiser state does not fit "
                                 f"this optimiser ({err})") from None
            for group, h in zip(getattr(trainer.optimizer, "param_groups", []), hyper,
                                strict=True):
                group.update(h)  # the rule given now (equal to the saved one unless overridden)
        set_rng_state(state["rng"])
        trainer.history = {k: list(v) for k, v in state["history"].items()}
        trainer.epoch, trainer.steps = state["epoch"], state["steps"]
        if saved != ours:
            logger.warning("resuming %s with %s instead of %s%s", self.path, opt_text(ours),
                           opt_text(saved), "" if same_type else " (its state starts afresh)")
        logger.info("resuming from %s after epoch %d", self.path, state["epoch"])

    def on_epoch_end(self, trainer, epoch: int, logs: dict[str, float]) -> None:
        optimizer = trainer.optimizer
        save_checkpoint(self.path, {
            "epoch": epoch, "steps": trainer.steps, "model": trainer.model.state_dict(),
            "optimizer": optimizer.state_dict() if hasattr(optimizer, "state_dict") else {},
            "opt": describe_opt(_rule(trainer)), "history": trainer.history, "rng": rng_state()})
