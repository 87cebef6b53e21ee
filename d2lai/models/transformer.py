"""The transformer: position-wise feed-forward nets, add & norm, and the encoder and decoder
built from blocks of multi-head attention (usable with `Seq2Seq`).

Tensors are batch first: (N, T, num_hiddens).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..checks import count, flag, number, positive_int
from .attention import MultiHeadedAttention, PositionalEncoding
from .seq2seq import _tokens

__all__ = ["PositionWiseFFN", "AddNorm", "TransformerEncoderBlock", "TransformerEncoder",
           "TransformerDecoderBlock", "TransformerDecoder"]


class PositionWiseFFN(nn.Module):
    """The same two-layer MLP (ReLU between) applied at every position.

    Its input size is `num_inputs`; left at None, the first layer learns it from the first call
    (a lazy layer, as the book's).
    """

    def __init__(self, ffn_num_hiddens: int, ffn_num_outputs: int, num_inputs: int | None = None):
        super().__init__()
        ffn_num_hiddens = positive_int("ffn_num_hiddens", ffn_num_hiddens)
        num_inputs = positive_int("num_inputs", num_inputs, allow_none=True)
        self.dense1 = (nn.LazyLinear(ffn_num_hiddens) if num_inputs is None
                       else nn.Linear(num_inputs, ffn_num_hiddens))
        self.relu = nn.ReLU()
        self.dense2 = nn.Linear(ffn_num_hiddens, positive_int("ffn_num_outputs", ffn_num_outputs))

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        return self.dense2(self.relu(self.dense1(X)))  # (N, T, ffn_num_outputs)


class AddNorm(nn.Module):
    """The residual connection then layer normalisation: LayerNorm(X + dropout(Y))."""

    def __init__(self, norm_shape, dropout: float):
        super().__init__()
        self.dropout = nn.Dropout(number("dropout", dropout, 0, 1))
        self.ln = nn.LayerNorm(norm_shape)

    def forward(self, X: torch.Tensor, Y: torch.Tensor) -> torch.Tensor:
        return self.ln(self.dropout(Y) + X)


class TransformerEncoderBlock(nn.Module):
    """Self-attention then a position-wise FFN, each followed by add & norm."""

    def __init__(self, num_hiddens: int, ffn_num_hiddens: int, num_heads: int, dropout: float,
                 use_bias: bool = False):
        super().__init__()
        self.attention = MultiHeadedAttention(num_hiddens, num_heads, dropout,
                                              flag("use_bias", use_bias))
        self.addnorm1 = AddNorm(num_hiddens, dropout)
        self.ffn = PositionWiseFFN(ffn_num_hiddens, num_hiddens, num_inputs=num_hiddens)
        self.addnorm2 = AddNorm(num_hiddens, dropout)

    def forward(self, X: torch.Tensor, valid_lens=None) -> torch.Tensor:
        Y = self.addnorm1(X, self.attention(X, X, X, valid_lens))  # (N, T, h)
        return self.addnorm2(Y, self.ffn(Y))  # (N, T, h)


class TransformerEncoder(nn.Module):
    """Embedding (scaled by sqrt(num_hiddens)) plus positional encoding, then num_blks encoder
    blocks. `attention_weights` holds each block's (N * num_heads, T, T) weights."""

    def __init__(self, vocab_size: int, num_hiddens: int, ffn_num_hiddens: int, num_heads: int,
                 num_blks: int, dropout: float, use_bias: bool = False, max_len: int = 1000):
        super().__init__()
        self.vocab_size = positive_int("vocab_size", vocab_size)
        self.num_hiddens = positive_int("num_hiddens", num_hiddens)
        self.embedding = nn.Embedding(vocab_size, num_hiddens)
        self.pos_encoding = PositionalEncoding(num_hiddens, dropout, max_len)
        self.blks = nn.Sequential(*(
            TransformerEncoderBlock(num_hiddens, ffn_num_hiddens, num_heads, dropout, use_bias)
            for _ in range(positive_int("num_blks", num_blks))))
        self.attention_weights: list[torch.Tensor | None] = [None] * num_blks

    def forward(self, X: torch.Tensor, valid_lens=None, *args) -> torch.Tensor:
        X = _tokens(X, self.vocab_size, "source")
        # the encoding lies in [-1, 1]: scale the embedding up so that it is not drowned
        X = self.pos_encoding(self.embedding(X) * math.sqrt(self.num_hiddens))  # (N, T, h)
        for i, blk in enumerate(self.blks):
            X = blk(X, valid_lens)
            self.attention_weights[i] = blk.attention.attention_weights
        return X  # (N, T, h)


class TransformerDecoderBlock(nn.Module):
    """Masked self-attention, attention over the encoder's outputs, then a position-wise FFN,
    each followed by add & norm. `i` is the block's place in the decoder.

    The state's third item keeps, per block, the block's inputs so far: a decoder fed one token
    at a time attends to all earlier ones. Each position attends only to itself and earlier
    positions, in training and evaluation alike (the book masks only in training mode).
    """

    def __init__(self, num_hiddens: int, ffn_num_hiddens: int, num_heads: int, dropout: float,
                 i: int):
        super().__init__()
        self.i = count("i", i)
        self.attention1 = MultiHeadedAttention(num_hiddens, num_heads, dropout)
        self.addnorm1 = AddNorm(num_hiddens, dropout)
        self.attention2 = MultiHeadedAttention(num_hiddens, num_heads, dropout)
        self.addnorm2 = AddNorm(num_hiddens, dropout)
        self.ffn = PositionWiseFFN(ffn_num_hiddens, num_hiddens, num_inputs=num_hiddens)
        self.addnorm3 = AddNorm(num_hiddens, dropout)

    def forward(self, X: torch.Tensor, state: list) -> tuple[torch.Tensor, list]:
        enc_outputs, enc_valid_lens, cache = state
        N, T, _ = X.shape
        past = 0 if cache[self.i] is None else cache[self.i].shape[1]
        key_values = X if cache[self.i] is None else torch.cat((cache[self.i], X), dim=1)
        cache[self.i] = key_values  # (N, past + T, h)
        # query t (at position past + t) sees the keys at positions 0..past + t
        dec_valid_lens = torch.arange(past + 1, past + T + 1, device=X.device).repeat(N, 1)
        X2 = self.attention1(X, key_values, key_values, dec_valid_lens)  # (N, T, h)
        Y = self.addnorm1(X, X2)
        Y2 = self.attention2(Y, enc_outputs, enc_outputs, enc_valid_lens)  # (N, T, h)
        Z = self.addnorm2(Y, Y2)
        return self.addnorm3(Z, self.ffn(Z)), state


class TransformerDecoder(nn.Module):
    """Embedding plus positional encoding, num_blks decoder blocks, and a linear layer scoring
    the next token. `attention_weights` is [self-attention weights per block, encoder-decoder
    attention weights per block] of the last call."""

    def __init__(self, vocab_size: int, num_hiddens: int, ffn_num_hiddens: int, num_heads: int,
                 num_blks: int, dropout: float, max_len: int = 1000):
        super().__init__()
        self.vocab_size = positive_int("vocab_size", vocab_size)
        self.num_hiddens = positive_int("num_hiddens", num_hiddens)
        self.num_blks = positive_int("num_blks", num_blks)
        self.embedding = nn.Embedding(vocab_size, num_hiddens)
        self.pos_encoding = PositionalEncoding(num_hiddens, dropout, max_len)
        self.blks = nn.Sequential(*(
            TransformerDecoderBlock(num_hiddens, ffn_num_hiddens, num_heads, dropout, i)
            for i in range(num_blks)))
        self.dense = nn.Linear(num_hiddens, vocab_size)
        self._attention_weights: list[list] = [[None] * num_blks for _ in range(2)]

    def init_state(self, enc_outputs, enc_valid_lens=None, *args) -> list:
        return [enc_outputs, enc_valid_lens, [None] * self.num_blks]

    def forward(self, X: torch.Tensor, state: list) -> tuple[torch.Tensor, list]:
        X = _tokens(X, self.vocab_size, "target")
        past = 0 if state[2][0] is None else state[2][0].shape[1]  # tokens already decoded
        X = self.pos_encoding(self.embedding(X) * math.sqrt(self.num_hiddens), offset=past)
        self._attention_weights = [[None] * self.num_blks for _ in range(2)]
        for i, blk in enumerate(self.blks):
            X, state = blk(X, state)
            self._attention_weights[0][i] = blk.attention1.attention_weights
            self._attention_weights[1][i] = blk.attention2.attention_weights
        return self.dense(X), state  # (N, T, vocab_size)

    @property
    def attention_weights(self) -> list[list]:
        return self._attention_weights
