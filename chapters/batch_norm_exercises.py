"""Exercises of the Batch Normalization chapter, one subcommand an exercise.

`python -m chapters.batch_norm_exercises --help` lists them. Each is a `d2lai.runs.sweep` of its
variants (and learning rates) on one Fashion-MNIST load: it prints a table and writes NAME.json
(flags and records), NAME/runs.csv and PNG plots under `--out` (default out/exercises). Run
again, it keeps the runs finished there with the same settings and trains the others (after a
Ctrl-C, the same command goes on); `--restart` trains them all again.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from functools import partial
from pathlib import Path

import torch
from torch import nn

from chapters.batch_norm import BatchNormLayer, BLeNetConcise, BLeNetScratch, batch_norm
from chapters.cli import (
    HelpFormatter,
    common_flags,
    learning_rate,
    load_data,
    run,
    speed,
    tensorboard,
    write_or_say,
)
from d2lai import AbstractClassifier, Descent
from d2lai.board import check_plot_path
from d2lai.files import check_output_path, write_json
from d2lai.runs import RunTable, grid, sweep

__all__ = ["LeNet", "batch_norm_mean_only", "batch_norm_std_only", "no_bias_before_bn",
           "keep_batch_norm", "fix_affine", "add_dropout", "with_norm_fn", "main"]

BN_TYPES = (nn.modules.batchnorm._BatchNorm, BatchNormLayer)
Variants = dict[str, Callable[[], nn.Module]]  # label: a function that builds the model
LRS = [0.1, 0.5, 2.0, 5.0, 10.0, 20.0, 50.0]  # LeNet fails from 5 on, BLeNetConcise at 50


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


# --- the exercises: each names its variants -----------------------------------------------

def ex_bias(args) -> Variants:
    """BLeNetConcise as written against the same net without the biases that feed batch norm."""
    return {"BLeNetConcise (with bias)": BLeNetConcise,
            "no bias before BN": lambda: no_bias_before_bn(BLeNetConcise())}


def ex_lr_sweep(args) -> Variants:
    """LeNet and BLeNetConcise, each at every rate of --lrs."""
    return {"LeNet": LeNet, "BLeNetConcise": BLeNetConcise}


def ex_every_layer(args) -> Variants:
    """The concise LeNet with batch norm after every layer, after the convs, the dense, none."""
    places = [("BN after every layer", True, True), ("BN after conv only", True, False),
              ("BN after dense only", False, True), ("no BN", False, False)]
    return {label: lambda c=c, d=d: keep_batch_norm(BLeNetConcise(), c, d)
            for label, c, d in places}


def ex_lite(args) -> Variants:
    """BLeNetScratch with full batch norm, mean removal only, division by the std only."""
    return {"full batch norm": BLeNetScratch,
            "mean only": lambda: with_norm_fn(BLeNetScratch(), batch_norm_mean_only),
            "std only": lambda: with_norm_fn(BLeNetScratch(), batch_norm_std_only)}


def ex_fixed_affine(args) -> Variants:
    """BLeNetScratch with trainable gamma/beta, fixed at 1/0, fixed at random values."""
    return {"trainable gamma, beta": BLeNetScratch,
            "fixed gamma=1, beta=0": lambda: fix_affine(BLeNetScratch()),
            "fixed random gamma, beta": lambda: fix_affine(BLeNetScratch(), random=True)}


def ex_dropout(args) -> Variants:
    """The concise LeNet with neither, dropout after the dense layers, batch norm, both."""
    p = args.dropout
    return {"neither": lambda: keep_batch_norm(BLeNetConcise(), False, False),
            f"dropout {p:g}": lambda: add_dropout(keep_batch_norm(BLeNetConcise(), False, False),
                                                  p),
            "batch norm": BLeNetConcise,
            f"batch norm + dropout {p:g}": lambda: add_dropout(BLeNetConcise(), p)}


EXERCISES = {
    "bias": (ex_bias, "1. should the bias before a batch-norm layer go?"),
    "lr-sweep": (ex_lr_sweep, "2. how large a learning rate, with and without batch norm?"),
    "every-layer": (ex_every_layer, "3. do we need batch norm in every layer?"),
    "lite": (ex_lite, "4. 'lite' batch norm: only remove the mean, or only divide by the std"),
    "fixed-affine": (ex_fixed_affine, "5. fix gamma and beta (not trained)"),
    "dropout": (ex_dropout, "6. can batch norm replace dropout?"),
}


# --- command line ---------------------------------------------------------------------------

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    common = common_flags("out/exercises")
    common.set_defaults(seed=0)
    common.add_argument("--restart", action="store_true",
                        help="train every run again (by default the runs finished in --out "
                             "with the same settings are kept, and the others trained)")
    common.add_argument("--resume", action="store_true",
                        help="kept for older commands: going on is what happens anyway")
    p = argparse.ArgumentParser(
        prog="python -m chapters.batch_norm_exercises", formatter_class=HelpFormatter,
        description="The Batch Normalization chapter's exercises, trained on Fashion-MNIST. "
                    "`NAME --help` lists an exercise's flags and their defaults.")
    sub = p.add_subparsers(dest="exercise", required=True, metavar="NAME")
    for name, (_, help_) in EXERCISES.items():
        q = sub.add_parser(name, parents=[common], help=help_, description=help_,
                           formatter_class=HelpFormatter)
        if name == "lr-sweep":
            q.add_argument("--lrs", type=learning_rate, nargs="+", default=LRS,
                           help="learning rates of Descent (default "
                                f"{' '.join(f'{x:g}' for x in LRS)})")
        else:
            q.add_argument("--lr", type=learning_rate, default=0.1,
                           help="learning rate of Descent")
        if name == "dropout":
            q.add_argument("--dropout", type=float, default=0.5, help="dropout probability")
    args = p.parse_args(argv)
    if args.exercise == "dropout" and not 0 <= args.dropout < 1:
        p.error(f"--dropout must lie in [0, 1), got {args.dropout}")
    return args


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9.]+", "-", text.lower()).strip("-")


def _sizes(make: Callable[[], nn.Module]) -> dict[str, int]:
    params = list(make().parameters())
    return {"params": sum(p.numel() for p in params),
            "trainable": sum(p.numel() for p in params if p.requires_grad)}


def _board(out: Path, name: str, variant: str, lr: float) -> Path:
    return out / f"{name}-boards" / f"{_slug(variant)}-lr{lr:g}.png"


def _check_outputs(out: Path, name: str, runs: list, label: dict) -> None:
    """Every file the exercise will write, checked before anything is trained."""
    try:
        check_output_path(out, "--out", folder=True)
        check_output_path(out / f"{name}.json", "table")
        for file in [f"{name}.png", *(["lr-sweep-accuracy.png"] if name == "lr-sweep" else [])]:
            check_plot_path(out / file)
        for table in ("runs.json", "runs.csv", "summary.csv"):
            check_output_path(out / name / table, "table")
        for run in runs:
            check_plot_path(_board(out, name, label[id(run.settings["variant"])],
                                   run.settings["lr"]))
    except (OSError, ValueError) as err:
        raise SystemExit(f"error: {err}") from None


def main(argv: list[str] | None = None) -> RunTable:
    """Run one exercise as a sweep; print its table (a row a run), write NAME.json and plots."""
    args = parse_args(argv)
    name, (variants_of, title) = args.exercise, EXERCISES[args.exercise]
    variants, out = variants_of(args), Path(args.out)
    label = {id(make): text for text, make in variants.items()}
    lrs = list(dict.fromkeys(args.lrs)) if name == "lr-sweep" else [args.lr]
    runs = grid({"lr": lrs, "variant": variants})
    _check_outputs(out, name, runs, label)
    data = load_data(args)
    tensorboard(args)  # installed? (before anything is trained)

    def build(s):
        return {"model": s["variant"](), "data": data, "opt": Descent(s["lr"]),
                "board_path": _board(out, name, label[id(s["variant"])], s["lr"])}

    table = sweep(runs, build, out / name, restart=args.restart, verbose=True,
                  tensorboard=args.tensorboard, max_epochs=args.epochs, gpu=not args.cpu,
                  seed=args.seed, board_yscale="identity", **speed(args))
    names = {run.name for run in runs}
    table = RunTable(r for r in table.records if r["run"] in names)
    sizes = {text: _sizes(make) for text, make in variants.items()}
    rows = RunTable({"variant": r["variant"], "lr": r["lr"], **sizes[r["variant"]],
                     "epochs": r["epoch"], **{k: r[k] for k in ("train_loss", "train_acc",
                                                                "val_loss", "val_acc")},
                     **{k: r[k] for k in ("best_epoch", "best_val_loss", "best_val_acc")},
                     "status": r["status"], "seconds": r["run_s"]}
                    for r in table.final().records)
    text = rows.print()
    saved = out / f"{name}.json"
    write_or_say(out / name / "summary.csv", rows.to_csv)
    if write_or_say(saved, partial(write_json, value={"exercise": name, "args": vars(args),
                                                      "table": text, "rows": rows.records,
                                                      "records": table.records})):
        print(f"table written to {saved}, {out / name / 'summary.csv'} (a row a run) and "
              f"{out / name / 'runs.csv'} (a row an epoch)")
    plots = {f"{name}.png": (table.plot_curves(["train_loss", "val_acc"]), title)}
    if name == "lr-sweep":
        plots["lr-sweep-accuracy.png"] = (table.plot_final("val_acc", "lr", by="variant"),
                                          f"LeNet with and without batch norm, {args.epochs} "
                                          f"epochs of Descent")
    for file, (fig, heading) in plots.items():
        fig.axes[0].set_title(heading)
        if write_or_say(out / file, partial(fig.savefig, dpi=120)):
            print(f"plot saved to {out / file}")
    return rows


if __name__ == "__main__":
    run(main)
