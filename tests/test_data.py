"""Data modules and their loader, on small IDX files written through the real code path."""

import gzip
import hashlib
import io
import types

import numpy as np
import pytest
import torch
from torchvision.transforms.functional import resize as tv_resize

import d2lai
from d2lai.data import (
    FASHION_MNIST_FILES,
    AbstractData,
    FashionMNISTData,
    MNISTData,
    TensorLoader,
)
from d2lai.testing import write_fake_fashion_mnist, write_fake_mnist, write_idx

NAMES = [name for name, _, _ in FASHION_MNIST_FILES]


def _file(root, name, folder="FashionMNIST"):
    """The uint8 contents of an unpacked IDX file, read independently of d2lai."""
    skip = 16 if "images" in name else 8
    return torch.from_numpy(np.fromfile(root / folder / "raw" / name, np.uint8)[skip:].copy())


# --- stored form and transform ----------------------------------------------------------------

def test_images_are_stored_as_uint8_and_transformed_per_batch(fashion_root):
    data = d2lai.FashionMNISTData(batchsize=32, root=fashion_root)
    X, y = data.train
    assert X.shape == (600, 28, 28) and X.dtype == torch.uint8
    assert y.shape == (600,) and y.dtype == torch.int64
    assert data.val[0].shape == (200, 28, 28) and data.val[0].dtype == torch.uint8
    assert torch.equal(X.flatten(), _file(fashion_root, NAMES[0]))
    assert torch.equal(y, _file(fashion_root, NAMES[1]).long())
    Z = data.transform(X)
    assert Z.shape == (600, 1, 28, 28) and Z.dtype == torch.float32
    assert torch.equal(Z[:, 0], X.float() / 255)  # the file's bytes / 255, as before
    assert float(Z.min()) >= 0 and float(Z.max()) == 1.0
    assert len(data.labels) == 10 and data.labels[9] == "ankle boot" and data.num_classes == 10
    assert data.text_labels([0, 9]) == ["t-shirt", "ankle boot"]


def test_loader_batches_are_transformed_image_label_pairs(fashion_root):
    data = d2lai.FashionMNISTData(batchsize=16, root=fashion_root)
    X, y = next(iter(data.train_dataloader()))
    assert X.shape == (16, 1, 28, 28) and X.dtype == torch.float32 and y.dtype == torch.int64
    full = data.transform(data.train[0])
    rows = [int((full[:, 0] == X[i, 0]).all(2).all(1).nonzero()[0]) for i in range(16)]
    assert torch.equal(y, data.train[1][rows])
    assert torch.equal(X, full[rows])


def test_transform_refuses_what_is_not_stored_images(fashion_root):
    data = d2lai.FashionMNISTData(root=fashion_root, num_train=8, num_val=8)
    with pytest.raises(TypeError, match=r"uint8 of shape \(N, 28, 28\), got torch.float32"):
        data.transform(data.transform(data.train[0]))


def test_flatten_resize_and_subsets(fashion_root):
    flat = d2lai.FashionMNISTData(root=fashion_root, flatten=True, num_train=100, num_val=50)
    assert flat.train[0].shape == (100, 28, 28) and flat.val[0].shape == (50, 28, 28)
    full = d2lai.FashionMNISTData(root=fashion_root)
    assert torch.equal(flat.train[0], full.train[0][:100])
    expected = full.transform(full.train[0])[:100].flatten(1)
    assert torch.equal(flat.transform(flat.train[0]), expected)
    assert next(iter(flat.val_dataloader()))[0].shape == (50, 784)
    big = d2lai.FashionMNISTData(root=fashion_root, resize=(32, 40), num_train=10, num_val=10)
    assert big.train[0].shape == (10, 28, 28) and big.train[0].dtype == torch.uint8
    batch = next(iter(big.val_dataloader()))[0]
    assert batch.shape == (10, 1, 32, 40)
    # per batch as the whole set was resized before: torchvision's antialiased resize, clamped
    whole = tv_resize(big.val[0].unsqueeze(1).float() / 255, [32, 40], antialias=True).clamp(0, 1)
    assert torch.allclose(batch, whole, atol=1e-6)
    assert 0 <= float(batch.min()) and float(batch.max()) <= 1


def test_batch_size_alias_default_and_args(fashion_root):
    assert d2lai.FashionMNISTData(root=fashion_root).batchsize == 64
    assert d2lai.FashionMNISTData(root=fashion_root, batch_size=100).batchsize == 100
    with pytest.raises(ValueError, match="batchsize or batch_size"):
        d2lai.FashionMNISTData(root=fashion_root, batchsize=10, batch_size=20)
    data = d2lai.FashionMNISTData(32, [28, 28], True, fashion_root, 100, 50, normalize=True,
                                  val_split=60)
    assert data.args == types.SimpleNamespace(batchsize=32, resize=(28, 28), flatten=True,
                                              normalize=True, val_split=60, num_train=100,
                                              num_val=50)


def test_batch_counts_and_reshuffling(fashion_root):
    data = d2lai.FashionMNISTData(batchsize=64, root=fashion_root)
    train, val = d2lai.train_dataloader(data), d2lai.val_dataloader(data)
    assert len(train) == 10 and len(val) == 4  # 600 = 9*64 + 24, 200 = 3*64 + 8
    assert [len(b[1]) for b in val] == [64, 64, 64, 8]
    first = [b[1] for b in train]
    second = [b[1] for b in d2lai.get_dataloader(data)]  # train=True by default, as in Julia
    assert sum(len(b) for b in first) == 600
    assert not all(torch.equal(a, b) for a, b in zip(first, second, strict=True))
    # every sample once per epoch: the shuffled batches hold the labels of the whole set
    assert torch.equal(torch.cat(first).sort().values, data.train[1].sort().values)
    v1 = [b[0] for b in data.val_dataloader()]
    v2 = [b[0] for b in data.get_dataloader(train=False)]
    assert all(torch.equal(a, b) for a, b in zip(v1, v2, strict=True))
    assert torch.equal(torch.cat(v1), data.transform(data.val[0]))


# --- normalize, val_split, test ----------------------------------------------------------------

def test_normalize_uses_the_kept_training_images(fashion_root):
    data = d2lai.FashionMNISTData(root=fashion_root, normalize=True, val_split=100, num_train=300)
    kept = _file(fashion_root, NAMES[0]).reshape(600, 28, 28)[100:400].double() / 255
    assert float(data.mean) == pytest.approx(float(kept.mean()), rel=1e-6)
    assert float(data.std) == pytest.approx(float(kept.std()), rel=1e-6)
    Z = data.transform(data.train[0]).double()
    assert abs(float(Z.mean())) < 1e-5 and float(Z.std()) == pytest.approx(1, abs=1e-5)
    ref = (data.val[0].unsqueeze(1).double() / 255 - kept.mean()) / kept.std()
    assert torch.allclose(data.transform(data.val[0]).double(), ref, atol=1e-5)
    plain = d2lai.FashionMNISTData(root=fashion_root, num_train=10, num_val=10)
    assert plain.mean is None and plain.std is None


def test_normalize_with_resize_and_flatten(fashion_root):
    data = d2lai.FashionMNISTData(root=fashion_root, normalize=True, resize=(14, 14),
                                  flatten=True, num_val=20)
    X = data.transform(data.val[0])
    resized = tv_resize(data.val[0].unsqueeze(1).float() / 255, [14, 14], antialias=True)
    assert X.shape == (20, 196)
    assert torch.allclose(X, ((resized.clamp(0, 1) - data.mean) / data.std).flatten(1), atol=1e-5)


def test_normalize_refuses_constant_images(tmp_path):
    raw = write_fake_fashion_mnist(tmp_path, num_train=20, num_val=10)
    write_idx(raw / NAMES[0], np.full((20, 28, 28), 7, np.uint8))
    with pytest.raises(ValueError, match="standard deviation is 0"):
        d2lai.FashionMNISTData(root=tmp_path, normalize=True)


def test_val_split_takes_the_first_training_images(fashion_root):
    data = d2lai.FashionMNISTData(root=fashion_root, val_split=100, batchsize=50)
    images = _file(fashion_root, NAMES[0]).reshape(600, 28, 28)
    labels = _file(fashion_root, NAMES[1]).long()
    assert torch.equal(data.val[0], images[:100]) and torch.equal(data.val[1], labels[:100])
    assert torch.equal(data.train[0], images[100:]) and torch.equal(data.train[1], labels[100:])
    test_images = _file(fashion_root, NAMES[2]).reshape(200, 28, 28)
    assert torch.equal(data.test[0], test_images)
    batches = list(data.test_dataloader())
    assert [len(b[1]) for b in batches] == [50] * 4
    assert torch.equal(torch.cat([b[0] for b in batches]), data.transform(test_images))
    cut = d2lai.FashionMNISTData(root=fashion_root, val_split=100, num_train=30, num_val=20)
    assert torch.equal(cut.train[0], images[100:130]) and torch.equal(cut.val[0], images[:20])
    assert len(cut.test[0]) == 200  # num_val cuts the validation part only


def test_without_val_split_validation_is_the_test_set(fashion_root):
    data = d2lai.FashionMNISTData(root=fashion_root, num_val=50)
    assert data.test is data.val and len(data.val[0]) == 50
    assert torch.equal(data.val[0], _file(fashion_root, NAMES[2]).reshape(200, 28, 28)[:50])
    assert len(data.test_dataloader()) == 1


@pytest.mark.parametrize("kwargs, error, match", [
    ({"batchsize": 0}, ValueError, "batchsize"), ({"batchsize": -3}, ValueError, "batchsize"),
    ({"batchsize": 12.5}, TypeError, "batchsize"),
    ({"num_train": 0}, ValueError, "num_train"), ({"num_val": -1}, ValueError, "num_val"),
    ({"resize": (0, 28)}, ValueError, "resize"), ({"resize": 28}, ValueError, "resize"),
    ({"resize": (True, 28)}, ValueError, "resize"),
    ({"val_split": 0}, ValueError, "val_split must be a positive integer, got 0"),
    ({"val_split": -5}, ValueError, "val_split"), ({"val_split": True}, TypeError, "val_split"),
    ({"val_split": 10.0}, TypeError, "val_split"),
    ({"val_split": 600}, ValueError, r"val_split must be smaller than the number of training "
                                     r"images \(600\).*got 600"),
    ({"val_split": 1000}, ValueError, r"\(600\).*got 1000"),
    ({"normalize": "yes"}, TypeError, "normalize must be True or False"),
    ({"flatten": 1}, TypeError, "flatten must be True or False"),
])
def test_bad_arguments_name_the_argument(fashion_root, kwargs, error, match):
    with pytest.raises(error, match=match):
        d2lai.FashionMNISTData(root=fashion_root, **kwargs)


# --- MNIST ------------------------------------------------------------------------------------

def test_mnist_reads_its_own_folder_with_digit_labels(tmp_path):
    write_fake_mnist(tmp_path, "MNIST", num_train=40, num_val=30, seed=3, gz=True)
    data = MNISTData(root=tmp_path, batchsize=8, val_split=10, normalize=True)
    assert isinstance(data, d2lai.data.MNISTLikeData) and data.root == tmp_path
    assert data.labels == [str(d) for d in range(10)] and data.num_classes == 10
    assert data.text_labels(torch.tensor([3, 0])) == ["3", "0"]
    assert data.train[0].shape == (30, 28, 28) and data.test[0].shape == (30, 28, 28)
    assert torch.equal(data.val[0].flatten(), _file(tmp_path, NAMES[0], "MNIST")[:10 * 784])
    assert (tmp_path / "MNIST" / "raw" / NAMES[3]).is_file()  # unpacked from the .gz
    assert next(iter(data.train_dataloader()))[0].shape == (8, 1, 28, 28)
    with pytest.raises(FileNotFoundError, match="Fashion-MNIST not found") as err:
        FashionMNISTData(root=tmp_path, download=False)
    assert str(tmp_path / "FashionMNIST" / "raw") in str(err.value)


def test_mnist_errors_name_mnist_files(tmp_path):
    raw = write_fake_mnist(tmp_path, "MNIST", num_train=20, num_val=10)
    write_idx(raw / NAMES[3], np.full(10, 10, np.uint8))
    with pytest.raises(ValueError, match=r"MNIST/raw/t10k-labels-idx1-ubyte is corrupt: labels "
                                         r"must lie in 0..9, found 10..10"):
        MNISTData(root=tmp_path)
    with pytest.raises(FileNotFoundError, match=r"MNIST not found in .*MNIST/raw"):
        MNISTData(root=tmp_path / "elsewhere", download=False)


def test_write_fake_mnist_refuses_other_names(tmp_path):
    with pytest.raises(ValueError, match="'FashionMNIST' or 'MNIST'"):
        write_fake_mnist(tmp_path, "KMNIST")


# --- files: unpacking, downloading, what goes wrong ------------------------------------------

def test_gz_files_are_unpacked_in_place_without_network(tmp_path, monkeypatch):
    """Any .gz files there are unpacked (the generated ones match no official md5 sum)."""
    def no_network(*args, **kwargs):
        raise AssertionError("no download expected")

    monkeypatch.setattr("urllib.request.urlopen", no_network)
    src = write_fake_fashion_mnist(tmp_path / "src", num_train=30, num_val=20)
    raw = write_fake_fashion_mnist(tmp_path / "root", num_train=30, num_val=20, gz=True)
    assert sorted(p.name for p in raw.iterdir()) == sorted(f"{n}.gz" for n in NAMES)
    data = d2lai.FashionMNISTData(root=tmp_path / "root", download=False)
    assert data.train[0].shape == (30, 28, 28) and data.val[0].shape == (20, 28, 28)
    for name in NAMES:
        assert (raw / name).read_bytes() == (src / name).read_bytes()
    assert not [p for p in raw.iterdir() if p.name.endswith((".tmp", ".part"))]


def test_a_read_only_folder_of_gz_files_is_read_as_it_is(tmp_path, monkeypatch):
    raw = write_fake_fashion_mnist(tmp_path, num_train=30, num_val=20, gz=True)
    before = sorted(p.name for p in raw.iterdir())
    monkeypatch.setattr("d2lai.data.vision._writable", lambda folder: False)
    data = d2lai.FashionMNISTData(root=tmp_path)
    assert sorted(p.name for p in raw.iterdir()) == before  # nothing written
    ref = write_fake_fashion_mnist(tmp_path / "ref", num_train=30, num_val=20)
    assert torch.equal(data.train[0].flatten(), torch.from_numpy(
        np.fromfile(ref / NAMES[0], np.uint8)[16:].copy()))


def test_a_failed_unpack_leaves_no_partial_file(tmp_path, monkeypatch):
    raw = write_fake_fashion_mnist(tmp_path, num_train=30, num_val=20, gz=True)

    def disk_full(src, dst, length=0):
        dst.write(src.read(100))
        raise OSError("disk full")

    monkeypatch.setattr("d2lai.data.vision.shutil.copyfileobj", disk_full)
    with pytest.raises(OSError, match="disk full"):
        d2lai.FashionMNISTData(root=tmp_path)
    assert sorted(p.name for p in raw.iterdir()) == sorted(f"{n}.gz" for n in NAMES)
    monkeypatch.undo()
    assert d2lai.FashionMNISTData(root=tmp_path).train[0].shape == (30, 28, 28)


def test_a_truncated_gz_file_is_named(tmp_path):
    raw = write_fake_fashion_mnist(tmp_path, num_train=30, num_val=20, gz=True)
    gz = raw / f"{NAMES[2]}.gz"
    gz.write_bytes(gz.read_bytes()[:200])
    with pytest.raises(ValueError, match="is not a whole gzip file") as err:
        d2lai.FashionMNISTData(root=tmp_path)
    assert str(gz) in str(err.value)
    assert not (raw / NAMES[2]).exists()


def test_missing_files_name_folder_and_files(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        d2lai.FashionMNISTData(root=tmp_path, download=False)
    msg = str(err.value)
    assert str(tmp_path / "FashionMNIST" / "raw") in msg
    for name in NAMES:
        assert name in msg
    assert list(tmp_path.iterdir()) == []


def _offline(monkeypatch):
    from urllib.error import URLError

    def offline(*args, **kwargs):
        raise URLError("no network")

    monkeypatch.setattr("urllib.request.urlopen", offline)


def test_failed_download_gives_a_clear_error_and_leaves_no_folders(tmp_path, monkeypatch):
    _offline(monkeypatch)
    with pytest.raises(FileNotFoundError, match="download failed") as err:
        d2lai.FashionMNISTData(root=tmp_path / "new" / "data")
    assert "t10k-labels-idx1-ubyte" in str(err.value) and "no network" in str(err.value)
    assert list(tmp_path.iterdir()) == []  # new/data/FashionMNIST/raw all removed again


def test_failed_download_removes_only_the_folders_it_created(tmp_path, monkeypatch):
    _offline(monkeypatch)
    (tmp_path / "FashionMNIST").mkdir()
    (tmp_path / "keep.txt").write_text("x")
    with pytest.raises(FileNotFoundError, match="download failed"):
        d2lai.FashionMNISTData(root=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["FashionMNIST", "keep.txt"]
    assert list((tmp_path / "FashionMNIST").iterdir()) == []


class _Response(io.BytesIO):
    def __init__(self, url, body):
        super().__init__(body)
        self.url, self.length = url, len(body)


def test_download_fetches_checks_md5_and_unpacks(tmp_path, monkeypatch):
    """The official download path, offline: a fake server hands out generated .gz files."""
    from torchvision.datasets import FashionMNIST

    src = write_fake_fashion_mnist(tmp_path / "src", num_train=30, num_val=20, gz=True)
    bodies = {f"{n}.gz": (src / f"{n}.gz").read_bytes() for n in NAMES}
    monkeypatch.setattr(FashionMNIST, "resources",
                        [(f, hashlib.md5(b).hexdigest()) for f, b in bodies.items()])
    monkeypatch.setattr(FashionMNIST, "mirrors", ["http://mirror.invalid/"])
    fetched = []

    def serve(request, *args, **kwargs):
        url = getattr(request, "full_url", request)
        fetched.append(url)
        return _Response(url, bodies[url.rsplit("/", 1)[1]])

    monkeypatch.setattr("urllib.request.urlopen", serve)
    data = d2lai.FashionMNISTData(root=tmp_path / "root", num_val=5)
    raw = tmp_path / "root" / "FashionMNIST" / "raw"
    assert {u.rsplit("/", 1)[1] for u in fetched} == set(bodies)
    assert sorted(p.name for p in raw.iterdir()) == sorted(
        NAMES + list(bodies) + [".unpack.lock"])
    assert data.train[0].shape == (30, 28, 28) and data.val[0].shape == (5, 28, 28)
    # a file that does not match its md5 sum is refused, and named
    bodies[f"{NAMES[3]}.gz"] = b"not the file"
    with pytest.raises(FileNotFoundError, match=r"download failed: .*t10k-labels-idx1-ubyte.gz"):
        d2lai.FashionMNISTData(root=tmp_path / "other")


def test_a_folder_in_place_of_a_file_is_named_not_downloaded(tmp_path, monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("no download expected")

    monkeypatch.setattr("urllib.request.urlopen", no_network)
    raw = write_fake_fashion_mnist(tmp_path, num_train=10, num_val=10)
    (raw / NAMES[0]).unlink()
    (raw / NAMES[0]).mkdir()
    with pytest.raises(IsADirectoryError, match="is a folder, not a file") as err:
        d2lai.FashionMNISTData(root=tmp_path)
    assert str(raw / NAMES[0]) in str(err.value)
    (raw / "FashionMNIST").mkdir()
    (tmp_path / "r2").mkdir()
    (tmp_path / "r2" / "FashionMNIST").write_text("x")
    with pytest.raises(NotADirectoryError, match="FashionMNIST is a file"):
        d2lai.FashionMNISTData(root=tmp_path / "r2")


def test_empty_idx_files_are_named(tmp_path):
    raw = write_fake_fashion_mnist(tmp_path, num_train=10, num_val=10)
    write_idx(raw / NAMES[2], np.zeros((0, 28, 28), np.uint8))
    write_idx(raw / NAMES[3], np.zeros(0, np.uint8))
    with pytest.raises(ValueError, match="t10k-images-idx3-ubyte is empty: its header announces "
                                         "0 items"):
        d2lai.FashionMNISTData(root=tmp_path)


def test_the_default_root_comes_from_the_environment(fashion_root, monkeypatch):
    monkeypatch.setenv("D2LAI_DATA", str(fashion_root))
    data = d2lai.FashionMNISTData(num_train=5, num_val=5)
    assert data.root == fashion_root


# --- TensorLoader -----------------------------------------------------------------------------

def test_train_loader_merges_a_final_batch_of_one():
    X, y = torch.randn(65, 3), torch.arange(65)
    train = TensorLoader((X, y), batchsize=32, shuffle=True)
    assert [len(b[1]) for b in train] == [32, 33]
    val = TensorLoader((X, y), batchsize=32, merge_single=False)
    assert [len(b[1]) for b in val] == [32, 32, 1]


def test_a_bare_tensor_is_one_tensor():
    X = torch.arange(70).reshape(70, 1)
    batches = list(TensorLoader(X, 32))
    assert [b[0].shape for b in batches] == [(32, 1), (32, 1), (6, 1)]
    assert all(len(b) == 1 for b in batches) and torch.equal(torch.cat([b[0] for b in batches]), X)


def test_loader_refuses_tensors_of_different_lengths_and_non_tensors():
    X, y = torch.randn(100, 3), torch.arange(100)
    with pytest.raises(ValueError, match=r"same number of samples.*\[100, 50\]"):
        TensorLoader((X, y[:50]), 32)
    with pytest.raises(TypeError, match="element 1 is a list"):
        TensorLoader((X, list(range(100))), 32)
    with pytest.raises(TypeError, match="got ndarray"):
        TensorLoader(np.zeros((4, 2)), 2)
    with pytest.raises(ValueError, match="0-dimensional"):
        TensorLoader((torch.tensor(1.0),), 2)
    with pytest.raises(ValueError, match="batchsize"):
        TensorLoader(X, 0)


def test_an_empty_loader_has_no_batches():
    for tensors in ((), (torch.zeros(0, 3), torch.zeros(0, dtype=torch.long))):
        for shuffle in (False, True):
            loader = TensorLoader(tensors, 8, shuffle=shuffle)
            assert len(loader) == 0 and list(loader) == []


def test_loader_transform_applies_to_the_first_tensor_only():
    X, y = torch.arange(10).reshape(10, 1), torch.arange(10)
    batches = list(TensorLoader((X, y), 4, transform=lambda x: x * 100))
    assert torch.equal(batches[0][0], X[:4] * 100) and torch.equal(batches[0][1], y[:4])
    with pytest.raises(TypeError, match="transform must be callable"):
        TensorLoader((X, y), 4, transform=3)


# --- data modules of one's own ----------------------------------------------------------------

class Tensors(AbstractData):
    def __init__(self, X, y, batchsize=16):
        self.train = self.val = (X, y)
        self.batchsize = batchsize


def test_empty_tensors_in_a_data_module_are_named():
    data = Tensors(torch.zeros(0, 3), torch.zeros(0, dtype=torch.long))
    with pytest.raises(ValueError, match=r"Tensors.train is empty \(0 samples\)"):
        data.train_dataloader()
    with pytest.raises(ValueError, match=r"Tensors.val is empty"):
        d2lai.val_dataloader(data)
    bad = Tensors(torch.zeros(10, 3), torch.zeros(9, dtype=torch.long))
    with pytest.raises(ValueError, match=r"Tensors.train: .*lengths \[10, 9\]"):
        bad.train_dataloader()


def test_to_moves_every_tensor_once(fashion_root):
    data = d2lai.FashionMNISTData(root=fashion_root, normalize=True, num_train=50, num_val=20)
    data.extra = [torch.zeros(3), "text", (torch.ones(2),)]
    assert data.to("meta") is data
    tensors = [*data.train, *data.val, *data.test, data.mean, data.std, data.extra[0],
               data.extra[2][0]]
    assert all(t.device.type == "meta" for t in tensors)
    assert data.test[0] is data.val[0]  # one set, moved once
    assert data.extra[1] == "text" and isinstance(data.extra, list)
    assert data.root == fashion_root and data.args.batchsize == 64


class JuliaStyle(AbstractData):
    """As the Julia text writes its data modules: arrays X, y and the arguments in args."""

    def __init__(self, n=200, num_train=150):
        self.args = types.SimpleNamespace(num_train=num_train, batchsize=25)
        self.X = torch.randn(n, 2)
        self.y = self.X @ torch.tensor([[2.0], [-3.4]]) + 4.2

    def get_dataloader(self, train=True):
        idx = slice(0, self.args.num_train) if train else slice(self.args.num_train, None)
        return TensorLoader((self.X[idx], self.y[idx]), self.args.batchsize, shuffle=train)


class LinearRegression(d2lai.AbstractModel):
    def __init__(self):
        super().__init__()
        self.net = torch.nn.Linear(2, 1)

    def loss(self, y_hat, y):
        return ((y_hat - y) ** 2).mean()


def test_a_julia_style_data_module_trains_and_moves():
    d2lai.seed(0)
    data = JuliaStyle()
    assert len(d2lai.train_dataloader(data)) == 6 and len(d2lai.val_dataloader(data)) == 2
    model, metrics = d2lai.fit(d2lai.Trainer(LinearRegression(), data, d2lai.Descent(0.1),
                                             max_epochs=20, verbose=False, board=False))
    assert metrics.val_loss < 1e-4
    assert torch.allclose(model.net.weight, torch.tensor([[2.0, -3.4]]), atol=1e-2)
    data.to("meta")
    assert data.X.device.type == "meta" and data.y.device.type == "meta"


def test_synthetic_regression_data():
    d2lai.seed(0)
    data = d2lai.SyntheticRegressionData(w=[2.0, -3.4], b=4.2, noise=0.0, num_train=100,
                                         num_val=20, batchsize=8)
    assert data.X.shape == (120, 2) and data.y.shape == (120, 1)
    X, y = data.train
    assert X.shape == (100, 2) and y.shape == (100, 1) and data.val[0].shape == (20, 2)
    assert X.data_ptr() == data.X.data_ptr() and torch.equal(data.val[1], data.y[100:])
    assert torch.allclose(data.y, data.X @ torch.tensor([[2.0], [-3.4]]) + 4.2, atol=1e-5)
    assert len(data.train_dataloader()) == 13 and len(data.val_dataloader()) == 3
    assert data.args.num_train == 100 and data.args.batchsize == 8 and data.args.b == 4.2
    assert d2lai.SyntheticRegressionData([1.0], 0, batch_size=5).batchsize == 5
    with pytest.raises(ValueError, match="num_train"):
        d2lai.SyntheticRegressionData(w=[1.0], b=0, num_train=0)
    with pytest.raises(ValueError, match="w is empty"):
        d2lai.SyntheticRegressionData(w=[], b=0)
    data.to("meta")
    assert data.train[0].device.type == "meta" and data.val[1].device.type == "meta"


# --- writers ----------------------------------------------------------------------------------

def test_write_idx_round_trip_plain_and_gz(tmp_path):
    from torchvision.datasets.mnist import read_sn3_pascalvincent_tensor

    a = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / "a", a)
    assert torch.equal(read_sn3_pascalvincent_tensor(str(tmp_path / "a")), torch.from_numpy(a))
    write_idx(tmp_path / "a.gz", a)
    assert gzip.decompress((tmp_path / "a.gz").read_bytes()) == (tmp_path / "a").read_bytes()
