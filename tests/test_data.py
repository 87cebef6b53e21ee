"""FashionMNISTData and friends, loaded from small IDX files through torchvision's code path."""

import gzip
import shutil

import numpy as np
import pytest
import torch

import d2lai
from d2lai.data import FASHION_MNIST_FILES, TensorLoader, write_fake_fashion_mnist, write_idx


def test_shapes_dtypes_range_and_labels(fashion_root):
    data = d2lai.FashionMNISTData(batchsize=32, root=fashion_root)
    X, y = data.train
    assert X.shape == (600, 1, 28, 28) and X.dtype == torch.float32
    assert y.shape == (600,) and y.dtype == torch.int64
    assert data.val[0].shape == (200, 1, 28, 28)
    assert float(X.min()) >= 0 and float(X.max()) == 1.0
    assert len(data.labels) == 10 and data.labels[9] == "ankle boot"
    assert data.text_labels([0, 9]) == ["t-shirt", "ankle boot"]
    # pixel values are the file's bytes / 255, label for label
    raw = np.fromfile(fashion_root / "FashionMNIST/raw/train-images-idx3-ubyte", np.uint8)[16:]
    labels = np.fromfile(fashion_root / "FashionMNIST/raw/train-labels-idx1-ubyte", np.uint8)[8:]
    assert torch.equal(X[:, 0], torch.from_numpy(raw.reshape(600, 28, 28)).float() / 255)
    assert torch.equal(y, torch.from_numpy(labels).long())


def test_flatten_resize_and_subsets(fashion_root):
    flat = d2lai.FashionMNISTData(root=fashion_root, flatten=True, num_train=100, num_val=50)
    assert flat.train[0].shape == (100, 784) and flat.val[0].shape == (50, 784)
    full = d2lai.FashionMNISTData(root=fashion_root)
    assert torch.equal(flat.train[0], full.train[0][:100].flatten(1))
    big = d2lai.FashionMNISTData(root=fashion_root, resize=(32, 40), num_train=10, num_val=10)
    assert big.train[0].shape == (10, 1, 32, 40)
    assert 0 <= float(big.train[0].min()) and float(big.train[0].max()) <= 1


def test_batch_size_alias_and_default(fashion_root):
    assert d2lai.FashionMNISTData(root=fashion_root).batchsize == 64
    assert d2lai.FashionMNISTData(root=fashion_root, batch_size=100).batchsize == 100
    with pytest.raises(ValueError, match="batchsize or batch_size"):
        d2lai.FashionMNISTData(root=fashion_root, batchsize=10, batch_size=20)


def test_batch_counts_and_reshuffling(fashion_root):
    data = d2lai.FashionMNISTData(batchsize=64, root=fashion_root)
    train, val = d2lai.train_dataloader(data), d2lai.val_dataloader(data)
    assert len(train) == 10 and len(val) == 4  # 600 = 9*64 + 24, 200 = 3*64 + 8
    assert [len(b[1]) for b in val] == [64, 64, 64, 8]
    first = [b[1] for b in train]
    second = [b[1] for b in d2lai.get_dataloader(data, train=True)]
    assert sum(len(b) for b in first) == 600
    assert not all(torch.equal(a, b) for a, b in zip(first, second, strict=True))
    # every sample once per epoch: the shuffled batches hold the labels of the whole set
    assert torch.equal(torch.cat(first).sort().values, data.train[1].sort().values)
    v1 = [b[0] for b in data.val_dataloader()]
    v2 = [b[0] for b in data.val_dataloader()]
    assert all(torch.equal(a, b) for a, b in zip(v1, v2, strict=True))
    assert torch.equal(torch.cat(v1), data.val[0])


def test_train_loader_merges_a_final_batch_of_one():
    X, y = torch.randn(65, 3), torch.arange(65)
    train = TensorLoader((X, y), batchsize=32, shuffle=True)
    assert [len(b[1]) for b in train] == [32, 33]
    val = TensorLoader((X, y), batchsize=32, merge_single=False)
    assert [len(b[1]) for b in val] == [32, 32, 1]


def test_batches_are_image_label_pairs(fashion_root):
    data = d2lai.FashionMNISTData(batchsize=16, root=fashion_root)
    X, y = next(iter(data.train_dataloader()))
    rows = [int((data.train[0][:, 0] == X[i, 0]).all(2).all(1).nonzero()[0]) for i in range(16)]
    assert torch.equal(y, data.train[1][rows])


@pytest.mark.parametrize("kwargs, name", [
    ({"batchsize": 0}, "batchsize"), ({"batchsize": -3}, "batchsize"),
    ({"num_train": 0}, "num_train"), ({"num_val": -1}, "num_val"),
    ({"resize": (0, 28)}, "resize"), ({"resize": 28}, "resize"),
])
def test_bad_arguments_name_the_argument(fashion_root, kwargs, name):
    with pytest.raises(ValueError, match=name):
        d2lai.FashionMNISTData(root=fashion_root, **kwargs)


def test_batchsize_of_wrong_type_is_a_type_error(fashion_root):
    with pytest.raises(TypeError, match="batchsize"):
        d2lai.FashionMNISTData(root=fashion_root, batchsize=12.5)


def test_missing_files_name_folder_and_files(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        d2lai.FashionMNISTData(root=tmp_path, download=False)
    msg = str(err.value)
    assert str(tmp_path / "FashionMNIST" / "raw") in msg
    for name, _, _ in FASHION_MNIST_FILES:
        assert name in msg


def test_failed_download_gives_the_same_clear_error(tmp_path, monkeypatch):
    from urllib.error import URLError

    def offline(*args, **kwargs):
        raise URLError("no network")

    monkeypatch.setattr("torchvision.datasets.mnist.download_and_extract_archive", offline)
    with pytest.raises(FileNotFoundError, match="download failed") as err:
        d2lai.FashionMNISTData(root=tmp_path)
    assert "t10k-labels-idx1-ubyte" in str(err.value) and "no network" in str(err.value)


def test_gz_files_are_unpacked_by_torchvision_without_network(tmp_path, monkeypatch):
    """The official .gz files, found by md5, are unpacked in place: no network needed."""
    from torchvision.datasets import FashionMNIST

    src = write_fake_fashion_mnist(tmp_path / "src", num_train=30, num_val=20)
    raw = tmp_path / "root" / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for name, _, _ in FASHION_MNIST_FILES:
        with open(src / name, "rb") as f, gzip.open(raw / f"{name}.gz", "wb") as g:
            shutil.copyfileobj(f, g)
    md5 = {f"{name}.gz": __import__("hashlib").md5((raw / f"{name}.gz").read_bytes()).hexdigest()
           for name, _, _ in FASHION_MNIST_FILES}
    monkeypatch.setattr(FashionMNIST, "resources", [(n, md5[n]) for n, _ in FashionMNIST.resources])
    monkeypatch.setattr(FashionMNIST, "mirrors", ["http://invalid.invalid/"])
    data = d2lai.FashionMNISTData(root=tmp_path / "root")
    assert data.train[0].shape == (30, 1, 28, 28) and data.val[0].shape == (20, 1, 28, 28)


def test_default_root_comes_from_the_environment(fashion_root, monkeypatch):
    monkeypatch.setenv("D2LAI_DATA", str(fashion_root))
    data = d2lai.FashionMNISTData(num_train=5, num_val=5)
    assert data.root == fashion_root


def test_synthetic_regression_data():
    d2lai.seed(0)
    data = d2lai.SyntheticRegressionData(w=[2.0, -3.4], b=4.2, noise=0.0, num_train=100,
                                         num_val=20, batchsize=8)
    X, y = data.train
    assert X.shape == (100, 2) and y.shape == (100, 1) and data.val[0].shape == (20, 2)
    assert torch.allclose(y, X @ torch.tensor([[2.0], [-3.4]]) + 4.2, atol=1e-5)
    assert len(data.train_dataloader()) == 13 and len(data.val_dataloader()) == 3
    with pytest.raises(ValueError, match="num_train"):
        d2lai.SyntheticRegressionData(w=[1.0], b=0, num_train=0)


def test_write_idx_round_trip(tmp_path):
    from torchvision.datasets.mnist import read_sn3_pascalvincent_tensor

    a = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / "a", a)
    assert torch.equal(read_sn3_pascalvincent_tensor(str(tmp_path / "a")), torch.from_numpy(a))
