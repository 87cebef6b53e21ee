"""What every chapter's command line shares: the flags, their checks, loading the data set,
where the output goes and how the program ends.

A chapter module holds the chapter; its `main` builds its parser on `common_flags` (with
`HelpFormatter`, so `--help` shows the defaults) and loads its data with `load_data`, so each
chapter takes the same flags and refuses bad ones the same way, before anything is trained.
Its `if __name__ == "__main__"` line is `run(main)`:

- the whole story of a run goes to standard output, in order: the epoch lines (the `d2lai`
  logger), the tables and the notes, so that `python -m chapters.batch_norm > run.log` keeps
  it all; progress bars go to standard error, and only when it is a terminal; errors go to
  standard error;
- `--log FILE` also writes that story to FILE (the bars stay on the terminal);
- Ctrl-C stops the current fit cleanly, the program saves and prints what it has, and exits
  with status 130, as shells expect of an interrupted program.
"""

from __future__ import annotations

import argparse
import logging
import re
import signal
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import d2lai
from d2lai.board import check_plot_path
from d2lai.callbacks.epoch_log import show_logs
from d2lai.callbacks.tensorboard import summary_writer
from d2lai.checks import ArgumentError
from d2lai.device import check_seed, get_device
from d2lai.distributed import is_main_process
from d2lai.files import check_output_path, write_json
from d2lai.precision import PRECISIONS, unsupported

__all__ = ["DATASETS", "TEXT", "PAIRS", "HelpFormatter", "positive_int", "batch_count",
           "learning_rate", "seed_value", "common_flags", "text_flags", "book_or_quick",
           "load_data", "data_root", "speed", "tensorboard", "check_outputs", "write_or_say",
           "fit_and_record", "run", "INTERRUPTED"]

INTERRUPTED = 130  # the exit status of a program stopped by Ctrl-C (128 + SIGINT)

DATASETS = {"fashion-mnist": d2lai.FashionMNISTData, "mnist": d2lai.MNISTData}
TEXT = {"time-machine": d2lai.TimeMachine}  # DATA_ROOT/timemachine.txt
PAIRS = {"fra-eng": d2lai.MTFraEng}  # DATA_ROOT/fra-eng.zip, unpacked to DATA_ROOT/fra-eng/
WHERE = {"fashion-mnist": "DATA_ROOT/FashionMNIST/raw/", "mnist": "DATA_ROOT/MNIST/raw/",
         "time-machine": "DATA_ROOT/timemachine.txt", "fra-eng": "DATA_ROOT/fra-eng.zip"}


def positive_int(text: str) -> int:
    """An argparse type: `text` as an integer > 0.

    >>> positive_int("3")
    3
    """
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def batch_count(text: str) -> int:
    """An argparse type: `text` as a count of 2 or more samples, as batch norm needs to train.

    >>> batch_count("128")
    128
    """
    value = int(text)
    if value < 2:
        raise argparse.ArgumentTypeError(f"must be at least 2 (batch normalization needs two "
                                         f"samples or more to train on), got {value}")
    return value


def learning_rate(text: str) -> float:
    """An argparse type: `text` as a learning rate `Descent` accepts.

    >>> learning_rate("0.1")
    0.1
    """
    try:
        return d2lai.Descent(float(text)).lr
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def seed_value(text: str) -> int:
    """An argparse type: `text` as a seed `d2lai.seed` accepts.

    >>> seed_value("0")
    0
    """
    try:
        return check_seed(int(text))
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """`--help` with each flag's default, where it has one worth saying (not None or False)
    and its help does not already name it.

    >>> argparse.ArgumentParser(parents=[common_flags("out")], formatter_class=HelpFormatter)
    """

    def _get_help_string(self, action) -> str:
        text = action.help or ""
        if "default" in text or action.default is None or action.default is False \
                or action.default == argparse.SUPPRESS or not action.option_strings:
            return text
        default = action.default
        shown = " ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in default) \
            if isinstance(default, (list, tuple)) else "%(default)s"
        return f"{text} (default: {shown})"


def common_flags(out: str, datasets: dict | None = None, samples=batch_count
                 ) -> argparse.ArgumentParser:
    """The flags every script of a chapter takes: length of the run, data, device, output,
    `--log FILE` and `--tensorboard`.

    Args:
        out: the default of `--out`.
        datasets: the data sets `--dataset` offers (name: data class); default Fashion-MNIST
            and MNIST.
        samples: the argparse type of --batchsize and --num-train (at least 2 for batch norm,
            `positive_int` for the chapters on text).

    Returns:
        A parser to give as `parents=[...]` to the script's own (with
        `formatter_class=HelpFormatter`).

    >>> p = argparse.ArgumentParser(parents=[common_flags("out/mine")],
    ...                             formatter_class=HelpFormatter)
    >>> args = p.parse_args(["--epochs", "3"])
    """
    datasets = DATASETS if datasets is None else datasets
    where = " or ".join(WHERE.get(name, name) for name in datasets)
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--epochs", type=positive_int, default=10, help="epochs to train")
    p.add_argument("--batchsize", type=samples, default=128, help="samples a batch")
    p.add_argument("--dataset", choices=list(datasets), default=next(iter(datasets)),
                   help=f"the data set, from {where}")
    p.add_argument("--cpu", action="store_true", help="train on the CPU even if a GPU is present")
    p.add_argument("--precision", choices=list(PRECISIONS), default="32",
                   help="32: float32; bf16: bfloat16 autocast (CPUs with AVX512-BF16 or AMX, "
                        "GPUs since Ampere); 16: float16 autocast with a gradient scaler (GPU)")
    p.add_argument("--compile", action="store_true",
                   help="compile the training and validation steps with torch.compile (a "
                        "minute or more at the start; faster epochs where it helps)")
    p.add_argument("--data-root", help="folder holding the data set (default: $D2LAI_DATA, "
                                       "else ~/.cache/d2lai)")
    p.add_argument("--out", default=out, help="folder for plots and tables")
    p.add_argument("--num-train", type=samples, help="train on the first N samples")
    p.add_argument("--num-val", type=positive_int, help="validate on the first N samples")
    p.add_argument("--seed", type=seed_value, help="seed for repeatable runs")
    p.add_argument("--log", metavar="FILE",
                   help="also write the run's story (epoch lines, tables, notes) to FILE; it "
                        "goes to standard output in any case, bars to the terminal")
    p.add_argument("--tensorboard", action="store_true",
                   help="also write TensorBoard logs under OUT/tensorboard/ (or, for a sweep, "
                        "OUT/NAME/tensorboard/); needs the tensorboard package")
    return p


def text_flags(num_steps: int) -> argparse.ArgumentParser:
    """The flags of the chapters on text: the length of a sequence, the model's width, the
    gradient clip, and a quick run.

    Args:
        num_steps: the book's sequence length, said in `--num-steps`'s help.

    >>> p = argparse.ArgumentParser(parents=[common_flags("out/rnn", TEXT, positive_int),
    ...                                      text_flags(32)], formatter_class=HelpFormatter)
    """
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
    `book` (the text's settings); a setting `quick` does not name keeps the book's.

    Args:
        args: the parsed flags (changed in place and returned).
        book: the text's settings, by flag name.
        quick: the settings of a quick run, by flag name.

    >>> args = book_or_quick(args, {"epochs": 100, "num_train": 10000}, {"epochs": 2})
    """
    for name, value in (book | quick if args.quick else book).items():
        if getattr(args, name, None) is None:
            setattr(args, name, value)
    return args


def load_data(args: argparse.Namespace, datasets: dict | None = None, **options):
    """The data set as the flags in `args` ask (dataset, batchsize, data_root, num_train,
    num_val), from `datasets` (default `DATASETS`), with the caller's `options` (normalize=,
    val_split=, flatten=, num_steps=, ...).

    A missing, unreadable or corrupt data set, or an --out that cannot be written, exits with
    the package's message as `error: ...` before anything is trained; the message speaks of
    `--data-root` where the library's speaks of `root=`.

    >>> data = load_data(args, flatten=True, val_split=10000)
    """
    datasets = DATASETS if datasets is None else datasets
    sizes = {k: getattr(args, k) for k in ("num_train", "num_val")
             if getattr(args, k) is not None}  # unset: the data set's own default
    try:
        check_output_path(args.out, "--out", folder=True)
        root = data_root(args.data_root, datasets[args.dataset])
        return datasets[args.dataset](batchsize=args.batchsize, root=root, **sizes, **options)
    except (ValueError, TypeError, OSError, ArgumentError) as err:
        raise SystemExit("error: " + re.sub(r"\broot=", "--data-root", str(err))) from None


def speed(args: argparse.Namespace) -> dict:
    """The Trainer arguments --precision and --compile ask for; `error: ...` (exit) if the
    device the run trains on cannot run that precision (float16 on a CPU, say).

    >>> Trainer(model, data, Descent(0.1), gpu=not args.cpu, **speed(args))
    """
    why = unsupported(args.precision, get_device(not args.cpu))
    if why is not None:
        raise SystemExit("error: " + why.replace("precision=", "--precision ").replace("'", ""))
    return {"precision": args.precision, "compile": args.compile}


def data_root(root: str | None, data_class) -> str | None:
    """The root `--data-root` (`root`) means for `data_class` (its `name` is the folder): the
    folder that holds NAME/raw/. A path to NAME/raw/ itself or to NAME/ is taken as meant
    (and said in the log); a folder that holds the four files but is not NAME/raw/ is an
    error that says where to put them.

    >>> data_root("data/FashionMNIST/raw", d2lai.FashionMNISTData)
    'data'
    """
    if root is None or not isinstance(getattr(data_class, "name", None), str):
        return root  # text data sets are files in the root itself
    path, name = Path(root).expanduser(), data_class.name
    meant = path.parent.parent if path.name == "raw" and path.parent.name == name else \
        path.parent if path.name == name and (path / "raw").is_dir() else None
    if meant is not None:
        logging.getLogger("d2lai").info("--data-root %s is the data set's own folder: reading "
                                        "it from --data-root %s", root, meant)
        return str(meant)
    if not (path / name).exists() and any(path.glob("train-images-idx3-ubyte*")):
        raise ValueError(f"--data-root {root} holds the data set's files itself; --data-root "
                         f"is the folder above {name}/raw/: move the four files to "
                         f"{path / name / 'raw'}/ and pass --data-root {root}")
    return root


def tensorboard(args: argparse.Namespace, folder: str | Path | None = None) -> list:
    """With `--tensorboard`: `[TensorBoardLogger(folder)]` (`[]` without a folder, for a sweep
    that writes its own), after checking that tensorboard is installed (else `error: ...`
    before anything is trained). Without it: `[]`.

    >>> Trainer(model, data, opt, callbacks=tensorboard(args, out / "tensorboard" / "scratch"))
    """
    if not args.tensorboard:
        return []
    try:
        summary_writer()
    except ImportError as err:
        raise SystemExit(f"error: {err}") from None
    return [] if folder is None else [d2lai.TensorBoardLogger(folder)]


class _Tee:
    """Standard output that also writes to a log file."""

    def __init__(self, stream, file):
        self.stream, self.file = stream, file

    def write(self, text: str) -> int:
        self.file.write(text)
        return self.stream.write(text)

    def flush(self) -> None:
        self.file.flush()
        self.stream.flush()

    def __getattr__(self, name):  # isatty, fileno, encoding, ...: the console's
        return getattr(self.stream, name)


def run(main: Callable, argv: list[str] | None = None) -> None:
    """Run a chapter's `main(argv)` as a command (`if __name__ == "__main__": run(main)`).

    The `d2lai` logger writes to standard output, with the tables, and `--log FILE` (found
    in argv, checked by `main`'s parser) copies standard output to FILE. The first Ctrl-C ends
    the current fit cleanly and `main` saves and prints what it has; the program then exits
    with status 130 (`INTERRUPTED`). A Ctrl-C outside a fit ends it at once, also with 130.

    >>> if __name__ == "__main__":
    ...     run(main)
    """
    argv = sys.argv[1:] if argv is None else argv
    known, _ = _log_flag().parse_known_args(argv)
    handlers, stdout, log = list(logging.getLogger("d2lai").handlers), sys.stdout, None
    interrupted = False

    def on_ctrl_c(signum, frame):
        nonlocal interrupted
        interrupted = True
        signal.default_int_handler(signum, frame)  # KeyboardInterrupt: the fit stops cleanly

    previous = signal.signal(signal.SIGINT, on_ctrl_c)
    try:
        if known.log:
            try:
                path = check_output_path(known.log, "--log")
                path.parent.mkdir(parents=True, exist_ok=True)
                log = open(path, "w", encoding="utf-8")  # closed below
            except OSError as err:
                raise SystemExit(f"error: {err}") from None
            sys.stdout = _Tee(stdout, log)
        show_logs("stdout")
        main(argv)
    except KeyboardInterrupt:
        interrupted = True
        print("interrupted", file=sys.stderr)
    except SystemExit as done:
        if log is not None and isinstance(done.code, str):
            log.write(done.code + "\n")
        raise
    finally:
        signal.signal(signal.SIGINT, previous)
        sys.stdout = stdout
        logging.getLogger("d2lai").handlers = handlers
        if log is not None:
            log.close()
    if interrupted:
        raise SystemExit(INTERRUPTED)


def _log_flag() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--log")
    return p


def check_outputs(out: Path, files: list[str] = (), plots: list[str] = ()) -> None:
    """Check, before anything is trained, that the folder `out` and every file the chapter will
    write in it (`files`, and the pictures `plots`) can be written; else `error: ...` and exit.

    >>> check_outputs(Path("out/rnn"), ["scratch-history.json"], ["scratch-board.png"])
    """
    try:
        check_output_path(out, "--out", folder=True)
        for file in files:
            check_output_path(out / file, "output")
        for file in plots:
            check_plot_path(out / file)
    except (OSError, ValueError) as err:
        raise SystemExit(f"error: {err}") from None


def write_or_say(path: Path, write: Callable[[Path], object]) -> bool:
    """`write(path)` on rank 0 (under torchrun the others write nothing); a file that cannot be
    written (a full disk) is said, and the run goes on. Whether it was written.

    >>> write_or_say(out / "summary.csv", table.to_csv)
    """
    if not is_main_process():
        return False
    try:
        write(path)
    except OSError as err:
        print(f"could not write {path} ({err}); going on")
        return False
    return True


def fit_and_record(name: str, trainer: d2lai.Trainer, out: Path) -> dict:
    """Fit as the chapters do: time it, keep its figures (the metrics, every epoch's history,
    the timings) and write them to OUT/NAME-history.json.

    Args:
        name: the run's name in the file name (`scratch`, `gru`, ...).
        trainer: the trainer to fit.
        out: the folder of the history file.

    Returns:
        The record; its `metrics["interrupted"]` says whether Ctrl-C ended the fit, and `best`
        holds the best epoch's figures (by validation loss for a language model, else
        accuracy).

    >>> record = fit_and_record("gru", Trainer(model, data, Descent(1.0)), Path("out/rnn"))
    """
    tic = time.perf_counter()
    model, metrics = d2lai.fit(trainer)
    best = metrics.best("val_loss" if "val_ppl" in trainer.history else None)
    record = {"model": type(model).__name__, "seconds": time.perf_counter() - tic,
              "metrics": {k: v for k, v in vars(metrics).items() if k != "history"},
              "best": {k: v for k, v in vars(best).items() if k != "history"},
              "history": trainer.history, "timings": trainer.timings}
    write_or_say(out / f"{name}-history.json", partial(write_json, value=record))
    return record
