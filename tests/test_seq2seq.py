"""Encoder-decoders: BLEU, the masked loss, greedy prediction, and two models that learn to
copy a sequence in a bare training loop."""

import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn

import d2lai
from d2lai.models import (  # the core layers; the Julia faces: tests/test_julia_face.py
    AbstractEncoderDecoder,
    Seq2Seq,
    Seq2SeqAttentionDecoder,
    Seq2SeqDecoder,
    Seq2SeqEncoder,
    TransformerDecoder,
    TransformerEncoder,
    bleu,
)

PAD, BOS, EOS, V = 0, 1, 2, 10  # tokens 3..9 are the words


def test_bleu_against_hand_computed_scores():
    assert bleu("il est calme .", "il est calme .", k=2) == 1.0
    # brevity: both n-gram precisions are 1, the penalty is exp(1 - 4/2)
    assert bleu("a b", "a b c d", k=2) == pytest.approx(math.exp(-1))
    # p1 = 3/4 (a, b, d), p2 = 1/3 (only "a b"), no penalty (same length)
    assert bleu("a b c d", "a b x d", k=2) == pytest.approx((3 / 4) ** 0.5 * (1 / 3) ** 0.25)
    # a label word is matched at most as often as it occurs: p1 = 1/3
    assert bleu("a a a", "a b c", k=1) == pytest.approx((1 / 3) ** 0.5)
    assert bleu("x y", "a b", k=2) == 0.0
    assert bleu("", "a b", k=2) == 0.0
    with pytest.raises(ValueError, match="k must be a positive integer"):
        bleu("a", "a", k=0)


class Fixed(AbstractEncoderDecoder):
    """An encoder-decoder whose output is given: for loss and accuracy alone."""

    def __init__(self, tgt_pad=None):
        super().__init__(nn.Identity(), nn.Identity())
        self.tgt_pad = tgt_pad

    def forward(self, y_hat):
        return y_hat


def test_loss_is_the_mean_cross_entropy_over_the_positions_that_are_not_padding():
    torch.manual_seed(0)
    N, T = 3, 5
    y_hat = torch.randn(N, T, V)
    y = torch.randint(3, V, (N, T))
    y[0, 3:], y[2, 1:] = PAD, PAD
    losses, hits = [], []
    for n in range(N):
        for t in range(T):
            if y[n, t] != PAD:
                log_p = y_hat[n, t] - torch.logsumexp(y_hat[n, t], 0)
                losses.append(-float(log_p[y[n, t]]))
                hits.append(float(y_hat[n, t].argmax() == y[n, t]))
    model = Fixed(tgt_pad=PAD)
    assert model.loss(y_hat, y).item() == pytest.approx(sum(losses) / len(losses), rel=1e-6)
    assert model.accuracy(y_hat, y).item() == pytest.approx(sum(hits) / len(hits))
    each = model.loss(y_hat, y, averaged=False)  # every position, the padding's as 0
    assert each.shape == (N * T,) and bool((each[y.reshape(-1) == PAD] == 0).all())
    torch.testing.assert_close(each[y.reshape(-1) != PAD], torch.tensor(losses))
    # without a pad index every position counts
    every = nn.functional.cross_entropy(y_hat.reshape(-1, V), y.reshape(-1))
    assert Fixed().loss(y_hat, y).item() == pytest.approx(every.item(), rel=1e-6)
    # a batch of padding alone gives 0, not NaN
    assert model.loss(y_hat, torch.zeros_like(y)).item() == 0.0
    loss, acc = model.validation_step((y_hat, y))
    assert loss.item() == pytest.approx(sum(losses) / len(losses), rel=1e-6)
    assert acc.item() == pytest.approx(sum(hits) / len(hits))


def test_check_batch_says_what_it_expected():
    model = Fixed(tgt_pad=PAD)
    y = torch.randint(0, V, (2, 4))
    data = SimpleNamespace(num_classes=V)
    model.check_batch(torch.randn(2, 4, V), y, data)
    with pytest.raises(ValueError, match=r"shape \(2, 4, 10\), got \(2, 10\)"):
        model.check_batch(torch.randn(2, V), y, data)
    with pytest.raises(ValueError, match="output 12 class scores per target"):
        model.check_batch(torch.randn(2, 4, V), y, SimpleNamespace(num_classes=12))
    with pytest.raises(ValueError, match=r"labels from 0 to 11, .* expected labels in 0\.\.9"):
        model.check_batch(torch.randn(2, 4, V), torch.tensor([[0, 11, 1, 1], [1, 1, 1, 1]]))


class Scripted(nn.Module):
    """A decoder that says, at step t, token script[n][t] for sequence n, and records what it
    was fed."""

    def __init__(self, script):
        super().__init__()
        self.script = torch.tensor(script)
        self.unused = nn.Parameter(torch.zeros(1))
        self.fed = []

    def init_state(self, enc_all_outputs, *args):
        return 0

    def forward(self, X, step):
        self.fed.append(X.clone())
        logits = nn.functional.one_hot(self.script[:, step], V).float()[:, None, :]  # (N, 1, V)
        return logits, step + 1


class Passthrough(nn.Module):
    """An encoder that hands the source on as it is."""

    def forward(self, X, *args):
        return X


def test_predict_step_decodes_greedily_and_stops_once_every_sequence_said_eos():
    decoder = Scripted([[5, EOS, 7, 8, 9, 9], [4, 6, EOS, 3, 3, 3]])
    model = Seq2Seq(Passthrough(), decoder, tgt_pad=PAD, lr=0.1, tgt_eos=EOS)
    model.train()
    src = torch.tensor([[3, 4], [5, 6]])
    tgt = torch.tensor([[BOS, 9], [BOS, 9]])
    batch = (src, tgt, torch.tensor([2, 2]), tgt)
    pred, weights = model.predict_step(batch, None, num_steps=6)
    assert pred.tolist() == [[5, EOS, PAD], [4, 6, EOS]]
    assert weights == []
    assert len(decoder.fed) == 3  # stopped after the third step, not num_steps
    assert decoder.fed[0].tolist() == [[BOS], [BOS]]  # started from each target's first token
    assert decoder.fed[1].tolist() == [[5], [4]]  # then fed back its own predictions
    assert decoder.fed[2].tolist() == [[EOS], [6]]
    assert model.training  # back in the mode it was in
    # without an end token it decodes num_steps tokens, as the book's
    decoder.fed.clear()
    model.tgt_eos = None
    pred, _ = model.predict_step(batch, torch.device("cpu"), num_steps=4)
    assert pred.tolist() == [[5, EOS, 7, 8], [4, 6, EOS, 3]] and len(decoder.fed) == 4
    pred, _ = model.predict_step(batch, None, num_steps=6, eos=7)
    assert pred.tolist() == [[5, EOS, 7, PAD, PAD, PAD], [4, 6, EOS, 3, 3, 3]]
    with pytest.raises(ValueError, match="has no attention weights"):
        model.predict_step(batch, None, 4, save_attention_weights=True)


def test_models_refuse_token_indices_outside_their_vocabulary():
    encoder = Seq2SeqEncoder(V, 8, 16, 1)
    decoder = Seq2SeqDecoder(V, 8, 16, 1)
    model = Seq2Seq(encoder, decoder, tgt_pad=PAD, lr=0.01)
    ok = torch.randint(0, V, (2, 4))
    assert model(ok, ok).shape == (2, 4, V)
    with pytest.raises(ValueError, match=r"source token indices range from 0 to 12, but the "
                                         r"source vocabulary of the model has 10 tokens"):
        model(torch.tensor([[0, 12]]), ok[:1])
    with pytest.raises(ValueError, match=r"target token indices range from -1 to 3.*10 tokens"):
        model(ok[:1], torch.tensor([[3, -1]]))
    transformer = TransformerEncoder(V, 8, 16, 2, 1, 0.0)
    with pytest.raises(ValueError, match="from 0 to 10, but the source vocabulary"):
        transformer(torch.tensor([[0, 10]]))
    with pytest.raises(ValueError, match="tgt_pad must be an integer >= 0"):
        Seq2Seq(encoder, decoder, tgt_pad=-1, lr=0.01)
    with pytest.raises(ValueError, match="lr must be a number in"):
        Seq2Seq(encoder, decoder, tgt_pad=PAD, lr=0)


def test_rnn_shapes_follow_the_book():
    encoder = Seq2SeqEncoder(V, 8, 16, 2)
    X = torch.zeros(4, 9)  # the book feeds float zeros
    outputs, state = encoder(X)
    assert outputs.shape == (9, 4, 16) and state.shape == (2, 4, 16)  # time first, as the book
    decoder = Seq2SeqAttentionDecoder(V, 8, 16, 2)
    out, state = decoder(X.long()[:, :7], decoder.init_state(encoder(X), None))
    assert out.shape == (4, 7, V) and state[0].shape == (4, 9, 16)
    assert len(decoder.attention_weights) == 7 and decoder.attention_weights[0].shape == (4, 1, 9)


def copy_batch(generator, n, max_len=5):
    """Random words, then <eos>, then padding; the label is the source, the decoder's input is
    the label shifted right behind <bos>."""
    lens = torch.randint(2, max_len + 1, (n,), generator=generator)
    words = torch.randint(3, V, (n, max_len + 1), generator=generator)
    positions = torch.arange(max_len + 1)
    src = torch.where(positions < lens[:, None], words, PAD)
    src[torch.arange(n), lens] = EOS
    dec_input = torch.cat([torch.full((n, 1), BOS), src[:, :-1]], 1)
    return src, dec_input, lens + 1, src.clone()


def train_to_copy(model, steps, lr):
    """A bare training loop; the mean loss of the first and of the last 10 steps."""
    generator = torch.Generator().manual_seed(0)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        *X, y = copy_batch(generator, 32)
        loss = model.loss(model(*X), y)
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        losses.append(loss.item())
    return sum(losses[:10]) / 10, sum(losses[-10:]) / 10, generator


def exact_copies(model, generator):
    """Fraction of fresh sequences copied exactly (up to and including <eos>) by greedy
    decoding."""
    src, dec_input, valid_lens, y = copy_batch(generator, 64)
    pred, _ = model.predict_step((src, dec_input, valid_lens, y), None, num_steps=y.shape[1])
    pred = torch.cat([pred, torch.full((len(y), y.shape[1] - pred.shape[1]), PAD)], 1)
    return float(((pred == y) | (y == PAD)).all(1).float().mean())


def test_rnn_with_attention_learns_to_copy(one_thread):
    torch.manual_seed(0)
    model = Seq2Seq(Seq2SeqEncoder(V, 16, 32, 1), Seq2SeqAttentionDecoder(V, 16, 32, 1),
                    tgt_pad=PAD, lr=0.01, tgt_eos=EOS)
    first, last, generator = train_to_copy(model, 300, lr=0.01)
    assert last < 0.2 * first, (first, last)
    assert exact_copies(model, generator) > 0.8
    _, weights = model.predict_step(copy_batch(generator, 2), None, 3, True)
    assert len(weights) <= 3 and weights[0][0].shape == (2, 1, 6)


def test_transformer_learns_to_copy(one_thread):
    torch.manual_seed(0)
    model = Seq2Seq(TransformerEncoder(V, 32, 64, 4, 1, 0.0),
                    TransformerDecoder(V, 32, 64, 4, 1, 0.0), tgt_pad=PAD, lr=0.005, tgt_eos=EOS)
    first, last, generator = train_to_copy(model, 300, lr=0.005)
    assert last < 0.35 * first, (first, last)
    *X, y = copy_batch(generator, 64)
    model.eval()
    with torch.no_grad():  # teacher-forced accuracy over the words and <eos>, chance is 1/8
        assert model.accuracy(model(*X), y).item() > 0.75


def test_seq2seq_declares_logits_and_masks_its_padding():
    model = Seq2Seq(Seq2SeqEncoder(V, 4, 8, 1), Seq2SeqDecoder(V, 4, 8, 1), tgt_pad=PAD,
                    lr=0.01)
    assert model.output_kind == "logits"
    assert model.target_mask(torch.tensor([[3, PAD]])).tolist() == [[True, False]]
    assert isinstance(model.configure_optimizers(), torch.optim.Adam)
    assert isinstance(model, d2lai.AbstractClassifier)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_on_the_gpu_outputs_and_predictions_match_the_cpu():
    torch.manual_seed(0)
    model = Seq2Seq(TransformerEncoder(V, 16, 32, 2, 1, 0.0),
                    TransformerDecoder(V, 16, 32, 2, 1, 0.0), tgt_pad=PAD, lr=0.01,
                    tgt_eos=EOS).eval()
    *X, y = copy_batch(torch.Generator().manual_seed(1), 8)  # on the CPU
    with torch.no_grad():
        expected = model(*X)
    pred_cpu, _ = model.predict_step((*X, y), None, 6)
    pred_gpu, weights = model.predict_step((*X, y), torch.device("cuda"), 6, True)
    assert next(model.parameters()).is_cuda and pred_gpu.is_cuda
    assert torch.equal(pred_gpu.cpu(), pred_cpu)
    assert weights[0][0][0].is_cuda
    with torch.no_grad():
        got = model(*(x.cuda() for x in X))
    torch.testing.assert_close(got.cpu(), expected, atol=1e-4, rtol=1e-4)
    assert model.loss(got, y.cuda()).item() == pytest.approx(model.loss(expected, y).item(),
                                                              rel=1e-4)
