"""The chapter: scratch batch norm against torch's, the two nets, and the runnable module."""

import copy
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

import d2lai
from chapters.batch_norm import (
    BatchNormLayer,
    BLeNetConcise,
    BLeNetScratch,
    batch_norm,
    first_batch_norm,
)

ROOT = Path(__file__).resolve().parents[1]


def _pair(num_dims, c):
    """A scratch layer and torch's, with the same random gamma and beta."""
    ours = BatchNormLayer(c, num_dims)
    ref = nn.BatchNorm1d(c) if num_dims == 2 else nn.BatchNorm2d(c)
    with torch.no_grad():
        ref.weight.uniform_(0.5, 1.5)
        ref.bias.normal_()
        ours.gamma.copy_(ref.weight.view_as(ours.gamma))
        ours.beta.copy_(ref.bias.view_as(ours.beta))
    return ours, ref


def _input(num_dims, c, n=8):
    shape = (n, c) if num_dims == 2 else (n, c, 5, 6)
    return (torch.randn(shape) * 3 + 2).requires_grad_()


@pytest.mark.parametrize("num_dims", [2, 4])
def test_layer_matches_torch_in_training_and_eval(num_dims):
    torch.manual_seed(0)
    ours, ref = _pair(num_dims, 7)
    for _ in range(4):  # several steps of moving statistics
        X = _input(num_dims, 7)
        X2 = X.detach().clone().requires_grad_()
        y, y_ref = ours(X), ref(X2)
        assert torch.allclose(y, y_ref, atol=1e-5)
        w = torch.randn_like(y)
        (y * w).sum().backward()
        (y_ref * w).sum().backward()
        assert torch.allclose(X.grad, X2.grad, atol=1e-5)
        assert torch.allclose(ours.gamma.grad.flatten(), ref.weight.grad, atol=1e-4)
        assert torch.allclose(ours.beta.grad.flatten(), ref.bias.grad, atol=1e-5)
        for p in (*ours.parameters(), *ref.parameters()):
            p.grad = None
        assert torch.allclose(ours.moving_mean.flatten(), ref.running_mean, atol=1e-5)
        assert torch.allclose(ours.moving_var.flatten(), ref.running_var, atol=1e-5)
    ours.eval()
    ref.eval()
    X = _input(num_dims, 7, n=1)  # a batch of one is fine in eval mode
    X2 = X.detach().clone().requires_grad_()
    y, y_ref = ours(X), ref(X2)
    assert torch.allclose(y, y_ref, atol=1e-5)
    y.sum().backward()
    y_ref.sum().backward()
    assert torch.allclose(X.grad, X2.grad, atol=1e-5)
    assert torch.allclose(ours.gamma.grad.flatten(), ref.weight.grad, atol=1e-5)
    before = ours.moving_mean.clone()
    ours(X)
    assert torch.equal(before, ours.moving_mean)


def test_function_by_hand_both_modes():
    X = torch.tensor([[1.0, 2.0], [3.0, 6.0], [5.0, 10.0]])
    gamma, beta = torch.tensor([[2.0, 1.0]]), torch.tensor([[0.5, -1.0]])
    mm, mv = torch.zeros(1, 2), torch.ones(1, 2)
    Y, new_mm, new_mv = batch_norm(X, gamma, beta, mm, mv, eps=1e-12, momentum=0.1)
    mean, var = torch.tensor([[3.0, 6.0]]), torch.tensor([[8 / 3, 32 / 3]])
    assert torch.allclose(Y, gamma * (X - mean) / var.sqrt() + beta)
    assert torch.allclose(new_mm, 0.1 * mean)
    assert torch.allclose(new_mv, 0.9 + 0.1 * var * 3 / 2)  # unbiased in the moving average
    Y, same_mm, same_mv = batch_norm(X, gamma, beta, new_mm, new_mv, 1e-5, 0.1, train_mode=False)
    assert torch.allclose(Y, gamma * (X - new_mm) / torch.sqrt(new_mv + 1e-5) + beta)
    assert same_mm is new_mm and same_mv is new_mv


def test_only_gamma_and_beta_train_and_the_statistics_are_buffers():
    layer = BatchNormLayer(5, 4)
    assert [n for n, p in layer.named_parameters() if p.requires_grad] == ["gamma", "beta"]
    assert layer.gamma.shape == (1, 5, 1, 1) and BatchNormLayer(5, 2).gamma.shape == (1, 5)
    state = layer.state_dict()
    assert set(state) == {"gamma", "beta", "moving_mean", "moving_var"}
    assert torch.equal(state["moving_var"], torch.ones(1, 5, 1, 1))
    layer.to(torch.float64)
    assert layer.moving_mean.dtype == torch.float64 and layer.moving_var.dtype == torch.float64
    layer.to("meta")
    assert layer.moving_mean.device.type == "meta"


def test_moving_statistics_are_not_in_the_graph():
    layer = BatchNormLayer(3, 2)
    layer(torch.randn(4, 3, requires_grad=True)).sum().backward()
    assert not layer.moving_mean.requires_grad and layer.moving_mean.grad_fn is None


def _scratch_copy_of(concise):
    """The concise net with each torch BatchNorm replaced by a BatchNormLayer of equal state."""
    net = copy.deepcopy(concise.net)
    for i, layer in enumerate(net):
        if isinstance(layer, (nn.BatchNorm1d, nn.BatchNorm2d)):
            dims = 2 if isinstance(layer, nn.BatchNorm1d) else 4
            ours = BatchNormLayer(layer.num_features, dims)
            with torch.no_grad():
                for a, b in (("gamma", "weight"), ("beta", "bias"), ("moving_mean", "running_mean"),
                             ("moving_var", "running_var")):
                    getattr(ours, a).copy_(getattr(layer, b).view_as(getattr(ours, a)))
            net[i] = ours
    return net


def test_scratch_and_concise_layers_agree_inside_the_net():
    torch.manual_seed(0)
    concise = BLeNetConcise()
    scratch_net = _scratch_copy_of(concise)
    for _ in range(3):
        X = torch.rand(16, 1, 28, 28)
        assert torch.allclose(concise(X), scratch_net(X), atol=1e-5)
    concise.eval()
    scratch_net.eval()
    X = torch.rand(4, 1, 28, 28)
    assert torch.allclose(concise(X), scratch_net(X), atol=1e-5)


SCRATCH_LAYOUT = [
    (nn.Conv2d, (1, 6, 5, 1)), (BatchNormLayer, (6, 4)), (nn.Sigmoid, None),
    (nn.Conv2d, (6, 6, 2, 2)),
    (nn.Conv2d, (6, 16, 5, 1)), (BatchNormLayer, (16, 4)), (nn.Sigmoid, None),
    (nn.Conv2d, (16, 16, 2, 2)), (nn.Flatten, None),
    (nn.Linear, (256, 120)), (BatchNormLayer, (120, 2)), (nn.Sigmoid, None),
    (nn.Linear, (120, 84)), (BatchNormLayer, (84, 2)), (nn.Sigmoid, None),
    (nn.Linear, (84, 10)), (nn.Softmax, None),
]
CONCISE_LAYOUT = [
    (nn.Conv2d, (1, 6, 5, 1)), (nn.BatchNorm2d, 6), (nn.Sigmoid, None), (nn.MaxPool2d, (2, 2)),
    (nn.Conv2d, (6, 16, 5, 1)), (nn.BatchNorm2d, 16), (nn.Sigmoid, None), (nn.MaxPool2d, (2, 2)),
    (nn.Flatten, None),
    (nn.Linear, (256, 120)), (nn.BatchNorm1d, 120), (nn.Sigmoid, None),
    (nn.Linear, (120, 84)), (nn.BatchNorm1d, 84), (nn.Sigmoid, None),
    (nn.Linear, (84, 10)), (nn.Softmax, None),
]


def _describe(layer):
    if isinstance(layer, nn.Conv2d):
        return (layer.in_channels, layer.out_channels, layer.kernel_size[0], layer.stride[0])
    if isinstance(layer, nn.Linear):
        return (layer.in_features, layer.out_features)
    if isinstance(layer, BatchNormLayer):
        return (layer.num_features, layer.num_dims)
    if isinstance(layer, nn.modules.batchnorm._BatchNorm):
        return layer.num_features
    if isinstance(layer, nn.MaxPool2d):
        return (layer.kernel_size, layer.stride)
    return None


@pytest.mark.parametrize("cls, layout, count", [
    (BLeNetScratch, SCRATCH_LAYOUT, 46068), (BLeNetConcise, CONCISE_LAYOUT, 44878)])
def test_nets_layers_in_order_counts_and_outputs(cls, layout, count):
    model = cls()
    assert isinstance(model, d2lai.AbstractClassifier)
    assert [(type(m), _describe(m)) for m in model.net] == layout
    assert sum(p.numel() for p in model.parameters()) == count
    p = model(torch.rand(5, 1, 28, 28))
    assert p.shape == (5, 10) and torch.allclose(p.sum(1), torch.ones(5), atol=1e-6)
    assert cls(num_classes=3)(torch.rand(2, 1, 28, 28)).shape == (2, 3)


def test_first_batch_norm_parameters():
    gamma, beta = first_batch_norm(BLeNetScratch())
    assert torch.equal(gamma, torch.ones(6)) and torch.equal(beta, torch.zeros(6))
    assert first_batch_norm(BLeNetConcise())[0].shape == (6,)
    with pytest.raises(ValueError, match="no batch-norm layer"):
        first_batch_norm(nn.Linear(2, 2))


@pytest.mark.parametrize("make, match", [
    (lambda: batch_norm(torch.randn(2, 3, 4), *[torch.ones(1, 3, 1)] * 4, 1e-5, 0.1),
     "3-D tensor"),
    (lambda: BatchNormLayer(6, 3), "num_dims must be 2 .* or 4"),
    (lambda: BatchNormLayer(0, 2), "num_features"),
    (lambda: BatchNormLayer(6, 4)(torch.randn(2, 3, 5, 5)), "expected 6 channels, got 3"),
    (lambda: BatchNormLayer(6, 2)(torch.randn(2, 4)), "expected 6 features, got 4"),
    (lambda: BatchNormLayer(6, 4)(torch.randn(2, 6)), "expects 4-D input"),
    (lambda: BatchNormLayer(6, 2)(torch.randn(1, 6)), "more than one value per feature"),
    (lambda: batch_norm(torch.randn(1, 3), *[torch.ones(1, 3)] * 4, 1e-5, 0.1),
     "variance of a single sample"),
    (lambda: BLeNetScratch(num_classes=1), "num_classes"),
])
def test_errors_say_what_is_wrong(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_a_batch_of_one_is_fine_for_a_4d_layer_with_spatial_extent():
    layer = BatchNormLayer(2, 4)
    assert layer(torch.randn(1, 2, 3, 3)).shape == (1, 2, 3, 3)


def _run(args, env_extra=None):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MPLBACKEND": "Agg"}
    env.pop("D2LAI_DATA", None)
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "chapters.batch_norm", *args], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=300)


def test_cli_runs_the_chapter_end_to_end(fashion_root, tmp_path):
    out = tmp_path / "out"
    r = _run(["--data-root", str(fashion_root), "--epochs", "1", "--num-train", "300",
              "--num-val", "100", "--out", str(out), "--cpu"])
    assert r.returncode == 0, r.stderr
    lines = re.findall(r"^\[ Info: Epoch 1/1 · [\d.]+ s · Train Loss: [\d.]+, Train Acc: [\d.]+, "
                       r"Val Loss: [\d.]+, Val Acc: [\d.]+$", r.stdout, re.M)
    assert len(lines) == 2  # one epoch of each model, on stdout with the tables
    assert "Info" not in r.stderr
    assert "gamma = [" in r.stdout and "beta  = [" in r.stdout
    assert re.search(r"BLeNetScratch\s+1\s+[\d.]+\s+[\d.]+\s+[\d.]+", r.stdout)
    assert re.search(r"BLeNetConcise\s+1\s+[\d.]+\s+[\d.]+\s+[\d.]+", r.stdout)
    for name in ("scratch", "concise"):
        assert (out / f"{name}-board.png").stat().st_size > 1000
        assert (out / f"{name}-history.json").stat().st_size > 0


def test_cli_missing_data_is_a_clear_error(tmp_path):
    r = _run(["--data-root", str(tmp_path), "--epochs", "1"])
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert "Fashion-MNIST not found" in r.stderr and "train-images-idx3-ubyte" in r.stderr
    assert "--data-root" in r.stderr and "root=" not in r.stderr  # the CLI's words


def test_cli_bad_flags_are_clear_errors(fashion_root):
    for flags, message in ((["--epochs", "0"], "--epochs: must be a positive integer, got 0"),
                           (["--lr", "-1"], "--lr: Descent: lr must be a number in"),
                           (["--seed", "-3"], r"--seed: seed must be an integer in [0, 2**64"),
                           (["--seed", str(2**64)], "--seed: seed must be an integer in"),
                           (["--batchsize", "1"], "--batchsize: must be at least 2"),
                           (["--num-train", "1"], "--num-train: must be at least 2")):
        r = _run(["--data-root", str(fashion_root), *flags])
        assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr
    r = _run(["--model", "resnet"])
    assert r.returncode == 2 and "invalid choice" in r.stderr
    r = _run(["--help"])
    assert r.returncode == 0 and "--num-train" in r.stdout


def test_ctrl_c_in_the_first_model_skips_the_second(fashion_root, tmp_path, monkeypatch):
    import chapters.batch_norm as chapter

    def interrupted(self, batch):
        raise KeyboardInterrupt

    monkeypatch.setattr(chapter.BLeNetScratch, "training_step", interrupted)
    results = chapter.main(["--data-root", str(fashion_root), "--epochs", "2", "--cpu",
                            "--out", str(tmp_path), "--num-train", "100", "--num-val", "50"])
    assert list(results) == ["scratch"]
    assert results["scratch"]["metrics"]["interrupted"] is True


@pytest.mark.parametrize("kwargs, match", [
    ({"eps": 0.0}, r"eps must be a number in \(0, inf\), got 0.0"),
    ({"eps": -1e-5}, "eps must be"), ({"eps": float("nan")}, "eps must be"),
    ({"eps": float("inf")}, "eps must be"), ({"momentum": 1.5}, r"momentum must be a number in "
                                                                r"\[0, 1\], got 1.5"),
    ({"momentum": -0.1}, "momentum must be"), ({"momentum": float("nan")}, "momentum must be"),
    ({"momentum": "0.1"}, "momentum must be"),
])
def test_numeric_arguments_outside_their_domain_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        BatchNormLayer(6, 4, **kwargs)
    X = torch.randn(4, 3)
    p = torch.ones(1, 3)
    args = {"eps": 1e-5, "momentum": 0.1} | kwargs
    with pytest.raises(ValueError, match=match):
        batch_norm(X, p, p, p, p, args["eps"], args["momentum"])
    BatchNormLayer(6, 4, eps=1e-3, momentum=1.0)  # the edges that make sense are fine


def test_parameters_must_match_the_input_layout():
    X = torch.randn(8, 3)
    four_d = torch.ones(1, 3, 1, 1)
    with pytest.raises(ValueError, match=r"gamma must hold one value per feature of X, shaped "
                                         r"\(1, 3\) for input of shape \(8, 3\); "
                                         r"got \(1, 3, 1, 1\)"):
        batch_norm(X, four_d, four_d, four_d, four_d, 1e-5, 0.1)
    with pytest.raises(ValueError, match=r"moving_var must hold one value per channel"):
        batch_norm(torch.randn(8, 3, 4, 4), four_d, four_d, four_d, torch.ones(1, 4, 1, 1),
                   1e-5, 0.1)
    Y, *_ = batch_norm(X, torch.ones(3), torch.zeros(3), torch.zeros(3), torch.ones(3),
                       1e-5, 0.1)  # 1-D parameters broadcast right: accepted
    assert Y.shape == X.shape


def test_cli_refuses_an_out_it_cannot_write_before_training(fashion_root, tmp_path):
    (tmp_path / "file").write_text("x")
    r = _run(["--data-root", str(fashion_root), "--epochs", "1", "--out", str(tmp_path / "file")])
    assert r.returncode != 0 and "Traceback" not in r.stderr and "Train Loss" not in r.stdout
    assert f"error: --out {tmp_path / 'file'} is a file, not a folder" in r.stderr


def test_history_json_is_strict_when_a_run_diverged(fashion_root, tmp_path):
    import json

    import chapters.batch_norm as chapter

    chapter.main(["--data-root", str(fashion_root), "--epochs", "1", "--cpu", "--num-train",
                  "200", "--model", "scratch", "--lr", "3e38", "--out", str(tmp_path)])
    text = (tmp_path / "scratch-history.json").read_text()

    def refuse(constant):
        raise ValueError(f"not strict JSON: {constant}")

    saved = json.loads(text, parse_constant=refuse)
    assert saved["metrics"]["diverged"] and saved["metrics"]["train_loss"] is None


def test_the_chapter_runs_from_any_folder_once_installed(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    r = subprocess.run([sys.executable, "-m", "chapters.batch_norm", "--help"], cwd=tmp_path,
                       env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "--num-train" in r.stdout, r.stderr
    r = subprocess.run([sys.executable, "-c", "from chapters.batch_norm import BLeNetScratch; "
                        "print(BLeNetScratch().__class__.__name__)"], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.stdout.strip() == "BLeNetScratch", r.stderr
    assert list(tmp_path.iterdir()) == []
