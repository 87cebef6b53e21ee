"""The gpu=True paths, run only where PyTorch sees a CUDA device (skipped elsewhere)."""

import pytest
import torch
from conftest import FailAt, TinyClassifier
from torch import nn

import d2lai
from chapters.batch_norm import BatchNormLayer, BLeNetScratch

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


class DeviceRecorder(nn.Module):
    def __init__(self):
        super().__init__()
        self.devices = set()

    def forward(self, x):
        self.devices.add(x.device.type)
        return x


def test_fit_on_the_gpu_keeps_data_there_and_returns_a_cpu_model(tiny_data):
    model = TinyClassifier()
    recorder = DeviceRecorder()
    model.net.insert(0, recorder)
    trainer = d2lai.Trainer(model, tiny_data, d2lai.Descent(0.1), max_epochs=3, gpu=True,
                            verbose=False)
    model, metrics = trainer.fit()
    assert recorder.devices == {"cuda"}
    assert tiny_data.train[0].device.type == "cuda"
    assert all(p.device.type == "cpu" for p in model.parameters())
    assert metrics.val_acc > 0.8 and len(trainer.history["val_acc"]) == 3


def test_scratch_layer_matches_torch_on_the_gpu():
    torch.manual_seed(0)
    ours, ref = BatchNormLayer(6, 4).cuda(), nn.BatchNorm2d(6).cuda()
    for _ in range(3):
        X = torch.randn(16, 6, 7, 7, device="cuda") * 2 + 1
        assert torch.allclose(ours(X), ref(X), atol=1e-5)
    assert torch.allclose(ours.moving_var.flatten(), ref.running_var, atol=1e-5)


def test_divergence_is_found_at_its_batch_on_the_gpu(tiny_data, caplog):
    trainer = d2lai.Trainer(FailAt(2, 3), tiny_data, d2lai.Descent(0.1), max_epochs=3,
                            gpu=True, verbose=False)
    _, metrics = trainer.fit()
    assert metrics.diverged and metrics.epochs == 1
    assert "diverged at epoch 2, batch 3" in caplog.text


def test_checkpoint_on_the_gpu_resumes(tiny_data, tmp_path):
    ckpt = tmp_path / "gpu.pt"
    d2lai.Trainer(BLeNetScratch(), tiny_data, d2lai.Descent(0.1), max_epochs=1, gpu=True,
                  verbose=False, checkpoint=ckpt).fit()
    trainer = d2lai.Trainer(BLeNetScratch(), tiny_data, d2lai.Descent(0.1), max_epochs=2,
                            gpu=True, verbose=False, checkpoint=ckpt, resume=True)
    _, metrics = trainer.fit()
    assert metrics.epochs == 2 and torch.load(ckpt, weights_only=True)["epoch"] == 2
