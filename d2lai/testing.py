"""Small generated stand-ins for the book's data sets, in their real file layouts: for tests,
benchmarks and quick runs on machines without the real files."""

from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path

import numpy as np

__all__ = ["write_idx", "write_fake_mnist", "write_fake_fashion_mnist"]


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
