"""Data modules: data sets kept whole as tensors in their stored form, served as batches.

A batch is a slice of those tensors; the data module's `transform` turns the slice into the
model's input (uint8 images into float32 in [0, 1], resized, ...) where the batch is, on the GPU
when the data is there. So the set stays small in memory and costs no per-image Python work.
"""

from __future__ import annotations

import gzip
import math
import os
import secrets
import shutil
import struct
import zlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

__all__ = [
    "AbstractData",
    "TensorLoader",
    "MNISTLikeData",
    "FashionMNISTData",
    "MNISTData",
    "SyntheticRegressionData",
    "get_dataloader",
    "train_dataloader",
    "val_dataloader",
    "IDX_FILES",
    "FASHION_MNIST_FILES",
    "write_idx",
    "write_fake_mnist",
    "write_fake_fashion_mnist",
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


def _flag(name: str, value) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return value


def _batchsize(batchsize, batch_size, default: int) -> int:
    """`batchsize` (the Julia name) or `batch_size` (the PyTorch name), not two different ones."""
    if batchsize is not None and batch_size is not None and batchsize != batch_size:
        raise ValueError(f"give batchsize or batch_size, not both "
                         f"(got {batchsize} and {batch_size})")
    if batchsize is None:
        batchsize = default if batch_size is None else batch_size
    return _positive_int("batchsize", batchsize)


class TensorLoader:
    """Batches of `batchsize` rows sliced from tensors already in memory (or on the GPU).

    `tensors` is one tensor or a sequence of tensors with the same number of rows. With
    `shuffle=True` the order is drawn anew (from torch's global generator) every pass. A trailing
    batch of a single sample is merged into the batch before it (when `merge_single`), so that no
    batch-norm layer ever sees a training batch of one. `transform`, if given, is applied to the
    first tensor of each batch (stored images -> model input).
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
        self.batchsize = _positive_int("batchsize", batchsize)
        self.shuffle, self.transform = shuffle, transform
        self.n = lengths[0] if lengths else 0
        starts = list(range(0, self.n, self.batchsize))
        if merge_single and len(starts) > 1 and self.n - starts[-1] == 1:
            starts.pop()
        self.bounds = list(zip(starts, starts[1:] + [self.n], strict=False))

    def __len__(self) -> int:
        return len(self.bounds)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        if not self.bounds:
            return
        if self.shuffle:
            order = torch.randperm(self.n).to(self.tensors[0].device)
            batches = (tuple(t.index_select(0, order[lo:hi]) for t in self.tensors)
                       for lo, hi in self.bounds)
        else:
            batches = (tuple(t[lo:hi] for t in self.tensors) for lo, hi in self.bounds)
        for batch in batches:
            if self.transform is not None:
                batch = (self.transform(batch[0]), *batch[1:])
            yield batch


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


def get_dataloader(data: AbstractData, train: bool = True) -> TensorLoader:
    return data.get_dataloader(train=train)


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
        self.w, self.b, self.noise = w, float(b), float(noise)
        self.num_train = _positive_int("num_train", num_train)
        self.num_val = _positive_int("num_val", num_val)
        self.batchsize = _batchsize(batchsize, batch_size, 32)
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


# --- MNIST-format data sets: four IDX files in root/NAME/raw/ ---------------------------------

# The four files torchvision reads, as (unpacked name, IDX magic number, per-item shape).
IDX_FILES = (
    ("train-images-idx3-ubyte", 2051, (28, 28)),
    ("train-labels-idx1-ubyte", 2049, ()),
    ("t10k-images-idx3-ubyte", 2051, (28, 28)),
    ("t10k-labels-idx1-ubyte", 2049, ()),
)
FASHION_MNIST_FILES = IDX_FILES  # the same four names for MNIST and Fashion-MNIST


def default_root() -> Path:
    """`D2LAI_DATA` when set, else a cache folder in the user's home."""
    if os.environ.get("D2LAI_DATA"):
        return Path(os.environ["D2LAI_DATA"]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "d2lai"


def _missing_message(raw: Path, title: str, why: str) -> str:
    names = "\n".join(f"  {name}  (or {name}.gz)" for name, _, _ in IDX_FILES)
    return (
        f"{title} not found in {raw} ({why}).\n"
        f"Put these four files there (copy the official .gz files, or their unpacked IDX form):\n"
        f"{names}\n"
        f"or pass root= (or set D2LAI_DATA) to the folder that holds {raw.parent.name}/raw/."
    )


def _writable(folder: Path) -> bool:
    """Whether `folder` (or the first existing folder above it) accepts new files."""
    while not folder.exists():
        folder = folder.parent
    return os.access(folder, os.W_OK)


def _read_idx(path: Path, magic: int, item_shape: tuple[int, ...]) -> torch.Tensor:
    """A whole IDX file (or its .gz), checked, as a uint8 tensor of shape (n, *item_shape)."""
    ndim = 1 + len(item_shape)
    header = 4 * (1 + ndim)
    if path.suffix == ".gz":
        try:
            with gzip.open(path, "rb") as f:
                data = np.frombuffer(bytearray(f.read()), dtype=np.uint8)
        except (gzip.BadGzipFile, EOFError, zlib.error) as err:
            raise ValueError(f"{path} is not a whole gzip file ({err}). Delete it and copy the "
                             f"official file again.") from None
        size, head = len(data), data[:header].tobytes()
    else:
        size = path.stat().st_size
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
    n = dims[0]
    expected = header + n * math.prod(item_shape)
    if size != expected:
        raise ValueError(f"{path} is truncated or corrupt: its header announces {n} items "
                         f"({expected} bytes) but the file has {size} bytes. "
                         f"Delete it and copy the official file again.")
    if n == 0:
        raise ValueError(f"{path} is empty: its header announces 0 items. "
                         f"Copy the official file again.")
    body = data[header:] if path.suffix == ".gz" else np.fromfile(path, np.uint8, offset=header)
    if len(body) != n * math.prod(item_shape):  # the file changed since its size was read
        raise ValueError(f"{path} changed while it was being read (is something writing "
                         f"it?): try again.")
    return torch.from_numpy(body).view(n, *item_shape)


def _unpack(gz: Path, dest: Path) -> None:
    """Unpack `gz` into `dest` through a temporary file renamed into place: no reader ever
    sees half a file, and a failure leaves no partial file behind."""
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    try:
        with gzip.open(gz, "rb") as src, open(tmp, "xb") as out:
            shutil.copyfileobj(src, out, 1 << 20)
        os.replace(tmp, dest)
    except (gzip.BadGzipFile, EOFError, zlib.error) as err:
        raise ValueError(f"{gz} is not a whole gzip file ({err}). Delete it and copy the "
                         f"official file again.") from None
    finally:
        tmp.unlink(missing_ok=True)


def _download(raw: Path, name: str, title: str, filename: str) -> None:
    """Fetch the official `filename` (a .gz) into `raw` with torchvision (md5 checked), to a
    temporary name renamed into place once whole."""
    from torchvision import datasets
    from torchvision.datasets.utils import download_url

    tv = getattr(datasets, name)
    errors = []
    for url_or_name, md5 in tv.resources:
        if os.path.basename(url_or_name) != filename:
            continue
        urls = ([url_or_name] if "://" in url_or_name
                else [f"{mirror}{url_or_name}" for mirror in tv.mirrors])
        for url in urls:
            part = f".{filename}.{os.getpid()}-{secrets.token_hex(4)}.part"
            try:
                download_url(url, str(raw), filename=part, md5=md5)
                os.replace(raw / part, raw / filename)
                return
            except PermissionError as err:
                raise PermissionError(f"cannot write to {raw}: {err}. "
                                      f"Pass a writable root=.") from err
            except (RuntimeError, OSError) as err:
                lines = str(err).strip().splitlines() or [type(err).__name__]
                errors.append(f"{url}: {lines[0]}")
            finally:
                (raw / part).unlink(missing_ok=True)
    reason = "; ".join(errors) or f"torchvision's {name} lists no {filename}"
    raise FileNotFoundError(_missing_message(raw, title, f"download failed: {reason}"))


def _locate(root: Path, name: str, title: str, download: bool) -> dict[str, Path]:
    """The path to read for each of the four files: unpacked (unpacking the .gz files, or
    downloading them, when needed) or, in a folder that cannot be written, the .gz itself."""
    if root.exists() and not root.is_dir():
        raise NotADirectoryError(f"root {root} is a file; it must be the folder that holds "
                                 f"{name}/raw/")
    raw = root / name / "raw"
    for folder in (raw.parent, raw):
        if folder.exists() and not folder.is_dir():
            raise NotADirectoryError(f"{folder} is a file; it must be a folder (that holds the "
                                     f"four {title} files)")
    names = [n for n, _, _ in IDX_FILES]
    missing = [n for n in names if not (raw / n).is_file()]
    for n in missing:
        for path in (raw / n, raw / f"{n}.gz"):
            if path.exists() and not path.is_file():
                raise IsADirectoryError(f"{path} is a folder, not a file: remove it and put the "
                                        f"{title} file {path.name} there")
    if not missing:
        return {n: raw / n for n in names}
    absent = [n for n in missing if not (raw / f"{n}.gz").is_file()]
    if not absent and not _writable(raw):  # a read-only copy of the .gz files: read them as is
        return {n: raw / f"{n}.gz" if n in missing else raw / n for n in names}
    if absent and not download:
        raise FileNotFoundError(_missing_message(raw, title, "download=False"))
    if not _writable(raw):
        raise PermissionError(f"cannot write to {raw} to download (or unpack) {title}: the "
                              f"folder is not writable. Pass a writable root= or set D2LAI_DATA "
                              f"to one, or unpack the four .gz files there.")
    _fetch(raw, name, title, download)
    return {n: raw / n for n in names}


def _fetch(raw: Path, name: str, title: str, download: bool) -> None:
    """Unpack (and download first, if allowed) the missing files, one process at a time.

    A file lock in `raw` makes a second process wait and then find the files in place. On
    failure, the folders this call created (and its lock file) are removed again.
    """
    from filelock import FileLock

    created, folder = [], raw
    while not folder.exists():
        created.append(folder)
        folder = folder.parent
    lock = raw / ".unpack.lock"
    had_lock = lock.exists()
    try:
        raw.mkdir(parents=True, exist_ok=True)
        with FileLock(str(lock)):
            missing = [n for n, _, _ in IDX_FILES if not (raw / n).is_file()]  # re-checked
            for n in missing:
                if not (raw / f"{n}.gz").is_file():
                    if not download:
                        raise FileNotFoundError(_missing_message(raw, title, "download=False"))
                    _download(raw, name, title, f"{n}.gz")
            for n in missing:
                _unpack(raw / f"{n}.gz", raw / n)
    except BaseException:
        if not had_lock:
            lock.unlink(missing_ok=True)
        for folder in created:  # deepest first; stops at one that holds something
            try:
                folder.rmdir()
            except OSError:
                break
        raise


class MNISTLikeData(AbstractData):
    """An MNIST-format data set (four IDX files in `root/NAME/raw/`) kept as uint8 images.

    `train` and `val` hold uint8 images N x 28 x 28 and int64 labels; `transform` makes a batch
    of them the model's input: float32 in [0, 1], N x 1 x H x W (resized to `resize=(H, W)` and
    standardised with `normalize=True`), or N x H*W with `flatten=True`. The files come from
    `root`, else `D2LAI_DATA`, else `~/.cache/d2lai`; `.gz` files there are unpacked, missing
    ones downloaded with torchvision (needs internet, unless `download=False`).

    Validation is the test set, unless `val_split=k`: then it is the first k training images and
    training uses the rest (`test` keeps the test set). `num_train`/`num_val` keep the first
    samples of the training/validation part only. Subclasses set `name` (torchvision's class and
    folder name), `title` and `labels`.
    """

    name: str
    title: str
    labels: list[str]

    def __init__(self, batchsize: int | None = None, resize: tuple[int, int] | None = None,
                 flatten: bool = False, root: str | os.PathLike | None = None,
                 num_train: int | None = None, num_val: int | None = None, *,
                 batch_size: int | None = None, download: bool = True, normalize: bool = False,
                 val_split: int | None = None):
        self.batchsize = _batchsize(batchsize, batch_size, 64)
        self.num_train = _positive_int("num_train", num_train, allow_none=True)
        self.num_val = _positive_int("num_val", num_val, allow_none=True)
        self.val_split = _positive_int("val_split", val_split, allow_none=True)
        if resize is not None:
            if (not isinstance(resize, (tuple, list)) or len(resize) != 2
                    or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0
                               for s in resize)):
                raise ValueError(f"resize must be None or (height, width) of positive integers, "
                                 f"got {resize!r}")
            resize = tuple(resize)
        self.resize = resize
        self.flatten = _flag("flatten", flatten)
        self.normalize = _flag("normalize", normalize)
        self.args = SimpleNamespace(batchsize=self.batchsize, resize=resize, flatten=flatten,
                                    normalize=normalize, val_split=val_split,
                                    num_train=num_train, num_val=num_val)
        self.root = Path(root).expanduser() if root is not None else default_root()
        (Xtr, ytr), (Xte, yte) = self._read(download)
        if self.val_split is not None:
            if self.val_split >= len(Xtr):
                raise ValueError(f"val_split must be smaller than the number of training images "
                                 f"({len(Xtr)}), so that some are left to train on; "
                                 f"got {self.val_split}")
            k = self.val_split
            train, val = (Xtr[k:], ytr[k:]), (Xtr[:k], ytr[:k])
            self.test = (Xte, yte)
        else:
            train, val = (Xtr, ytr), (Xte, yte)
        self.train = (train[0][:num_train], train[1][:num_train])
        self.val = (val[0][:num_val], val[1][:num_val])
        if self.val_split is None:
            self.test = self.val  # validation is the test set
        self.mean = self.std = None
        if self.normalize:
            self.mean, self.std = _pixel_mean_std(self.train[0], f"{type(self).__name__}.train")

    def _read(self, download: bool):
        """Locate (fetch if needed), read and check the four files: two (images, labels)."""
        paths = _locate(self.root, self.name, self.title, download)
        tensors = {n: _read_idx(paths[n], magic, shape) for n, magic, shape in IDX_FILES}
        splits = []
        for split in ("train", "t10k"):
            images, labels = f"{split}-images-idx3-ubyte", f"{split}-labels-idx1-ubyte"
            X, y = tensors[images], tensors[labels].long()
            if len(X) != len(y):
                raise ValueError(f"{paths[images]} holds {len(X)} images but {paths[labels]} "
                                 f"holds {len(y)} labels; one of them is corrupt. "
                                 f"Copy the official files again.")
            k = len(self.labels) - 1
            if y.min() < 0 or y.max() > k:
                raise ValueError(f"{paths[labels]} is corrupt: labels must lie in 0..{k}, found "
                                 f"{int(y.min())}..{int(y.max())}.")
            splits.append((X, y))
        return splits

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    def transform(self, X: torch.Tensor) -> torch.Tensor:
        """uint8 N x 28 x 28 -> float32 N x 1 x H x W in [0, 1] (resized, standardised), or
        N x H*W when flattened; computed on X's device."""
        if X.dtype != torch.uint8 or X.dim() != 3:
            raise TypeError(f"{type(self).__name__}.transform takes stored images, uint8 of "
                            f"shape (N, 28, 28), got {X.dtype} of shape {tuple(X.shape)}")
        X = X.unsqueeze(1).div(255)  # float32, in one pass
        if self.resize is not None:
            from torchvision.transforms.functional import resize

            X = resize(X, list(self.resize), antialias=True).clamp_(0, 1)
        if self.normalize:
            X = X.sub_(self.mean).div_(self.std)
        return X.flatten(1) if self.flatten else X

    def test_dataloader(self) -> TensorLoader:
        """The batches of the test set, in order."""
        return self._loader("test", shuffle=False, merge_single=False)

    def text_labels(self, indices) -> list[str]:
        """Class names of label indices."""
        return [self.labels[int(i)] for i in indices]


def _pixel_mean_std(X: torch.Tensor, what: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and standard deviation (torch.std's, n - 1) of all pixels of uint8 images, as
    values in [0, 1]: exact, from the pixel-value histogram, in float64; float32 scalars."""
    counts = torch.bincount(X.flatten().cpu(), minlength=256).double()
    values = torch.arange(256, dtype=torch.float64) / 255
    n = counts.sum()
    mean = (counts * values).sum() / n
    std = ((counts * (values - mean) ** 2).sum() / (n - 1)).sqrt()
    if not std > 0:
        raise ValueError(f"cannot normalize: the pixels of {what} all have the same value "
                         f"({float(mean):.4g}), so their standard deviation is 0")
    return mean.float().to(X.device), std.float().to(X.device)


class FashionMNISTData(MNISTLikeData):
    """Fashion-MNIST: 28 x 28 grey images of clothes in 10 classes (arguments: MNISTLikeData)."""

    name, title = "FashionMNIST", "Fashion-MNIST"
    labels = ["t-shirt", "trouser", "pullover", "dress", "coat",
              "sandal", "shirt", "sneaker", "bag", "ankle boot"]


class MNISTData(MNISTLikeData):
    """MNIST: 28 x 28 grey images of handwritten digits 0-9 (arguments: MNISTLikeData)."""

    name, title = "MNIST", "MNIST"
    labels = [str(d) for d in range(10)]


# --- small generated stand-ins, for tests and benchmarks --------------------------------------

def write_idx(path: str | os.PathLike, array) -> None:
    """Write a uint8 array as an IDX file (the format of the MNIST files); gzipped if the name
    ends in .gz."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    magic = 0x0800 + array.ndim
    f = gzip.open(path, "wb", compresslevel=6) if str(path).endswith(".gz") else open(path, "wb")
    with f:
        f.write(struct.pack(f">{1 + array.ndim}I", magic, *array.shape))
        f.write(array.tobytes())


def write_fake_mnist(root: str | os.PathLike, name: str = "FashionMNIST", num_train: int = 600,
                     num_val: int = 200, seed: int = 0, gz: bool = False) -> Path:
    """Write a small learnable stand-in for MNIST or Fashion-MNIST under root/NAME/raw/.

    Class c is a bright band at rows 2c+4..2c+6 over noise, so a LeNet learns it in an epoch or
    two. With `gz=True` only the .gz files are written (as downloaded, before unpacking).
    For tests and benchmarks on machines without the real files; returns the raw folder.
    """
    if name not in ("FashionMNIST", "MNIST"):
        raise ValueError(f"name must be 'FashionMNIST' or 'MNIST', got {name!r}")
    rng = np.random.default_rng(seed)
    raw = Path(root) / name / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    ext = ".gz" if gz else ""
    for split, n in (("train", num_train), ("t10k", num_val)):
        labels = rng.integers(0, 10, size=n, dtype=np.uint8)
        images = rng.integers(0, 100, size=(n, 28, 28), dtype=np.uint8)
        for c in range(10):
            images[labels == c, 2 * c + 4:2 * c + 7, 4:24] = 255
        write_idx(raw / f"{split}-images-idx3-ubyte{ext}", images)
        write_idx(raw / f"{split}-labels-idx1-ubyte{ext}", labels)
    return raw


def write_fake_fashion_mnist(root: str | os.PathLike, num_train: int = 600, num_val: int = 200,
                             seed: int = 0, gz: bool = False) -> Path:
    """`write_fake_mnist` for Fashion-MNIST (root/FashionMNIST/raw/)."""
    return write_fake_mnist(root, "FashionMNIST", num_train, num_val, seed, gz)
