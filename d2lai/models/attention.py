"""Attention: masking, the dot-product and additive scorers, multi-head attention, positional
encoding, and heatmaps of attention weights.

Tensors are batch first, as in the PyTorch edition: queries (N, Q, d), keys (N, K, d), values
(N, K, v); attention weights (N, Q, K), normalised over the keys.
"""

from __future__ import annotations

import math
import os

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from torch import nn

from ..checks import flag, number, positive_int

__all__ = ["sequence_mask", "masked_softmax", "DotProductAttention", "AdditiveAttention",
           "MultiHeadedAttention", "MultiHeadAttention", "PositionalEncoding", "show_heatmaps"]


def sequence_mask(X: torch.Tensor, valid_len: torch.Tensor, value: float = 0) -> torch.Tensor:
    """X with the items at positions >= `valid_len` along dimension 1 set to `value`.

    X is (N, T, ...), valid_len (N,). Unlike the book's version, X itself is left unchanged.
    """
    valid_len = torch.as_tensor(valid_len, device=X.device)
    if tuple(valid_len.shape) != (X.shape[0],) or not _is_real(valid_len):
        raise ValueError(f"valid_len must be a tensor of {X.shape[0]} lengths, one per row of X "
                         f"{tuple(X.shape)}, got shape {tuple(valid_len.shape)} and dtype "
                         f"{valid_len.dtype}")
    mask = torch.arange(X.shape[1], device=X.device)[None, :] < valid_len[:, None]  # (N, T)
    mask = mask.reshape(mask.shape + (1,) * (X.ndim - 2))  # (N, T, 1, ...)
    return X.masked_fill(~mask, value)


def masked_softmax(X: torch.Tensor, valid_lens: torch.Tensor | None) -> torch.Tensor:
    """Softmax over the last axis of X (N, Q, K), counting only the first valid_lens keys.

    valid_lens is (N,) (the same length for every query of a sequence) or (N, Q) (one length a
    query), or None (every key counts). Masked scores become -1e6, whose exponential is 0; a row
    with no valid key therefore comes out uniform, as in the book.
    """
    if valid_lens is None:
        return F.softmax(X, dim=-1)
    valid_lens = _valid_lens(valid_lens, X)
    N, Q, K = X.shape
    if valid_lens.ndim == 1:
        valid_lens = torch.repeat_interleave(valid_lens, Q)  # (N * Q,)
    else:
        valid_lens = valid_lens.reshape(-1)  # (N * Q,)
    X = sequence_mask(X.reshape(-1, K), valid_lens, value=-1e6)  # (N * Q, K)
    return F.softmax(X.reshape(N, Q, K), dim=-1)


class DotProductAttention(nn.Module):
    """Scaled dot-product attention: softmax(Q K^T / sqrt(d)) V, with dropout on the weights."""

    def __init__(self, dropout: float):
        super().__init__()
        self.dropout = nn.Dropout(number("dropout", dropout, 0, 1))
        self.attention_weights: torch.Tensor | None = None

    def forward(self, queries, keys, values, valid_lens=None) -> torch.Tensor:
        d = queries.shape[-1]
        scores = torch.bmm(queries, keys.transpose(1, 2)) / math.sqrt(d)  # (N, Q, K)
        self.attention_weights = masked_softmax(scores, valid_lens)  # (N, Q, K)
        return torch.bmm(self.dropout(self.attention_weights), values)  # (N, Q, v)


class AdditiveAttention(nn.Module):
    """Additive attention: score(q, k) = w_v^T tanh(W_q q + W_k k), for queries and keys of
    different sizes.

    `query_size` and `key_size` fix the input sizes; left at None, the layers learn them from
    the first call (lazy layers, as the book's).
    """

    def __init__(self, num_hiddens: int, dropout: float, query_size: int | None = None,
                 key_size: int | None = None):
        super().__init__()
        num_hiddens = positive_int("num_hiddens", num_hiddens)
        self.W_q = _linear(positive_int("query_size", query_size, allow_none=True), num_hiddens)
        self.W_k = _linear(positive_int("key_size", key_size, allow_none=True), num_hiddens)
        self.w_v = nn.Linear(num_hiddens, 1, bias=False)
        self.dropout = nn.Dropout(number("dropout", dropout, 0, 1))
        self.attention_weights: torch.Tensor | None = None

    def forward(self, queries, keys, values, valid_lens=None) -> torch.Tensor:
        queries, keys = self.W_q(queries), self.W_k(keys)  # (N, Q, h), (N, K, h)
        features = torch.tanh(queries.unsqueeze(2) + keys.unsqueeze(1))  # (N, Q, K, h)
        scores = self.w_v(features).squeeze(-1)  # (N, Q, K)
        self.attention_weights = masked_softmax(scores, valid_lens)  # (N, Q, K)
        return torch.bmm(self.dropout(self.attention_weights), values)  # (N, Q, v)


class MultiHeadedAttention(nn.Module):
    """Multi-head attention: num_heads dot-product attentions over learned projections of size
    num_hiddens / num_heads, run as one batched attention, concatenated and projected by W_o.

    Queries, keys and values have num_hiddens features unless `query_size`, `key_size`,
    `value_size` say otherwise. `attention_weights` are (N * num_heads, Q, K), head fastest.
    """

    def __init__(self, num_hiddens: int, num_heads: int, dropout: float, bias: bool = False,
                 query_size: int | None = None, key_size: int | None = None,
                 value_size: int | None = None):
        super().__init__()
        num_hiddens = positive_int("num_hiddens", num_hiddens)
        self.num_heads = positive_int("num_heads", num_heads)
        if num_hiddens % num_heads:
            near = num_heads * max(1, round(num_hiddens / num_heads))
            raise ValueError(f"num_hiddens ({num_hiddens}) must be divisible by num_heads "
                             f"({num_heads}): each head gets num_hiddens / num_heads features. "
                             f"Choose e.g. num_hiddens={near}")
        bias = flag("bias", bias)
        sizes = {name: positive_int(name, size, allow_none=True) or num_hiddens
                 for name, size in (("query_size", query_size), ("key_size", key_size),
                                    ("value_size", value_size))}
        self.attention = DotProductAttention(dropout)
        self.W_q = nn.Linear(sizes["query_size"], num_hiddens, bias=bias)
        self.W_k = nn.Linear(sizes["key_size"], num_hiddens, bias=bias)
        self.W_v = nn.Linear(sizes["value_size"], num_hiddens, bias=bias)
        self.W_o = nn.Linear(num_hiddens, num_hiddens, bias=bias)

    @property
    def attention_weights(self) -> torch.Tensor | None:
        return self.attention.attention_weights

    def forward(self, queries, keys, values, valid_lens=None) -> torch.Tensor:
        if valid_lens is not None:  # checked here, where the shapes are still the caller's
            valid_lens = _valid_lens(valid_lens, queries)
            valid_lens = torch.repeat_interleave(valid_lens, self.num_heads, dim=0)
        queries = self.transpose_qkv(self.W_q(queries))  # (N * heads, Q, h / heads)
        keys = self.transpose_qkv(self.W_k(keys))  # (N * heads, K, h / heads)
        values = self.transpose_qkv(self.W_v(values))  # (N * heads, K, h / heads)
        output = self.attention(queries, keys, values, valid_lens)  # (N * heads, Q, h / heads)
        return self.W_o(self.transpose_output(output))  # (N, Q, h)

    def transpose_qkv(self, X: torch.Tensor) -> torch.Tensor:
        """(N, T, h) -> (N * heads, T, h / heads): the heads become batch items."""
        X = X.reshape(X.shape[0], X.shape[1], self.num_heads, -1)  # (N, T, heads, h / heads)
        X = X.permute(0, 2, 1, 3)  # (N, heads, T, h / heads)
        return X.reshape(-1, X.shape[2], X.shape[3])

    def transpose_output(self, X: torch.Tensor) -> torch.Tensor:
        """(N * heads, T, h / heads) -> (N, T, h): the inverse of `transpose_qkv`."""
        X = X.reshape(-1, self.num_heads, X.shape[1], X.shape[2])  # (N, heads, T, h / heads)
        X = X.permute(0, 2, 1, 3)  # (N, T, heads, h / heads)
        return X.reshape(X.shape[0], X.shape[1], -1)


MultiHeadAttention = MultiHeadedAttention  # the PyTorch edition's name


class PositionalEncoding(nn.Module):
    """Sinusoidal positional encoding added to X (N, T, h), then dropout:
    P[i, 2j] = sin(i / 10000^(2j/h)), P[i, 2j+1] = cos(i / 10000^(2j/h)), for i < max_len.

    `offset` shifts the positions, for a decoder fed one token at a time.
    """

    def __init__(self, num_hiddens: int, dropout: float, max_len: int = 1000):
        super().__init__()
        num_hiddens = positive_int("num_hiddens", num_hiddens)
        self.max_len = positive_int("max_len", max_len)
        self.dropout = nn.Dropout(number("dropout", dropout, 0, 1))
        angles = (torch.arange(max_len, dtype=torch.float32)[:, None]
                  / torch.pow(10000, torch.arange(0, num_hiddens, 2, dtype=torch.float32)
                              / num_hiddens))  # (max_len, ceil(h / 2))
        P = torch.zeros(1, max_len, num_hiddens)
        P[:, :, 0::2] = torch.sin(angles)
        P[:, :, 1::2] = torch.cos(angles[:, :num_hiddens // 2])
        self.register_buffer("P", P, persistent=False)  # moves with the model, not saved

    def forward(self, X: torch.Tensor, offset: int = 0) -> torch.Tensor:
        if offset + X.shape[1] > self.max_len:
            raise ValueError(f"the sequences need {offset + X.shape[1]} positions but the "
                             f"positional encoding has max_len={self.max_len}: build it with "
                             f"max_len >= {offset + X.shape[1]}, or shorten the sequences")
        X = X + self.P[:, offset:offset + X.shape[1], :].to(X.dtype)  # (N, T, h)
        return self.dropout(X)


def show_heatmaps(matrices, xlabel: str, ylabel: str, titles=None,
                  figsize: tuple[float, float] = (2.5, 2.5), cmap: str = "Reds",
                  path: str | os.PathLike | None = None, fig: Figure | None = None) -> Figure:
    """A grid of heatmaps, one per matrix of `matrices` (rows, cols, Q, K), with a colour bar;
    `titles` name the columns. Drawn into `fig` when given (a pyplot figure, say), else into a
    new figure; saved to `path` when given; returns the figure."""
    matrices = np.asarray(matrices.detach().cpu() if isinstance(matrices, torch.Tensor)
                          else matrices, dtype=float)
    if matrices.ndim != 4:
        raise ValueError(f"matrices must be 4-D (rows, cols, queries, keys), got shape "
                         f"{matrices.shape}: reshape e.g. one matrix W to W[None, None]")
    num_rows, num_cols = matrices.shape[:2]
    if titles is not None and len(titles) < num_cols:
        raise ValueError(f"titles must name each of the {num_cols} columns, got {len(titles)}")
    if fig is None:
        fig = Figure(figsize=figsize)
        FigureCanvasAgg(fig)
    axes = fig.subplots(num_rows, num_cols, sharex=True, sharey=True, squeeze=False)
    for i in range(num_rows):
        for j in range(num_cols):
            ax = axes[i, j]
            pcm = ax.imshow(matrices[i, j], cmap=cmap)
            if i == num_rows - 1:
                ax.set_xlabel(xlabel)
            if j == 0:
                ax.set_ylabel(ylabel)
            if titles is not None:
                ax.set_title(titles[j])
    fig.colorbar(pcm, ax=axes, shrink=0.6)
    if path is not None:
        fig.savefig(path)
    return fig


def _linear(num_inputs: int | None, num_outputs: int) -> nn.Module:
    """A bias-free linear layer, lazy when its input size is not known yet."""
    if num_inputs is None:
        return nn.LazyLinear(num_outputs, bias=False)
    return nn.Linear(num_inputs, num_outputs, bias=False)


def _valid_lens(valid_lens, X: torch.Tensor) -> torch.Tensor:
    """valid_lens as a tensor on X's device, of shape (N,) or (N, Q) for X (N, Q, ...)."""
    valid_lens = torch.as_tensor(valid_lens, device=X.device)
    N, Q = X.shape[0], X.shape[1]
    if tuple(valid_lens.shape) not in ((N,), (N, Q)) or not _is_real(valid_lens):
        raise ValueError(f"valid_lens must be a tensor of lengths of shape (N,) = ({N},) or "
                         f"(N, Q) = ({N}, {Q}) for {N} sequences of {Q} queries, got shape "
                         f"{tuple(valid_lens.shape)} and dtype {valid_lens.dtype}")
    return valid_lens


def _is_real(t: torch.Tensor) -> bool:
    return not (t.is_complex() or t.dtype == torch.bool)
