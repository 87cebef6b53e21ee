"""Layers Flux has and torch lacks: `Parallel`, the branches of GoogLeNet's and ResNet's blocks;
and `corr2d`, the cross-correlation the convolution chapter starts from.

`Parallel(connection, layers...)` passes its input through each layer and joins the outputs
with `connection`: `Parallel(torch.add, body, nn.Identity())` is a residual connection,
`Parallel(concat_channels, b1, b2, b3, b4)` an Inception block.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable

import torch
from torch import nn

__all__ = ["Parallel", "concat_channels", "corr2d"]

# Two-argument joins that Julia writes as n-ary functions (`+`, `*`, `max`): folded over the
# outputs, so that Parallel(torch.add, a, b, c) gives a(x) + b(x) + c(x) as Flux's Parallel(+, ...).
_BINARY = (operator.add, operator.mul, torch.add, torch.mul, torch.maximum, torch.minimum)


class Parallel(nn.Module):
    """Flux's `Parallel(connection, layers...)`: with one input x, `connection(l1(x), l2(x),
    ...)`; with one input per layer, `connection(l1(x1), l2(x2), ...)`; one layer and several
    inputs applies it to each (`Parallel(+, f)(x, y) = f(x) + f(y)`).

    `connection` is called with all the outputs; a two-argument join such as `torch.add`,
    `operator.add` or `torch.mul` is folded over them. Layers may be named by keyword
    (`Parallel(torch.add, body=..., shortcut=...)`) and may be plain functions.
    """

    def __init__(self, connection: Callable, *layers: Callable, **named: Callable):
        super().__init__()
        if not callable(connection):
            raise TypeError(f"Parallel's first argument is the connection that joins the "
                            f"outputs (torch.add, concat_channels, ...), got "
                            f"{type(connection).__name__}")
        items = [(str(i), layer) for i, layer in enumerate(layers)] + list(named.items())
        if not items:
            raise ValueError("Parallel needs at least one layer after the connection")
        for name, layer in items:
            if not callable(layer):
                raise TypeError(f"Parallel's layer {name} must be a module or a function, got "
                                f"{type(layer).__name__}")
        self.connection = connection
        self.layers = nn.ModuleDict({name: layer if isinstance(layer, nn.Module)
                                     else _Function(layer) for name, layer in items})

    def forward(self, *xs):
        layers = list(self.layers.values())
        if len(xs) == 1:
            ys = [layer(xs[0]) for layer in layers]
        elif len(layers) == 1:
            ys = [layers[0](x) for x in xs]
        elif len(xs) == len(layers):
            ys = [layer(x) for layer, x in zip(layers, xs, strict=True)]
        else:
            raise ValueError(f"Parallel with {len(layers)} layers takes one input, or one input "
                             f"per layer, got {len(xs)} inputs")
        if self.connection in _BINARY:
            return functools.reduce(self.connection, ys)
        return self.connection(*ys)

    def extra_repr(self) -> str:
        return f"connection={getattr(self.connection, '__name__', self.connection)!s}"


def concat_channels(*ys: torch.Tensor) -> torch.Tensor:
    """The outputs side by side along the channel dimension (dim 1 of N x C x H x W): the
    Julia text's `cat(ys...; dims = 3)` on W x H x C x N arrays."""
    return torch.cat(ys, dim=1)


class _Function(nn.Module):
    """A plain function as a layer of a Parallel."""

    def __init__(self, fn: Callable):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)

    def extra_repr(self) -> str:
        return getattr(self.fn, "__name__", repr(self.fn))


def corr2d(X: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """2-D cross-correlation of `X` with kernel `K` (no padding, stride 1), as float32."""
    h, w = K.shape
    if X.ndim != 2 or X.shape[0] < h or X.shape[1] < w:
        raise ValueError(f"corr2d takes a 2-D X at least as large as K {tuple(K.shape)}, got "
                         f"shape {tuple(X.shape)}")
    windows = X.unfold(0, h, 1).unfold(1, w, 1)  # (rows, cols, h, w)
    return (windows * K).sum(dim=(-2, -1)).float()
