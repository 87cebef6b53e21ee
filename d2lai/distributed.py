"""Data-parallel training with torch.distributed: the same Trainer, several processes.

`torchrun --nproc_per_node=N script.py` starts N copies of a script, its *ranks*, and tells each
who it is by environment variables (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, ...). A `Trainer`
that finds them trains data-parallel on PyTorch's own engine (the callbacks `DataParallel` and
`ReduceMetrics` do it around the unchanged loop):

- the ranks join one process group (`gloo` on CPUs, `nccl` on GPUs, each rank its own GPU) with
  a timeout on every collective, so that a rank that dies or hangs stops the others;
- every epoch's shuffled order is the same on all ranks (seeded by the run's seed and the
  epoch); `batchsize` is the GLOBAL batch, and each rank trains on its part of every batch;
- the model's training step runs inside `DistributedDataParallel`, whose backward averages the
  ranks' gradients (a part larger than the others weighing more): every rank takes the step
  one process would take on the whole batch;
- the epoch's metrics are summed over the ranks, so the epoch line and `Metrics` are one
  process's; rank 0 alone prints, draws and writes files.

Batch normalisation is the one layer that sees the split: by default each rank normalises with
the statistics of its own part; `sync_batch_norm` makes the batch all ranks' parts together.
"""

from __future__ import annotations

import atexit
import logging
import os
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from .checks import number

__all__ = ["DEFAULT_TIMEOUT_S", "launched", "rank", "world_size", "local_rank",
           "is_main_process", "say", "gpu_of_this_rank", "start", "end", "sum_over_ranks",
           "any_rank", "mean_over_ranks", "from_main", "shared_seed", "broadcast_buffers",
           "data_parallel", "mean_var_over_ranks", "CPUSyncBatchNorm", "sync_batch_norm"]

DEFAULT_TIMEOUT_S = 300.0  # a collective that waits longer fails: a rank died, or hangs
_started = False  # whether `start` started the process group (then `end` ends it)


# --- who am I ---------------------------------------------------------------------------------

def _env(name: str, default: int | None) -> int | None:
    value = os.environ.get(name, "")
    try:
        return int(value) if value else default
    except ValueError:
        raise ValueError(f"environment variable {name}={value!r} is not an integer "
                         f"(torchrun sets it; unset it to train in one process)") from None


def _launch_env() -> tuple[int, int]:
    """(RANK, WORLD_SIZE) as torchrun sets them, (0, 1) in one process. Only a launched run has
    ranks: a RANK without a WORLD_SIZE of several (a stray variable) would make one plain
    process a silent non-main rank, so an inconsistent pair is an error naming both."""
    rank, world = _env("RANK", None), _env("WORLD_SIZE", None)
    run = "start the script with torchrun --nproc_per_node=N (which sets both)"
    if world is not None and world < 1:
        raise ValueError(f"WORLD_SIZE={world}: the number of ranks must be at least 1; unset "
                         f"it to train in one process, or {run}")
    if (world or 1) == 1:
        if rank not in (None, 0):
            told = "WORLD_SIZE is not set" if world is None else f"WORLD_SIZE={world}"
            raise ValueError(f"RANK={rank} but {told}: one process is rank 0 of 1. Unset RANK "
                             f"to train in one process, or {run}")
        return 0, 1
    if rank is None or not 0 <= rank < world:
        told = "RANK is not set" if rank is None else f"RANK={rank}"
        raise ValueError(f"WORLD_SIZE={world} but {told} (expected 0 to {world - 1}): unset "
                         f"WORLD_SIZE to train in one process, or {run}")
    return rank, world


def _in_group() -> bool:
    """Whether a process group of more than one rank is running (collectives have peers)."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def launched() -> bool:
    """Whether this process is one of several ranks (torchrun's environment, or a process
    group of more than one rank already running)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size() > 1
    return _launch_env()[1] > 1


def rank() -> int:
    """This process's rank: 0 to world_size() - 1 (0 in one process)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    return _launch_env()[0]


def world_size() -> int:
    """How many ranks train together (1 in one process)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return _launch_env()[1]


def local_rank() -> int:
    """This process's rank among the ranks of its machine (its GPU's number)."""
    return _env("LOCAL_RANK", 0)


def is_main_process() -> bool:
    """Whether this is rank 0, the one that prints, draws and writes files."""
    return rank() == 0


def say(*args, **kwargs) -> None:
    """`print` on rank 0 alone (every process prints otherwise, under torchrun)."""
    if is_main_process():
        print(*args, **kwargs)


def gpu_of_this_rank() -> torch.device:
    """`cuda:LOCAL_RANK`, each rank of a machine its own GPU; an error if the machine has
    fewer GPUs than ranks."""
    ranks, gpus = _env("LOCAL_WORLD_SIZE", world_size()), torch.cuda.device_count()
    if gpus < ranks:
        raise ValueError(f"gpu=True with {ranks} ranks on this machine, but PyTorch sees {gpus} "
                         f"GPU(s): each rank needs a GPU of its own. Start as many ranks as "
                         f"GPUs (torchrun --nproc_per_node={gpus}), or train on the CPUs "
                         f"(gpu=False, --cpu).")
    return torch.device("cuda", local_rank())


# --- the process group -----------------------------------------------------------------------

def start(device: torch.device | str = "cpu", timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
    """Join the process group of the ranks torchrun started: `nccl` for a CUDA device, `gloo`
    otherwise. A collective that waits more than `timeout_s` seconds for the other ranks fails.

    Nothing to do in one process, or when the group is running already (call `start` yourself
    before `fit` to choose the timeout). On ranks other than 0 the `d2lai` logger shows only
    warnings and errors from here on.
    """
    global _started
    if not launched() or dist.is_initialized():
        return
    timeout_s = number("timeout_s", timeout_s, low=0, open_low=True)
    missing = [name for name in ("MASTER_ADDR", "MASTER_PORT") if not os.environ.get(name)]
    if missing:
        raise ValueError(f"WORLD_SIZE={world_size()} asks for {world_size()} ranks, but "
                         f"{' and '.join(missing)} (where the ranks meet, which torchrun sets) "
                         f"{'is' if len(missing) == 1 else 'are'} not set: start the script "
                         f"with torchrun --nproc_per_node={world_size()} script.py")
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo",
                            timeout=timedelta(seconds=timeout_s))
    _started = True
    atexit.register(end)
    if rank() > 0:  # rank 0 alone reports; every rank still warns
        logger = logging.getLogger("d2lai")
        logger.setLevel(max(logger.getEffectiveLevel(), logging.WARNING))


def end() -> None:
    """Leave the process group `start` started: at exit, or at once when a fit fails or is
    interrupted, so that the other ranks' collectives fail now, not at their timeout."""
    global _started
    if _started and dist.is_initialized():
        dist.destroy_process_group()
    _started = False


# --- collectives the loop needs (each the identity in one process) ---------------------------

def sum_over_ranks(tensor: torch.Tensor) -> torch.Tensor:
    """`tensor` summed element-wise over the ranks, in place; returned."""
    if _in_group():
        dist.all_reduce(tensor)
    return tensor


def any_rank(flags: torch.Tensor) -> torch.Tensor:
    """Element-wise, whether a flag is set on any rank: the same answer on every rank, so that
    every rank decides alike (to stop, say)."""
    return sum_over_ranks(flags.to(torch.int32)) > 0 if _in_group() else flags


def mean_over_ranks(metrics: dict[str, float], n: int,
                    device: torch.device | str = "cpu") -> dict[str, float]:
    """Metrics that are means over this rank's `n` samples -> the means over every rank's
    samples (what one process reports). Every rank must hold the same metric names."""
    names = sorted(k for k, v in metrics.items() if v is not None)
    if not _in_group() or not names:
        return dict(metrics)
    sums = torch.tensor([metrics[k] * n for k in names] + [n], dtype=torch.float64,
                        device=device)
    *sums, total = sum_over_ranks(sums).tolist()
    return metrics | {k: s / total for k, s in zip(names, sums, strict=True)}


def from_main(compute):
    """`compute()` as rank 0 computes it, on every rank: rank 0 runs it and sends the result,
    or its error, which every rank then raises (a file only rank 0 can read, one decision)."""
    if not _in_group():
        return compute()
    box = [None]
    if rank() == 0:
        try:
            box[0] = (True, compute())
        except Exception as err:  # sent to every rank, raised there
            box[0] = (False, err)
    dist.broadcast_object_list(box, src=0)
    ok, value = box[0]
    if not ok:
        raise value
    return value


def shared_seed(seed: int | None = None) -> int:
    """A seed every rank agrees on: `seed` if given, else one drawn by rank 0."""
    if seed is not None:
        return seed
    return from_main(lambda: int(torch.randint(0, 2**62, ())))


def broadcast_buffers(module: nn.Module) -> None:
    """Rank 0's buffers (batch-norm statistics) on every rank."""
    if _in_group():
        for buffer in module.buffers():
            dist.broadcast(buffer, src=0)


# --- DistributedDataParallel -------------------------------------------------------------------

def data_parallel(module: nn.Module, device: torch.device | str) -> DistributedDataParallel:
    """`module` in DistributedDataParallel on this rank's `device`: rank 0's weights and buffers
    are copied to every rank now; a backward after its forward averages the gradients over the
    ranks. On CPUs, torch's `SyncBatchNorm` layers become `CPUSyncBatchNorm`."""
    device = torch.device(device)
    if device.type == "cpu":  # torch's SyncBatchNorm runs on GPUs only: the same layer, for CPUs
        for layer in module.modules():
            if type(layer) is nn.SyncBatchNorm:
                layer.__class__ = CPUSyncBatchNorm  # same parameters, buffers and statistics
    return DistributedDataParallel(module, device_ids=[device] if device.type == "cuda" else None)


# --- batch normalisation across ranks ---------------------------------------------------------

class _SumOverRanks(torch.autograd.Function):
    """A sum over the ranks that gradients flow through: the gradient of every rank's loss
    with respect to the sum reaches every rank's summands."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        return sum_over_ranks(x.clone())

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return sum_over_ranks(grad.clone())


def mean_var_over_ranks(X: torch.Tensor, dims: tuple[int, ...]):
    """The mean and (biased) variance of X over `dims` for every rank's X taken together, and
    how many values per feature they are over: (mean, var, n), mean and var kept in X's shape
    (n an int in one process, a 0-d tensor across ranks: no wait for a GPU to count).

    In one process they are X's own. Across ranks: the sum of the values and then the sum of
    the squared deviations from the common mean, each summed over the ranks (two collectives,
    in the gradient too, so that backward treats the ranks' parts as one batch).
    """
    n = X.numel() // X.shape[1]
    if not _in_group():
        mean = X.mean(dim=dims, keepdim=True)
        return mean, ((X - mean) ** 2).mean(dim=dims, keepdim=True), n
    n = sum_over_ranks(torch.tensor(float(n), dtype=X.dtype, device=X.device))
    mean = _SumOverRanks.apply(X.sum(dim=dims, keepdim=True)) / n
    var = _SumOverRanks.apply(((X - mean) ** 2).sum(dim=dims, keepdim=True)) / n
    return mean, var, n


class CPUSyncBatchNorm(nn.modules.batchnorm._BatchNorm):
    """torch's `SyncBatchNorm` on CPU ranks (`gloo`), where torch's own layer refuses to run:
    the same parameters and buffers, the same statistics over every rank's part of the batch
    (by `mean_var_over_ranks`). Outside training, or in one process, torch's batch norm."""

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2-D input (N x C x ...), got {input.dim()}-D")

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if not self.training or not _in_group():
            return super().forward(input)
        self._check_input_dim(input)
        dims = (0, *range(2, input.ndim))  # per channel, over the batch and the positions
        mean, var, n = mean_var_over_ranks(input, dims)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked += 1
                m = 1 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
                self.running_mean.mul_(1 - m).add_(m * mean.flatten())
                self.running_var.mul_(1 - m).add_(m * var.flatten() * (n / (n - 1)))
        Y = (input - mean) / torch.sqrt(var + self.eps)
        if self.affine:
            shape = (1, -1, *[1] * (input.ndim - 2))
            Y = Y * self.weight.reshape(shape) + self.bias.reshape(shape)
        return Y


def sync_batch_norm(model: nn.Module) -> nn.Module:
    """`model` with batch statistics over all ranks' parts of the batch, not each rank's own.

    torch's batch-norm layers become `nn.SyncBatchNorm` (torch's own conversion; on CPU ranks,
    where torch's layer does not run, `data_parallel` makes them `CPUSyncBatchNorm`), and every
    layer that computes its statistics itself and says so with a `sync` attribute (the
    chapter's `BatchNormLayer`) gets `sync = True`. In one process nothing changes. Returns the
    model (a new one only if `model` itself is a batch-norm layer).
    """
    model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    for layer in model.modules():
        if isinstance(getattr(layer, "sync", None), bool):
            layer.sync = True
    return model
