"""The Julia package's face where it differs from the PyTorch edition's: the helpers around
`fit` that d2lai's `Trainer` does inside itself, under their Julia names (`construct_nt_args`,
`to_gpu`, `prepare_data`, `prepare_model`, `draw_metrics`, `draw(trainer, ...)`,
`AbstractTrainer`), and the attention layers and encoder-decoder with the Julia package's
constructors and return values (weights with the output, encoder states as a list), over the
same core models as `d2lai.torch`.
"""

from __future__ import annotations

import abc
import inspect
import math
from types import SimpleNamespace

import torch
from torch import nn

from .board import ProgressBoard
from .board import draw as _board_draw
from .data.base import train_dataloader, val_dataloader
from .device import get_device
from .metrics import loss_of
from .models import attention as _attention
from .models import seq2seq as _seq2seq
from .trainer import Trainer

__all__ = ["AbstractTrainer", "construct_nt_args", "to_gpu", "prepare_data", "prepare_model",
           "draw_metrics", "DotProductAttention", "AdditiveAttention", "MultiHeadedAttention",
           "Seq2SeqEncoder", "Seq2SeqDecoder", "Seq2SeqAttentionDecoder", "show_heatmaps", "draw",
           "configure_optimizers", "_download", "model_epoch", "transpose_qkv",
           "transpose_output"]


class AbstractTrainer(abc.ABC):
    """What `d2lai.fit(trainer)` trains: anything with `fit() -> (model, metrics)`.

    `d2lai.Trainer` is one (registered, so `isinstance(trainer, AbstractTrainer)` holds). To
    change a step of the loop, subclass `d2lai.Trainer` rather than this.
    """

    @abc.abstractmethod
    def fit(self):
        """Train; return (the model, its metrics)."""


AbstractTrainer.register(Trainer)


def construct_nt_args(**kwargs) -> SimpleNamespace:
    """The Julia `construct_nt_args(; a, b)`, a NamedTuple of its keyword arguments: here a
    namespace, `construct_nt_args(W_xi=W, b_i=b).W_xi`."""
    return SimpleNamespace(**kwargs)


def to_gpu(model: nn.Module) -> nn.Module:
    """The model on the CUDA device (on the CPU, with a warning, when there is none)."""
    return model.to(get_device(True))


def prepare_model(model: nn.Module, train_on_gpu: bool = False) -> nn.Module:
    """The model where it will train: on the GPU when `train_on_gpu` (as `fit(gpu=True)`)."""
    return model.to(get_device(train_on_gpu))


def prepare_data(data, train_on_gpu: bool = False):
    """(training loader, validation loader) of a data module; with `train_on_gpu` its tensors
    move to the GPU first, so batches are cut there (as `fit(gpu=True)` does)."""
    if train_on_gpu and callable(getattr(data, "to", None)):
        data.to(get_device(True))
    return train_dataloader(data), val_dataloader(data)


# The Julia text's per-epoch lists, (train_losses, val_losses, val_acc), by the names of the
# metrics they are batches of (its val_acc is the accuracy's own name).
_TEXT_LISTS = {"train_losses": loss_of("train"), "val_losses": loss_of("val")}


def draw_metrics(model: nn.Module, epoch: int, trainer, metrics) -> dict[str, float]:
    """Draw one epoch's metrics on `trainer.board`, as `fit` does after each epoch: the losses
    and accuracy, then the model family's own metrics (a language model's perplexity).

    `metrics` holds the epoch's metrics by name (`train_loss`, `val_loss`, `val_acc`, ...) or,
    as the Julia text's `fit_epoch` returns them, lists of batch values (`train_losses`,
    `val_losses`, `val_acc`), whose means are drawn. Returns the metrics drawn.
    """
    board = getattr(trainer, "board", None)
    if not isinstance(board, ProgressBoard):
        raise ValueError("draw_metrics draws on trainer.board, but this trainer has none: build "
                         "it with Trainer(..., board=True)")
    items = vars(metrics) if isinstance(metrics, SimpleNamespace) else dict(metrics)
    logs = {}
    for name, value in items.items():
        if isinstance(value, torch.Tensor):
            value = value.detach().double().mean().item()
        elif isinstance(value, (list, tuple)):
            if not value:
                continue  # no accuracy for a regression: nothing to draw
            value = math.fsum(float(v) for v in value) / len(value)
        logs[_TEXT_LISTS.get(name, name)] = float(value)
    own = getattr(model, "epoch_metrics", None)
    if own is not None:
        logs |= own(logs)
    for name, value in logs.items():
        _board_draw(board, epoch, value, name)
    return logs


# --- attention and encoder-decoders with the Julia package's constructors and returns --------

class DotProductAttention(_attention.DotProductAttention):
    """`DotProductAttention(dropout, args)` as the Julia package builds it (`dropout` a rate or
    an `nn.Dropout`); a call returns `(output (N, Q, v), weights (N, Q, K))`."""

    def __init__(self, dropout: float | nn.Dropout = 0.0, args=None):
        super().__init__(dropout.p if isinstance(dropout, nn.Dropout) else dropout)
        self.args = SimpleNamespace() if args is None else args

    def forward(self, queries, keys, values, valid_lens=None):
        output = super().forward(queries, keys, values, valid_lens)
        return output, self.attention_weights


class AdditiveAttention(_attention.AdditiveAttention):
    """`AdditiveAttention(k_d, q_d, v_d, num_hiddens, dropout)` as the Julia package builds it;
    a call returns `(output (N, Q, v), weights (N, Q, K))`."""

    def __init__(self, k_d: int, q_d: int, v_d: int, num_hiddens: int, dropout: float = 0.0):
        super().__init__(num_hiddens, dropout, query_size=q_d, key_size=k_d)
        self.args = SimpleNamespace(k_d=k_d, q_d=q_d, v_d=v_d, num_hiddens=num_hiddens)

    def forward(self, queries, keys, values, valid_lens=None):
        output = super().forward(queries, keys, values, valid_lens)
        return output, self.attention_weights


class MultiHeadedAttention(_attention.MultiHeadedAttention):
    """`MultiHeadedAttention(num_hiddens, num_heads, dropout; bias=false)`; a call returns
    `(output (N, Q, num_hiddens), weights (N * num_heads, Q, K))`, heads fastest as the Julia
    package lays them out."""

    def __init__(self, num_hiddens: int, num_heads: int, dropout: float = 0.0,
                 bias: bool = False, **sizes):
        super().__init__(num_hiddens, num_heads, dropout, bias, **sizes)
        self.args = SimpleNamespace(num_hiddens=num_hiddens, num_heads=num_heads,
                                    dropout=dropout)

    def forward(self, queries, keys, values, valid_lens=None):
        output = super().forward(queries, keys, values, valid_lens)
        return output, self.attention_weights


class Seq2SeqEncoder(_seq2seq.Seq2SeqEncoder):
    """The RNN encoder as the Julia package's: source tokens (N, T) in, the top layer's
    outputs batch first (N, T, num_hiddens) and the list of each layer's state (N,
    num_hiddens) out."""

    def forward(self, X, *args):
        outputs, state = super().forward(X, *args)  # (T, N, h), (layers, N, h)
        return outputs.transpose(0, 1), list(state.unbind(0))


class Seq2SeqAttentionDecoder(_seq2seq.Seq2SeqAttentionDecoder):
    """The decoder with additive attention as the Julia text writes it: its state is
    `(enc_outputs (N, T_src, h), [each layer's state (N, h)], enc_valid_lens)`, the query the
    last state of the list, the step's input its embedding then the context; a decoder of
    fewer layers than the encoder starts from the encoder's first layers' states, as the
    text's does. A call returns `(output (N, T, V), state)`, and the attention weights of each
    step third with `return_attention_wts=True`."""

    def init_state(self, enc_all_outputs, enc_valid_lens=None):
        outputs, hidden_state = enc_all_outputs
        return outputs, hidden_state, enc_valid_lens

    def forward(self, X, state, return_attention_wts: bool = False):
        X = _seq2seq._tokens(X, self.vocab_size, "target")
        enc_outputs, hidden_state, enc_valid_lens = state
        if not (isinstance(enc_outputs, torch.Tensor) and enc_outputs.ndim == 3
                and isinstance(hidden_state, (list, tuple))):
            raise ValueError("Seq2SeqAttentionDecoder takes the state (enc_outputs (N, T, h), "
                             "[state of each layer (N, h)], enc_valid_lens) that "
                             "init_state(decoder, encoder(X, valid_lens), valid_lens) makes from "
                             "d2lai.Seq2SeqEncoder's outputs")
        hidden_state, layers = list(hidden_state), self.rnn.num_layers
        outputs, self._attention_weights = [], []
        for x in self.embedding(X).unbind(1):  # x: (N, embed_size)
            query = hidden_state[-1].unsqueeze(1)  # (N, 1, h)
            context = _attention.AdditiveAttention.forward(
                self.attention, query, enc_outputs, enc_outputs, enc_valid_lens)  # (N, 1, h)
            self._attention_weights.append(self.attention.attention_weights)
            x = torch.cat((x.unsqueeze(1), context), dim=-1)  # (N, 1, embed_size + h)
            out, H = self.rnn(x.transpose(0, 1), torch.stack(hidden_state[:layers]))
            hidden_state = list(H.unbind(0))
            outputs.append(out)  # (1, N, h)
        output = self.dense(torch.cat(outputs, dim=0)).transpose(0, 1)  # (N, T, V)
        state = (enc_outputs, hidden_state, enc_valid_lens)
        return (output, state, self._attention_weights) if return_attention_wts \
            else (output, state)


def show_heatmaps(matrices, xlabel: str, ylabel: str, titles=None, **kwargs):
    """The Julia `show_heatmaps(matrices, xlabel, ylabel, titles)`: each matrix (Q, K) drawn
    as the text draws its (K, Q) one, queries along x and keys along y."""
    matrices = torch.as_tensor(matrices.detach().cpu() if isinstance(matrices, torch.Tensor)
                               else matrices)
    if matrices.ndim != 4:
        raise ValueError(f"matrices must be 4-D (rows, cols, queries, keys), got shape "
                         f"{tuple(matrices.shape)}: reshape e.g. one matrix W to W[None, None]")
    return _attention.show_heatmaps(matrices.transpose(-1, -2), xlabel, ylabel, titles,
                                    **kwargs)


class Seq2SeqDecoder(_seq2seq.Seq2SeqDecoder):
    """The plain RNN decoder over `d2lai.Seq2SeqEncoder`'s batch-first outputs and list of
    states (the context: the encoder's last output)."""

    def init_state(self, enc_all_outputs, *args):
        outputs, state = enc_all_outputs  # (N, T, h), [(N, h) a layer]
        return outputs.transpose(0, 1), torch.stack(list(state))


# --- the package's remaining calls ------------------------------------------------------------

def draw(board_or_trainer, *args) -> None:
    """`draw(board, x, y, label)`, and the Julia package's `draw(trainer, epoch, losses,
    n_batches, label)`: an epoch's batch values at x = epoch + i / n_batches, i = 1..n, on
    `trainer.board`."""
    if isinstance(board_or_trainer, ProgressBoard):
        return _board_draw(board_or_trainer, *args)
    board = getattr(board_or_trainer, "board", None)
    if not isinstance(board, ProgressBoard):
        raise TypeError(f"draw: board must be a ProgressBoard, got "
                        f"{type(board_or_trainer).__name__} {board_or_trainer!r:.40} (or a "
                        f"trainer with a board: Trainer(..., board=True))")
    if len(args) != 4:
        raise TypeError(f"draw(trainer, epoch, losses, n_batches, label) takes 5 arguments, "
                        f"got {1 + len(args)}")
    epoch, losses, n_batches, label = args
    losses = [float(v) for v in losses]
    if len(losses) != n_batches:
        raise ValueError(f"draw(trainer, ...): {len(losses)} losses for n_batches={n_batches}")
    xs = [epoch + i / n_batches for i in range(1, n_batches + 1)]
    return _board_draw(board, xs, losses, label)


def configure_optimizers(model: nn.Module, rule=None):
    """The model's optimiser: its own `configure_optimizers(rule)` (the rule bound to its
    parameters), or `configure_optimizers()`; the Julia package's default gives nothing."""
    own = getattr(model, "configure_optimizers", None)
    if own is None:
        return None
    takes_rule = len(inspect.signature(own).parameters) > 0
    if takes_rule and rule is None:
        return None  # as the package's configure_optimizers(m::AbstractModel)
    return own(rule) if takes_rule else own()


def _download(what, root=None):
    """The Julia package's `_download`: for a file name (`"timemachine.txt"`, `"fra-eng.zip"`)
    its local path (fetched into the data folder if missing, SHA-1 checked); for
    `TimeMachine` the book's text, for `MTFraEng` the pairs file's text."""
    from .data import text as _text
    from .data.download import DATA_HUB, download

    if what is _text.TimeMachine:
        return _text._read_text(download("time_machine", root=root))
    if what is _text.MTFraEng:
        folder = _text.download_extract("fra-eng", root=root)
        return _text._read_text(folder / "fra.txt")
    if isinstance(what, str):
        names = {url.rsplit("/", 1)[-1]: name for name, (url, _) in DATA_HUB.items()}
        return str(download(names.get(what, what), root=root))
    raise TypeError(f"_download takes a file name such as 'timemachine.txt', TimeMachine or "
                    f"MTFraEng, got {what!r}")


def model_epoch(trainer) -> dict[str, float]:
    """One epoch by the model's own `fit_epoch(opt, train_dataloader=..., val_dataloader=...,
    gradient_clip_val=...)`, as the Julia text dispatches on its model: it returns the text's
    `(train_losses, val_losses, val_acc)` lists (a namespace or a dict), of which the mean
    training loss is the epoch's metric (the trainer then validates on the whole set)."""
    def loader(train: bool):
        named = getattr(trainer.data, "train_dataloader" if train else "val_dataloader", None)
        batches = named() if callable(named) else trainer.data.get_dataloader(train=train)
        return (trainer.prepare_batch(batch) for batch in batches)

    trainer.model.train()
    losses = trainer.model.fit_epoch(trainer.opt, train_dataloader=loader(True),
                                     val_dataloader=loader(False),
                                     gradient_clip_val=trainer.gradient_clip_val)
    items = vars(losses) if isinstance(losses, SimpleNamespace) else dict(losses or {})
    train = [float(v) for v in items.get("train_losses", [])]
    trainer.steps += len(train)
    return {loss_of("train"): math.fsum(train) / len(train)} if train else {}


def transpose_qkv(m: _attention.MultiHeadedAttention, x: torch.Tensor) -> torch.Tensor:
    """`m.transpose_qkv(x)`, as the Julia text calls it: (N, T, h) -> (N * heads, T, h/heads)."""
    return m.transpose_qkv(x)


def transpose_output(m: _attention.MultiHeadedAttention, x: torch.Tensor) -> torch.Tensor:
    """`m.transpose_output(x)`: (N * heads, T, h / heads) -> (N, T, h)."""
    return m.transpose_output(x)
