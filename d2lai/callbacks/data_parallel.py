"""DataParallel: the training loop, unchanged, run data-parallel under torchrun."""

from __future__ import annotations

import re

from torch import nn
from torch.utils.data.distributed import DistributedSampler

from .. import distributed
from ..data.base import TensorLoader
from .base import Callback

__all__ = ["DataParallel", "SeededShuffle", "TrainingStep", "check_data_parallel"]


class TrainingStep(nn.Module):
    """The model's training step as a module's forward, so that DistributedDataParallel wraps
    the whole step (forward and loss), whatever the model's `training_step` does.

    `part_weight` is this rank's part of the batch over an equal part (1 unless the parts differ by
    a sample): the gradient of the loss is scaled by it, so that DDP's average of the ranks'
    gradients is the gradient of the mean over the whole batch, as one process computes it
    (also through batch statistics shared by the ranks). The loss itself is left as it is.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model, self.part_weight = model, 1.0

    def forward(self, batch):
        loss = self.model.training_step(batch)
        if self.part_weight != 1:
            weight = self.part_weight
            loss.register_hook(lambda grad: grad * weight)
        return loss


class DataParallel(Callback):
    """Data-parallel training under torchrun (see `d2lai.distributed`); the trainer adds it.

    At fit start it checks that the run can be split over the ranks (clear errors before
    anything trains), joins the process group and agrees on a seed. Each pass, every loader
    serves this rank's part of each batch (one shuffled order on all ranks, seeded by the seed
    and the epoch); at the first training batch, after the first-batch checks have given lazy
    layers their shapes, the model's training step is put in DistributedDataParallel
    (`trainer.ddp`), each rank's gradient weighted by the size of its part. A fit that fails
    or is interrupted ends this rank's process group, so that the others stop at once.
    """

    order = 5  # after the first-batch checks (0), before the divergence watch copies weights (10)

    def on_fit_start(self, trainer) -> None:
        if not distributed.launched() or sum(isinstance(c, DataParallel)
                                             for c in trainer.callbacks) > 1:
            raise ValueError("DataParallel is the trainer's own, added when the script runs "
                             "under torchrun: remove it from callbacks, and start the script "
                             "with torchrun --nproc_per_node=N script.py")
        check_data_parallel(trainer)
        distributed.start(trainer.device)
        self.seed, self.failed = distributed.shared_seed(trainer.seed), False
        trainer.ddp = None  # wrapped afresh at the first batch of each fit, where the model is

    def on_train_start(self, trainer, loader) -> None:
        seed = self.seed if trainer.seed is None else trainer.seed  # a resumed run's, restored
        self.loader = _shard(loader, seed + trainer.epoch, trainer.epoch)

    def on_train_batch_start(self, trainer, batch) -> None:
        if trainer.ddp is None:
            trainer.ddp = distributed.data_parallel(TrainingStep(trainer.model), trainer.device)
        if isinstance(self.loader, TensorLoader):  # a DistributedSampler's parts are equal
            trainer.ddp.module.part_weight = self.loader.share * distributed.world_size()

    def on_validation_start(self, trainer, loader) -> None:
        _shard(loader, None, trainer.epoch)

    def on_exception(self, trainer, error: Exception) -> None:
        self.failed = True
        if "find_unused_parameters" in str(error):
            raise RuntimeError(
                f"{type(trainer.model).__name__} has parameters that take no part in its "
                f"training step's loss, and DistributedDataParallel needs a gradient for each: "
                f"remove them from the model, or freeze them (requires_grad_(False))") from error
        if _lost_contact(error):
            first = str(error).strip().splitlines()[0][:300]
            raise RuntimeError(
                f"rank {distributed.rank()} of {distributed.world_size()} lost the other ranks "
                f"in epoch {trainer.epoch + 1} ({first}). Another rank has probably failed or "
                f"been stopped (its own output says why), or it did not answer within the "
                f"timeout (d2lai.distributed.start(timeout_s=...)).") from error

    def on_fit_end(self, trainer, metrics) -> None:
        if self.failed or metrics.interrupted:
            distributed.end()


class SeededShuffle(Callback):
    """With a seed, one process draws each epoch's shuffled order as the ranks do under
    torchrun (a generator seeded with the seed and the epoch, not torch's global one), so that
    `python train.py` and `torchrun --nproc_per_node=N train.py` train alike; the trainer adds
    it (without a seed, or with a loader of another kind, it does nothing)."""

    order = 5

    def on_train_start(self, trainer, loader) -> None:
        if trainer.seed is not None and isinstance(loader, TensorLoader):
            loader.shard(0, 1, trainer.seed + trainer.epoch)


def _shard(loader, seed: int | None, epoch: int):
    """This rank's part of the loader's batches, the shuffled order from `seed`."""
    if isinstance(loader, TensorLoader):
        return loader.shard(distributed.rank(), distributed.world_size(), seed)
    loader.sampler.set_epoch(epoch)  # a DataLoader with a DistributedSampler shards itself
    return loader


def _lost_contact(error: Exception) -> bool:
    """Whether a collective failed: a peer closed its connection, or the timeout passed."""
    return isinstance(error, getattr(distributed.dist, "DistError", ())) or (
        isinstance(error, RuntimeError)
        and re.search(r"gloo|NCCL|[Cc]onnection (reset|closed|refused)|[Tt]imed out|"
                      r"[Bb]roken pipe", str(error)) is not None)


def _loader(data, train: bool):
    """The data module's training (or validation) loader, found as `Trainer.batches` finds it."""
    named = getattr(data, "train_dataloader" if train else "val_dataloader", None)
    return named() if callable(named) else data.get_dataloader(train=train)


def check_data_parallel(trainer) -> None:
    """Refuse, before anything trains, a run that cannot be split over the ranks: a loop of
    its own, a loader that cannot give each rank its part, a global batch the ranks cannot
    share, a split smaller than the number of ranks."""
    from ..trainer import Trainer

    world = distributed.world_size()
    if type(trainer).fit_epoch is not Trainer.fit_epoch:
        raise ValueError(f"{type(trainer).__name__} replaces fit_epoch: under torchrun the "
                         f"data-parallel path is d2lai's own loop; train without torchrun, or "
                         f"keep Trainer.fit_epoch")
    for train, split in ((True, "training"), (False, "validation")):
        loader = _loader(trainer.data, train)
        if isinstance(loader, TensorLoader):
            if loader.batchsize % world:
                fits = [b for b in (loader.batchsize // world * world,
                                    (loader.batchsize // world + 1) * world) if b > 0]
                raise ValueError(
                    f"batchsize {loader.batchsize} is the global batch, split over the {world} "
                    f"ranks: it must be a multiple of {world} (e.g. "
                    f"{' or '.join(map(str, fits))}), or start as many ranks as divide it")
            if loader.n < world:
                raise ValueError(f"the {split} set has {loader.n} samples, fewer than the "
                                 f"{world} ranks: each rank needs at least one")
        elif not isinstance(getattr(loader, "sampler", None), DistributedSampler):
            raise TypeError(
                f"under torchrun each rank trains on its part of the data, but the {split} "
                f"loader of {type(trainer.data).__name__} is a {type(loader).__name__}: return "
                f"a d2lai.TensorLoader (AbstractData's loaders are), or a DataLoader with a "
                f"torch.utils.data.distributed.DistributedSampler")
