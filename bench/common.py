"""What the benchmarks share: their flags, the clock, the machine they ran on, the report.

torch and d2lai are imported inside the functions that need them, never here:
`bench.data_memory` parses its flags in a launcher that must stay without torch until its
memory cases are done.
"""

from __future__ import annotations

import argparse
import os
import platform
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch
    from torch import nn

REPO = Path(__file__).resolve().parent.parent


# --- flags ----------------------------------------------------------------------------------------

def parser(name: str, description: str) -> argparse.ArgumentParser:
    """The parser of `python -m bench.NAME`, its defaults shown in --help."""
    return argparse.ArgumentParser(prog=f"python -m bench.{name}", description=description,
                                   formatter_class=argparse.ArgumentDefaultsHelpFormatter)


def add_json(p: argparse.ArgumentParser, name: str) -> None:
    """--json, by default bench/NAME.json."""
    p.add_argument("--json", default=str(REPO / "bench" / f"{name}.json"),
                   help="where to write the figures")


def positive(text: str) -> int:
    """An argparse type: a whole number of at least 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def check_positive(p: argparse.ArgumentParser, flags: dict[str, int | None]) -> None:
    """The parser's error for the first flag given a value below 1 (None: not given)."""
    for flag, value in flags.items():
        if value is not None and value < 1:
            p.error(f"{flag} must be a positive integer")


def names(p: argparse.ArgumentParser, flag: str, text: str, choices) -> list[str]:
    """A comma-separated flag as a list, each one of `choices`; else the parser's error."""
    chosen = [w for w in text.split(",") if w]
    if not chosen or any(w not in choices for w in chosen):
        p.error(f"{flag} takes a comma-separated list of {', '.join(choices)}")
    return chosen


def check_gpu(p: argparse.ArgumentParser, gpu: bool) -> None:
    """The parser's error when --gpu is asked for and torch sees no CUDA device."""
    import torch

    if gpu and not torch.cuda.is_available():
        p.error("--gpu: PyTorch sees no CUDA device")


def parse(p: argparse.ArgumentParser, argv: list[str] | None, flag: str,
          choices) -> argparse.Namespace:
    """The flags in `argv`: the comma-separated `flag` as a list of `choices`, --gpu only where
    torch sees CUDA; else the parser's error."""
    args = p.parse_args(argv)
    dest = flag.lstrip("-").replace("-", "_")
    setattr(args, dest, names(p, flag, getattr(args, dest), choices))
    check_gpu(p, args.gpu)
    return args


def setup(args: argparse.Namespace) -> torch.device:
    """torch's thread count from --threads (where given); the device --gpu asks for."""
    import torch

    if getattr(args, "threads", None):
        torch.set_num_threads(args.threads)
    return torch.device("cuda" if args.gpu else "cpu")


# --- timing ---------------------------------------------------------------------------------------

def sync(device: torch.device) -> None:
    """Wait for the GPU's queued work, so that clocks read after it count it."""
    if device.type == "cuda":
        import torch

        torch.cuda.synchronize(device)


def rotated(items: list, k: int) -> list:
    """`items` rotated left by k: round k's order, so that no one always goes first."""
    k %= len(items)
    return items[k:] + items[:k]


def seeded(build: Callable[[], nn.Module], seed: int) -> tuple[nn.Module, torch.Generator]:
    """A model built from `seed`, as in every configuration, and a generator in the RNG state
    after it (to shuffle exactly as a fit started from the same seed does)."""
    import torch

    import d2lai

    d2lai.seed(seed)
    model = build()
    gen = torch.Generator()
    gen.set_state(torch.get_rng_state())
    return model, gen


# --- the report -----------------------------------------------------------------------------------

def machine(device: torch.device) -> dict:
    """What the figures were measured on, and how loaded it was at the start."""
    import torch

    return {"platform": platform.platform(), "machine": platform.machine(),
            "cpus": os.cpu_count(), "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(), "python": platform.python_version(),
            "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
            "load_avg_start": os.getloadavg()}


def worst_ratios(results: dict, bounds: dict[str, float]) -> dict:
    """For each ratio named in `bounds`, its worst (largest) value over all models, and whether
    it stayed within its bound."""
    held = {}
    for key, bound in bounds.items():
        worst = max(r["ratios"][key] for r in results.values())
        held[f"{key} <= {bound:.2f}"] = {"worst": worst, "held": worst <= bound}
    return held


def print_held(title: str, held: dict, width: int, value: str = "value",
               digits: int = 8) -> None:
    """A line a target or bound: its name, its figure `value` and whether it held."""
    print(f"\n{title}:")
    for key, t in held.items():
        print(f"  {key:<{width}} {t[value]:>{digits}.3f}  {'held' if t['held'] else 'MISSED'}")


def finish(report: dict, print_table: Callable[[dict], None], path: str) -> dict:
    """Print the report's table and write it as JSON to `path`."""
    from d2lai.files import write_json  # d2lai imports torch: only now, when all is measured

    print_table(report)
    write_json(path, report)
    print(f"\nfigures written to {path}")
    return report
