"""Data on the GPU: batches cut and transformed there (run only where PyTorch sees CUDA)."""

import pytest
import torch

import d2lai

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def test_batches_are_cut_resized_and_normalised_on_the_gpu(fashion_root):
    data = d2lai.FashionMNISTData(root=fashion_root, resize=(56, 56), normalize=True,
                                  num_train=100, num_val=50, batchsize=32)
    on_cpu = torch.cat([b[0] for b in data.val_dataloader()])
    assert data.to("cuda") is data
    assert all(t.device.type == "cuda" for t in (*data.train, *data.val, data.mean, data.std))
    X, y = next(iter(data.train_dataloader()))
    assert X.device.type == "cuda" and y.device.type == "cuda"
    assert X.shape == (32, 1, 56, 56) and X.dtype == torch.float32
    on_gpu = torch.cat([b[0] for b in data.val_dataloader()])
    assert on_gpu.device.type == "cuda"
    assert torch.allclose(on_gpu.cpu(), on_cpu, atol=1e-4)
