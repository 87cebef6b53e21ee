"""Attention Mechanisms and Transformers (chapter 10): English-French translation by an RNN
encoder-decoder with Bahdanau (additive) attention and by the transformer, scored with BLEU,
their attention weights drawn as heatmaps.

Run the chapter with `python -m chapters.attention` (`--help` for the flags; `--quick` for a
short run).

The settings: `MTFraEng(128)` (sequences of 9 tokens, 512 training and 128 validation pairs),
clipped gradients (`gradient_clip_val = 1.`), and
- bahdanau (10.4, the Julia text): embeddings and hidden states of 256, `Seq2SeqEncoder` and
  `Seq2SeqAttentionDecoder` of 2 GRU layers each, dropout 0.2, `Adam(0.01)`, 30 epochs. (The
  Julia text gives its decoder 1 layer over a 2-layer encoder, whose state a 1-layer torch GRU
  cannot take: both have 2 here, as in the PyTorch edition.)
- transformer (10.7, the PyTorch edition; the Julia text does not train one): 256 hidden
  units, 2 blocks, 4 heads, position-wise FFNs of 64, dropout 0.2, `Adam(0.001)`, 30 epochs.
`--num-hiddens` sets the embedding and hidden sizes of both.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from functools import partial
from pathlib import Path

import torch

import d2lai
from chapters.cli import (
    PAIRS,
    book_or_quick,
    check_outputs,
    common_flags,
    fit_and_record,
    load_data,
    positive_int,
    run,
    speed,
    text_flags,
    write_or_say,
)
from d2lai import (
    Adam,
    Seq2Seq,
    Seq2SeqAttentionDecoder,
    Seq2SeqEncoder,
    Trainer,
    TransformerDecoder,
    TransformerEncoder,
)
from d2lai.files import write_json

__all__ = ["bahdanau", "transformer", "MODELS", "ENGS", "FRAS", "translate", "held_out_pairs",
           "attention_heatmap", "main"]

BOOK = dict(batchsize=128, num_steps=9, num_hiddens=256)
QUICK = dict(epochs=8, batchsize=32, num_train=256, num_val=64, num_hiddens=32)

# The book's sentences to translate after training.
ENGS = ["go .", "i lost .", "he's calm .", "i'm home ."]
FRAS = ["va !", "j'ai perdu .", "il est calme .", "je suis chez moi ."]


def bahdanau(data: d2lai.MTFraEng, num_hiddens: int, dropout: float = 0.2) -> Seq2Seq:
    """The RNN encoder-decoder with additive attention of section 10.4."""
    encoder = Seq2SeqEncoder(len(data.src_vocab), num_hiddens, num_hiddens, 2, dropout)
    decoder = Seq2SeqAttentionDecoder(len(data.tgt_vocab), num_hiddens, num_hiddens, 2, dropout)
    return Seq2Seq(encoder, decoder, data.tgt_vocab["<pad>"])


def transformer(data: d2lai.MTFraEng, num_hiddens: int, dropout: float = 0.2) -> Seq2Seq:
    """The transformer of section 10.7: 2 blocks of 4 heads, FFNs of 64."""
    encoder = TransformerEncoder(len(data.src_vocab), num_hiddens, 64, 4, 2, dropout)
    decoder = TransformerDecoder(len(data.tgt_vocab), num_hiddens, 64, 4, 2, dropout)
    return Seq2Seq(encoder, decoder, data.tgt_vocab["<pad>"])


# name: (the model for the data and a width, the learning rate of Adam, the epochs)
MODELS: dict[str, tuple[Callable[[d2lai.MTFraEng, int], Seq2Seq], float, int]] = {
    "bahdanau": (bahdanau, 0.01, 30),
    "transformer": (transformer, 0.001, 30),
}


def translate(model: Seq2Seq, data: d2lai.MTFraEng, engs: list[str], fras: list[str]
              ) -> list[dict]:
    """Greedy translations of `engs`, each cut at its first '<eos>', with its BLEU (k=2)
    against `fras`, as the text prints them."""
    preds, _ = d2lai.predict_step(model, data.build(engs, fras), None, data.num_steps)
    rows = []
    for en, fr, p in zip(engs, fras, preds, strict=True):
        translation = []
        for token in data.tgt_vocab.to_tokens(p):
            if token == "<eos>":
                break
            translation.append(token)
        rows.append({"en": en, "fr": fr, "translation": translation,
                     "bleu": d2lai.bleu(" ".join(translation), fr, k=2)})
    return rows


def held_out_pairs(data: d2lai.MTFraEng, n: int) -> tuple[list[str], list[str]]:
    """The first `n` validation pairs as text (tokens up to '<eos>', padding left out): pairs
    the model never trained on, in whatever data the chapter runs on."""
    src, _, _, label = data.val

    def words(row, vocab) -> str:
        tokens = []
        for token in vocab.to_tokens(row):
            if token == "<eos>":
                break
            if token != "<pad>":
                tokens.append(token)
        return " ".join(tokens)

    n = min(n, len(src))
    return ([words(row, data.src_vocab) for row in src[:n]],
            [words(row, data.tgt_vocab) for row in label[:n]])


def attention_heatmap(name: str, model: Seq2Seq, data: d2lai.MTFraEng, en: str, fr: str,
                      path: Path | None, fig=None) -> tuple[int, ...]:
    """Draw the attention weights of translating `en` to `path` (and into the matplotlib
    figure `fig`, when given: a notebook shows it): for the RNN, the decoder's weight on each
    source position at each step; for the transformer, each head of each encoder block over
    the source. Returns the shape drawn (rows, cols, queries, keys)."""
    batch = data.build([en], [fr])
    _, steps = d2lai.predict_step(model, batch, None, data.num_steps,
                                  save_attention_weights=name == "bahdanau")
    valid = int(batch[2][0])  # source tokens up to and including '<eos>'
    if name == "bahdanau":
        W = torch.cat([step[0] for step in steps], dim=1)[..., :valid]  # (1, steps, keys)
        W, titles, xlabel, ylabel = W[None], None, "Key positions", "Query positions (steps)"
    else:
        W = torch.stack(model.encoder.attention_weights)[:, :, :valid, :valid]  # (blks, h, T, T)
        titles = [f"Head {i + 1}" for i in range(W.shape[1])]
        xlabel, ylabel = "Key positions", "Query positions"
    figsize = (max(3.5, 2.2 * W.shape[1] + 1), max(3.5, 2.2 * W.shape[0] + 0.8))
    d2lai.show_heatmaps(W.cpu(), xlabel, ylabel, titles=titles, figsize=figsize, path=path,
                        fig=fig)
    return tuple(W.shape)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m chapters.attention", description=__doc__.split("\n\n")[0],
        parents=[common_flags("out/attention", PAIRS, positive_int), text_flags(num_steps=9)])
    p.add_argument("--model", choices=[*MODELS, "both"], default="both")
    p.add_argument("--lr", type=positive_float,
                   help="learning rate of Adam (default each model's own)")
    p.add_argument("--held-out", type=positive_int, default=4,
                   help="validation pairs to translate after the book's sentences")
    p.set_defaults(epochs=None, batchsize=None)
    return book_or_quick(p.parse_args(argv), BOOK, QUICK)


def positive_float(text: str) -> float:
    """An argparse type: a learning rate Adam accepts, above 0."""
    try:
        value = Adam(float(text)).lr
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    if value == 0:
        raise argparse.ArgumentTypeError("must be above 0")
    return value


def main(argv: list[str] | None = None) -> dict[str, dict]:
    """Train the chosen models; translate the book's sentences and a few held-out pairs with
    their BLEU; draw the attention weights; print a summary table."""
    args = parse_args(argv)
    out = Path(args.out)
    names = list(MODELS) if args.model == "both" else [args.model]
    check_outputs(out, [f"{name}-history.json" for name in names],  # before any training
                  [f"{name}-{what}.png" for name in names for what in ("board", "attention")])
    if args.seed is not None:
        d2lai.seed(args.seed)
    data = load_data(args, PAIRS, num_steps=args.num_steps)
    held_engs, held_fras = held_out_pairs(data, args.held_out)
    results = {}
    for name in names:
        make, lr, epochs = MODELS[name]
        try:
            model = make(data, args.num_hiddens)
        except ValueError as err:  # a width the heads cannot share, say
            raise SystemExit(f"error: --num-hiddens {args.num_hiddens}: {err}") from None
        lr, epochs = args.lr or lr, args.epochs or epochs
        trainer = Trainer(model, data, Adam(lr), max_epochs=epochs, gpu=not args.cpu,
                          gradient_clip_val=args.clip, board_path=out / f"{name}-board.png",
                          **speed(args))
        print(f"\n{name}: {sum(p.numel() for p in model.parameters())} parameters, {epochs} "
              f"epochs of Adam({lr}), batch {data.batchsize} x {data.num_steps} tokens, "
              f"vocabularies of {len(data.src_vocab)} and {len(data.tgt_vocab)}")
        record = fit_and_record(name, trainer, out)
        model = trainer.model
        for group, engs, fras in (("book", ENGS, FRAS), ("held_out", held_engs, held_fras)):
            record[group] = translate(model, data, engs, fras)
            for row in record[group]:
                print(f"{row['en']} => {row['translation']}, bleu {row['bleu']:.3f}")
        path = out / f"{name}-attention.png"
        record["heatmap"] = {"path": str(path), "shape": attention_heatmap(
            name, model, data, ENGS[-1], FRAS[-1], path)}
        print(f"attention weights of {ENGS[-1]!r}: {path}")
        write_or_say(out / f"{name}-history.json", partial(write_json, value=record))
        results[name] = record
        if record["metrics"]["interrupted"]:  # Ctrl-C: stop, do not start the next
            break
    bleu_table(results)
    return results


def bleu_table(results: dict[str, dict]) -> None:
    """A row a model: epochs, losses, token accuracy, the mean BLEU of each group, seconds."""
    print(f"\n{'model':<13}{'epochs':>6}{'train loss':>11}{'val loss':>9}{'val acc':>8}"
          f"{'BLEU book':>10}{'BLEU held-out':>14}{'seconds':>9}")
    for name, r in results.items():
        m = r["metrics"]
        figures = [f"{m[k]:.3f}" if m[k] is not None and math.isfinite(m[k]) else "-"
                   for k in ("train_loss", "val_loss", "val_acc")]
        bleus = [sum(row["bleu"] for row in r[g]) / len(r[g]) if r[g] else math.nan
                 for g in ("book", "held_out")]
        print(f"{name:<13}{m['epochs']:>6}{figures[0]:>11}{figures[1]:>9}{figures[2]:>8}"
              f"{bleus[0]:>10.3f}{bleus[1]:>14.3f}{r['seconds']:>9.1f}")


if __name__ == "__main__":
    run(main)
