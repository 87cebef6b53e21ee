"""examples/deep_cnn.py: the layer plan, one-at-a-time scoring, and the program end to end."""

import csv
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

import d2lai
from chapters.batch_norm import BatchNormLayer
from d2lai.runs import RunTable
from d2lai.testing import write_fake_mnist
from examples import deep_cnn
from examples.deep_cnn import DeepCNN, outputs, score

ROOT = Path(__file__).resolve().parents[1]
QUICK = ["--cpu", "--steps", "12", "--num-train", "200", "--num-val", "100", "--batchsize", "32"]
BN = {"torch": (nn.BatchNorm2d, nn.BatchNorm1d), "scratch": (BatchNormLayer, BatchNormLayer)}


pytestmark = pytest.mark.usefixtures("one_thread")


def with_moving_stats(model: nn.Module) -> nn.Module:
    """Random moving statistics, so that evaluation mode differs visibly from training mode."""
    for name, buffer in model.named_buffers():
        if "mean" in name:
            buffer.copy_(torch.randn_like(buffer) * 0.1)
        elif "var" in name:
            buffer.copy_(torch.rand_like(buffer) + 0.5)
    return model


# --- the layer plan -------------------------------------------------------------------------

@pytest.mark.parametrize("norm", [None, "torch", "scratch"])
def test_layer_plan(norm):
    layers = list(DeepCNN(norm).net)
    convs = [m for m in layers if isinstance(m, nn.Conv2d)]
    assert len(convs) == 19
    assert [c.out_channels for c in convs] == [4 * i for i in range(1, 20)]
    assert [c.in_channels for c in convs] == [1] + [4 * i for i in range(1, 19)]
    assert [c.stride for c in convs] == [(2, 2) if i % 3 == 0 else (1, 1) for i in range(1, 20)]
    assert all(c.kernel_size == (3, 3) and c.padding == (1, 1) for c in convs)
    dense = [m for m in layers if isinstance(m, nn.Linear)]
    assert [(d.in_features, d.out_features) for d in dense] == [(76, 100), (100, 10)]
    assert dense[-1].bias is not None and layers[-1] is dense[-1]  # logits, no BN after them
    bns = [m for m in layers if isinstance(m, (nn.modules.batchnorm._BatchNorm, BatchNormLayer))]
    if norm is None:
        assert bns == [] and all(m.bias is not None for m in convs + dense)
        assert sum(isinstance(m, nn.ReLU) for m in layers) == 20
        return
    assert len(bns) == 20
    conv_bn, dense_bn = BN[norm]
    for i, layer in enumerate(layers):  # each conv and the first dense: no bias, BN, ReLU
        if isinstance(layer, nn.Conv2d) or layer is dense[0]:
            after, relu = layers[i + 1], layers[i + 2]
            width = layer.out_channels if isinstance(layer, nn.Conv2d) else 100
            assert layer.bias is None
            assert type(after) is (conv_bn if isinstance(layer, nn.Conv2d) else dense_bn)
            assert after.num_features == width and isinstance(relu, nn.ReLU)
    if norm == "scratch":
        assert [b.num_dims for b in bns] == [4] * 19 + [2]


def test_spatial_sizes_follow_same_padding():
    sizes, size = [], 28
    for i in range(1, 20):  # TensorFlow's "same": ceil(size / stride)
        size = math.ceil(size / (2 if i % 3 == 0 else 1))
        sizes.append(size)
    seen = []
    model = DeepCNN("torch")
    for m in model.net:
        if isinstance(m, nn.Conv2d):
            m.register_forward_hook(lambda mod, args, out: seen.append(out.shape[-1]))
    assert model(torch.rand(3, 1, 28, 28)).shape == (3, 10)
    assert seen == sizes and sizes[-1] == 1


def test_bad_norm_is_refused():
    with pytest.raises(ValueError, match=r"norm must be None, 'torch' or 'scratch', got 'tf'"):
        DeepCNN("tf")


# --- scoring one image at a time ------------------------------------------------------------

@pytest.mark.parametrize("norm", ["torch", "scratch"])
def test_one_at_a_time_equals_batched_in_eval_mode_only(norm, tiny_data):
    torch.manual_seed(0)
    model = with_moving_stats(DeepCNN(norm)).eval()
    X = tiny_data.test[0][:20]
    single, batched = (outputs(model, X, tiny_data.transform, n) for n in (1, 20))
    torch.testing.assert_close(single, batched, atol=1e-5, rtol=1e-5)
    model.train()  # left in training mode: each batch normalised by its own statistics
    twos = outputs(model, X, tiny_data.transform, 2)
    assert (twos - outputs(model, X, tiny_data.transform, 20)).abs().max() > 1e-2
    with pytest.raises(ValueError, match="more than (1|one) value"):  # a batch of one: refused
        outputs(model, X, tiny_data.transform, 1)


def test_score_switches_to_eval_mode_and_counts_right(tiny_data):
    torch.manual_seed(0)
    model = with_moving_stats(DeepCNN("scratch")).train()
    got = score(model, tiny_data, singles=50)
    assert not model.training
    X, y = tiny_data.test[0][:50], tiny_data.test[1][:50]
    with torch.no_grad():
        preds = [int(model(tiny_data.transform(X[i:i + 1])).argmax()) for i in range(50)]
    right = sum(p == int(t) for p, t in zip(preds, y, strict=True))
    assert got["single_acc"] == pytest.approx(right / 50)
    assert got["single_agree"] == 1.0


def batch_stats_always(X, gamma, beta, moving_mean, moving_var, eps, momentum, train_mode=True):
    """Batch norm that normalises by the batch's statistics in evaluation too: the mistake the
    check is for (a single image's 1 x 1 feature maps then all become beta, as in TensorFlow)."""
    dims = (0,) if X.ndim == 2 else (0, 2, 3)
    mean, var = X.mean(dims, keepdim=True), X.var(dims, unbiased=False, keepdim=True)
    return gamma * (X - mean) / torch.sqrt(var + eps) + beta, moving_mean, moving_var


def trained(model: nn.Module, data) -> nn.Module:
    d2lai.Trainer(model, data, d2lai.Adam(0.002), max_steps=20, board=False,
                  verbose=False).fit()
    return model


def test_the_check_fails_for_wrong_mode_switching(tiny_data):
    torch.manual_seed(0)
    right = score(trained(DeepCNN("scratch"), tiny_data), tiny_data)
    torch.manual_seed(0)
    wrong = DeepCNN("scratch")
    for layer in wrong.modules():
        if isinstance(layer, BatchNormLayer):
            layer.norm_fn = batch_stats_always
    got = score(trained(wrong, tiny_data), tiny_data)
    assert right["single_agree"] == 1.0 and got["single_agree"] < 0.5
    singles = outputs(wrong, tiny_data.test[0][:10], tiny_data.transform, 1)
    torch.testing.assert_close(singles, singles[:1].expand(10, -1))  # one output for all
    torch.manual_seed(0)
    assert score(DeepCNN(None), tiny_data)["single_agree"] == 1.0  # no BN: nothing to switch


# --- the program ------------------------------------------------------------------------------

def test_main_end_to_end(fashion_root, tmp_path, capsys):
    out = tmp_path / "out"
    table = deep_cnn.main(["--data-root", str(fashion_root), "--out", str(out), *QUICK])
    printed = capsys.readouterr().out
    names = ["variant=no BN", "variant=torch BN", "variant=scratch BN"]
    assert table.runs() == names
    # 200 images in batches of 32: 7 batches an epoch, so 12 steps take 2 epochs
    assert [(r["run"], r["epoch"]) for r in table.records] == [(n, e) for n in names
                                                               for e in (1, 2)]
    for r in table.final().records:
        assert r["steps"] == 12 and r["status"] in ("ok", "no progress")
        assert 0 <= r["single_acc"] <= 1 and r["single_agree"] == 1.0
        assert 0 <= r["val_acc"] <= 1 and r["train_loss"] > 0
    assert all(r["steps"] is None for r in table.records if r["epoch"] == 1)
    assert set(deep_cnn.COLUMNS) <= set(table.columns())
    assert RunTable.from_json(out / "runs.json").records == table.records
    with open(out / "runs.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 6 and {"steps", "single_acc", "single_agree", "variant"} <= set(rows[0])
    png = out / "deep_cnn.png"
    assert png.stat().st_size > 1000 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    written = sorted(p.name for p in out.iterdir() if p.name != ".lock")  # the sweep's lock
    assert written == ["deep_cnn.png", "runs.csv", "runs.json"]
    assert "single agree" in printed and "After 12 batches — no BN: training loss" in printed
    assert "0.9745" in printed  # the tutorial's figure, next to ours


def test_mnist_flag_reads_mnist(tmp_path, capsys):
    write_fake_mnist(tmp_path / "data", name="MNIST", num_train=200, num_val=100)
    table = deep_cnn.main(["--dataset", "mnist", "--data-root", str(tmp_path / "data"),
                           "--out", str(tmp_path / "out"), *QUICK[:3], "--batchsize", "32"])
    assert len(table.runs()) == 3 and all(r["steps"] == 12 for r in table.final().records)
    with pytest.raises(SystemExit, match=r"^error: MNIST not found in .*MNIST.raw"):
        deep_cnn.main(["--dataset", "mnist", "--data-root", str(tmp_path / "none"),
                       "--out", str(tmp_path / "out"), *QUICK])


def test_help_and_bad_flags_from_another_folder(tmp_path):
    def run(*flags):
        return subprocess.run([sys.executable, str(ROOT / "examples" / "deep_cnn.py"), *flags],
                              capture_output=True, text=True, cwd=tmp_path, timeout=120)

    r = run("--help")
    assert r.returncode == 0
    assert all(flag in r.stdout for flag in ("--steps", "--dataset", "--num-train", "--lr"))
    r = run("--steps", "0")
    assert r.returncode == 2 and "--steps: must be a positive integer, got 0" in r.stderr
    assert "Traceback" not in r.stderr
    assert not any(tmp_path.iterdir())  # nothing written


def test_parse_args_defaults_are_the_tutorials():
    args = deep_cnn.parse_args([])
    assert (args.steps, args.batchsize, args.lr, args.dataset) == (800, 64, 0.002,
                                                                  "fashion-mnist")
    assert args.out == "out/examples/deep_cnn" and args.epochs is None
