"""Where tensors live and how runs repeat: the `gpu=` switch and `seed`."""

from __future__ import annotations

import os
import random
import sys
import warnings

import numpy as np
import torch

_warned_no_cuda = False


def get_device(gpu: bool = False) -> torch.device:
    """The CUDA device if `gpu` and present, else the CPU (warning once a process). Under
    torchrun, each rank's own GPU (an error if there are fewer GPUs than ranks)."""
    global _warned_no_cuda
    if not gpu:
        return torch.device("cpu")
    if torch.cuda.is_available():
        from . import distributed

        return distributed.gpu_of_this_rank() if distributed.launched() else torch.device("cuda")
    if not _warned_no_cuda:
        _warned_no_cuda = True
        warnings.warn("gpu=True but PyTorch sees no CUDA device: training on the CPU instead",
                      UserWarning, stacklevel=_first_caller_outside_d2lai())
    return torch.device("cpu")


def _first_caller_outside_d2lai() -> int:
    """The `stacklevel` that points a warning at the reader's line, not at d2lai's insides."""
    here = os.path.dirname(__file__)
    level, frame = 2, sys._getframe(2)  # 2: the caller of the function that warns
    while frame is not None and os.path.dirname(frame.f_code.co_filename) == here:
        level, frame = level + 1, frame.f_back
    return level


SEED_MAX = 2**64 - 1  # torch.manual_seed takes a 64-bit unsigned seed


def check_seed(n) -> int:
    """A seed `seed` accepts: an integer in [0, 2**64 - 1]."""
    if not isinstance(n, int) or isinstance(n, bool) or not 0 <= n <= SEED_MAX:
        raise ValueError(f"seed must be an integer in [0, 2**64 - 1], got {n!r}")
    return n


def seed(n: int) -> None:
    """Seed Python, NumPy and PyTorch (all devices) so that runs repeat exactly on the CPU."""
    check_seed(n)
    random.seed(n)
    np.random.seed(n % 2**32)
    torch.manual_seed(n)


def rng_state() -> dict:
    """The random-number state a checkpoint needs to repeat the run (shuffle order included)."""
    state = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore what `rng_state` saved."""
    torch.set_rng_state(state["torch"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
