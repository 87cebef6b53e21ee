"""examples/mlp_model_selection.py: layer plans, Keras's L2 mapped onto WeightDecay, early
stopping, and the whole comparison end to end on generated data."""

import copy
import json
import math

import numpy as np
import pytest
import torch
from torch import nn

import d2lai
from d2lai.runs import RunTable
from d2lai.testing import write_fake_mnist, write_idx
from examples import mlp_model_selection as ms

QUICK = ["--cpu", "--val-split", "200", "--batchsize", "64"]
COLUMNS = set(ms.SUMMARY) | {"status", "init", "l2", "dropout", "batch_norm", "patience",
                             "max_epochs"}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def noise_root(tmp_path_factory):
    """Random pixels with random labels: a net can only memorise them, so its validation loss
    soon rises and early stopping has something to stop."""
    root = tmp_path_factory.mktemp("noise")
    raw = root / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for split, n in (("train", 600), ("t10k", 200)):
        write_idx(raw / f"{split}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)))
        write_idx(raw / f"{split}-labels-idx1-ubyte", rng.integers(0, 10, n))
    return root


def check_png(path):
    assert path.is_file() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", path


# --- the layer plans ------------------------------------------------------------------------

PLANS = {  # run: the layers of its net, in order
    "baseline": ["L784-512", "relu", "L512-512", "relu", "L512-10", "softmax"],
    "early-stop": ["L784-512", "relu", "L512-512", "relu", "L512-10", "softmax"],
    "small": ["L784-256", "relu", "L256-32", "relu", "L32-10", "softmax"],
    "l2": ["L784-256", "relu", "L256-32", "relu", "L32-10", "softmax"],
    "dropout-0.5": ["L784-256", "relu", "drop0.5", "L256-32", "relu", "drop0.5", "L32-10",
                    "softmax"],
    "dropout-0.3": ["L784-256", "relu", "drop0.3", "L256-32", "relu", "drop0.3", "L32-10",
                    "softmax"],
    "bn-dropout": ["L784-265", "relu", "bn265", "drop0.5", "L265-64", "relu", "bn64", "drop0.5",
                   "L64-32", "relu", "bn32", "drop0.5", "L32-10", "softmax"],
}


def plan(model):
    names = []
    for m in model.net:
        if isinstance(m, nn.Linear):
            names.append(f"L{m.in_features}-{m.out_features}")
        elif isinstance(m, nn.BatchNorm1d):
            assert (m.eps, m.momentum) == (1e-3, 0.01)  # Keras's epsilon and momentum 0.99
            names.append(f"bn{m.num_features}")
        elif isinstance(m, nn.Dropout):
            names.append(f"drop{m.p:g}")
        else:
            names.append({nn.ReLU: "relu", nn.Softmax: "softmax"}[type(m)])
    return names


def build(run):
    s = run.settings
    return ms.MLP(s["hidden"], s["dropout"], s["batch_norm"], s["init"])


@pytest.mark.parametrize("name", list(PLANS))
def test_each_run_builds_the_tutorials_layers(name):
    assert plan(build(ms.RUNS[name])) == PLANS[name]


def test_the_runs_budgets_and_patiences_are_the_tutorials():
    got = {n: (r.settings["max_epochs"], r.settings["patience"], r.settings["l2"])
           for n, r in ms.RUNS.items()}
    assert got == {"baseline": (25, None, 0), "early-stop": (25, 3, 0), "small": (30, 5, 0),
                   "l2": (50, 5, 0.001), "dropout-0.5": (50, None, 0),
                   "dropout-0.3": (50, None, 0), "bn-dropout": (50, None, 0)}
    capped = ms.tutorial_runs(["small", "l2"], max_epochs=40)
    assert [(r.name, r.settings["max_epochs"]) for r in capped] == [("small", 30), ("l2", 40)]


def test_he_normal_and_glorot_uniform_weights_and_zero_biases():
    torch.manual_seed(0)
    he = ms.MLP((512, 512), init="he_normal")
    glorot = ms.MLP((512, 512), init="glorot_uniform")
    for model, kind in ((he, "he"), (glorot, "glorot")):
        *hidden, last = [m for m in model.net if isinstance(m, nn.Linear)]
        for layer in (*hidden, last):
            w = layer.weight.detach()
            fan_in, fan_out = layer.in_features, layer.out_features
            bound = math.sqrt(6 / (fan_in + fan_out))
            if kind == "he" and layer is not last:
                assert abs(w.std().item() / math.sqrt(2 / fan_in) - 1) < 0.02
                assert w.abs().max() > bound  # a normal's tails, not a uniform's
            else:  # Glorot-uniform: the output layer always, as Keras's default
                assert w.abs().max() <= bound
                assert abs(w.std().item() / (bound / math.sqrt(3)) - 1) < 0.05
            assert abs(w.mean().item()) < 0.05 * w.std().item()
            assert torch.count_nonzero(layer.bias) == 0
    assert len(he.hidden_kernels()) == 2 and he.hidden_kernels()[1].shape == (512, 512)


@pytest.mark.parametrize("kwargs, message", [
    (dict(hidden=()), "hidden must be one or more positive layer sizes"),
    (dict(hidden=(512, 0)), "hidden must be"),
    (dict(dropout=1.0), r"dropout must be a probability in \[0, 1\), got 1.0"),
    (dict(init="lecun_normal"), "init must be one of he_normal, glorot_uniform"),
])
def test_bad_model_settings_are_refused_by_name(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ms.MLP(**kwargs)


# --- Keras's L2 on the optimiser ----------------------------------------------------------

def keras_rmsprop_with_l2(model, batches, l2, factor=1.0, lr=0.001, rho=0.9, eps=1e-7):
    """RMSprop by hand on the loss Keras minimises: data loss + l2 * sum(w^2) over the hidden
    kernels (factor 1). Returns the model and the last mean square of each parameter."""
    square = {p: torch.zeros_like(p) for p in model.parameters()}
    for X, y in batches:
        penalty = sum((k ** 2).sum() for k in model.hidden_kernels())
        loss = model.loss(model(X), y) + factor * l2 * penalty
        grads = torch.autograd.grad(loss, list(model.parameters()))
        with torch.no_grad():
            for p, g in zip(model.parameters(), grads, strict=True):
                square[p] = rho * square[p] + (1 - rho) * g ** 2
                p -= lr * g / (square[p].sqrt() + eps)
    return model, list(square.values())


def test_l2_is_keras_l2_on_the_hidden_kernels_only():
    torch.manual_seed(0)
    model = ms.MLP((6, 4), init="glorot_uniform", num_inputs=5, num_classes=3)
    with torch.no_grad():  # weights large enough for the penalty to matter
        for k in model.hidden_kernels():
            k.mul_(8)
    batches = [(torch.randn(16, 5), torch.randint(0, 3, (16,))) for _ in range(3)]
    hand, squares = keras_rmsprop_with_l2(copy.deepcopy(model), batches, 0.001)
    wrong, _ = keras_rmsprop_with_l2(copy.deepcopy(model), batches, 0.001, factor=0.5)

    opt = ms.optimiser(model, 0.001)
    assert isinstance(opt, torch.optim.RMSprop)
    for X, y in batches:
        opt.zero_grad()
        model.loss(model(X), y).backward()
        opt.step()
    for p, q, square in zip(model.parameters(), hand.parameters(), squares, strict=True):
        torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-7)
        torch.testing.assert_close(opt.state[p]["square_avg"], square, rtol=1e-5, atol=1e-10)
    # the test can tell: lambda = l2 (the penalty's factor taken for WeightDecay's) differs
    assert not all(torch.allclose(p, q, rtol=1e-6, atol=1e-7)
                   for p, q in zip(model.parameters(), wrong.parameters(), strict=True))


def test_without_l2_the_rule_is_rmsprop_with_keras_defaults():
    rule = ms.optimiser(ms.MLP((8,)), 0.0)
    assert isinstance(rule, d2lai.RMSProp)
    assert (rule.lr, rule.rho, rule.eps) == (0.001, 0.9, 1e-7)
    assert (d2lai.RMSProp().lr, d2lai.RMSProp().rho) == (rule.lr, rule.rho)  # Flux's = Keras's


# --- early stopping -------------------------------------------------------------------------

@torch.no_grad()
def val_loss(model, data):
    model.eval()
    total = n = 0
    for X, y in data.val_dataloader():
        total += model.loss(model(X), y).item() * len(y)
        n += len(y)
    return total / n


@pytest.mark.parametrize("restore", [True, False])
def test_early_stopping_stops_after_patience_and_restores_as_set(noise_root, restore):
    data = d2lai.FashionMNISTData(batchsize=512, root=noise_root, flatten=True, val_split=200)
    d2lai.seed(0)
    model = ms.MLP((512, 512), init="he_normal")
    trainer = d2lai.Trainer(model, data, ms.optimiser(model), max_epochs=25, board=False,
                            verbose=False, callbacks=[ms.stopper(3, restore)])
    model, metrics = trainer.fit()
    history = trainer.history["val_loss"]
    best = 1 + history.index(min(history))
    assert metrics.stopped_early and len(history) == best + 3 < 25
    kept = best if restore else len(history)
    assert metrics.epoch == kept
    assert val_loss(model, data) == pytest.approx(history[kept - 1], rel=1e-5)


def test_early_stopping_in_the_table(noise_root, tmp_path):
    base = ["--data-root", str(noise_root), "--epochs", "20", "--out", str(tmp_path), *QUICK]
    rows = {r["run"]: r for r in ms.main([*base, "--runs", "early-stop", "baseline"]).records}
    table = RunTable.from_json(tmp_path / "runs.json")
    stopped, full = rows["early-stop"], rows["baseline"]
    assert stopped["epochs"] == stopped["best_epoch"] + 3 < 20
    assert stopped["returned_epoch"] == stopped["best_epoch"]
    val = [r["val_loss"] for r in table.records if r["run"] == "early-stop"]
    assert len(val) == stopped["epochs"] and stopped["val_loss"] == min(val)
    assert stopped["val_loss_rise"] == pytest.approx(val[-1] - min(val)) and val[-1] > min(val)
    assert full["epochs"] == 20 and full["returned_epoch"] == 20
    kept_last = ms.main([*base, "--runs", "early-stop", "--no-restore"]).records[0]
    assert kept_last["returned_epoch"] == kept_last["epochs"] == stopped["epochs"]
    assert kept_last["val_loss"] == val[-1]


# --- end to end -----------------------------------------------------------------------------

def test_main_end_to_end(fashion_root, tmp_path, capsys):
    out = tmp_path / "out"
    rows = ms.main(["--data-root", str(fashion_root), "--epochs", "2", "--num-train", "256",
                    "--out", str(out), *QUICK])
    assert [r["run"] for r in rows.records] == list(ms.RUNS)
    assert set(rows.columns()) == COLUMNS
    for r in rows.records:
        assert r["max_epochs"] == r["epochs"] == r["returned_epoch"] == 2
        assert 1 <= r["best_epoch"] <= 2 and r["val_loss_rise"] >= 0
        assert r["loss_gap"] == pytest.approx(r["val_loss"] - r["train_loss"])
        assert 0 <= r["test_acc"] <= 1 and 0 <= r["val_acc"] <= 1 and r["status"] == "ok"
    assert rows.records[6]["hidden"] == "265-64-32" and rows.records[3]["l2"] == 0.001
    text = capsys.readouterr().out
    assert "test acc" in text and "loss gap" in text and "the 512-512 net's training" in text
    records = RunTable.from_json(out / "runs.json")
    assert len(records) == 14 and records.records[0]["hidden"] == "512-512"
    assert len(RunTable.from_csv(out / "runs.csv")) == 14
    summary = json.loads((out / "summary.json").read_text())["records"]
    assert [r["run"] for r in summary] == list(ms.RUNS)
    assert RunTable.from_csv(out / "summary.csv").records[3]["test_acc"] == pytest.approx(
        rows.records[3]["test_acc"])
    for name in ("loss_curves.png", "val_acc.png", *(f"boards/{n}.png" for n in ms.RUNS)):
        check_png(out / name)
    assert sorted(p.name for p in out.iterdir()) == [
        "boards", "loss_curves.png", "runs.csv", "runs.json", "summary.csv", "summary.json",
        "val_acc.png"]


def test_mnist_flag_reads_mnist(tmp_path):
    write_fake_mnist(tmp_path / "data", name="MNIST")
    rows = ms.main(["--dataset", "mnist", "--data-root", str(tmp_path / "data"), "--runs",
                    "small", "--epochs", "1", "--out", str(tmp_path / "out"), *QUICK])
    assert len(rows) == 1 and rows.records[0]["status"] == "ok"


def test_help_and_bad_input(capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_:
        ms.main(["--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    for flag in ("--dataset", "--val-split", "--runs", "--no-restore", "--epochs", "--data-root"):
        assert flag in text
    with pytest.raises(SystemExit) as exit_:
        ms.main(["--runs", "nope"])
    assert exit_.value.code == 2
    (tmp_path / "file").write_text("")
    with pytest.raises(SystemExit, match="error: root .* is a file"):
        ms.main(["--data-root", str(tmp_path / "file"), "--out", str(tmp_path / "out")])
