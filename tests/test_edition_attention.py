"""The attention-and-transformers chapter through `from d2lai import torch as d2l`: masking,
the two scorers, multi-head attention against torch's own, positional encoding, heatmaps on
pyplot, the Bahdanau decoder and a transformer encoder under `d2l.Seq2Seq`, and a vision
transformer whose layer is called `head`; on generated data."""

import math

import pytest
import torch
import torch.nn.functional as F
from matplotlib import pyplot as plt
from torch import nn

from d2lai import torch as d2l
from d2lai.testing import write_fake_fra_eng


@pytest.fixture
def pairs(tmp_path, monkeypatch):
    write_fake_fra_eng(tmp_path)
    monkeypatch.setenv("D2LAI_DATA", str(tmp_path))


def test_masked_softmax_counts_only_the_valid_keys():
    torch.manual_seed(0)
    X = torch.randn(2, 2, 4)
    P = d2l.masked_softmax(X, torch.tensor([2, 3]))
    torch.testing.assert_close(P[0, :, :2], F.softmax(X[0, :, :2], -1))
    torch.testing.assert_close(P[1, :, :3], F.softmax(X[1, :, :3], -1))
    assert P[0, :, 2:].abs().max() < 1e-6 and P[1, :, 3].abs().max() < 1e-6
    per_query = d2l.masked_softmax(X, torch.tensor([[1, 3], [2, 4]]))  # one length a query
    torch.testing.assert_close(per_query[0, 0], torch.tensor([1.0, 0, 0, 0]))
    torch.testing.assert_close(per_query[1, 1], F.softmax(X[1, 1], -1))
    torch.testing.assert_close(d2l.masked_softmax(X, None), F.softmax(X, -1))
    torch.testing.assert_close(d2l.sequence_mask(torch.ones(2, 3), torch.tensor([1, 2])),
                               torch.tensor([[1.0, 0, 0], [1, 1, 0]]))


def test_the_two_scorers_weigh_the_values_by_their_masked_scores():
    torch.manual_seed(0)
    queries, keys = torch.normal(0, 1, (2, 1, 2)), torch.normal(0, 1, (2, 10, 2))
    values, valid_lens = torch.normal(0, 1, (2, 10, 4)), torch.tensor([2, 6])
    dot = d2l.DotProductAttention(dropout=0.5)
    dot.eval()
    out = dot(queries, keys, values, valid_lens)
    d2l.check_shape(out, (2, 1, 4))
    scores = queries @ keys.transpose(1, 2) / math.sqrt(2)  # (2, 1, 10)
    for i, n in enumerate((2, 6)):
        w = F.softmax(scores[i, :, :n], -1)
        torch.testing.assert_close(out[i], w @ values[i, :n])
        torch.testing.assert_close(dot.attention_weights[i, :, :n], w)
    additive = d2l.AdditiveAttention(num_hiddens=8, dropout=0.1)
    additive.eval()
    wide = torch.normal(0, 1, (2, 1, 20))  # queries of another size than the keys
    d2l.check_shape(additive(wide, keys, values, valid_lens), (2, 1, 4))
    assert additive.W_q.weight.shape == (8, 20) and additive.W_k.weight.shape == (8, 2)
    features = torch.tanh(additive.W_q(wide).unsqueeze(2) + additive.W_k(keys).unsqueeze(1))
    w = F.softmax(additive.w_v(features).squeeze(-1)[1, :, :6], -1)
    torch.testing.assert_close(additive.attention_weights[1, :, :6], w)


def test_multi_head_attention_agrees_with_torchs_and_learns_its_input_sizes():
    torch.manual_seed(0)
    attention = d2l.MultiHeadAttention(num_hiddens=12, num_heads=3, dropout=0.0)
    assert isinstance(attention.W_q, nn.LazyLinear)
    X, Y = torch.randn(2, 4, 12), torch.randn(2, 6, 12)
    valid_lens = torch.tensor([3, 6])
    out = attention(X, Y, Y, valid_lens)
    d2l.check_shape(out, (2, 4, 12))
    theirs = nn.MultiheadAttention(12, 3, bias=False, batch_first=True)
    with torch.no_grad():
        theirs.in_proj_weight.copy_(torch.cat([attention.W_q.weight, attention.W_k.weight,
                                               attention.W_v.weight]))
        theirs.out_proj.weight.copy_(attention.W_o.weight)
    padding = torch.arange(6)[None, :] >= valid_lens[:, None]  # (2, 6): True where masked
    expected, _ = theirs(X, Y, Y, key_padding_mask=padding)
    torch.testing.assert_close(out, expected)
    wide = d2l.MultiHeadAttention(num_hiddens=10, num_heads=5, dropout=0.5)
    wide.eval()
    d2l.check_shape(wide(torch.ones(2, 4, 100), torch.ones(2, 6, 7), torch.ones(2, 6, 3), None),
                    (2, 4, 10))
    assert wide.W_q.in_features == 100 and wide.W_v.in_features == 3
    assert wide.attention_weights.shape == (2 * 5, 4, 6)
    with pytest.raises(ValueError, match=r"num_hiddens \(10\) must be divisible by num_heads"):
        d2l.MultiHeadAttention(10, 3, 0.0)


def test_positional_encoding_adds_sines_and_cosines():
    encoding = d2l.PositionalEncoding(num_hiddens=6, dropout=0)
    X = torch.zeros(1, 5, 6)
    P = encoding(X)[0]
    for i in range(5):
        for j in range(3):
            angle = i / 10000 ** (2 * j / 6)
            assert math.isclose(float(P[i, 2 * j]), math.sin(angle), abs_tol=1e-6)
            assert math.isclose(float(P[i, 2 * j + 1]), math.cos(angle), abs_tol=1e-6)
    torch.testing.assert_close(encoding.P[:, :5, :], P[None])


def test_show_heatmaps_draws_on_a_new_pyplot_figure():
    plt.close("all")
    weights = torch.eye(4).reshape(1, 1, 4, 4).repeat(2, 3, 1, 1)
    assert d2l.show_heatmaps(weights, xlabel="Keys", ylabel="Queries",
                             titles=["a", "b", "c"], figsize=(4, 3)) is None
    fig = plt.gcf()
    assert plt.get_fignums() == [fig.number]
    assert len(fig.axes) == 2 * 3 + 1  # the grid and a colour bar
    assert [ax.get_title() for ax in fig.axes[:3]] == ["a", "b", "c"]
    assert fig.axes[3].get_xlabel() == "Keys" and fig.axes[3].get_ylabel() == "Queries"
    plt.close("all")


def test_the_transformer_layers_keep_their_shapes():
    torch.manual_seed(0)
    ffn = d2l.PositionWiseFFN(4, 8)
    d2l.check_shape(ffn(torch.ones(2, 3, 4)), (2, 3, 8))
    add_norm = d2l.AddNorm(4, 0.5)
    add_norm.eval()
    X, Y = torch.randn(2, 3, 4), torch.randn(2, 3, 4)
    torch.testing.assert_close(add_norm(X, Y), F.layer_norm(X + Y, (4,)))
    block = d2l.TransformerEncoderBlock(24, 48, 8, 0.5)
    block.eval()
    X, valid_lens = torch.ones(2, 100, 24), torch.tensor([3, 2])
    d2l.check_shape(block(X, valid_lens), X.shape)
    encoder = d2l.TransformerEncoder(200, 24, 48, 8, 2, 0.5)
    assert isinstance(encoder, d2l.Encoder)
    d2l.check_shape(encoder(torch.ones(2, 100, dtype=torch.long), valid_lens), (2, 100, 24))
    weights = encoder.attention_weights
    assert len(weights) == 2 and weights[0].shape == (2 * 8, 100, 100)
    assert weights[1][8:, :, 2:].abs().max() < 1e-6  # the second sequence has 2 valid keys


class AttentionDecoder(d2l.AttentionDecoder):
    """The Bahdanau section's decoder, as a reader writes it: at each step the last hidden
    state queries the encoder's outputs by additive attention."""

    def __init__(self, vocab_size, embed_size, num_hiddens, num_layers, dropout=0):
        super().__init__()
        self.attention = d2l.AdditiveAttention(num_hiddens, dropout)
        self.embedding = nn.Embedding(vocab_size, embed_size)
        self.rnn = nn.GRU(embed_size + num_hiddens, num_hiddens, num_layers, dropout=dropout)
        self.dense = nn.LazyLinear(vocab_size)
        self.apply(d2l.init_seq2seq)

    def init_state(self, enc_outputs, enc_valid_lens):
        outputs, hidden_state = enc_outputs
        return outputs.permute(1, 0, 2), hidden_state, enc_valid_lens

    def forward(self, X, state):
        enc_outputs, hidden_state, enc_valid_lens = state
        outputs, self._attention_weights = [], []
        for x in self.embedding(X).permute(1, 0, 2):
            query = hidden_state[-1].unsqueeze(1)
            context = self.attention(query, enc_outputs, enc_outputs, enc_valid_lens)
            step = torch.cat((context, x.unsqueeze(1)), -1).permute(1, 0, 2)
            out, hidden_state = self.rnn(step, hidden_state)
            outputs.append(out)
            self._attention_weights.append(self.attention.attention_weights)
        outputs = self.dense(torch.cat(outputs, 0)).permute(1, 0, 2)
        return outputs, [enc_outputs, hidden_state, enc_valid_lens]

    @property
    def attention_weights(self):
        return self._attention_weights


def test_bahdanau_decoder_trains_and_its_weights_look_at_the_valid_source(pairs, one_thread):
    torch.manual_seed(0)
    data = d2l.MTFraEng(batch_size=64)
    encoder = d2l.Seq2SeqEncoder(len(data.src_vocab), 16, 32, 2, 0.1)
    decoder = AttentionDecoder(len(data.tgt_vocab), 16, 32, 2, 0.1)
    model = d2l.Seq2Seq(encoder, decoder, tgt_pad=data.tgt_vocab["<pad>"], lr=0.01)
    trainer = d2l.Trainer(max_epochs=6, gradient_clip_val=1)
    trainer.fit(model, data)
    history = trainer.metrics.history
    assert history["val_loss"][-1] < 0.7 * history["val_loss"][0]
    batch = data.build(["he eats the apple ."], ["il mange la pomme ."])
    preds, weights = model.predict_step(batch, d2l.try_gpu(), data.num_steps, True)
    assert preds.shape == (1, data.num_steps) and len(weights) == data.num_steps
    steps = torch.cat([w[0][0] for w in weights]).reshape(1, 1, -1, data.num_steps)
    valid = int(batch[2][0])  # 5 words and '<eos>'
    torch.testing.assert_close(steps.sum(-1), torch.ones(1, 1, data.num_steps))
    assert steps[..., valid:].abs().max() < 1e-6
    d2l.show_heatmaps(steps[:, :, :, :valid], xlabel="Key positions",
                      ylabel="Query positions")
    plt.close("all")


def test_a_transformer_encoder_under_seq2seq_records_its_weights(pairs, one_thread):
    class Decoder(d2l.Decoder):
        """A small decoder over the transformer encoder's outputs: attention of the target
        embeddings on them, then a linear layer."""

        def __init__(self, vocab_size, num_hiddens):
            super().__init__()
            self.embedding = nn.Embedding(vocab_size, num_hiddens)
            self.attention = d2l.MultiHeadAttention(num_hiddens, 2, 0.0)
            self.dense = nn.Linear(num_hiddens, vocab_size)

        def init_state(self, enc_outputs, enc_valid_lens):
            return enc_outputs, enc_valid_lens

        def forward(self, X, state):
            Y = self.embedding(X)
            return self.dense(Y + self.attention(Y, state[0], state[0], state[1])), state

    torch.manual_seed(0)
    data = d2l.MTFraEng(batch_size=64)
    encoder = d2l.TransformerEncoder(len(data.src_vocab), 16, 32, 2, 2, 0.1)
    model = d2l.Seq2Seq(encoder, Decoder(len(data.tgt_vocab), 16),
                        tgt_pad=data.tgt_vocab["<pad>"], lr=0.01)
    trainer = d2l.Trainer(max_epochs=3, gradient_clip_val=1)
    trainer.fit(model, data)
    assert trainer.metrics.history["val_loss"][-1] < trainer.metrics.history["val_loss"][0]
    model.predict_step(data.build(["hi ."], ["salut !"]), d2l.try_gpu(), data.num_steps)
    weights = torch.cat(model.encoder.attention_weights, 0).reshape(2, 2, -1, data.num_steps)
    d2l.check_shape(weights, (2, 2, data.num_steps, data.num_steps))


def test_a_vision_transformer_with_a_head_layer_trains(fashion_root, monkeypatch, one_thread):
    """A classifier whose last layer is called `head`, as the vision transformer's is."""
    class TinyViT(d2l.Classifier):
        def __init__(self, num_hiddens=16, lr=0.1, num_classes=10):
            super().__init__()
            self.save_hyperparameters()
            self.patches = nn.LazyConv2d(num_hiddens, kernel_size=7, stride=7)  # 16 patches
            self.cls_token = nn.Parameter(torch.zeros(1, 1, num_hiddens))
            self.pos_embedding = nn.Parameter(torch.randn(1, 17, num_hiddens) * 0.1)
            self.attention = d2l.MultiHeadAttention(num_hiddens, 2, 0.0)
            self.head = nn.Sequential(nn.LayerNorm(num_hiddens),
                                      nn.Linear(num_hiddens, num_classes))

        def forward(self, X):
            X = self.patches(X).flatten(2).transpose(1, 2)  # (N, 16, h)
            X = torch.cat((self.cls_token.expand(X.shape[0], -1, -1), X), 1)
            X = X + self.pos_embedding
            X = X + self.attention(X, X, X, None)
            return self.head(X[:, 0])

    monkeypatch.setenv("D2LAI_DATA", str(fashion_root))
    torch.manual_seed(0)
    model = TinyViT()
    trainer = d2l.Trainer(max_epochs=3)
    trainer.fit(model, d2l.FashionMNIST(batch_size=64))
    assert isinstance(model.head, nn.Sequential) and model.output_kind == "logits"
    assert trainer.metrics.val_acc > 0.3  # chance is 0.1
