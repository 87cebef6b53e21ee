"""examples/scratch_bn_mlp.py: the scratch batch_norm_1d against torch.nn.BatchNorm1d, the nets'
layer plans, and the comparison end to end on generated data."""

import json

import pytest
import torch
from torch import nn

from d2lai.runs import RunTable
from d2lai.testing import write_fake_mnist
from examples import scratch_bn_mlp as sb

QUICK = ["--cpu", "--epochs", "2", "--conv-epochs", "1", "--num-train", "128", "--num-val", "64",
         "--batchsize", "32"]
NAMES = ["MLP + scratch BN", "MLP", "conv + BN", "conv"]
TOL = dict(rtol=1e-5, atol=1e-5)


pytestmark = pytest.mark.usefixtures("one_thread")


def check_png(path):
    assert path.is_file() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", path


# --- the scratch function against torch -----------------------------------------------------

def test_one_step_by_hand_keeps_momentum_of_the_old_statistics():
    x = torch.tensor([[1.0, 2.0], [3.0, 6.0]])  # mean (2, 4), biased variance (1, 4)
    gamma, beta = torch.tensor([2.0, 3.0]), torch.tensor([0.5, -1.0])
    mean, var = torch.tensor([10.0, 20.0]), torch.tensor([5.0, 6.0])
    y = sb.batch_norm_1d(x, gamma, beta, True, mean, var, momentum=0.25)
    torch.testing.assert_close(y, torch.tensor([[2 * -1 / (1 + 1e-5) ** 0.5 + 0.5,
                                                 3 * -2 / (4 + 1e-5) ** 0.5 - 1],
                                                [2 * 1 / (1 + 1e-5) ** 0.5 + 0.5,
                                                 3 * 2 / (4 + 1e-5) ** 0.5 - 1]]))
    torch.testing.assert_close(mean, torch.tensor([0.25 * 10 + 0.75 * 2, 0.25 * 20 + 0.75 * 4]))
    torch.testing.assert_close(var, torch.tensor([0.25 * 5 + 0.75 * 1, 0.25 * 6 + 0.75 * 4]))
    y = sb.batch_norm_1d(x, gamma, beta, False, mean, var, momentum=0.25)
    torch.testing.assert_close(y, gamma * (x - mean) / torch.sqrt(var + 1e-5) + beta)


@pytest.mark.parametrize("momentum", [0.1, 0.9])
def test_scratch_layer_matches_torch_batchnorm1d(momentum):
    torch.manual_seed(0)
    n, features = 8, 5
    layer = sb.BatchNorm1dScratch(features, momentum=momentum)
    # torch weights the batch by its momentum: ours (the share kept of the old) is 1 - torch's
    ref = nn.BatchNorm1d(features, eps=1e-5, momentum=1 - momentum)
    with torch.no_grad():
        ref.weight.copy_(layer.gamma)
        ref.bias.copy_(layer.beta)
        ref.running_var.zero_()  # the tutorial's start, 0 (torch's is 1)
    for _ in range(4):
        x = torch.randn(n, features) * 3 + 2
        xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
        ya, yb = layer(xa), ref(xb)
        torch.testing.assert_close(ya, yb, **TOL)
        weights = torch.randn(n, features)
        (ya * weights).sum().backward()
        (yb * weights).sum().backward()
        torch.testing.assert_close(xa.grad, xb.grad, **TOL)
    torch.testing.assert_close(layer.gamma.grad, ref.weight.grad, **TOL)
    torch.testing.assert_close(layer.beta.grad, ref.bias.grad, **TOL)
    torch.testing.assert_close(layer.moving_mean, ref.running_mean, **TOL)
    # torch averages the unbiased batch variance, n / (n - 1) times the tutorial's biased one;
    # from a start of 0 the moving averages differ by that factor exactly
    torch.testing.assert_close(layer.moving_var * n / (n - 1), ref.running_var, **TOL)
    assert not torch.allclose(layer.moving_var, ref.running_var, **TOL)

    layer.eval()
    ref.eval()
    with torch.no_grad():
        ref.running_var.copy_(layer.moving_var)
    before = layer.moving_mean.clone(), layer.moving_var.clone()
    x = torch.randn(1, features)  # evaluation takes a batch of one
    torch.testing.assert_close(layer(x), ref(x), **TOL)
    assert all(torch.equal(a, b) for a, b in zip(before, (layer.moving_mean, layer.moving_var),
                                                  strict=True))


def test_the_layer_holds_parameters_and_buffers_as_the_tutorial_starts_them():
    layer = sb.BatchNorm1dScratch(100)
    assert [n for n, _ in layer.named_parameters()] == ["gamma", "beta"]
    assert [n for n, _ in layer.named_buffers()] == ["moving_mean", "moving_var"]
    assert torch.count_nonzero(layer.moving_mean) == torch.count_nonzero(layer.moving_var) == 0
    assert layer.gamma.std() > 0.5  # drawn from N(0, 1), not ones
    assert set(layer.state_dict()) == {"gamma", "beta", "moving_mean", "moving_var"}


@pytest.mark.parametrize("call, message", [
    (lambda: sb.batch_norm_1d(torch.ones(1, 3), torch.ones(3), torch.zeros(3), True,
                              torch.zeros(3), torch.zeros(3)), "a training batch of 2 or more"),
    (lambda: sb.batch_norm_1d(torch.ones(4, 3), torch.ones(2), torch.zeros(3), True,
                              torch.zeros(3), torch.zeros(3)), r"gamma must have shape \(3,\)"),
    (lambda: sb.batch_norm_1d(torch.ones(4, 3, 2), torch.ones(3), torch.zeros(3), True,
                              torch.zeros(3), torch.zeros(3)), r"x of shape \(N, features\)"),
    (lambda: sb.batch_norm_1d(torch.ones(4, 3), torch.ones(3), torch.zeros(3), True,
                              torch.zeros(3), torch.zeros(3), momentum=1.5),
     r"momentum must be a number in \[0, 1\], got 1.5"),
    (lambda: sb.BatchNorm1dScratch(0), "num_features must be a positive integer"),
])
def test_bad_input_is_refused_with_what_came(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# --- the nets -------------------------------------------------------------------------------

def test_layer_plans():
    mlp = [type(m) for m in sb.MLP(True).net]
    assert mlp == [nn.Flatten, nn.Linear, sb.BatchNorm1dScratch, nn.ReLU, nn.Linear]
    assert [type(m) for m in sb.MLP(False).net] == [nn.Flatten, nn.Linear, nn.ReLU, nn.Linear]
    sizes = [(m.in_features, m.out_features) for m in sb.MLP(True).net if isinstance(m, nn.Linear)]
    assert sizes == [(784, 100), (100, 10)]
    assert sb.MLP(True, momentum=0.9).net[2].momentum == 0.9
    conv = sb.ConvNet(True).net
    assert [type(m) for m in conv] == [nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.MaxPool2d,
                                       nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.MaxPool2d,
                                       nn.Flatten, nn.Linear]
    assert (conv[0].kernel_size, conv[0].padding, conv[0].out_channels) == ((3, 3), (1, 1), 6)
    assert (conv[4].kernel_size, conv[4].out_channels, conv[9].in_features) == ((5, 5), 16, 400)
    plain = sb.ConvNet(False).net
    assert not any(isinstance(m, nn.BatchNorm2d) for m in plain) and len(plain) == 8
    X = torch.randn(3, 1, 28, 28)
    for model in (sb.MLP(True), sb.MLP(False), sb.ConvNet(True), sb.ConvNet(False)):
        assert model(X).shape == (3, 10) and model.output_kind == "logits"


# --- end to end -----------------------------------------------------------------------------

def test_main_end_to_end(fashion_root, tmp_path, capsys):
    out = tmp_path / "out"
    rows = sb.main(["--data-root", str(fashion_root), "--out", str(out), *QUICK])
    assert [r["run"] for r in rows.records] == NAMES
    assert set(rows.columns()) == set(sb.SUMMARY) | {"net", "batch_norm"}
    assert [r["epochs"] for r in rows.records] == [2, 2, 1, 1]
    assert [r["batch_norm"] for r in rows.records] == ["scratch", "none", "BatchNorm2d", "none"]
    for r in rows.records:
        assert r["status"] == "ok" and 0 <= r["val_acc_1"] <= 1 and r["train_loss"] > 0
    text = capsys.readouterr().out
    assert "the scratch layer's moving mean, first 10 features" in text
    assert "The MLP reaches validation accuracy" in text and "The conv net" in text
    table = RunTable.from_json(out / "runs.json")
    assert len(table) == 6 and table.runs() == NAMES
    assert rows.records[0]["val_acc_1"] == table.records[0]["val_acc"]
    assert len(RunTable.from_csv(out / "runs.csv")) == 6
    assert [r["run"] for r in json.loads((out / "summary.json").read_text())["records"]] == NAMES
    assert len(RunTable.from_csv(out / "summary.csv")) == 4
    for name in ("curves.png", "boards/MLP-scratch-BN.png", "boards/MLP.png",
                 "boards/conv-BN.png", "boards/conv.png"):
        check_png(out / name)
    assert sorted(p.name for p in out.iterdir()) == [
        "boards", "curves.png", "runs.csv", "runs.json", "summary.csv", "summary.json"]


def test_mnist_flag_reads_mnist(tmp_path):
    write_fake_mnist(tmp_path / "data", name="MNIST")
    rows = sb.main(["--dataset", "mnist", "--data-root", str(tmp_path / "data"), "--out",
                    str(tmp_path / "out"), "--cpu", "--epochs", "1", "--conv-epochs", "1",
                    "--num-train", "64", "--num-val", "64", "--batchsize", "32"])
    assert len(rows) == 4 and all(r["status"] == "ok" for r in rows.records)


def test_help_and_bad_input(capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_:
        sb.main(["--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    for flag in ("--dataset", "--conv-epochs", "--lr", "--momentum", "--epochs", "--num-train"):
        assert flag in text
    with pytest.raises(SystemExit) as exit_:
        sb.main(["--momentum", "1.5"])
    assert exit_.value.code == 2
    assert "--momentum must lie in [0, 1], got 1.5" in capsys.readouterr().err
    (tmp_path / "file").write_text("")
    with pytest.raises(SystemExit, match="error: root .* is a file"):
        sb.main(["--data-root", str(tmp_path / "file"), "--out", str(tmp_path / "out")])
