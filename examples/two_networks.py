"""Two networks compared in one results table.

Replicates deeplizard's PyTorch lesson "Batch Norm in PyTorch - Add Normalization to Conv Net
Layers": a small CNN without and with batch norm (after the first pooling and the first dense
layer), the same seed for both, Adam(0.01), batches of 1000, 20 epochs, on Fashion-MNIST as it is
and standardised; one table row a run and epoch. Finding: batch norm gives the higher training
accuracy (the lesson: 0.9377 against 0.9150 in the 20th epoch, standardised set).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from torch import nn

import d2lai
from chapters.cli import HelpFormatter, common_flags, learning_rate, load_data, run, tensorboard
from d2lai import AbstractClassifier, Adam, Run, RunTable, grid, sweep

__all__ = ["Network", "NETWORKS", "TRAINSETS", "main"]

OUT = "out/examples/two_networks"
NETWORKS = {"no_batch_norm": False, "batch_norm": True}  # the lesson's names: Network(batch_norm)
TRAINSETS = {"not_normal": False, "normal": True}  # FashionMNISTData(normalize=...)
TUTORIAL = {"no_batch_norm": 0.9150, "batch_norm": 0.9377}  # training accuracy, epoch 20, normal


class Network(AbstractClassifier):
    """conv 5x5 1->6, ReLU, max-pool 2, conv 5x5 6->12, ReLU, max-pool 2, dense 192->120, ReLU,
    dense 120->60, ReLU, dense 60->10 (logits); `batch_norm` adds BatchNorm2d(6) after the first
    pooling and BatchNorm1d(120) after the first dense layer's ReLU. Batch norm holds no random
    numbers, so both networks built after the same seed start from the same weights."""

    output_kind = "logits"

    def __init__(self, batch_norm: bool = False):
        super().__init__()
        bn = (lambda layer: [layer]) if batch_norm else (lambda layer: [])
        self.net = nn.Sequential(
            nn.Conv2d(1, 6, 5), nn.ReLU(), nn.MaxPool2d(2, 2), *bn(nn.BatchNorm2d(6)),
            nn.Conv2d(6, 12, 5), nn.ReLU(), nn.MaxPool2d(2, 2),
            nn.Flatten(),
            nn.Linear(12 * 4 * 4, 120), nn.ReLU(), *bn(nn.BatchNorm1d(120)),
            nn.Linear(120, 60), nn.ReLU(),
            nn.Linear(60, 10),
        )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    common = common_flags(OUT)
    common.set_defaults(epochs=20, batchsize=1000, seed=50)
    p = argparse.ArgumentParser(
        prog="python examples/two_networks.py", parents=[common], formatter_class=HelpFormatter,
        description="A small CNN without and with batch norm, on the data set as it is and "
                    "standardised: 4 runs, one table.")
    p.add_argument("--lr", type=learning_rate, default=0.01,
                   help="learning rate of Adam (default 0.01)")
    p.add_argument("--trainsets", nargs="+", choices=list(TRAINSETS), default=list(TRAINSETS),
                   help="the data as it is (not_normal) and/or standardised (normal); "
                        "default both")
    p.add_argument("--resume", action="store_true",
                   help="skip the runs finished in --out by an earlier, stopped try with the "
                        "same flags")
    return p.parse_args(argv)


def load(args: argparse.Namespace) -> dict[str, d2lai.MNISTLikeData]:
    """The --dataset as it is and/or standardised, by trainset name; a data set or --out that
    cannot be used exits with `error: ...` (as chapters.batch_norm.load_data does)."""
    return {name: load_data(args, normalize=normalize)
            for name, normalize in TRAINSETS.items() if name in args.trainsets}


def summary(table: RunTable, epochs: int) -> str:
    """Each network's final training and validation accuracy, next to the lesson's."""
    final = {(r["trainset"], r["network"]): r for r in table.final().records}
    lines = []
    for trainset in TRAINSETS:
        said = []
        for network in NETWORKS:
            r = final.get((trainset, network))
            if r is None or r["train_acc"] is None or r["val_acc"] is None:
                continue
            said.append(f"{network} {r['train_acc']:.4f} (validation {r['val_acc']:.4f}"
                        f"{', epoch ' + str(r['epoch']) if r['epoch'] != epochs else ''})")
        if said:
            lines.append(f"{trainset}: " + ", ".join(said))
    return (f"Training accuracy in epoch {epochs}: " + "; ".join(lines) + f". The lesson "
            f"reports {TUTORIAL['batch_norm']:.4f} with batch norm against "
            f"{TUTORIAL['no_batch_norm']:.4f} without (20th epoch, standardised set, training "
            f"accuracy only).")


COLUMNS = ["run", "epoch", "train_loss", "train_acc", "val_loss", "val_acc", "epoch_s", "run_s",
           "lr", "batch_size", "device", "trainset", "network", "status"]


def main(argv: list[str] | None = None) -> RunTable:
    """Train both networks on each trainset (4 runs); print and write the table and plot."""
    args = parse_args(argv)
    datas, out = load(args), Path(args.out)
    tensorboard(args)  # installed? (before anything is trained)
    device = d2lai.get_device(not args.cpu).type
    fixed = {"lr": args.lr, "batch_size": args.batchsize, "device": device}
    runs = [Run(r.name, {**fixed, **r.settings})
            for r in grid({"trainset": list(datas), "network": list(NETWORKS)})]

    def build(s):  # sweep seeds (torch.manual_seed(--seed)) just before each build
        return (Network(NETWORKS[s["network"]]), datas[s["trainset"]], Adam(s["lr"]))

    table = sweep(runs, build, out, restart=not args.resume, verbose=True, board=False,
                  tensorboard=args.tensorboard,
                  max_epochs=args.epochs, gpu=not args.cpu, seed=args.seed)
    table = RunTable(r for r in table.records if r["run"] in {run.name for run in runs})
    table.print([c for c in COLUMNS if c in table.columns()])
    print("\n" + summary(table, args.epochs))
    fig = table.plot_curves(["train_loss", "train_acc", "val_acc"])
    fig.axes[0].set_title(f"Adam({args.lr:g}), batches of {args.batchsize}, seed {args.seed}")
    fig.savefig(out / "two_networks.png", dpi=120)
    print(f"\ntable written to {out / 'runs.csv'} and {out / 'runs.json'}, plot to "
          f"{out / 'two_networks.png'}")
    return table


if __name__ == "__main__":
    run(main)
