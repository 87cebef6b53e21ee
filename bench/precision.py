"""Mixed precision and compiled steps: seconds per epoch in float32, bf16, compiled, and bf16 +
compiled, for d2lai's Trainer and for a bare loop doing the same, side by side.

Run from the repository root: `python -m bench.precision` (`--help` lists the flags; `--quick`
is a check of the script in a minute or two, not a measurement).

Workloads, each as its chapter trains it, batch 128:

- lenet-scratch, lenet-concise: the batch-norm chapter's two nets on Fashion-MNIST 28 x 28,
  Descent(0.1).
- resnet18: ResNet-18 as the Julia text builds it (a 7 x 7 stem, four stages of two residual
  blocks, 1 x 1 convolutions on the shortcuts that change shape, a softmax head) on
  Fashion-MNIST resized to 96 x 96, Descent(0.01).
- rnn-lm: the scratch RNN language model of chapter 8 (32 hidden units) on the Time Machine,
  windows of 32 characters, Descent(1.0), gradients clipped to norm 1 (batch 1024, as the book).
- transformer: the encoder-decoder of section 10.7 (2 blocks, 4 heads, width 32) on English-French
  pairs, Adam(0.001), gradients clipped to norm 1. This machine has no fra-eng.zip: the pairs are
  generated in its layout (`d2lai.testing.write_fake_fra_eng`) unless `--data-root` holds one.

Each mode (32, bf16, compile, bf16+compile) trains a fresh model seeded alike, twice in lockstep:
`d2lai.fit(Trainer(..., precision=, compile=))`, and after each of its epochs one epoch of the bare
loop (the data's stored tensors cut by index with a fresh permutation, the same transform, forward
and the model's loss under the same autocast (a conv net channels-last in bf16, as d2lai puts it),
compiled alike, backward, clipping, step; then a validation pass). Each training step is timed in
both (the time between the ends of consecutive steps, the data's slicing included); the figures are
the medians over the epochs after the first (the first holds compiling), so that bursts of other
work on a shared machine fall out. Seconds per epoch = median step x steps + the median validation
pass. The ratios: to float32 eager of the same loop, and d2lai's to the bare loop's in the same
mode. The validation figures are d2lai's after the same epochs in every mode.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

import d2lai
from bench.common import add_json, finish, machine, parser, positive, seeded
from d2lai import Adam, Descent, Trainer
from d2lai.files import write_json
from d2lai.layers import Parallel
from d2lai.optim import setup
from d2lai.precision import BACKEND, PRECISIONS, has_conv2d

MODES = {"32": ("32", False), "bf16": ("bf16", False), "compile": ("32", True),
         "bf16+compile": ("bf16", True)}
SEED = 0
TARGETS = {"resnet18 speed-up": 2.0, "resnet18 val_acc lost": 0.01, "d2lai/bare": 1.05}


# --- the models ---------------------------------------------------------------------------------

def residual(channels_in: int, channels: int, stride: int = 1) -> nn.Module:
    """The Julia text's `Residual`: conv-BN-relu-conv-BN beside the input (a 1 x 1 conv where
    the shape changes), added, then relu."""
    body = nn.Sequential(nn.Conv2d(channels_in, channels, 3, padding=1, stride=stride),
                         nn.BatchNorm2d(channels), nn.ReLU(),
                         nn.Conv2d(channels, channels, 3, padding=1), nn.BatchNorm2d(channels))
    shortcut = (nn.Conv2d(channels_in, channels, 1, stride=stride)
                if channels_in != channels or stride != 1 else nn.Identity())
    return nn.Sequential(Parallel(torch.add, body, shortcut), nn.ReLU())


class ResNet18(d2lai.AbstractClassifier):
    """ResNet(((2, 64), (2, 128), (2, 256), (2, 512))) of the Julia text, for 1-channel input."""

    def __init__(self, num_classes: int = 10):
        super().__init__()
        stages, channels_in = [], 64
        for i, channels in enumerate((64, 128, 256, 512)):
            stride = 1 if i == 0 else 2
            stages += [residual(channels_in, channels, stride), residual(channels, channels)]
            channels_in = channels
        self.net = nn.Sequential(
            nn.Conv2d(1, 64, 7, stride=2, padding=3), nn.BatchNorm2d(64), nn.ReLU(),
            nn.MaxPool2d(3, stride=2, padding=1), *stages,
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, num_classes),
            nn.Softmax(dim=1))


@dataclass
class Workload:
    """A model, its data and its rule, as its chapter trains them."""

    build: Callable[[object], nn.Module]
    data: Callable[[argparse.Namespace, Path], object]
    opt: Callable[[], object]
    clip: float = 0.0


def fashion(resize=None):
    def load(args, tmp):
        return d2lai.FashionMNISTData(batchsize=128, resize=resize, root=fashion_root(args, tmp),
                                      num_train=args.num_train, num_val=args.num_val)
    return load


def fashion_root(args: argparse.Namespace, tmp: Path) -> str:
    """--data-root, else $D2LAI_DATA, else (with --quick) a generated stand-in."""
    root = args.data_root or os.environ.get("D2LAI_DATA")
    if root is None or args.quick:
        from d2lai.testing import write_fake_fashion_mnist

        root = str(tmp / "fashion")
        write_fake_fashion_mnist(root, num_train=args.num_train, num_val=args.num_val)
    return root


def time_machine(args, tmp):
    root = args.data_root or os.environ.get("D2LAI_DATA")
    if root is None or args.quick or not (Path(root) / "timemachine.txt").exists():
        from d2lai.testing import write_fake_time_machine

        root = tmp / "text"
        write_fake_time_machine(root, num_chars=args.lm_windows * 2 + 1000)
    return d2lai.TimeMachine(128 if args.quick else 1024, 32, num_train=args.lm_windows,
                             num_val=args.lm_windows // 2, root=root)


def fra_eng(args, tmp):
    root = args.data_root or os.environ.get("D2LAI_DATA")
    if root is None or args.quick or not (Path(root) / "fra-eng.zip").exists():
        from d2lai.testing import write_fake_fra_eng

        root = tmp / "pairs"
        write_fake_fra_eng(root)  # its 810 pairs
    return d2lai.MTFraEng(128, num_steps=9, num_train=args.pairs, num_val=args.pairs // 4,
                          root=root)


def rnn_lm(data) -> nn.Module:
    from chapters.rnn import rnn_lm_scratch

    return rnn_lm_scratch(len(data.vocab), 32)


def transformer(data) -> nn.Module:
    from chapters.attention import transformer as build

    return build(data, 32)


WORKLOADS = {
    "lenet-scratch": Workload(lambda d: _chapter("BLeNetScratch"), fashion(),
                              lambda: Descent(0.1)),
    "lenet-concise": Workload(lambda d: _chapter("BLeNetConcise"), fashion(),
                              lambda: Descent(0.1)),
    "resnet18": Workload(lambda d: ResNet18(), fashion((96, 96)), lambda: Descent(0.01)),
    "rnn-lm": Workload(rnn_lm, time_machine, lambda: Descent(1.0), clip=1.0),
    "transformer": Workload(transformer, fra_eng, lambda: Adam(0.001), clip=1.0),
}


def _chapter(name: str) -> nn.Module:
    import chapters.batch_norm as chapter

    return getattr(chapter, name)()


# --- the bare loop ------------------------------------------------------------------------------

class BareLoop:
    """The same training with nothing around it: one epoch (and one validation pass) a call."""

    def __init__(self, model: nn.Module, data, work: Workload, precision: str, compile: bool):
        self.model, self.data, self.clip = model, data, work.clip
        self.opt = setup(work.opt(), model)
        self.dtype = PRECISIONS[precision]
        if self.dtype is not None and has_conv2d(model):  # as d2lai does in bf16
            model.to(memory_format=torch.channels_last)
        self.gen = torch.Generator().manual_seed(SEED)

        def train_step(batch):
            return model.loss(model(*batch[:-1]), batch[-1])

        def val_step(batch):
            y_hat = model(*batch[:-1])
            return model.loss(y_hat, batch[-1]), model.accuracy(y_hat, batch[-1])

        wrap = (lambda f: torch.compile(f, backend=BACKEND)) if compile else (lambda f: f)
        self.train_step, self.val_step = wrap(train_step), wrap(val_step)
        self.step_s: list[list[float]] = []
        self.val_s: list[float] = []
        self.val: dict = {}

    def autocast(self):
        return torch.autocast("cpu", dtype=self.dtype, enabled=self.dtype is not None)

    def epoch(self) -> None:
        model, opt, tensors = self.model, self.opt, self.data.train
        model.train()
        n, bs = len(tensors[-1]), self.data.batchsize
        order = torch.randperm(n, generator=self.gen)
        times, last = [], time.perf_counter()
        for lo in range(0, n, bs):
            idx = order[lo:lo + bs]
            batch = [t.index_select(0, idx) for t in tensors]
            batch[0] = self.data.transform(batch[0])
            with self.autocast():
                loss = self.train_step(batch)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if self.clip:  # d2lai's default, the Julia package's: to norm `clip` at every step
                grads = [p.grad for p in model.parameters() if p.grad is not None]
                torch._foreach_mul_(grads, self.clip / nn.utils.get_total_norm(grads))
            opt.step()
            now = time.perf_counter()
            times.append(now - last)
            last = now
        self.step_s.append(times)
        self.validate()

    @torch.no_grad()
    def validate(self) -> None:
        self.model.eval()
        tensors, bs = self.data.val, self.data.batchsize
        n, sums = len(tensors[-1]), torch.zeros(2, dtype=torch.float64)
        tic = time.perf_counter()
        for lo in range(0, n, bs):
            batch = [t[lo:lo + bs] for t in tensors]
            batch[0] = self.data.transform(batch[0])
            with self.autocast():
                loss, acc = self.val_step(batch)
            sums += torch.stack([loss.double(), acc.double()]) * len(batch[-1])
        self.val_s.append(time.perf_counter() - tic)
        self.val = dict(zip(("val_loss", "val_acc"), (sums / n).tolist(), strict=True))


class Beside(d2lai.Callback):
    """Times each training step of the fit; after each of its epochs, one epoch of the bare
    loop (the fit's random state kept as if it ran alone)."""

    def __init__(self, bare: BareLoop):
        self.bare, self.step_s = bare, []

    def on_train_start(self, trainer, loader) -> None:
        self.times, self.last = [], time.perf_counter()

    def on_train_batch_end(self, trainer, batch, loss) -> None:
        now = time.perf_counter()
        self.times.append(now - self.last)
        self.last = now

    def on_train_epoch_end(self, trainer, logs: dict) -> None:
        self.step_s.append(self.times)

    def on_epoch_end(self, trainer, epoch: int, logs: dict) -> None:
        state = torch.get_rng_state()
        self.bare.epoch()
        torch.set_rng_state(state)


# --- one workload -------------------------------------------------------------------------------

def per_epoch(step_s: list[list[float]], val_s: list[float]) -> dict:
    """Median step and validation times over the epochs after the first; seconds an epoch."""
    steps = [t for epoch in step_s[1:] for t in epoch] or step_s[0]
    val = val_s[1:] or val_s
    step, v = statistics.median(steps), statistics.median(val)
    return {"step_s": step, "val_s": v, "epoch_s": step * len(step_s[0]) + v,
            "first_epoch_s": sum(step_s[0]) + val_s[0]}


def bench_workload(name: str, args: argparse.Namespace, tmp: Path, modes: list[str],
                   rows: dict) -> dict:
    """`modes` of one workload, each d2lai and the bare loop in lockstep, added to `rows`."""
    work = WORKLOADS[name]
    data = work.data(args, tmp)
    for mode in modes:
        precision, compile = MODES[mode]
        print(f"{name}: {mode}", file=sys.stderr, flush=True)
        model, _ = seeded(lambda: work.build(data), SEED)
        twin, _ = seeded(lambda: work.build(data), SEED)
        bare = BareLoop(twin, data, work, precision, compile)
        beside = Beside(bare)
        trainer = Trainer(model, data, work.opt(), max_epochs=args.epochs, board=False,
                          verbose=args.verbose, gradient_clip_val=work.clip,
                          precision=precision, compile=compile, callbacks=[beside])
        tic = time.perf_counter()
        _, metrics = d2lai.fit(trainer)
        ours = per_epoch(beside.step_s, trainer.timings["val_s"])
        theirs = per_epoch(bare.step_s, bare.val_s)
        figures = {k: v for k, v in vars(metrics).items()
                   if k in ("train_loss", "val_loss", "val_acc", "diverged") and v is not None}
        rows[mode] = {"d2lai": ours, "bare": theirs, "figures": figures, "bare_figures": bare.val,
                      "ratio_to_bare": ours["step_s"] / theirs["step_s"],
                      "compile_s": trainer.amp.compile_s, "wall_s": time.perf_counter() - tic}
        if "ppl" in "".join(trainer.history):
            rows[mode]["figures"]["val_ppl"] = trainer.history["val_ppl"][-1]
        print(f"  d2lai {ours['epoch_s']:.2f} s/epoch, bare {theirs['epoch_s']:.2f}, ratio "
              f"{rows[mode]['ratio_to_bare']:.3f}, {figures}", file=sys.stderr, flush=True)
    base = rows.get("32")
    for row in rows.values():
        for loop in ("d2lai", "bare"):
            row[f"{loop}_speedup"] = (base[loop]["epoch_s"] / row[loop]["epoch_s"]
                                      if base else math.nan)
    return {"samples": len(data.train[-1]), "val_samples": len(data.val[-1]), "modes": rows}


def accuracy_seeds(name: str, args: argparse.Namespace, tmp: Path) -> dict:
    """Float32 and bf16 fits of `name` alone (no bare loop, eager), one pair a seed of
    --accuracy-seeds: how far apart two runs that round differently land after the same
    epochs, beside the main run's (seed 0). Each seed's validation accuracy by precision."""
    work = WORKLOADS[name]
    data = work.data(args, tmp)
    out: dict = {}
    for seed in args.accuracy_seeds:
        for precision in ("32", "bf16"):
            print(f"{name}: seed {seed}, {precision}", file=sys.stderr, flush=True)
            model, _ = seeded(lambda: work.build(data), seed)
            trainer = Trainer(model, data, work.opt(), max_epochs=args.epochs, board=False,
                              verbose=args.verbose, gradient_clip_val=work.clip,
                              precision=precision, seed=seed)
            _, metrics = d2lai.fit(trainer)
            out.setdefault(str(seed), {})[precision] = float(metrics.val_acc)
    return out


def accuracy_lost(workload: dict) -> list[float]:
    """Float32's validation accuracy minus bf16's, the main run's (eager rows) first, then
    each seed's of the accuracy study."""
    modes, lost = workload["modes"], []
    if "32" in modes and "bf16" in modes:
        lost.append(modes["32"]["figures"].get("val_acc", math.nan)
                    - modes["bf16"]["figures"].get("val_acc", math.nan))
    lost += [acc["32"] - acc["bf16"] for acc in workload.get("seeds", {}).values()]
    return lost


# --- the report ---------------------------------------------------------------------------------

def cpu_model() -> dict:
    """The CPU's model name and the flags that matter for bfloat16 (Linux: /proc/cpuinfo)."""
    name, flags = platform.processor() or "unknown", []
    try:
        text = Path("/proc/cpuinfo").read_text()
        for line in text.splitlines():
            if line.startswith("model name") and name in ("unknown", platform.processor()):
                name = line.split(":", 1)[1].strip()
            if line.startswith("flags"):
                flags = line.split(":", 1)[1].split()
                break
    except OSError:
        pass
    wanted = ("avx2", "avx512f", "avx512_bf16", "avx512_fp16", "amx_bf16", "amx_tile")
    return {"model": name, "bf16_flags": [f for f in wanted if f in flags]}


def print_table(report: dict) -> None:
    cpu = report["cpu"]
    print(f"\nCPU: {cpu['model']} ({', '.join(cpu['bf16_flags']) or 'no bf16 flags'}), "
          f"{report['machine']['torch_threads']} torch threads, torch {report['machine']['torch']}")
    print("s/ep: median training step x steps + median validation pass, epochs after the "
          "first; speed-up: float32 eager's s/ep over this mode's (same loop); vs bare: d2lai's "
          "median step over the bare loop's.")
    print(f"{'workload':<14}{'mode':<14}{'d2lai s/ep':>11}{'bare s/ep':>10}{'speed-up':>9}"
          f"{'bare up':>8}{'vs bare':>8}{'compile s':>10}  validation (d2lai)")
    for name, w in report["workloads"].items():
        for mode, r in w["modes"].items():
            fig = r["figures"]
            shown = ", ".join(f"{k} {v:.4f}" for k, v in fig.items()
                              if k in ("val_loss", "val_acc", "val_ppl"))
            print(f"{name:<14}{mode:<14}{r['d2lai']['epoch_s']:>11.2f}{r['bare']['epoch_s']:>10.2f}"
                  f"{r['d2lai_speedup']:>8.2f}x{r['bare_speedup']:>7.2f}x"
                  f"{r['ratio_to_bare']:>8.3f}{r['compile_s']:>10.1f}  {shown}")
        if w.get("seeds"):
            lost = accuracy_lost(w)
            print(f"{name}: val_acc, float32's minus bf16's, the main run then seeds "
                  f"{', '.join(w['seeds'])}: {', '.join(f'{v:+.4f}' for v in lost)}; mean "
                  f"{statistics.mean(lost):+.4f}")


def held(report: dict) -> dict:
    """The targets: ResNet-18 at least 2x faster in bf16 or bf16+compile; its validation
    accuracy in bf16 within 0.01 of float32's after the same epochs (the value: float32's
    minus bf16's, negative where bf16 ended higher; the mean over the main run and the
    accuracy study's seeds, as one run's differs from another's by about that much);
    d2lai/bare <= 1.05 in every mode."""
    out = {}
    res = report["workloads"].get("resnet18")
    if res and "32" in res["modes"]:
        fast = {m: r for m, r in res["modes"].items() if m.startswith("bf16")}
        if fast:
            best = max(fast, key=lambda m: fast[m]["d2lai_speedup"])
            out["resnet18 speed-up"] = {"mode": best, "value": fast[best]["d2lai_speedup"],
                                        "held": fast[best]["d2lai_speedup"]
                                        >= TARGETS["resnet18 speed-up"]}
        lost = accuracy_lost(res)
        if lost:
            mean = statistics.mean(lost)
            runs = f"bf16, mean of {len(lost)} run{'s' * (len(lost) > 1)}"
            out["resnet18 val_acc lost"] = {"mode": runs, "value": mean,
                                            "held": abs(mean) <= TARGETS["resnet18 val_acc lost"]}
    rows = [(r["ratio_to_bare"], f"{n} {m}") for n, w in report["workloads"].items()
            for m, r in w["modes"].items()]
    if rows:  # none where the accuracy study ran alone
        worst = max(rows)
        out["d2lai/bare"] = {"mode": worst[1], "value": worst[0],
                             "held": worst[0] <= TARGETS["d2lai/bare"]}
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = parser("precision", __doc__.split("\n\n")[0])
    p.add_argument("--workloads", default=",".join(WORKLOADS),
                   help=f"comma-separated, of {', '.join(WORKLOADS)}")
    p.add_argument("--modes", default=",".join(MODES), help=f"comma-separated, of "
                                                            f"{', '.join(MODES)} ('' with "
                                                            f"--accuracy-seeds: that alone)")
    p.add_argument("--epochs", type=positive, default=2,
                   help="epochs a fit (the first holds compiling; timed: the others)")
    p.add_argument("--num-train", type=positive, default=10240, help="Fashion-MNIST images")
    p.add_argument("--num-val", type=positive, default=2048, help="validation images")
    p.add_argument("--lm-windows", type=positive, default=10240,
                   help="windows of 32 characters of the Time Machine to train on")
    p.add_argument("--pairs", type=positive, default=640,
                   help="sentence pairs to train on (at most 648 of the generated 810)")
    p.add_argument("--accuracy-seeds", default="",
                   help="comma-separated seeds (e.g. 1,2): resnet18 also fitted alone in float32 "
                        "and bf16 from each, for the accuracy target's mean")
    p.add_argument("--threads", type=positive, help="torch threads (default: torch's own)")
    p.add_argument("--data-root", help="the data sets' folder (default $D2LAI_DATA)")
    p.add_argument("--verbose", action="store_true", help="d2lai's epoch lines and bars")
    p.add_argument("--quick", action="store_true",
                   help="small generated data, to check the script (not a measurement)")
    p.add_argument("--update", action="store_true",
                   help="add to (or replace in) the figures of --json, not start afresh")
    add_json(p, "precision")
    args = p.parse_args(argv)
    args.workloads = _names(p, "--workloads", args.workloads, WORKLOADS)
    try:
        args.accuracy_seeds = [int(s) for s in args.accuracy_seeds.split(",") if s]
    except ValueError:
        p.error(f"--accuracy-seeds takes comma-separated integers, got {args.accuracy_seeds!r}")
    only_seeds = args.accuracy_seeds and args.modes == ""  # --modes '': the accuracy study alone
    args.modes = [] if only_seeds else _names(p, "--modes", args.modes, MODES)
    if args.quick:
        args.num_train, args.num_val, args.lm_windows, args.pairs = 512, 256, 512, 256
    return args


def _names(p, flag, text, choices) -> list[str]:
    chosen = [w for w in text.split(",") if w]
    if not chosen or any(w not in choices for w in chosen):
        p.error(f"{flag} takes a comma-separated list of {', '.join(choices)}")
    return chosen


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    report = {"machine": machine(torch.device("cpu")), "cpu": cpu_model(),
              "args": {k: v for k, v in vars(args).items() if k != "json"}, "workloads": {}}
    if args.update and Path(args.json).exists():  # the workloads and modes measured before
        report["workloads"] = json.loads(Path(args.json).read_text())["workloads"]
    eager = [m for m in args.modes if not MODES[m][1]]
    compiled = [m for m in args.modes if MODES[m][1]]
    with tempfile.TemporaryDirectory() as tmp:  # every workload eager first, then compiled
        for modes in (eager, compiled):
            for name in args.workloads:
                if modes:
                    done = {m: r for m, r in report["workloads"].get(name, {"modes": {}})[
                        "modes"].items() if m not in modes}
                    seeds = report["workloads"].get(name, {}).get("seeds")
                    report["workloads"][name] = bench_workload(name, args, Path(tmp), modes,
                                                               done)
                    if seeds:  # the accuracy study's, kept
                        report["workloads"][name]["seeds"] = seeds
                    write_json(args.json, report)  # a run cut short keeps what it measured
        if args.accuracy_seeds:
            workload = report["workloads"].setdefault("resnet18", {"modes": {}})
            workload["seeds"] = accuracy_seeds("resnet18", args, Path(tmp))
            write_json(args.json, report)
    report["targets"] = held(report)
    finish(report, print_table, args.json)
    for key, t in report["targets"].items():
        print(f"  {key:<22} {t['value']:>7.3f}  ({t['mode']})  "
              f"{'held' if t['held'] else 'MISSED'}")
    return report


if __name__ == "__main__":
    main()
