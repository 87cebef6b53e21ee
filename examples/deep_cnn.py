"""Deep network where batch norm decides whether training happens at all.

Replicates Udacity's deep-learning lesson "Batch Normalization – Solutions" (TensorFlow, MNIST):
19 convolutions of 3 x 3 and a dense layer, 800 batches of 64 with Adam(0.002), without batch
norm, with torch's layers, and with the chapter's scratch layer. Finding: without batch norm the
loss stays at log(10) = 2.30 and accuracy at chance; with it the same net learns in those 800
batches. The first 100 test images, scored one at a time in evaluation mode, check that the
batch-norm layers switched to their moving statistics.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from pathlib import Path

import torch
from matplotlib.figure import Figure
from torch import nn

import d2lai
from chapters.batch_norm import BatchNormLayer
from chapters.cli import (
    HelpFormatter,
    common_flags,
    learning_rate,
    load_data,
    positive_int,
    run,
    tensorboard,
)
from d2lai import AbstractClassifier, Adam, Callback, RunTable, TensorLoader, grid, sweep

__all__ = ["DeepCNN", "VARIANTS", "outputs", "score", "main"]

OUT = "out/examples/deep_cnn"
VARIANTS = {"no BN": None, "torch BN": "torch", "scratch BN": "scratch"}  # label: DeepCNN(norm)
SINGLES = 100  # test images scored one at a time
TUTORIAL = {"no BN": (0.1219, 0.13), "BN": (0.9745, 0.98)}  # MNIST: test acc, 100 one at a time


def _batch_norm(norm: str, num_features: int, num_dims: int) -> nn.Module:
    if norm == "torch":
        return nn.BatchNorm2d(num_features) if num_dims == 4 else nn.BatchNorm1d(num_features)
    return BatchNormLayer(num_features, num_dims)


class DeepCNN(AbstractClassifier):
    """Conv i (i = 1..19): 3 x 3, 4i channels, stride 2 on every third layer, same padding, ReLU;
    then dense 100 + ReLU and 10 logits. `norm` "torch" or "scratch" puts a batch-norm layer
    between each conv (and the dense layer) and its ReLU, and drops that layer's bias.
    Each training batch's loss is kept in `batch_losses` (for the per-batch plot)."""

    output_kind = "logits"

    def __init__(self, norm: str | None = None, num_classes: int = 10, image_size: int = 28):
        super().__init__()
        if norm not in (None, "torch", "scratch"):
            raise ValueError(f"norm must be None, 'torch' or 'scratch', got {norm!r}")
        layers, channels, size = [], 1, image_size
        for i in range(1, 20):
            stride = 2 if i % 3 == 0 else 1
            layers.append(nn.Conv2d(channels, 4 * i, 3, stride=stride, padding=1,
                                    bias=norm is None))
            layers += [_batch_norm(norm, 4 * i, 4)] if norm else []
            layers.append(nn.ReLU())
            channels, size = 4 * i, (size - 1) // stride + 1  # "same": ceil(size / stride)
        layers += [nn.Flatten(), nn.Linear(channels * size * size, 100, bias=norm is None)]
        layers += [_batch_norm(norm, 100, 2)] if norm else []
        layers += [nn.ReLU(), nn.Linear(100, num_classes)]
        self.net = nn.Sequential(*layers)
        self.batch_losses: list[torch.Tensor] = []

    def training_step(self, batch) -> torch.Tensor:
        loss = super().training_step(batch)
        self.batch_losses.append(loss.detach())
        return loss


@torch.no_grad()
def outputs(model: nn.Module, X: torch.Tensor, transform: Callable, batchsize: int) -> torch.Tensor:
    """The model's outputs for stored images X, `batchsize` images at a time, on the model's
    device, in whatever mode the model is in (so a model left in training mode shows)."""
    device = next(model.parameters()).device
    loader = TensorLoader(X, batchsize, merge_single=False, transform=transform)
    return torch.cat([model(x.to(device)).cpu() for (x,) in loader])


def score(model: nn.Module, data: d2lai.MNISTLikeData, singles: int = SINGLES) -> dict:
    """In evaluation mode: the accuracy of the first `singles` test images scored one at a time
    (`single_acc`), and the share of them predicted as when scored in one batch (`single_agree`)."""
    X, y = data.test[0][:singles], data.test[1][:singles].cpu()
    model.eval()
    one_by_one = outputs(model, X, data.transform, 1).argmax(1)
    batched = outputs(model, X, data.transform, len(X)).argmax(1)
    return {"single_acc": (one_by_one == y).float().mean().item(),
            "single_agree": (one_by_one == batched).float().mean().item()}


class _ScoreAtEnd(Callback):
    """Scores the trained model when its fit ends and keeps the steps it took, under `label`."""

    def __init__(self, results: dict, label: str):
        self.results, self.label = results, label

    def on_fit_end(self, trainer, metrics) -> None:
        model = trainer.model
        losses = torch.stack(model.batch_losses).cpu() if model.batch_losses else torch.zeros(0)
        self.results[self.label] = {"steps": metrics.steps, **score(model, trainer.data),
                                    "losses": losses}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    common = common_flags(OUT)
    common.set_defaults(batchsize=64, epochs=None, seed=0)
    p = argparse.ArgumentParser(
        prog="python examples/deep_cnn.py", parents=[common], formatter_class=HelpFormatter,
        description="A 19-layer CNN trained for a budget of batches without batch norm, with "
                    "torch's and with the chapter's scratch batch norm. --epochs caps the epochs "
                    "(default: as many as --steps needs).")
    p.add_argument("--steps", type=positive_int, default=800,
                   help="batches to train each variant on (default 800)")
    p.add_argument("--lr", type=learning_rate, default=0.002,
                   help="learning rate of Adam (default 0.002)")
    return p.parse_args(argv)


def _f(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def summary(table: RunTable, steps: int) -> str:
    """The finding, in the figures measured, next to the tutorial's."""
    final = {r["variant"]: r for r in table.final().records}

    def said(label: str) -> str:
        r = final[label]
        return (f"{label}: training loss {_f(r['train_loss'], '.2f')}, test accuracy "
                f"{_f(r['val_acc'], '.3f')}, first {SINGLES} one at a time "
                f"{_f(r.get('single_acc'), '.2f')} (same as batched for "
                f"{_f(r.get('single_agree'), '.0%')}), {r['status']}")

    runs = "; ".join(said(label) for label in VARIANTS if label in final)
    return (f"After {steps} batches — {runs}. A loss of log(10) = {math.log(10):.2f} is a "
            f"uniform guess: a run marked 'failed' learned nothing. The tutorial (TensorFlow, "
            f"MNIST) reports test accuracy {TUTORIAL['no BN'][0]} without batch norm and "
            f"{TUTORIAL['BN'][0]} with it, and {TUTORIAL['no BN'][1]} and {TUTORIAL['BN'][1]} "
            f"on the first 100 test images one at a time.")


def plot(table: RunTable, losses: dict[str, torch.Tensor], num_classes: int, path: Path) -> None:
    """Left: each variant's training loss, batch by batch (mean of 25); right: its accuracies."""
    fig = Figure(figsize=(11, 4), layout="constrained")
    left, right = fig.subplots(1, 2)
    for label, loss in losses.items():
        sums = torch.cat([torch.zeros(1), loss.cumsum(0)])
        ends = torch.arange(1, len(loss) + 1)
        starts = (ends - 25).clamp(min=0)
        left.plot(ends, (sums[ends] - sums[starts]) / (ends - starts), label=label)
    left.axhline(math.log(num_classes), color="grey", linestyle=":", label="uniform guess")
    left.set(xlabel="batch", ylabel="training loss (mean of 25 batches)")
    left.legend()
    final = table.final().records
    x = torch.arange(len(final)).float()
    right.bar(x - 0.2, [r["val_acc"] or 0 for r in final], 0.4, label="whole test set")
    right.bar(x + 0.2, [r["single_acc"] or 0 for r in final], 0.4,
              label=f"first {SINGLES}, one at a time")
    right.axhline(1 / num_classes, color="grey", linestyle=":", label="chance")
    right.set_xticks(x, [f"{r['variant']} ({r['status']})" for r in final])
    right.set(ylabel="accuracy", ylim=(0, 1))
    right.legend()
    fig.savefig(path, dpi=120)


COLUMNS = ["run", "epoch", "steps", "train_loss", "val_loss", "val_acc", "single_acc",
           "single_agree", "run_s", "status"]


def main(argv: list[str] | None = None) -> RunTable:
    """Train the three variants for --steps batches each; print and write their table."""
    args = parse_args(argv)
    data, out = load_data(args), Path(args.out)
    tensorboard(args)  # installed? (before anything is trained)
    results: dict[str, dict] = {}

    def build(s):
        return {"model": DeepCNN(VARIANTS[s["variant"]]), "data": data, "opt": Adam(args.lr),
                "callbacks": [_ScoreAtEnd(results, s["variant"])]}

    table = sweep(grid({"variant": list(VARIANTS)}), build, out, restart=True, verbose=True,
                  tensorboard=args.tensorboard,
                  board=False, max_epochs=args.epochs, max_steps=args.steps, gpu=not args.cpu,
                  seed=args.seed)
    last = {r["run"]: r for r in table.records}
    for r in table.records:  # the scores belong to each run's last row
        scores = results.get(r["variant"], {}) if r is last[r["run"]] else {}
        r.update({k: scores.get(k) for k in ("steps", "single_acc", "single_agree")})
    table.to_csv(out / "runs.csv")
    table.to_json(out / "runs.json")
    table.print([c for c in COLUMNS if c in table.columns()])
    print("\n" + summary(table, args.steps))
    plot(table, {label: r["losses"] for label, r in results.items()}, data.num_classes,
         out / "deep_cnn.png")
    print(f"\ntable written to {out / 'runs.csv'} and {out / 'runs.json'}, plot to "
          f"{out / 'deep_cnn.png'}")
    return table


if __name__ == "__main__":
    run(main)
