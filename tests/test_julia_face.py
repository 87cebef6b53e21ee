"""The Julia face's arithmetic and shapes (`import d2lai`) against the PyTorch edition's
(`d2lai.torch`): clipping, one-hot text batches, the text's own cells (sizes in `args`,
weights in namespaces and lists) and the fit-start check that every weight reaches the
optimiser."""

import logging

import pytest
import torch
from torch import nn

import d2lai
from d2lai import construct_nt_args
from d2lai.models.rnn import _said
from d2lai.testing import write_fake_time_machine
from examples.julia_rnn_figures import RNNScratch  # a cell as the Julia text writes it

V, H = 5, 4


@pytest.fixture(autouse=True)
def _seeded(one_thread):
    torch.manual_seed(0)


def small_time_machine(tmp_path, **kw):
    write_fake_time_machine(tmp_path)
    return d2lai.TimeMachine(kw.pop("batchsize", 16), kw.pop("num_steps", 8), num_train=64,
                             num_val=32, root=tmp_path, **kw)


# --- clipping ------------------------------------------------------------------------------------

def grads_after_one_step(clip, trainer_cls, tmp_path, caplog=None):
    """The gradients a Trainer leaves after its first clipped step, beside the raw ones."""
    data = small_time_machine(tmp_path)
    torch.manual_seed(1)
    model = d2lai.RNNLMScratch(d2lai.RNNScratch(len(data.vocab), H), len(data.vocab))
    seen = {}

    class Spy(d2lai.Callback):
        def on_loss(self, trainer, batch, loss):
            raw = torch.autograd.grad(loss, list(trainer.model.parameters()), retain_graph=True)
            seen["raw"] = torch.linalg.vector_norm(torch.stack([g.norm() for g in raw]))

        def on_train_batch_end(self, trainer, batch, loss):
            if "clipped" not in seen:
                seen["clipped"] = torch.linalg.vector_norm(torch.stack(
                    [p.grad.norm() for p in trainer.model.parameters()]))

    kwargs = {} if clip is None else {"clip": clip}
    trainer = trainer_cls(model, data, d2lai.Descent(1e-9), max_epochs=1, max_steps=1,
                          gradient_clip_val=10.0, verbose=False, board=False,
                          callbacks=[Spy()], **kwargs)
    d2lai.fit(trainer)
    return seen


def test_the_julia_trainer_rescales_every_gradient_to_the_clipping_norm(tmp_path, caplog):
    _said.discard("rescale")
    with caplog.at_level(logging.WARNING, logger="d2lai"):
        seen = grads_after_one_step(None, d2lai.Trainer, tmp_path)
    assert float(seen["raw"]) < 10  # below the norm: torch's clipping would leave it alone
    assert float(seen["clipped"]) == pytest.approx(10.0, rel=1e-5)
    assert "rescaled to global norm 10 at every step" in caplog.text
    assert "clip='max_norm'" in caplog.text


def test_clip_max_norm_is_one_argument_away(tmp_path):
    seen = grads_after_one_step("max_norm", d2lai.Trainer, tmp_path)
    assert float(seen["clipped"]) == pytest.approx(float(seen["raw"]), rel=1e-5)
    with pytest.raises(ValueError, match="clip must be one of 'rescale', 'max_norm'"):
        d2lai.Trainer(d2lai.LinearRegressionConcise(nn.Linear(1, 1)),
                      d2lai.SyntheticRegressionData([1.0], 0.0), d2lai.Descent(0.1), clip="norm")


def test_the_pytorch_editions_trainer_keeps_torchs_clipping():
    from d2lai import torch as d2l

    trainer = d2l.Trainer(max_epochs=1, gradient_clip_val=1)
    model = nn.Linear(2, 1)
    model.weight.grad, model.bias.grad = torch.tensor([[0.3, 0.0]]), torch.tensor([0.4])
    trainer.clip = "max_norm"  # what fit sets; the edition's clip_gradients then clips above
    trainer.clip_gradients(1.0, model)
    assert model.bias.grad.tolist() == pytest.approx([0.4])
    d2l.grad_clipping(model, 1.0)
    assert model.bias.grad.tolist() == pytest.approx([0.4])


# --- the Time Machine as the Julia package serves it --------------------------------------------

def test_time_machine_batches_are_one_hot_with_index_targets(tmp_path):
    data = small_time_machine(tmp_path)
    X, y = next(iter(d2lai.get_dataloader(data, train=False)))
    assert X.shape == (16, 8, len(data.vocab)) and X.dtype == torch.float32
    assert torch.equal(X.argmax(-1), data.X[64:80]) and torch.equal(y, data.y[64:80])
    # the PyTorch edition's TimeMachine still serves indices
    from d2lai import torch as d2l

    X2, _ = next(iter(d2l.TimeMachine(16, 8, 64, 32, root=tmp_path).val_dataloader()))
    assert X2.dtype == torch.long and X2.shape == (16, 8)


def test_a_language_model_gives_the_same_logits_for_one_hot_and_indices(tmp_path):
    data = small_time_machine(tmp_path)
    for model in (d2lai.RNNLMScratch(d2lai.GRUScratch(len(data.vocab), H), len(data.vocab)),
                  d2lai.RNNModelConcise(nn.GRU(len(data.vocab), H, batch_first=True), H,
                                        len(data.vocab)),
                  d2lai.RNNModelConcise(nn.GRU(len(data.vocab), H), H, len(data.vocab))):
        X, _ = next(iter(data.val_dataloader()))
        torch.testing.assert_close(model(X), model(X.argmax(-1)))


# --- the text's own cells ------------------------------------------------------------------------

class TextGates(d2lai.AbstractModel):
    """The text's LSTM layout: gates as construct_nt_args namespaces in one field."""

    def __init__(self, num_inputs, num_hiddens, sigma=0.1):
        super().__init__()
        W = lambda *shape: torch.randn(*shape) * sigma  # noqa: E731
        self.w = construct_nt_args(
            gate=construct_nt_args(W_x=W(num_hiddens, num_inputs), W_h=W(num_hiddens, num_hiddens),
                                   b=torch.zeros(num_hiddens)))
        self.args = construct_nt_args(num_inputs=num_inputs, num_hiddens=num_hiddens,
                                      sigma=sigma)

    def forward(self, x, state=None):
        H_ = torch.zeros(x.shape[0], self.args.num_hiddens) if state is None else state
        outs = []
        for x_ in x.unbind(1):
            H_ = torch.tanh(x_ @ self.w.gate.W_x.T + H_ @ self.w.gate.W_h.T + self.w.gate.b)
            outs.append(H_)
        return torch.stack(outs, 1), H_


class TextStack(d2lai.AbstractModel):
    def __init__(self, num_inputs, num_hiddens, num_layers):
        super().__init__()
        self.net = [RNNScratch(num_inputs if i == 0 else num_hiddens, num_hiddens)
                    for i in range(num_layers)]
        self.args = construct_nt_args(num_inputs=num_inputs, num_hiddens=num_hiddens)

    def forward(self, x, state=None):
        states = []
        for rnn in self.net:
            x, st = rnn(x)
            states.append(st)
        return x, states


@pytest.mark.parametrize("cell", [lambda: RNNScratch(V, H), lambda: TextGates(V, H),
                                  lambda: TextStack(V, H, 2)], ids=["trainable", "nt", "list"])
def test_the_texts_own_cells_are_registered_and_trained(cell, tmp_path):
    rnn = cell()
    names = {n for n, _ in rnn.named_parameters()}
    assert names and all(isinstance(p, nn.Parameter) for p in rnn.parameters())
    model = d2lai.RNNLMScratch(rnn, V)  # sizes read from args
    assert model.W_hq.shape == (H, V)
    before = {n: p.detach().clone() for n, p in rnn.named_parameters()}
    X, y = torch.nn.functional.one_hot(torch.randint(0, V, (8, 6)), V).float(), \
        torch.randint(0, V, (8, 6))
    data = d2lai.TensorLoader((X, y), 4)
    data.train_dataloader = data.val_dataloader = lambda: d2lai.TensorLoader((X, y), 4)
    d2lai.fit(d2lai.Trainer(model, data, d2lai.Descent(1.0), max_epochs=1, verbose=False,
                            board=False, gradient_clip_val=1.0))
    after = dict(rnn.named_parameters())
    assert all(not torch.equal(before[n], after[n]) for n in before)


def test_weights_torch_cannot_see_are_refused_before_training():
    class Hidden(d2lai.AbstractModel):
        def __init__(self):
            super().__init__()
            self.args = construct_nt_args(num_inputs=V, num_hiddens=H)
            self.W = torch.randn(H, V)  # a plain field, not declared trainable

        def forward(self, x, state=None):
            return torch.tanh(x @ self.W.T), None

    model = d2lai.RNNLMScratch(Hidden(), V)
    data = d2lai.SyntheticRegressionData([1.0], 0.0)
    with pytest.raises(ValueError, match=r"Hidden\.W|rnn\.W") as err:
        d2lai.fit(d2lai.Trainer(model, data, d2lai.Descent(0.1), max_epochs=1, verbose=False,
                                board=False))
    assert "trainable = (...)" in str(err.value) and "nn.Parameter" in str(err.value)

    class InADict(d2lai.AbstractModel):
        def __init__(self):
            super().__init__()
            self.cells = {"a": nn.Linear(V, H)}  # torch does not look into dicts

    with pytest.raises(ValueError, match=r"cells\.a is a Linear .* nn\.ModuleList"):
        d2lai.checks.unreached(InADict(), torch.optim.SGD([nn.Parameter(torch.ones(1))], 0.1))


def test_stacked_rnn_takes_the_texts_rnn_keyword():
    stack = d2lai.StackedRNN(V, H, 2)  # the package's default: Flux-initialised GRUs
    assert all(isinstance(layer, nn.GRU) and layer.batch_first for layer in stack.rnns)
    assert all(not layer.bias_ih_l0.detach().any() for layer in stack.rnns)
    lm = d2lai.RNNModelConcise(stack, H, V)  # its Dense(h => V) as Flux makes it
    assert not lm.linear.bias.detach().any() and lm.linear.weight.abs().max() > 1 / H ** 0.5
    # Flux's cells have one bias: torch's hidden-side one stays zero, out of training
    assert not any(layer.bias_hh_l0.requires_grad for layer in stack.rnns)
    out, states = stack(torch.randn(3, 7, V))
    assert out.shape == (3, 7, H) and len(states) == 2
    scratch = d2lai.StackedRNN(V, H, 2, rnn=d2lai.GRUScratch)
    assert all(isinstance(c, d2lai.GRUScratch) for c in scratch.rnns)
    assert scratch(torch.randn(3, 7, V))[0].shape == (3, 7, H)
    lstm = d2lai.StackedRNN(V, H, 2, rnn=nn.LSTM)
    assert isinstance(lstm(torch.randn(3, 7, V))[1][0], tuple)


def test_lstm_scratch_is_the_packages_and_says_so(caplog):
    lstm = d2lai.LSTMScratch(V, H)
    assert lstm.args.sigma == 0.1 and lstm.args.num_hiddens == H
    X = torch.randn(2, 3, V)
    _said.discard("lstm")
    with caplog.at_level(logging.WARNING, logger="d2lai"):
        out, (H_, C) = lstm(X)
        lstm(X)
    assert caplog.text.count("the hidden state is O * C") == 1  # said once
    torch.testing.assert_close(out[:, -1], H_)
    P = dict(lstm.named_parameters())
    x, h, c = X[:, 0], torch.zeros(2, H), torch.zeros(2, H)
    i = torch.sigmoid(x @ P["W_xi"] + h @ P["W_hi"] + P["b_i"])
    f = torch.sigmoid(x @ P["W_xf"] + h @ P["W_hf"] + P["b_f"])
    o = torch.sigmoid(x @ P["W_xo"] + h @ P["W_ho"] + P["b_o"])
    c = f * c + i * torch.tanh(x @ P["W_xc"] + h @ P["W_hc"] + P["b_c"])
    torch.testing.assert_close(out[:, 0], o * c)  # the text's H = O * C
    lstm.tanh_state = True
    torch.testing.assert_close(lstm(X)[0][:, 0], o * torch.tanh(c))
