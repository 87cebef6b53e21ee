"""The computational-performance chapter's helpers: `Benchmark`, the device list that says how
many GPUs a cell needs, `split_batch` (on CPU devices too) and the small ResNet-18."""

import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from d2lai import torch as d2l


def test_benchmark_prints_the_time_of_its_block(monkeypatch, capsys):
    ticks = iter([5.0, 5.125])
    monkeypatch.setattr("d2lai.torch.utils.time.perf_counter", lambda: next(ticks))
    with d2l.Benchmark("matmul") as bench:
        pass
    assert capsys.readouterr().out == "matmul: 0.1250 sec\n"
    assert bench.timer.times == [0.125]


def test_asking_for_a_missing_device_says_how_many_gpus_it_needs():
    devices = d2l.try_all_gpus()
    n = torch.cuda.device_count()
    assert list(devices) == ([d2l.gpu(i) for i in range(n)] or [d2l.cpu()])
    assert devices[0] == devices[-1] or n > 1
    assert devices[:5] == list(devices)  # slices stay plain
    k = len(devices)
    with pytest.raises(IndexError, match=rf"devices\[{k}\] does not exist: this code needs "
                                         rf"{k + 1} GPUs and PyTorch sees {n} GPU"):
        devices[k]


def test_split_batch_puts_one_shard_on_each_device():
    X, y = torch.arange(20).reshape(4, 5), torch.arange(4)
    X_shards, y_shards = d2l.split_batch(X, y, [d2l.cpu(), d2l.cpu()])
    assert [s.shape for s in X_shards] == [(2, 5), (2, 5)]
    assert torch.equal(torch.cat(X_shards), X) and torch.equal(torch.cat(y_shards), y)
    assert all(s.device == d2l.cpu() for s in X_shards + y_shards)
    X5, y5 = torch.ones(5, 2), torch.zeros(5)
    assert [len(s) for s in d2l.split_batch(X5, y5, ["cpu"] * 4)[0]] == [2, 2, 1]
    with pytest.raises(ValueError, match="X has 4 rows but y has 3"):
        d2l.split_batch(X, y[:3], [d2l.cpu()])
    missing = d2l.gpu(torch.cuda.device_count())
    with pytest.raises(RuntimeError, match=rf"need {missing.index + 1} GPUs and PyTorch sees"):
        d2l.split_batch(X, y, [d2l.cpu(), missing])
    with pytest.raises(ValueError, match="devices is empty"):
        d2l.split_batch(X, y, [])


def test_split_batch_losses_add_up_to_the_whole_batch():
    """The multi-GPU chapter's step: per-shard summed losses and gradients add up to those of
    the whole minibatch, so one SGD step on the sum is the single-device step."""
    torch.manual_seed(0)
    W = torch.randn(6, 3, requires_grad=True)
    X, y = torch.randn(8, 6), torch.randint(0, 3, (8,))
    X_shards, y_shards = d2l.split_batch(X, y, [d2l.cpu()] * 3)
    shard_losses = [F.cross_entropy(Xs @ W, ys, reduction="sum") for Xs, ys in
                    zip(X_shards, y_shards, strict=True)]
    for loss in shard_losses:
        loss.backward()
    whole = F.cross_entropy(X @ W, y, reduction="sum")
    assert torch.allclose(sum(shard_losses), whole)
    grad_shards = W.grad.clone()
    W.grad = None
    whole.backward()
    assert torch.allclose(grad_shards, W.grad, atol=1e-6)


def _residual_params(c_in: int, c: int, one_by_one: bool) -> int:
    """Parameters of one residual block, by hand: two 3x3 convolutions, two batch norms, and
    the 1x1 convolution when it changes channels or resolution."""
    n = (c_in * c * 9 + c) + (c * c * 9 + c) + 2 * (2 * c)
    return n + (c_in * c + c if one_by_one else 0)


def test_resnet18_layout_shapes_and_parameter_count():
    net = d2l.resnet18(10, in_channels=3)
    names = [name for name, _ in net.named_children()]
    assert names[3:] == ["resnet_block1", "resnet_block2", "resnet_block3", "resnet_block4",
                         "global_avg_pool", "fc"]
    net.eval()
    with torch.no_grad():
        stem = net[:4](torch.randn(2, 3, 28, 28))
        assert stem.shape == (2, 64, 28, 28)  # no stride, no pooling in the stem
        assert net.resnet_block2(stem).shape == (2, 128, 14, 14)
        assert net(torch.randn(2, 3, 28, 28)).shape == (2, 10)
    expected = (3 * 64 * 9 + 64) + 2 * 64  # stem convolution and batch norm
    for c_in, c, first in ((64, 64, True), (64, 128, False), (128, 256, False),
                           (256, 512, False)):
        expected += _residual_params(c_in, c, not first) + _residual_params(c, c, False)
    expected += 512 * 10 + 10
    assert sum(p.numel() for p in net.parameters()) == expected
    with pytest.raises(ValueError, match="num_classes must be a positive integer"):
        d2l.resnet18(0)


def test_resnet18_trains_on_the_cpu_as_the_concise_chapter_sets_it_up(one_thread):
    """Small normal weights applied before the first batch (the lazy blocks keep torch's
    defaults), then minibatch SGD: the loss of a fixed batch goes down."""
    torch.manual_seed(0)
    net = d2l.resnet18(10)

    def init_weights(module):
        if type(module) in (nn.Linear, nn.Conv2d):
            nn.init.normal_(module.weight, std=0.01)

    net.apply(init_weights)
    assert float(net[0].weight.detach().std()) < 0.02
    X, y = torch.randn(4, 1, 8, 8), torch.tensor([0, 1, 2, 3])
    optimizer = torch.optim.SGD(net.parameters(), lr=0.01)
    losses = []
    for _ in range(3):
        optimizer.zero_grad()
        loss = F.cross_entropy(net(X), y)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert losses[2] < losses[1] < losses[0]


def test_try_gpu_warns_when_code_asks_for_a_gpu_that_is_not_there(monkeypatch):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # GPU 0 exists: no warning
        assert d2l.try_gpu(0) == d2l.gpu(0)
    with pytest.warns(UserWarning, match=r"try_gpu\(1\): code that asks for GPU 1 needs 2 GPUs "
                                         r"and PyTorch sees 1: using the CPU instead"):
        assert d2l.try_gpu(1) == d2l.cpu()
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the usual fallback of the single-device chapters
        assert d2l.try_gpu() == d2l.cpu()
