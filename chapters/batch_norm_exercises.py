"""Exercises of the Batch Normalization chapter, one subcommand an exercise.

`python -m chapters.batch_norm_exercises --help` lists them. Each trains its variants with
`d2lai.Trainer` + `d2lai.fit` on one Fashion-MNIST load, prints a table and writes NAME.json
and PNG plots under `--out` (default out/exercises).
"""

from __future__ import annotations

import argparse
import json
import math
import re
import time
from collections.abc import Callable
from pathlib import Path

import torch
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from torch import nn

import d2lai
from chapters.batch_norm import (
    BatchNormLayer,
    BLeNetConcise,
    BLeNetScratch,
    batch_norm,
    common_flags,
    learning_rate,
    load_data,
)
from d2lai import AbstractClassifier, Descent, Trainer

__all__ = ["LeNet", "batch_norm_mean_only", "batch_norm_std_only", "no_bias_before_bn",
           "keep_batch_norm", "fix_affine", "add_dropout", "with_norm_fn", "train_all",
           "print_table", "main"]

BN_TYPES = (nn.modules.batchnorm._BatchNorm, BatchNormLayer)
Variants = list[tuple[str, Callable[[], nn.Module]]]
SWEEP_TITLES = {"LeNet": "Without BatchNorm", "BLeNetConcise": "With BatchNorm"}


# --- the pieces the exercises add -----------------------------------------------------------

class LeNet(AbstractClassifier):
    """The text's LeNet without batch norm: sigmoid, mean pooling, Glorot-normal weights."""

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, 6, kernel_size=5, padding=2), nn.Sigmoid(), nn.AvgPool2d(2, stride=2),
            nn.Conv2d(6, 16, kernel_size=5), nn.Sigmoid(), nn.AvgPool2d(2, stride=2),
            nn.Flatten(),
            nn.Linear(16 * 5 * 5, 120), nn.Sigmoid(),
            nn.Linear(120, 84), nn.Sigmoid(),
            nn.Linear(84, num_classes), nn.Softmax(dim=1),
        )
        for layer in self.net:
            if isinstance(layer, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_normal_(layer.weight)
                nn.init.zeros_(layer.bias)


def _lite(X, gamma, beta, moving_mean, moving_var, eps, momentum, train_mode, center, scale):
    """Batch norm that only centres and/or only scales, in both modes alike."""
    if train_mode:
        # batch_norm checks the input and moves the statistics exactly as full batch norm does.
        _, new_mean, new_var = batch_norm(X.detach(), gamma.detach(), beta.detach(),
                                          moving_mean, moving_var, eps, momentum)
        dims = (0,) if X.ndim == 2 else (0, 2, 3)
        mean = X.mean(dim=dims, keepdim=True)
        var = X.var(dim=dims, unbiased=False, keepdim=True)
    else:
        mean, var, new_mean, new_var = moving_mean, moving_var, moving_mean, moving_var
    X_hat = X - mean if center else X
    if scale:
        X_hat = X_hat / torch.sqrt(var + eps)
    return gamma * X_hat + beta, new_mean, new_var


def batch_norm_mean_only(X: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor,
                         moving_mean: torch.Tensor, moving_var: torch.Tensor, eps: float,
                         momentum: float, train_mode: bool = True):
    """Lite batch norm: gamma * (X - mean) + beta, no division (prediction: the moving mean)."""
    return _lite(X, gamma, beta, moving_mean, moving_var, eps, momentum, train_mode,
                 center=True, scale=False)


def batch_norm_std_only(X: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor,
                        moving_mean: torch.Tensor, moving_var: torch.Tensor, eps: float,
                        momentum: float, train_mode: bool = True):
    """Lite batch norm: gamma * X / sqrt(var + eps) + beta, no centring (prediction: moving var)."""
    return _lite(X, gamma, beta, moving_mean, moving_var, eps, momentum, train_mode,
                 center=False, scale=True)


def no_bias_before_bn(model: nn.Module) -> nn.Module:
    """Drop the bias of each Conv/Linear layer that feeds a batch-norm layer (BN cancels it)."""
    layers = list(model.net)
    for layer, after in zip(layers, layers[1:], strict=False):
        if isinstance(layer, (nn.Conv2d, nn.Linear)) and isinstance(after, BN_TYPES):
            layer.register_parameter("bias", None)
    return model


def keep_batch_norm(model: nn.Module, conv: bool, dense: bool) -> nn.Module:
    """Keep the BatchNorm2d layers (after the convs) and/or BatchNorm1d (after the dense layers)."""
    drop = ((() if conv else (nn.BatchNorm2d,)) + (() if dense else (nn.BatchNorm1d,)))
    model.net = nn.Sequential(*[m for m in model.net if not isinstance(m, drop)])
    return model


def add_dropout(model: nn.Module, p: float) -> nn.Module:
    """Insert Dropout(p) after the activation of each hidden dense layer (after the Flatten)."""
    layers, dense = [], False
    for m in model.net:
        layers.append(m)
        dense = dense or isinstance(m, nn.Flatten)
        if dense and isinstance(m, nn.Sigmoid):
            layers.append(nn.Dropout(p))
    model.net = nn.Sequential(*layers)
    return model


def with_norm_fn(model: nn.Module, norm_fn: Callable) -> nn.Module:
    """Make every scratch BatchNormLayer of `model` use `norm_fn` (batch_norm's signature)."""
    for layer in model.modules():
        if isinstance(layer, BatchNormLayer):
            layer.norm_fn = norm_fn
    return model


def fix_affine(model: nn.Module, random: bool = False) -> nn.Module:
    """Freeze gamma and beta of every batch-norm layer at 1 and 0, or at rand and randn."""
    for layer in model.modules():
        if isinstance(layer, BN_TYPES):
            gamma, beta = ((layer.gamma, layer.beta) if isinstance(layer, BatchNormLayer)
                           else (layer.weight, layer.bias))
            with torch.no_grad():
                gamma.copy_(torch.rand_like(gamma) if random else torch.ones_like(gamma))
                beta.copy_(torch.randn_like(beta) if random else torch.zeros_like(beta))
            gamma.requires_grad_(False)
            beta.requires_grad_(False)
    return model


# --- training, tables, plots ----------------------------------------------------------------

def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9.]+", "-", text.lower()).strip("-")


def train_all(name: str, variants: Variants, data: d2lai.FashionMNISTData,
              args: argparse.Namespace, lr: float) -> list[dict]:
    """Train each (label, build) from the same seed with Descent(lr); one table row each."""
    rows = []
    for label, build in variants:
        d2lai.seed(args.seed)
        model = build()
        params = sum(p.numel() for p in model.parameters())
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        board = Path(args.out) / f"{name}-boards" / f"{_slug(label)}-lr{lr:g}.png"
        trainer = Trainer(model, data, Descent(lr), max_epochs=args.epochs, gpu=not args.cpu,
                          board_yscale="identity", board_path=board, seed=args.seed)
        print(f"\n[{name}] {label}: {params} parameters ({trainable} trainable), "
              f"{args.epochs} epochs of Descent({lr:g}), batch {args.batchsize}")
        tic = time.perf_counter()
        _, m = d2lai.fit(trainer)
        finite = math.isfinite(m.train_loss) and math.isfinite(m.val_loss)
        status = ("interrupted" if m.interrupted else "diverged" if m.diverged or not finite
                  else "ok")
        rows.append({"variant": label, "lr": lr, "params": params, "trainable": trainable,
                     "epochs": m.epochs, "train_loss": m.train_loss, "val_loss": m.val_loss,
                     "val_acc": m.val_acc, "status": status,
                     "seconds": time.perf_counter() - tic, "history": trainer.history})
        if m.interrupted:
            print("interrupted: skipping the remaining runs")
            break
    return rows


def _cell(key: str, value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if key == "lr":
        return f"{value:g}"
    if isinstance(value, float):
        return f"{value:.1f}" if key == "seconds" else f"{value:.4f}"
    return str(value)


def print_table(rows: list[dict]) -> str:
    """Print the rows as an aligned text table (all keys but the history); return the text."""
    keys = [k for k in rows[0] if k != "history"]
    cells = [[k.replace("_", " ") for k in keys]] + [[_cell(k, r[k]) for k in keys] for r in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(keys))]
    text = "\n".join("  ".join(c.ljust(w) if keys[i] in ("variant", "status") else c.rjust(w)
                               for i, (c, w) in enumerate(zip(line, widths, strict=True)))
                     for line in cells)
    print("\n" + text)
    return text


def _save(fig: Figure, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    print(f"plot saved to {path}")


def _status(r: dict) -> str:
    return "" if r["status"] == "ok" else f" ({r['status']})"


def plot_histories(rows: list[dict], path: Path, title: str, by_variant: bool = False) -> None:
    """Training loss (top) and validation accuracy (bottom) per epoch, a line a run.

    With `by_variant`, one column a variant and a line a learning rate; else a line a variant.
    """
    groups = {}
    for r in rows:
        groups.setdefault(r["variant"] if by_variant else "", []).append(r)
    fig = Figure(figsize=(5.5 * len(groups), 7), layout="constrained")
    axes = fig.subplots(2, len(groups), squeeze=False, sharex=True)
    for col, (group, runs) in enumerate(groups.items()):
        for r in runs:
            label = (f"lr {r['lr']:g}" if by_variant else r["variant"]) + _status(r)
            for ax, key in zip(axes[:, col], ("train_loss", "val_acc"), strict=True):
                ys = r["history"].get(key, [])
                ax.plot(range(1, len(ys) + 1), ys, marker="o", markersize=3, label=label)
        axes[0, col].set_title(f"{SWEEP_TITLES[group]} ({group})" if group in SWEEP_TITLES
                               else group)
        axes[1, col].set_xlabel("epoch")
        axes[1, col].legend(fontsize="small")
    for ax in axes.flat:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(True, alpha=0.3)
    axes[0, 0].set_ylabel("mean training loss")
    axes[1, 0].set_ylabel("validation accuracy")
    fig.suptitle(title)
    _save(fig, path)


def plot_sweep(rows: list[dict], path: Path, epochs: int) -> None:
    """Final validation accuracy against the learning rate; a diverged run is an x at 0."""
    fig = Figure(figsize=(6.5, 4.5), layout="constrained")
    ax = fig.add_subplot()
    for (model, title), color in zip(SWEEP_TITLES.items(), ("C0", "C1"), strict=True):
        ok = [r for r in rows if r["variant"] == model and r["status"] == "ok"]
        bad = [r for r in rows if r["variant"] == model and r["status"] == "diverged"]
        ax.plot([r["lr"] for r in ok], [r["val_acc"] for r in ok], "o-", color=color,
                label=f"{title} ({model})")
        if bad:
            ax.plot([r["lr"] for r in bad], [0.0] * len(bad), "x", color=color, markersize=10,
                    mew=2, label=f"{title}: diverged (drawn at 0)")
    ax.set_xscale("log")
    ax.set_ylim(-0.03, 1.0)
    ax.set_xlabel("learning rate of Descent")
    ax.set_ylabel(f"validation accuracy after {epochs} epochs")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    fig.suptitle("LeNet with and without batch normalization")
    _save(fig, path)


def _json_safe(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


# --- the exercises --------------------------------------------------------------------------

def ex_bias(data, args) -> list[dict]:
    """BLeNetConcise as written against the same net without the biases that feed batch norm."""
    return train_all("bias", [("BLeNetConcise (with bias)", BLeNetConcise),
                              ("no bias before BN", lambda: no_bias_before_bn(BLeNetConcise()))],
                     data, args, args.lr)


def ex_lr_sweep(data, args) -> list[dict]:
    """LeNet and BLeNetConcise for each learning rate; accuracy against the rate."""
    rows = []
    for lr in args.lrs:
        rows += train_all("lr-sweep", [("LeNet", LeNet), ("BLeNetConcise", BLeNetConcise)],
                          data, args, lr)
        if rows[-1]["status"] == "interrupted":
            break
    plot_sweep(rows, Path(args.out) / "lr-sweep-accuracy.png", args.epochs)
    return rows


def ex_every_layer(data, args) -> list[dict]:
    """The concise LeNet with batch norm after every layer, after the convs, the dense, none."""
    places = [("BN after every layer", True, True), ("BN after conv only", True, False),
              ("BN after dense only", False, True), ("no BN", False, False)]
    return train_all("every-layer", [(label, lambda c=c, d=d: keep_batch_norm(BLeNetConcise(),
                                                                              c, d))
                                     for label, c, d in places], data, args, args.lr)


def ex_lite(data, args) -> list[dict]:
    """BLeNetScratch with full batch norm, mean removal only, division by the std only."""
    return train_all("lite", [
        ("full batch norm", BLeNetScratch),
        ("mean only", lambda: with_norm_fn(BLeNetScratch(), batch_norm_mean_only)),
        ("std only", lambda: with_norm_fn(BLeNetScratch(), batch_norm_std_only)),
    ], data, args, args.lr)


def ex_fixed_affine(data, args) -> list[dict]:
    """BLeNetScratch with trainable gamma/beta, fixed at 1/0, fixed at random values."""
    return train_all("fixed-affine", [
        ("trainable gamma, beta", BLeNetScratch),
        ("fixed gamma=1, beta=0", lambda: fix_affine(BLeNetScratch())),
        ("fixed random gamma, beta", lambda: fix_affine(BLeNetScratch(), random=True)),
    ], data, args, args.lr)


def ex_dropout(data, args) -> list[dict]:
    """The concise LeNet with neither, dropout after the dense layers, batch norm, both."""
    p = args.dropout
    return train_all("dropout", [
        ("neither", lambda: keep_batch_norm(BLeNetConcise(), False, False)),
        (f"dropout {p:g}", lambda: add_dropout(keep_batch_norm(BLeNetConcise(), False, False), p)),
        ("batch norm", BLeNetConcise),
        (f"batch norm + dropout {p:g}", lambda: add_dropout(BLeNetConcise(), p)),
    ], data, args, args.lr)


EXERCISES = {
    "bias": (ex_bias, "1. should the bias before a batch-norm layer go?"),
    "lr-sweep": (ex_lr_sweep, "2. learning rates for LeNet with and without batch norm"),
    "every-layer": (ex_every_layer, "3. do we need batch norm in every layer?"),
    "lite": (ex_lite, "4. 'lite' batch norm: only remove the mean, or only divide by the std"),
    "fixed-affine": (ex_fixed_affine, "5. fix gamma and beta (not trained)"),
    "dropout": (ex_dropout, "6. can batch norm replace dropout?"),
}


# --- command line ---------------------------------------------------------------------------

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    common = common_flags("out/exercises")
    common.set_defaults(seed=0)
    p = argparse.ArgumentParser(
        prog="python -m chapters.batch_norm_exercises",
        description="The Batch Normalization chapter's exercises, trained on Fashion-MNIST.")
    sub = p.add_subparsers(dest="exercise", required=True, metavar="NAME")
    for name, (_, help_) in EXERCISES.items():
        q = sub.add_parser(name, parents=[common], help=help_, description=help_)
        if name == "lr-sweep":
            q.add_argument("--lrs", type=learning_rate, nargs="+",
                           default=[0.05, 0.1, 0.5, 0.75, 1.0],
                           help="learning rates of Descent (default 0.05 0.1 0.5 0.75 1.0)")
        else:
            q.add_argument("--lr", type=learning_rate, default=0.1, help="learning rate of Descent")
        if name == "dropout":
            q.add_argument("--dropout", type=float, default=0.5, help="dropout probability")
    args = p.parse_args(argv)
    if args.exercise == "dropout" and not 0 <= args.dropout < 1:
        p.error(f"--dropout must lie in [0, 1), got {args.dropout}")
    return args


def main(argv: list[str] | None = None) -> list[dict]:
    """Run one exercise: train its variants, print the table, write NAME.json and the plots."""
    args = parse_args(argv)
    data = load_data(args)
    rows = EXERCISES[args.exercise][0](data, args)
    out = Path(args.out)
    table = print_table(rows)
    out.mkdir(parents=True, exist_ok=True)
    summary = {"exercise": args.exercise, "args": vars(args), "table": table, "rows": rows}
    (out / f"{args.exercise}.json").write_text(json.dumps(_json_safe(summary), indent=2))
    print(f"table written to {out / (args.exercise + '.json')}")
    plot_histories(rows, out / f"{args.exercise}.png", EXERCISES[args.exercise][1],
                   by_variant=args.exercise == "lr-sweep")
    return rows


if __name__ == "__main__":
    main()
