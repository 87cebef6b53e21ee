"""Model selection with an MLP: early stopping, L2, dropout and batch norm.

Replicates the "Model selection" part of Joaquin Vanschoren's Keras lecture "Neural Networks: how
to train your neurons": dense nets on flattened Fashion-MNIST, the first 10,000 training images
held out for validation. Finding: the 512-512 net overfits (training loss 0.75 to 0.14 in 25
epochs while the bumpy validation loss stops improving after about 6); early stopping ends it at
epoch 9 at about the same test accuracy; dropout keeps the two losses together over 50 epochs and
scores best (0.890 against 0.875).
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import torch
from torch import nn

import d2lai
from chapters.cli import HelpFormatter, batch_count, common_flags, load_data, run, tensorboard
from d2lai import (
    AbstractClassifier,
    Callback,
    EarlyStopping,
    OptimiserChain,
    RMSProp,
    Run,
    RunTable,
    WeightDecay,
    sweep,
)

__all__ = ["MLP", "RUNS", "tutorial_runs", "optimiser", "stopper", "accuracy_on_test", "main"]

OUT = "out/examples/mlp_model_selection"
INITS = ("he_normal", "glorot_uniform")  # Keras's names; glorot_uniform is Keras's default
SUMMARY = ["run", "hidden", "epochs", "best_epoch", "returned_epoch", "train_loss", "train_acc",
           "val_loss", "val_acc", "loss_gap", "val_loss_rise", "test_acc", "seconds"]


class MLP(AbstractClassifier):
    """Dense layers of sizes `hidden` with ReLU, each followed by batch norm (Keras's momentum
    0.99 and epsilon 1e-3, i.e. torch's momentum 0.01) and dropout where asked; softmax output.

    Weights as Keras draws them: the hidden kernels by `init` (he_normal: N(0, 2 / fan_in);
    glorot_uniform: U(+-sqrt(6 / (fan_in + fan_out)))), the output kernel Glorot-uniform, every
    bias 0.
    """

    output_kind = "probabilities"

    def __init__(self, hidden: tuple[int, ...] = (512, 512), dropout: float = 0.0,
                 batch_norm: bool = False, init: str = "glorot_uniform", num_inputs: int = 784,
                 num_classes: int = 10):
        super().__init__()
        if not hidden or not all(isinstance(h, int) and not isinstance(h, bool) and h > 0
                                 for h in hidden):
            raise ValueError(f"hidden must be one or more positive layer sizes, got {hidden!r}")
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) \
                or not 0 <= dropout < 1:
            raise ValueError(f"dropout must be a probability in [0, 1), got {dropout!r}")
        if init not in INITS:
            raise ValueError(f"init must be one of {', '.join(INITS)}, got {init!r}")
        layers, width = [], num_inputs
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            layers += [nn.BatchNorm1d(h, eps=1e-3, momentum=0.01)] if batch_norm else []
            layers += [nn.Dropout(dropout)] if dropout else []
            width = h
        layers += [nn.Linear(width, num_classes), nn.Softmax(dim=1)]
        self.net = nn.Sequential(*layers)
        *kernels, last = [m for m in self.net if isinstance(m, nn.Linear)]
        for layer in kernels:
            if init == "he_normal":  # Keras truncates at 2 std and rescales: the same std
                nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
            else:
                nn.init.xavier_uniform_(layer.weight)
        nn.init.xavier_uniform_(last.weight)
        for layer in (*kernels, last):
            nn.init.zeros_(layer.bias)

    def hidden_kernels(self) -> list[nn.Parameter]:
        """The weights of the hidden dense layers (what Keras's kernel_regularizer covers)."""
        return [m.weight for m in self.net if isinstance(m, nn.Linear)][:-1]


def _run(name: str, hidden: tuple[int, ...], max_epochs: int, init: str = "glorot_uniform",
         l2: float = 0.0, dropout: float = 0.0, batch_norm: bool = False,
         patience: int | None = None) -> Run:
    settings = dict(hidden=hidden, init=init, l2=l2, dropout=dropout, batch_norm=batch_norm,
                    patience=patience, max_epochs=max_epochs)
    return Run(name, settings, {**settings, "hidden": "-".join(map(str, hidden))})


# The tutorial's runs, in its order: (hidden sizes, epochs, and what each adds).
RUNS = {r.name: r for r in [
    _run("baseline", (512, 512), 25, init="he_normal"),
    _run("early-stop", (512, 512), 25, init="he_normal", patience=3),
    _run("small", (256, 32), 30, init="he_normal", patience=5),
    _run("l2", (256, 32), 50, l2=0.001, patience=5),
    _run("dropout-0.5", (256, 32), 50, dropout=0.5),
    _run("dropout-0.3", (256, 32), 50, dropout=0.3),
    _run("bn-dropout", (265, 64, 32), 50, dropout=0.5, batch_norm=True),
]}


def tutorial_runs(names: list[str] | None = None, max_epochs: int | None = None) -> list[Run]:
    """The runs `names` (all by default), each capped at `max_epochs` if given."""
    runs = [RUNS[n] for n in (names or RUNS)]
    if max_epochs is None:
        return runs
    return [_run(r.name, **{**r.settings, "max_epochs": min(max_epochs,
                                                            r.settings["max_epochs"])})
            for r in runs]


def optimiser(model: MLP, l2: float = 0.0):
    """Keras's RMSprop, with Keras's L2(l2) on the hidden kernels when l2 > 0.

    Keras's RMSprop defaults are lr 0.001, rho 0.9, epsilon 1e-7; d2lai's RMSProp has Flux's
    (lr 0.001, rho 0.9, eps 1e-8): the same lr and rho, and we pass Keras's epsilon.
    """
    rule = RMSProp(0.001, 0.9, 1e-7)
    if not l2:
        return rule
    # Keras's L2(l) adds l * sum(w^2) to the loss, so the gradient gains 2 * l * w; WeightDecay(λ)
    # adds λ * w to the gradient, so λ = 2 * l. Keras puts it on the hidden kernels only: the
    # biases and the output layer go in a parameter group without decay. (Keras also adds the
    # penalty to the losses it reports; the losses here are the data's only.)
    kernels = model.hidden_kernels()
    others = [p for p in model.parameters() if all(p is not k for k in kernels)]
    return OptimiserChain(WeightDecay(2 * l2), rule).setup(
        [{"params": kernels}, {"params": others, "weight_decay": 0.0}])


def stopper(patience: int, restore: bool = True) -> EarlyStopping:
    """Keras's EarlyStopping(monitor="val_loss", patience); `restore` gives back the best
    epoch's weights (the tutorial keeps Keras's default, the last epoch's)."""
    return EarlyStopping(monitor="val_loss", patience=patience, restore_best_weights=restore)


@torch.no_grad()
def accuracy_on_test(model: nn.Module, data: d2lai.MNISTLikeData) -> float:
    """Accuracy of `model` (in evaluation mode) on `data.test`, on the model's device."""
    model.eval()
    device = next(model.parameters()).device
    correct = total = 0
    for X, y in data.test_dataloader():
        correct += int((model(X.to(device)).argmax(1) == y.to(device)).sum())
        total += len(y)
    return correct / total


class _Outcome(Callback):
    """Titles the run's board with its name; at the end keeps the metrics of the weights
    returned (after any restore) and their test accuracy."""

    def __init__(self, name: str):
        self.name, self.metrics, self.test_acc = name, None, math.nan

    def on_fit_start(self, trainer) -> None:
        if trainer.board is not None:
            trainer.board.title = self.name

    def on_fit_end(self, trainer, metrics) -> None:
        self.metrics = metrics
        if trainer.epoch:
            self.test_acc = accuracy_on_test(trainer.model, trainer.data)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    common = common_flags(OUT)
    common.set_defaults(epochs=None, batchsize=512, seed=0)
    p = argparse.ArgumentParser(
        prog="python examples/mlp_model_selection.py", parents=[common],
        formatter_class=HelpFormatter,
        description="Dense nets on flattened Fashion-MNIST (the first --val-split training "
                    "images validate): overfitting, early stopping, L2, dropout, batch norm. "
                    "--epochs N caps every run at N epochs (default: the tutorial's 25, 30 "
                    "or 50).")
    p.add_argument("--val-split", type=batch_count, default=10000,
                   help="hold out the first N training images for validation (default 10000)")
    p.add_argument("--runs", nargs="+", choices=list(RUNS), default=list(RUNS), metavar="RUN",
                   help=f"the runs to train, of {', '.join(RUNS)} (default all)")
    p.add_argument("--no-restore", action="store_true",
                   help="early stopping returns the last epoch's weights, as Keras does by "
                        "default, not the best epoch's")
    return p.parse_args(argv)


def summarise(rows: RunTable, table: RunTable) -> str:
    """One paragraph on what the runs show: where each overfits, where early stopping stopped."""
    by = {r["run"]: r for r in rows.records}
    parts = []
    if "baseline" in by:
        r = by["baseline"]
        rows_of = [x for x in table.records if x["run"] == "baseline"]
        first, last = rows_of[0], rows_of[-1]
        parts.append(f"Over {r['epochs']} epochs the 512-512 net's training loss falls from "
                     f"{first['train_loss']:.3f} to {last['train_loss']:.3f}, while its "
                     f"validation loss goes from {first['val_loss']:.3f} to its lowest, "
                     f"{last['val_loss'] - r['val_loss_rise']:.3f}, at epoch "
                     f"{r['best_epoch']} and ends at {last['val_loss']:.3f}: validation loss "
                     f"minus training loss {r['loss_gap']:.3f} at the end")
    for name in ("early-stop", "small", "l2"):
        if name in by:
            r = by[name]
            stopped = (f"stopped it at epoch {r['epochs']} of {r['max_epochs']}"
                       if r["epochs"] < r["max_epochs"] else "did not stop it")
            parts.append(f"Early stopping (patience {r['patience']}) {stopped} for {name}, "
                         f"whose validation loss is lowest at epoch {r['best_epoch']}; the "
                         f"weights of epoch {r['returned_epoch']} (gap {r['loss_gap']:.3f}) "
                         f"score {r['test_acc']:.4f} on the test set")
    others = [by[n] for n in ("dropout-0.5", "dropout-0.3", "bn-dropout") if n in by]
    if others:
        parts.append("Without early stopping, " + ", ".join(
            f"{r['run']} has its lowest validation loss at epoch {r['best_epoch']} of "
            f"{r['epochs']} (then {r['val_loss_rise']:.3f} higher) and a gap of "
            f"{r['loss_gap']:.3f} at the end" for r in others))
    scored = [r for r in rows.records if not math.isnan(r["test_acc"])]
    if scored:
        best = max(scored, key=lambda r: r["test_acc"])
        parts.append(f"Best test accuracy: {best['run']}, {best['test_acc']:.4f}")
    return ". ".join(parts) + "."


def main(argv: list[str] | None = None) -> RunTable:
    """Train the tutorial's runs on one data load; print and save the comparison and plots."""
    args = parse_args(argv)
    data = load_data(args, flatten=True, val_split=args.val_split)
    out = Path(args.out)
    runs = tutorial_runs(args.runs, args.epochs)
    order, outcomes = iter(runs), {}

    def build(s):
        name = next(order).name  # the sweep builds its runs in order, each once
        outcomes[name] = _Outcome(name)
        stop = [stopper(s["patience"], not args.no_restore)] if s["patience"] is not None else []
        model = MLP(s["hidden"], s["dropout"], s["batch_norm"], s["init"])
        return {"model": model, "data": data, "opt": optimiser(model, s["l2"]),
                "max_epochs": s["max_epochs"],
                "callbacks": [*stop, outcomes[name],
                              *tensorboard(args, out / "tensorboard" / name)],
                "board_path": out / "boards" / f"{name}.png"}

    tic = time.perf_counter()
    table = sweep(runs, build, verbose=True, gpu=not args.cpu, seed=args.seed,
                  board_yscale="identity")
    rows = []
    for name in table.runs():
        records = [r for r in table.records if r["run"] == name]
        val = [r["val_loss"] if r["val_loss"] is not None else math.inf for r in records]
        m, last = outcomes[name].metrics, records[-1]
        rows.append({"run": name, **RUNS[name].columns, "max_epochs": last["max_epochs"],
                     "epochs": len(records), "best_epoch": 1 + val.index(min(val)),
                     "returned_epoch": m.epoch, "train_loss": m.train_loss,
                     "train_acc": m.train_acc, "val_loss": m.val_loss, "val_acc": m.val_acc,
                     "loss_gap": m.val_loss - m.train_loss, "val_loss_rise": val[-1] - min(val),
                     "test_acc": outcomes[name].test_acc,
                     "seconds": last["run_s"], "status": last["status"]})
    rows = RunTable(rows)
    rows.print(SUMMARY)
    print(f"\n{summarise(rows, table)}\n({time.perf_counter() - tic:.0f} s in all)")
    for path in (table.to_csv(out / "runs.csv"), table.to_json(out / "runs.json"),
                 rows.to_csv(out / "summary.csv"), rows.to_json(out / "summary.json")):
        print(f"table written to {path}")
    fig = table.plot_curves(["train_loss", "val_loss"])
    for i, r in enumerate(rows.records):  # each run's lowest validation loss: where it overfits
        best = next(x for x in table.records
                    if x["run"] == r["run"] and x["epoch"] == r["best_epoch"])
        if best["val_loss"] is not None:  # colours as plot_curves gives them (up to 10 runs)
            fig.axes[1].plot(r["best_epoch"], best["val_loss"], "*", color=f"C{i}",
                             markersize=12, markeredgecolor="black")
    fig.axes[0].set_title("training and validation loss; * lowest validation loss")
    fig.savefig(out / "loss_curves.png", dpi=120)
    table.plot_curves("val_acc", out / "val_acc.png")
    print(f"plots saved to {out / 'loss_curves.png'}, {out / 'val_acc.png'} and "
          f"{out / 'boards'}/")
    return rows


if __name__ == "__main__":
    run(main)
