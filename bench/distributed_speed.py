"""Data-parallel speed: 1 and 2 ranks of the same training, side by side, and what talking costs.

Run from the repository root: `python -m bench.distributed_speed` (`--help` lists the flags).

BLeNetConcise, Descent(0.1), global batch 128, on generated data of Fashion-MNIST's shape (kept
as uint8 in memory, as FashionMNISTData keeps it), each rank one thread (`gloo` on the CPU, or
`nccl` with `--gpu`, each rank its own GPU). Four configurations, each a torchrun launch of this
file, run in turn (and `--repeats` times, alternating, so that the machine's load falls on all):

- 1 rank, batch 128: one process, the baseline;
- 2 ranks, batch 128: 64 a rank, the gradients all-reduced every step;
- 2 ranks, batch 128, synchronised batch norm: also 2 all-reduces a layer, forward and backward;
- 1 rank, batch 64: what each of the 2 ranks computes, without talking: the ideal step.

The communication cost per step is the 2-rank step less the 1-rank step of batch 64; beside it,
the time of one all-reduce of a gradient-sized buffer, and of a one-value all-reduce (the
divergence watch's look, every step on the CPU). Times are medians of the timed epochs (one
warm-up epoch dropped). Results print as a table and go to bench/distributed_speed.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
CONFIGS = {  # name: (ranks, global batch, synchronised batch norm)
    "1 rank, batch 128": (1, 128, False),
    "2 ranks, batch 128": (2, 128, False),
    "2 ranks, batch 128, sync BN": (2, 128, True),
    "1 rank, batch 64": (1, 64, False),
}


# --- one configuration: runs in every rank of a torchrun launch -------------------------------

def _median_ms(fn, repeats: int = 50) -> float:
    """Median wall time of `fn()` in milliseconds, after a few warm-up calls."""
    for _ in range(5):
        fn()
    times = []
    for _ in range(repeats):
        tic = time.perf_counter()
        fn()
        times.append(time.perf_counter() - tic)
    return 1000 * statistics.median(times)


def worker(args: argparse.Namespace) -> None:
    """Train, time, and (on rank 0) write this configuration's figures to `args.worker`."""
    torch.set_num_threads(1)
    import d2lai
    from chapters.batch_norm import BLeNetConcise
    from d2lai import distributed

    class Images(d2lai.AbstractData):
        """Random uint8 images of Fashion-MNIST's shape and random labels, the same everywhere."""

        def __init__(self):
            g = torch.Generator().manual_seed(0)
            n = args.num_train + args.num_val
            X = torch.randint(0, 256, (n, 1, 28, 28), dtype=torch.uint8, generator=g)
            y = torch.randint(0, 10, (n,), generator=g)
            self.train = (X[:args.num_train], y[:args.num_train])
            self.val = (X[args.num_train:], y[args.num_train:])
            self.batchsize = args.batchsize

        def transform(self, X):
            return X.float() / 255

    distributed.start("cuda" if args.gpu else "cpu")
    torch.manual_seed(0)
    model = BLeNetConcise()
    if args.sync_bn:
        model = distributed.sync_batch_norm(model)
    trainer = d2lai.Trainer(model, Images(), d2lai.Descent(0.1), max_epochs=1 + args.epochs,
                            gpu=args.gpu, verbose=False, board=False, seed=0)
    trainer.fit()
    train_s = trainer.timings["train_s"][1:]  # the warm-up epoch dropped
    steps = len(trainer.data.train_dataloader())
    figures = {"ranks": distributed.world_size(), "batchsize": args.batchsize,
               "sync_bn": args.sync_bn, "train_s_epochs": train_s,
               "samples_per_s": args.num_train / statistics.median(train_s),
               "step_ms": 1000 * statistics.median(train_s) / steps, "steps": steps}
    if distributed.world_size() > 1:
        import torch.distributed as dist

        device = trainer.device
        grads = torch.zeros(sum(p.numel() for p in model.parameters()), device=device)
        one = torch.zeros(1, device=device)
        sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else lambda: 0
        figures["grad_values"] = grads.numel()
        figures["allreduce_grads_ms"] = _median_ms(lambda: (dist.all_reduce(grads), sync()))
        figures["allreduce_one_ms"] = _median_ms(lambda: (dist.all_reduce(one), sync()))
    if distributed.is_main_process():
        Path(args.worker).write_text(json.dumps(figures))


# --- the driver: launches each configuration, side by side ------------------------------------

def launch(name: str, args: argparse.Namespace, tmp: Path) -> dict:
    ranks, batchsize, sync_bn = CONFIGS[name]
    out = tmp / f"{len(list(tmp.iterdir()))}.json"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           f"--nproc_per_node={ranks}", "-m", "bench.distributed_speed", "--worker", str(out),
           "--batchsize", str(batchsize), "--epochs", str(args.epochs),
           "--num-train", str(args.num_train), "--num-val", str(args.num_val),
           *(["--sync-bn"] if sync_bn else []), *(["--gpu"] if args.gpu else [])]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg",
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    run = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    if run.returncode != 0:
        raise SystemExit(f"error: {name} failed:\n{run.stderr[-3000:]}")
    return json.loads(out.read_text())


def summary(runs: dict[str, list[dict]]) -> dict:
    """Each configuration's medians over the repeats, and the comparisons the table shows."""
    med = {name: {k: statistics.median(r[k] for r in rs)
                  for k in ("samples_per_s", "step_ms", "allreduce_grads_ms", "allreduce_one_ms")
                  if k in rs[0]} for name, rs in runs.items()}
    one, two = med["1 rank, batch 128"], med["2 ranks, batch 128"]
    return {"configs": med,
            "speedup_2_ranks": two["samples_per_s"] / one["samples_per_s"],
            "speedup_2_ranks_sync_bn": (med["2 ranks, batch 128, sync BN"]["samples_per_s"]
                                        / one["samples_per_s"]),
            "communication_ms_per_step": two["step_ms"] - med["1 rank, batch 64"]["step_ms"],
            "sync_bn_ms_per_step": (med["2 ranks, batch 128, sync BN"]["step_ms"]
                                    - two["step_ms"])}


def print_table(report: dict) -> None:
    s = report["summary"]
    print(f"\n{'configuration':<30}{'samples/s':>11}{'step ms':>9}")
    for name, m in s["configs"].items():
        print(f"{name:<30}{m['samples_per_s']:>11.0f}{m['step_ms']:>9.2f}")
    two = s["configs"]["2 ranks, batch 128"]
    print(f"\n2 ranks / 1 rank throughput: {s['speedup_2_ranks']:.2f} "
          f"(with sync BN: {s['speedup_2_ranks_sync_bn']:.2f})")
    print(f"communication and waiting per step (2 ranks, batch 128 - 1 rank, batch 64): "
          f"{s['communication_ms_per_step']:.2f} ms")
    values = report["runs"]["2 ranks, batch 128"][0]["grad_values"]
    print(f"  one all-reduce of the gradients ({values} values): "
          f"{two['allreduce_grads_ms']:.3f} ms; of one value: {two['allreduce_one_ms']:.3f} ms")
    print(f"synchronised batch norm, extra per step: {s['sync_bn_ms_per_step']:.2f} ms")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.distributed_speed",
                                description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--epochs", type=int, default=2, help="timed epochs, after one warm-up")
    p.add_argument("--num-train", type=int, default=6144, help="training images (generated)")
    p.add_argument("--num-val", type=int, default=512, help="validation images (generated)")
    p.add_argument("--repeats", type=int, default=1, help="rounds of the four configurations")
    p.add_argument("--gpu", action="store_true", help="nccl, each rank its own GPU")
    p.add_argument("--json", default=str(REPO / "bench" / "distributed_speed.json"))
    p.add_argument("--worker", help=argparse.SUPPRESS)  # one configuration, under torchrun
    p.add_argument("--batchsize", type=int, default=128, help=argparse.SUPPRESS)
    p.add_argument("--sync-bn", action="store_true", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict | None:
    args = parse_args(argv)
    if args.worker:
        return worker(args)
    runs: dict[str, list[dict]] = {name: [] for name in CONFIGS}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeats):
            names = list(CONFIGS) if i % 2 == 0 else list(reversed(CONFIGS))
            for name in names:
                print(f"[{i + 1}/{args.repeats}] {name} ...", flush=True)
                runs[name].append(launch(name, args, Path(tmp)))
    report = {"machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                          "torch": torch.__version__, "python": platform.python_version(),
                          "load_average": os.getloadavg(),
                          "device": torch.cuda.get_device_name() if args.gpu else "cpu"},
              "settings": {k: getattr(args, k) for k in ("epochs", "num_train", "num_val",
                                                         "repeats", "gpu")},
              "runs": runs}
    report["summary"] = summary(runs)
    print_table(report)
    Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwritten to {args.json}")
    return report


if __name__ == "__main__":
    main()
