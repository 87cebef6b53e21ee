"""Shared fixtures: small Fashion-MNIST-shaped IDX files, written in torchvision's layout."""

import matplotlib
import pytest

matplotlib.use("Agg")

from d2lai.data import write_fake_fashion_mnist  # noqa: E402


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
