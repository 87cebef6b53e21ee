"""What every chapter's command line shares: the flags, their checks, loading the data set.

A chapter module holds the chapter; its `main` builds its parser on `common_flags` and loads
its data with `load_data`, so each chapter takes the same flags and refuses bad ones the same
way, before anything is trained.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import d2lai
from d2lai.checks import ArgumentError
from d2lai.device import check_seed
from d2lai.files import check_output_path, write_json

__all__ = ["DATASETS", "TEXT", "PAIRS", "positive_int", "batch_count", "learning_rate",
           "seed_value", "common_flags", "text_flags", "book_or_quick", "load_data",
           "fit_and_record"]

DATASETS = {"fashion-mnist": d2lai.FashionMNISTData, "mnist": d2lai.MNISTData}
TEXT = {"time-machine": d2lai.TimeMachine}  # DATA_ROOT/timemachine.txt
PAIRS = {"fra-eng": d2lai.MTFraEng}  # DATA_ROOT/fra-eng.zip, unpacked to DATA_ROOT/fra-eng/
WHERE = {"fashion-mnist": "DATA_ROOT/FashionMNIST/raw/", "mnist": "DATA_ROOT/MNIST/raw/",
         "time-machine": "DATA_ROOT/timemachine.txt", "fra-eng": "DATA_ROOT/fra-eng.zip"}


def positive_int(text: str) -> int:
    """An argparse type: an integer > 0."""
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def batch_count(text: str) -> int:
    """An argparse type: 2 or more samples, as batch norm needs to train."""
    value = int(text)
    if value < 2:
        raise argparse.ArgumentTypeError(f"must be at least 2 (batch normalization needs two "
                                         f"samples or more to train on), got {value}")
    return value


def learning_rate(text: str) -> float:
    """An argparse type: a learning rate `Descent` accepts."""
    try:
        return d2lai.Descent(float(text)).lr
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def seed_value(text: str) -> int:
    """An argparse type: a seed `d2lai.seed` accepts."""
    try:
        return check_seed(int(text))
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def common_flags(out: str, datasets: dict | None = None, samples=batch_count
                 ) -> argparse.ArgumentParser:
    """The flags every script of a chapter takes: length of the run, data, device, output.

    `samples` is the argparse type of --batchsize and --num-train (at least 2 for batch norm;
    `positive_int` for the chapters on text)."""
    datasets = DATASETS if datasets is None else datasets
    where = " or ".join(WHERE.get(name, name) for name in datasets)
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--epochs", type=positive_int, default=10, help="epochs to train")
    p.add_argument("--batchsize", type=samples, default=128, help="samples a batch")
    p.add_argument("--dataset", choices=list(datasets), default=next(iter(datasets)),
                   help=f"the data set, from {where}")
    p.add_argument("--cpu", action="store_true", help="train on the CPU even if a GPU is present")
    p.add_argument("--data-root", help="folder holding the data set (default: $D2LAI_DATA, "
                                       "else ~/.cache/d2lai)")
    p.add_argument("--out", default=out, help=f"folder for plots and tables (default {out})")
    p.add_argument("--num-train", type=samples, help="train on the first N samples")
    p.add_argument("--num-val", type=positive_int, help="validate on the first N samples")
    p.add_argument("--seed", type=seed_value, help="seed for repeatable runs")
    return p


def text_flags(num_steps: int) -> argparse.ArgumentParser:
    """The flags of the chapters on text: the length of a sequence, the model's width, the
    gradient clip, and a quick run."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--num-steps", type=positive_int,
                   help=f"tokens a sequence (default {num_steps}, the book's)")
    p.add_argument("--num-hiddens", type=positive_int, help="hidden units (default the book's)")
    p.add_argument("--clip", type=clip_value, default=1.0,
                   help="gradient_clip_val: the largest gradient norm (default 1, the book's; "
                        "0 does not clip)")
    p.add_argument("--quick", action="store_true",
                   help="a short run on a small part of the data, in seconds on a CPU (the "
                        "flags given still win)")
    return p


def clip_value(text: str) -> float:
    """An argparse type: a gradient-norm bound >= 0."""
    value = float(text)
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {value}")
    return value


def book_or_quick(args: argparse.Namespace, book: dict, quick: dict) -> argparse.Namespace:
    """Each setting the command line left unset (None) from `quick` with --quick, else from
    `book` (the text's settings); a setting `quick` does not name keeps the book's."""
    for name, value in (book | quick if args.quick else book).items():
        if getattr(args, name, None) is None:
            setattr(args, name, value)
    return args


def load_data(args: argparse.Namespace, datasets: dict | None = None, **options):
    """The data set as the flags ask (dataset, batchsize, data_root, num_train, num_val), with
    the caller's `options` (normalize=, val_split=, flatten=, num_steps=, ...).

    A missing, unreadable or corrupt data set, or an --out that cannot be written, exits with
    the package's message as `error: ...` before anything is trained.
    """
    datasets = DATASETS if datasets is None else datasets
    sizes = {k: getattr(args, k) for k in ("num_train", "num_val")
             if getattr(args, k) is not None}  # unset: the data set's own default
    try:
        check_output_path(args.out, "--out", folder=True)
        return datasets[args.dataset](batchsize=args.batchsize, root=args.data_root, **sizes,
                                      **options)
    except (ValueError, TypeError, OSError, ArgumentError) as err:
        raise SystemExit(f"error: {err}") from None


def fit_and_record(name: str, trainer: d2lai.Trainer, out: Path) -> dict:
    """Fit as the chapters do: time it, keep its figures (the metrics, every epoch's history,
    the timings) and write them to OUT/NAME-history.json. Returns the record; its
    `metrics["interrupted"]` says whether Ctrl-C ended the fit."""
    tic = time.perf_counter()
    model, metrics = d2lai.fit(trainer)
    record = {"model": type(model).__name__, "seconds": time.perf_counter() - tic,
              "metrics": {k: v for k, v in vars(metrics).items() if k != "history"},
              "history": trainer.history, "timings": trainer.timings}
    write_json(out / f"{name}-history.json", record)
    return record
