"""The edition's recurrent nets, encoder-decoders and attention (the chapters on RNNs, modern
RNNs, and attention and transformers), each a thin layer of the edition's names and calling
conventions over d2lai's own models (`d2lai.models.rnn`, `seq2seq`, `attention`,
`transformer`): one implementation for both books.

What the layer adds is the edition's way of using them: models are `Module`s and `Classifier`s
(a board, `plot`, `save_hyperparameters`, `configure_optimizers` from `lr`); a language model
plots its perplexity; a scratch RNN returns its outputs as a list of steps; the layers of
multi-head attention learn their input sizes at the first call.
"""

from __future__ import annotations

import torch
from torch import nn

from ..checks import number, positive_int
from ..models import attention as _attention
from ..models import rnn as _rnn
from ..models import seq2seq as _seq2seq
from ..models import transformer as _transformer
from .models import Classifier, Module

__all__ = [
    # recurrent nets
    "RNNScratch", "RNNLMScratch", "RNN", "RNNLM", "GRU", "LSTM", "grad_clipping",
    # encoder-decoders
    "Encoder", "Decoder", "AttentionDecoder", "EncoderDecoder", "Seq2SeqEncoder", "Seq2Seq",
    "init_seq2seq", "bleu",
    # attention and the transformer
    "sequence_mask", "masked_softmax", "DotProductAttention", "AdditiveAttention",
    "MultiHeadAttention", "PositionalEncoding", "PositionWiseFFN", "AddNorm",
    "TransformerEncoderBlock", "TransformerEncoder",
]

init_seq2seq, bleu = _seq2seq.init_seq2seq, _seq2seq.bleu
sequence_mask, masked_softmax = _attention.sequence_mask, _attention.masked_softmax
DotProductAttention, AdditiveAttention = (_attention.DotProductAttention,
                                          _attention.AdditiveAttention)
PositionalEncoding = _attention.PositionalEncoding
PositionWiseFFN, AddNorm = _transformer.PositionWiseFFN, _transformer.AddNorm
TransformerEncoderBlock = _transformer.TransformerEncoderBlock


# --- recurrent nets ------------------------------------------------------------------------------

class RNNScratch(_rnn.RNNScratch):
    """The RNN cell from scratch, H_t = tanh(X_t W_xh + H_{t-1} W_hh + b_h), on inputs
    (num_steps, batch_size, num_inputs). As the edition's, it returns the list of the steps'
    states, each (batch_size, num_hiddens), and the last state."""

    batch_first = False

    def forward(self, inputs, state=None):
        outputs, state = super().forward(inputs, state)  # (T, N, H), (N, H)
        return list(outputs), state


class RNNLMScratch(_rnn.RNNLMScratch, Classifier):
    """The language model from scratch: token indices (N, T) one-hot into `rnn`, logits
    (N, T, V) of the next token out through W_hq, b_q. It trains with SGD at `lr`, plots its
    perplexity (`train_ppl`, `val_ppl`), and `predict(prefix, num_preds, vocab, device)`
    continues a text greedily."""

    cells_batch_first = False  # the edition's own cells take their steps time first

    def training_step(self, batch):
        loss = self.loss(self(*batch[:-1]), batch[-1])
        self.plot("ppl", torch.exp(loss), train=True)
        return loss

    def validation_step(self, batch):
        """Plot the perplexity of the batch; return its loss (d2lai sums it over the set)."""
        loss = self.loss(self(*batch[:-1]), batch[-1])
        self.plot("ppl", torch.exp(loss), train=False)
        return loss


class RNNLM(RNNLMScratch):
    """The language model over a torch recurrent layer (`RNN`, `GRU`, `LSTM`, or one of
    torch's own): its outputs scored by one linear layer."""

    init_params = _rnn.RNNModelConcise.init_params
    output_layer = _rnn.RNNModelConcise.output_layer


class RNN(Module):
    """torch's `nn.RNN(num_inputs, num_hiddens)`, time first: `forward(inputs, H)` gives the
    outputs (num_steps, batch_size, num_hiddens) and the last state."""

    def __init__(self, num_inputs, num_hiddens):
        super().__init__()
        self.save_hyperparameters()
        self.rnn = nn.RNN(positive_int("num_inputs", num_inputs),
                          positive_int("num_hiddens", num_hiddens))

    def forward(self, inputs, H=None):
        return self.rnn(inputs, H)


class GRU(RNN):
    """A multilayer GRU from torch, with `dropout` between its layers."""

    def __init__(self, num_inputs, num_hiddens, num_layers, dropout=0):
        Module.__init__(self)
        self.save_hyperparameters()
        self.rnn = _seq2seq._gru(positive_int("num_inputs", num_inputs), num_hiddens,
                                 num_layers, dropout)


class LSTM(RNN):
    """A (multilayer) LSTM from torch; its state is the pair (H, C)."""

    def __init__(self, num_inputs, num_hiddens, num_layers=1, dropout=0):
        Module.__init__(self)
        self.save_hyperparameters()
        num_layers = positive_int("num_layers", num_layers)
        dropout = number("dropout", dropout, 0, 1)
        self.rnn = nn.LSTM(positive_int("num_inputs", num_inputs),
                           positive_int("num_hiddens", num_hiddens), num_layers,
                           dropout=dropout if num_layers > 1 else 0.0)  # none between 1 layer

    def forward(self, inputs, H_C=None):
        return self.rnn(inputs, H_C)


def grad_clipping(net, theta) -> None:
    """Scale the gradients of `net` (a module, or an object with a list `params`) so that their
    global norm is at most `theta`."""
    _rnn.clip_gradients(theta, net if isinstance(net, nn.Module) else net.params, "max_norm")


# --- encoder-decoders ----------------------------------------------------------------------------

class Encoder(nn.Module):
    """The encoder interface: `forward(X, *args)` reads the source."""

    def forward(self, X, *args):
        raise NotImplementedError(f"{type(self).__name__} must define forward(X, *args)")


class Decoder(nn.Module):
    """The decoder interface: `init_state(enc_all_outputs, *args)` makes its first state from
    what the encoder read; `forward(X, state)` gives (outputs, new state)."""

    def init_state(self, enc_all_outputs, *args):
        raise NotImplementedError(f"{type(self).__name__} must define init_state("
                                  f"enc_all_outputs, *args)")

    def forward(self, X, state):
        raise NotImplementedError(f"{type(self).__name__} must define forward(X, state)")


class AttentionDecoder(Decoder):
    """The interface of a decoder with attention: `attention_weights` of its last call."""

    @property
    def attention_weights(self):
        raise NotImplementedError(f"{type(self).__name__} must define the attention_weights "
                                  f"property")


class EncoderDecoder(_seq2seq.AbstractEncoderDecoder, Classifier):
    """An encoder and a decoder: `forward(enc_X, dec_X, *args)` gives the decoder's logits
    (N, T, V), scored against the labels at every position (the padding left out once the
    model knows `tgt_pad`); `predict_step(batch, device, num_steps)` decodes greedily."""


class Seq2SeqEncoder(_seq2seq.Seq2SeqEncoder, Encoder):
    """The RNN encoder: embedding, then a multilayer GRU; `forward(X)` on tokens
    (batch_size, num_steps) gives (outputs (num_steps, batch_size, num_hiddens), state
    (num_layers, batch_size, num_hiddens))."""


class Seq2Seq(_seq2seq.Seq2Seq, EncoderDecoder):
    """The encoder-decoder of the edition's translation sections: padding (`tgt_pad`) left out
    of loss and accuracy, trained with Adam at `lr`. Validation plots the loss and returns it
    with the token accuracy."""

    def validation_step(self, batch):
        Y_hat = self(*batch[:-1])
        loss = self.loss(Y_hat, batch[-1])
        self.plot("loss", loss, train=False)
        return loss, self.accuracy(Y_hat, batch[-1])


# --- attention and the transformer ---------------------------------------------------------------

class MultiHeadAttention(_attention.MultiHeadedAttention):
    """Multi-head attention: `num_heads` scaled dot-product attentions over projections of the
    queries, keys and values, joined and projected by W_o. As the edition's, the three input
    projections learn their input sizes at the first call."""

    def __init__(self, num_hiddens, num_heads, dropout, bias=False):
        super().__init__(num_hiddens, num_heads, dropout, bias)
        self.W_q, self.W_k, self.W_v = (nn.LazyLinear(num_hiddens, bias=bias) for _ in range(3))


class TransformerEncoder(_transformer.TransformerEncoder, Encoder):
    """The transformer encoder: embedding (scaled by sqrt(num_hiddens)) plus positional
    encoding, then `num_blks` encoder blocks; `attention_weights` holds each block's."""
