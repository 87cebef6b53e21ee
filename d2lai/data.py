"""Data modules: whole data sets kept as tensors, served as batches that are slices of them."""

from __future__ import annotations

import math
import os
import struct
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch

__all__ = [
    "AbstractData",
    "TensorLoader",
    "FashionMNISTData",
    "SyntheticRegressionData",
    "get_dataloader",
    "train_dataloader",
    "val_dataloader",
    "FASHION_MNIST_FILES",
]


def _positive_int(name: str, value, allow_none: bool = False) -> int | None:
    """Check an integer argument at the boundary, naming it in the error."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be a positive integer, got {value!r}")
    if value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value}")
    return value


class TensorLoader:
    """Batches of `batchsize` rows sliced from tensors already in memory (or on the GPU).

    With `shuffle=True` the order is drawn anew (from torch's global generator) every pass.
    A trailing batch of a single sample is merged into the batch before it (when training),
    so that no batch-norm layer ever sees a training batch of one.
    """

    def __init__(self, tensors: Sequence[torch.Tensor], batchsize: int, shuffle: bool = False,
                 merge_single: bool = True):
        self.tensors = tuple(tensors)
        self.batchsize = _positive_int("batchsize", batchsize)
        self.shuffle = shuffle
        self.n = len(self.tensors[0])
        starts = list(range(0, self.n, self.batchsize))
        if merge_single and len(starts) > 1 and self.n - starts[-1] == 1:
            starts.pop()
        self.bounds = list(zip(starts, starts[1:] + [self.n], strict=True))

    def __len__(self) -> int:
        return len(self.bounds)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        if self.shuffle:
            order = torch.randperm(self.n).to(self.tensors[0].device)
            for lo, hi in self.bounds:
                idx = order[lo:hi]
                yield tuple(t.index_select(0, idx) for t in self.tensors)
        else:
            for lo, hi in self.bounds:
                yield tuple(t[lo:hi] for t in self.tensors)


class AbstractData:
    """A data module: `train` and `val` tuples of tensors, and how to batch them."""

    train: tuple[torch.Tensor, ...]
    val: tuple[torch.Tensor, ...]
    batchsize: int

    def get_dataloader(self, train: bool) -> TensorLoader:
        """The batches of the training set (reshuffled each pass) or of the validation set."""
        tensors = self.train if train else self.val
        return TensorLoader(tensors, self.batchsize, shuffle=train, merge_single=train)

    def train_dataloader(self) -> TensorLoader:
        return self.get_dataloader(train=True)

    def val_dataloader(self) -> TensorLoader:
        return self.get_dataloader(train=False)

    def to(self, device: torch.device | str) -> AbstractData:
        """Move the data tensors to `device` once, so batches are cut where the model runs."""
        self.train = tuple(t.to(device) for t in self.train)
        self.val = tuple(t.to(device) for t in self.val)
        return self


def get_dataloader(data: AbstractData, train: bool) -> TensorLoader:
    return data.get_dataloader(train)


def train_dataloader(data: AbstractData) -> TensorLoader:
    return data.train_dataloader()


def val_dataloader(data: AbstractData) -> TensorLoader:
    return data.val_dataloader()


class SyntheticRegressionData(AbstractData):
    """y = X w + b + noise with X standard normal: the book's linear-regression data."""

    def __init__(self, w: torch.Tensor | Sequence[float], b: float, noise: float = 0.01,
                 num_train: int = 1000, num_val: int = 1000, batchsize: int = 32):
        w = torch.as_tensor(w, dtype=torch.float32).reshape(-1)
        self.w, self.b, self.noise = w, float(b), float(noise)
        self.num_train = _positive_int("num_train", num_train)
        self.num_val = _positive_int("num_val", num_val)
        self.batchsize = _positive_int("batchsize", batchsize)
        n = num_train + num_val
        X = torch.randn(n, len(w))
        y = X @ w.reshape(-1, 1) + self.b + self.noise * torch.randn(n, 1)
        self.train = (X[:num_train], y[:num_train])
        self.val = (X[num_train:], y[num_train:])


# The four files torchvision reads, as (unpacked name, IDX magic number, per-item shape).
FASHION_MNIST_FILES = (
    ("train-images-idx3-ubyte", 2051, (28, 28)),
    ("train-labels-idx1-ubyte", 2049, ()),
    ("t10k-images-idx3-ubyte", 2051, (28, 28)),
    ("t10k-labels-idx1-ubyte", 2049, ()),
)


def default_root() -> Path:
    """`D2LAI_DATA` when set, else a cache folder in the user's home."""
    if os.environ.get("D2LAI_DATA"):
        return Path(os.environ["D2LAI_DATA"]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "d2lai"


def _missing_message(raw: Path, why: str) -> str:
    names = "\n".join(f"  {name}  (or {name}.gz)" for name, _, _ in FASHION_MNIST_FILES)
    return (
        f"Fashion-MNIST not found in {raw} ({why}).\n"
        f"Put these four files there (copy the official .gz files, or their unpacked IDX form):\n"
        f"{names}\n"
        f"or pass root= (or set D2LAI_DATA) to the folder that holds FashionMNIST/raw/."
    )


def _check_idx(path: Path, magic: int, item_shape: tuple[int, ...]) -> int:
    """Read an IDX header and check the file is whole; return its number of items."""
    size = path.stat().st_size
    ndim = 1 + len(item_shape)
    header = 4 * (1 + ndim)
    with open(path, "rb") as f:
        head = f.read(header)
    if len(head) < header:
        raise ValueError(f"{path} is truncated or corrupt: {size} bytes, too short for an IDX "
                         f"header. Delete it and copy the official file again.")
    found, *dims = struct.unpack(f">{1 + ndim}I", head)
    if found != magic or tuple(dims[1:]) != item_shape:
        raise ValueError(f"{path} is corrupt or not the right file: IDX magic {found} and item "
                         f"shape {tuple(dims[1:])}, expected {magic} and {item_shape}. "
                         f"Delete it and copy the official file again.")
    expected = header + dims[0] * math.prod(item_shape)
    if size != expected:
        raise ValueError(f"{path} is truncated or corrupt: its header announces {dims[0]} items "
                         f"({expected} bytes) but the file has {size} bytes. "
                         f"Delete it and copy the official file again.")
    return dims[0]


def _writable(folder: Path) -> bool:
    """Whether `folder` (or the first existing folder above it) accepts new files."""
    while not folder.exists():
        folder = folder.parent
    return os.access(folder, os.W_OK)


def _read_fashion_mnist(root: Path, download: bool):
    """Fetch (if allowed and needed), check and read the two splits through torchvision."""
    from torchvision.datasets import FashionMNIST
    from torchvision.datasets.utils import check_integrity

    if root.exists() and not root.is_dir():
        raise NotADirectoryError(f"root {root} is a file; it must be the folder that holds "
                                 f"FashionMNIST/raw/")
    raw = root / "FashionMNIST" / "raw"
    if not all((raw / name).is_file() for name, _, _ in FASHION_MNIST_FILES):
        if not download:
            raise FileNotFoundError(_missing_message(raw, "download=False"))
        if not _writable(raw):
            raise PermissionError(f"cannot write to {raw} to download (or unpack) Fashion-MNIST: "
                                  f"the folder is not writable. Pass a writable root= or set "
                                  f"D2LAI_DATA to one, or unpack the four .gz files there.")
        try:
            FashionMNIST(str(root), train=True, download=True)
        except PermissionError as err:
            raise PermissionError(f"cannot write to {raw}: {err}. Pass a writable root=.") from err
        except (RuntimeError, OSError) as err:
            lines = str(err).strip().splitlines() or [type(err).__name__]
            reason = lines[0].rstrip(":") + (f": {lines[-1].strip()}" if len(lines) > 1 else "")
            bad = [name for name, md5 in FashionMNIST.resources
                   if (raw / name).exists() and not check_integrity(str(raw / name), md5)]
            if bad:
                reason += f"; {', '.join(bad)} in the folder do not match the official md5 sums"
            raise FileNotFoundError(_missing_message(raw, f"download failed: {reason}")) from err
    counts = {name: _check_idx(raw / name, magic, shape)
              for name, magic, shape in FASHION_MNIST_FILES}
    for split in ("train", "t10k"):
        images, labels = f"{split}-images-idx3-ubyte", f"{split}-labels-idx1-ubyte"
        if counts[images] != counts[labels]:
            raise ValueError(f"{raw / images} holds {counts[images]} images but {raw / labels} "
                             f"holds {counts[labels]} labels; one of them is corrupt. "
                             f"Copy the official files again.")
    splits = []
    for train in (True, False):
        ds = FashionMNIST(str(root), train=train, download=False)
        labels = ds.targets.long()
        if len(labels) and (labels.min() < 0 or labels.max() > 9):
            name = FASHION_MNIST_FILES[1 if train else 3][0]
            raise ValueError(f"{raw / name} is corrupt: labels must lie in 0..9, found "
                             f"{int(labels.min())}..{int(labels.max())}.")
        splits.append((ds.data, labels))
    return splits


class FashionMNISTData(AbstractData):
    """Fashion-MNIST as float32 tensors in [0, 1]: N x 1 x 28 x 28 (or N x 784 with flatten).

    The files are read once through `torchvision.datasets.FashionMNIST` from `root`, else
    `D2LAI_DATA`, else `~/.cache/d2lai`, and downloaded there when missing (needs internet).
    `resize=(h, w)` resizes the whole set once; `num_train`/`num_val` keep the first samples only.
    """

    labels = ["t-shirt", "trouser", "pullover", "dress", "coat",
              "sandal", "shirt", "sneaker", "bag", "ankle boot"]

    def __init__(self, batchsize: int | None = None, resize: tuple[int, int] | None = None,
                 flatten: bool = False, root: str | os.PathLike | None = None,
                 num_train: int | None = None, num_val: int | None = None, *,
                 batch_size: int | None = None, download: bool = True):
        if batchsize is not None and batch_size is not None and batchsize != batch_size:
            raise ValueError(f"give batchsize or batch_size, not both "
                             f"(got {batchsize} and {batch_size})")
        if batchsize is None:
            batchsize = 64 if batch_size is None else batch_size
        self.batchsize = _positive_int("batchsize", batchsize)
        self.num_train = _positive_int("num_train", num_train, allow_none=True)
        self.num_val = _positive_int("num_val", num_val, allow_none=True)
        if resize is not None:
            if (not isinstance(resize, (tuple, list)) or len(resize) != 2
                    or not all(isinstance(s, int) and s > 0 for s in resize)):
                raise ValueError(f"resize must be None or (height, width) of positive integers, "
                                 f"got {resize!r}")
            resize = tuple(resize)
        self.resize, self.flatten = resize, bool(flatten)
        self.root = Path(root).expanduser() if root is not None else default_root()
        (Xtr, ytr), (Xva, yva) = _read_fashion_mnist(self.root, download)
        self.train = (self._images(Xtr[:num_train]), ytr[:num_train])
        self.val = (self._images(Xva[:num_val]), yva[:num_val])

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    def _images(self, X: torch.Tensor) -> torch.Tensor:
        """uint8 N x 28 x 28 -> float32 N x 1 x H x W in [0, 1] (or N x H*W when flattened)."""
        X = X.unsqueeze(1).float().div_(255)
        if self.resize is not None:
            from torchvision.transforms.functional import resize

            X = resize(X, list(self.resize), antialias=True).clamp_(0, 1)
        return X.flatten(1) if self.flatten else X

    def text_labels(self, indices) -> list[str]:
        """Class names of label indices."""
        return [self.labels[int(i)] for i in indices]


def write_idx(path: str | os.PathLike, array) -> None:
    """Write a uint8 array as an uncompressed IDX file (the format of the MNIST files)."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    magic = 0x0800 + array.ndim
    with open(path, "wb") as f:
        f.write(struct.pack(f">{1 + array.ndim}I", magic, *array.shape))
        f.write(array.tobytes())


def write_fake_fashion_mnist(root: str | os.PathLike, num_train: int = 600, num_val: int = 200,
                             seed: int = 0) -> Path:
    """Write a small learnable stand-in for Fashion-MNIST under root/FashionMNIST/raw/.

    Class c is a bright band at rows 2c+4..2c+6 over noise, so a LeNet learns it in an epoch or
    two. For tests and benchmarks on machines without the real files; returns the raw folder.
    """
    rng = np.random.default_rng(seed)
    raw = Path(root) / "FashionMNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", num_train), ("t10k", num_val)):
        labels = rng.integers(0, 10, size=n, dtype=np.uint8)
        images = rng.integers(0, 100, size=(n, 28, 28), dtype=np.uint8)
        for c in range(10):
            images[labels == c, 2 * c + 4:2 * c + 7, 4:24] = 255
        write_idx(raw / f"{split}-images-idx3-ubyte", images)
        write_idx(raw / f"{split}-labels-idx1-ubyte", labels)
    return raw
