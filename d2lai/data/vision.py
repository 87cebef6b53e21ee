"""MNIST-format data sets: four IDX files in root/NAME/raw/, kept whole as uint8 tensors."""

from __future__ import annotations

import errno
import gzip
import math
import os
import secrets
import shutil
import struct
import zlib
from functools import partial
from pathlib import Path
from types import SimpleNamespace
from typing import NamedTuple

import numpy as np
import torch

from ..checks import flag, is_int, positive_int
from .base import AbstractData, TensorLoader, batchsize_of, default_root

__all__ = ["MNISTLikeData", "FashionMNISTData", "MNISTData", "IDX_FILES", "FASHION_MNIST_FILES"]


# The four files torchvision reads, as (unpacked name, IDX magic number, per-item shape).
IDX_FILES = (
    ("train-images-idx3-ubyte", 2051, (28, 28)),
    ("train-labels-idx1-ubyte", 2049, ()),
    ("t10k-images-idx3-ubyte", 2051, (28, 28)),
    ("t10k-labels-idx1-ubyte", 2049, ()),
)
FASHION_MNIST_FILES = IDX_FILES  # the same four names for MNIST and Fashion-MNIST


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


def _read_unpacked(path: Path, magic: int, item_shape: tuple[int, ...]) -> torch.Tensor:
    """`_read_idx`; a bad file unpacked from a .gz beside it is named with that .gz, which
    would only unpack to it again."""
    try:
        return _read_idx(path, magic, item_shape)
    except ValueError as err:
        gz = path.with_name(path.name + ".gz")
        if path.suffix == ".gz" or not gz.is_file():
            raise
        raise ValueError(f"{err} It was unpacked from {gz}: delete both, and copy the "
                         f"official {gz.name} again.") from None


def _unpack(gz: Path, dest: Path) -> None:
    """Unpack `gz` into `dest` through a temporary file renamed into place: no reader ever
    sees half a file, and a failure leaves no partial file behind."""
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    try:
        with gzip.open(gz, "rb") as src, open(tmp, "xb") as out:
            shutil.copyfileobj(src, out, 1 << 20)
        if tmp.stat().st_size == 0:
            raise ValueError(f"{gz} is empty: it unpacks to nothing. Delete it and copy the "
                             f"official file again.")
        os.replace(tmp, dest)
    except (gzip.BadGzipFile, EOFError, zlib.error) as err:
        raise ValueError(f"{gz} is not a whole gzip file ({err}). Delete it and copy the "
                         f"official file again.") from None
    except OSError as err:  # a full disk, a read-only folder: said with the files concerned
        what = "no space left on the device" if err.errno == errno.ENOSPC else \
            f"could not write ({err.strerror or err})"
        raise type(err)(err.errno, f"{what} while unpacking {gz} to {dest}: free some space "
                                   f"or make the folder writable, or pass root= (or set "
                                   f"D2LAI_DATA) to a folder with room") from None
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


class Split(NamedTuple):
    """A split of images and labels, `(X, y)`; by the Julia package's names `.features`
    (uint8 N x 28 x 28, as stored) and `.targets`."""

    features: torch.Tensor
    targets: torch.Tensor


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
        self.batchsize = batchsize_of(batchsize, batch_size, 64)
        self.num_train = positive_int("num_train", num_train, allow_none=True)
        self.num_val = positive_int("num_val", num_val, allow_none=True)
        self.val_split = positive_int("val_split", val_split, allow_none=True)
        if resize is not None:
            if (not isinstance(resize, (tuple, list)) or len(resize) != 2
                    or not all(is_int(s) and s > 0 for s in resize)):
                raise ValueError(f"resize must be None or (height, width) of positive integers, "
                                 f"got {resize!r}")
            resize = tuple(resize)
        self.resize = resize
        self.flatten = flag("flatten", flatten)
        self.normalize = flag("normalize", normalize)
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
            self.test = Split(Xte, yte)
        else:
            train, val = (Xtr, ytr), (Xte, yte)
        for arg, asked, part, there in (("num_train", self.num_train, "training part", train),
                                        ("num_val", self.num_val, "validation part", val)):
            if asked is not None and asked > len(there[0]):
                which = " (the test set)" if arg == "num_val" and self.val_split is None else ""
                raise ValueError(f"{arg}={asked}, but the {part}{which} has {len(there[0])} "
                                 f"images: ask for at most {len(there[0])} (or None for all)")
        self.train = Split(train[0][:self.num_train], train[1][:self.num_train])
        self.val = Split(val[0][:self.num_val], val[1][:self.num_val])
        if self.val_split is None:
            self.test = self.val  # validation is the test set
        self.mean = self.std = None
        if self.normalize:
            self.mean, self.std = _pixel_mean_std(self.train[0], f"{type(self).__name__}.train")

    def _read(self, download: bool):
        """Locate (fetch if needed), read and check the four files: two (images, labels)."""
        paths = _locate(self.root, self.name, self.title, download)
        tensors = {n: _read_unpacked(paths[n], magic, shape) for n, magic, shape in IDX_FILES}
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

    def get_dataloader(self, train: bool = True, flatten: bool | None = None) -> TensorLoader:
        """The batches of the training set (reshuffled each pass) or of the validation set;
        `flatten` overrides the data's own for these batches, as the Julia package's
        `get_dataloader(data; train, flatten)`."""
        loader = super().get_dataloader(train)
        if flatten is not None:
            loader.transform = partial(self.transform, flatten=flag("flatten", flatten))
        return loader

    def transform(self, X: torch.Tensor, flatten: bool | None = None) -> torch.Tensor:
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
        return X.flatten(1) if (self.flatten if flatten is None else flatten) else X

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
