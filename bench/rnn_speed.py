"""Training speed of the RNN language model: `d2lai.fit` against a bare PyTorch loop.

Run from the repository root: `python -m bench.rnn_speed` (`--help` lists the flags).

The model is chapter 8's `RNNLMScratch(RNNScratch(V, 32), V)` (`--models scratch,concise` adds
the `nn.RNN` one), trained as the chapter trains it: `TimeMachine(1024, 32)` windows of a
generated Time Machine (or the real text with `--data-root`), Descent(1.0), gradients clipped
to norm 1. Two ways, on the same data and the same batches:

- bare: the `.train` tensors of the TimeMachine object, a fresh randperm each epoch, batches cut
  by index, forward, the model's own loss, backward, clip, step. Nothing else: the limit.
- bare + figures: the same, keeping the epoch's mean training loss and accuracy as d2lai does
  (an argmax over every position's scores each batch): what d2lai's training figures cost.
- d2lai: `d2lai.fit(Trainer(...))` with validation, log lines, progress bar and board
  (verbose=True), and again with verbose=False; its times per epoch from `trainer.timings`.

As in `bench.train_speed`: the two run in lockstep (a callback runs one bare epoch after each
of d2lai's epochs, whose times are already taken), each from a model seeded alike and shuffled
alike, so they train to the same weights (checked); the figures are the medians of the timed
epochs (a warm-up dropped) and the fastest epochs; the ratios are d2lai's time over the bare
loop's. Perplexities are printed beside them: d2lai's epoch figures, and the bare loop's own.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import nn

import d2lai
from bench.common import (
    add_json,
    finish,
    machine,
    parse,
    parser,
    positive,
    print_held,
    seeded,
    setup,
    sync,
    worst_ratios,
)
from bench.train_speed import (
    StepBeside,
    figure_cells,
    figures,
    max_weight_diff,
    slices,
    table_head,
)
from chapters.rnn import MODELS
from d2lai import Descent, Trainer
from d2lai.testing import write_fake_time_machine

SEED, LR, CLIP = 0, 1.0, 1.0
TARGET = 1.10  # d2lai / bare, verbose or not


class BareLoop:
    """The chapter's training as a bare PyTorch loop, one epoch a call: its times and losses;
    with `figures`, also the training accuracy of each batch, as d2lai measures it."""

    def __init__(self, model: nn.Module, data: d2lai.TimeMachine, gen: torch.Generator,
                 device: torch.device, figures: bool = False):
        self.model, self.device, self.gen = model.to(device), device, gen
        self.figures = figures
        self.X, self.Y = (t.to(device) for t in data.train)
        self.batchsize = data.batchsize
        self.opt = torch.optim.SGD(self.model.parameters(), lr=LR)
        self.times: list[float] = []
        self.losses: list[float] = []

    def batches(self) -> Iterator:
        return slices(self.X, self.Y, self.batchsize, self.gen)

    def epoch(self) -> None:
        model, opt = self.model, self.opt
        model.train()
        total = torch.zeros(2, dtype=torch.float64, device=self.device)
        sync(self.device)
        tic = time.perf_counter()
        for X, Y in self.batches():
            outputs = model(X)
            loss = model.loss(outputs, Y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), CLIP)
            opt.step()
            total[0] += loss.detach() * len(Y)
            if self.figures:
                total[1] += model.accuracy(outputs.detach(), Y).double() * len(Y)
        sync(self.device)
        self.times.append(time.perf_counter() - tic)
        self.losses.append(total[0].item() / len(self.Y))

    @torch.no_grad()
    def val_ppl(self, data: d2lai.TimeMachine) -> float:
        """Perplexity over the whole validation set, as d2lai's validation computes it."""
        self.model.eval()
        X, Y = (t.to(self.device) for t in data.val)
        total = sum(self.model.loss(self.model(X[i:i + data.batchsize]),
                                    Y[i:i + data.batchsize]).item() * len(Y[i:i + data.batchsize])
                    for i in range(0, len(Y), data.batchsize))
        return math.exp(total / len(Y))


def fit_beside(name: str, data: d2lai.TimeMachine, args: argparse.Namespace, verbose: bool,
               beside: list[BareLoop], board: Path, device: torch.device
               ) -> tuple[Trainer, nn.Module]:
    """`d2lai.fit` a fresh model as the chapter does; after each epoch, one epoch of each loop
    beside it."""
    model, _ = _fresh(name, data, args)
    trainer = Trainer(model, data, Descent(LR), max_epochs=1 + args.epochs,
                      gpu=device.type == "cuda", gradient_clip_val=CLIP,
                      clip="max_norm",  # torch's clipping, as the bare loop's
                      board_yscale="identity", verbose=verbose, board_path=board,
                      callbacks=[StepBeside(beside)])
    model, _ = d2lai.fit(trainer)
    return trainer, model


def bench_model(name: str, data: d2lai.TimeMachine, args: argparse.Namespace,
                device: torch.device, tmp: Path) -> dict:
    """Two fits of one model, each in lockstep with bare loops; figures, ratios, perplexities."""
    n, n_val = len(data.train[0]), len(data.val[0])
    res, ratios, ratios_min, diffs, ppl = {}, {}, {}, {}, {}
    for tag, verbose in (("verbose", True), ("quiet", False)):
        loops = {f"bare_beside_{tag}": _bare(name, data, args, device)}
        if verbose:
            loops["bare_figures"] = _bare(name, data, args, device, figures=True)
        print(f"{name}: d2lai verbose={verbose}, beside it {', '.join(loops)}", file=sys.stderr)
        trainer, model = fit_beside(name, data, args, verbose, list(loops.values()),
                                    tmp / f"{name}-{tag}.png", device)
        t = trainer.timings
        res[f"d2lai_{tag}"] = figures(t["train_s"][1:], n, t["val_s"][1:], n_val)
        for key, loop in loops.items():
            res[key] = figures(loop.times[1:], n)
            pair = f"d2lai_{tag}/{'bare' if key.startswith('bare_beside') else key}"
            ratios[pair] = res[f"d2lai_{tag}"]["train_s_per_epoch"] / res[key]["train_s_per_epoch"]
            ratios_min[pair] = res[f"d2lai_{tag}"]["train_s_min"] / res[key]["train_s_min"]
            diffs[f"d2lai_{tag} vs {key}"] = max_weight_diff(model, loop.model)
            ppl[key] = {"train_ppl": math.exp(loop.losses[-1]), "val_ppl": loop.val_ppl(data)}
        ppl[f"d2lai_{tag}"] = {"train_ppl": trainer.history["train_ppl"][-1],
                               "val_ppl": trainer.history["val_ppl"][-1]}
    return {**res, "ratios": ratios, "ratios_of_min": ratios_min,
            "max_weight_diff_vs_bare": diffs, "perplexity": ppl}


def _bare(name: str, data: d2lai.TimeMachine, args: argparse.Namespace, device: torch.device,
          figures: bool = False) -> BareLoop:
    model, gen = _fresh(name, data, args)
    return BareLoop(model, data, gen, device, figures)


def _fresh(name: str, data: d2lai.TimeMachine, args: argparse.Namespace
           ) -> tuple[nn.Module, torch.Generator]:
    """The model `name` for the data's vocabulary, seeded as in every configuration, and a
    generator in the RNG state after it."""
    return seeded(lambda: MODELS[name](len(data.vocab), args.num_hiddens), SEED)


def find_data(args: argparse.Namespace, tmp: Path) -> tuple[Path, str]:
    """--data-root, else a generated Time Machine long enough for the windows asked."""
    if args.data_root:
        return Path(args.data_root), "--data-root"
    print("no text given: generating a Time Machine", file=sys.stderr)
    write_fake_time_machine(tmp / "data", num_chars=args.num_train + args.num_val
                            + args.num_steps + 1000)
    return tmp / "data", "generated"


def check_targets(results: dict) -> dict:
    """Whether each ratio held its target, over all models."""
    return worst_ratios(results, {k: TARGET for k in ("d2lai_verbose/bare", "d2lai_quiet/bare")})


LABELS = {"bare_beside_verbose": "bare", "bare_figures": "bare + figures",
          "d2lai_verbose": "d2lai verbose=True", "bare_beside_quiet": "bare",
          "d2lai_quiet": "d2lai verbose=False"}


def print_table(report: dict) -> None:
    """The figures of every configuration, the ratios, the perplexities and the targets."""
    table_head("ratio: d2lai's training time to that of the loops it ran in lockstep with, just "
               "above it (of medians, of fastest epochs)", 21, "windows/s",
               f"{'train ppl':>10}{'val ppl':>8}")
    for name, res in report["results"].items():
        for key, label in LABELS.items():
            fig, ppl = res[key], res["perplexity"][key]
            print(f"{name:<9}{label:<21}{figure_cells(fig, 3)}{'':>15}"
                  f"{ppl['train_ppl']:>10.3f}{ppl['val_ppl']:>8.3f}")
            for pair in (p for p in res["ratios"] if p.startswith(f"{key}/")):
                print(f"{'':<9}{'  ' + pair:<59}{res['ratios'][pair]:>7.3f}"
                      f"{res['ratios_of_min'][pair]:>8.3f}")
    print_held("targets", report["targets"], 30, "worst")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = parser("rnn_speed", __doc__.split("\n")[0])
    p.add_argument("--epochs", type=positive, default=3, help="timed epochs, after one warm-up")
    p.add_argument("--models", default="scratch", help="comma-separated: scratch,concise")
    p.add_argument("--batchsize", type=positive, default=1024, help="windows a batch")
    p.add_argument("--num-steps", type=positive, default=32, help="characters a window")
    p.add_argument("--num-hiddens", type=positive, default=32, help="hidden units")
    p.add_argument("--num-train", type=positive, default=10000, help="training windows")
    p.add_argument("--num-val", type=positive, default=5000, help="validation windows")
    p.add_argument("--threads", type=positive, help="torch threads (default: torch's choice)")
    p.add_argument("--gpu", action="store_true", help="train on CUDA (data tensors on the GPU)")
    p.add_argument("--data-root", help="folder holding timemachine.txt (else a generated one)")
    add_json(p, "rnn_speed")
    return parse(p, argv, "--models", MODELS)


def main(argv: list[str] | None = None) -> dict:
    """Run both configurations of every model, print the table, write the JSON."""
    args = parse_args(argv)
    device = setup(args)
    with tempfile.TemporaryDirectory(prefix="d2lai-bench-") as tmp:
        tmp = Path(tmp)
        root, kind = find_data(args, tmp)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*is not the book's file")
            data = d2lai.TimeMachine(args.batchsize, args.num_steps, args.num_train,
                                     args.num_val, root=root)
        report = {"machine": machine(device),
                  "settings": {"epochs": args.epochs, "warmup_epochs": 1,
                               "batchsize": args.batchsize, "num_steps": args.num_steps,
                               "num_hiddens": args.num_hiddens, "opt": f"Descent({LR})",
                               "gradient_clip_val": CLIP, "data": kind,
                               "num_train": len(data.train[0]), "num_val": len(data.val[0]),
                               "vocab_size": len(data.vocab), "gpu": args.gpu}}
        report["results"] = {name: bench_model(name, data, args, device, tmp)
                             for name in args.models}
    report["machine"]["load_avg_end"] = os.getloadavg()
    report["targets"] = check_targets(report["results"])
    return finish(report, print_table, args.json)


if __name__ == "__main__":
    main()
