"""The Julia package's remaining names, as chapters 3-10 call them: each against a hand
computation or torch's own, and the errors they give."""

import logging
import math
import operator
import warnings

import pytest
import torch
import torch.nn.functional as F
from conftest import TinyClassifier
from torch import nn

import d2lai
from d2lai import Parallel, concat_channels
from d2lai.testing import write_fake_time_machine

# --- corr2d ------------------------------------------------------------------------------------


def test_corr2d_is_the_one_implementation_and_matches_the_book():
    from d2lai import torch as d2l

    assert d2lai.corr2d is d2l.corr2d
    X = torch.arange(9.0).reshape(3, 3)
    K = torch.tensor([[0.0, 1.0], [2.0, 3.0]])
    assert d2lai.corr2d(X, K).tolist() == [[19.0, 25.0], [37.0, 43.0]]
    with pytest.raises(AttributeError, match="has no attribute 'corr2dd'"):
        d2lai.corr2dd  # noqa: B018


# --- Parallel ----------------------------------------------------------------------------------

def test_parallel_adds_a_branch_and_a_shortcut_as_a_residual_block():
    torch.manual_seed(0)
    body = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.Conv2d(6, 6, 3, padding=1))
    shortcut = nn.Conv2d(3, 6, 1)
    block = Parallel(torch.add, body, shortcut)
    X = torch.randn(2, 3, 5, 4)
    assert torch.equal(block(X), body(X) + shortcut(X))
    identity = Parallel(operator.add, nn.Conv2d(3, 3, 3, padding=1), nn.Identity())
    assert torch.equal(identity(X), identity.layers["0"](X) + X)
    # its parameters are the branches', so an optimiser sees them
    assert {n for n, _ in block.named_parameters()} == {
        "layers.0.0.weight", "layers.0.0.bias", "layers.0.2.weight", "layers.0.2.bias",
        "layers.1.weight", "layers.1.bias"}


def test_parallel_folds_a_two_argument_join_over_three_branches():
    a, b, c = nn.Linear(4, 2), nn.Linear(4, 2), nn.Linear(4, 2)
    X = torch.randn(5, 4)
    assert torch.allclose(Parallel(torch.add, a, b, c)(X), a(X) + b(X) + c(X))
    assert torch.allclose(Parallel(torch.mul, a, b, c)(X), a(X) * b(X) * c(X))


def test_parallel_concatenates_inception_branches_along_the_channels():
    branches = [nn.Conv2d(4, 2, 1), nn.Conv2d(4, 3, 3, padding=1), nn.MaxPool2d(3, 1, 1)]
    block = Parallel(concat_channels, *branches)
    X = torch.randn(2, 4, 6, 6)
    Y = block(X)
    assert Y.shape == (2, 2 + 3 + 4, 6, 6)
    assert torch.equal(Y, torch.cat([f(X) for f in branches], dim=1))


def test_parallel_with_several_inputs_named_layers_and_plain_functions():
    f, g = nn.Linear(3, 2), nn.Linear(4, 2)
    x, y = torch.randn(5, 3), torch.randn(5, 4)
    assert torch.allclose(Parallel(torch.add, f, g)(x, y), f(x) + g(y))  # one input a layer
    x2 = torch.randn(5, 3)
    assert torch.allclose(Parallel(torch.add, f)(x, x2), f(x) + f(x2))  # one layer, each input
    named = Parallel(lambda p, q: (p, q), alpha=f, beta=torch.tanh)
    assert list(named.layers) == ["alpha", "beta"]
    p, q = named(x)
    assert torch.equal(p, f(x)) and torch.equal(q, torch.tanh(x))
    with pytest.raises(ValueError, match="2 layers takes one input, or one input per layer, "
                                         "got 3 inputs"):
        Parallel(torch.add, f, g)(x, y, y)
    with pytest.raises(TypeError, match="first argument is the connection that joins"):
        Parallel(torch.ones(2), f)
    with pytest.raises(ValueError, match="at least one layer"):
        Parallel(torch.add)
    with pytest.raises(TypeError, match="layer 1 must be a module or a function, got int"):
        Parallel(torch.add, f, 3)


# --- optimiser rules -----------------------------------------------------------------------------

def test_optimiser_and_a_one_rule_chain_are_the_rule_alone():
    model = nn.Linear(3, 1)
    assert d2lai.Optimiser is d2lai.OptimiserChain
    for rule, kind, lr in ((d2lai.Optimiser(d2lai.Descent(1.0)), torch.optim.SGD, 1.0),
                           (d2lai.OptimiserChain(d2lai.Adam(0.01)), torch.optim.Adam, 0.01),
                           (d2lai.OptimiserChain(d2lai.AdamW(0.01, weight_decay=0.1)),
                            torch.optim.AdamW, 0.01)):
        opt = d2lai.setup(rule, model)
        assert type(opt) is kind and opt.param_groups[0]["lr"] == lr
    assert d2lai.setup(d2lai.Optimiser(d2lai.Descent(1.0)), model) \
        .param_groups[0]["weight_decay"] == 0


def test_a_one_rule_chain_trains_as_the_rule(tiny_data):
    results = []
    for rule in (d2lai.Descent(0.1), d2lai.Optimiser(d2lai.Descent(0.1))):
        d2lai.seed(0)
        trainer = d2lai.Trainer(TinyClassifier(), tiny_data, rule, max_epochs=1, verbose=False,
                                board=False, seed=0)
        model, _ = d2lai.fit(trainer)
        results.append([p.detach() for p in model.parameters()])
    assert all(torch.equal(a, b) for a, b in zip(*results, strict=True))


# --- models ------------------------------------------------------------------------------------

def test_linear_regression_concise_learns_the_synthetic_weights():
    d2lai.seed(0)
    data = d2lai.SyntheticRegressionData([2, -3.4], 4.2)
    model = d2lai.LinearRegressionConcise(nn.Linear(2, 1))
    X, y = data.val
    assert torch.allclose(model.loss(model(X), y), ((model(X) - y) ** 2).mean())
    trainer = d2lai.Trainer(model, data, d2lai.Descent(0.03), max_epochs=3, verbose=False)
    model, metrics = d2lai.fit(trainer)
    assert torch.allclose(model.net.weight, torch.tensor([[2.0, -3.4]]), atol=0.05)
    assert abs(model.net.bias.item() - 4.2) < 0.05 and metrics.val_loss < 0.01
    with pytest.raises(TypeError, match=r"takes its net as a torch.nn.Module \(e.g. "
                                        r"nn.Linear\(2, 1\)\), got function"):
        d2lai.LinearRegressionConcise(lambda X: X)


def test_model_and_abstract_concise_model_hold_a_net_and_its_args():
    from types import SimpleNamespace

    net = nn.Linear(2, 1)
    model = d2lai.Model(net, {"lr": 0.1}, sigma=0.01)
    assert model.net is net and model.args == SimpleNamespace(lr=0.1, sigma=0.01)
    assert torch.equal(model(torch.ones(1, 2)), net(torch.ones(1, 2)))
    assert d2lai.Model(net, d2lai.construct_nt_args(lr=0.2)).args.lr == 0.2
    assert isinstance(model, d2lai.AbstractConciseModel) and isinstance(model, d2lai.AbstractModel)
    with pytest.raises(NotImplementedError, match="must define loss"):
        model.loss(torch.ones(1), torch.ones(1))
    with pytest.raises(TypeError, match="args must be a dict, a namespace or keyword arguments"):
        d2lai.Model(net, [1, 2])


def test_construct_nt_args_groups_keyword_arguments():
    W, b = torch.ones(2, 2), torch.zeros(2)
    gate = d2lai.construct_nt_args(W_xi=W, b_i=b)
    assert gate.W_xi is W and gate.b_i is b and vars(gate) == {"W_xi": W, "b_i": b}


# --- around fit ----------------------------------------------------------------------------------

@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU fallback")
def test_to_gpu_and_prepare_without_cuda_say_so_and_stay_on_the_cpu(tiny_data, caplog):
    model = TinyClassifier()
    with caplog.at_level(logging.INFO, logger="d2lai"):
        assert d2lai.to_gpu(model) is model
    assert "no CUDA device: training on the CPU" in caplog.text
    assert next(model.parameters()).device.type == "cpu"
    assert d2lai.prepare_model(model) is model
    train, val = d2lai.prepare_data(tiny_data)
    assert len(train) == len(tiny_data.train_dataloader()) and len(val) == 4  # 200 / 64
    X, y = next(iter(val))
    assert torch.equal(y, tiny_data.val[1][:64])


def test_abstract_trainer_is_what_fit_trains(tiny_data):
    trainer = d2lai.Trainer(TinyClassifier(), tiny_data, d2lai.Descent(0.1), max_epochs=1,
                            verbose=False)
    assert isinstance(trainer, d2lai.AbstractTrainer)
    with pytest.raises(TypeError, match="abstract"):
        d2lai.AbstractTrainer()

    class Fixed(d2lai.AbstractTrainer):
        def fit(self):
            return "model", "metrics"

    assert d2lai.fit(Fixed()) == ("model", "metrics")


def test_draw_metrics_draws_the_epoch_figures_and_a_language_models_perplexity(tiny_data):
    trainer = d2lai.Trainer(TinyClassifier(), tiny_data, d2lai.Descent(0.1), verbose=False)
    drawn = d2lai.draw_metrics(trainer.model, 1, trainer,
                               {"train_losses": [1.0, 2.0], "val_losses": [torch.tensor(0.5)],
                                "val_acc": []})
    assert drawn == {"train_loss": 1.5, "val_loss": 0.5}
    assert trainer.board.series["train_loss"] == ([1.0], [1.5])
    lm = d2lai.RNNLMScratch(d2lai.RNNScratch(5, 4), 5)
    drawn = d2lai.draw_metrics(lm, 2, trainer, {"train_loss": 1.0, "val_loss": 2.0})
    assert drawn["train_ppl"] == math.exp(1.0) and drawn["val_ppl"] == math.exp(2.0)
    assert trainer.board.series["val_ppl"] == ([2.0], [math.exp(2.0)])
    quiet = d2lai.Trainer(TinyClassifier(), tiny_data, d2lai.Descent(0.1), board=False)
    with pytest.raises(ValueError, match="has none: build it with Trainer"):
        d2lai.draw_metrics(quiet.model, 1, quiet, {"train_loss": 1.0})


# --- fit_epoch as the text writes it -----------------------------------------------------------

class LinearRegressionScratch(d2lai.AbstractModel):
    """Chapter 3's model from scratch, as the text builds it."""

    def __init__(self, num_inputs, lr, sigma=0.01):
        super().__init__()
        self.w = nn.Parameter(torch.normal(0, sigma, (num_inputs, 1)))
        self.b = nn.Parameter(torch.zeros(1))
        self.lr = lr

    def forward(self, X):
        return X @ self.w + self.b

    def loss(self, y_hat, y):
        return ((y_hat - y) ** 2 / 2).mean()


class SGD:
    """The text's own optimiser: a learning rate and a step over the model's w and b."""

    def __init__(self, params, lr):
        self.lr = lr

    def step(self, model):
        with torch.no_grad():
            model.w -= self.lr * model.w.grad
            model.b -= self.lr * model.b.grad


def test_an_epoch_defined_on_the_model_runs_as_julia_dispatches_it():
    calls = []

    class OwnEpoch(LinearRegressionScratch):
        def fit_epoch(self, opt, train_dataloader=None, val_dataloader=None,
                      gradient_clip_val=0.0):
            losses = {"train_losses": [], "val_losses": []}
            for batch in train_dataloader:
                loss = self.training_step(batch)
                self.zero_grad()
                loss.backward()
                opt.step(self)
                losses["train_losses"].append(loss.item())
            calls.append((opt, gradient_clip_val, sum(1 for _ in val_dataloader)))
            return losses

    d2lai.seed(0)
    data = d2lai.SyntheticRegressionData([2, -3.4], 4.2)
    sgd = SGD(None, 0.03)
    model, metrics = d2lai.fit(d2lai.Trainer(OwnEpoch(2, 0.03), data, sgd, max_epochs=2,
                                             verbose=False, board=False))
    assert [c[0] for c in calls] == [sgd, sgd] and calls[0][1:] == (0.0, 32)
    assert metrics.epochs == 2 and metrics.steps == 2 * 32
    assert metrics.history["train_loss"][1] < metrics.history["train_loss"][0]
    assert metrics.val_loss == pytest.approx(d2lai.Trainer(
        model, data, sgd, max_epochs=1).evaluate()["val_loss"])


def test_an_assigned_d2lai_fit_epoch_is_refused(monkeypatch, tiny_data):
    def fit_epoch(model, opt, train_dataloader=None, val_dataloader=None,
                  gradient_clip_val=0.0):
        raise AssertionError("never called")

    monkeypatch.setattr(d2lai, "fit_epoch", fit_epoch, raising=False)
    with pytest.raises(TypeError, match="d2lai.fit_epoch was assigned") as err:
        d2lai.Trainer(TinyClassifier(), tiny_data, d2lai.Descent(0.1))
    assert "a method of the model's class" in str(err.value)
    assert "class MyTrainer(d2lai.Trainer):" in str(err.value)


def test_the_texts_own_epoch_as_a_trainer_subclass_trains():
    class ScratchTrainer(d2lai.Trainer):
        def fit_epoch(self):  # the text's fit_epoch(model, opt; train_dataloader, ...)
            losses = []
            for batch in self.data.train_dataloader():
                loss = self.model.training_step(batch)
                self.model.zero_grad()
                loss.backward()
                self.opt.step(self.model)
                losses.append(loss.item())
            return {"train_loss": sum(losses) / len(losses)}

    d2lai.seed(0)
    data = d2lai.SyntheticRegressionData([2, -3.4], 4.2)
    trainer = ScratchTrainer(LinearRegressionScratch(2, 0.03), data, SGD(None, 0.03),
                             max_epochs=8, verbose=False, board=False)
    model, metrics = d2lai.fit(trainer)
    assert torch.allclose(model.w.flatten(), torch.tensor([2.0, -3.4]), atol=0.05)
    assert len(metrics.history["train_loss"]) == 8 and metrics.val_loss < 0.01


# --- encoder-decoders as the Julia text builds them ---------------------------------------------

@pytest.fixture(scope="module")
def fra_data(fra_root):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the stand-in is not the book's file
        return d2lai.MTFraEng(64, num_train=128, num_val=32, root=fra_root)


def _seq2seq(data, **kwargs):
    enc = d2lai.Seq2SeqEncoder(len(data.src_vocab), 8, 16, 1)
    dec = d2lai.Seq2SeqAttentionDecoder(len(data.tgt_vocab), 8, 16, 1)
    return d2lai.Seq2Seq(enc, dec, data.tgt_vocab["<pad>"], **kwargs)


def test_seq2seq_as_the_julia_text_builds_it_trains_with_the_trainers_opt(fra_data, one_thread):
    d2lai.seed(0)
    model = _seq2seq(fra_data)  # Seq2Seq(encoder, decoder, tgt_pad): no lr
    trainer = d2lai.Trainer(model, fra_data, d2lai.Adam(0.01), max_epochs=2, verbose=False,
                            gradient_clip_val=1.0)
    _, metrics = d2lai.fit(trainer)
    assert metrics.history["train_loss"][1] < metrics.history["train_loss"][0]
    with pytest.raises(ValueError, match="built without lr, so it has no optimiser of its own"):
        d2lai.fit(d2lai.Trainer(_seq2seq(fra_data), fra_data, None, verbose=False))


def test_predict_step_as_a_function_takes_the_julia_keyword(fra_data):
    d2lai.seed(0)
    model = _seq2seq(fra_data)
    batch = fra_data.build(["i see the cat ."], ["je vois le chat ."])
    by_method = model.predict_step(batch, "cpu", 9, save_attention_weights=True)
    for kwargs in ({"save_attention_wts": True}, {"save_attention_weights": True}):
        preds, weights = d2lai.predict_step(model, batch, "cpu", 9, **kwargs)
        assert torch.equal(preds, by_method[0]) and len(weights) == len(by_method[1])
        flat = [w for step in weights for w in step]  # a list (of one) a step
        assert all(torch.equal(a, b) for a, b in zip(flat, [w for step in by_method[1]
                                                            for w in step], strict=True))
    assert d2lai.predict_step(model, batch, "cpu", 9)[1] == []
    with pytest.raises(TypeError, match="takes an encoder-decoder"):
        d2lai.predict_step(TinyClassifier(), batch, "cpu", 9)


def test_a_float64_language_model_trains_as_the_text_writes_model_f64(tmp_path, one_thread):
    write_fake_time_machine(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = d2lai.TimeMachine(64, 8, num_train=256, num_val=64, root=tmp_path)
    V = len(data.vocab)
    model = d2lai.RNNLMScratch(d2lai.RNNScratch(V, 16), V).double()  # |> f64
    seen = []
    model.register_forward_hook(lambda m, args, out: seen.append(out.dtype))
    trainer = d2lai.Trainer(model, data, d2lai.Optimiser(d2lai.Descent(1.0)), max_epochs=1,
                            gradient_clip_val=1.0, verbose=False)
    _, metrics = d2lai.fit(trainer)
    assert set(seen) == {torch.float64} and math.isfinite(metrics.history["val_ppl"][0])
    X, y = data.val
    assert torch.allclose(model.loss(model(X), y),
                          F.cross_entropy(model(X).reshape(-1, V), y.reshape(-1)))
