"""What every chapter's command line shares: the flags, their checks, loading the data set.

A chapter module holds the chapter; its `main` builds its parser on `common_flags` and loads
its data with `load_data`, so each chapter takes the same flags and refuses bad ones the same
way, before anything is trained.
"""

from __future__ import annotations

import argparse

import d2lai
from d2lai.checks import ArgumentError
from d2lai.device import check_seed
from d2lai.files import check_output_path

__all__ = ["DATASETS", "positive_int", "batch_count", "learning_rate", "seed_value",
           "common_flags", "load_data"]

DATASETS = {"fashion-mnist": d2lai.FashionMNISTData, "mnist": d2lai.MNISTData}


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


def common_flags(out: str, datasets: dict | None = None) -> argparse.ArgumentParser:
    """The flags every script of a chapter takes: length of the run, data, device, output."""
    datasets = DATASETS if datasets is None else datasets
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--epochs", type=positive_int, default=10, help="epochs to train")
    p.add_argument("--batchsize", type=batch_count, default=128, help="samples a batch")
    p.add_argument("--dataset", choices=list(datasets), default=next(iter(datasets)),
                   help="the data set, from DATA_ROOT/FashionMNIST/raw/ or DATA_ROOT/MNIST/raw/")
    p.add_argument("--cpu", action="store_true", help="train on the CPU even if a GPU is present")
    p.add_argument("--data-root", help="folder holding the data set (default: $D2LAI_DATA, "
                                       "else ~/.cache/d2lai)")
    p.add_argument("--out", default=out, help=f"folder for plots and tables (default {out})")
    p.add_argument("--num-train", type=batch_count, help="train on the first N samples")
    p.add_argument("--num-val", type=positive_int, help="validate on the first N samples")
    p.add_argument("--seed", type=seed_value, help="seed for repeatable runs")
    return p


def load_data(args: argparse.Namespace, datasets: dict | None = None, **options):
    """The data set as the flags ask (dataset, batchsize, data_root, num_train, num_val), with
    the caller's `options` (normalize=, val_split=, flatten=, ...).

    A missing, unreadable or corrupt data set, or an --out that cannot be written, exits with
    the package's message as `error: ...` before anything is trained.
    """
    datasets = DATASETS if datasets is None else datasets
    try:
        check_output_path(args.out, "--out", folder=True)
        return datasets[args.dataset](batchsize=args.batchsize, root=args.data_root,
                                      num_train=args.num_train, num_val=args.num_val, **options)
    except (ValueError, TypeError, OSError, ArgumentError) as err:
        raise SystemExit(f"error: {err}") from None
