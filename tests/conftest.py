"""Shared fixtures: small Fashion-MNIST-shaped IDX files, written in torchvision's layout."""

import matplotlib
import pytest
import torch
from torch import nn

matplotlib.use("Agg")

import d2lai  # noqa: E402
from d2lai.testing import write_fake_fashion_mnist  # noqa: E402


@pytest.fixture(scope="session")
def fashion_root(tmp_path_factory):
    """A data root with 600 training and 200 test images under FashionMNIST/raw/."""
    root = tmp_path_factory.mktemp("data")
    write_fake_fashion_mnist(root, num_train=600, num_val=200)
    return root


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
