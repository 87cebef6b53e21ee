"""Data modules: data sets kept whole as tensors in their stored form, served as batches.

A batch is a slice of those tensors; the data module's `transform` turns the slice into the
model's input (uint8 images into float32 in [0, 1], resized, ...) where the batch is, on the GPU
when the data is there. So the set stays small in memory and costs no per-image Python work.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import SimpleNamespace

import torch

from ..checks import ArgumentError, number, positive_int

__all__ = ["AbstractData", "TensorLoader", "SyntheticRegressionData", "get_dataloader",
           "train_dataloader", "val_dataloader", "default_root", "batchsize_of"]


def batchsize_of(batchsize, batch_size, default: int) -> int:
    """`batchsize` (the Julia name) or `batch_size` (the PyTorch name), not two different ones."""
    if batchsize is not None and batch_size is not None and batchsize != batch_size:
        raise ValueError(f"give batchsize or batch_size, not both "
                         f"(got {batchsize} and {batch_size})")
    if batchsize is None:
        batchsize = default if batch_size is None else batch_size
    return positive_int("batchsize", batchsize)


def default_root() -> Path:
    """`D2LAI_DATA` when set, else a cache folder in the user's home."""
    if os.environ.get("D2LAI_DATA"):
        return Path(os.environ["D2LAI_DATA"]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "d2lai"


class TensorLoader:
    """Batches of `batchsize` rows sliced from tensors already in memory (or on the GPU).

    `tensors` is one tensor or a sequence of tensors with the same number of rows. With
    `shuffle=True` the order is drawn anew (from torch's global generator) every pass. A trailing
    batch of a single sample is merged into the batch before it (when `merge_single`), so that no
    batch-norm layer ever sees a training batch of one. `transform`, if given, is applied to the
    first tensor of each batch (stored images -> model input). `shard` makes it serve one rank's
    part of every batch, for data-parallel training.
    """

    def __init__(self, tensors: torch.Tensor | Sequence[torch.Tensor], batchsize: int,
                 shuffle: bool = False, merge_single: bool = True,
                 transform: Callable[[torch.Tensor], torch.Tensor] | None = None):
        if isinstance(tensors, torch.Tensor):
            tensors = (tensors,)
        if not isinstance(tensors, (tuple, list)):
            raise TypeError(f"TensorLoader takes a tensor or a tuple of tensors, "
                            f"got {type(tensors).__name__}")
        for i, t in enumerate(tensors):
            if not isinstance(t, torch.Tensor):
                raise TypeError(f"TensorLoader takes a tensor or a tuple of tensors, but element "
                                f"{i} is a {type(t).__name__}")
            if t.dim() == 0:
                raise ValueError(f"TensorLoader needs tensors with a first (sample) dimension, "
                                 f"but element {i} is a 0-dimensional tensor")
        lengths = [len(t) for t in tensors]
        if len(set(lengths)) > 1:
            raise ValueError(f"TensorLoader needs tensors with the same number of samples (first "
                             f"dimension), got lengths {lengths}")
        if transform is not None and not callable(transform):
            raise TypeError(f"transform must be callable or None, got {type(transform).__name__}")
        self.tensors = tuple(tensors)
        self.batchsize = positive_int("batchsize", batchsize)
        self.shuffle, self.transform, self.merge_single = shuffle, transform, merge_single
        self.n = lengths[0] if lengths else 0
        self.share = 1.0  # of the current batch held by this rank's part (1 in one process)
        self.shard(0, 1)

    def shard(self, rank: int, world_size: int, seed: int | None = None) -> TensorLoader:
        """Serve part `rank` of `world_size` of every batch (data-parallel training); returns
        the loader.

        The batches stay one process's, `batchsize` rows each (the global batch), and each is
        split into `world_size` parts of near-equal size, so that the ranks together see every
        sample of a pass once. A final batch too small to give each rank two rows is merged into
        the one before (in one process, a final batch of one), if `merge_single`. With `seed`,
        the shuffled order comes from a generator seeded with it, the same on every rank;
        without, from torch's global generator.
        """
        starts = list(range(0, self.n, self.batchsize))
        if self.merge_single and len(starts) > 1 and self.n - starts[-1] < 2 * world_size:
            starts.pop()
        self.bounds = list(zip(starts, starts[1:] + [self.n], strict=False))
        parts = [(*_part(lo, hi, rank, world_size), hi - lo) for lo, hi in self.bounds]
        self.parts = [(lo, hi, (hi - lo) / size) for lo, hi, size in parts if hi > lo]
        self.seed = seed
        return self

    def __len__(self) -> int:
        return len(self.parts)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        if not self.parts:
            return
        if self.shuffle:
            generator = None if self.seed is None else torch.Generator().manual_seed(self.seed)
            order = torch.randperm(self.n, generator=generator).to(self.tensors[0].device)
        for lo, hi, share in self.parts:
            self.share = share
            if self.shuffle:
                batch = tuple(t.index_select(0, order[lo:hi]) for t in self.tensors)
            else:
                batch = tuple(t[lo:hi] for t in self.tensors)
            if self.transform is not None:
                batch = (self.transform(batch[0]), *batch[1:])
            yield batch


def _part(lo: int, hi: int, rank: int, world_size: int) -> tuple[int, int]:
    """Rows [lo, hi) cut into `world_size` near-equal parts, the first ones a row longer:
    the bounds of part `rank`."""
    size, extra = divmod(hi - lo, world_size)
    start = lo + rank * size + min(rank, extra)
    return start, start + size + (rank < extra)


def _moved(value, device, memo: dict):
    """`value` with every tensor in it (alone, or in tuples and lists) on `device`.

    A tensor held twice (say `val` and `test` being one set) is moved once.
    """
    if isinstance(value, torch.Tensor):
        if id(value) not in memo:
            memo[id(value)] = (value, value.to(device))
        return memo[id(value)][1]
    if isinstance(value, (tuple, list)) and any(isinstance(v, (torch.Tensor, tuple, list))
                                                for v in value):
        items = [_moved(v, device, memo) for v in value]
        if hasattr(value, "_fields"):  # a namedtuple
            return type(value)(*items)
        return type(value)(items)
    return value


class AbstractData:
    """A data module: `train` and `val` tuples of tensors (labels last), and how to batch them.

    The tensors are kept in their stored form (images may be uint8); `transform` turns a stored
    batch of inputs into the model's input and is applied batch by batch, on the batch's device.
    A subclass may instead keep its arrays its own way (as `X`, `y`, with its arguments in
    `args`) and define `get_dataloader(train)` itself: `to`, `train_dataloader` and
    `val_dataloader` work the same.
    """

    train: tuple[torch.Tensor, ...]
    val: tuple[torch.Tensor, ...]
    batchsize: int

    def transform(self, X: torch.Tensor) -> torch.Tensor:
        """A stored batch of inputs -> the model's input (here, as it is)."""
        return X

    def get_dataloader(self, train: bool = True) -> TensorLoader:
        """The batches of the training set (reshuffled each pass) or of the validation set."""
        split = "train" if train else "val"
        return self._loader(split, shuffle=train, merge_single=train)

    def _loader(self, split: str, shuffle: bool, merge_single: bool) -> TensorLoader:
        """A loader over `getattr(self, split)`; errors name the data module and the split."""
        where = f"{type(self).__name__}.{split}"
        try:
            loader = TensorLoader(getattr(self, split), self.batchsize, shuffle=shuffle,
                                  merge_single=merge_single, transform=self.transform)
        except (TypeError, ValueError) as err:
            raise type(err)(f"{where}: {err}") from None
        if loader.n == 0:
            raise ValueError(f"{where} is empty (0 samples): a data module needs at least one "
                             f"sample in each split")
        return loader

    def train_dataloader(self) -> TensorLoader:
        return self.get_dataloader(train=True)

    def val_dataloader(self) -> TensorLoader:
        return self.get_dataloader(train=False)

    def to(self, device: torch.device | str) -> AbstractData:
        """Move every tensor this module holds (alone, or in tuples and lists) to `device`, once,
        so that batches are cut (and transformed) where the model runs. Returns the module."""
        memo: dict = {}
        for name, value in list(vars(self).items()):
            setattr(self, name, _moved(value, device, memo))
        return self


def get_dataloader(data: AbstractData, train: bool = True, **kwargs) -> TensorLoader:
    """`data.get_dataloader(train=train, ...)`: `flatten=` for image data, as the Julia text's
    `get_dataloader(data; train, flatten)`."""
    return data.get_dataloader(train=train, **kwargs)


def train_dataloader(data: AbstractData) -> TensorLoader:
    return data.train_dataloader()


def val_dataloader(data: AbstractData) -> TensorLoader:
    return data.val_dataloader()


class SyntheticRegressionData(AbstractData):
    """y = X w + b + noise with X standard normal: the book's linear-regression data.

    `X` (n x d) and `y` (n x 1) hold all samples; `train` is the first `num_train`, `val` the rest.
    `batchsize` (or `batch_size`) is 32 unless given.
    """

    def __init__(self, w: torch.Tensor | Sequence[float], b: float, noise: float = 0.01,
                 num_train: int = 1000, num_val: int = 1000, batchsize: int | None = None, *,
                 batch_size: int | None = None):
        w = torch.as_tensor(w, dtype=torch.float32).reshape(-1)
        if len(w) == 0:
            raise ValueError("w is empty: give at least one weight (one per feature)")
        if not bool(w.isfinite().all()):
            raise ArgumentError(f"w must hold finite numbers, got {w.tolist()}")
        self.w, self.b = w, number("b", b)
        self.noise = number("noise", noise, 0, math.inf, open_high=True)
        self.num_train = positive_int("num_train", num_train)
        self.num_val = positive_int("num_val", num_val)
        self.batchsize = batchsize_of(batchsize, batch_size, 32)
        self.args = SimpleNamespace(w=w, b=self.b, noise=self.noise, num_train=num_train,
                                    num_val=num_val, batchsize=self.batchsize)
        n = num_train + num_val
        self.X = torch.randn(n, len(w))
        self.y = self.X @ w.reshape(-1, 1) + self.b + self.noise * torch.randn(n, 1)

    @property
    def train(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.X[:self.num_train], self.y[:self.num_train]

    @property
    def val(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.X[self.num_train:], self.y[self.num_train:]
