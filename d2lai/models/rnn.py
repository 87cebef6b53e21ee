"""Recurrent nets (chapters 8-9): RNN, LSTM and GRU cells from scratch, a stack of them, and the
language models over a recurrent net (scratch and concise output layers) with greedy prediction.

The cells take their inputs time first, `(num_steps, batch_size, num_inputs)`, as the book's
scratch cells and torch's `nn.RNN` do; the language models take token indices batch first,
`(batch_size, num_steps)`, and return logits `(batch_size, num_steps, vocab_size)`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable
from types import SimpleNamespace

import torch
import torch.nn.functional as F
from torch import nn

from ..checks import count, flag, is_int, number, one_of, positive_int
from ..metrics import Accuracy, Loss, Perplexity
from .classifier import AbstractClassifier

__all__ = ["RNNScratch", "LSTMScratch", "GRUScratch", "StackedRNN", "StackedRNNScratch",
           "AbstractRNNClassifier", "RNNLMScratch", "RNNModelConcise", "clip_gradients",
           "output_layer", "prediction", "flux_init"]


_said: set[str] = set()


def say_once(key: str, message: str) -> None:
    """Log `message` as a warning the first time `key` comes up in this process."""
    if key not in _said:
        _said.add(key)
        logging.getLogger("d2lai").warning("%s", message)


# --- the cells, from scratch ---------------------------------------------------------------------

class _ScratchCell(nn.Module):
    """What the scratch cells share: sizes (also in `args`, as the Julia cells keep them),
    weights drawn from N(0, sigma^2), and the check of inputs and state that gives the zero
    state when there is none.

    Inputs are batch first, `(batch_size, num_steps, num_inputs)`, as the Julia text's
    `num_inputs x num_steps x batch_size` arrays read in Python (`batch_first = False`: time
    first, as the PyTorch edition's cells).
    """

    state_parts = 1  # tensors (N, num_hiddens) in the state: 1, or 2 for the LSTM's (H, C)
    batch_first = True

    def __init__(self, num_inputs: int, num_hiddens: int, sigma: float = 0.01):
        super().__init__()
        self.num_inputs = positive_int("num_inputs", num_inputs)
        self.num_hiddens = positive_int("num_hiddens", num_hiddens)
        self.sigma = number("sigma", sigma, 0, math.inf, open_high=True)
        self.args = SimpleNamespace(num_inputs=num_inputs, num_hiddens=num_hiddens, sigma=sigma)

    def triple(self) -> tuple[nn.Parameter, nn.Parameter, nn.Parameter]:
        """(W_x, W_h, b) of one gate: (num_inputs, H) and (H, H) weights, a zero bias (H,)."""
        return (nn.Parameter(torch.randn(self.num_inputs, self.num_hiddens) * self.sigma),
                nn.Parameter(torch.randn(self.num_hiddens, self.num_hiddens) * self.sigma),
                nn.Parameter(torch.zeros(self.num_hiddens)))

    def forward(self, inputs: torch.Tensor, state=None):
        """(outputs, last state) for inputs (N, T, num_inputs) (time first: (T, N, ...))."""
        steps = inputs.transpose(0, 1) if self.batch_first and inputs.ndim == 3 else inputs
        state = self.begin(steps, state)
        outputs, state = self.run(steps, state)  # (T, N, H)
        return (outputs.transpose(0, 1) if self.batch_first else outputs), state

    def begin(self, inputs: torch.Tensor, state):
        """The state to start from (zeros when None), after checking inputs (T, N, I) and
        state; a state of one example (H,) serves a batch of one, as in the Julia text."""
        name = type(self).__name__
        if not (isinstance(inputs, torch.Tensor) and inputs.ndim == 3
                and inputs.shape[-1] == self.num_inputs and inputs.is_floating_point()
                and inputs.shape[0] > 0):
            layout = "(batch_size, num_steps, {0}), batch first" if self.batch_first else \
                "(num_steps, batch_size, {0}), time first"
            got = (f"shape {tuple(_back(inputs, self.batch_first).shape)} {inputs.dtype}"
                   if isinstance(inputs, torch.Tensor) else type(inputs).__name__)
            raise ValueError(f"{name} takes float inputs of shape "
                             f"{layout.format(self.num_inputs)} and at least one step, got {got}")
        shape = (inputs.shape[1], self.num_hiddens)
        if state is None:
            zeros = [inputs.new_zeros(shape) for _ in range(self.state_parts)]
            return zeros[0] if self.state_parts == 1 else tuple(zeros)
        parts = (state,) if self.state_parts == 1 else state
        if isinstance(parts, (tuple, list)) and shape[0] == 1:
            parts = tuple(s.reshape(1, -1) if isinstance(s, torch.Tensor) and s.ndim == 1
                          else s for s in parts)
        if not (isinstance(parts, (tuple, list)) and len(parts) == self.state_parts
                and all(isinstance(s, torch.Tensor) and s.shape == shape for s in parts)):
            what = f"a tensor of shape {shape}" if self.state_parts == 1 else \
                f"a pair (H, C) of tensors of shape {shape}"
            got = (f"shape {tuple(state.shape)}" if isinstance(state, torch.Tensor)
                   else type(state).__name__)
            raise ValueError(f"{name} takes as state {what} (batch_size, num_hiddens), got {got}")
        return parts[0] if self.state_parts == 1 else tuple(parts)


def _back(inputs: torch.Tensor, batch_first: bool) -> torch.Tensor:
    return inputs.transpose(0, 1) if batch_first and inputs.ndim == 3 else inputs


class RNNScratch(_ScratchCell):
    """The plain RNN cell: H_t = tanh(X_t W_xh + H_{t-1} W_hh + b_h)."""

    def __init__(self, num_inputs: int, num_hiddens: int, sigma: float = 0.01):
        super().__init__(num_inputs, num_hiddens, sigma)
        self.W_xh, self.W_hh, self.b_h = self.triple()

    def run(self, inputs: torch.Tensor, state: torch.Tensor):
        """(outputs (T, N, H), last state (N, H)) for inputs (T, N, num_inputs)."""
        outputs = []
        for X in inputs:  # X: (N, num_inputs)
            state = torch.tanh(X @ self.W_xh + state @ self.W_hh + self.b_h)
            outputs.append(state)
        return torch.stack(outputs), state


class LSTMScratch(_ScratchCell):
    """The LSTM cell: input, forget and output gates and an input node; state (H, C).

    As the Julia package: weights drawn with sigma = 0.1, and the hidden state H = O * C
    (`tanh_state=False`, said once when it runs); `tanh_state=True` gives the LSTM's
    H = O * tanh(C), as the PyTorch edition and torch's `nn.LSTM`.
    """

    state_parts = 2

    def __init__(self, num_inputs: int, num_hiddens: int, sigma: float = 0.1,
                 tanh_state: bool = False):
        super().__init__(num_inputs, num_hiddens, sigma)
        self.tanh_state = flag("tanh_state", tanh_state)
        self.W_xi, self.W_hi, self.b_i = self.triple()  # input gate
        self.W_xf, self.W_hf, self.b_f = self.triple()  # forget gate
        self.W_xo, self.W_ho, self.b_o = self.triple()  # output gate
        self.W_xc, self.W_hc, self.b_c = self.triple()  # input node

    def run(self, inputs: torch.Tensor, H_C: tuple):
        """(outputs (T, N, H), (H, C) each (N, H)) for inputs (T, N, num_inputs)."""
        if not self.tanh_state:
            say_once("lstm", "LSTMScratch: the hidden state is O * C, as the Julia package "
                             "computes it; LSTMScratch(..., tanh_state=True) gives the LSTM's "
                             "O * tanh(C)")
        H, C = H_C
        outputs = []
        for X in inputs:  # X: (N, num_inputs)
            I = torch.sigmoid(X @ self.W_xi + H @ self.W_hi + self.b_i)  # noqa: E741
            F_ = torch.sigmoid(X @ self.W_xf + H @ self.W_hf + self.b_f)
            O = torch.sigmoid(X @ self.W_xo + H @ self.W_ho + self.b_o)  # noqa: E741
            C_tilde = torch.tanh(X @ self.W_xc + H @ self.W_hc + self.b_c)
            C = F_ * C + I * C_tilde
            H = O * (torch.tanh(C) if self.tanh_state else C)
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

    def run(self, inputs: torch.Tensor, H: torch.Tensor):
        """(outputs (T, N, H), last state (N, H)) for inputs (T, N, num_inputs)."""
        outputs = []
        for X in inputs:  # X: (N, num_inputs)
            Z = torch.sigmoid(X @ self.W_xz + H @ self.W_hz + self.b_z)
            R = torch.sigmoid(X @ self.W_xr + H @ self.W_hr + self.b_r)
            H_tilde = torch.tanh(X @ self.W_xh + (R * H) @ self.W_hh + self.b_h)
            H = Z * H + (1 - Z) * H_tilde
            outputs.append(H)
        return torch.stack(outputs), H


def flux_init(layer: nn.RNNBase) -> nn.RNNBase:
    """A torch recurrent layer made as Flux makes its own: Glorot-uniform kernels (over all
    gates together) and one zero bias a layer, the hidden side's bias held at zero (Flux's
    cells have one bias; torch's two would each learn it). Returns the layer."""
    for name, p in layer.named_parameters():
        (nn.init.xavier_uniform_ if name.startswith("weight") else nn.init.zeros_)(p.data)
        if name.startswith("bias_hh"):
            p.requires_grad_(False)
    return layer


class StackedRNN(nn.Module):
    """`num_layers` recurrent layers, each reading the outputs of the one below, batch first;
    the state is the list of the layers' states.

    `rnn` picks the layer: torch's `nn.GRU` (the Julia package's default, Flux's GRU with
    `init`, Glorot-uniform kernels and zero biases), `nn.LSTM`, `nn.RNN`, or a scratch cell
    class such as `GRUScratch` (drawn with `sigma`). `cell=` is the same argument.
    """

    def __init__(self, num_inputs: int, num_hiddens: int, num_layers: int, sigma: float = 0.01,
                 rnn: Callable[..., nn.Module] = nn.GRU, init: Callable | None = flux_init,
                 cell: Callable[..., nn.Module] | None = None):
        super().__init__()
        self.num_inputs = positive_int("num_inputs", num_inputs)
        self.num_hiddens = positive_int("num_hiddens", num_hiddens)
        self.num_layers = positive_int("num_layers", num_layers)
        self.sigma = number("sigma", sigma, 0, math.inf, open_high=True)
        self.args = SimpleNamespace(num_inputs=num_inputs, num_hiddens=num_hiddens,
                                    num_layers=num_layers, sigma=sigma)
        rnn = rnn if cell is None else cell
        if not callable(rnn):
            raise TypeError(f"rnn must be a recurrent layer class such as nn.GRU or GRUScratch, "
                            f"got {rnn!r}")
        sizes = [(num_inputs if i == 0 else num_hiddens, num_hiddens) for i in range(num_layers)]
        if isinstance(rnn, type) and issubclass(rnn, nn.RNNBase):
            layers = [rnn(i, h, batch_first=True) for i, h in sizes]
            if init is not None:
                layers = [init(layer) for layer in layers]
        else:
            layers = [rnn(i, h, sigma) for i, h in sizes]
        self.rnns = nn.ModuleList(layers)
        self.batch_first = getattr(layers[0], "batch_first", True)

    def forward(self, inputs: torch.Tensor, Hs: list | None = None):
        """(outputs of the top layer, [state of each layer]) for inputs (N, T, I)."""
        if Hs is None:
            Hs = [None] * self.num_layers
        if len(Hs) < self.num_layers:
            raise ValueError(f"StackedRNN takes one state per layer ({self.num_layers}), got "
                             f"{len(Hs)}")
        Hs = Hs[:self.num_layers]  # more (a deeper encoder's): the first ones, as the text
        outputs, states = inputs, []
        for rnn, H in zip(self.rnns, Hs, strict=True):
            if isinstance(rnn, nn.RNNBase):  # torch's layers: states (1, N, h) inside
                outputs, H = rnn(outputs, _layer_state(rnn, H))
                H = tuple(h[0] for h in H) if isinstance(H, tuple) else H[0]
            else:
                outputs, H = rnn(outputs, H)
            states.append(H)
        return outputs, states  # each layer's state (N, h), or (H, C) for an LSTM


def _layer_state(rnn: nn.RNNBase, H):
    """A layer's state (N, h) (a pair for an LSTM) as torch's (1, N, h)."""
    if H is None:
        return None
    lstm = isinstance(rnn, nn.LSTM)
    if lstm != isinstance(H, (tuple, list)):
        raise ValueError(f"StackedRNN: an {type(rnn).__name__} layer takes "
                         f"{'a pair (H, C)' if lstm else 'one tensor'} as its state, got "
                         f"{type(H).__name__}. (The Julia package builds GRUs whatever rnn= "
                         f"says, so the text's rnn = Flux.LSTM over a GRU encoder trains GRUs: "
                         f"pass rnn=nn.GRU for the text's model.)")
    if lstm:
        return tuple(h.unsqueeze(0) if h.ndim == 2 else h for h in H)
    return H.unsqueeze(0) if H.ndim == 2 else H


class StackedRNNScratch(StackedRNN):
    """`StackedRNN` of scratch cells, GRUs unless `rnn=` says (the Julia text's deep GRU)."""

    def __init__(self, num_inputs: int, num_hiddens: int, num_layers: int, sigma: float = 0.01,
                 rnn: Callable[..., nn.Module] = GRUScratch, **kwargs):
        super().__init__(num_inputs, num_hiddens, num_layers, sigma, rnn=rnn, **kwargs)


# --- language models over a recurrent net --------------------------------------------------------

class AbstractRNNClassifier(AbstractClassifier):
    """A language model: tokens in, batch first, as one-hot vectors (N, T, V) (the Julia
    text's batches) or indices (N, T) (the PyTorch edition's); logits (N, T, V) of the next
    token out. Cross-entropy over every position, perplexity as its metric.

    The rnn takes its inputs in its own layout: batch first (Julia's cells, torch layers built
    with `batch_first=True`) or time first (`nn.RNN` by default, the PyTorch edition's cells);
    a cell that does not say (`batch_first`) is taken as `cells_batch_first` says.
    A subclass defines `init_params()` (the output layer's weights) and `output_layer`. `lr` is
    the PyTorch edition's learning rate, kept for its `configure_optimizers`.
    """

    output_kind = "logits"
    # the text reports perplexity; the training batches are not scored for accuracy
    METRICS = (Loss(), Accuracy(splits=("val",)), Perplexity())
    cells_batch_first = True  # the Julia text's own cells: features x num_steps x batch

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
        self.args = SimpleNamespace(vocab_size=self.vocab_size, num_hiddens=self.num_hiddens)

    def init_params(self) -> None:
        raise NotImplementedError(f"{type(self).__name__} must define init_params()")

    def output_layer(self, rnn_outputs: torch.Tensor) -> torch.Tensor:
        """Logits (N, T, V) from the rnn's outputs (in its layout)."""
        raise NotImplementedError(f"{type(self).__name__} must define output_layer(rnn_outputs)")

    @property
    def rnn_batch_first(self) -> bool:
        """Whether the rnn takes (and gives) its steps batch first."""
        inner = getattr(self.rnn, "rnn", self.rnn)
        if isinstance(inner, nn.RNNBase):
            return inner.batch_first
        return getattr(self.rnn, "batch_first", self.cells_batch_first)

    def one_hot(self, X: torch.Tensor) -> torch.Tensor:
        """Token indices (N, T) as one-hot vectors (T, N, V), time first (the PyTorch
        edition's)."""
        self.check_tokens(X)
        return F.one_hot(X.T.long(), self.vocab_size).to(self.dtype)

    @property
    def dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    def rnn_inputs(self, X: torch.Tensor) -> torch.Tensor:
        """One-hot vectors in the rnn's layout from one-hot (N, T, V) or indices (N, T)."""
        if isinstance(X, torch.Tensor) and X.is_floating_point() and X.ndim == 3:
            if X.shape[-1] != self.vocab_size:
                raise ValueError(f"the data's vocabulary has {X.shape[-1]} tokens but "
                                 f"{type(self).__name__} was built for vocab_size="
                                 f"{self.vocab_size}: build the model with "
                                 f"vocab_size=len(data.vocab) (it takes one-hot tokens of "
                                 f"shape (batch_size, num_steps, {self.vocab_size}), got "
                                 f"{tuple(X.shape)})")
            return X if self.rnn_batch_first else X.transpose(0, 1)
        steps = self.one_hot(X)  # (T, N, V)
        return steps.transpose(0, 1) if self.rnn_batch_first else steps

    def forward(self, X: torch.Tensor, state=None) -> torch.Tensor:
        rnn_outputs, _ = self.rnn(self.rnn_inputs(X), state)
        return self.output_layer(rnn_outputs)  # (N, T, V)

    def steps_first(self, rnn_outputs) -> torch.Tensor:
        """The rnn's outputs time first (T, N, H) (a list of steps is stacked)."""
        if isinstance(rnn_outputs, (list, tuple)):  # a cell written as the book's returns a list
            return torch.stack(list(rnn_outputs))
        return rnn_outputs.transpose(0, 1) if self.rnn_batch_first else rnn_outputs

    def check_tokens(self, X: torch.Tensor) -> None:
        """Raise a ValueError unless X holds token indices (N, T) below vocab_size (the values
        are looked at off the GPU and outside a compiled step only, where it costs no sync and
        no graph break; `check_batch` looks at the data's whole token tensors once)."""
        name = type(self).__name__
        if not (isinstance(X, torch.Tensor) and X.ndim == 2 and not X.is_floating_point()
                and not X.is_complex() and X.dtype != torch.bool):
            got = (f"shape {tuple(X.shape)} {X.dtype}" if isinstance(X, torch.Tensor)
                   else type(X).__name__)
            raise ValueError(f"{name} takes tokens one-hot, a float tensor of shape "
                             f"(batch_size, num_steps, {self.vocab_size}), or as indices, an "
                             f"integer tensor of shape (batch_size, num_steps); got {got}")
        if X.numel() and not X.is_cuda and not torch.compiler.is_compiling():
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
        state = _state_of_one(state, isinstance(getattr(self.rnn, "rnn", self.rnn), nn.RNNBase),
                              self.dtype)
        was_training = self.training
        self.eval()
        try:
            X = torch.tensor([tokens], device=device)  # (1, T)
            outputs, state = self.rnn(self.rnn_inputs(X), state)  # warm-up on the prefix
            for i in range(num_preds):
                if i:
                    X = torch.tensor([[tokens[-1]]], device=device)  # (1, 1)
                    outputs, state = self.rnn(self.rnn_inputs(X), state)
                Y = self.output_layer(outputs)  # (1, T, V)
                tokens.append(int(Y[0, -1].argmax()))
        finally:
            self.train(was_training)
        return "".join(vocab.to_tokens(tokens))


class RNNLMScratch(AbstractRNNClassifier):
    """Language model from scratch: one-hot tokens into `rnn`, then logits H W_hq + b_q."""

    def __init__(self, rnn: nn.Module, vocab_size: int, lr: float = 0.01):
        super().__init__(rnn, vocab_size, lr)
        self.init_params()

    def init_params(self) -> None:
        sigma = _setting(self.rnn, "sigma", 0.01)
        self.W_hq = nn.Parameter(torch.randn(self.num_hiddens, self.vocab_size) * sigma)
        self.b_q = nn.Parameter(torch.zeros(self.vocab_size))

    def output_layer(self, rnn_outputs: torch.Tensor) -> torch.Tensor:
        return (self.steps_first(rnn_outputs) @ self.W_hq + self.b_q).transpose(0, 1)


class RNNModelConcise(AbstractRNNClassifier):
    """Language model over torch's `nn.RNN`, `nn.GRU` or `nn.LSTM` (time first) and an
    `nn.Linear` output layer.

    `RNNModelConcise(rnn, vocab_size)`, or as the Julia text `RNNModelConcise(rnn, num_hiddens,
    vocab_size)`; the output layer starts as the package's Flux `Dense` does (Glorot-uniform
    weights, a zero bias). The rnn may also be a module holding one as `.rnn` (the PyTorch edition's
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
        nn.init.xavier_uniform_(self.linear.weight)  # the package's Dense(h => V), as Flux
        nn.init.zeros_(self.linear.bias)  # makes it: Glorot-uniform weights, a zero bias

    def init_params(self) -> None:
        self.linear = nn.Linear(self.num_hiddens, self.vocab_size)

    def output_layer(self, hiddens: torch.Tensor) -> torch.Tensor:
        return self.linear(self.steps_first(hiddens)).transpose(0, 1)  # (T, N, H) -> (N, T, V)


def _rnn_sizes(rnn: nn.Module) -> tuple[int, int]:
    """(inputs per step, output features per step) of a recurrent net: torch's layers, or a
    module with integer `num_inputs` and `num_hiddens`, as fields or in `args` (the Julia
    text's cells)."""
    if not isinstance(rnn, nn.Module):
        raise TypeError(f"rnn must be a recurrent net (an nn.Module), got {type(rnn).__name__}")
    inner = getattr(rnn, "rnn", rnn)
    if isinstance(inner, nn.RNNBase):
        directions = 2 if inner.bidirectional else 1
        return inner.input_size, (inner.proj_size or inner.hidden_size) * directions
    sizes = _setting(rnn, "num_inputs"), _setting(rnn, "num_hiddens")
    if not all(is_int(s) for s in sizes):
        raise TypeError(f"cannot tell the sizes of {type(rnn).__name__}: expected nn.RNN, nn.GRU, "
                        f"nn.LSTM, or a module with integer num_inputs and num_hiddens (as "
                        f"fields, or in its args as the Julia text keeps them)")
    return sizes


def _setting(rnn: nn.Module, name: str, default=None):
    """`rnn.name`, else `rnn.args.name` (a namespace or a dict), else `default`."""
    if hasattr(rnn, name):
        return getattr(rnn, name)
    args = getattr(rnn, "args", None)
    if isinstance(args, dict):
        return args.get(name, default)
    return getattr(args, name, default)


def _state_of_one(state, layered: bool = False, dtype: torch.dtype | None = None):
    """A state given for one example, (H,) as the Julia text writes `zeros(num_hiddens)`, as a
    batch of one: (1, H), or (1, 1, H) for torch's layers, in the model's float type; pairs
    part by part."""
    if isinstance(state, torch.Tensor) and state.ndim == 1:
        state = state.reshape(1, 1, -1) if layered else state.reshape(1, -1)
        return state.to(dtype) if dtype is not None and state.is_floating_point() else state
    if isinstance(state, tuple) and all(isinstance(s, torch.Tensor) for s in state):
        return tuple(_state_of_one(s, layered, dtype) for s in state)
    return state


# --- as the Julia text calls them --------------------------------------------------------------

def output_layer(model: AbstractRNNClassifier, rnn_outputs: torch.Tensor) -> torch.Tensor:
    """The model's logits (N, T, V) from its rnn's outputs (T, N, H)."""
    return model.output_layer(rnn_outputs)


def prediction(prefix, model: AbstractRNNClassifier, vocab, num_preds: int, state=None,
               device=None) -> str:
    """`prefix` and `num_preds` greedily predicted tokens after it, as one string."""
    return model.predict(prefix, num_preds, vocab, device=device, state=state)


RESCALE_NOTE = ("gradient_clip_val={value:g}: every gradient is rescaled to global norm "
                "{value:g} at every step, as the Julia package's clip_gradients! does (also when "
                "the norm is below it); clip='max_norm' clips only above it, as torch and the "
                "PyTorch edition do")


def clip_gradients(grad_clip_val: float, model: nn.Module | Iterable[torch.Tensor],
                   clip: str = "rescale") -> torch.Tensor:
    """Scale the gradients so that their global norm (that of all of them together) is
    `grad_clip_val`; returns the norm before.

    `clip="rescale"` (the Julia package's arithmetic) scales by grad_clip_val / norm at every
    call (also called as the Julia text does, `clip_gradients(gs, grad_clip_val, model)`, where
    `gs` is ignored: the gradients are the parameters' `.grad`); `clip="max_norm"` by
    min(1, grad_clip_val / norm), as `torch.nn.utils.clip_grad_norm_`
    and the PyTorch edition.
    """
    if isinstance(clip, nn.Module):  # the Julia shape clip_gradients!(gs, value, model)
        grad_clip_val, model, clip = model, clip, "rescale"
    grad_clip_val = number("grad_clip_val", grad_clip_val, 0, open_low=True)
    clip = one_of("clip", clip, CLIPS)
    params = model.parameters() if isinstance(model, nn.Module) else model
    params = [p for p in params if p.grad is not None]
    if clip == "max_norm":
        return nn.utils.clip_grad_norm_(params, grad_clip_val)
    if not params:
        return torch.zeros(())
    grads = [p.grad for p in params]
    norm = nn.utils.get_total_norm(grads)  # one pass over all of them, as clip_grad_norm_
    scale = torch.where(norm > 0, grad_clip_val / norm, torch.ones_like(norm))  # no sync
    torch._foreach_mul_(grads, scale)
    return norm


CLIPS = ("rescale", "max_norm")
