"""The Julia text's language models of chapters 8-9 (sections 8.5, 8.6, 9.1, 9.2, 9.3), typed as
the text types them, trained on The Time Machine with its settings, and their last training
loss set beside the one the text prints.

The cells are the text's own (written here in Python, batch first as its arrays read in
Python), sizes in `args`, weights in `construct_nt_args` namespaces; the concise layers are
torch's, initialised as Flux initialises its layers (Glorot-uniform kernels, zero biases).
Everything is in float64, as the text's `|> f64`.

Like with like: the text's epoch line prints the loss of the LAST training batch, computed
again after the optimiser's step on it (`train_loss = training_step(model, batch)` after
`update!`); `LastBatchLoss` records the same figure each epoch, and each epoch's line sets it
beside the text's line of the same epoch (`julia_text_losses.json`: the "Train Loss" the
notebooks print, epoch by epoch).

    D2LAI_DATA=DATA python -m examples.julia_rnn_figures [--models rnn,lstm] [--epochs N]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch
from torch import nn

import d2lai
from d2lai import Descent, Optimiser, RNNLMScratch, RNNModelConcise, Trainer, construct_nt_args

# --- the text's own cells (features x num_steps x batch in Julia: (N, T, features) here) ------


class RNNScratch(d2lai.AbstractModel):
    """8.5: H_t = tanh(W_hx x_t + W_hh H_{t-1} + b_h)."""

    trainable = ("Whx", "Whh", "b_h")  # Flux.@layer RNNScratch trainable = (Whx, Whh, b_h)

    def __init__(self, num_inputs: int, num_hiddens: int, sigma: float = 0.01):
        super().__init__()
        self.Whx = torch.randn(num_hiddens, num_inputs) * sigma
        self.Whh = torch.randn(num_hiddens, num_hiddens) * sigma
        self.b_h = torch.zeros(num_hiddens)
        self.args = construct_nt_args(num_inputs=num_inputs, num_hiddens=num_hiddens,
                                      sigma=sigma)

    def forward(self, x, state=None):  # x: (N, T, num_inputs)
        if state is None:
            state = torch.zeros(x.shape[0], self.args.num_hiddens, dtype=x.dtype)
        outputs = []
        for x_ in x.unbind(1):  # eachslice(x, dims = 2)
            state = torch.tanh(x_ @ self.Whx.T + state @ self.Whh.T + self.b_h)
            outputs.append(state)
        return torch.stack(outputs, 1), state  # (N, T, H), (N, H)


def _gate(num_inputs: int, num_hiddens: int, sigma: float):
    return (torch.randn(num_hiddens, num_inputs) * sigma,
            torch.randn(num_hiddens, num_hiddens) * sigma, torch.zeros(num_hiddens))


class LSTMScratch(d2lai.AbstractModel):
    """9.1, as the text computes it: H = O * C."""

    def __init__(self, num_inputs: int, num_hiddens: int, sigma: float = 0.1):
        super().__init__()
        W_ix, W_ih, b_i = _gate(num_inputs, num_hiddens, sigma)
        W_fx, W_fh, b_f = _gate(num_inputs, num_hiddens, sigma)
        W_cx, W_ch, b_c = _gate(num_inputs, num_hiddens, sigma)
        W_ox, W_oh, b_o = _gate(num_inputs, num_hiddens, sigma)
        self.w = construct_nt_args(
            input_gate=construct_nt_args(W_ix=W_ix, W_ih=W_ih, b_i=b_i),
            forget_gate=construct_nt_args(W_fx=W_fx, W_fh=W_fh, b_f=b_f),
            input_node=construct_nt_args(W_cx=W_cx, W_ch=W_ch, b_c=b_c),
            output_gate=construct_nt_args(W_ox=W_ox, W_oh=W_oh, b_o=b_o))
        self.args = construct_nt_args(num_inputs=num_inputs, num_hiddens=num_hiddens,
                                      sigma=sigma)

    def forward(self, x, state=None):
        w, n = self.w, x.shape[0]
        H, C = (torch.zeros(n, self.args.num_hiddens, dtype=x.dtype),
                torch.zeros(n, self.args.num_hiddens, dtype=x.dtype)) if state is None else state
        outputs = []
        for x_ in x.unbind(1):
            It = torch.sigmoid(x_ @ w.input_gate.W_ix.T + H @ w.input_gate.W_ih.T
                               + w.input_gate.b_i)
            Ft = torch.sigmoid(x_ @ w.forget_gate.W_fx.T + H @ w.forget_gate.W_fh.T
                               + w.forget_gate.b_f)
            Ot = torch.sigmoid(x_ @ w.output_gate.W_ox.T + H @ w.output_gate.W_oh.T
                               + w.output_gate.b_o)
            C_tilde = torch.tanh(x_ @ w.input_node.W_cx.T + H @ w.input_node.W_ch.T
                                 + w.input_node.b_c)
            C = Ft * C + It * C_tilde
            H = Ot * C
            outputs.append(H)
        return torch.stack(outputs, 1), (H, C)


class StackedRNNScratch(d2lai.AbstractModel):
    """9.3: GRUScratch layers (the package's) one above the other."""

    def __init__(self, num_inputs: int, num_hiddens: int, num_layers: int, sigma: float = 0.01):
        super().__init__()
        self.net = [d2lai.GRUScratch(num_inputs if i == 0 else num_hiddens, num_hiddens,
                                     sigma=sigma) for i in range(num_layers)]
        self.args = construct_nt_args(num_inputs=num_inputs, num_hiddens=num_hiddens,
                                      num_layers=num_layers, sigma=sigma)

    def forward(self, x, state=None):
        states = [None] * len(self.net) if state is None else state
        new_states = []
        for rnn, st_ in zip(self.net, states, strict=True):
            x, new_st = rnn(x, st_)
            new_states.append(new_st)
        return x, new_states


def flux(layer: nn.RNNBase) -> nn.RNNBase:
    """A torch layer initialised as Flux's default (Glorot-uniform kernels, zero biases)."""
    return d2lai.flux_init(layer)


# --- the sections: model, optimiser rule, epochs, and the text's printed last line -----------

def sections(V: int, H: int = 32) -> dict:
    """name -> (builder, rule, epochs, the text's last printed (train loss, val loss))."""
    return {
        "rnn-scratch": (lambda: RNNLMScratch(RNNScratch(V, H), V),
                        lambda: Optimiser(Descent(1.0)), 100, (1.6620464, 2.0444481)),
        "rnn-concise": (lambda: RNNModelConcise(flux(nn.RNN(V, H, batch_first=True)), H, V),
                        lambda: Descent(1.0), 100, (1.6723149, 2.039872)),
        "lstm-scratch": (lambda: RNNLMScratch(LSTMScratch(V, H), V),
                         lambda: Descent(1.0), 100, (1.2954105, 2.0443974)),
        "lstm-concise": (lambda: RNNModelConcise(flux(nn.LSTM(V, H, batch_first=True)), H, V),
                         lambda: Descent(1.0), 100, (1.3307419, 1.9667456)),
        "gru-scratch": (lambda: RNNLMScratch(d2lai.GRUScratch(V, H), V),
                        lambda: Optimiser(Descent(4.0)), 50, (1.595581656739759,
                                                               2.124241910512155)),
        "gru-concise": (lambda: RNNModelConcise(flux(nn.GRU(V, H, batch_first=True)), H, V),
                        lambda: Optimiser(Descent(4.0)), 50, (1.5807685, 2.0804036)),
        "deep-gru-scratch": (lambda: RNNLMScratch(StackedRNNScratch(V, H, 2), V),
                             lambda: Descent(4.0), 50, (1.3484777880112848, 2.1770381725964487)),
        "deep-gru-concise": (lambda: RNNModelConcise(d2lai.StackedRNN(V, H, 2), H, V),
                             lambda: Optimiser(Descent(2.0)), 100, (0.95775, 2.4141488)),
    }


TEXT_LOSSES = Path(__file__).with_name("julia_text_losses.json")


class LastBatchLoss(d2lai.Callback):
    """The text's epoch figures: the last training batch's loss after its step, and the last
    validation batch's loss; with `name`, each epoch printed beside the text's."""

    def __init__(self, name: str | None = None):
        self.train, self.val, self.name = [], [], name
        self.text = json.loads(TEXT_LOSSES.read_text()).get(name, []) if name else []

    def on_epoch_end(self, trainer, epoch, logs):
        if self.name is None:
            return
        text = self.text[epoch - 1] if epoch <= len(self.text) else math.nan
        print(f"{self.name} epoch {epoch}: text {text:.4f} d2lai {self.train[-1]:.4f} "
              f"ratio {self.train[-1] / text:.3f}", flush=True)

    def on_train_batch_end(self, trainer, batch, loss):
        self.batch = batch

    def on_train_epoch_end(self, trainer, logs):
        with torch.no_grad():
            self.train.append(float(trainer.model.training_step(self.batch)))

    def on_validation_batch_start(self, trainer, batch):
        self.last_val = batch

    def on_validation_end(self, trainer, logs):
        with torch.no_grad():
            self.val.append(float(trainer.model.validation_step(self.last_val)[0]))


def run_section(name: str, data, epochs: int | None, seed: int) -> dict:
    build, rule, text_epochs, (text_train, text_val) = sections(len(data.vocab))[name]
    torch.manual_seed(seed)
    model = build().double()  # |> f64
    last = LastBatchLoss(name)
    trainer = Trainer(model, data, rule(), max_epochs=epochs or text_epochs,
                      gradient_clip_val=1.0, board_yscale="identity", verbose=False,
                      board=False, callbacks=[last])
    tic = time.perf_counter()
    m, metrics = d2lai.fit(trainer)
    return {"model": name, "epochs": metrics.epochs, "text_train_loss": text_train,
            "train_loss": last.train[-1], "ratio": last.train[-1] / text_train,
            "text_val_loss": text_val, "val_loss_last_batch": last.val[-1],
            "mean_train_loss": metrics.train_loss, "val_loss": metrics.val_loss,
            "val_ppl": math.exp(metrics.val_loss), "seconds": time.perf_counter() - tic,
            "prediction": d2lai.prediction("it has", m, data.vocab, 20)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=",".join(sections(28)),
                        help="comma-separated, of: " + ", ".join(sections(28)))
    parser.add_argument("--epochs", type=int, default=None, help="default: the text's")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None, help="write the rows there")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    data = d2lai.TimeMachine(1024, 32)
    rows = []
    for name in args.models.split(","):
        row = run_section(name, data, args.epochs, args.seed)
        rows.append(row)
        print(f"{name:<18} text {row['text_train_loss']:.4f}  d2lai {row['train_loss']:.4f}  "
              f"ratio {row['ratio']:.3f}  (mean over the epoch {row['mean_train_loss']:.4f}, "
              f"val ppl {row['val_ppl']:.2f}, {row['seconds']:.0f} s)  "
              f"{row['prediction']!r}", flush=True)
        if args.json:
            with open(args.json, "w") as f:
                json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
