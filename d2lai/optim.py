"""Flux-named optimiser rules, bound to a model's parameters when fitting starts (`Flux.setup`)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["Descent", "Momentum", "Adam", "setup"]

LR_MAX = torch.finfo(torch.float32).max  # torch's step takes lr as a float32 factor


def _check_lr(rule: str, lr) -> None:
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not 0 <= lr <= LR_MAX:
        raise ValueError(f"{rule}: the learning rate lr must be a number in [0, {LR_MAX:.3g}] "
                         f"(a float32 step size), got {lr!r}")


@dataclass
class Descent:
    """Plain gradient descent: x -= lr * dx (Flux's `Descent`, torch's SGD)."""

    lr: float = 0.1

    def __post_init__(self):
        _check_lr("Descent", self.lr)

    def setup(self, params) -> torch.optim.Optimizer:
        return torch.optim.SGD(params, lr=self.lr)


@dataclass
class Momentum:
    """Descent with momentum rho (Flux's `Momentum`, equal to torch's SGD(momentum=rho))."""

    lr: float = 0.01
    rho: float = 0.9

    def __post_init__(self):
        _check_lr("Momentum", self.lr)
        if not 0 <= self.rho < 1:
            raise ValueError(f"Momentum: rho must lie in [0, 1), got {self.rho!r}")

    def setup(self, params) -> torch.optim.Optimizer:
        return torch.optim.SGD(params, lr=self.lr, momentum=self.rho)


@dataclass
class Adam:
    """Adam with Flux's defaults (lr 0.001, betas (0.9, 0.999), eps 1e-8)."""

    lr: float = 0.001
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8

    def __post_init__(self):
        _check_lr("Adam", self.lr)
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise ValueError(f"Adam: betas must be two numbers in [0, 1), got {self.betas!r}")
        if not self.eps > 0:
            raise ValueError(f"Adam: eps must be > 0, got {self.eps!r}")

    def setup(self, params) -> torch.optim.Optimizer:
        return torch.optim.Adam(params, lr=self.lr, betas=tuple(self.betas), eps=self.eps)


RULES = (Descent, Momentum, Adam)


def setup(rule, model: nn.Module) -> torch.optim.Optimizer:
    """A torch optimiser over `model`'s trainable parameters; a ready optimiser passes through."""
    if isinstance(rule, torch.optim.Optimizer):
        return rule
    if not isinstance(rule, RULES):
        raise TypeError(f"opt must be Descent, Momentum, Adam or a torch.optim.Optimizer, "
                        f"got {type(rule).__name__}")
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError(f"{type(model).__name__} has no trainable parameters to optimise")
    return rule.setup(params)
