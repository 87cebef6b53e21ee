"""`d2lai.torch`, name by name, against the PyTorch edition's documented behaviour."""

import inspect
import logging
import math
import os
import subprocess
import sys

import matplotlib
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from d2lai import torch as d2l


def test_import_line_and_no_eager_import():
    assert d2l.__name__ == "d2lai.torch" and d2l.nn_Module is nn.Module
    code = "import sys, d2lai; assert 'd2lai.torch' not in sys.modules; print('ok')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=os.path.dirname(os.path.dirname(__file__)))
    assert out.stdout.strip() == "ok", out.stderr


# --- HyperParameters, add_to_class ------------------------------------------------------------

def test_save_hyperparameters_sets_the_arguments_but_ignored_ones():
    class B(d2l.HyperParameters):  # the edition's example
        def __init__(self, a, b, c, _private=0):
            self.save_hyperparameters(ignore=["c"])

    b = B(a=1, b=2, c=3)
    assert (b.a, b.b) == (1, 2) and not hasattr(b, "c") and not hasattr(b, "_private")
    assert b.hparams == {"a": 1, "b": 2}

    class Net(d2l.Module):
        def __init__(self, lr, num_hiddens=8):
            super().__init__()
            self.save_hyperparameters()

    net = Net(lr=0.5)
    assert (net.lr, net.num_hiddens) == (0.5, 8) and net.hparams == {"lr": 0.5, "num_hiddens": 8}
    assert (net.plot_train_per_epoch, net.plot_valid_per_epoch) == (2, 1)

    class Bad(d2l.HyperParameters):
        def __init__(self, a):
            self.save_hyperparameters(ignore="a")

    with pytest.raises(TypeError, match=r"ignore must be a list of argument names"):
        Bad(1)


def test_add_to_class_adds_and_replaces_methods():
    class A:
        def __init__(self):
            self.b = 1

    a = A()

    @d2l.add_to_class(A)
    def do(self):
        return f"b is {self.b}"

    assert a.do() == "b is 1" and do(a) == "b is 1"  # the function keeps its name too

    @d2l.add_to_class(A)
    def do(self):  # noqa: F811 (replaced, as the chapters do)
        return "again"

    assert a.do() == "again"
    with pytest.raises(TypeError, match="add_to_class takes a class"):
        d2l.add_to_class(a)


# --- ProgressBoard ------------------------------------------------------------------------------

def test_board_signature_is_the_editions():
    params = inspect.signature(d2l.ProgressBoard).parameters
    assert {k: p.default for k, p in params.items()} == {
        "xlabel": None, "ylabel": None, "xlim": None, "ylim": None, "xscale": "linear",
        "yscale": "linear", "ls": ["-", "--", "-.", ":"], "colors": ["C0", "C1", "C2", "C3"],
        "fig": None, "axes": None, "figsize": (3.5, 2.5), "display": True}
    assert list(inspect.signature(d2l.ProgressBoard.draw).parameters) == [
        "self", "x", "y", "label", "every_n"]


def test_draw_averages_every_n_points():
    board = d2l.ProgressBoard("x")  # the edition's example
    xs = np.arange(0, 10, 0.1)
    for x in xs:
        board.draw(x, np.sin(x), "sin", every_n=2)
        board.draw(x, np.cos(x), "cos", every_n=10)
    sin, cos = board.data["sin"], board.data["cos"]
    assert len(sin) == 50 and len(cos) == 10
    np.testing.assert_allclose([p.x for p in sin], xs.reshape(-1, 2).mean(1))
    np.testing.assert_allclose([p.y for p in sin], np.sin(xs).reshape(-1, 2).mean(1))
    np.testing.assert_allclose([p.y for p in cos], np.cos(xs).reshape(-1, 10).mean(1))
    board.draw(0, torch.tensor(1.0), "t", every_n=3)
    board.draw(1, torch.tensor([2.0]), "t", every_n=3)
    assert "t" not in board.data  # 2 of 3 points: nothing drawn yet
    board.draw(2, 6, "t", every_n=3)
    board.draw(3, 5.0, "t", every_n=3)
    assert board.data["t"] == [(1.0, 3.0)] and len(board.raw_points["t"]) == 1


@pytest.mark.parametrize("kwargs, error, message", [
    ({"every_n": 0}, ValueError, "every_n must be a positive integer, got 0"),
    ({"every_n": 1.5}, ValueError, "every_n must be a positive integer"),
    ({"y": torch.ones(3)}, ValueError, r"one-element real tensor, got a torch.float32 tensor"),
    ({"y": "high"}, TypeError, "y must be a number or a one-element tensor, got str"),
    ({"label": ""}, TypeError, "label must be a non-empty str"),
])
def test_draw_refuses_bad_input(kwargs, error, message):
    args = {"x": 1, "y": 2.0, "label": "loss", "every_n": 1} | kwargs
    with pytest.raises(error, match=message):
        d2l.ProgressBoard().draw(**args)


def test_board_arguments_are_checked():
    with pytest.raises(ValueError, match=r"ls\[1\] is not a matplotlib line style: 'wavy'"):
        d2l.ProgressBoard(ls=["-", "wavy"])
    with pytest.raises(ValueError, match="xlim must be None or"):
        d2l.ProgressBoard(xlim=3)
    with pytest.raises(ValueError, match="yscale must be one of"):
        d2l.ProgressBoard(yscale="cubic")


def test_board_draws_with_the_editions_styles_and_saves_only_when_asked(tmp_path,
                                                                        monkeypatch):
    monkeypatch.chdir(tmp_path)
    board = d2l.ProgressBoard(xlabel="epoch", ylabel="loss", xlim=[0, 4], yscale="log")
    for x in range(1, 5):
        board.draw(x, 1 / x, "train_loss")
        board.draw(x, 2 / x, "val_loss")
    board.draw(5, 0.1, "a")
    board.draw(5, 0.1, "b")
    board.draw(5, 0.1, "c")  # a fifth series: the styles cycle (the edition drops it)
    assert list(tmp_path.iterdir()) == []
    ax = board.figure().axes[0]
    lines = [line for line in ax.get_lines() if not line.get_label().startswith("_")]
    assert [line.get_label() for line in lines] == ["train_loss", "val_loss", "a", "b", "c"]
    assert [line.get_linestyle() for line in lines] == ["-", "--", "-.", ":", "-"]
    assert [matplotlib.colors.to_hex(line.get_color()) for line in lines[:2]] == \
        [matplotlib.colors.to_hex("C0"), matplotlib.colors.to_hex("C1")]
    assert ax.get_xlim() == (0, 4) and ax.get_ylabel() == "loss" and ax.get_yscale() == "log"
    path = board.save(tmp_path / "board.png")
    assert [p.name for p in tmp_path.iterdir()] == ["board.png"] and path.endswith("board.png")


def test_board_is_live_in_jupyter_unless_display_is_off(monkeypatch):
    shown = []
    monkeypatch.setattr("d2lai.board.in_notebook", lambda: True)
    monkeypatch.setattr(d2l.ProgressBoard, "_show", lambda self: shown.append(len(self.series)))
    board = d2l.ProgressBoard()
    for x in range(4):
        board.draw(x, x, "loss", every_n=2)
    assert shown == [1, 1]  # once per drawn point, not per raw point
    quiet = d2l.ProgressBoard(display=False)
    quiet.draw(0, 1, "loss")
    assert shown == [1, 1] and quiet.data == {"loss": [(0.0, 1.0)]}


def test_board_draws_into_given_axes():
    from matplotlib.figure import Figure

    axes = Figure().add_subplot()
    board = d2l.ProgressBoard(axes=axes)
    board.draw(0, 1, "loss")
    board.draw(1, 2, "loss")
    assert [tuple(line.get_ydata()) for line in axes.get_lines()] == [(1.0, 2.0)]


# --- Module, Classifier ---------------------------------------------------------------------

def test_module_needs_a_trainer_to_plot_and_an_lr_to_optimise():
    model = d2l.LinearRegression(lr=0.1)
    batch = (torch.randn(4, 2), torch.randn(4, 1))
    with pytest.raises(RuntimeError, match="plot needs a trainer: train the model with"):
        model.training_step(batch)
    opt = model.configure_optimizers()
    assert isinstance(opt, torch.optim.SGD) and opt.param_groups[0]["lr"] == 0.1

    class NoLr(d2l.Module):
        def __init__(self):
            super().__init__()
            self.net = nn.Linear(2, 1)

    with pytest.raises(AttributeError, match="configure_optimizers uses self.lr"):
        d2l.Module.configure_optimizers(NoLr())
    with pytest.raises(NotImplementedError, match="has no self.net"):
        d2l.Module()(batch[0])
    with pytest.raises(ValueError, match="plot_train_per_epoch must be a positive number"):
        d2l.Module(plot_train_per_epoch=0)


def test_apply_init_shapes_lazy_layers_then_initialises():
    model = d2l.LeNet()
    assert model.net[0].has_uninitialized_params()
    model.net.apply(d2l.init_cnn)  # lazy layers are left alone, as the edition's are
    assert model.net[0].has_uninitialized_params()
    X = torch.randn(2, 1, 28, 28)
    with pytest.raises(TypeError, match=r"apply_init takes a list of input tensors, e.g. \[X\]"):
        model.apply_init(X, d2l.init_cnn)
    seen = []
    model.apply_init([X], lambda m: seen.append(type(m).__name__))
    assert model.net[0].weight.shape == (6, 1, 5, 5) and model.net[-1].weight.shape == (10, 84)
    assert seen[:2] == ["Conv2d", "Sigmoid"] and seen[-1] == "Sequential"
    torch.manual_seed(0)
    model.apply_init([X], d2l.init_cnn)
    for layer in (model.net[0], model.net[7]):  # Xavier-uniform: |w| <= sqrt(6/(fan_in+fan_out))
        fan_out, fan_in = layer.weight.shape[0], layer.weight[0].numel()
        bound = math.sqrt(6 / (fan_in + fan_out * layer.weight[0, 0].numel()))
        largest = float(layer.weight.detach().abs().max())
        assert 0.8 * bound < largest <= bound


def test_classifier_loss_is_cross_entropy_and_accuracy_counts_hits():
    model = d2l.Classifier()
    assert model.output_kind == "logits"
    Y_hat, Y = torch.randn(6, 4), torch.tensor([0, 1, 2, 3, 0, 1])
    torch.testing.assert_close(model.loss(Y_hat, Y), F.cross_entropy(Y_hat, Y))
    torch.testing.assert_close(model.loss(Y_hat, Y, averaged=False),
                               F.cross_entropy(Y_hat, Y, reduction="none"))
    seq = torch.randn(2, 3, 5)  # outputs (batch, steps, classes), as the RNN chapters have
    labels = torch.randint(0, 5, (2, 3))
    torch.testing.assert_close(model.loss(seq, labels),
                               F.cross_entropy(seq.reshape(-1, 5), labels.reshape(-1)))
    scores = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.7, 0.3], [0.4, 0.6]])
    truth = torch.tensor([0, 0, 0, 1])
    assert model.accuracy(scores, truth).item() == 0.75
    assert model.accuracy(scores, truth, averaged=False).tolist() == [1.0, 0.0, 1.0, 1.0]
    with pytest.raises(ValueError, match="4 predictions but 3 labels"):
        model.accuracy(scores, truth[:3])


def test_layer_summary_prints_each_layers_output_shape(capsys):
    d2l.LeNet().layer_summary((1, 1, 28, 28))
    rows = [line.split("output shape:\t") for line in capsys.readouterr().out.splitlines()]
    assert [(name.strip(), shape.strip()) for name, shape in rows] == [
        ("Conv2d", "torch.Size([1, 6, 28, 28])"), ("Sigmoid", "torch.Size([1, 6, 28, 28])"),
        ("AvgPool2d", "torch.Size([1, 6, 14, 14])"), ("Conv2d", "torch.Size([1, 16, 10, 10])"),
        ("Sigmoid", "torch.Size([1, 16, 10, 10])"), ("AvgPool2d", "torch.Size([1, 16, 5, 5])"),
        ("Flatten", "torch.Size([1, 400])"), ("Linear", "torch.Size([1, 120])"),
        ("Sigmoid", "torch.Size([1, 120])"), ("Linear", "torch.Size([1, 84])"),
        ("Sigmoid", "torch.Size([1, 84])"), ("Linear", "torch.Size([1, 10])")]


def test_layer_summary_leaves_batch_norm_as_it_was(capsys):
    class Net(d2l.Classifier):
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(nn.Flatten(), nn.LazyLinear(8), nn.LazyBatchNorm1d(),
                                     nn.LazyLinear(3))

    model = Net()
    model.layer_summary((1, 1, 4, 4))  # a batch of one passes batch norm
    assert "BatchNorm1d output shape:\t torch.Size([1, 8])" in capsys.readouterr().out
    assert model.training and int(model.net[2].num_batches_tracked) == 0
    assert torch.equal(model.net[2].running_mean, torch.zeros(8))


def test_sgd_step_is_the_formula():
    w = torch.tensor([1.0, -2.0], requires_grad=True)
    b = torch.tensor([0.5], requires_grad=True)
    unused = torch.tensor([3.0], requires_grad=True)
    opt = d2l.SGD((p for p in (w, b, unused)), lr=0.1)
    assert opt.lr == 0.1 and len(opt.params) == 3
    (w ** 2).sum().add(3 * b.sum()).backward()
    opt.step()
    torch.testing.assert_close(w.detach(), torch.tensor([1.0 - 0.1 * 2, -2.0 + 0.1 * 4]))
    torch.testing.assert_close(b.detach(), torch.tensor([0.5 - 0.1 * 3]))
    assert unused.item() == 3.0 and unused.grad is None
    opt.zero_grad()
    assert w.grad.abs().sum() == 0 and b.grad.abs().sum() == 0
    with pytest.raises(ValueError, match="lr must be a non-negative number, got -1"):
        d2l.SGD([w], lr=-1)


def test_linear_regression_models():
    torch.manual_seed(0)
    scratch = d2l.LinearRegressionScratch(3, lr=0.1, sigma=0.01)
    assert scratch.w.shape == (3, 1) and torch.equal(scratch.b, torch.zeros(1))
    assert [p.shape for p in scratch.parameters()] == [(3, 1), (1,)]
    assert isinstance(scratch.configure_optimizers(), d2l.SGD)
    X, y = torch.randn(5, 3), torch.randn(5, 1)
    torch.testing.assert_close(scratch.loss(scratch(X), y),
                               ((X @ scratch.w + scratch.b - y) ** 2 / 2).mean())
    concise = d2l.LinearRegression(lr=0.03)
    concise(X)  # the layer takes its shape, and the edition's initialisation
    w, b = concise.get_w_b()
    assert w.shape == (1, 3) and b.item() == 0 and float(w.abs().max()) < 0.05
    torch.testing.assert_close(concise.loss(concise(X), y), F.mse_loss(concise(X), y))


def test_corr2d_and_the_blocks():
    X = torch.arange(9.0).reshape(3, 3)
    K = torch.tensor([[0.0, 1.0], [2.0, 3.0]])
    assert d2l.corr2d(X, K).tolist() == [[19.0, 25.0], [37.0, 43.0]]  # the edition's example
    X = torch.randn(6, 8)
    torch.testing.assert_close(d2l.corr2d(X, K), F.conv2d(X[None, None], K[None, None])[0, 0])
    assert d2l.Residual(3)(torch.randn(2, 3, 6, 6)).shape == (2, 3, 6, 6)
    assert d2l.Residual(6, use_1x1conv=True, strides=2)(torch.randn(2, 3, 6, 6)).shape \
        == (2, 6, 3, 3)
    assert d2l.ResNeXtBlock(32, 16, 1)(torch.randn(4, 32, 96, 80)).shape == (4, 32, 96, 80)
    assert d2l.ResNeXtBlock(16, 4, 1, use_1x1conv=True, strides=2)(
        torch.randn(2, 8, 6, 6)).shape == (2, 16, 3, 3)


# --- devices --------------------------------------------------------------------------------------

def test_gpu_helpers_on_a_machine_without_gpus(monkeypatch):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    assert d2l.cpu() == torch.device("cpu") and d2l.gpu() == torch.device("cuda:0")
    assert d2l.gpu(1) == torch.device("cuda:1") and d2l.num_gpus() == 0
    assert d2l.try_gpu() == torch.device("cpu")
    with pytest.warns(UserWarning, match=r"try_gpu\(10\): .* needs 11 GPUs and PyTorch sees 0"):
        assert d2l.try_gpu(10) == torch.device("cpu")
    assert d2l.try_all_gpus() == [torch.device("cpu")]
    assert d2l.Trainer(max_epochs=1, num_gpus=1).gpus == []
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert d2l.try_gpu(1) == torch.device("cuda:1")
    with pytest.warns(UserWarning, match="needs 3 GPUs and PyTorch sees 2: using the CPU"):
        assert d2l.try_gpu(2) == torch.device("cpu")
    assert d2l.try_all_gpus() == [torch.device("cuda:0"), torch.device("cuda:1")]
    assert d2l.Trainer(max_epochs=1, num_gpus=1).gpus == [torch.device("cuda:0")]
    with pytest.raises(ValueError, match="i must be a non-negative integer, got -1"):
        d2l.gpu(-1)


# --- data ----------------------------------------------------------------------------------------

def test_data_module_root_and_tensor_loader(tmp_path, monkeypatch):
    monkeypatch.setenv("D2LAI_DATA", str(tmp_path))
    data = d2l.DataModule()
    assert data.root == str(tmp_path) and data.num_workers == 4
    with pytest.raises(NotImplementedError, match="must define get_dataloader"):
        data.train_dataloader()
    with pytest.raises(ValueError, match="needs self.batch_size, a positive integer"):
        data.get_tensorloader((torch.zeros(3),), train=True)
    data.batch_size = 4
    X, y = torch.arange(10.0).reshape(10, 1), torch.arange(10)
    loader = data.get_tensorloader((X, y), False, indices=slice(2, 9))
    assert len(loader) == 2 and [b[1].tolist() for b in loader] == [[2, 3, 4, 5], [6, 7, 8]]
    shuffled = data.get_tensorloader((X, y), True)
    assert sorted(t for _, b in shuffled for t in b.tolist()) == list(range(10))


def test_synthetic_regression_data_is_the_editions():
    torch.manual_seed(0)
    w = torch.tensor([2, -3.4])
    data = d2l.SyntheticRegressionData(w=w, b=4.2, num_train=100, num_val=50, batch_size=8)
    torch.manual_seed(0)
    X = torch.randn(150, 2)
    y = X @ w.reshape(-1, 1) + 4.2 + torch.randn(150, 1) * 0.01
    torch.testing.assert_close(data.X, X)
    torch.testing.assert_close(data.y, y)
    assert data.w is w and (data.b, data.noise, data.batch_size) == (4.2, 0.01, 8)
    assert len(data.train_dataloader()) == 13 and len(data.val_dataloader()) == 7
    Xb, yb = next(iter(data.val_dataloader()))
    torch.testing.assert_close(Xb, X[100:108])
    with pytest.raises(ValueError, match="num_train must be a positive integer"):
        d2l.SyntheticRegressionData(w=w, b=4.2, num_train=0)


def test_fashion_mnist_batches_items_and_labels(fashion_root, monkeypatch):
    monkeypatch.setenv("D2LAI_DATA", str(fashion_root))
    data = d2l.FashionMNIST(resize=(32, 32))
    assert (len(data.train), len(data.val)) == (600, 200)
    assert str(data.root) == str(fashion_root) and data.batch_size == 64
    image, label = data.train[0]
    assert image.shape == (1, 32, 32) and image.dtype == torch.float32 and isinstance(label, int)
    assert 0 <= float(image.min()) and float(image.max()) <= 1
    assert data.train[-1][1] == int(data._data.train[1][-1])
    with pytest.raises(IndexError):
        data.val[200]
    X, y = next(iter(data.train_dataloader()))
    assert X.shape == (64, 1, 32, 32) and X.dtype == torch.float32
    assert y.shape == (64,) and y.dtype == torch.int64
    assert data.text_labels([0, 9, torch.tensor(3)]) == ["t-shirt", "ankle boot", "dress"]
    assert len(d2l.FashionMNIST(batch_size=128).val_dataloader()) == 2  # 200 = 128 + 72
    other = d2l.FashionMNIST(root=fashion_root)
    assert other.train[5][0].shape == (1, 28, 28)
    torch.testing.assert_close(other.train[5][0][0], data._data.train[0][5].float() / 255)


def test_fashion_mnist_folder_is_the_one_torchvision_reads(fashion_root, monkeypatch):
    """The chapter's own FashionMNIST (torchvision over `self.root`) finds the same files."""
    import torchvision

    monkeypatch.setenv("D2LAI_DATA", str(fashion_root))
    root = d2l.DataModule().root
    theirs = torchvision.datasets.FashionMNIST(root=root, train=True, download=False)
    ours = d2l.FashionMNIST()
    assert len(theirs) == len(ours.train) == 600
    assert theirs[7][1] == ours.train[7][1]


def test_visualize_and_show_images_headless(fashion_root):
    data = d2l.FashionMNIST(root=fashion_root)
    batch = next(iter(data.val_dataloader()))
    data.visualize(batch)
    axes = d2l.plt.gcf().axes
    assert len(axes) == 8 and axes[0].get_title() == data.text_labels(batch[1][:1])[0]
    d2l.plt.close("all")
    axes = d2l.show_images(batch[0][:6, 0], 2, 3, titles=list("abcdef"), scale=1)
    assert len(axes) == 6 and axes[5].get_title() == "f"
    assert tuple(d2l.plt.gcf().get_size_inches()) == (3, 2)
    d2l.plt.close("all")


# --- Trainer -------------------------------------------------------------------------------------

def test_trainer_arguments_are_checked_where_they_enter():
    params = inspect.signature(d2l.Trainer).parameters
    assert {k: p.default for k, p in params.items()} == {
        "max_epochs": inspect.Parameter.empty, "num_gpus": 0, "gradient_clip_val": 0,
        "precision": "32", "compile": False}  # the last two d2lai's (d2lai.precision)
    for kwargs, message in (({"max_epochs": 0}, "max_epochs must be a positive integer"),
                            ({"max_epochs": 1, "num_gpus": -1}, "num_gpus must be a non-neg"),
                            ({"max_epochs": 1, "gradient_clip_val": -1}, "gradient_clip_val"),
                            ({"max_epochs": 1, "precision": "64"}, "precision must be"),
                            ({"max_epochs": 1, "compile": 1}, "compile must be True or")):
        with pytest.raises(ValueError, match=message):
            d2l.Trainer(**kwargs)
    data = d2l.SyntheticRegressionData(w=torch.tensor([1.0]), b=0.0)
    trainer = d2l.Trainer(max_epochs=1)
    with pytest.raises(TypeError, match="model must be a d2l.Module"):
        trainer.fit(nn.Linear(1, 1), data)
    with pytest.raises(TypeError, match="data must be a d2l.DataModule"):
        trainer.fit(d2l.LinearRegression(lr=0.1), [data.X, data.y])

    class NoOptimiser(d2l.LinearRegression):
        def configure_optimizers(self):
            return None

    with pytest.raises(TypeError, match=r"configure_optimizers\(\) returned NoneType: it must"):
        trainer.fit(NoOptimiser(lr=0.1), data)


def test_fit_runs_d2lais_loop_and_feeds_the_board(fashion_root, caplog):
    caplog.set_level(logging.INFO, logger="d2lai")

    class Recorded(d2l.SoftmaxRegression):
        """Keeps the loss of every training and validation batch."""

        def training_step(self, batch):
            loss = super().training_step(batch)
            self.train_losses.append(loss.item())
            return loss

        def validation_step(self, batch):
            loss, acc = super().validation_step(batch)
            self.val_losses.append(loss.item())
            return loss, acc

    torch.manual_seed(0)
    data = d2l.FashionMNIST(batch_size=128, root=fashion_root)  # 5 training, 2 val batches
    model = Recorded(num_outputs=10, lr=0.1)
    model.train_losses, model.val_losses = [], []
    trainer = d2l.Trainer(max_epochs=2)
    assert trainer.fit(model, data) is None
    # every_n = int(5 batches / 2 plots) = 2: the means of batches (0, 1), (2, 3), then (4 of
    # epoch 1, 0 of epoch 2), ...; x is the mean of the batches' fractions of an epoch done
    drawn = model.board.data["train_loss"]
    assert [p.x for p in drawn] == pytest.approx([0.1, 0.5, 0.9, 1.3, 1.7])
    assert [p.y for p in drawn] == pytest.approx(
        [np.mean(model.train_losses[i:i + 2]) for i in range(0, 10, 2)])
    val = model.board.data["val_loss"]
    assert [p.x for p in val] == [1, 2]
    assert [p.y for p in val] == pytest.approx(
        [np.mean(model.val_losses[0:2]), np.mean(model.val_losses[2:4])])
    # the log and the metrics are over the whole validation set: weighted by batch size
    metrics = trainer.metrics
    assert metrics.val_loss == pytest.approx(
        (128 * model.val_losses[2] + 72 * model.val_losses[3]) / 200)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Epoch ")]
    assert len(lines) == 2 and lines[1].endswith(f"Val Acc: {metrics.val_acc:.4f}")
    assert trainer.optim is trainer.optimizer and trainer.epoch == 2
    assert next(model.parameters()).device.type == "cpu"


def test_fit_plots_even_one_batch_an_epoch():
    torch.manual_seed(0)
    data = d2l.SyntheticRegressionData(w=torch.tensor([1.0, 2.0]), b=0.5, num_train=20,
                                       num_val=10)
    model = d2l.LinearRegression(lr=0.1)
    d2l.Trainer(max_epochs=3).fit(model, data)
    # 1 batch, 2 plots an epoch: every_n would be int(0.5) = 0 (never drawn); here it is 1
    assert [p.x for p in model.board.data["train_loss"]] == [0, 1, 2]


def test_fit_stops_on_divergence_and_on_ctrl_c(fashion_root, caplog):
    data = d2l.SyntheticRegressionData(w=torch.tensor([1.0, 2.0]), b=0.5)
    trainer = d2l.Trainer(max_epochs=3)
    trainer.fit(d2l.LinearRegression(lr=1e6), data)
    assert trainer.metrics.diverged and "diverged at epoch 1" in caplog.text

    class Interrupted(d2l.LinearRegression):
        def training_step(self, batch):
            if self.trainer.train_batch_idx == 40:
                raise KeyboardInterrupt
            return super().training_step(batch)

    trainer.fit(Interrupted(lr=0.03), data)
    assert trainer.metrics.interrupted and trainer.metrics.epochs == 1
    assert "interrupted at epoch 2" in caplog.text


def test_gradient_clipping_bounds_the_global_norm():
    model = nn.Linear(3, 2)
    model(torch.randn(4, 3)).pow(2).sum().mul(100).backward()
    d2l.Trainer(max_epochs=1, gradient_clip_val=0.5).clip_gradients(0.5, model)
    norm = torch.sqrt(sum((p.grad ** 2).sum() for p in model.parameters()))
    assert norm == pytest.approx(0.5, rel=1e-4)


# --- plotting helpers and tensor names --------------------------------------------------------

def test_plot_helpers_headless():
    d2l.set_figsize((4, 3))
    assert tuple(matplotlib.rcParams["figure.figsize"]) == (4, 3)
    x = torch.arange(0, 3, 0.1, requires_grad=True)
    d2l.plot(x, [x ** 2, 2 * x - 1], "x", "f(x)", legend=["f", "tangent"], xlim=[0, 3])
    ax = d2l.plt.gca()
    assert len(ax.get_lines()) == 2 and ax.get_xlabel() == "x" and ax.get_xlim() == (0, 3)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["f", "tangent"]
    d2l.plot([1, 4, 9])
    assert len(ax.get_lines()) == 1 and list(ax.get_lines()[0].get_xdata()) == [0, 1, 2]
    with pytest.raises(ValueError, match="plot: 2 x-sequences for 3 y-sequences"):
        d2l.plot([[1, 2], [3, 4]], [[1, 2], [3, 4], [5, 6]])
    d2l.use_svg_display()  # nothing to do outside Jupyter
    d2l.plt.close("all")


def test_the_editions_tensor_names():
    X = d2l.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    assert d2l.reduce_sum(X, 0, keepdims=True).tolist() == [[5.0, 7.0, 9.0]]
    assert d2l.reduce_mean(X).item() == 3.5 and d2l.size(X) == 6
    assert d2l.reshape(X, (3, 2)).shape == (3, 2) and d2l.transpose(X).shape == (3, 2)
    assert d2l.argmax(X, axis=1).tolist() == [2, 2]
    assert d2l.astype(X, d2l.int32).dtype == torch.int32
    assert d2l.expand_dims(X, 0).shape == (1, 2, 3) and d2l.concat((X, X), 1).shape == (2, 6)
    assert isinstance(d2l.numpy(X.requires_grad_()), np.ndarray)
    assert d2l.normal(0, 1, (2, 3)).shape == (2, 3) and d2l.zeros(2).tolist() == [0.0, 0.0]
    assert d2l.abs(d2l.tensor([-1.0])).item() == 1.0 and d2l.float32 is torch.float32
    assert d2l.plt.plot is __import__("matplotlib.pyplot").pyplot.plot
