"""Trainer and fit: training, whole-set validation in eval mode, clipping, logs, bad arguments."""

import logging
from pathlib import Path

import pytest
import torch
from conftest import TinyClassifier
from torch import nn

import d2lai
from d2lai.callbacks.epoch_log import JuliaFormatter


def _fit(data, model=None, opt=None, **kwargs):
    kwargs.setdefault("verbose", False)
    kwargs.setdefault("max_epochs", 3)
    trainer = d2lai.Trainer(model or TinyClassifier(), data, opt or d2lai.Descent(0.1), **kwargs)
    model, metrics = d2lai.fit(trainer)
    return trainer, model, metrics


def test_fit_learns_and_keeps_history(tiny_data):
    d2lai.seed(0)
    trainer, model, metrics = _fit(tiny_data, max_epochs=4)
    h = trainer.history
    assert [len(h[k]) for k in ("train_loss", "val_loss", "val_acc")] == [4, 4, 4]
    assert h["train_loss"][-1] < 0.5 * h["train_loss"][0]
    assert metrics.val_acc > 0.9 and metrics.epochs == 4
    assert (metrics.val_loss, metrics.val_acc, metrics.train_loss) == \
        (h["val_loss"][-1], h["val_acc"][-1], h["train_loss"][-1])
    assert not metrics.diverged and not metrics.interrupted
    assert len(trainer.timings["train_s"]) == 4 and all(t > 0 for t in trainer.timings["val_s"])
    assert next(model.parameters()).device.type == "cpu"


def test_trainer_fit_method_is_the_same_as_fit(tiny_data):
    trainer = d2lai.Trainer(TinyClassifier(), tiny_data, d2lai.Descent(0.1), max_epochs=1,
                            verbose=False)
    model, metrics = trainer.fit()
    assert model is trainer.model and metrics.epochs == 1


def test_metrics_are_over_the_whole_validation_set_in_eval_mode(tiny_data):
    d2lai.seed(1)
    _, model, metrics = _fit(tiny_data, max_epochs=2)
    model.eval()
    with torch.no_grad():
        p = model(tiny_data.transform(tiny_data.val[0]))
    y = tiny_data.val[1]
    loss = -torch.log(p[torch.arange(len(y)), y] + torch.finfo(p.dtype).eps).mean()
    acc = (p.argmax(1) == y).double().mean()
    assert metrics.val_loss == pytest.approx(float(loss), abs=1e-5)
    assert metrics.val_acc == pytest.approx(float(acc), abs=1e-6)
    # the last val batch (200 = 3 * 64 + 8) alone would give something else
    assert metrics.val_loss != pytest.approx(float(model.loss(p[-8:], y[-8:])), abs=1e-4)


def test_train_loss_is_the_sample_mean_over_the_epoch(tiny_data):
    """With lr=0 the weights stay put; BN in train mode gives per-batch losses we can redo."""
    d2lai.seed(2)
    model = TinyClassifier()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    d2lai.seed(3)
    trainer, _, metrics = _fit(tiny_data, model=model, opt=d2lai.Descent(0.0), max_epochs=1)
    check = TinyClassifier()
    check.load_state_dict(state)
    check.train()
    d2lai.seed(3)
    total = sum(check.training_step(b).item() * len(b[1]) for b in tiny_data.train_dataloader())
    assert metrics.train_loss == pytest.approx(total / 600, abs=1e-5)


class ModeRecorder(nn.Module):
    def __init__(self):
        super().__init__()
        self.seen = []

    def forward(self, x):
        self.seen.append((torch.is_grad_enabled(), self.training))
        return x


def test_validation_runs_in_eval_mode_without_gradients(tiny_data):
    model = TinyClassifier()
    recorder = ModeRecorder()
    model.net.insert(0, recorder)
    _fit(tiny_data, model=model, max_epochs=2)
    train_calls = [mode for grad, mode in recorder.seen if grad]
    val_calls = [mode for grad, mode in recorder.seen if not grad]
    assert len(train_calls) == 2 * 10 and all(train_calls)
    assert len(val_calls) >= 2 * 4 and not any(val_calls)


class NormRecordingSGD(torch.optim.SGD):
    """SGD that records the global gradient norm it is asked to step with."""

    def __init__(self, params, lr):
        self.norms = []
        super().__init__(params, lr=lr)

    def step(self, closure=None):
        grads = [p.grad for g in self.param_groups for p in g["params"] if p.grad is not None]
        self.norms.append(float(torch.linalg.vector_norm(torch.stack(
            [torch.linalg.vector_norm(g) for g in grads]))))
        return super().step(closure)


@pytest.mark.parametrize("clip", [0.0, 0.05])
def test_gradient_clipping_bounds_the_global_norm(tiny_data, clip):
    model = TinyClassifier()
    opt = NormRecordingSGD(model.parameters(), lr=0.1)
    _fit(tiny_data, model=model, opt=opt, max_epochs=1, gradient_clip_val=clip)
    assert len(opt.norms) == 10
    if clip:
        assert max(opt.norms) <= clip * (1 + 1e-5)
        assert max(opt.norms) >= clip * (1 - 1e-5)  # it clipped, not zeroed
    else:
        assert max(opt.norms) > 0.05  # so the clipped run above had something to clip


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU fallback")
def test_gpu_without_cuda_says_so_once_as_an_info_line_and_trains(tiny_data, caplog):
    import warnings

    caplog.set_level(logging.INFO, logger="d2lai")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no UserWarning (whose second line was source code)
        trainer = d2lai.Trainer(TinyClassifier(), tiny_data, d2lai.Descent(0.1), max_epochs=1,
                                gpu=True, verbose=False)
        model, metrics = d2lai.fit(trainer)
        _fit(tiny_data, gpu=True, max_epochs=1)  # the second time: nothing more
    said = [r for r in caplog.records if "CUDA" in r.getMessage()]
    assert len(said) == 1 and said[0].levelno == logging.INFO
    assert said[0].getMessage().startswith("no CUDA device: training on the CPU")
    assert metrics.epochs == 1 and next(model.parameters()).device.type == "cpu"


def test_epoch_lines_are_logged_every_print_every(tiny_data, caplog, tmp_path):
    caplog.set_level(logging.INFO, logger="d2lai")
    _fit(tiny_data, max_epochs=4, print_every=2, verbose=True, board_path=tmp_path / "b.png")
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Epoch")]
    assert len(lines) == 2
    import re

    line = (r"Epoch {}/4 · \d+\.\d s · Train Loss: \d\.\d{{4}}, Train Acc: \d\.\d{{4}}, "
            r"Val Loss: \d\.\d{{4}}, Val Acc: \d\.\d{{4}}")
    assert re.fullmatch(line.format(2), lines[0]) and re.fullmatch(line.format(4), lines[1])
    assert any(f"board saved to {tmp_path / 'b.png'}" in r.getMessage() for r in caplog.records)
    assert (tmp_path / "b.png").stat().st_size > 0


def test_quiet_fit_logs_at_debug_and_writes_no_board(tiny_data, caplog, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    caplog.set_level(logging.INFO, logger="d2lai")
    _fit(tiny_data, max_epochs=1, verbose=False)
    assert not [r for r in caplog.records if r.levelno >= logging.INFO]
    assert list(tmp_path.iterdir()) == []


def test_julia_style_log_lines():
    record = logging.LogRecord("d2lai", logging.INFO, "", 0, "Train Loss: %.4f", (0.5,), None)
    assert JuliaFormatter().format(record) == "[ Info: Train Loss: 0.5000"
    record.levelno, record.levelname = logging.WARNING, "WARNING"
    assert JuliaFormatter().format(record).startswith("[ Warning: ")


def test_regression_model_has_no_accuracy():
    class LinearRegression(d2lai.AbstractModel):
        def __init__(self):
            super().__init__()
            self.net = nn.Linear(2, 1)

        def loss(self, y_hat, y):
            return ((y_hat - y) ** 2).mean() / 2

    d2lai.seed(0)
    data = d2lai.SyntheticRegressionData(w=[2.0, -3.4], b=4.2, batchsize=32)
    trainer = d2lai.Trainer(LinearRegression(), data, d2lai.Descent(0.03), max_epochs=10,
                            verbose=False)
    model, metrics = trainer.fit()
    assert metrics.val_acc is None and "val_acc" not in trainer.history
    assert metrics.val_loss < 0.01
    assert torch.allclose(model.net.weight.detach(), torch.tensor([[2.0, -3.4]]), atol=0.05)


@pytest.mark.parametrize("kwargs, error, match", [
    ({"max_epochs": 0}, ValueError, "max_epochs"),
    ({"max_epochs": -2}, ValueError, "max_epochs"),
    ({"max_epochs": 2.5}, ValueError, "max_epochs"),
    ({"board_yscale": "log2"}, ValueError, "board_yscale"),
    ({"print_every": 0}, ValueError, "print_every"),
    ({"gradient_clip_val": -1.0}, ValueError, "gradient_clip_val"),
    ({"on_diverge": "ignore"}, ValueError, "on_diverge"),
    ({"resume": True}, ValueError, "checkpoint"),
    ({"opt": "sgd"}, TypeError, "opt"),
    ({"data": [1, 2, 3]}, TypeError, "data"),
    ({"model": lambda x: x}, TypeError, "model"),
    ({"model": nn.Linear(784, 10)}, TypeError, "AbstractModel"),
])
def test_bad_arguments_fail_when_the_trainer_is_built(tiny_data, kwargs, error, match):
    args = {"model": TinyClassifier(), "data": tiny_data, "opt": d2lai.Descent(0.1)}
    args.update(kwargs)
    with pytest.raises(error, match=match):
        d2lai.Trainer(args.pop("model"), args.pop("data"), args.pop("opt"), **args)


@pytest.mark.parametrize("yscale", ["identity", "linear", "log10", "log"])
def test_board_scales_are_accepted(tiny_data, yscale):
    trainer = d2lai.Trainer(TinyClassifier(), tiny_data, d2lai.Descent(0.1),
                            board_yscale=yscale, verbose=False)
    assert trainer.board.yscale in ("linear", "log")


def test_no_progress_bars_go_into_a_log_file(fashion_root, tmp_path):
    """stderr to a file (a log, CI, nohup): the epoch lines, and not one bar refresh."""
    import subprocess
    import sys

    script = ("import d2lai, sys; sys.path.insert(0, 'tests'); from conftest import "
              "TinyClassifier; data = d2lai.FashionMNISTData(batchsize=16, root=sys.argv[1]); "
              "d2lai.fit(d2lai.Trainer(TinyClassifier(), data, d2lai.Descent(0.1), "
              "max_epochs=2))")
    log = tmp_path / "run.log"
    with open(log, "w") as f:
        run = subprocess.run([sys.executable, "-c", script, str(fashion_root)], stderr=f,
                             cwd=Path(__file__).resolve().parent.parent, timeout=120)
    text = log.read_text()
    import re

    assert run.returncode == 0, text
    assert len(re.findall(r"^\[ Info: Epoch \d/2 · .* Train Loss: ", text, re.M)) == 2
    assert "batch/s" not in text and "\r" not in text and "%|" not in text
