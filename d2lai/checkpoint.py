"""Checkpoint files: a run's whole state after each epoch, written atomically, checked before use.

A checkpoint holds the model (parameters and buffers), the optimiser's state and rule, the
history, the epoch and step counts and the random-number state, plus a SHA-256 digest of all of
it: a damaged file is refused with its name and what is wrong, before the model is touched.
Since they were added, it also holds what defines the run (`definition`) and the state of the
callbacks that keep one (`callbacks`); a file without them still loads.
"""

from __future__ import annotations

import hashlib
import os
import pickle
from pathlib import Path

import torch

from .files import write_whole

__all__ = ["check_model_state", "digest", "load_checkpoint", "save_checkpoint"]

FORMAT = "d2lai-checkpoint-1"
KEYS = ("format", "epoch", "steps", "model", "optimizer", "opt", "history", "rng")


def digest(value, h=None) -> str:
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
            digest(value[k], h)
    elif isinstance(value, (list, tuple)):
        h.update(f"L{len(value)}".encode())
        for v in value:
            digest(v, h)
    else:
        h.update(repr(value).encode())
    return h.hexdigest()


def save_checkpoint(path: str | os.PathLike, state: dict) -> Path:
    """Write `state` (with its digest), whole or not at all."""
    state = {"format": FORMAT, **state}
    state["digest"] = digest(state)
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
    stored = state.pop("digest")
    if digest(state) != stored:
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
