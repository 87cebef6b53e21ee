"""Data memory: the peak memory of FashionMNISTData at 28 x 28 and 224 x 224, and the speed of
cutting batches from uint8 images against the former float32 set.

Run from the repository root: `python -m bench.data_memory` (`--help` lists the flags).

Memory. Each case runs in a Python process of its own; its peak resident set size comes from
os.wait4 (the rusage of that child alone). On Linux a child's peak counts the memory of the
process that started it (it is carried over the exec), so this launcher imports neither torch
nor d2lai until the memory cases are done: it stays at a few MiB, recorded as `launcher_mib`.
A child leaves with os._exit once it has reported, so that the interpreter's teardown, which
with torch loaded touches some 100 MiB more, is not counted as the case's.

- import: torch, torchvision's resize and d2lai imported, no data (the floor);
- float32 28x28: the former storage, the whole set as float32 N x 1 x 28 x 28 (made from the
  stored images with `data.transform`, as the former code did when loading);
- uint8 28x28: `FashionMNISTData()`;
- uint8 224x224: `FashionMNISTData(resize=(224, 224))` (images resized batch by batch);
- epoch 224x224: `d2lai.fit` of a tiny conv net (global average pooling) for one epoch on it,
  on the first `--num-train` images (all by default).

The former 224 x 224 storage (the whole set resized, float32) is worked out, not run.

Speed. In this process, batches of `--batchsize` are cut from the 28 x 28 training set, a pass
each in turn, through d2lai's TensorLoader: the former way (float32 set, index_select) and the
present one (uint8 set, index_select, then `data.transform` on the batch). The figures are the
median over `--passes` passes after one warm-up pass each. Without `--data-root`, data of
Fashion-MNIST's size (60000 + 10000 images) are generated in a temporary folder.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from bench.common import (
    REPO,
    add_json,
    check_positive,
    finish,
    machine,
    parser,
    print_held,
    rotated,
    sync,
)

if TYPE_CHECKING:
    import torch

MIB = 2 ** 20
CASES = {  # what each child process does, in order
    "import": "import (floor)",
    "float32_28": "float32 28x28 (former)",
    "uint8_28": "uint8 28x28",
    "uint8_224": "uint8 224x224",
    "epoch_224": "epoch 224x224",
}


def tiny_conv_net():
    """A strided convolution, batch norm, global average pooling and a linear layer: small
    enough that an epoch at 224 x 224 costs what the data cost."""
    from torch import nn

    import d2lai

    class TinyConvNet(d2lai.AbstractClassifier):
        output_kind = "logits"

        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(nn.Conv2d(1, 8, 5, stride=4, padding=2), nn.BatchNorm2d(8),
                                     nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                     nn.Linear(8, 10))

    return TinyConvNet()


def _proc_mib(field: str) -> float | None:
    """VmRSS (now) or VmHWM (peak) of this process from /proc, in MiB; None off Linux."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _nbytes(*tensors: torch.Tensor) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def child(case: str, args: argparse.Namespace) -> dict:
    """Run one memory case in this (fresh) process; what it built, as a dict."""
    import torch
    import torchvision.transforms.functional  # noqa: F401  (in every case's floor alike)

    import d2lai
    from d2lai.data import FashionMNISTData
    from d2lai.testing import write_fake_fashion_mnist

    root, out = Path(args.data_root), {"rss_after_import_mib": _proc_mib("VmRSS")}
    tic = time.perf_counter()
    if case == "generate":
        write_fake_fashion_mnist(root, num_train=60000, num_val=10000)
        return {}
    if case == "float32_28":
        data = FashionMNISTData(root=root)
        data.train = (data.transform(data.train[0]), data.train[1])
        data.val = (data.transform(data.val[0]), data.val[1])
    elif case in ("uint8_28", "uint8_224"):
        data = FashionMNISTData(root=root, resize=(224, 224) if case == "uint8_224" else None)
    elif case == "epoch_224":
        data = FashionMNISTData(batchsize=args.batchsize, resize=(224, 224), root=root,
                                num_train=args.num_train, num_val=args.num_val)
        d2lai.seed(0)
        trainer = d2lai.Trainer(tiny_conv_net(), data, d2lai.Descent(0.1), max_epochs=1,
                                gpu=args.gpu, verbose=False, board=False)
        _, metrics = d2lai.fit(trainer)
        out |= {"train_s": trainer.timings["train_s"][0], "val_s": trainer.timings["val_s"][0],
                "val_acc": metrics.val_acc}
        if args.gpu:
            out["cuda_peak_mib"] = torch.cuda.max_memory_allocated() / MIB
    if case != "import":
        out |= {"num_train": len(data.train[0]), "num_val": len(data.val[0]),
                "stored_shape": list(data.train[0].shape), "dtype": str(data.train[0].dtype),
                "stored_mib": _nbytes(*data.train, *data.val) / MIB}
    out |= {"seconds": time.perf_counter() - tic, "rss_end_mib": _proc_mib("VmRSS"),
            "vm_hwm_mib": _proc_mib("VmHWM")}
    return out


def measure(case: str, root: Path, args: argparse.Namespace, tmp: Path) -> dict:
    """Run `case` in a child process; its peak resident memory and what it reported."""
    cmd = [sys.executable, "-m", "bench.data_memory", "--child", case, "--data-root", str(root),
           "--batchsize", str(args.batchsize)]
    for flag, value in (("--num-train", args.num_train), ("--num-val", args.num_val)):
        if value is not None:
            cmd += [flag, str(value)]
    if args.gpu:
        cmd.append("--gpu")
    print(f"memory: {CASES.get(case, case)}", file=sys.stderr)
    log = tmp / f"{case}.log"
    with open(log, "w") as f:
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=f, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)  # the rusage of this child alone
    text = log.read_text()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"the {CASES.get(case, case)} case failed:\n{text[-3000:]}")
    result = json.loads(next(line for line in text.splitlines()[::-1]
                             if line.startswith("RESULT "))[len("RESULT "):])
    return {"label": CASES.get(case, case), "peak_rss_mib": _mib(usage.ru_maxrss), **result}


def _mib(maxrss: int) -> float:
    """ru_maxrss in MiB (KiB on Linux, bytes on macOS)."""
    return maxrss / (1024 if sys.platform == "darwin" else 1) / 1024


def cutting_speed(root: Path, args: argparse.Namespace) -> dict:
    """Passes over the 28 x 28 training set: float32 in memory against uint8 + transform."""
    import torch

    from d2lai.data import FashionMNISTData, TensorLoader

    device = torch.device("cuda" if args.gpu else "cpu")
    data = FashionMNISTData(batchsize=args.batchsize, root=root).to(device)
    X, y = data.train
    former = TensorLoader((data.transform(X), y), args.batchsize, shuffle=True)
    loaders = {"float32": former, "uint8": data.train_dataloader()}
    same = []
    for loader in loaders.values():  # the same shuffle gives the same batches, bit for bit
        torch.manual_seed(0)
        same.append(next(iter(loader)))
    identical = all(torch.equal(a, b) for a, b in zip(*same, strict=True))
    times: dict[str, list[float]] = {k: [] for k in loaders}
    order = list(loaders)
    for i in range(1 + args.passes):  # the first pass of each is a warm-up
        for name in rotated(order, i):
            sync(device)
            tic = time.perf_counter()
            for _ in loaders[name]:
                pass
            sync(device)
            if i:
                times[name].append(time.perf_counter() - tic)
    n = len(X)
    res = {name: {"samples_per_s": n / statistics.median(t), "s_per_pass": statistics.median(t),
                  "s_passes": t} for name, t in times.items()}
    res["ratio_uint8/float32"] = res["uint8"]["samples_per_s"] / res["float32"]["samples_per_s"]
    res["same_batches"] = identical
    res["num_train"], res["batchsize"], res["device"] = n, args.batchsize, device.type
    return res


def check_bounds(memory: dict, speed: dict, args: argparse.Namespace) -> dict:
    """Whether each bound held."""
    gib = {k: m["peak_rss_mib"] / 1024 for k, m in memory.items()}
    return {
        f"224x224 data: peak < {args.bound_gib:g} GiB":
            {"value": gib["uint8_224"], "held": gib["uint8_224"] < args.bound_gib},
        f"epoch at 224x224: peak < {args.bound_epoch_gib:g} GiB":
            {"value": gib["epoch_224"], "held": gib["epoch_224"] < args.bound_epoch_gib},
        "28x28: uint8 peak < float32 peak":
            {"value": gib["uint8_28"] / gib["float32_28"],
             "held": gib["uint8_28"] < gib["float32_28"]},
        f"28x28 cutting: uint8/float32 samples/s >= {args.min_ratio:g}":
            {"value": speed["ratio_uint8/float32"],
             "held": speed["ratio_uint8/float32"] >= args.min_ratio},
    }


def print_table(report: dict) -> None:
    memory, floor = report["memory"], report["memory"]["import"]["peak_rss_mib"]
    print(f"\npeak RSS: the child's peak resident memory; above floor: less that of the import "
          f"alone; launcher: {report['launcher_mib']:.0f} MiB")
    print(f"{'memory case':<24}{'peak RSS MiB':>13}{'above floor':>12}{'stored MiB':>11}"
          f"{'seconds':>9}")
    for m in memory.values():
        stored = f"{m['stored_mib']:>11.0f}" if "stored_mib" in m else f"{'':>11}"
        print(f"{m['label']:<24}{m['peak_rss_mib']:>13.0f}{m['peak_rss_mib'] - floor:>12.0f}"
              f"{stored}{m['seconds']:>9.1f}")
    f = report["former_224"]
    print(f"{'float32 224x224 (former)':<24}{'':>13}{'':>12}{f['stored_mib']:>11.0f}"
          f"  worked out: {f['stored_mib'] / 1024:.1f} GiB ({f['train_mib'] / 1024:.1f} GiB "
          f"training set)")
    e = memory["epoch_224"]
    print(f"epoch 224x224: {e['num_train']} training + {e['num_val']} validation images, "
          f"train {e['train_s']:.1f} s, val {e['val_s']:.1f} s"
          + (f", CUDA peak {e['cuda_peak_mib']:.0f} MiB" if "cuda_peak_mib" in e else ""))
    s = report["speed"]
    print(f"\ncutting 28x28 batches of {s['batchsize']} ({s['num_train']} images, "
          f"{s['device']}, median of {len(s['uint8']['s_passes'])} passes):")
    print(f"{'':<28}{'samples/s':>12}{'s/pass':>9}")
    for key, label in (("float32", "float32 in memory (former)"),
                       ("uint8", "uint8 + transform (now)")):
        print(f"{label:<28}{s[key]['samples_per_s']:>12.0f}{s[key]['s_per_pass']:>9.3f}")
    print(f"ratio uint8/float32: {s['ratio_uint8/float32']:.3f}  (same batches: "
          f"{s['same_batches']})")
    print_held("bounds", report["bounds"], 44, digits=7)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = parser("data_memory", __doc__.split("\n\n")[0].replace("\n", " "))
    p.add_argument("--data-root", help="folder holding FashionMNIST/raw/ (else data of "
                                       "Fashion-MNIST's size generated in a temp dir)")
    p.add_argument("--num-train", type=int, help="the 224x224 epoch trains on the first N "
                                                 "images only (None: all)")
    p.add_argument("--num-val", type=int, help="the 224x224 epoch validates on the first N "
                                               "test images only (None: all)")
    p.add_argument("--batchsize", type=int, default=128, help="batch size of cutting and epoch")
    p.add_argument("--passes", type=int, default=25, help="timed passes of each way of cutting")
    p.add_argument("--gpu", action="store_true", help="cut batches and train on CUDA")
    p.add_argument("--bound-gib", type=float, default=1.0,
                   help="the bound on the peak memory of FashionMNISTData(resize=(224, 224))")
    p.add_argument("--bound-epoch-gib", type=float, default=1.5,
                   help="the bound on the peak memory of the 224x224 epoch")
    p.add_argument("--min-ratio", type=float, default=0.9,
                   help="the least uint8/float32 cutting speed ratio that counts as as fast")
    add_json(p, "data_memory")
    p.add_argument("--child", choices=[*CASES, "generate"], help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    check_positive(p, {"--num-train": args.num_train, "--num-val": args.num_val,
                       "--batchsize": args.batchsize, "--passes": args.passes})
    if args.gpu and not args.child:  # asked in a child: this process stays without torch
        cuda = subprocess.run([sys.executable, "-c", "import sys, torch; "
                               "sys.exit(not torch.cuda.is_available())"], cwd=REPO)
        if cuda.returncode != 0:
            p.error("--gpu: PyTorch sees no CUDA device")
    return args


def main(argv: list[str] | None = None) -> dict | None:
    """Run every memory case apart and the speed comparison; print the table, write JSON."""
    args = parse_args(argv)
    if args.child:
        print("RESULT " + json.dumps(child(args.child, args)), flush=True)
        sys.stderr.flush()
        os._exit(0)  # skip the interpreter's teardown: with torch it touches ~100 MiB more
    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="d2lai-bench-") as tmp:
        tmp = Path(tmp)
        if args.data_root:
            root, kind = Path(args.data_root), "--data-root"
        else:
            print("no data set given: generating Fashion-MNIST-sized data", file=sys.stderr)
            root, kind = tmp / "data", "generated"
            measure("generate", root, args, tmp)
        memory = {case: measure(case, root, args, tmp) for case in CASES}
        launcher = _mib(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
        print("speed: cutting 28x28 batches", file=sys.stderr)
        speed = cutting_speed(root, args)  # imports torch here, after the memory cases
    import torch

    device = torch.device("cuda" if args.gpu else "cpu")
    report = {"machine": machine(device) | {"load_avg_start": load_start,
                                            "load_avg_end": os.getloadavg()},
              "settings": {"data": kind, "batchsize": args.batchsize, "passes": args.passes,
                           "gpu": args.gpu, "num_train": args.num_train,
                           "num_val": args.num_val},
              "launcher_mib": launcher, "memory": memory, "speed": speed}
    n_train, n_val = memory["uint8_28"]["num_train"], memory["uint8_28"]["num_val"]
    per_image = 224 * 224 * 4 / MIB
    report["former_224"] = {"stored_mib": (n_train + n_val) * per_image,
                            "train_mib": n_train * per_image}
    report["bounds"] = check_bounds(memory, speed, args)
    return finish(report, print_table, args.json)


if __name__ == "__main__":
    main()
