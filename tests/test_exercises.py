"""The batch-norm chapter's exercises: the pieces they add, and each exercise end to end."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

import chapters.cli as cli
import d2lai
from chapters import batch_norm_exercises as ex
from chapters.batch_norm import BatchNormLayer, BLeNetConcise, BLeNetScratch, batch_norm
from d2lai.runs import RunTable

ROOT = Path(__file__).resolve().parents[1]
QUICK = ["--cpu", "--epochs", "1", "--num-train", "200", "--num-val", "100", "--batchsize", "32"]
EXPECTED = {
    "bias": ["BLeNetConcise (with bias)", "no bias before BN"],
    "every-layer": ["BN after every layer", "BN after conv only", "BN after dense only", "no BN"],
    "lite": ["full batch norm", "mean only", "std only"],
    "fixed-affine": ["trainable gamma, beta", "fixed gamma=1, beta=0", "fixed random gamma, beta"],
    "dropout": ["neither", "dropout 0.5", "batch norm", "batch norm + dropout 0.5"],
}


pytestmark = pytest.mark.usefixtures("one_thread")


def nparams(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def check_png(path: Path) -> None:
    assert path.is_file(), path
    assert path.stat().st_size > 1000 and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# --- the lite rules against a hand computation ---------------------------------------------

X2 = torch.tensor([[1.0, 2.0], [3.0, 6.0]])  # batch mean (2, 4), biased var (1, 4), unbiased (2, 8)
GAMMA, BETA = torch.tensor([[2.0, 3.0]]), torch.tensor([[0.5, -1.0]])
MM, MV, EPS = torch.tensor([[0.5, 1.0]]), torch.tensor([[1.0, 2.0]]), 1e-5


@pytest.mark.parametrize("fn, expected", [
    (ex.batch_norm_mean_only, [[2 * -1 + 0.5, 3 * -2 - 1], [2 * 1 + 0.5, 3 * 2 - 1]]),
    (ex.batch_norm_std_only, [[2 * 1 / math.sqrt(1 + EPS) + 0.5, 3 * 2 / math.sqrt(4 + EPS) - 1],
                              [2 * 3 / math.sqrt(1 + EPS) + 0.5, 3 * 6 / math.sqrt(4 + EPS) - 1]]),
])
def test_lite_training_mode_by_hand(fn, expected):
    Y, mean, var = fn(X2, GAMMA, BETA, MM, MV, EPS, 0.1, train_mode=True)
    torch.testing.assert_close(Y, torch.tensor(expected))
    # the moving statistics move exactly as full batch norm moves them (variance unbiased)
    torch.testing.assert_close(mean, torch.tensor([[0.9 * 0.5 + 0.1 * 2, 0.9 * 1 + 0.1 * 4]]))
    torch.testing.assert_close(var, torch.tensor([[0.9 * 1 + 0.1 * 2, 0.9 * 2 + 0.1 * 8]]))
    _, full_mean, full_var = batch_norm(X2, GAMMA, BETA, MM, MV, EPS, 0.1)
    torch.testing.assert_close((mean, var), (full_mean, full_var))


@pytest.mark.parametrize("fn, expected", [
    (ex.batch_norm_mean_only, [[2 * 0.5 + 0.5, 3 * 1 - 1], [2 * 2.5 + 0.5, 3 * 5 - 1]]),
    (ex.batch_norm_std_only, [[2 * 1 / math.sqrt(1 + EPS) + 0.5, 3 * 2 / math.sqrt(2 + EPS) - 1],
                              [2 * 3 / math.sqrt(1 + EPS) + 0.5, 3 * 6 / math.sqrt(2 + EPS) - 1]]),
])
def test_lite_prediction_mode_by_hand(fn, expected):
    Y, mean, var = fn(X2, GAMMA, BETA, MM, MV, EPS, 0.1, train_mode=False)
    torch.testing.assert_close(Y, torch.tensor(expected))
    assert mean is MM and var is MV  # prediction leaves the moving statistics alone


def test_lite_conv_input_is_per_channel_and_trains_through_the_layer():
    torch.manual_seed(0)
    X = torch.randn(4, 3, 5, 5) * 2 + 1
    layer = BatchNormLayer(3, 4, norm_fn=ex.batch_norm_mean_only)
    Y = layer(X)
    expected = torch.stack([X[:, c] - X[:, c].mean() for c in range(3)], dim=1)
    torch.testing.assert_close(Y, expected)
    torch.testing.assert_close(layer.moving_mean.flatten(), 0.1 * X.mean(dim=(0, 2, 3)))
    Y.pow(2).sum().backward()
    assert layer.gamma.grad.abs().sum() > 0  # gamma and beta still learn
    layer.eval()
    torch.testing.assert_close(layer(X), X - layer.moving_mean)
    std = BatchNormLayer(3, 4, norm_fn=ex.batch_norm_std_only)
    torch.testing.assert_close(std(X), X / torch.sqrt(X.var(dim=(0, 2, 3), unbiased=False,
                                                              keepdim=True) + 1e-5))


# --- the model variants ---------------------------------------------------------------------

def test_no_bias_variant_has_226_fewer_parameters_and_the_same_training_output():
    d2lai.seed(0)
    model = BLeNetConcise()
    with torch.no_grad():
        for layer in model.net:
            if isinstance(layer, (nn.Conv2d, nn.Linear)):
                layer.bias.normal_()
    X = torch.rand(8, 1, 28, 28)
    y_before = model(X)
    variant = ex.no_bias_before_bn(model)
    assert nparams(variant) == nparams(BLeNetConcise()) - (6 + 16 + 120 + 84)
    biased = [layer.bias is not None for layer in variant.net
              if isinstance(layer, (nn.Conv2d, nn.Linear))]
    assert biased == [False, False, False, False, True]  # the output layer keeps its bias
    torch.testing.assert_close(variant(X), y_before)  # BN's mean subtraction cancelled the bias


def test_lenet_is_the_texts_layout_with_glorot_normal_weights():
    d2lai.seed(0)
    model = ex.LeNet()
    assert [type(m) for m in model.net] == [
        nn.Conv2d, nn.Sigmoid, nn.AvgPool2d, nn.Conv2d, nn.Sigmoid, nn.AvgPool2d, nn.Flatten,
        nn.Linear, nn.Sigmoid, nn.Linear, nn.Sigmoid, nn.Linear, nn.Softmax]
    conv1, conv2, dense = model.net[0], model.net[3], model.net[7]
    assert conv1.padding == (2, 2) and conv1.kernel_size == (5, 5) and conv2.in_channels == 6
    assert (dense.in_features, dense.out_features) == (400, 120)
    w = dense.weight.detach()
    target = math.sqrt(2 / (400 + 120))
    assert abs(w.std().item() / target - 1) < 0.03 and abs(w.mean().item()) < 0.002
    assert w.abs().max() > math.sqrt(6 / (400 + 120))  # normal, not Glorot uniform's bound
    w2 = conv2.weight.detach()
    assert abs(w2.std().item() / math.sqrt(2 / (6 * 25 + 16 * 25)) - 1) < 0.1
    for layer in model.net:
        if isinstance(layer, (nn.Conv2d, nn.Linear)):
            assert torch.count_nonzero(layer.bias) == 0
    out = model(torch.rand(3, 1, 28, 28))
    assert out.shape == (3, 10)
    torch.testing.assert_close(out.sum(dim=1), torch.ones(3))


def bn_places(model: nn.Module) -> list[str]:
    """'conv' or 'dense' for each batch-norm layer, after the layer that feeds it."""
    layers = list(model.net)
    return [{nn.Conv2d: "conv", nn.Linear: "dense"}[type(layers[i - 1])]
            for i, m in enumerate(layers) if isinstance(m, ex.BN_TYPES)]


@pytest.mark.parametrize("conv, dense, expected", [
    (True, True, ["conv", "conv", "dense", "dense"]), (True, False, ["conv", "conv"]),
    (False, True, ["dense", "dense"]), (False, False, []),
])
def test_every_layer_variants_put_batch_norm_where_named(conv, dense, expected):
    model = ex.keep_batch_norm(BLeNetConcise(), conv, dense)
    assert bn_places(model) == expected
    assert all(isinstance(m, nn.BatchNorm2d if p == "conv" else nn.BatchNorm1d)
               for m, p in zip([m for m in model.net if isinstance(m, ex.BN_TYPES)], expected,
                               strict=True))
    assert model(torch.rand(4, 1, 28, 28)).shape == (4, 10)


def test_dropout_goes_after_the_hidden_dense_activations():
    model = ex.add_dropout(BLeNetConcise(), 0.3)
    names = [type(m).__name__ for m in model.net]
    drops = [i for i, n in enumerate(names) if n == "Dropout"]
    assert len(drops) == 2 and all(names[i - 1] == "Sigmoid" for i in drops)
    assert drops[0] > names.index("Flatten") and model.net[drops[0]].p == 0.3
    assert names[-2:] == ["Linear", "Softmax"]


def test_with_norm_fn_swaps_every_scratch_layer():
    model = ex.with_norm_fn(BLeNetScratch(), ex.batch_norm_std_only)
    layers = [m for m in model.modules() if isinstance(m, BatchNormLayer)]
    assert len(layers) == 4 and all(m.norm_fn is ex.batch_norm_std_only for m in layers)


@pytest.mark.parametrize("random", [False, True])
def test_fixed_gamma_beta_do_not_move_while_the_weights_do(random):
    d2lai.seed(0)
    model = ex.fix_affine(BLeNetScratch(), random=random)
    bns = [m for m in model.modules() if isinstance(m, BatchNormLayer)]
    before = [(m.gamma.clone(), m.beta.clone()) for m in bns]
    if random:
        assert all(((g > 0) & (g < 1)).all() and b.std() > 0.3 for g, b in before)
    else:
        assert all((g == 1).all() and (b == 0).all() for g, b in before)
    conv = model.net[0].weight.clone()
    opt = model.configure_optimizers(d2lai.Descent(0.5))
    fixed = {id(p) for m in bns for p in (m.gamma, m.beta)}
    assert not fixed & {id(p) for g in opt.param_groups for p in g["params"]}
    loss = model.training_step((torch.rand(16, 1, 28, 28), torch.randint(0, 10, (16,))))
    opt.zero_grad()
    loss.backward()
    opt.step()
    for m, (g, b) in zip(bns, before, strict=True):
        assert torch.equal(m.gamma, g) and torch.equal(m.beta, b)
    assert not torch.equal(model.net[0].weight, conv)
    concise = ex.fix_affine(BLeNetConcise())
    assert not any(m.weight.requires_grad or m.bias.requires_grad
                   for m in concise.modules() if isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d))


# --- each exercise end to end ---------------------------------------------------------------

def stuck_or_ok(row: dict) -> str:
    """The status of a finite run of these few steps: stuck at chance accuracy or a loss above a
    uniform guess's is "no progress" (too short a run to call it failed)."""
    return "no progress" if row["val_acc"] < 0.15 or row["train_loss"] > math.log(10) else "ok"


def run(name: str, root, out: Path, *extra: str) -> list[dict]:
    """The exercise's table: a row a run."""
    return ex.main([name, "--data-root", str(root), "--out", str(out), *QUICK, *extra]).records


@pytest.mark.parametrize("name", list(EXPECTED))
def test_exercise_end_to_end(name, fashion_root, tmp_path, monkeypatch, capsys):
    loads = []

    class Counted(d2lai.FashionMNISTData):
        def __init__(self, *args, **kwargs):
            loads.append(1)
            super().__init__(*args, **kwargs)

    monkeypatch.setitem(cli.DATASETS, "fashion-mnist", Counted)
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out"
    rows = run(name, fashion_root, out)
    assert len(loads) == 1  # one data set for all the variants
    assert [r["variant"] for r in rows] == EXPECTED[name]
    for r in rows:  # one epoch on 200 images: a net may not beat chance yet, and says so
        assert r["status"] == stuck_or_ok(r) and r["epochs"] == 1
        assert math.isfinite(r["train_loss"]) and math.isfinite(r["val_loss"])
        assert 0 <= r["val_acc"] <= 1 and r["params"] > 40000
    printed = capsys.readouterr().out
    table = printed[printed.index("\nvariant"):].strip().splitlines()[:len(rows) + 1]
    assert table[0].split()[:3] == ["variant", "lr", "params"]
    for line, r in zip(table[1:], rows, strict=True):
        assert line.startswith(r["variant"]) and f"{r['val_acc']:.4f}" in line
        assert f" {r['status']} " in line
    assert len({len(line) for line in table}) == 1  # aligned
    saved = json.loads((out / f"{name}.json").read_text())
    assert saved["exercise"] == name and saved["table"].splitlines() == table
    assert [r["variant"] for r in saved["rows"]] == EXPECTED[name]
    assert [r["val_acc"] for r in saved["rows"]] == pytest.approx([r["val_acc"] for r in rows])
    records = saved["records"]  # one an epoch of each run, as out/NAME/runs.csv holds them
    assert [(r["variant"], r["epoch"]) for r in records] == [(v, 1) for v in EXPECTED[name]]
    assert [r["val_acc"] for r in records] == [r["val_acc"] for r in rows]
    assert RunTable.from_csv(out / name / "runs.csv").records == records
    check_png(out / f"{name}.png")
    boards = sorted((out / f"{name}-boards").glob("*.png"))
    assert len(boards) == len(rows)
    for board in boards:
        check_png(board)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # nothing in the cwd
    params = [r["params"] for r in rows]
    trainable = [r["trainable"] for r in rows]
    if name == "bias":
        assert params[0] - params[1] == 226
    if name == "every-layer":
        assert [params[0] - p for p in params] == [0, 2 * (120 + 84), 2 * (6 + 16), 452]
    if name == "fixed-affine":
        assert params[0] == params[1] == params[2] == trainable[0]
        assert trainable[0] - trainable[1] == trainable[0] - trainable[2] == 452
    if name == "dropout":
        assert params == [params[0], params[0], params[2], params[2]] and params[2] > params[0]


def test_lr_sweep_survives_a_diverged_rate(fashion_root, tmp_path, capsys):
    out = tmp_path / "out"
    rows = run("lr-sweep", fashion_root, out, "--lrs", "0.1", "3e38")
    assert [(r["variant"], r["lr"]) for r in rows] == [
        ("LeNet", 0.1), ("BLeNetConcise", 0.1), ("LeNet", 3e38), ("BLeNetConcise", 3e38)]
    assert [r["status"] for r in rows][2:] == ["diverged", "diverged"]
    assert all(r["status"] == stuck_or_ok(r) for r in rows[:2])
    printed = capsys.readouterr().out
    table = printed[printed.index("\nvariant"):].strip().splitlines()
    assert sum(" diverged " in line for line in table) == 2
    saved = json.loads((out / "lr-sweep.json").read_text())
    assert [r["status"] for r in saved["rows"]] == [r["status"] for r in rows]
    assert saved["rows"][2]["val_loss"] is None  # NaN written as null: the JSON stays valid
    check_png(out / "lr-sweep-accuracy.png")
    check_png(out / "lr-sweep.png")


def test_a_rerun_skips_the_runs_finished_and_tensorboard_needs_its_package(
        fashion_root, tmp_path, capsys, monkeypatch):
    out = tmp_path / "out"
    first = run("bias", fashion_root, out)
    capsys.readouterr()
    again = run("bias", fashion_root, out)
    printed = capsys.readouterr().out
    assert f"skipping 2 of 2 runs already finished in {out / 'bias'}" in printed
    assert "training" not in printed and again == first
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # as if not installed
    with pytest.raises(SystemExit, match=r'^error: .*pip install "d2lai\[tensorboard\]"'):
        run("bias", fashion_root, out, "--tensorboard")


def test_missing_data_exits_with_the_packages_message(tmp_path):
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    with pytest.raises(SystemExit, match=r"^error: root .* is a file"):
        ex.main(["bias", "--data-root", str(not_a_folder), "--out", str(tmp_path), *QUICK])


def test_bad_flags_are_refused(capsys):
    for argv in (["lr-sweep", "--lrs", "-1"], ["lr-sweep", "--lrs", "1e39"],
                 ["bias", "--epochs", "0"], ["dropout", "--dropout", "1"], ["nope"]):
        with pytest.raises(SystemExit) as err:
            ex.parse_args(argv)
        assert err.value.code == 2
    assert "error" in capsys.readouterr().err


def test_module_entry_point(fashion_root, tmp_path):
    helped = subprocess.run([sys.executable, "-m", "chapters.batch_norm_exercises", "--help"],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert helped.returncode == 0
    for name in ["bias", "lr-sweep", "every-layer", "lite", "fixed-affine", "dropout"]:
        assert name in helped.stdout
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-m", "chapters.batch_norm_exercises", "bias",
                           "--data-root", str(fashion_root), "--out", str(out), *QUICK],
                          cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr
    assert "no bias before BN" in done.stdout and "Train Loss" in done.stdout  # log lines
    saved = json.loads((out / "bias.json").read_text())
    assert [r["params"] for r in saved["rows"]] == [44878, 44652]
    check_png(out / "bias.png")
