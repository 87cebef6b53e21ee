"""Mixed precision and compiled steps (d2lai/precision.py): autocast with float32 weights, the
float16 gradient scaler (its skipped steps, clipping of the true gradients), batch-norm
statistics in float32, the refusal of a precision the device cannot run, compile with its eager
fallback, and the precision as part of a run's definition. No GPU here: float16 runs on the CPU
with the device check lifted (torch's CPU autocast and GradScaler do float16), and the CUDA
configuration is checked without running it."""

import logging

import pytest
import torch
from conftest import FailAt, TinyClassifier
from torch import nn

import d2lai
from chapters import batch_norm as chapter
from d2lai import precision as amp
from d2lai.checks import ArgumentError
from d2lai.definition import differences

pytestmark = pytest.mark.usefixtures("one_thread")


def fit(data, model=None, opt=None, **kwargs):
    """A quiet fit of a seeded TinyClassifier (its lines logged at DEBUG), 1 epoch."""
    d2lai.seed(0)
    model = TinyClassifier() if model is None else model
    trainer = d2lai.Trainer(model, data, opt or d2lai.Descent(0.1), board=False, verbose=False,
                            **{"max_epochs": 1, **kwargs})
    return trainer, *trainer.fit()


@pytest.fixture
def float16_on_cpu(monkeypatch):
    """Let float16 run on the CPU, as on a GPU (the device check alone lifted)."""
    monkeypatch.setattr(amp, "unsupported", lambda precision, device: None)


# --- batch norm in float32 ----------------------------------------------------------------------

@pytest.mark.parametrize("training", [True, False])
def test_scratch_batch_norm_under_bf16_autocast_matches_torchs_with_float32_statistics(training):
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 6, 3)
    ours, theirs = chapter.BatchNormLayer(6, 4), nn.BatchNorm2d(6)
    X = torch.randn(16, 3, 12, 12) * 3 + 1
    for _ in range(3):  # moving statistics after a few batches, in both modes
        with torch.autocast("cpu", dtype=torch.bfloat16):
            H = conv(X)
            assert H.dtype == torch.bfloat16
            ours.train(training), theirs.train(training)
            Y, Y_torch = ours(H), theirs(H)
        X = X * 1.1 + 0.2
    assert Y.dtype == Y_torch.dtype == torch.bfloat16  # out as it came in, as torch's
    assert ours.moving_mean.dtype == ours.moving_var.dtype == torch.float32
    torch.testing.assert_close(Y.float(), Y_torch.float(), atol=2e-2, rtol=1.6e-2)
    torch.testing.assert_close(ours.moving_mean.flatten(), theirs.running_mean, atol=1e-5,
                               rtol=1e-5)
    torch.testing.assert_close(ours.moving_var.flatten(), theirs.running_var, atol=1e-5,
                               rtol=1e-5)
    if training:  # statistics of the bfloat16 input taken in float32, not in bfloat16
        mean = H.float().mean(dim=(0, 2, 3))
        assert not torch.equal(mean, H.mean(dim=(0, 2, 3)).float())


# --- checks -------------------------------------------------------------------------------------

def test_a_precision_not_known_or_a_compile_not_a_flag_is_refused_at_construction(tiny_data):
    with pytest.raises(ArgumentError, match="precision must be '32'.*got 'fp8'"):
        d2lai.Trainer(TinyClassifier(), tiny_data, d2lai.Descent(0.1), precision="fp8")
    with pytest.raises(ArgumentError, match="compile must be True or False, got 'yes'"):
        d2lai.Trainer(TinyClassifier(), tiny_data, d2lai.Descent(0.1), compile="yes")
    trainer = d2lai.Trainer(TinyClassifier(), tiny_data, d2lai.Descent(0.1), precision=16)
    assert trainer.amp.precision == "16"  # 16, "16-mixed", "bf16-mixed" taken as Lightning's


def test_float16_on_the_cpu_is_refused_at_fit_start_before_anything_trains(tiny_data):
    model = TinyClassifier()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    trainer = d2lai.Trainer(model, tiny_data, d2lai.Descent(0.1), board=False, precision="16")
    with pytest.raises(ValueError, match="precision='16'.*CUDA GPU.*use precision='bf16'"):
        trainer.fit()
    assert trainer.steps == 0
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_cuda_paths_configure_autocast_and_the_scaler_and_refuse_bf16_before_ampere(monkeypatch):
    cuda = torch.device("cuda")
    assert amp.unsupported("16", cuda) is None and amp.unsupported("32", cuda) is None
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: False)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Tesla T4")
    assert "Tesla T4 has no bfloat16 arithmetic" in amp.unsupported("bf16", cuda)
    assert "use precision='16'" in amp.unsupported("bf16", cuda)
    half = amp.Precision("16")
    with pytest.warns(UserWarning):  # torch: no CUDA here, so the scaler is built disabled
        half.setup(cuda, TinyClassifier())
    assert isinstance(half.scaler, torch.amp.GradScaler) and half.scaler._device == "cuda"
    with pytest.warns(UserWarning):
        context = half.autocast()
    assert (context.device, context.fast_dtype) == ("cuda", torch.float16)
    brain = amp.Precision("bf16")
    brain.device = cuda
    with pytest.warns(UserWarning):
        context = brain.autocast()
    assert (context.device, context.fast_dtype, brain.scaler) == ("cuda", torch.bfloat16, None)


def test_mixed_precision_refuses_a_model_not_in_float32(tiny_data):
    trainer = d2lai.Trainer(TinyClassifier().double(), tiny_data, d2lai.Descent(0.1),
                            board=False, precision="bf16")
    with pytest.raises(ValueError, match="torch.float64 parameters: call model.float"):
        trainer.fit()


# --- bf16 -------------------------------------------------------------------------------------

def test_a_bf16_fit_keeps_float32_weights_and_state_and_lands_near_float32(tiny_data, caplog):
    caplog.set_level(logging.DEBUG, logger="d2lai")
    model32 = TinyClassifier()
    _, _, m32 = fit(tiny_data, model32, d2lai.Adam(0.01), max_epochs=2)
    trainer, model, m16 = fit(tiny_data, None, d2lai.Adam(0.01), max_epochs=2, precision="bf16")
    assert all(p.dtype == torch.float32 for p in model.state_dict().values()
               if p.is_floating_point())
    state = [t for s in trainer.optimizer.state.values() for t in s.values()
             if isinstance(t, torch.Tensor) and t.is_floating_point()]
    assert state and all(t.dtype == torch.float32 for t in state)
    assert m16.val_loss != m32.val_loss  # computed otherwise ...
    assert m16.val_loss == pytest.approx(m32.val_loss, abs=0.05)  # ... to nearly the same
    assert m16.val_acc == pytest.approx(m32.val_acc, abs=0.05)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Epoch")]
    assert " · bf16 autocast · Train Loss" in lines[-2] and "bf16" not in lines[-1]


def test_bf16_runs_the_steps_in_bfloat16(tiny_data):
    seen = []

    class Spy(TinyClassifier):
        def forward(self, X):
            seen.append(self.net[1](X.flatten(1)).dtype)  # the first Linear's output
            return super().forward(X)

    fit(tiny_data, Spy(), max_steps=1, precision="bf16")
    # the first-batch checks run the model once on each kind of batch, as it comes; then the
    # training and validation steps, under autocast
    assert seen[:2] == [torch.float32] * 2 and set(seen[2:]) == {torch.bfloat16}


def test_bf16_puts_a_conv_net_channels_last_with_the_same_values_and_says_so(
        tiny_data, caplog):
    caplog.set_level(logging.DEBUG, logger="d2lai")
    d2lai.seed(0)
    net = chapter.BLeNetConcise()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    trainer = d2lai.Trainer(net, tiny_data, d2lai.Descent(0.1), max_steps=1,
                            board=False, verbose=False, precision="bf16")
    trainer.amp.setup(torch.device("cpu"), net)
    convs = [m.weight for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert convs and all(w.is_contiguous(memory_format=torch.channels_last) for w in convs)
    assert not convs[1].is_contiguous()  # 6 input channels: the layout has changed
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())  # same values
    trainer.fit()
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Epoch")]
    assert " · bf16 autocast, channels-last · " in lines[-1]


def test_float32_and_nets_without_convolutions_keep_their_memory_format(tiny_data):
    net = chapter.BLeNetConcise()
    d2lai.Trainer(net, tiny_data, d2lai.Descent(0.1), board=False,
                  verbose=False).amp.setup(torch.device("cpu"), net)
    assert all(m.weight.is_contiguous() for m in net.modules() if isinstance(m, nn.Conv2d))
    mlp = TinyClassifier()
    precision = amp.Precision("bf16")
    precision.setup(torch.device("cpu"), mlp)
    assert not precision.channels_last


# --- float16 with a gradient scaler ---------------------------------------------------------------

class SumLoss(TinyClassifier):
    """A loss summed over the batch: gradients at the outputs of 1 a sample, which the scaler's
    first scale (65536) makes overflow in float16."""

    def loss(self, y_hat, y):
        return -torch.log(y_hat.gather(1, y[:, None]) + 1e-6).sum()


def test_float16_gradients_that_overflow_are_skipped_by_the_scaler_and_said(
        tiny_data, float16_on_cpu, caplog):
    caplog.set_level(logging.DEBUG, logger="d2lai")
    d2lai.seed(0)
    model = SumLoss()
    before = {k: v.clone() for k, v in model.named_parameters()}
    trainer = d2lai.Trainer(model, tiny_data, d2lai.Descent(1e-4), board=False, max_steps=1,
                            precision="16")
    _, metrics = trainer.fit()
    assert trainer.amp.scaler.get_scale() == 32768.0  # halved
    assert all(torch.equal(p, before[k]) for k, p in model.named_parameters())  # skipped
    assert not metrics.diverged and metrics.epochs == 1  # not rolled back as divergence
    line = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Epoch")][0]
    assert "16 autocast · 1 step skipped: float16 gradients overflowed (loss scale now " \
           "32768)" in line
    assert not [r for r in caplog.records if "diverged" in r.getMessage()]
    _, metrics = d2lai.Trainer(model, tiny_data, d2lai.Descent(1e-4), board=False,
                               max_epochs=2, precision="16").fit()
    assert not metrics.diverged and all(p.isfinite().all() for p in model.parameters())
    assert any(not torch.equal(p, before[k]) for k, p in model.named_parameters())  # it trains


@pytest.mark.parametrize("precision", ["bf16", "16"])
def test_a_non_finite_loss_under_mixed_precision_still_rolls_back_as_divergence(
        tiny_data, float16_on_cpu, precision):
    d2lai.seed(0)
    model = FailAt(epoch=2, batch=3, batches_per_epoch=len(tiny_data.train_dataloader()))
    trainer, model, metrics = fit(tiny_data, model, max_epochs=3, precision=precision)
    assert metrics.diverged and metrics.epochs == 1
    d2lai.seed(0)
    after_one = fit(tiny_data, TinyClassifier(), max_epochs=1, precision=precision)[1]
    for k, v in model.state_dict().items():  # as it was after epoch 1
        assert torch.equal(v, after_one.state_dict()[k]), k


class GradNorms(d2lai.Callback):
    """The global norm of the gradients the optimiser stepped with (finite ones)."""

    def __init__(self):
        self.norms = []

    def on_train_batch_end(self, trainer, batch, loss):
        grads = [p.grad for p in trainer.model.parameters() if p.grad is not None]
        norm = torch.linalg.vector_norm(torch.stack([g.norm() for g in grads]))
        if norm.isfinite():
            self.norms.append(float(norm))


def test_clipping_under_float16_clips_the_unscaled_gradients(tiny_data, float16_on_cpu):
    norms = GradNorms()
    d2lai.seed(0)
    trainer = d2lai.Trainer(TinyClassifier(), tiny_data, d2lai.Descent(0.1), board=False,
                            max_steps=4, precision="16", gradient_clip_val=0.05,
                            callbacks=[norms])
    trainer.fit()
    assert trainer.amp.scaler.get_scale() > 1000  # the loss was scaled up by that much
    assert norms.norms  # each the clipping norm in true units, not 0.05 / scale
    assert norms.norms == pytest.approx([0.05] * len(norms.norms), rel=1e-3)
    unclipped = GradNorms()
    d2lai.seed(0)
    d2lai.Trainer(TinyClassifier(), tiny_data, d2lai.Descent(0.1), board=False, max_steps=1,
                  precision="16", callbacks=[unclipped]).fit()
    assert all(n > 0.1 for n in unclipped.norms)  # so clipping had something to clip


# --- compile -----------------------------------------------------------------------------------

def test_compile_compiles_both_steps_says_the_time_once_and_keeps_the_figures(
        tiny_data, monkeypatch, caplog):
    monkeypatch.setattr(amp, "BACKEND", "eager")  # dynamo's capture, without a C++ build
    caplog.set_level(logging.DEBUG, logger="d2lai")
    calls = []
    real = torch.compile
    monkeypatch.setattr(torch, "compile", lambda f, **kw: calls.append(f) or real(f, **kw))
    _, _, eager = fit(tiny_data, max_epochs=2)
    caplog.clear()
    trainer, _, compiled = fit(tiny_data, max_epochs=2, compile=True)
    assert len(calls) == 2 and trainer.amp.compile_s > 0  # the training and validation step
    for name in ("train_loss", "train_acc", "val_loss", "val_acc"):  # the hook of train_acc too
        assert compiled.history[name] == pytest.approx(eager.history[name], abs=1e-5)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Epoch")]
    assert " · float32, compiled in " in lines[0] and "compiled" not in lines[1]


def test_a_compile_that_fails_falls_back_to_eager_said_once(tiny_data, monkeypatch, caplog):
    def broken(graph, inputs):
        raise RuntimeError("no C++ compiler found")

    monkeypatch.setattr(amp, "BACKEND", broken)
    caplog.set_level(logging.DEBUG, logger="d2lai")
    _, _, eager = fit(tiny_data, max_epochs=2)
    caplog.clear()
    trainer, _, metrics = fit(tiny_data, max_epochs=2, compile=True)
    said = [r for r in caplog.records if "torch.compile failed" in r.getMessage()]
    assert len(said) == 1 and said[0].levelno == logging.WARNING
    assert "no C++ compiler found" in said[0].getMessage()
    assert "the steps run eagerly" in said[0].getMessage()
    assert metrics.history == pytest.approx(eager.history)
    assert "eager (compiling failed)" in [r.getMessage() for r in caplog.records
                                          if r.getMessage().startswith("Epoch")][0]


def test_a_models_own_error_under_compile_is_its_own(tiny_data, monkeypatch):
    monkeypatch.setattr(amp, "BACKEND", "eager")

    class Broken(TinyClassifier):
        def training_step(self, batch):
            raise KeyError("the model's own bug")

    with pytest.raises(KeyError, match="the model's own bug"):
        fit(tiny_data, Broken(), compile=True)


# --- part of a run's definition -------------------------------------------------------------------

def test_a_bf16_checkpoint_resumed_in_float32_is_refused_by_name(tiny_data, tmp_path, caplog):
    path = tmp_path / "run.pt"
    fit(tiny_data, checkpoint=path, precision="bf16", seed=0)
    with pytest.raises(ValueError, match="precision was 'bf16' in the checkpoint, is '32' now"):
        fit(tiny_data, max_epochs=2, checkpoint=path, resume=True, seed=0)
    caplog.set_level(logging.DEBUG, logger="d2lai")
    _, _, metrics = fit(tiny_data, max_epochs=2, checkpoint=path, resume=True, seed=0,
                        precision="bf16", compile=True)  # compiled now: the same arithmetic
    assert metrics.epochs == 2
    assert any("whose steps were eager, with compiled steps" in r.getMessage()
               for r in caplog.records)


def test_a_definition_written_before_precision_existed_means_float32_eager(tiny_data):
    trainer = d2lai.Trainer(TinyClassifier(), tiny_data, d2lai.Descent(0.1), board=False)
    now = d2lai.definition.run_definition(trainer)
    assert now["trainer"]["precision"] == "32" and now["trainer"]["compile"] is False
    old = {**now, "trainer": {k: v for k, v in now["trainer"].items()
                              if k not in ("precision", "compile")}}
    assert differences(old, now) == []
    bf16 = d2lai.definition.run_definition(
        d2lai.Trainer(TinyClassifier(), tiny_data, d2lai.Descent(0.1), precision="bf16"))
    assert differences(old, bf16) == ["precision was '32', is 'bf16' now"]


# --- the two faces' other doors -------------------------------------------------------------------

def test_the_pytorch_editions_trainer_takes_precision_and_compile(fashion_root):
    from d2lai import torch as d2l

    with pytest.raises(ArgumentError, match="precision must be"):
        d2l.Trainer(max_epochs=1, precision="half")
    data = d2l.FashionMNIST(batch_size=64, root=fashion_root)
    trainer = d2l.Trainer(max_epochs=1, precision="bf16")
    trainer.fit(d2l.SoftmaxRegression(num_outputs=10, lr=0.1), data)
    assert trainer.amp.precision == "bf16" and trainer.precision == "bf16"
    assert trainer.metrics.val_acc is not None


def test_every_chapters_cli_takes_precision_and_refuses_float16_on_the_cpu(fashion_root,
                                                                           tmp_path, capsys):
    from chapters import attention, batch_norm_exercises, modern_rnn, rnn

    for module in (chapter, batch_norm_exercises, rnn, modern_rnn, attention):
        parse = module.parse_args
        name = ["bias"] if module is batch_norm_exercises else []
        args = parse([*name, "--precision", "bf16", "--compile"])
        assert (args.precision, args.compile) == ("bf16", True), module.__name__
    with pytest.raises(SystemExit, match="error: --precision 16 .*use --precision bf16"):
        chapter.main(["--cpu", "--precision", "16", "--data-root", str(fashion_root),
                      "--num-train", "64", "--num-val", "32", "--epochs", "1",
                      "--out", str(tmp_path)])
    assert not list(tmp_path.glob("*-history.json"))


def test_a_softmax_head_in_bfloat16_is_still_read_as_probabilities():
    from d2lai.models.classifier import guess_head

    torch.manual_seed(0)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        p = nn.Softmax(dim=1)(nn.Linear(20, 10)(torch.randn(256, 20) * 3))
    assert p.dtype == torch.bfloat16
    assert float((p.double().sum(-1) - 1).abs().max()) > 1e-3  # beyond float32's tolerance
    assert guess_head(p) == "probabilities"
    assert guess_head(p.float() * 1.5) == "logits"  # a sum of 1.5 is no rounding
    assert guess_head(torch.log(p.double()).to(torch.bfloat16)) == "log_probabilities"


def test_a_language_models_compiled_steps_are_one_graph_each_and_tokens_still_checked(
        tm_root, monkeypatch):
    """The model's check of its token range reads values, a graph break that cut the compiled
    step in pieces; under compile it is left to the first-batch checks (eager, on the data's
    whole token tensors), and a model called eagerly still checks."""
    from d2lai import torch as d2l

    graphs = []
    monkeypatch.setattr(amp, "BACKEND", lambda gm, inputs: graphs.append(gm) or gm.forward)
    monkeypatch.setenv("D2LAI_DATA", str(tm_root))
    data = d2l.TimeMachine(batch_size=16, num_steps=8, num_train=64, num_val=32)  # indices
    V = len(data.vocab)

    def fit():
        model = d2lai.RNNLMScratch(d2lai.RNNScratch(V, 8), V)
        d2lai.Trainer(model, data, d2lai.Descent(1.0), max_epochs=2, verbose=False,
                      board=False, compile=True).fit()
        return model

    model = fit()
    assert len(graphs) == 2  # the training step and the validation step, once each
    with pytest.raises(ValueError, match=f"token indices from 0 to {V} but RNNLMScratch"):
        model(torch.tensor([[0, V]]))
    data.X[3, 2] = V  # a token the model cannot take
    with pytest.raises(ValueError, match=f"hold token indices from 0 to {V} but RNNLMScratch"):
        fit()
