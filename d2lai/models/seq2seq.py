"""Encoder-decoders for sequence to sequence learning: the model family, the RNN encoder and
decoders (plain and with additive attention), greedy prediction and the BLEU score.

Batches are `(src, dec_input, src_valid_len, label)`, batch first: src (N, T_src) and
dec_input, label (N, T) token indices, src_valid_len (N,). The model's output is (N, T, V)
logits over the target vocabulary; padding in the label is left out of loss and accuracy.
"""

from __future__ import annotations

import collections
import math

import torch
from torch import nn

from ..checks import count, flag, number, positive_int
from .attention import AdditiveAttention
from .classifier import AbstractClassifier

__all__ = ["AbstractEncoderDecoder", "Seq2SeqEncoder", "Seq2SeqDecoder",
           "Seq2SeqAttentionDecoder", "Seq2Seq", "init_seq2seq", "init_state", "predict_step",
           "bleu"]


class AbstractEncoderDecoder(AbstractClassifier):
    """An encoder and a decoder: the encoder reads the source, the decoder's state starts from
    what it read (`decoder.init_state`), and the decoder scores each next target token.

    Outputs are logits (N, T, V); loss and accuracy run over all positions, flattened, except
    where `target_mask(y)` is False (the padding, once the model knows its pad index `tgt_pad`).
    """

    output_kind = "logits"

    def __init__(self, encoder: nn.Module, decoder: nn.Module):
        super().__init__()
        _check_sizes(encoder, decoder)
        self.encoder = encoder
        self.decoder = decoder

    def check_batch(self, y_hat: torch.Tensor, y: torch.Tensor, data=None) -> str:
        """The pad masked is the data's target `<pad>` (when the data module knows it); then
        the classifier's checks."""
        pad, vocab = getattr(self, "tgt_pad", None), getattr(data, "tgt_vocab", None)
        theirs = getattr(vocab, "token_to_idx", {}).get("<pad>")
        if pad is not None and theirs is not None and pad != theirs:
            raise ValueError(f"tgt_pad={pad} but the data's target vocabulary's '<pad>' is "
                             f"{theirs}: the loss would leave out the token {pad} and count the "
                             f"padding. Build the model with tgt_pad=data.tgt_vocab['<pad>']")
        return super().check_batch(y_hat, y, data)

    def forward(self, enc_X: torch.Tensor, dec_X: torch.Tensor, *args) -> torch.Tensor:
        enc_all_outputs = self.encoder(enc_X, *args)
        dec_state = self.decoder.init_state(enc_all_outputs, *args)
        return self.decoder(dec_X, dec_state)[0]  # (N, T, V)

    def target_mask(self, y: torch.Tensor) -> torch.Tensor | None:
        """True where a target position counts: everywhere but the padding."""
        pad = getattr(self, "tgt_pad", None)
        return None if pad is None else y != pad

    @torch.no_grad()
    def predict_step(self, batch, device, num_steps: int, save_attention_weights: bool = False,
                     eos: int | None = None) -> tuple[torch.Tensor, list]:
        """Greedy decoding of a batch `(src, tgt, src_valid_len, ...)`, starting each target
        from its first token (`<bos>`) and feeding back the most likely next token.

        Returns the predicted indices (N, steps) and the decoder's attention weights of each
        step ([] unless `save_attention_weights`). Decoding stops early once every sequence has
        produced `eos` (default: the model's `tgt_eos`); after its `eos`, a sequence is padded
        with `tgt_pad` (or `eos`). Runs in evaluation mode on `device` (None: the model's
        device; the model moves there too).
        """
        num_steps = positive_int("num_steps", num_steps)
        save_attention_weights = flag("save_attention_weights", save_attention_weights)
        eos = getattr(self, "tgt_eos", None) if eos is None else count("eos", eos)
        if save_attention_weights and not hasattr(self.decoder, "attention_weights"):
            raise ValueError(f"{type(self.decoder).__name__} has no attention weights to save: "
                             f"use save_attention_weights=False")
        if len(batch) < 3:
            raise ValueError(f"batch must be (src, tgt, src_valid_len, label), got "
                             f"{len(batch)} items")
        if device is None:
            device = next(self.parameters()).device
        was_training = self.training
        self.to(device).eval()
        try:
            src, tgt, src_valid_len = (torch.as_tensor(a).to(device) for a in batch[:3])
            enc_all_outputs = self.encoder(src, src_valid_len)
            dec_state = self.decoder.init_state(enc_all_outputs, src_valid_len)
            Y_t = tgt[:, :1]  # (N, 1): each target's first token
            done = torch.zeros(len(tgt), dtype=torch.bool, device=tgt.device)  # (N,)
            fill = eos if getattr(self, "tgt_pad", None) is None else self.tgt_pad
            outputs, attention_weights = [], []
            for _ in range(num_steps):
                Y, dec_state = self.decoder(Y_t, dec_state)  # (N, 1, V)
                Y_t = Y.argmax(dim=2)  # (N, 1)
                if save_attention_weights:
                    attention_weights.append(self.decoder.attention_weights)
                if eos is not None:
                    Y_t = Y_t.masked_fill(done[:, None], fill)
                    done = done | (Y_t[:, 0] == eos)
                outputs.append(Y_t)
                if eos is not None and bool(done.all()):
                    break
        finally:
            self.train(was_training)
        return torch.cat(outputs, dim=1), attention_weights  # (N, steps), [...]


def predict_step(model: AbstractEncoderDecoder, batch, device, num_steps: int, *,
                 save_attention_weights: bool = False, save_attention_wts: bool | None = None,
                 eos: int | None = None) -> tuple[torch.Tensor, list]:
    """`model.predict_step(...)` as the Julia text calls it: `predict_step(model, batch, "cpu",
    data.args.num_steps, save_attention_wts=True)` gives (predicted indices (N, steps), the
    decoder's attention weights of each step). `save_attention_wts` is the Julia keyword."""
    if not isinstance(model, AbstractEncoderDecoder):
        raise TypeError(f"predict_step takes an encoder-decoder (a d2lai.Seq2Seq, say), got "
                        f"{type(model).__name__}")
    if save_attention_wts is not None:
        save_attention_weights = save_attention_wts
    return model.predict_step(batch, device, num_steps, save_attention_weights, eos)


def init_state(decoder: nn.Module, enc_all_outputs, *args):
    """The decoder's first state from the encoder's outputs (`decoder.init_state(...)`)."""
    return decoder.init_state(enc_all_outputs, *args)


def init_seq2seq(module: nn.Module) -> None:
    """Xavier-uniform weights for linear layers and GRUs (use with `model.apply`)."""
    if type(module) is nn.Linear:
        nn.init.xavier_uniform_(module.weight)
    if type(module) is nn.GRU:
        for name in module._flat_weights_names:
            if "weight" in name:
                nn.init.xavier_uniform_(module._parameters[name])


class Seq2SeqEncoder(nn.Module):
    """The RNN encoder: embedding, then a multilayer GRU over the source.

    Returns the GRU's outputs (T, N, num_hiddens), time first as the book's, and its final
    state (num_layers, N, num_hiddens).
    """

    def __init__(self, vocab_size: int, embed_size: int, num_hiddens: int, num_layers: int,
                 dropout: float = 0):
        super().__init__()
        self.vocab_size = positive_int("vocab_size", vocab_size)
        self.embedding = nn.Embedding(vocab_size, positive_int("embed_size", embed_size))
        self.rnn = _gru(embed_size, num_hiddens, num_layers, dropout)
        self.apply(init_seq2seq)

    def forward(self, X: torch.Tensor, *args) -> tuple[torch.Tensor, torch.Tensor]:
        X = _tokens(X, self.vocab_size, "source")
        embs = self.embedding(X.t())  # (T, N, embed_size)
        outputs, state = self.rnn(embs)  # (T, N, num_hiddens), (num_layers, N, num_hiddens)
        return outputs, state


class Seq2SeqDecoder(nn.Module):
    """The RNN decoder: at each step the GRU reads the token's embedding joined with the
    context, the encoder's output at its last time step; a linear layer scores the next token.
    """

    def __init__(self, vocab_size: int, embed_size: int, num_hiddens: int, num_layers: int,
                 dropout: float = 0):
        super().__init__()
        self.vocab_size = positive_int("vocab_size", vocab_size)
        self.embedding = nn.Embedding(vocab_size, positive_int("embed_size", embed_size))
        self.rnn = _gru(embed_size + num_hiddens, num_hiddens, num_layers, dropout)
        self.dense = nn.Linear(num_hiddens, vocab_size)
        self.apply(init_seq2seq)

    def init_state(self, enc_all_outputs, *args):
        return enc_all_outputs  # (outputs, hidden state) of the encoder

    def forward(self, X: torch.Tensor, state) -> tuple[torch.Tensor, list]:
        X = _tokens(X, self.vocab_size, "target")
        embs = self.embedding(X.t())  # (T, N, embed_size)
        enc_output, hidden_state = state
        context = enc_output[-1].expand(embs.shape[0], -1, -1)  # (T, N, num_hiddens)
        outputs, hidden_state = self.rnn(torch.cat((embs, context), -1), hidden_state)
        outputs = self.dense(outputs).swapaxes(0, 1)  # (N, T, vocab_size)
        return outputs, [enc_output, hidden_state]


class Seq2SeqAttentionDecoder(nn.Module):
    """The RNN decoder with additive (Bahdanau) attention: at each step the context is the
    attention-weighted sum of the encoder's outputs, queried by the decoder's last hidden state.

    `attention_weights` holds one (N, 1, T_src) tensor per step of the last call.
    """

    def __init__(self, vocab_size: int, embed_size: int, num_hiddens: int, num_layers: int,
                 dropout: float = 0):
        super().__init__()
        self.vocab_size = positive_int("vocab_size", vocab_size)
        num_hiddens = positive_int("num_hiddens", num_hiddens)
        self.attention = AdditiveAttention(num_hiddens, dropout, query_size=num_hiddens,
                                           key_size=num_hiddens)
        self.embedding = nn.Embedding(vocab_size, positive_int("embed_size", embed_size))
        self.rnn = _gru(embed_size + num_hiddens, num_hiddens, num_layers, dropout)
        self.dense = nn.Linear(num_hiddens, vocab_size)
        self._attention_weights: list[torch.Tensor] = []
        self.apply(init_seq2seq)

    def init_state(self, enc_outputs, enc_valid_lens=None):
        outputs, hidden_state = enc_outputs  # (T_src, N, num_hiddens), (layers, N, num_hiddens)
        return outputs.permute(1, 0, 2), hidden_state, enc_valid_lens

    def forward(self, X: torch.Tensor, state) -> tuple[torch.Tensor, list]:
        X = _tokens(X, self.vocab_size, "target")
        enc_outputs, hidden_state, enc_valid_lens = state  # (N, T_src, num_hiddens), ...
        embs = self.embedding(X).permute(1, 0, 2)  # (T, N, embed_size)
        outputs, self._attention_weights = [], []
        for x in embs:  # x: (N, embed_size)
            query = hidden_state[-1].unsqueeze(1)  # (N, 1, num_hiddens)
            context = self.attention(query, enc_outputs, enc_outputs, enc_valid_lens)  # (N, 1, h)
            x = torch.cat((context, x.unsqueeze(1)), dim=-1)  # (N, 1, num_hiddens + embed_size)
            out, hidden_state = self.rnn(x.permute(1, 0, 2), hidden_state)  # (1, N, h)
            outputs.append(out)
            self._attention_weights.append(self.attention.attention_weights)
        outputs = self.dense(torch.cat(outputs, dim=0))  # (T, N, vocab_size)
        return outputs.permute(1, 0, 2), [enc_outputs, hidden_state, enc_valid_lens]

    @property
    def attention_weights(self) -> list[torch.Tensor]:
        return self._attention_weights


class Seq2Seq(AbstractEncoderDecoder):
    """An encoder-decoder; `tgt_pad` (the target vocabulary's `<pad>` index) is masked in loss
    and accuracy, and `tgt_eos`, when given, ends prediction. `Seq2Seq(encoder, decoder,
    tgt_pad)` as the Julia text builds it trains with the `opt` given to the Trainer; with `lr`
    (the PyTorch edition's), `opt=None` trains it with Adam at that rate.
    """

    def __init__(self, encoder: nn.Module, decoder: nn.Module, tgt_pad: int,
                 lr: float | None = None, tgt_eos: int | None = None):
        super().__init__(encoder, decoder)
        self.tgt_pad = count("tgt_pad", tgt_pad)
        self.lr = number("lr", lr, 0, open_low=True, allow_none=True)
        self.tgt_eos = None if tgt_eos is None else count("tgt_eos", tgt_eos)
        V = getattr(decoder, "vocab_size", None)  # the target vocabulary's size
        for name, index in (("tgt_pad", self.tgt_pad), ("tgt_eos", self.tgt_eos)):
            if V is not None and index is not None and index >= V:
                raise ValueError(f"{name}={index} is no token of the target vocabulary of {V} "
                                 f"tokens (the decoder's vocab_size): pass the target "
                                 f"vocabulary's index, e.g. data.tgt_vocab['<pad>']")

    def configure_optimizers(self) -> torch.optim.Optimizer:
        if self.lr is None:
            raise ValueError("Seq2Seq was built without lr, so it has no optimiser of its own: "
                             "pass one to the Trainer (opt=d2lai.Adam(0.005)), or build it with "
                             "Seq2Seq(encoder, decoder, tgt_pad, lr=0.005)")
        return torch.optim.Adam(self.parameters(), lr=self.lr)


def bleu(pred_seq: str, label_seq: str, k: int) -> float:
    """BLEU of a predicted token sequence against a label (tokens split on spaces):
    exp(min(0, 1 - len_label / len_pred)) * prod_{n=1..k} p_n^(1/2^n), with p_n the precision
    of the prediction's n-grams, each label n-gram matched at most as often as it occurs."""
    k = positive_int("k", k)
    pred_tokens, label_tokens = pred_seq.split(), label_seq.split()
    len_pred, len_label = len(pred_tokens), len(label_tokens)
    if len_pred == 0:
        return 0.0
    score = math.exp(min(0, 1 - len_label / len_pred))  # brevity penalty
    for n in range(1, min(k, len_pred) + 1):
        num_matches, label_subs = 0, collections.Counter(
            tuple(label_tokens[i:i + n]) for i in range(len_label - n + 1))
        for i in range(len_pred - n + 1):
            ngram = tuple(pred_tokens[i:i + n])
            if label_subs[ngram] > 0:
                num_matches += 1
                label_subs[ngram] -= 1
        score *= math.pow(num_matches / (len_pred - n + 1), math.pow(0.5, n))
    return score


def _check_sizes(encoder: nn.Module, decoder: nn.Module) -> None:
    """The decoder starts from the encoder's state: their recurrent layers must have the same
    width and depth (compared here, named, rather than failing inside torch)."""
    enc, dec = getattr(encoder, "rnn", None), getattr(decoder, "rnn", None)
    if not (isinstance(enc, nn.RNNBase) and isinstance(dec, nn.RNNBase)):
        return
    # a decoder deeper than its encoder has no state to start from; a shallower one takes the
    # encoder's first layers' states where it says so (attention decoders, the Julia text's)
    shallow_ok = not isinstance(decoder, Seq2SeqDecoder)
    for what, a, b in (("hidden units", enc.hidden_size, dec.hidden_size),
                       ("layer(s)", enc.num_layers * (1 + enc.bidirectional), dec.num_layers)):
        if a != b and not (what == "layer(s)" and b < a and shallow_ok):
            raise ValueError(f"the encoder ({type(enc).__name__}) has {a} {what} but the decoder "
                             f"({type(dec).__name__}) has {b}: the decoder starts from the "
                             f"encoder's state, so build both with the same num_hiddens and "
                             f"num_layers")


def _gru(num_inputs: int, num_hiddens, num_layers, dropout) -> nn.GRU:
    """A GRU with dropout between its layers (none with one layer, where torch would warn)."""
    num_layers = positive_int("num_layers", num_layers)
    dropout = number("dropout", dropout, 0, 1)
    return nn.GRU(num_inputs, positive_int("num_hiddens", num_hiddens), num_layers,
                  dropout=dropout if num_layers > 1 else 0.0)


def _tokens(X: torch.Tensor, vocab_size: int, what: str) -> torch.Tensor:
    """X as int64 token indices; a ValueError naming both sizes when some index is outside
    the vocabulary."""
    X = torch.as_tensor(X)
    if X.is_floating_point() and X.numel() and bool((X != X.round()).any()):
        raise ValueError(f"{what} tokens must be integer indices, got non-integral values")
    if X.numel():
        lo, hi = (int(v) for v in torch.aminmax(X))
        if lo < 0 or hi >= vocab_size:
            raise ValueError(f"{what} token indices range from {lo} to {hi}, but the "
                             f"{what} vocabulary of the model has {vocab_size} tokens "
                             f"(indices 0..{vocab_size - 1}): build the model with the data's "
                             f"vocabulary size, len(vocab)")
    return X.long()
