"""Recurrent nets (chapters 8-9): RNN, LSTM and GRU cells from scratch, a stack of them, and the
language models over a recurrent net (scratch and concise output layers) with greedy prediction.

The cells take their inputs time first, `(num_steps, batch_size, num_inputs)`, as the book's
scratch cells and torch's `nn.RNN` do; the language models take token indices batch first,
`(batch_size, num_steps)`, and return logits `(batch_size, num_steps, vocab_size)`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import nn

from ..checks import count, number, positive_int
from .classifier import AbstractClassifier

__all__ = ["RNNScratch", "LSTMScratch", "GRUScratch", "StackedRNN", "StackedRNNScratch",
           "AbstractRNNClassifier", "RNNLMScratch", "RNNModelConcise", "clip_gradients",
           "output_layer", "prediction"]


# --- the cells, from scratch ---------------------------------------------------------------------

class _ScratchCell(nn.Module):
    """What the scratch cells share: sizes, weights drawn from N(0, sigma^2), and the check of
    inputs `(T, N, num_inputs)` and state that gives the zero state when there is none."""

    state_parts = 1  # tensors (N, num_hiddens) in the state: 1, or 2 for the LSTM's (H, C)

    def __init__(self, num_inputs: int, num_hiddens: int, sigma: float = 0.01):
        super().__init__()
        self.num_inputs = positive_int("num_inputs", num_inputs)
        self.num_hiddens = positive_int("num_hiddens", num_hiddens)
        self.sigma = number("sigma", sigma, 0, math.inf, open_high=True)

    def triple(self) -> tuple[nn.Parameter, nn.Parameter, nn.Parameter]:
        """(W_x, W_h, b) of one gate: (num_inputs, H) and (H, H) weights, a zero bias (H,)."""
        return (nn.Parameter(torch.randn(self.num_inputs, self.num_hiddens) * self.sigma),
                nn.Parameter(torch.randn(self.num_hiddens, self.num_hiddens) * self.sigma),
                nn.Parameter(torch.zeros(self.num_hiddens)))

    def begin(self, inputs: torch.Tensor, state):
        """The state to start from (zeros when None), after checking inputs and state."""
        name = type(self).__name__
        if not (isinstance(inputs, torch.Tensor) and inputs.ndim == 3
                and inputs.shape[-1] == self.num_inputs and inputs.is_floating_point()
                and inputs.shape[0] > 0):
            got = (f"shape {tuple(inputs.shape)} {inputs.dtype}" if isinstance(inputs, torch.Tensor)
                   else type(inputs).__name__)
            raise ValueError(f"{name} takes float inputs of shape (num_steps, batch_size, "
                             f"{self.num_inputs}), time first and at least one step, got {got}")
        shape = (inputs.shape[1], self.num_hiddens)
        if state is None:
            zeros = [inputs.new_zeros(shape) for _ in range(self.state_parts)]
            return zeros[0] if self.state_parts == 1 else tuple(zeros)
        parts = (state,) if self.state_parts == 1 else state
        if not (isinstance(parts, (tuple, list)) and len(parts) == self.state_parts
                and all(isinstance(s, torch.Tensor) and s.shape == shape for s in parts)):
            what = f"a tensor of shape {shape}" if self.state_parts == 1 else \
                f"a pair (H, C) of tensors of shape {shape}"
            got = (f"shape {tuple(state.shape)}" if isinstance(state, torch.Tensor)
                   else type(state).__name__)
            raise ValueError(f"{name} takes as state {what} (batch_size, num_hiddens), got {got}")
        return state


class RNNScratch(_ScratchCell):
    """The plain RNN cell: H_t = tanh(X_t W_xh + H_{t-1} W_hh + b_h)."""

    def __init__(self, num_inputs: int, num_hiddens: int, sigma: float = 0.01):
        super().__init__(num_inputs, num_hiddens, sigma)
        self.W_xh, self.W_hh, self.b_h = self.triple()

    def forward(self, inputs: torch.Tensor, state: torch.Tensor | None = None):
        """(outputs (T, N, H), last state (N, H)) for inputs (T, N, num_inputs)."""
        state = self.begin(inputs, state)
        outputs = []
        for X in inputs:  # X: (N, num_inputs)
            state = torch.tanh(X @ self.W_xh + state @ self.W_hh + self.b_h)
            outputs.append(state)
        return torch.stack(outputs), state


class LSTMScratch(_ScratchCell):
    """The LSTM cell: input, forget and output gates and an input node; state (H, C)."""

    state_parts = 2

    def __init__(self, num_inputs: int, num_hiddens: int, sigma: float = 0.01):
        super().__init__(num_inputs, num_hiddens, sigma)
        self.W_xi, self.W_hi, self.b_i = self.triple()  # input gate
        self.W_xf, self.W_hf, self.b_f = self.triple()  # forget gate
        self.W_xo, self.W_ho, self.b_o = self.triple()  # output gate
        self.W_xc, self.W_hc, self.b_c = self.triple()  # input node

    def forward(self, inputs: torch.Tensor, H_C: tuple | None = None):
        """(outputs (T, N, H), (H, C) each (N, H)) for inputs (T, N, num_inputs)."""
        H, C = self.begin(inputs, H_C)
        outputs = []
        for X in inputs:  # X: (N, num_inputs)
            I = torch.sigmoid(X @ self.W_xi + H @ self.W_hi + self.b_i)  # noqa: E741
            F_ = torch.sigmoid(X @ self.W_xf + H @ self.W_hf + self.b_f)
            O = torch.sigmoid(X @ self.W_xo + H @ self.W_ho + self.b_o)  # noqa: E741
            C_tilde = torch.tanh(X @ self.W_xc + H @ self.W_hc + self.b_c)
            C = F_ * C + I * C_tilde
            H = O * torch.tanh(C)
            outputs.append(H)
        return torch.stack(outputs), (H, C)


class GRUScratch(_ScratchCell):
    """The GRU cell, as the book writes it: the reset gate scales H_{t-1} before W_hh.

    (torch's `nn.GRU` scales the product instead, `R * (H W_hh + b)`: the two agree when W_hh
    is diagonal and that bias is zero.)
    """

    def __init__(self, num_inputs: int, num_hiddens: int, sigma: float = 0.01):
        super().__init__(num_inputs, num_hiddens, sigma)
        self.W_xz, self.W_hz, self.b_z = self.triple()  # update gate
        self.W_xr, self.W_hr, self.b_r = self.triple()  # reset gate
        self.W_xh, self.W_hh, self.b_h = self.triple()  # candidate hidden state

    def forward(self, inputs: torch.Tensor, H: torch.Tensor | None = None):
        """(outputs (T, N, H), last state (N, H)) for inputs (T, N, num_inputs)."""
        H = self.begin(inputs, H)
        outputs = []
        for X in inputs:  # X: (N, num_inputs)
            Z = torch.sigmoid(X @ self.W_xz + H @ self.W_hz + self.b_z)
            R = torch.sigmoid(X @ self.W_xr + H @ self.W_hr + self.b_r)
            H_tilde = torch.tanh(X @ self.W_xh + (R * H) @ self.W_hh + self.b_h)
            H = Z * H + (1 - Z) * H_tilde
            outputs.append(H)
        return torch.stack(outputs), H


class StackedRNN(nn.Module):
    """`num_layers` scratch cells, each reading the outputs of the one below; the state is the
    list of the layers' states. `cell` picks the cell (the Julia text stacks GRUs:
    `cell=GRUScratch`)."""

    def __init__(self, num_inputs: int, num_hiddens: int, num_layers: int, sigma: float = 0.01,
                 cell: Callable[..., nn.Module] = RNNScratch):
        super().__init__()
        self.num_inputs = positive_int("num_inputs", num_inputs)
        self.num_hiddens = positive_int("num_hiddens", num_hiddens)
        self.num_layers = positive_int("num_layers", num_layers)
        self.sigma = number("sigma", sigma, 0, math.inf, open_high=True)
        if not callable(cell):
            raise TypeError(f"cell must be a cell class such as RNNScratch, got {cell!r}")
        self.rnns = nn.ModuleList(cell(num_inputs if i == 0 else num_hiddens, num_hiddens, sigma)
                                  for i in range(num_layers))

    def forward(self, inputs: torch.Tensor, Hs: list | None = None):
        """(outputs (T, N, H) of the top layer, [state of each layer]) for inputs (T, N, I)."""
        if Hs is None:
            Hs = [None] * self.num_layers
        if len(Hs) != self.num_layers:
            raise ValueError(f"StackedRNN takes one state per layer ({self.num_layers}), got "
                             f"{len(Hs)}")
        outputs, states = inputs, []
        for rnn, H in zip(self.rnns, Hs, strict=True):
            outputs, H = rnn(outputs, H)
            states.append(H)
        return outputs, states


StackedRNNScratch = StackedRNN  # the PyTorch edition's name


# --- language models over a recurrent net --------------------------------------------------------

class AbstractRNNClassifier(AbstractClassifier):
    """A language model: token indices (N, T) in, logits (N, T, V) of the next token out (batch
    first); cross-entropy over every position, perplexity as its figure.

    A subclass defines `init_params()` (the output layer's weights) and `output_layer`. `lr` is
    the PyTorch edition's learning rate, kept for its `configure_optimizers`.
    """

    output_kind = "logits"
    train_accuracy = False  # the text reports perplexity, not the accuracy of training

    def __init__(self, rnn: nn.Module, vocab_size: int, lr: float = 0.01):
        super().__init__()
        self.vocab_size = positive_int("vocab_size", vocab_size)
        self.lr = number("lr", lr, 0, math.inf, open_low=True, open_high=True)
        num_inputs, self.num_hiddens = _rnn_sizes(rnn)
        if num_inputs != self.vocab_size:
            raise ValueError(f"the rnn takes {num_inputs} inputs but the tokens come one-hot in "
                             f"vocab_size={self.vocab_size}: build the rnn with "
                             f"num_inputs={self.vocab_size} (len(vocab))")
        self.rnn = rnn

    def init_params(self) -> None:
        raise NotImplementedError(f"{type(self).__name__} must define init_params()")

    def output_layer(self, rnn_outputs: torch.Tensor) -> torch.Tensor:
        """Logits (N, T, V) from the rnn's outputs (T, N, H)."""
        raise NotImplementedError(f"{type(self).__name__} must define output_layer(rnn_outputs)")

    def one_hot(self, X: torch.Tensor) -> torch.Tensor:
        """Token indices (N, T) as one-hot vectors (T, N, V), time first for the rnn."""
        self.check_tokens(X)
        return F.one_hot(X.T.long(), self.vocab_size).to(next(self.parameters()).dtype)

    def forward(self, X: torch.Tensor, state=None) -> torch.Tensor:
        rnn_outputs, _ = self.rnn(self.one_hot(X), state)  # (T, N, H)
        return self.output_layer(rnn_outputs)  # (N, T, V)

    def epoch_figures(self, logs: dict) -> dict:
        """Perplexity: exp of the epoch's mean training and validation losses."""
        names = {"train_loss": "train_ppl", "val_loss": "val_ppl"}
        return {ppl: _exp(logs[k]) for k, ppl in names.items() if logs.get(k) is not None}

    def check_tokens(self, X: torch.Tensor) -> None:
        """Raise a ValueError unless X holds token indices (N, T) below vocab_size (the values
        are looked at off the GPU only, where it costs no sync; `check_batch` looks at the data's
        whole token tensors once)."""
        name = type(self).__name__
        if not (isinstance(X, torch.Tensor) and X.ndim == 2 and not X.is_floating_point()
                and not X.is_complex() and X.dtype != torch.bool):
            got = (f"shape {tuple(X.shape)} {X.dtype}" if isinstance(X, torch.Tensor)
                   else type(X).__name__)
            raise ValueError(f"{name} takes token indices as an integer tensor of shape "
                             f"(batch_size, num_steps), got {got}")
        if X.numel() and not X.is_cuda:
            self.check_token_range(X, "the inputs")

    def check_token_range(self, X: torch.Tensor, what: str) -> None:
        lo, hi = (int(v) for v in torch.aminmax(X))
        if lo < 0 or hi >= self.vocab_size:
            raise ValueError(f"{what} hold token indices from {lo} to {hi} but "
                             f"{type(self).__name__} was built for vocab_size={self.vocab_size}: "
                             f"the data's vocabulary (at least {max(hi + 1, self.vocab_size)} "
                             f"tokens) and the model's ({self.vocab_size}) differ; build the "
                             f"model with vocab_size=len(data.vocab)")

    def check_batch(self, y_hat: torch.Tensor, y: torch.Tensor, data=None) -> str:
        """A vocabulary mismatch between data and model said as such, the data's whole token
        tensors in range; then the classifier's checks of (N, T, V) against (N, T)."""
        if getattr(getattr(self.rnn, "rnn", self.rnn), "bidirectional", False):
            raise ValueError(f"{type(self).__name__}'s rnn is bidirectional: at each position it "
                             f"also reads the tokens after it, so it reads the token it is to "
                             f"predict, and its low perplexity means nothing. Use a "
                             f"unidirectional rnn for a next-token language model; "
                             f"bidirectional ones suit tasks that read the whole sequence")
        V = getattr(data, "num_classes", None)
        if V is not None and V != self.vocab_size:
            raise ValueError(f"the data's vocabulary has {V} tokens but {type(self).__name__} "
                             f"was built for vocab_size={self.vocab_size}: build the model with "
                             f"vocab_size=len(data.vocab)")
        for split in ("train", "val"):
            tensors = getattr(data, split, None)
            if isinstance(tensors, (tuple, list)) and tensors \
                    and isinstance(tensors[0], torch.Tensor) and tensors[0].numel() \
                    and not tensors[0].is_floating_point():
                self.check_token_range(tensors[0], f"the {split} inputs")
        return super().check_batch(y_hat, y, data)

    @torch.no_grad()
    def predict(self, prefix, num_preds: int, vocab, device=None, state=None) -> str:
        """The prefix followed by `num_preds` tokens, each the most likely next one (greedy),
        after warming the state up on the prefix. It runs where the model's parameters are
        (`device`, the PyTorch edition's argument, is accepted for its calls)."""
        num_preds = count("num_preds", num_preds)
        if len(prefix) == 0:
            raise ValueError("predict needs a prefix of at least one token to start from")
        if len(vocab) != self.vocab_size:
            raise ValueError(f"the vocabulary has {len(vocab)} tokens but "
                             f"{type(self).__name__} was built for vocab_size={self.vocab_size}: "
                             f"predict with the vocabulary the model was trained on")
        device = next(self.parameters()).device
        tokens = list(vocab[list(prefix)])
        was_training = self.training
        self.eval()
        try:
            X = torch.tensor([tokens], device=device)  # (1, T)
            outputs, state = self.rnn(self.one_hot(X), state)  # warm-up: (T, 1, H)
            for i in range(num_preds):
                if i:
                    X = torch.tensor([[tokens[-1]]], device=device)  # (1, 1)
                    outputs, state = self.rnn(self.one_hot(X), state)
                Y = self.output_layer(outputs[-1:])  # (1, 1, V)
                tokens.append(int(Y.argmax(-1)))
        finally:
            self.train(was_training)
        return "".join(vocab.to_tokens(tokens))


class RNNLMScratch(AbstractRNNClassifier):
    """Language model from scratch: one-hot tokens into `rnn`, then logits H W_hq + b_q."""

    def __init__(self, rnn: nn.Module, vocab_size: int, lr: float = 0.01):
        super().__init__(rnn, vocab_size, lr)
        self.init_params()

    def init_params(self) -> None:
        sigma = getattr(self.rnn, "sigma", 0.01)
        self.W_hq = nn.Parameter(torch.randn(self.num_hiddens, self.vocab_size) * sigma)
        self.b_q = nn.Parameter(torch.zeros(self.vocab_size))

    def output_layer(self, rnn_outputs: torch.Tensor) -> torch.Tensor:
        if isinstance(rnn_outputs, (list, tuple)):  # a cell written as the book's returns a list
            rnn_outputs = torch.stack(rnn_outputs)
        return (rnn_outputs @ self.W_hq + self.b_q).transpose(0, 1)  # (T, N, H) -> (N, T, V)


class RNNModelConcise(AbstractRNNClassifier):
    """Language model over torch's `nn.RNN`, `nn.GRU` or `nn.LSTM` (time first) and an
    `nn.Linear` output layer.

    `RNNModelConcise(rnn, vocab_size)`, or as the Julia text `RNNModelConcise(rnn, num_hiddens,
    vocab_size)`. The rnn may also be a module holding one as `.rnn` (the PyTorch edition's
    `RNN`, `GRU`) or any module with `num_inputs`, `num_hiddens` and `forward(inputs, state)`.
    """

    def __init__(self, rnn: nn.Module, *sizes: int, lr: float = 0.01):
        if len(sizes) not in (1, 2):
            raise TypeError(f"RNNModelConcise takes (rnn, vocab_size) or (rnn, num_hiddens, "
                            f"vocab_size), got {1 + len(sizes)} arguments")
        super().__init__(rnn, sizes[-1], lr)
        if len(sizes) == 2 and positive_int("num_hiddens", sizes[0]) != self.num_hiddens:
            raise ValueError(f"num_hiddens={sizes[0]} but the rnn outputs {self.num_hiddens} "
                             f"features per step")
        self.init_params()

    def init_params(self) -> None:
        self.linear = nn.Linear(self.num_hiddens, self.vocab_size)

    def output_layer(self, hiddens: torch.Tensor) -> torch.Tensor:
        return self.linear(hiddens).transpose(0, 1)  # (T, N, H) -> (N, T, V)


def _rnn_sizes(rnn: nn.Module) -> tuple[int, int]:
    """(inputs per step, output features per step) of a recurrent net."""
    if not isinstance(rnn, nn.Module):
        raise TypeError(f"rnn must be a recurrent net (an nn.Module), got {type(rnn).__name__}")
    inner = getattr(rnn, "rnn", rnn)
    if isinstance(inner, nn.RNNBase):
        if inner.batch_first:
            raise ValueError(f"the rnn takes its inputs batch first; build it with "
                             f"batch_first=False (time first, as the book): "
                             f"nn.{type(inner).__name__}({inner.input_size}, {inner.hidden_size})")
        directions = 2 if inner.bidirectional else 1
        return inner.input_size, (inner.proj_size or inner.hidden_size) * directions
    sizes = getattr(rnn, "num_inputs", None), getattr(rnn, "num_hiddens", None)
    if not all(isinstance(s, int) for s in sizes):
        raise TypeError(f"cannot tell the sizes of {type(rnn).__name__}: expected nn.RNN, nn.GRU, "
                        f"nn.LSTM, or a module with integer num_inputs and num_hiddens")
    return sizes


def _exp(x: float) -> float:
    return math.exp(x) if x < 709 else math.inf  # beyond it math.exp overflows


# --- as the Julia text calls them --------------------------------------------------------------

def output_layer(model: AbstractRNNClassifier, rnn_outputs: torch.Tensor) -> torch.Tensor:
    """The model's logits (N, T, V) from its rnn's outputs (T, N, H)."""
    return model.output_layer(rnn_outputs)


def prediction(prefix, model: AbstractRNNClassifier, vocab, num_preds: int, state=None,
               device=None) -> str:
    """`prefix` and `num_preds` greedily predicted tokens after it, as one string."""
    return model.predict(prefix, num_preds, vocab, device=device, state=state)


def clip_gradients(grad_clip_val: float, model: nn.Module | Iterable[torch.Tensor]
                   ) -> torch.Tensor:
    """Scale the gradients by min(1, grad_clip_val / norm), norm that of all of them together
    (as `torch.nn.utils.clip_grad_norm_`); returns that norm."""
    grad_clip_val = number("grad_clip_val", grad_clip_val, 0, open_low=True)
    params = model.parameters() if isinstance(model, nn.Module) else model
    return nn.utils.clip_grad_norm_([p for p in params if p.grad is not None], grad_clip_val)
