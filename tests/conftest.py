"""Shared fixtures: small generated data sets in the real layouts (Fashion-MNIST IDX files,
The Time Machine, English-French pairs), and no network."""

import urllib.error

import matplotlib
import pytest
import torch
from torch import nn

matplotlib.use("Agg")

import d2lai  # noqa: E402
from d2lai.testing import (  # noqa: E402
    write_fake_fashion_mnist,
    write_fake_fra_eng,
    write_fake_time_machine,
)


@pytest.fixture(scope="session")
def fashion_root(tmp_path_factory):
    """A data root with 600 training and 200 test images under FashionMNIST/raw/."""
    root = tmp_path_factory.mktemp("data")
    write_fake_fashion_mnist(root, num_train=600, num_val=200)
    return root


@pytest.fixture(scope="session")
def tm_root(tmp_path_factory):
    """A data root holding a generated timemachine.txt."""
    root = tmp_path_factory.mktemp("tm")
    write_fake_time_machine(root)
    return root


@pytest.fixture(scope="session")
def fra_root(tmp_path_factory):
    """A data root holding generated English-French pairs as fra-eng.zip."""
    root = tmp_path_factory.mktemp("fra")
    write_fake_fra_eng(root)
    return root


@pytest.fixture
def offline(monkeypatch):
    """A download attempt fails as it would offline: the tests never touch the network."""
    def no_network(url, *args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr("urllib.request.urlopen", no_network)


@pytest.fixture(autouse=True)
def _no_cuda_warning_memory(monkeypatch):
    """Each test sees the once-a-process 'no CUDA' warning afresh."""
    monkeypatch.setattr("d2lai.device._warned_no_cuda", False)


@pytest.fixture
def one_thread():
    """Small batches gain nothing from two threads, which crawl on a busy 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class TinyClassifier(d2lai.AbstractClassifier):
    """A small MLP with batch norm: fits the fake data in a few epochs, in a second."""

    def __init__(self, hidden: int = 32):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(784, hidden), nn.BatchNorm1d(hidden),
                                 nn.ReLU(), nn.Linear(hidden, 10), nn.Softmax(dim=1))


class Scripted(TinyClassifier):
    """Its validation loss, or accuracy, follows a script: `losses[e]` or `accs[e]` at epoch
    e + 1, where e = `self.epoch`, set by a test's callback (the training itself is real)."""

    def __init__(self, losses=None, accs=None):
        super().__init__()
        self.losses, self.accs, self.epoch = losses, accs, 0

    def validation_step(self, batch):
        loss, acc = super().validation_step(batch)
        pick = lambda script: torch.tensor(script[min(self.epoch, len(script) - 1)])  # noqa: E731
        return (loss if self.losses is None else pick(self.losses),
                acc if self.accs is None else pick(self.accs))


class FailAt(TinyClassifier):
    """Raises `error` (or returns a NaN loss) at the given (epoch, batch), both from 1."""

    def __init__(self, epoch, batch, error=None, batches_per_epoch=10):
        super().__init__()
        self.at, self.error, self.per_epoch = (epoch, batch), error, batches_per_epoch
        self.calls = 0

    def training_step(self, batch):
        self.calls += 1
        here = ((self.calls - 1) // self.per_epoch + 1, (self.calls - 1) % self.per_epoch + 1)
        loss = super().training_step(batch)
        if here == self.at:
            if self.error is not None:
                raise self.error
            return loss * float("nan")
        return loss


@pytest.fixture
def tiny_data(fashion_root):
    return d2lai.FashionMNISTData(batchsize=64, root=fashion_root)


def fail_torch_save(monkeypatch, error: Exception, keep_bytes: int) -> None:
    """Make `torch.save` die as a full disk does: it writes, the file is cut to `keep_bytes`,
    then `error` is raised."""
    real_save = torch.save

    def failing(obj, f, *args, **kwargs):
        real_save(obj, f, *args, **kwargs)
        with open(f, "r+b") as fh:
            fh.truncate(keep_bytes)
        raise error

    monkeypatch.setattr(torch, "save", failing)
