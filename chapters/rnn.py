"""Recurrent Neural Networks (chapter 8): a character-level language model of The Time Machine,
its RNN written from scratch and with torch's `nn.RNN`, then greedy prediction after a prefix.

Run the chapter with `python -m chapters.rnn` (`--help` for the flags; `--quick` for a short run).

The text's settings: `TimeMachine(1024, 32)`, 32 hidden units, `Optimiser(Descent(1.))`, 100
epochs, `gradient_clip_val = 1.`; perplexity (exp of the mean cross-entropy) is its figure.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from functools import partial
from pathlib import Path

from torch import nn

import d2lai
from chapters.cli import (
    TEXT,
    book_or_quick,
    check_outputs,
    common_flags,
    fit_and_record,
    learning_rate,
    load_data,
    positive_int,
    run,
    speed,
    text_flags,
    write_or_say,
)
from d2lai import Descent, Optimiser, RNNLMScratch, RNNModelConcise, RNNScratch, Trainer
from d2lai.files import write_json

__all__ = ["rnn_lm_scratch", "rnn_lm_concise", "MODELS", "lm_parser", "train_lm", "train_lms",
           "perplexity_table", "main"]

BOOK = dict(epochs=100, batchsize=1024, num_steps=32, num_hiddens=32, lr=1.0)
QUICK = dict(epochs=8, batchsize=64, num_steps=16, num_train=640, num_val=128)


def rnn_lm_scratch(vocab_size: int, num_hiddens: int) -> RNNLMScratch:
    """The language model from scratch: one-hot characters into RNNScratch, logits out."""
    return RNNLMScratch(RNNScratch(vocab_size, num_hiddens), vocab_size)


def rnn_lm_concise(vocab_size: int, num_hiddens: int) -> RNNModelConcise:
    """The same model over torch's `nn.RNN` (time first, as the book's)."""
    return RNNModelConcise(nn.RNN(vocab_size, num_hiddens), num_hiddens, vocab_size)


MODELS = {"scratch": rnn_lm_scratch, "concise": rnn_lm_concise}


def perplexity_table(results: dict[str, dict], extra: str = "prediction") -> None:
    """A row a model: epochs, the last epoch's perplexities and validation accuracy, the best
    epoch (lowest validation loss) and its perplexity, seconds and `extra`."""
    print(f"\n{'model':<18}{'class':<17}{'epochs':>6}{'train ppl':>10}{'val ppl':>9}"
          f"{'val acc':>8}{'best epoch':>11}{'best val ppl':>13}{'seconds':>9}  {extra}")
    for name, r in results.items():
        ppl, val_ppl, acc = (_at(r["history"], k) for k in ("train_ppl", "val_ppl", "val_acc"))
        best = r.get("best", {}).get("epoch") or 0
        best_ppl = _at(r["history"], "val_ppl", best) if best else "-"
        print(f"{name:<18}{r['model']:<17}{r['metrics']['epochs']:>6}{ppl:>10}{val_ppl:>9}"
              f"{acc:>8}{best or '-':>11}{best_ppl:>13}{r['seconds']:>9.1f}  "
              f"{r.get(extra, '')!r}")


def _at(history: dict, name: str, epoch: int = 0) -> str:
    """Figure `name` at `epoch` (1-based; 0: the last), or '-' when there is none (or it is
    not finite)."""
    values = history.get(name) or [math.nan]
    value = values[epoch - 1] if 0 < epoch <= len(values) else values[-1]
    return f"{value:.3f}" if value is not None and math.isfinite(value) else "-"


def lm_parser(name: str, description: str, model: dict, lr_help: str) -> argparse.ArgumentParser:
    """The flags of a language-model chapter `python -m chapters.NAME`: the common and text
    ones, --model (`model`: its add_argument options), --lr, and the prefix and length of the
    prediction; --epochs and --batchsize left unset, for `book_or_quick` to fill."""
    p = argparse.ArgumentParser(
        prog=f"python -m chapters.{name}", description=description,
        parents=[common_flags(f"out/{name}", TEXT, positive_int), text_flags(num_steps=32)])
    p.add_argument("--model", **model)
    p.add_argument("--lr", type=learning_rate, help=lr_help)
    p.add_argument("--prefix", default="it has", help="text the prediction starts from")
    p.add_argument("--num-preds", type=positive_int, default=20,
                   help="characters to predict after the prefix")
    p.set_defaults(epochs=None, batchsize=None)
    return p


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = lm_parser("rnn", __doc__.split("\n\n")[0],
                  {"choices": [*MODELS, "both"], "default": "both"},
                  "learning rate of Descent (default 1, the book's)")
    return book_or_quick(p.parse_args(argv), BOOK, QUICK)


def train_lm(name: str, model: nn.Module, data: d2lai.TimeMachine, args: argparse.Namespace,
             lr: float, epochs: int) -> dict:
    """Train a language model as the text does (Descent, clipped gradients, the board on an
    identity scale saved to OUT/NAME-board.png), then predict after the prefix."""
    out = Path(args.out)
    trainer = Trainer(model, data, Optimiser(Descent(lr)), max_epochs=epochs, gpu=not args.cpu,
                      gradient_clip_val=args.clip, board_yscale="identity",
                      board_path=out / f"{name}-board.png", **speed(args))
    print(f"\n{type(model).__name__} ({name}): {sum(p.numel() for p in model.parameters())} "
          f"parameters, {epochs} epochs of Descent({lr}), batch {data.batchsize} x "
          f"{data.num_steps} characters, vocabulary of {len(data.vocab)}")
    record = fit_and_record(name, trainer, out)
    record["prediction"] = d2lai.prediction(args.prefix, trainer.model, data.vocab,
                                            args.num_preds)
    print(f"prediction: {record['prediction']!r}")
    write_or_say(out / f"{name}-history.json", partial(write_json, value=record))  # and it
    return record


def train_lms(args: argparse.Namespace,
              plan: dict[str, tuple[Callable[[int, int], nn.Module], float, int]]
              ) -> dict[str, dict]:
    """Load the text, then train each model of `plan` (name: (the model for a vocabulary of V
    and H hidden units, lr, epochs)) in turn with `train_lm`; print the perplexity table."""
    check_outputs(Path(args.out), [f"{name}-history.json" for name in plan],
                  [f"{name}-board.png" for name in plan])  # before anything is trained
    if args.seed is not None:
        d2lai.seed(args.seed)
    data = load_data(args, TEXT, num_steps=args.num_steps)
    results = {}
    for name, (make, lr, epochs) in plan.items():
        model = make(len(data.vocab), args.num_hiddens)
        results[name] = train_lm(name, model, data, args, lr, epochs)
        if results[name]["metrics"]["interrupted"]:  # Ctrl-C: stop, do not start the next
            break
    perplexity_table(results)
    return results


def main(argv: list[str] | None = None) -> dict[str, dict]:
    """Train the chosen language models as the chapter does; predict after the prefix; print
    the perplexities and the predictions."""
    args = parse_args(argv)
    names = MODELS if args.model == "both" else [args.model]
    return train_lms(args, {name: (MODELS[name], args.lr, args.epochs) for name in names})


if __name__ == "__main__":
    run(main)
