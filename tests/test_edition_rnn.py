"""The recurrent-neural-networks chapter through `from d2lai import torch as d2l`: The Time
Machine as windows of characters, the scratch RNN cell and language model, the concise ones over
torch's layers, perplexity on the board, greedy prediction, gradient clipping; all on a
generated stand-in for the book's text."""

import math
import re

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from d2lai import torch as d2l


@pytest.fixture
def text(tm_root, monkeypatch):
    """The edition's data modules read the stand-in from the data folder, as the book's read
    theirs from ../data."""
    monkeypatch.setenv("D2LAI_DATA", str(tm_root))
    return tm_root


def small_time_machine():
    return d2l.TimeMachine(batch_size=64, num_steps=16, num_train=640, num_val=128)


def test_time_machine_gives_windows_of_characters_and_the_next_ones(text, one_thread):
    data = d2l.TimeMachine(batch_size=2, num_steps=10)
    raw = (text / "timemachine.txt").read_text()
    letters = re.sub("[^A-Za-z]+", " ", raw).lower()
    assert data._download() == raw
    assert data._preprocess(raw) == letters and data._tokenize("ab c") == ["a", "b", " ", "c"]
    corpus, vocab = data.build(raw)
    assert isinstance(vocab, d2l.Vocab) and len(vocab) == len(set(letters)) + 1  # + '<unk>'
    assert "".join(vocab.to_tokens(corpus[:40])) == letters[:40]
    assert data.X.shape == (len(letters) - 10, 10) and data.num_classes == len(data.vocab)
    assert torch.equal(data.X[:, 1:], data.Y[:, :-1])  # Y is X one character later
    assert "".join(data.vocab.to_tokens(data.X[3])) == letters[3:13]
    X, Y = next(iter(data.train_dataloader()))
    assert X.shape == Y.shape == (2, 10) and X.dtype == torch.int64
    val = d2l.TimeMachine(batch_size=100, num_steps=10, num_train=300, num_val=200)
    rows = torch.cat([X for X, _ in val.val_dataloader()])
    assert torch.equal(rows, val.X[300:500])  # in order, right after the training windows


def test_a_replaced_init_builds_from_download_and_build(text, one_thread):
    """The language-model section rewrites `__init__` with `add_to_class`, from `_download`
    and `build`: the class offers both."""
    class TimeMachine(d2l.TimeMachine):
        pass

    @d2l.add_to_class(TimeMachine)
    def __init__(self, batch_size, num_steps, num_train=100, num_val=50):
        super(d2l.TimeMachine, self).__init__()
        self.save_hyperparameters()
        corpus, self.vocab = self.build(self._download())
        self.X = torch.tensor([corpus[i:i + num_steps] for i in range(len(corpus) - num_steps)])
        self.Y = torch.tensor([corpus[i + 1:i + num_steps + 1]
                               for i in range(len(corpus) - num_steps)])

    mine = TimeMachine(batch_size=8, num_steps=5)
    made = d2l.TimeMachine(batch_size=8, num_steps=5, num_train=100, num_val=50)
    assert torch.equal(mine.X, made.X) and torch.equal(mine.Y, made.Y)
    assert len(list(mine.train_dataloader())) == math.ceil(100 / 8)


def test_scratch_rnn_returns_a_state_per_step_as_a_list():
    torch.manual_seed(0)
    rnn = d2l.RNNScratch(num_inputs=3, num_hiddens=4)
    X = torch.randn(5, 2, 3)  # (num_steps, batch_size, num_inputs)
    outputs, state = rnn(X)
    d2l.check_len(outputs, 5)
    d2l.check_shape(outputs[0], (2, 4))
    H = torch.zeros(2, 4)
    for t in range(5):  # by hand
        H = torch.tanh(X[t] @ rnn.W_xh + H @ rnn.W_hh + rnn.b_h)
        torch.testing.assert_close(outputs[t], H)
    torch.testing.assert_close(state, H)
    with pytest.raises(AssertionError, match=r"list's length 5 != expected length 4"):
        d2l.check_len(outputs, 4)
    with pytest.raises(AssertionError, match=r"tensor's shape \(2, 4\) != expected shape"):
        d2l.check_shape(state, (4, 2))


def test_scratch_language_model_scores_every_position():
    torch.manual_seed(0)
    rnn = d2l.RNNScratch(num_inputs=6, num_hiddens=8)
    model = d2l.RNNLMScratch(rnn, vocab_size=6, lr=1)
    assert model.W_hq.shape == (8, 6) and model.lr == 1
    X = torch.randint(0, 6, (3, 7))
    Y_hat = model(X)
    d2l.check_shape(Y_hat, (3, 7, 6))
    outputs, _ = rnn(F.one_hot(X.T, 6).float())
    expected = torch.stack([H @ model.W_hq + model.b_q for H in outputs], 1)  # (3, 7, 6)
    torch.testing.assert_close(Y_hat, expected)
    Y = torch.randint(0, 6, (3, 7))
    torch.testing.assert_close(model.loss(Y_hat, Y),
                               F.cross_entropy(Y_hat.reshape(-1, 6), Y.reshape(-1)))
    assert model.loss(Y_hat, Y, averaged=False).shape == (21,)
    assert isinstance(model.configure_optimizers(), torch.optim.SGD)
    with pytest.raises(ValueError, match="rnn takes 6 inputs but the tokens come one-hot in "
                                         "vocab_size=5"):
        d2l.RNNLMScratch(rnn, vocab_size=5)


def book_predict(model, prefix, num_preds, vocab):
    """Greedy prediction fed one token at a time, warm-up included, as the section does it."""
    state, outputs = None, [vocab[prefix[0]]]
    for i in range(len(prefix) + num_preds - 1):
        rnn_outputs, state = model.rnn(model.one_hot(torch.tensor([[outputs[-1]]])), state)
        if i < len(prefix) - 1:
            outputs.append(vocab[prefix[i + 1]])
        else:
            outputs.append(int(model.output_layer(rnn_outputs).argmax(2).reshape(1)))
    return "".join(vocab.idx_to_token[i] for i in outputs)


def test_scratch_language_model_trains_with_clipping_and_predicts(text, one_thread):
    torch.manual_seed(0)
    data = small_time_machine()
    rnn = d2l.RNNScratch(num_inputs=len(data.vocab), num_hiddens=32)
    model = d2l.RNNLMScratch(rnn, vocab_size=len(data.vocab), lr=1)
    trainer = d2l.Trainer(max_epochs=3, gradient_clip_val=1)
    trainer.fit(model, data)
    ppl = trainer.metrics.history["val_ppl"]
    assert ppl[-1] < 0.75 * len(data.vocab)  # chance is one in len(vocab)
    torch.testing.assert_close(ppl, [math.exp(v) for v in trainer.metrics.history["val_loss"]])
    assert set(model.board.data) == {"train_ppl", "val_ppl"}
    text_out = model.predict("it has", 20, data.vocab, d2l.try_gpu())
    assert len(text_out) == 26 and text_out.startswith("it has")
    assert text_out == book_predict(model, "it has", 20, data.vocab)


def test_concise_rnn_and_language_model_over_torch_layers(text, one_thread):
    torch.manual_seed(0)
    data = small_time_machine()
    V = len(data.vocab)
    rnn = d2l.RNN(num_inputs=V, num_hiddens=32)
    assert isinstance(rnn, d2l.Module) and isinstance(rnn.rnn, nn.RNN)
    inputs = torch.randn(4, 2, V)
    outputs, H = rnn(inputs)
    torch.testing.assert_close(outputs, rnn.rnn(inputs)[0])
    assert outputs.shape == (4, 2, 32) and H.shape == (1, 2, 32)
    model = d2l.RNNLM(rnn, vocab_size=V, lr=1)
    assert model.linear.in_features == 32 and model.linear.out_features == V
    X = data.X[:3]
    torch.testing.assert_close(model(X), model.linear(rnn(F.one_hot(X.T, V).float())[0])
                               .swapaxes(0, 1))
    before = model.predict("it has", 10, data.vocab)
    assert len(before) == 16
    trainer = d2l.Trainer(max_epochs=4, gradient_clip_val=1)
    trainer.fit(model, data)
    history = trainer.metrics.history
    assert history["train_ppl"][-1] < history["train_ppl"][0] < V
    assert model.predict("it has", 10, data.vocab, d2l.try_gpu()) == book_predict(
        model, "it has", 10, data.vocab)


def test_a_language_model_written_on_classifier_trains_through_the_trainer(text, one_thread):
    """The scratch section writes its own model on `d2l.Classifier`, with a cell that returns a
    list of steps and a validation step that only plots: the trainer's first-batch check takes
    its (N, T, V) outputs and the classifier's loss flattens them."""
    class Cell(d2l.Module):
        def __init__(self, num_inputs, num_hiddens):
            super().__init__()
            self.save_hyperparameters()
            self.W = nn.Parameter(torch.randn(num_inputs + num_hiddens, num_hiddens) * 0.01)

        def forward(self, inputs, state=None):
            H = torch.zeros(inputs.shape[1], self.num_hiddens) if state is None else state
            steps = []
            for X in inputs:
                H = torch.tanh(torch.cat((X, H), 1) @ self.W)
                steps.append(H)
            return steps, H

    class LM(d2l.Classifier):
        def __init__(self, rnn, vocab_size, lr=0.01):
            super().__init__()
            self.save_hyperparameters()
            self.out = nn.Linear(rnn.num_hiddens, vocab_size)

        def forward(self, X, state=None):
            steps, _ = self.rnn(F.one_hot(X.T, self.vocab_size).float(), state)
            return torch.stack([self.out(H) for H in steps], 1)  # (N, T, V)

        def training_step(self, batch):
            loss = self.loss(self(*batch[:-1]), batch[-1])
            self.plot("ppl", torch.exp(loss), train=True)
            return loss

        def validation_step(self, batch):
            self.plot("ppl", torch.exp(self.loss(self(*batch[:-1]), batch[-1])), train=False)

    torch.manual_seed(0)
    data = small_time_machine()
    model = LM(Cell(len(data.vocab), 16), len(data.vocab), lr=1)
    trainer = d2l.Trainer(max_epochs=2, gradient_clip_val=1)
    trainer.fit(model, data)
    assert trainer.metrics.train_loss < math.log(len(data.vocab))
    assert trainer.metrics.train_acc > 1 / len(data.vocab)  # scored over every position
    assert "val_loss" not in trainer.metrics.history  # its validation step returns nothing
    assert len(model.board.data["val_ppl"]) == 2


def test_grad_clipping_scales_the_global_norm_down_to_theta():
    torch.manual_seed(0)
    net = nn.Linear(4, 3)
    net(torch.randn(5, 4)).pow(2).sum().backward()
    grads = [p.grad.clone() for p in net.parameters()]
    norm = torch.sqrt(sum((g ** 2).sum() for g in grads))
    d2l.grad_clipping(net, float(norm) / 2)
    for p, g in zip(net.parameters(), grads, strict=True):
        torch.testing.assert_close(p.grad, g / 2)

    class Scratch:  # the from-scratch models of the older chapters keep a list `params`
        params = [torch.ones(3, requires_grad=True)]

    Scratch.params[0].grad = torch.tensor([3.0, 4.0, 0.0])
    d2l.grad_clipping(Scratch(), 10.0)  # norm 5: left as it is
    assert Scratch.params[0].grad.tolist() == [3.0, 4.0, 0.0]
    d2l.grad_clipping(Scratch(), 1.0)
    torch.testing.assert_close(Scratch.params[0].grad, torch.tensor([0.6, 0.8, 0.0]))
