"""Where tensors live and how runs repeat: the `gpu=` switch and `seed`."""

from __future__ import annotations

import logging
import random

import numpy as np
import torch

from .checks import is_int

__all__ = ["get_device", "seed", "check_seed", "rng_state", "set_rng_state"]

logger = logging.getLogger("d2lai")

_warned_no_cuda = False


def get_device(gpu: bool = False) -> torch.device:
    """The device to train on: CUDA if `gpu` is true and PyTorch sees a CUDA device, else the CPU.

    Asking for a GPU on a machine without one is no error (the book's code says `gpu=true`
    everywhere): the CPU is used, and the `d2lai` logger says so once a process, as one info
    line (`[ Info: no CUDA device: training on the CPU`).

    Args:
        gpu: whether to use the GPU when there is one.

    Under torchrun, each rank's own GPU (an error if there are fewer GPUs than ranks).

    Returns:
        `torch.device("cuda")` (a rank's `cuda:i`) or `torch.device("cpu")`.

    >>> d2lai.get_device(False)
    device(type='cpu')
    """
    global _warned_no_cuda
    if not gpu:
        return torch.device("cpu")
    if torch.cuda.is_available():
        from . import distributed

        return distributed.gpu_of_this_rank() if distributed.launched() else torch.device("cuda")
    if not _warned_no_cuda:
        _warned_no_cuda = True
        logger.info("no CUDA device: training on the CPU (gpu=True asks for a GPU when there "
                    "is one)")
    return torch.device("cpu")


SEED_MAX = 2**64 - 1  # torch.manual_seed takes a 64-bit unsigned seed


def check_seed(n) -> int:
    """`n` as an int if it is a seed `seed` accepts (an integer in [0, 2**64 - 1], `numpy.int64`
    too, as every integer argument takes); a ValueError if not.

    >>> check_seed(0)
    0
    """
    if not is_int(n) or not 0 <= n <= SEED_MAX:
        raise ValueError(f"seed must be an integer in [0, 2**64 - 1], got {n!r}")
    return int(n)


def seed(n: int) -> None:
    """Seed Python, NumPy and PyTorch (all devices) so that runs repeat exactly on the CPU.

    Args:
        n: an integer in [0, 2**64 - 1].

    >>> d2lai.seed(0)   # before building the model: the same weights, the same shuffles
    """
    n = check_seed(n)
    random.seed(n)
    np.random.seed(n % 2**32)
    torch.manual_seed(n)


def rng_state() -> dict:
    """The random-number state a checkpoint needs to repeat the run (shuffle order included).

    >>> state = rng_state()   # ... later: set_rng_state(state) repeats the same draws
    """
    state = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore the random-number `state` that `rng_state` returned.

    >>> set_rng_state(rng_state())
    """
    torch.set_rng_state(state["torch"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
