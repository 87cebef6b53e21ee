"""The modern-RNNs chapter through `from d2lai import torch as d2l`: GRU and LSTM (the reader's
scratch cells and torch's layers) under the library's language models, deep and bidirectional
nets, the English-French data, the encoder-decoder interfaces and the RNN encoder-decoder with
its masked loss, greedy prediction and BLEU; all on generated stand-ins for the book's files."""

import math
import zipfile

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from d2lai import torch as d2l
from d2lai.testing import write_fake_fra_eng, write_fake_time_machine


@pytest.fixture(scope="module")
def text_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("text")
    write_fake_time_machine(root)
    write_fake_fra_eng(root)
    return root


@pytest.fixture
def text(text_root, monkeypatch):
    monkeypatch.setenv("D2LAI_DATA", str(text_root))
    return text_root


class GRUCell(d2l.Module):
    """A GRU cell as the chapter has the reader write it: a Module with its own weights whose
    forward returns the list of the steps' states."""

    def __init__(self, num_inputs, num_hiddens, sigma=0.01):
        super().__init__()
        self.save_hyperparameters()
        self.W_x = nn.Parameter(torch.randn(num_inputs, 3 * num_hiddens) * sigma)
        self.W_h = nn.Parameter(torch.randn(num_hiddens, 3 * num_hiddens) * sigma)

    def forward(self, inputs, H=None):
        H = torch.zeros(inputs.shape[1], self.num_hiddens) if H is None else H
        steps = []
        for X in inputs:
            z, r, h = (X @ self.W_x).chunk(3, 1)
            hz, hr, hh = (H @ self.W_h).chunk(3, 1)
            Z, R = torch.sigmoid(z + hz), torch.sigmoid(r + hr)
            H = Z * H + (1 - Z) * torch.tanh(h + R * hh)
            steps.append(H)
        return steps, H


def test_a_readers_scratch_cell_under_the_library_language_model(text, one_thread):
    torch.manual_seed(0)
    data = d2l.TimeMachine(batch_size=64, num_steps=16, num_train=640, num_val=128)
    cell = GRUCell(len(data.vocab), 24, sigma=0.05)
    model = d2l.RNNLMScratch(cell, vocab_size=len(data.vocab), lr=4)
    assert model.W_hq.shape == (24, len(data.vocab))
    assert 0.02 < float(model.W_hq.detach().std()) < 0.08  # drawn with the cell's sigma
    trainer = d2l.Trainer(max_epochs=2, gradient_clip_val=1)
    trainer.fit(model, data)
    assert trainer.metrics.history["val_ppl"][-1] < len(data.vocab)
    assert model.predict("the time", 5, data.vocab).startswith("the time")


def test_gru_and_lstm_are_torch_layers_under_rnnlm(text, one_thread):
    torch.manual_seed(0)
    data = d2l.TimeMachine(batch_size=64, num_steps=16, num_train=640, num_val=128)
    V = len(data.vocab)
    gru = d2l.GRU(num_inputs=V, num_hiddens=16, num_layers=2, dropout=0.1)
    assert isinstance(gru, d2l.RNN) and isinstance(gru.rnn, nn.GRU)
    assert (gru.rnn.num_layers, gru.rnn.dropout, gru.num_layers) == (2, 0.1, 2)
    assert d2l.GRU(V, 16, 1, dropout=0.5).rnn.dropout == 0  # none between a single layer
    outputs, state = gru(torch.randn(5, 3, V))
    assert outputs.shape == (5, 3, 16) and state.shape == (2, 3, 16)
    lstm = d2l.LSTM(num_inputs=V, num_hiddens=16)
    outputs, (H, C) = lstm(torch.randn(5, 3, V))
    assert isinstance(lstm.rnn, nn.LSTM) and H.shape == C.shape == (1, 3, 16)
    for rnn in (gru, lstm):
        model = d2l.RNNLM(rnn, vocab_size=V, lr=4)
        trainer = d2l.Trainer(max_epochs=2, gradient_clip_val=1)
        trainer.fit(model, data)
        ppl = trainer.metrics.history["train_ppl"]
        assert ppl[-1] < ppl[0]
        assert len(model.predict("it has", 8, data.vocab, d2l.try_gpu())) == 14
    with pytest.raises(ValueError, match="num_layers must be a positive integer"):
        d2l.GRU(V, 16, 0)
    with pytest.raises(ValueError, match=r"dropout must be a number in \[0, 1\]"):
        d2l.LSTM(V, 16, 2, dropout=1.5)


def test_deep_and_bidirectional_nets_from_library_cells():
    """Stacks of `d2l.RNNScratch` (whose outputs are lists of steps, stacked by the reader)
    and a bidirectional GRU whose outputs are twice as wide."""
    class Stacked(d2l.Module):
        def __init__(self, num_inputs, num_hiddens, num_layers, sigma=0.01):
            super().__init__()
            self.save_hyperparameters()
            self.rnns = nn.Sequential(*[d2l.RNNScratch(num_inputs if i == 0 else num_hiddens,
                                                       num_hiddens, sigma)
                                        for i in range(num_layers)])

        def forward(self, inputs, Hs=None):
            outputs, Hs = inputs, Hs or [None] * self.num_layers
            for i in range(self.num_layers):
                outputs, Hs[i] = self.rnns[i](outputs, Hs[i])
                outputs = d2l.stack(outputs, 0)
            return outputs, Hs

    torch.manual_seed(0)
    deep = Stacked(num_inputs=7, num_hiddens=5, num_layers=3)
    X = torch.randint(0, 7, (2, 4))
    Y_hat = d2l.RNNLMScratch(deep, vocab_size=7)(X)
    d2l.check_shape(Y_hat, (2, 4, 7))
    inputs = F.one_hot(X.T, 7).float()
    outputs, Hs = deep(inputs)
    by_hand = inputs
    for layer in deep.rnns:
        by_hand = torch.stack(layer(by_hand)[0])
    torch.testing.assert_close(outputs, by_hand)
    assert len(Hs) == 3

    class BiGRU(d2l.RNN):
        def __init__(self, num_inputs, num_hiddens):
            d2l.Module.__init__(self)
            self.save_hyperparameters()
            self.rnn = nn.GRU(num_inputs, num_hiddens, bidirectional=True)
            self.num_hiddens *= 2

    model = d2l.RNNLM(BiGRU(7, 5), vocab_size=7)
    assert model.linear.in_features == 10
    d2l.check_shape(model(X), (2, 4, 7))


def test_english_french_pairs_as_padded_arrays(text, one_thread):
    data = d2l.MTFraEng(batch_size=3)
    with zipfile.ZipFile(text / "fra-eng.zip") as z:
        raw = z.read("fra-eng/fra.txt").decode("utf-8")
    assert data._download() == raw
    assert data._preprocess("Va\u202f! Merci.") == "va ! merci ."
    src, tgt = data._tokenize("go .\tva !\nhi .\tsalut .\n")
    assert src == [["go", ".", "<eos>"], ["hi", ".", "<eos>"]] and tgt[1][-1] == "<eos>"
    assert data.num_steps == 9 and data.num_classes == len(data.tgt_vocab)
    src, dec_in, src_len, label = next(iter(data.train_dataloader()))
    assert src.shape == dec_in.shape == label.shape == (3, 9) and src_len.shape == (3,)
    pad = data.src_vocab["<pad>"]
    assert torch.equal(src_len, (src != pad).sum(1))
    assert torch.equal(dec_in[:, 1:], label[:, :-1])  # the label is the decoder input shifted
    assert set(dec_in[:, 0].tolist()) == {data.tgt_vocab["<bos>"]}
    src, tgt, src_len, label = data.build(["i see the cat ."], ["je vois le chat ."])
    words = data.src_vocab.to_tokens(src[0][:int(src_len[0])])
    assert words == ["i", "see", "the", "cat", ".", "<eos>"]
    assert data.tgt_vocab.to_tokens(tgt[0][:3]) == ["<bos>", "je", "vois"]
    assert len(list(data.val_dataloader())) == math.ceil(128 / 3)


def test_the_interfaces_say_what_a_subclass_must_define():
    with pytest.raises(NotImplementedError, match=r"must define forward\(X, \*args\)"):
        d2l.Encoder()(torch.zeros(1))
    with pytest.raises(NotImplementedError, match=r"must define init_state"):
        d2l.Decoder().init_state(None)
    with pytest.raises(NotImplementedError, match="attention_weights"):
        d2l.AttentionDecoder().attention_weights  # noqa: B018


class Decoder(d2l.Decoder):
    """The seq2seq section's decoder, written by the reader: a GRU over the embedding joined
    with the encoder's last output."""

    def __init__(self, vocab_size, embed_size, num_hiddens, num_layers, dropout=0):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed_size)
        self.rnn = d2l.GRU(embed_size + num_hiddens, num_hiddens, num_layers, dropout)
        self.dense = nn.LazyLinear(vocab_size)
        self.apply(d2l.init_seq2seq)

    def init_state(self, enc_all_outputs, *args):
        return enc_all_outputs

    def forward(self, X, state):
        embs = self.embedding(X.T.long())  # (T, N, embed_size)
        enc_output, hidden_state = state
        context = enc_output[-1].repeat(embs.shape[0], 1, 1)
        outputs, hidden_state = self.rnn(torch.cat((embs, context), -1), hidden_state)
        return self.dense(outputs).swapaxes(0, 1), [enc_output, hidden_state]


def book_predict_step(model, batch, num_steps):
    """Greedy decoding as the section writes it: start from the first target token, feed the
    most likely one back, `num_steps` times."""
    src, tgt, src_valid_len, _ = batch
    dec_state = model.decoder.init_state(model.encoder(src, src_valid_len), src_valid_len)
    outputs = [tgt[:, :1]]
    for _ in range(num_steps):
        Y, dec_state = model.decoder(outputs[-1], dec_state)
        outputs.append(Y.argmax(2))
    return torch.cat(outputs[1:], 1)


def test_the_rnn_encoder_decoder_trains_with_its_padding_left_out(text, one_thread):
    torch.manual_seed(0)
    data = d2l.MTFraEng(batch_size=64)
    encoder = d2l.Seq2SeqEncoder(len(data.src_vocab), 16, 32, 2)
    assert isinstance(encoder, d2l.Encoder)
    enc_outputs, enc_state = encoder(torch.zeros(4, 9))
    d2l.check_shape(enc_outputs, (9, 4, 32))
    d2l.check_shape(enc_state, (2, 4, 32))
    decoder = Decoder(len(data.tgt_vocab), 16, 32, 2)
    pad = data.tgt_vocab["<pad>"]
    model = d2l.Seq2Seq(encoder, decoder, tgt_pad=pad, lr=0.01)
    assert isinstance(model, d2l.EncoderDecoder) and isinstance(model, d2l.Classifier)
    assert isinstance(model.configure_optimizers(), torch.optim.Adam)
    batch = next(iter(data.val_dataloader()))
    Y_hat, label = model(*batch[:-1]), batch[-1]
    keep = label.reshape(-1) != pad
    losses = F.cross_entropy(Y_hat.reshape(-1, Y_hat.shape[-1]), label.reshape(-1),
                             reduction="none")
    torch.testing.assert_close(model.loss(Y_hat, label), losses[keep].mean())
    hits = (Y_hat.argmax(-1).reshape(-1) == label.reshape(-1))[keep].float().mean()
    torch.testing.assert_close(model.accuracy(Y_hat, label), hits)
    trainer = d2l.Trainer(max_epochs=12, gradient_clip_val=1)
    trainer.fit(model, data)
    history = trainer.metrics.history
    assert history["val_loss"][-1] < 0.6 * history["val_loss"][0]
    assert history["val_acc"][-1] > 0.5
    assert list(model.board.data) == ["train_loss", "val_loss"]
    batch = data.build(["i see the cat .", "we eat the bread ."],
                       ["je vois le chat .", "nous mangeons le pain ."])
    preds, weights = model.predict_step(batch, d2l.try_gpu(), data.num_steps)
    assert preds.shape == (2, data.num_steps) and weights == []
    model.eval()
    with torch.no_grad():
        assert torch.equal(preds, book_predict_step(model, batch, data.num_steps))


def test_a_readers_masked_loss_agrees_with_the_library_one(text):
    """The seq2seq section derives its loss from the unaveraged one and masks the padding
    itself: the same figure as the library's masked mean."""
    class Seq2Seq(d2l.EncoderDecoder):
        def __init__(self, encoder, decoder, tgt_pad, lr):
            super().__init__(encoder, decoder)
            self.save_hyperparameters()

        def loss(self, Y_hat, Y):
            l = super().loss(Y_hat, Y, averaged=False)  # noqa: E741
            mask = (Y.reshape(-1) != self.tgt_pad).float()
            return (l * mask).sum() / mask.sum()

    torch.manual_seed(0)
    encoder, decoder = d2l.Seq2SeqEncoder(12, 4, 8, 1), Decoder(10, 4, 8, 1)
    mine = Seq2Seq(encoder, decoder, tgt_pad=1, lr=0.01)
    theirs = d2l.Seq2Seq(encoder, decoder, tgt_pad=1, lr=0.01)
    Y_hat, Y = torch.randn(3, 5, 10), torch.tensor([[4, 5, 2, 1, 1], [3, 2, 1, 1, 1],
                                                     [6, 7, 8, 9, 2]])
    torch.testing.assert_close(mine.loss(Y_hat, Y), theirs.loss(Y_hat, Y))
    assert theirs.loss(Y_hat, Y, averaged=False)[3] == 0  # a padded position


def test_bleu_and_init_seq2seq():
    assert d2l.bleu("a b c d", "a b c d", k=2) == 1.0
    # p1 = 3/4, p2 = 1/3; the label is as long: no brevity penalty
    assert math.isclose(d2l.bleu("a b x c", "a b c d", k=2), (3 / 4) ** 0.5 * (1 / 3) ** 0.25)
    # one word of two: brevity penalty exp(1 - 2/1)
    assert math.isclose(d2l.bleu("a", "a b", k=2), math.exp(-1))
    gru, linear = nn.GRU(6, 4), nn.Linear(6, 4)
    torch.manual_seed(0)
    for module in (gru, linear):
        d2l.init_seq2seq(module)
    largest = float(gru.weight_ih_l0.detach().abs().max())
    bound = math.sqrt(6 / (6 + 12))  # Xavier-uniform of the (3 * 4, 6) input weights
    assert 0.8 * bound < largest <= bound
    assert float(linear.weight.detach().abs().max()) <= math.sqrt(6 / 10)
