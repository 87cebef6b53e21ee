"""Modern Recurrent Neural Networks (chapter 9): LSTM, GRU and a deep (stacked) GRU as
language models of The Time Machine, each from scratch and over torch's layers.

Run the chapter with `python -m chapters.modern_rnn` (`--help` for the flags; `--quick` for a
short run).

The text's settings, each model its own: `TimeMachine(1024, 32)`, 32 hidden units, clipped
gradients (`gradient_clip_val = 1.`), and
- LSTM (9.1): `LSTMScratch(V, 32)` (weights drawn with sigma 0.1, the Julia text's) and
  `LSTM(V => 32)`, `Descent(1.)`, 100 epochs;
- GRU (9.2): `GRUScratch(V, 32)` and `GRU(V => 32)`, `Optimiser(Descent(4.))`, 50 epochs;
- deep GRU (9.3): two stacked `GRUScratch` layers, `Descent(4.)`, 50 epochs; two `GRU` layers,
  `Optimiser(Descent(2.))`, 100 epochs.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from torch import nn

from chapters.cli import book_or_quick, run
from chapters.rnn import lm_parser, train_lms
from d2lai import GRUScratch, LSTMScratch, RNNLMScratch, RNNModelConcise, StackedRNN

__all__ = ["MODELS", "main"]

BOOK = dict(batchsize=1024, num_steps=32, num_hiddens=32)
QUICK = dict(epochs=8, batchsize=64, num_steps=16, num_train=640, num_val=128)

# name: (the model for a vocabulary of V and H hidden units, the text's lr, the text's epochs)
MODELS: dict[str, tuple[Callable[[int, int], nn.Module], float, int]] = {
    "lstm": (lambda V, H: RNNLMScratch(LSTMScratch(V, H, sigma=0.1), V), 1.0, 100),
    "lstm-concise": (lambda V, H: RNNModelConcise(nn.LSTM(V, H), H, V), 1.0, 100),
    "gru": (lambda V, H: RNNLMScratch(GRUScratch(V, H), V), 4.0, 50),
    "gru-concise": (lambda V, H: RNNModelConcise(nn.GRU(V, H), H, V), 4.0, 50),
    "deep-gru": (lambda V, H: RNNLMScratch(StackedRNN(V, H, 2, cell=GRUScratch), V), 4.0, 50),
    "deep-gru-concise": (lambda V, H: RNNModelConcise(nn.GRU(V, H, 2), H, V), 2.0, 100),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = lm_parser("modern_rnn", __doc__.split("\n\n")[0],
                  {"nargs": "+", "choices": [*MODELS, "all"], "default": ["all"],
                   "help": "the models to train (default all, in the text's order)"},
                  "learning rate of Descent for every model (default each model's own)")
    args = book_or_quick(p.parse_args(argv), BOOK, QUICK)
    args.model = list(MODELS) if "all" in args.model else list(dict.fromkeys(args.model))
    return args


def main(argv: list[str] | None = None) -> dict[str, dict]:
    """Train the chosen models, each with the text's settings; predict after the prefix; print
    the perplexities and the predictions."""
    args = parse_args(argv)
    plan = {}
    for name in args.model:
        make, lr, epochs = MODELS[name]
        plan[name] = (make, args.lr or lr, args.epochs or epochs)
    return train_lms(args, plan)


if __name__ == "__main__":
    run(main)
