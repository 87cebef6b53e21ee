"""The edition's data: `DataModule` and the data sets its chapters train on, each made by
d2lai's own data module over the same files (synthetic regression data, Fashion-MNIST, The Time
Machine, English-French pairs), the function-style loaders of its first chapters, and the
book's data files through d2lai's one `download` (SHA-1 checked, cached in the data folder).

The data folder is `root=`, else `D2LAI_DATA`, else `~/.cache/d2lai`; the data sets are held
in memory as tensors and served by d2lai's `TensorLoader`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch

from .. import data as _data
from ..checks import is_int, positive_int
from ..data import download as _download
from ..data import download_extract as _download_extract
from ..data import extract as _extract
from ..data import text as _text
from ..data.download import DATA_HUB, DATA_URL
from ..data.text import Vocab
from .models import HyperParameters
from .plotting import show_images

__all__ = ["DataModule", "SyntheticRegressionData", "FashionMNIST", "TimeMachine", "Vocab",
           "MTFraEng", "load_array", "synthetic_data", "load_data_fashion_mnist",
           "get_fashion_mnist_labels", "DATA_URL", "DATA_HUB", "download", "extract",
           "download_extract"]

# DATA_HUB is d2lai's own table: a name the book adds to it is one `download` can fetch.


def _text_as_object(value):
    """A pandas frame with its text columns as `object`, as pandas before 3 reads them (the
    edition's `features.dtypes != 'object'` takes the rest for numbers); anything else as it is.

    Only pandas 3's inferred text dtype (`str`, missing values NaN) is converted; a column read
    as `"string"` (missing values `pd.NA`) was asked for and is kept. pandas itself is untouched.
    """
    pd = sys.modules.get("pandas")  # a frame exists only once pandas is imported
    if pd is None or not isinstance(value, pd.DataFrame):
        return value
    text = [c for c, t in value.dtypes.items()
            if isinstance(t, pd.StringDtype) and t.na_value is not pd.NA]
    return value.astype(dict.fromkeys(text, object)) if text else value


class DataModule(HyperParameters, _data.AbstractData):
    """The edition's base class of data: subclasses define `get_dataloader(train)`, usually with
    `get_tensorloader`. `root` is d2lai's data folder (`D2LAI_DATA`, else `~/.cache/d2lai`).
    A pandas frame set as an attribute keeps its text columns as `object`, as the edition's
    pandas read them (see `_text_as_object`)."""

    def __init__(self, root=None, num_workers=4):
        self.save_hyperparameters()
        self.root = str(_data.default_root()) if root is None else root

    def __setattr__(self, name, value):
        super().__setattr__(name, _text_as_object(value))

    def get_dataloader(self, train):
        raise NotImplementedError(f"{type(self).__name__} must define get_dataloader(train)")

    def get_tensorloader(self, tensors, train, indices=slice(0, None)):
        """Batches of `self.batch_size` rows of `tensors[k][indices]`, shuffled when `train`."""
        batch_size = getattr(self, "batch_size", None)
        if not is_int(batch_size) or batch_size <= 0:
            raise ValueError(f"{type(self).__name__}.get_tensorloader needs self.batch_size, a "
                             f"positive integer (save it with save_hyperparameters), got "
                             f"{batch_size!r}")
        tensors = tuple(a[indices] for a in tensors)
        return _data.TensorLoader(tensors, batch_size, shuffle=train, merge_single=train)


class SyntheticRegressionData(DataModule):
    """y = X w + b + noise, X standard normal: `num_train` samples to train on, `num_val` to
    validate on (made by d2lai's `SyntheticRegressionData`)."""

    def __init__(self, w, b, noise=0.01, num_train=1000, num_val=1000, batch_size=32):
        super().__init__()
        self.save_hyperparameters()
        made = _data.SyntheticRegressionData(w, b, noise, num_train, num_val,
                                             batch_size=batch_size)
        self.X, self.y = made.X, made.y

    def get_dataloader(self, train):
        i = slice(0, self.num_train) if train else slice(self.num_train, None)
        return self.get_tensorloader((self.X, self.y), train, i)


class _Images:
    """One split of `FashionMNIST` as the edition's torchvision data set: `len`, and `[i]` giving
    (float image 1 x H x W in [0, 1], int label)."""

    def __init__(self, data: _data.FashionMNISTData, split: str):
        self._data, self._split = data, split

    def __len__(self) -> int:
        return len(getattr(self._data, self._split)[1])

    def __getitem__(self, i):
        X, y = getattr(self._data, self._split)
        if not is_int(i):
            raise TypeError(f"index images with an integer, got {type(i).__name__}")
        i = range(len(y))[i]  # negative indices too; IndexError when out of range
        return self._data.transform(X[i:i + 1])[0], int(y[i])

    def __repr__(self) -> str:
        return f"FashionMNIST {self._split}: {len(self)} images"


class FashionMNIST(DataModule):
    """Fashion-MNIST as the edition's data module, read by d2lai's `FashionMNISTData` from
    `root/FashionMNIST/raw/` (`root`: `D2LAI_DATA`, else `~/.cache/d2lai`). Batches are slices of
    the whole set in memory, made float and resized batch by batch."""

    def __init__(self, batch_size=64, resize=(28, 28), root=None):
        super().__init__(root=root)
        self.save_hyperparameters(ignore=["root"])
        if is_int(resize):
            resize = (int(resize), int(resize))
        size = None if isinstance(resize, (tuple, list)) and tuple(resize) == (28, 28) else resize
        self._data = _data.FashionMNISTData(batch_size=batch_size, resize=size, root=self.root)
        self.root = self._data.root
        self.train, self.val = _Images(self._data, "train"), _Images(self._data, "val")

    @property
    def num_classes(self) -> int:
        return self._data.num_classes

    def text_labels(self, indices) -> list[str]:
        """The class names of label indices."""
        return self._data.text_labels(indices)

    def get_dataloader(self, train):
        return self._data.get_dataloader(train)

    def to(self, device) -> FashionMNIST:
        self._data.to(device)
        return self

    def visualize(self, batch, nrows=1, ncols=8, labels=[]):  # noqa: B006 (the edition's)
        """Show the first `nrows * ncols` images of `batch`, titled by `labels` or class names."""
        X, y = batch
        if not labels:
            labels = self.text_labels(y)
        show_images(X.squeeze(1), nrows, ncols, titles=labels)



# --- text: the recurrent and attention chapters ---------------------------------------------------

class TimeMachine(DataModule):
    """The Time Machine as characters in windows of `num_steps`, each with the next characters
    as targets: the first `num_train` windows train, the next `num_val` validate. Made by
    d2lai's `TimeMachine` from `timemachine.txt` in the data folder (downloaded if missing)."""

    def __init__(self, batch_size, num_steps, num_train=10000, num_val=5000, root=None):
        super().__init__(root=root)
        self.save_hyperparameters(ignore=["root"])
        made = _data.TimeMachine(batch_size=batch_size, num_steps=num_steps,
                                 num_train=num_train, num_val=num_val, root=self.root)
        self.vocab, self.X, self.Y = made.vocab, made.X, made.Y  # X, Y: (windows, num_steps)

    def _download(self) -> str:
        """The book's text, as one string."""
        return _text._read_text(_download("time_machine", root=self.root))

    def _preprocess(self, text: str) -> str:
        """Every run of non-letters becomes one space; lower case."""
        return _data.TimeMachine._preprocess(text)

    def _tokenize(self, text: str) -> list[str]:
        """Character tokens."""
        return _data.TimeMachine._tokenize(text)

    def build(self, raw_text: str, vocab=None):
        """(corpus, vocab): the text's character indices, in a new vocabulary or `vocab`."""
        return _data.TimeMachine.build(raw_text, vocab)

    @property
    def num_classes(self) -> int:
        return len(self.vocab)

    def get_dataloader(self, train):
        idx = slice(0, self.num_train) if train else slice(
            self.num_train, self.num_train + self.num_val)
        return self.get_tensorloader([self.X, self.Y], train, idx)


class MTFraEng(DataModule):
    """English-French sentence pairs as (source, decoder input, source valid length, label)
    arrays of `num_steps` tokens (padded with '<pad>', ended by '<eos>', targets started by
    '<bos>'): the first `num_train` pairs train, the next `num_val` validate. Made by d2lai's
    `MTFraEng` from `fra-eng.zip` in the data folder (downloaded if missing)."""

    def __init__(self, batch_size, num_steps=9, num_train=512, num_val=128, root=None):
        super().__init__(root=root)
        self.save_hyperparameters(ignore=["root"])
        self._made = _data.MTFraEng(batch_size=batch_size, num_steps=num_steps,
                                    num_train=num_train, num_val=num_val, root=self.root)
        n = num_train + num_val  # the vocabularies are the whole file's; the pairs used, these
        self.arrays = tuple(a[:n] for a in self._made.arrays)  # (N, T), (N, T), (N,), (N, T)
        self.src_vocab, self.tgt_vocab = self._made.src_vocab, self._made.tgt_vocab

    def _download(self) -> str:
        """The pairs file `fra-eng/fra.txt` (unpacked from the zip once), as one string."""
        return _text._read_text(Path(_download_extract("fra-eng", root=self.root)) / "fra.txt")

    def _preprocess(self, text: str) -> str:
        """Non-breaking spaces as spaces, lower case, a space before , . ! ? that lack one."""
        return _data.MTFraEng._preprocess(text)

    def _tokenize(self, text: str, max_examples=None):
        """(source, target) token lists, each ended by '<eos>', from 'english<TAB>french'
        lines."""
        return _data.MTFraEng._tokenize(text, max_examples)

    def build(self, src_sentences, tgt_sentences):
        """The four arrays for new sentence pairs, in this data's vocabularies."""
        return self._made.build(src_sentences, tgt_sentences)

    @property
    def num_classes(self) -> int:
        return len(self.tgt_vocab)

    def get_dataloader(self, train):
        idx = slice(0, self.num_train) if train else slice(self.num_train, None)
        return self.get_tensorloader(self.arrays, train, idx)


# --- the function-style loaders of the first chapters --------------------------------------------

def load_array(data_arrays, batch_size: int, is_train: bool = True) -> _data.TensorLoader:
    """Minibatches of `batch_size` rows of the tensors `data_arrays`, reshuffled every pass
    when `is_train`; the last batch may be smaller."""
    return _data.TensorLoader(tuple(data_arrays), batch_size, shuffle=is_train,
                              merge_single=False)


def synthetic_data(w: torch.Tensor, b, num_examples: int):
    """`X` standard normal (num_examples, len(w)) and `y = X w + b + noise` (num_examples, 1),
    the noise normal with standard deviation 0.01."""
    positive_int("num_examples", num_examples)
    X = torch.normal(0, 1, (num_examples, len(w)))
    y = torch.matmul(X, w) + b
    y = y + torch.normal(0, 0.01, y.shape)
    return X, y.reshape((-1, 1))


# --- Fashion-MNIST -------------------------------------------------------------------------------

def load_data_fashion_mnist(batch_size: int, resize=None):
    """(training batches, reshuffled every pass; test batches in order) of Fashion-MNIST:
    float images (N, 1, H, W) in [0, 1], int64 labels. Read from d2lai's data folder
    (`D2LAI_DATA`, else `~/.cache/d2lai`); `resize` an int (square) or (height, width)."""
    if is_int(resize):
        resize = (int(resize), int(resize))
    data = _data.FashionMNISTData(batch_size=batch_size, resize=resize or None)
    return data.get_dataloader(True), data.get_dataloader(False)


def get_fashion_mnist_labels(labels) -> list[str]:
    """The Fashion-MNIST class names of label indices."""
    names = _data.FashionMNISTData.labels
    return [names[int(i)] for i in labels]


# --- the book's data files -----------------------------------------------------------------------

def download(url: str, folder: str | os.PathLike | None = None, sha1_hash: str | None = None
             ) -> str:
    """The local path of a data file: `url` (or a name in `DATA_HUB`) in `folder` (default:
    d2lai's data folder), downloaded and SHA-1 checked first if it is not there yet."""
    return str(_download(url, sha1_hash, root=folder))


def extract(filename: str | os.PathLike, folder: str | os.PathLike | None = None) -> str:
    """Unpack a zip or tar file into `folder` (default: beside it); the folder."""
    return str(_extract(filename, folder))


def download_extract(name: str, folder: str | None = None) -> str:
    """Download a zip or tar file of `DATA_HUB` and unpack it beside itself; the folder it
    holds (`folder`, else the archive's name without extension)."""
    return str(_download_extract(name, folder))

