"""The Julia edition's sections of chapters 3-10 that use d2lai, translated line for line (the
text's `features x steps x batch` arrays read batch first, `(N, T, features)`), on small
generated data: each runs as typed and gives the text's shapes. Then every public name of the
Julia package, called with the Julia calling shape."""

import json
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import d2lai
from d2lai import (
    AbstractModel,
    Descent,
    RNNLMScratch,
    RNNModelConcise,
    SyntheticRegressionData,
    Trainer,
    construct_nt_args,
)
from examples.julia_rnn_figures import LSTMScratch, RNNScratch, StackedRNNScratch


@pytest.fixture(autouse=True)
def _seeded(one_thread):
    torch.manual_seed(0)


def quiet(**kw):
    return dict(verbose=False, board=False, **kw)


# --- 3.4 linear regression from scratch: the text's own SGD and fit_epoch ----------------------

class SGD:
    def __init__(self, params, lr):
        self.params, self.lr = params, lr


def step_(sgd, model):  # step!(sgd, model, grads)
    with torch.no_grad():
        model.w -= sgd.lr * model.w.grad
        model.b -= sgd.lr * model.b.grad


class LinearRegressionScratch(AbstractModel):
    trainable = ("w", "b")

    def __init__(self, num_inputs, lr, sigma=0.01):
        super().__init__()
        self.w = torch.normal(0, sigma, (1, num_inputs))
        self.b = torch.zeros(1)
        self.args = construct_nt_args(num_inputs=num_inputs, lr=lr, sigma=sigma)

    def forward(self, x):
        return x @ self.w.T + self.b

    def loss(self, y_pred, y):
        return (0.5 * (y_pred - y) ** 2).mean()

    def fit_epoch(self, opt, train_dataloader=None, val_dataloader=None, gradient_clip_val=0.0):
        losses = construct_nt_args(train_losses=[], val_losses=[], val_acc=[])
        for batch in train_dataloader:
            self.zero_grad()
            d2lai.training_step(self, batch).backward()
            step_(opt, self)
            losses.train_losses.append(d2lai.training_step(self, batch).item())
        for batch in val_dataloader:
            loss, _ = d2lai.validation_step(self, batch)
            losses.val_losses.append(loss.item())
        return losses


def test_3_4_linear_regression_from_scratch_with_its_own_fit_epoch():
    model = LinearRegressionScratch(2, 0.03)
    sgd = SGD(None, 0.03)
    data = SyntheticRegressionData([2, -3.4], 4.3)
    trainer = Trainer(model, data, sgd, max_epochs=5, **quiet())
    _, metrics = d2lai.fit(trainer)
    assert model.w.detach().flatten().tolist() == pytest.approx([2, -3.4], abs=0.05)
    assert float(model.b.detach()) == pytest.approx(4.3, abs=0.05)
    assert metrics.epochs == 5 and metrics.val_loss < 0.01


def test_3_5_linear_regression_concise():
    data = SyntheticRegressionData([2, -3.4], 4.2)
    model = d2lai.LinearRegressionConcise(nn.Linear(2, 1))
    _, metrics = d2lai.fit(Trainer(model, data, Descent(0.03), max_epochs=3, **quiet()))
    assert model.net.weight.detach().flatten().tolist() == pytest.approx([2, -3.4], abs=0.05)


# --- 4.2 and 4.4: Fashion-MNIST as the text reads it ----------------------------------------

def test_4_2_fashion_mnist_features_and_flattened_batches(fashion_root):
    data = d2lai.FashionMNISTData(batchsize=64, root=fashion_root)
    assert len(data.train.features) == len(data.train.targets) == len(data.train[0])
    X, y = next(iter(d2lai.get_dataloader(data)))
    assert X.shape == (64, 1, 28, 28)
    X, _ = next(iter(d2lai.get_dataloader(data, train=True, flatten=True)))
    assert X.shape == (64, 784)
    assert data.labels[int(y[0])] == data.text_labels([y[0]])[0]


def test_7_label_smoothing_is_said_as_soft_labels(fashion_root):
    from conftest import TinyClassifier

    data = d2lai.FashionMNISTData(batchsize=16, root=fashion_root, num_train=64, num_val=32)
    model = TinyClassifier()
    y_hat = model(next(iter(data.val_dataloader()))[0])
    smooth = F.one_hot(torch.arange(16) % 10, 10).float() * 0.9 + 0.01
    with pytest.raises(ValueError, match=r"the labels are soft labels .* shape \(16, 10\).*"
                                         r"class indices of shape \(16,\)"):
        model.check_batch(y_hat, smooth, data)
    with pytest.raises(ValueError, match="the labels are one-hot labels"):
        model.check_batch(y_hat, F.one_hot(torch.arange(16) % 10, 10).float(), data)


# --- 8.3 and 8.5: the Time Machine and the RNN from scratch ---------------------------------

def test_8_3_the_time_machine_serves_one_hot_windows(tm_root):
    data = d2lai.TimeMachine(2, 10, root=tm_root)
    x, y = next(iter(d2lai.get_dataloader(data)))
    assert x.shape == (2, 10, len(data.vocab)) and y.shape == (2, 10)
    assert data.X.shape[1] == 10 and data.y.shape[1] == 10
    corpus, vocab = d2lai.build(d2lai.TimeMachine, "it has a tim", None)
    assert d2lai.to_tokens(vocab, corpus) == list("it has a tim")


def test_8_5_rnn_from_scratch_as_typed(tm_root):
    batch_size, num_inputs, num_hiddens, num_steps = 2, 16, 32, 100
    rnn = RNNScratch(num_inputs, num_hiddens)
    X = torch.ones(batch_size, num_steps, num_inputs)
    outputs, state = rnn(X)
    assert outputs.shape == (batch_size, num_steps, num_hiddens)
    assert state.shape == (batch_size, num_hiddens)
    model = RNNLMScratch(rnn, num_inputs)
    assert model(torch.ones(batch_size, num_steps, num_inputs)).shape == \
        (batch_size, num_steps, num_inputs)

    data = d2lai.TimeMachine(64, 16, num_train=512, num_val=128, root=tm_root)
    rnn = RNNScratch(len(data.vocab), 32)
    model = RNNLMScratch(rnn, len(data.vocab)).double()  # |> f64
    opt = d2lai.Optimiser(Descent(1.0))
    trainer = Trainer(model, data, opt, max_epochs=2, gradient_clip_val=1.0,
                      board_yscale="identity", **quiet())
    m, _ = d2lai.fit(trainer)
    before = rnn.Whx.detach().clone()
    text = d2lai.prediction("it has", m, data.vocab, 20)
    assert text.startswith("it has") and len(text) == 26
    assert torch.equal(before, rnn.Whx.detach())


# --- 8.6: the concise RNN, the text's own RNNLM class ---------------------------------------

class RNNLM(d2lai.AbstractRNNClassifier):
    def __init__(self, rnn, num_hiddens, vocab_size):
        super().__init__(rnn, vocab_size)
        self.net = nn.Linear(num_hiddens, vocab_size)

    def output_layer(self, out):
        return self.net(out)

    def forward(self, x):
        out = self.rnn(x)[0]
        return d2lai.output_layer(self, out)


def test_8_6_concise_rnn_with_the_texts_own_model(tm_root):
    num_hiddens = 32
    data = d2lai.TimeMachine(64, 16, num_train=512, num_val=128, root=tm_root)
    rnn = nn.RNN(len(data.vocab), num_hiddens, batch_first=True)  # Flux.RNN(V => H)
    model = RNNLM(rnn, num_hiddens, len(data.vocab)).double()
    text = d2lai.prediction("it has", model, data.vocab, 20, state=torch.zeros(num_hiddens))
    assert len(text) == 26
    m, metrics = d2lai.fit(Trainer(model, data, Descent(1.0), max_epochs=2,
                                   gradient_clip_val=1.0, **quiet()))
    assert math.isfinite(metrics.val_loss) and metrics.history["val_ppl"][-1] < len(data.vocab)


# --- 9.1 and 9.3: the LSTM's namespaces of gates, stacked GRUs in a list ---------------------

def test_9_1_lstm_from_scratch_trains_its_gates(tm_root):
    data = d2lai.TimeMachine(64, 16, num_train=256, num_val=64, root=tm_root)
    lstm = LSTMScratch(len(data.vocab), 32)
    model = RNNLMScratch(lstm, len(data.vocab)).double()
    before = lstm.w.forget_gate.W_fx.detach().clone()
    m, _ = d2lai.fit(Trainer(model, data, Descent(1.0), max_epochs=1, gradient_clip_val=1.0,
                             **quiet()))
    assert not torch.equal(before, lstm.w.forget_gate.W_fx.detach())
    assert len(d2lai.prediction("it has", m, data.vocab, 20)) == 26
    concise = RNNModelConcise(nn.LSTM(len(data.vocab), 32, batch_first=True), 32,
                              len(data.vocab)).double()
    text = d2lai.prediction("it has", concise, data.vocab, 5,
                            state=(torch.zeros(32, dtype=torch.float64),) * 2)
    assert len(text) == 11


def test_9_3_deep_grus_scratch_and_concise(tm_root):
    data = d2lai.TimeMachine(64, 16, num_train=256, num_val=64, root=tm_root)
    V = len(data.vocab)
    stacked = StackedRNNScratch(V, 32, 2)
    assert len(list(stacked.parameters())) == 2 * 9
    for model in (RNNLMScratch(stacked, V),
                  RNNModelConcise(d2lai.StackedRNN(V, 32, 2), 32, V)):
        model = model.double()
        _, metrics = d2lai.fit(Trainer(model, data, Descent(4.0), max_epochs=1,
                                       gradient_clip_val=1.0, **quiet()))
        assert math.isfinite(metrics.val_loss)


# --- 10.2, 10.3, 10.4, 10.5: attention as the text calls it ---------------------------------

def test_10_3_scoring_functions_return_output_and_weights():
    X = torch.rand(2, 2, 4)
    W = d2lai.masked_softmax(X, torch.tensor([2, 3]))
    assert W.shape == (2, 2, 4) and float(W[0, :, 2:].abs().sum()) == 0
    assert d2lai.masked_softmax(X, [[1, 3], [2, 4]])[1, 0, 2:].abs().sum() == 0
    queries, keys = torch.randn(2, 1, 2), torch.randn(2, 10, 2)
    vals = torch.arange(40, dtype=torch.float32).reshape(1, 10, 4).repeat(2, 1, 1)
    valid_len = torch.tensor([2, 6])
    attention = d2lai.DotProductAttention(nn.Dropout(0.5), None).eval()
    scores, attn_weights = attention(queries, keys, vals, valid_len)
    assert scores.shape == (2, 1, 4) and attn_weights.shape == (2, 1, 10)
    additive = d2lai.AdditiveAttention(2, 20, 4, 8, 0.1).eval()
    context, weights = additive(torch.randn(2, 1, 20), keys, vals, valid_len)
    assert context.shape == (2, 1, 4) and weights.shape == (2, 1, 10)
    torch.testing.assert_close(context, weights @ vals)
    fig = d2lai.show_heatmaps(attn_weights.reshape(1, 1, 2, 10)[..., :1, :], "Queries", "Keys")
    image = fig.axes[0].images[0].get_array()
    assert image.shape == (10, 1)  # keys down, queries across, as the text draws them


class Seq2SeqAttentionDecoder(AbstractModel):
    """10.4, the text's decoder (its StackedRNN: GRUs, as the Julia package builds them)."""

    def __init__(self, vocab_size, embed_size, num_hiddens, num_layers, dropout=0.0):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed_size)
        self.rnn = d2lai.StackedRNN(embed_size + num_hiddens, num_hiddens, num_layers)
        self.attention = d2lai.AdditiveAttention(num_hiddens, num_hiddens, num_hiddens,
                                                 num_hiddens, dropout)
        self.dense = nn.Linear(num_hiddens, vocab_size)
        self.args = construct_nt_args(vocab_size=vocab_size, embed_size=embed_size,
                                      num_hiddens=num_hiddens, num_layers=num_layers)

    def init_state(self, enc_all_out, enc_valid_lens):
        outputs, hidden_state = enc_all_out
        return outputs, hidden_state, enc_valid_lens

    def forward(self, X, state, return_attention_wts=False):
        enc_outputs, hidden_state, enc_valid_lens = state
        embeds = self.embedding(X)  # (N, T, embed)
        outs, wts = [], []
        for x in embeds.unbind(1):
            query = hidden_state[-1].unsqueeze(1)  # (N, 1, h)
            context, attention_wts = self.attention(query, enc_outputs, enc_outputs,
                                                    enc_valid_lens)
            embs_and_context = torch.cat((x.unsqueeze(1), context), -1)
            out, hidden_state = self.rnn(embs_and_context, hidden_state)
            outs.append(out)
            wts.append(attention_wts)
        out_dense = self.dense(torch.cat(outs, 1))
        state = (enc_outputs, hidden_state, enc_valid_lens)
        return (out_dense, state, wts) if return_attention_wts else (out_dense, state)


def test_10_4_bahdanau_decoder_as_typed_trains_and_translates(fra_root):
    vocab_size, embed_size, num_hiddens, num_layers = 10, 8, 16, 2
    batch_size, num_steps = 4, 7
    encoder = d2lai.Seq2SeqEncoder(vocab_size, embed_size, num_hiddens, num_layers)
    decoder = Seq2SeqAttentionDecoder(vocab_size, embed_size, num_hiddens, num_layers)
    X = torch.zeros(batch_size, num_steps, dtype=torch.long)
    state = d2lai.init_state(decoder, encoder(X, None), None)
    output, state = decoder(X, state)
    assert output.shape == (batch_size, num_steps, vocab_size)
    assert state[0].shape == (batch_size, num_steps, num_hiddens)

    data = d2lai.MTFraEng(32, num_train=128, num_val=32, root=fra_root)
    encoder = d2lai.Seq2SeqEncoder(len(data.src_vocab), 32, 32, 2)
    for decoder in (Seq2SeqAttentionDecoder(len(data.tgt_vocab), 32, 32, 1),
                    d2lai.Seq2SeqAttentionDecoder(len(data.tgt_vocab), 32, 32, 1)):
        model = d2lai.Seq2Seq(encoder, decoder, data.tgt_vocab["<pad>"]).double()
        m, metrics = d2lai.fit(Trainer(model, data, d2lai.Adam(0.01), max_epochs=2,
                                       gradient_clip_val=1.0, **quiet()))
        assert math.isfinite(metrics.val_loss)
    engs, fras = ["go .", "i lost ."], ["va !", "j'ai perdu ."]
    batch = d2lai.build(data, engs, fras)
    preds, weights = d2lai.predict_step(m, batch, "cpu", data.args.num_steps,
                                        save_attention_wts=True)
    assert preds.shape[0] == 2 and len(weights) == preds.shape[1]
    for fr, p in zip(fras, preds, strict=True):
        translation = []
        for token in d2lai.to_tokens(data.tgt_vocab, p):
            if token == "<eos>":
                break
            translation.append(token)
        assert 0 <= d2lai.bleu(" ".join(translation), fr, 2) <= 1


def test_10_5_multi_head_attention_as_typed():
    num_hiddens, num_heads = 100, 5
    attention = d2lai.MultiHeadedAttention(num_hiddens, num_heads, 0.5).eval()
    batch_size, num_queries, num_kvpairs = 2, 4, 6
    valid_lens = torch.tensor([3, 2])
    X = torch.ones(batch_size, num_queries, num_hiddens)
    Y = torch.ones(batch_size, num_kvpairs, num_hiddens)
    out, weights = attention(X, Y, Y, valid_lens)
    assert out.shape == (batch_size, num_queries, num_hiddens)
    assert weights.shape == (batch_size * num_heads, num_queries, num_kvpairs)
    q = d2lai.transpose_qkv(attention, X)
    assert q.shape == (batch_size * num_heads, num_queries, num_hiddens // num_heads)
    torch.testing.assert_close(d2lai.transpose_output(attention, q), X)


# --- every public name of the Julia package, with the Julia calling shape --------------------

JULIA_NAMES = """AbstractClassifier AbstractConciseModel AbstractData AbstractEncoderDecoder
AbstractModel AbstractRNNClassifier AbstractTrainer AdditiveAttention DotProductAttention
FashionMNISTData GRUScratch LSTMScratch LinearRegressionConcise MTFraEng Model
MultiHeadedAttention ProgressBoard RNNLMScratch RNNModelConcise RNNScratch Seq2Seq
Seq2SeqAttentionDecoder Seq2SeqEncoder StackedRNN SyntheticRegressionData TimeMachine Trainer
Vocab DATA_URL _download accuracy bleu build clip_gradients configure_optimizers
construct_nt_args corr2d draw draw_metrics fit forward get_dataloader init_state loss
masked_softmax output_layer predict_step prediction prepare_data prepare_model save_gif
save_plot sequence_mask show_heatmaps show_list_len_pair_hist to_gpu to_tokens
train_dataloader training_step transpose_output transpose_qkv unk val_dataloader
validation_step""".split()  # clip_gradients! is clip_gradients; fit_epoch: test_3_4


def test_the_julia_packages_public_names(tm_root, fra_root, tmp_path, fashion_root):
    called = set()

    def call(name, *args, **kwargs):
        called.add(name)
        return getattr(d2lai, name)(*args, **kwargs)

    assert d2lai.DATA_URL.startswith("http")
    called.add("DATA_URL")
    for name in ("AbstractData", "AbstractModel", "AbstractClassifier", "AbstractConciseModel",
                 "AbstractRNNClassifier", "AbstractEncoderDecoder", "AbstractTrainer"):
        assert isinstance(getattr(d2lai, name), type)
        called.add(name)
    data = call("SyntheticRegressionData", [2, -3.4], 4.2, 0.01, 100, 50, 16)
    assert len(call("get_dataloader", data, train=True)) == 7
    assert len(call("train_dataloader", data)) == 7 and len(call("val_dataloader", data)) == 4
    model = call("LinearRegressionConcise", nn.Linear(2, 1))
    X, y = next(iter(d2lai.val_dataloader(data)))
    y_hat = call("forward", model, X)
    call("loss", model, y_hat, y)
    call("training_step", model, (X, y))
    assert call("validation_step", model, (X, y))[1] is None
    assert call("configure_optimizers", model) is None  # the package's: nothing
    net = call("Model", nn.Linear(2, 1), construct_nt_args(lr=0.1))
    assert net.args.lr == 0.1
    called.add("construct_nt_args")
    trainer = call("Trainer", model, data, Descent(0.03), max_epochs=1, verbose=False)
    m, _ = call("fit", trainer)
    call("draw", trainer, 1, [0.5, 0.4], 2, "train_loss")
    xs, ys = trainer.board.series["train_loss"]
    assert xs[-2:] == [1.5, 2.0] and ys[-2:] == pytest.approx([0.5, 0.4])
    call("draw_metrics", model, 2, trainer, construct_nt_args(train_losses=[0.3], val_losses=[]))
    board = call("ProgressBoard", "epochs", [])
    call("draw", board, 1, 0.5, "loss")
    call("save_plot", board, str(tmp_path / "b.png"))
    call("save_gif", board, str(tmp_path / "b.gif"), fps=2)
    assert call("prepare_model", model, False) is model
    assert len(call("prepare_data", data, False)) == 2
    assert call("to_gpu", model) is model or torch.cuda.is_available()
    assert call("corr2d", torch.ones(3, 3), torch.ones(2, 2)).tolist() == [[4.0] * 2] * 2
    text = call("_download", d2lai.TimeMachine, root=tm_root)
    assert isinstance(text, str) and len(text) > 1000
    tmd = call("TimeMachine", 16, 8, 64, 32, root=tm_root)
    corpus, vocab = call("build", d2lai.TimeMachine, text[:200])
    v = call("Vocab", list("hello"))
    assert call("to_tokens", v, [call("unk", v)]) == ["<unk>"]
    called.add("Vocab")
    for c in (call("RNNScratch", len(tmd.vocab), 8, sigma=0.01),
              call("LSTMScratch", len(tmd.vocab), 8, sigma=0.1),
              call("GRUScratch", len(tmd.vocab), 8, sigma=0.01)):
        assert c.args.num_hiddens == 8
    srnn = call("StackedRNN", len(tmd.vocab), 8, 2)
    lm = call("RNNModelConcise", srnn, 8, len(tmd.vocab))
    scratch = call("RNNLMScratch", d2lai.RNNScratch(len(tmd.vocab), 8), len(tmd.vocab))
    Xt, yt = next(iter(d2lai.train_dataloader(tmd)))
    out = call("output_layer", scratch, scratch.rnn(Xt)[0])
    assert out.shape == (16, 8, len(tmd.vocab))
    assert call("accuracy", scratch, out, yt).ndim == 0
    scratch.zero_grad()
    scratch.loss(scratch(Xt), yt).backward()
    call("clip_gradients", None, 1.0, scratch)  # clip_gradients!(gs, 1., model)
    norm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in scratch.parameters()]))
    assert float(norm) == pytest.approx(1.0, rel=1e-5)
    assert len(call("prediction", "it", lm, tmd.vocab, 3)) == 5
    mt = call("MTFraEng", 16, 9, num_train=64, num_val=16, root=fra_root)
    fig = call("show_list_len_pair_hist", ["src", "tgt"], "# tokens", "count", [[1, 2]], [[3]])
    assert fig is not None
    enc = call("Seq2SeqEncoder", len(mt.src_vocab), 8, 8, 2)
    dec = call("Seq2SeqAttentionDecoder", len(mt.tgt_vocab), 8, 8, 2)
    s2s = call("Seq2Seq", enc, dec, mt.tgt_vocab["<pad>"])
    src, tgt, lens, label = next(iter(d2lai.val_dataloader(mt)))
    state = call("init_state", dec, enc(src, lens), lens)
    assert dec(tgt, state)[0].shape == (16, 9, len(mt.tgt_vocab))
    preds, _ = call("predict_step", s2s, call("build", mt, ["go ."], ["va !"]), "cpu", 9)
    assert preds.shape[0] == 1
    assert call("bleu", "a b c", "a b c", 2) == 1.0
    Xm = torch.rand(2, 3, 4)
    torch.testing.assert_close(call("sequence_mask", Xm, torch.tensor([1, 2]), -1.0)[0, 1:],
                               torch.full((2, 4), -1.0))
    call("masked_softmax", Xm, torch.tensor([1, 2]))
    call("DotProductAttention", nn.Dropout(0.1), None)
    call("AdditiveAttention", 4, 4, 4, 8, 0.1)
    mh = call("MultiHeadedAttention", 8, 2, 0.1)
    call("transpose_output", mh, call("transpose_qkv", mh, torch.rand(2, 3, 8)))
    call("show_heatmaps", torch.rand(1, 1, 3, 4), "Queries", "Keys")
    fm = call("FashionMNISTData", batchsize=8, root=fashion_root)
    assert fm.train.features.shape[1:] == (28, 28)
    # fit_epoch: the text extends it on its model (test_3_4 above); draw_model, a helper the
    # package never calls (its body reads undefined globals), is not ported
    assert len(JULIA_NAMES) == 64 and set(JULIA_NAMES) <= called, set(JULIA_NAMES) - called


def test_the_julia_figures_example_runs_end_to_end(tm_root, tmp_path, monkeypatch, capsys):
    """examples/julia_rnn_figures.py, its cells and its comparison with the text's lines, on
    the generated Time Machine for one epoch."""
    from examples import julia_rnn_figures

    monkeypatch.setenv("D2LAI_DATA", str(tm_root))
    out = tmp_path / "rows.json"
    julia_rnn_figures.main(["--models", "rnn-scratch,lstm-concise", "--epochs", "1",
                            "--json", str(out)])
    rows = json.loads(out.read_text())
    assert [r["model"] for r in rows] == ["rnn-scratch", "lstm-concise"]
    for row in rows:
        assert row["epochs"] == 1 and math.isfinite(row["train_loss"])
        assert row["ratio"] == pytest.approx(row["train_loss"] / row["text_train_loss"])
        assert row["prediction"].startswith("it has") and len(row["prediction"]) == 26
    printed = capsys.readouterr().out
    assert "rnn-scratch epoch 1: text 2.7971 d2lai " in printed and "lstm-concise " in printed
