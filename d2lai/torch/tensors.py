"""The edition's preliminaries: its names for tensor operations (`d2l.reshape(x, shape)`,
`d2l.concat`, ...), as aliases of torch's, and the devices (`cpu`, `gpu`, `try_gpu`,
`try_all_gpus`), whose list says how many GPUs a cell needs when it asks for a missing one.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from ..checks import positive

__all__ = ["nn_Module", "cpu", "gpu", "num_gpus", "try_gpu", "try_all_gpus", "Devices"]

nn_Module = nn.Module


# --- devices -----------------------------------------------------------------------------------

def cpu() -> torch.device:
    """The CPU device."""
    return torch.device("cpu")


def gpu(i: int = 0) -> torch.device:
    """The GPU device number `i` (whether or not it exists)."""
    positive("i", i, integer=True, zero=True)
    return torch.device(f"cuda:{i}")


def num_gpus() -> int:
    """How many GPUs PyTorch sees."""
    return torch.cuda.device_count()


def try_gpu(i: int = 0) -> torch.device:
    """`gpu(i)` if it exists, else `cpu()`; falling back for i >= 1 warns that code asking for
    GPU i needs i + 1 GPUs (the multi-GPU chapters' cells), saying how many there are."""
    positive("i", i, integer=True, zero=True)
    if num_gpus() >= i + 1:
        return gpu(i)
    if i >= 1:
        warnings.warn(f"try_gpu({i}): code that asks for GPU {i} needs {i + 1} GPUs and PyTorch "
                      f"sees {num_gpus()}: using the CPU instead", UserWarning, stacklevel=2)
    return cpu()


def try_all_gpus() -> list[torch.device]:
    """Every GPU, or `[cpu()]` when there is none (as the edition documents it); asking the
    list for a device past its end says how many GPUs that needs (`Devices`)."""
    return Devices([gpu(i) for i in range(num_gpus())] or [cpu()])


def gpus_seen() -> str:
    """'PyTorch sees N GPUs', for messages about missing devices."""
    n = torch.cuda.device_count()
    return f"PyTorch sees {n} GPU{'' if n == 1 else 's'}"


class Devices(list):
    """The devices `try_all_gpus()` gives: a plain list, except that asking for a device past
    its end says how many GPUs that needs and how many there are."""

    def __getitem__(self, i):
        try:
            return super().__getitem__(i)
        except IndexError:
            need = (i + 1 if i >= 0 else -i) if isinstance(i, int) else len(self) + 1
            raise IndexError(f"devices[{i}] does not exist: this code needs {need} GPUs and "
                             f"{gpus_seen()} (try_all_gpus() gave {list(self)}). Run it on "
                             f"a machine with {need} GPUs.") from None


# --- the edition's names for tensor operations (`d2l.reshape(x, shape)`, ...) --------------------

ones, zeros, ones_like, zeros_like = torch.ones, torch.zeros, torch.ones_like, torch.zeros_like
tensor, arange, linspace, meshgrid, eye = (torch.tensor, torch.arange, torch.linspace,
                                           torch.meshgrid, torch.eye)
sin, sinh, cos, cosh, tanh, exp, log, sigmoid = (torch.sin, torch.sinh, torch.cos, torch.cosh,
                                                 torch.tanh, torch.exp, torch.log, torch.sigmoid)
abs = torch.abs  # the edition's name (it shadows the builtin here)
normal, rand, randn, matmul, batch_matmul = (torch.normal, torch.rand, torch.randn, torch.matmul,
                                             torch.bmm)
concat, stack = torch.cat, torch.stack
int32, int64, float32 = torch.int32, torch.int64, torch.float32


def numpy(x, *args, **kwargs):
    """The tensor as a NumPy array (from any device)."""
    return x.detach().cpu().numpy(*args, **kwargs)


def size(x, *args, **kwargs):
    return x.numel(*args, **kwargs)


def reshape(x, *args, **kwargs):
    return x.reshape(*args, **kwargs)


def to(x, *args, **kwargs):
    return x.to(*args, **kwargs)


def reduce_sum(x, *args, **kwargs):
    return x.sum(*args, **kwargs)


def reduce_mean(x, *args, **kwargs):
    return x.mean(*args, **kwargs)


def argmax(x, *args, **kwargs):
    return x.argmax(*args, **kwargs)


def astype(x, *args, **kwargs):
    return x.type(*args, **kwargs)


def transpose(x, *args, **kwargs):
    return x.t(*args, **kwargs)


def expand_dims(x, *args, **kwargs):
    return x.unsqueeze(*args, **kwargs)


def swapaxes(x, *args, **kwargs):
    return x.swapaxes(*args, **kwargs)


def repeat(x, *args, **kwargs):
    return x.repeat(*args, **kwargs)
