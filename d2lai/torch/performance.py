"""The computational-performance chapter's helpers for several devices: the split of a
minibatch over devices (CPU devices too) and the small ResNet-18 the chapter trains. (`Timer`
and `Benchmark` are in `utils`; the device list that says how many GPUs a cell needs, in
`tensors`.)
"""

from __future__ import annotations

import torch
from torch import nn

from ..checks import positive_int
from .models import Residual
from .tensors import gpus_seen

__all__ = ["split_batch", "resnet18"]


def _check_devices(devices, what: str) -> list[torch.device]:
    """`devices` as torch devices, each of which exists."""
    try:
        devices = [torch.device(d) for d in devices]
    except (TypeError, RuntimeError):
        raise TypeError(f"{what}: devices must be a list of devices such as "
                        f"d2l.try_all_gpus(), got {devices!r}") from None
    if not devices:
        raise ValueError(f"{what}: devices is empty; give at least one device")
    gpus = [d.index or 0 for d in devices if d.type == "cuda"]
    if gpus and max(gpus) >= torch.cuda.device_count():
        raise RuntimeError(f"{what}: the devices {[str(d) for d in devices]} need "
                           f"{max(gpus) + 1} GPUs and {gpus_seen()}")
    return devices


def split_batch(X: torch.Tensor, y: torch.Tensor, devices):
    """Cut a minibatch into one shard per device along the first axis and put each shard on
    its device: (X shards, y shards). Shards are `torch.chunk`'s, so a batch of fewer rows
    than devices gives fewer shards, as `nn.parallel.scatter` does."""
    if X.shape[0] != y.shape[0]:
        raise ValueError(f"split_batch: X has {X.shape[0]} rows but y has {y.shape[0]}")
    devices = _check_devices(devices, "split_batch")
    X_shards = X.chunk(len(devices))
    y_shards = y.chunk(len(devices))
    return (tuple(x.to(d) for x, d in zip(X_shards, devices, strict=False)),
            tuple(t.to(d) for t, d in zip(y_shards, devices, strict=False)))


def resnet18(num_classes: int, in_channels: int = 1) -> nn.Sequential:
    """ResNet-18 for small images: a 3x3 stem with stride 1 and no max-pooling, four stages of
    two residual blocks (64, 128, 256, 512 channels; the last three halve the resolution),
    global average pooling and a linear layer. The residual blocks are lazy: run one batch
    through the net before counting or initialising their parameters."""
    num_classes = positive_int("num_classes", num_classes)
    in_channels = positive_int("in_channels", in_channels)

    def stage(channels: int, first: bool) -> nn.Sequential:
        down = [] if first else [Residual(channels, use_1x1conv=True, strides=2)]
        return nn.Sequential(*down, *[Residual(channels) for _ in range(2 - len(down))])

    net = nn.Sequential(nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1),
                        nn.BatchNorm2d(64), nn.ReLU())
    for k, channels in enumerate((64, 128, 256, 512)):
        net.add_module(f"resnet_block{k + 1}", stage(channels, first=k == 0))
    net.add_module("global_avg_pool", nn.AdaptiveAvgPool2d((1, 1)))
    net.add_module("fc", nn.Sequential(nn.Flatten(), nn.Linear(512, num_classes)))
    return net
