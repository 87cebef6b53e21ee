"""Training speed: `d2lai.fit` against the least any loop can cost, and a DataLoader pipeline.

Run from the repository root: `python -m bench.train_speed` (`--help` lists the flags).

For each model (BLeNetScratch, BLeNetConcise), batch 128, Descent(0.1), on the same data:

- bare: the `.train` tensors of the FashionMNISTData object, a fresh randperm each epoch, batches
  cut by index, forward, the model's own loss, backward, step. Nothing else: the limit.
- d2lai: `d2lai.fit(Trainer(...))` with validation, log lines, progress bar and board
  (verbose=True), and again with verbose=False; training and validation times per epoch come
  from `trainer.timings`.
- dataloader: torchvision's FashionMNIST with ToTensor through DataLoader(shuffle=True,
  batch_size=128), one per `--workers` setting, feeding the bare loop.

Fairness on a noisy machine: configurations run in lockstep, one epoch each in turn. Each fit
runs warm-up + N epochs in one call; after each of its epochs (its times already taken, in a
callback at the epoch's end) one epoch of each plain loop beside it runs, in an order rotated
every epoch. Three fits a model: verbose with a bare loop beside it, quiet with another bare
loop, verbose again with the dataloaders. So each ratio compares two configurations whose epochs
alternated. Figures are the median of the N timed epochs (the warm-up dropped), and the fastest
epoch, the least disturbed. Each configuration gets a fresh model seeded alike; the bare loops
shuffle exactly as the fits do, and their final weights are compared with the fits'.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
from torch import nn

import d2lai
from bench.common import (
    REPO,
    add_json,
    check_gpu,
    check_positive,
    finish,
    machine,
    names,
    parser,
    print_held,
    rotated,
    seeded,
    sync,
    worst_ratios,
)
from chapters.batch_norm import BLeNetConcise, BLeNetScratch
from d2lai import Descent, Trainer
from d2lai.data import FASHION_MNIST_FILES
from d2lai.testing import write_fake_fashion_mnist

MODELS = {"scratch": BLeNetScratch, "concise": BLeNetConcise}
SEED, BATCHSIZE, LR = 0, 128, 0.1
TARGETS = {"d2lai_verbose/bare": 1.10, "d2lai_quiet/bare": 1.05, "peak_rss_mib": 1.5 * 1024}


def train_epoch(model: nn.Module, opt: torch.optim.Optimizer, batches: Iterator,
                device: torch.device) -> float:
    """One pass of forward, the model's loss, backward and step; its wall time in seconds."""
    model.train()
    sync(device)
    tic = time.perf_counter()
    for X, y in batches:
        X, y = X.to(device, non_blocking=True), y.to(device, non_blocking=True)
        loss = model.loss(model(X), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    sync(device)
    return time.perf_counter() - tic


def slices(X: torch.Tensor, y: torch.Tensor, batchsize: int, gen: torch.Generator,
           transform: Callable[[torch.Tensor], torch.Tensor] | None = None) -> Iterator:
    """Shuffled batches of tensors in memory (a last batch of one merged, as d2lai does), the
    inputs passed through `transform` batch by batch (stored uint8 images -> float32 input).

    index_select, as d2lai uses: X[idx] does the same about 5 times slower (~0.15 ms a batch).
    """
    n = len(X)
    order = torch.randperm(n, generator=gen).to(X.device)
    lo = 0
    while lo < n:
        hi = n if n - lo <= batchsize + 1 else lo + batchsize
        idx = order[lo:hi]
        Xb = X.index_select(0, idx)
        yield (Xb if transform is None else transform(Xb)), y.index_select(0, idx)
        lo = hi


class PlainLoop:
    """A configuration trained by the hand-written loop, one epoch a call; keeps the times."""

    def __init__(self, label: str, model: nn.Module, batches: Callable[[], Iterator],
                 device: torch.device):
        self.label, self.model, self.batches, self.device = label, model.to(device), batches, device
        self.opt = torch.optim.SGD(self.model.parameters(), lr=LR)
        self.times: list[float] = []

    def epoch(self) -> None:
        self.times.append(train_epoch(self.model, self.opt, self.batches(), self.device))


def bare_loop(name: str, data: d2lai.FashionMNISTData, device: torch.device) -> PlainLoop:
    """The limit: index slices of the data object's own stored training tensors, each batch
    passed through `data.transform` where it is, as d2lai's loader does."""
    model, gen = seeded(MODELS[name], SEED)
    return PlainLoop("bare", model, lambda: slices(*(t.to(device) for t in data.train),
                                                   BATCHSIZE, gen, data.transform), device)


def loader_loop(name: str, root: Path, args: argparse.Namespace, workers: int,
                device: torch.device) -> PlainLoop:
    """The conventional pipeline: a torchvision data set of images and a shuffling DataLoader."""
    from torch.utils.data import DataLoader, Subset
    from torchvision.datasets import FashionMNIST
    from torchvision.transforms import ToTensor

    model, gen = seeded(MODELS[name], SEED)
    ds = FashionMNIST(str(root), train=True, transform=ToTensor(), download=False)
    if args.num_train is not None:
        ds = Subset(ds, range(min(args.num_train, len(ds))))
    loader = DataLoader(ds, batch_size=BATCHSIZE, shuffle=True, num_workers=workers,
                        pin_memory=device.type == "cuda", generator=gen,
                        drop_last=len(ds) % BATCHSIZE == 1)
    return PlainLoop(f"dataloader_w{workers}", model, lambda: iter(loader), device)


class StepBeside(d2lai.Callback):
    """After each epoch of a fit (its times already taken), one epoch of each plain loop."""

    def __init__(self, beside: list[PlainLoop]):
        self.beside = beside

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict) -> None:
        state = torch.get_rng_state()
        for loop in rotated(self.beside, epoch):  # an order rotated every epoch
            loop.epoch()
        torch.set_rng_state(state)  # the fit's own shuffles stay as if it ran alone


def fit_beside(name: str, data: d2lai.FashionMNISTData, args: argparse.Namespace, verbose: bool,
               beside: list[PlainLoop], board: Path) -> tuple[Trainer, nn.Module]:
    """`d2lai.fit` a fresh model; after each epoch, one epoch of each loop in `beside`."""
    model, _ = seeded(MODELS[name], SEED)
    trainer = Trainer(model, data, Descent(LR), max_epochs=1 + args.epochs, gpu=args.gpu,
                      board_yscale="identity", verbose=verbose, board_path=board,
                      callbacks=[StepBeside(beside)])
    model, _ = d2lai.fit(trainer)
    return trainer, model


def max_weight_diff(a: nn.Module, b: nn.Module) -> float:
    """The largest difference between two models' parameters and buffers."""
    sa, sb = a.state_dict(), b.state_dict()
    return max(float((sa[k].cpu().double() - sb[k].cpu().double()).abs().max()) for k in sa)


def figures(times: list[float], n: int, val_times: list[float] | None = None,
            n_val: int = 0) -> dict:
    """Median seconds per epoch (and the fastest) and samples per second of the timed epochs."""
    t = statistics.median(times)
    out = {"samples_per_s": n / t, "train_s_per_epoch": t, "train_s_min": min(times),
           "train_s_epochs": times}
    if val_times:
        v = statistics.median(val_times)
        out |= {"val_s_per_epoch": v, "val_samples_per_s": n_val / v, "val_s_epochs": val_times}
    return out


def table_head(note: str, width: int, rate: str, extra: str = "") -> None:
    """The head of a table of `figures`: what its columns mean (`note`: the ratio), their names."""
    print("\ntrain s/ep: median seconds per training epoch (fastest: the least disturbed one).\n"
          + note)
    print(f"{'model':<9}{'configuration':<{width}}{rate:>10}{'train s/ep':>11}{'fastest':>8}"
          f"{'val s/ep':>9}{'ratio':>7}{'fastest':>8}{extra}")


def figure_cells(fig: dict, digits: int) -> str:
    """The cells of `figures` under `table_head`: samples/s, median and fastest seconds an
    epoch, validation seconds an epoch (blank if none)."""
    val = f"{fig['val_s_per_epoch']:>9.{digits}f}" if "val_s_per_epoch" in fig else f"{'':>9}"
    return (f"{fig['samples_per_s']:>10.0f}{fig['train_s_per_epoch']:>11.{digits}f}"
            f"{fig['train_s_min']:>8.{digits}f}{val}")


def fit_figures(trainer: Trainer, data: d2lai.FashionMNISTData) -> dict:
    """The figures of a fit's timed epochs, training and validation."""
    t = trainer.timings
    return figures(t["train_s"][1:], len(data.train[0]), t["val_s"][1:], len(data.val[0]))


def bench_model(name: str, data: d2lai.FashionMNISTData, root: Path,
                args: argparse.Namespace, device: torch.device, tmp: Path) -> dict:
    """Three fits of one model, each in lockstep with its plain loops; figures and ratios."""
    n = len(data.train[0])
    res, pairs, diffs = {}, {}, {}
    for tag, verbose in (("verbose", True), ("quiet", False)):
        bare = bare_loop(name, data, device)
        print(f"{name}: d2lai verbose={verbose}, beside it bare", file=sys.stderr)
        trainer, model = fit_beside(name, data, args, verbose, [bare], tmp / f"{name}-{tag}.png")
        res[f"bare_beside_{tag}"] = figures(bare.times[1:], n)
        res[f"d2lai_{tag}"] = fit_figures(trainer, data)
        pairs[f"d2lai_{tag}/bare"] = (f"d2lai_{tag}", f"bare_beside_{tag}")
        diffs[f"d2lai_{tag}"] = max_weight_diff(model, bare.model)
    if args.workers:
        loaders = [loader_loop(name, root, args, w, device) for w in args.workers]
        print(f"{name}: d2lai verbose=True, beside it dataloader {args.workers}", file=sys.stderr)
        trainer, _ = fit_beside(name, data, args, True, loaders, tmp / f"{name}-loaders.png")
        res["d2lai_beside_loaders"] = fit_figures(trainer, data)
        for loop in loaders:
            res[loop.label] = figures(loop.times[1:], n)
            pairs[f"{loop.label}/d2lai"] = (loop.label, "d2lai_beside_loaders")
    for key, stat in (("ratios", "train_s_per_epoch"), ("ratios_of_min", "train_s_min")):
        res[key] = {k: res[a][stat] / res[b][stat] for k, (a, b) in pairs.items()}
    res["max_weight_diff_vs_bare"] = diffs
    return res


# Runs the chapter and, as it exits, prints its own peak RSS: the kernel's VmHWM of this
# process alone (ru_maxrss from wait4 would carry over the peak of the parent it forked from).
_REPORT_PEAK = (
    "import atexit, runpy, sys\n"
    "def peak():\n"
    "    with open('/proc/self/status') as f:\n"
    "        kib = [int(l.split()[1]) for l in f if l.startswith('VmHWM:')][0]\n"
    "    print(f'PEAK_RSS_KIB {kib}', file=sys.stderr)\n"
    "atexit.register(peak)\n"
    "sys.argv = ['chapters.batch_norm', *sys.argv[1:]]\n"
    "runpy.run_module('chapters.batch_norm', run_name='__main__')\n"
)


def peak_memory(root: Path, args: argparse.Namespace, tmp: Path) -> dict:
    """Peak resident memory of `python -m chapters.batch_norm --epochs 1 --cpu`, run apart."""
    flags = ["--epochs", "1", "--cpu", "--data-root", str(root), "--out", str(tmp / "chapter")]
    for flag, value in (("--num-train", args.num_train), ("--num-val", args.num_val)):
        if value is not None:
            flags += [flag, str(value)]
    shown = " ".join(["python -m chapters.batch_norm", *flags[:3], *flags[7:]])  # no paths
    print(f"memory: {shown}", file=sys.stderr)
    tic = time.perf_counter()
    run = subprocess.run([sys.executable, "-c", _REPORT_PEAK, *flags], cwd=REPO,
                         capture_output=True, text=True)
    found = re.findall(r"PEAK_RSS_KIB (\d+)", run.stderr)
    if run.returncode != 0 or not found:
        raise SystemExit(f"the chapter run failed ({run.returncode}):\n{run.stderr[-3000:]}")
    return {"command": shown, "peak_rss_mib": int(found[-1]) / 1024,
            "seconds": time.perf_counter() - tic}


def find_data(args: argparse.Namespace, tmp: Path) -> tuple[Path, str]:
    """--data-root, else D2LAI_DATA when it holds the files, else generated data of that size."""
    if args.data_root:
        return Path(args.data_root), "--data-root"
    env = os.environ.get("D2LAI_DATA")
    if env:
        raw = Path(env).expanduser() / "FashionMNIST" / "raw"
        if all((raw / n).is_file() or (raw / f"{n}.gz").is_file() for n, _, _ in
               FASHION_MNIST_FILES):
            return Path(env).expanduser(), "D2LAI_DATA"
    print("no data set given: generating Fashion-MNIST-sized data", file=sys.stderr)
    write_fake_fashion_mnist(tmp / "data", num_train=args.num_train or 60000,
                             num_val=args.num_val or 10000)
    return tmp / "data", "generated"


def check_targets(results: dict, memory: dict | None) -> dict:
    """Whether each target held, over all models."""
    held = worst_ratios(results, {k: TARGETS[k] for k in ("d2lai_verbose/bare",
                                                          "d2lai_quiet/bare")})
    dl = [v for r in results.values() for k, v in r["ratios"].items() if k.startswith("data")]
    if dl:
        held["dataloader/d2lai > 1"] = {"worst": min(dl), "held": min(dl) > 1}
    if memory is not None:
        mib = memory["peak_rss_mib"]
        held["peak_rss_mib < 1536"] = {"worst": mib, "held": mib < TARGETS["peak_rss_mib"]}
    return held


LABELS = {"bare_beside_verbose": "bare", "d2lai_verbose": "d2lai verbose=True",
          "bare_beside_quiet": "bare", "d2lai_quiet": "d2lai verbose=False",
          "d2lai_beside_loaders": "d2lai verbose=True"}


def print_table(report: dict) -> None:
    """The figures of every configuration, the ratios, and the targets."""
    table_head("ratio: training time to that of the loop it ran in lockstep with, just above it "
               "(of medians, of fastest epochs)", 23, "samples/s")
    for name, res in report["results"].items():
        for key, fig in res.items():
            if key in ("ratios", "ratios_of_min", "max_weight_diff_vs_bare"):
                continue
            pair = next((k for k in res["ratios"] if k.startswith(f"{key}/")), None)
            ratio = (f"{res['ratios'][pair]:>7.3f}{res['ratios_of_min'][pair]:>8.3f}  "
                     f"vs {'bare' if pair.startswith('d2lai') else 'd2lai'}"
                     if pair else "")
            print(f"{name:<9}{LABELS.get(key, key.replace('_w', ' workers=')):<23}"
                  f"{figure_cells(fig, 2)}{ratio}")
    if report["memory"] is not None:
        m = report["memory"]
        print(f"\npeak RSS of `{m['command']}`: {m['peak_rss_mib']:.0f} MiB "
              f"({m['seconds']:.0f} s)")
    print_held("targets", report["targets"], 34, "worst")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = parser("train_speed", __doc__.split("\n")[0])
    p.add_argument("--epochs", type=int, default=3, help="timed epochs, after one warm-up")
    p.add_argument("--models", default="scratch,concise", help="comma-separated: scratch,concise")
    p.add_argument("--workers", default="0,2", help="DataLoader num_workers settings ('' none)")
    p.add_argument("--gpu", action="store_true", help="train on CUDA (data tensors on the GPU)")
    p.add_argument("--data-root", help="folder holding FashionMNIST/raw/ (else $D2LAI_DATA, "
                                       "else generated data in a temp dir)")
    p.add_argument("--num-train", type=int, help="train on the first N images only")
    p.add_argument("--num-val", type=int, help="validate on the first N test images only")
    p.add_argument("--skip-memory", action="store_true", help="skip the chapter memory run")
    add_json(p, "train_speed")
    args = p.parse_args(argv)
    args.models = names(p, "--models", args.models, MODELS)
    try:
        args.workers = [int(w) for w in args.workers.split(",") if w.strip()]
    except ValueError:
        p.error("--workers takes comma-separated integers, e.g. 0,2")
    check_positive(p, {"--epochs": args.epochs, "--num-train": args.num_train,
                       "--num-val": args.num_val})
    if any(w < 0 for w in args.workers):
        p.error("--workers must be >= 0")
    check_gpu(p, args.gpu)
    return args


def main(argv: list[str] | None = None) -> dict:
    """Run every configuration of every model, print the table, write the JSON."""
    args = parse_args(argv)
    device = torch.device("cuda" if args.gpu else "cpu")
    with tempfile.TemporaryDirectory(prefix="d2lai-bench-") as tmp:
        tmp = Path(tmp)
        root, kind = find_data(args, tmp)
        data = d2lai.FashionMNISTData(batchsize=BATCHSIZE, root=root, num_train=args.num_train,
                                      num_val=args.num_val)
        report = {"machine": machine(device),
                  "settings": {"epochs": args.epochs, "warmup_epochs": 1,
                               "batchsize": BATCHSIZE, "opt": f"Descent({LR})",
                               "data": kind,  # not its path: reports leave the machine
                               "num_train": len(data.train[0]), "num_val": len(data.val[0]),
                               "workers": args.workers, "gpu": args.gpu},
                  "memory": None if args.skip_memory else peak_memory(root, args, tmp)}
        report["results"] = {name: bench_model(name, data, root, args, device, tmp)
                             for name in args.models}
    report["machine"]["load_avg_end"] = os.getloadavg()
    report["targets"] = check_targets(report["results"], report["memory"])
    return finish(report, print_table, args.json)


if __name__ == "__main__":
    main()
