"""examples/two_networks.py: the two networks, and the 4-run table end to end."""

import csv
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from d2lai.runs import RunTable
from d2lai.testing import write_fake_mnist
from examples import two_networks
from examples.two_networks import Network

ROOT = Path(__file__).resolve().parents[1]
QUICK = ["--cpu", "--epochs", "2", "--num-train", "200", "--num-val", "100", "--batchsize", "50"]
NAMES = ["trainset=not_normal,network=no_batch_norm", "trainset=not_normal,network=batch_norm",
         "trainset=normal,network=no_batch_norm", "trainset=normal,network=batch_norm"]


pytestmark = pytest.mark.usefixtures("one_thread")


def test_the_two_networks():
    plain, bn = list(Network(False).net), list(Network(True).net)
    kinds = [type(m).__name__ for m in bn]
    assert kinds == ["Conv2d", "ReLU", "MaxPool2d", "BatchNorm2d", "Conv2d", "ReLU", "MaxPool2d",
                     "Flatten", "Linear", "ReLU", "BatchNorm1d", "Linear", "ReLU", "Linear"]
    without = [type(m) for m in bn if not isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert without == [type(m) for m in plain]
    assert (bn[3].num_features, bn[10].num_features) == (6, 120)
    shapes = [(m.in_features, m.out_features) for m in plain if isinstance(m, nn.Linear)]
    assert shapes == [(192, 120), (120, 60), (60, 10)]
    convs = [(m.in_channels, m.out_channels, m.kernel_size) for m in plain
             if isinstance(m, nn.Conv2d)]
    assert convs == [(1, 6, (5, 5)), (6, 12, (5, 5))]
    X = torch.rand(4, 1, 28, 28)
    assert Network(False)(X).shape == Network(True)(X).shape == (4, 10)


def test_the_same_seed_gives_both_networks_the_same_weights():
    torch.manual_seed(50)
    plain = Network(False)
    torch.manual_seed(50)
    bn = Network(True)
    weights = [m for m in bn.net if isinstance(m, (nn.Conv2d, nn.Linear))]
    pairs = list(zip([m for m in plain.net if isinstance(m, (nn.Conv2d, nn.Linear))], weights,
                     strict=True))
    assert len(pairs) == 5
    for a, b in pairs:
        torch.testing.assert_close((a.weight, a.bias), (b.weight, b.bias), rtol=0, atol=0)


def test_main_end_to_end(fashion_root, tmp_path, capsys):
    out = tmp_path / "out"
    table = two_networks.main(["--data-root", str(fashion_root), "--out", str(out), *QUICK])
    printed = capsys.readouterr().out
    assert table.runs() == NAMES
    assert [(r["run"], r["epoch"]) for r in table.records] == [(n, e) for n in NAMES
                                                               for e in (1, 2)]
    assert set(two_networks.COLUMNS) <= set(table.columns())
    for r in table.records:
        assert (r["lr"], r["batch_size"], r["device"]) == (0.01, 50, "cpu")
        assert f"trainset={r['trainset']},network={r['network']}" == r["run"]
        assert all(0 <= r[k] <= 1 for k in ("train_acc", "val_acc"))
        assert r["train_loss"] > 0 and r["epoch_s"] > 0 and r["run_s"] >= r["epoch_s"]
    # both trainsets hold the same images, one of them standardised: different first losses
    first = {r["run"]: r["train_loss"] for r in table.records if r["epoch"] == 1}
    assert first[NAMES[0]] != first[NAMES[2]]
    assert RunTable.from_json(out / "runs.json").records == table.records
    with open(out / "runs.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 8 and rows[0]["network"] == "no_batch_norm"
    png = out / "two_networks.png"
    assert png.stat().st_size > 1000 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    written = sorted(p.name for p in out.iterdir() if p.name != ".lock")  # the sweep's lock
    assert written == ["runs.csv", "runs.json", "two_networks.png"]
    assert "Training accuracy in epoch 2: not_normal: no_batch_norm" in printed
    assert "0.9377" in printed and "batch size" in printed


def test_runs_repeat_with_the_seed_and_resume_skips(fashion_root, tmp_path, capsys):
    flags = ["--data-root", str(fashion_root), "--out", str(tmp_path), *QUICK, "--epochs", "1"]
    first = two_networks.main(flags)
    again = two_networks.main([*flags, "--resume"])
    assert "skipping 4 of 4 runs" in capsys.readouterr().out
    assert again.records == first.records
    fresh = two_networks.main(flags)
    strip = [{k: v for k, v in r.items() if not k.endswith("_s")} for r in fresh.records]
    assert strip == [{k: v for k, v in r.items() if not k.endswith("_s")} for r in first.records]


def test_one_trainset(fashion_root, tmp_path):
    table = two_networks.main(["--data-root", str(fashion_root), "--out", str(tmp_path),
                               *QUICK, "--trainsets", "normal"])
    assert table.runs() == NAMES[2:] and {r["trainset"] for r in table.records} == {"normal"}


def test_mnist_flag_and_bad_roots(tmp_path):
    write_fake_mnist(tmp_path / "data", name="MNIST", num_train=200, num_val=100)
    table = two_networks.main(["--dataset", "mnist", "--data-root", str(tmp_path / "data"),
                               "--out", str(tmp_path / "out"), *QUICK])
    assert table.runs() == NAMES
    (tmp_path / "file").write_text("")
    with pytest.raises(SystemExit, match=r"^error: root .*file is a file"):
        two_networks.main(["--data-root", str(tmp_path / "file"), "--out",
                           str(tmp_path / "out"), *QUICK])
    with pytest.raises(SystemExit, match=r"^error: --out .* is a file, not a folder"):
        two_networks.main(["--dataset", "mnist", "--data-root", str(tmp_path / "data"),
                           "--out", str(tmp_path / "file"), *QUICK])


def test_help_and_bad_flags_from_another_folder(tmp_path):
    def run(*flags):
        return subprocess.run([sys.executable, str(ROOT / "examples" / "two_networks.py"),
                               *flags], capture_output=True, text=True, cwd=tmp_path,
                              timeout=120)

    r = run("--help")
    assert r.returncode == 0
    assert all(flag in r.stdout for flag in ("--dataset", "--epochs", "--resume", "--lr"))
    r = run("--dataset", "cifar")
    assert r.returncode == 2 and "invalid choice: 'cifar'" in r.stderr
    r = run("--trainsets", "all")
    assert r.returncode == 2 and "--trainsets: invalid choice: 'all'" in r.stderr
    assert "Traceback" not in r.stderr and not any(tmp_path.iterdir())


def test_parse_args_defaults_are_the_lessons():
    args = two_networks.parse_args([])
    assert (args.epochs, args.batchsize, args.lr, args.seed) == (20, 1000, 0.01, 50)
    assert args.out == "out/examples/two_networks" and args.dataset == "fashion-mnist"
