"""Recurrent nets: the scratch cells against torch's own layers with the same weights, the
language models' outputs, loss, perplexity and greedy prediction, clipping, a few training steps."""

import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import d2lai
from d2lai import (
    GRUScratch,
    LSTMScratch,
    RNNLMScratch,
    RNNModelConcise,
    RNNScratch,
    StackedRNN,
    StackedRNNScratch,
)

T, N, D, H = 5, 3, 4, 6  # steps, batch, input features, hiddens


@pytest.fixture(autouse=True)
def _small(one_thread):
    torch.manual_seed(0)


class TinyVocab:
    """The API of the book's Vocab that the models use: vocab[token(s)], to_tokens, len."""

    def __init__(self, tokens):
        self.idx_to_token = list(tokens)
        self.token_to_idx = {t: i for i, t in enumerate(self.idx_to_token)}

    def __len__(self):
        return len(self.idx_to_token)

    def __getitem__(self, tokens):
        if isinstance(tokens, (list, tuple)):
            return [self[t] for t in tokens]
        return self.token_to_idx[tokens]

    def to_tokens(self, indices):
        return [self.idx_to_token[int(i)] for i in indices]


def close(a, b):
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def copy(dst: nn.Parameter, value: torch.Tensor) -> None:
    with torch.no_grad():
        dst.copy_(value)


# --- the cells against torch ---------------------------------------------------------------------

def test_rnn_scratch_matches_nn_rnn_over_steps_and_carried_state():
    ref, rnn = nn.RNN(D, H, batch_first=True), RNNScratch(D, H)
    copy(rnn.W_xh, ref.weight_ih_l0.T)
    copy(rnn.W_hh, ref.weight_hh_l0.T)
    copy(rnn.b_h, ref.bias_ih_l0 + ref.bias_hh_l0)
    X, h0 = torch.randn(N, T, D), torch.randn(N, H)
    out, h = rnn(X, h0)
    out_ref, h_ref = ref(X, h0[None])
    assert out.shape == (N, T, H) and h.shape == (N, H)
    close(out, out_ref)
    close(h, h_ref[0])
    # two chunks, the state carried from the first into the second, make the same run
    out1, h1 = rnn(X[:, :2], h0)
    out2, h2 = rnn(X[:, 2:], h1)
    close(torch.cat([out1, out2], 1), out_ref)
    close(h2, h_ref[0])
    # no state: starts from zeros
    close(rnn(X)[0], ref(X)[0])


def _copy_gates(ref, pairs, ih, hh, bias):
    """Copy torch's stacked gate weights (rows in torch's gate order) into scratch triples."""
    for k, (W_x, W_h, b) in enumerate(pairs):
        rows = slice(k * H, (k + 1) * H)
        copy(W_x, ih[rows].T)
        copy(W_h, hh[rows].T)
        copy(b, bias[rows])


def test_lstm_scratch_matches_nn_lstm():
    ref, lstm = nn.LSTM(D, H, batch_first=True), LSTMScratch(D, H, tanh_state=True)
    m = lstm  # torch's gate order: input, forget, cell (input node), output
    _copy_gates(ref, [(m.W_xi, m.W_hi, m.b_i), (m.W_xf, m.W_hf, m.b_f),
                      (m.W_xc, m.W_hc, m.b_c), (m.W_xo, m.W_ho, m.b_o)],
                ref.weight_ih_l0, ref.weight_hh_l0, ref.bias_ih_l0 + ref.bias_hh_l0)
    X, h0, c0 = torch.randn(N, T, D), torch.randn(N, H), torch.randn(N, H)
    out, (h, c) = lstm(X, (h0, c0))
    out_ref, (h_ref, c_ref) = ref(X, (h0[None], c0[None]))
    assert out.shape == (N, T, H)
    close(out, out_ref)
    close(h, h_ref[0])
    close(c, c_ref[0])
    out1, state = lstm(X[:, :3], (h0, c0))
    out2, (h2, c2) = lstm(X[:, 3:], state)
    close(torch.cat([out1, out2], 1), out_ref)
    close(c2, c_ref[0])


def test_gru_scratch_matches_nn_gru_where_the_two_forms_agree():
    # torch computes tanh(W_in x + b_in + r * (W_hn h + b_hn)), the book tanh(x W_xh + (r * h)
    # W_hh + b_h): the same when W_hn is diagonal and b_hn is zero, r still acting on h.
    ref, gru = nn.GRU(D, H, batch_first=True), GRUScratch(D, H)
    with torch.no_grad():
        ref.weight_hh_l0[2 * H:] = torch.diag(torch.randn(H))
        ref.bias_hh_l0[2 * H:] = 0
    m = gru  # torch's gate order: reset, update, new (candidate)
    _copy_gates(ref, [(m.W_xr, m.W_hr, m.b_r), (m.W_xz, m.W_hz, m.b_z),
                      (m.W_xh, m.W_hh, m.b_h)],
                ref.weight_ih_l0, ref.weight_hh_l0, ref.bias_ih_l0 + ref.bias_hh_l0)
    X, h0 = torch.randn(N, T, D), torch.randn(N, H)
    out, h = gru(X, h0)
    out_ref, h_ref = ref(X, h0[None])
    close(out, out_ref)
    close(h, h_ref[0])


def test_gru_scratch_step_by_hand_with_a_full_recurrent_matrix():
    gru = GRUScratch(D, H, sigma=0.5).double()
    X, h = torch.randn(N, 1, D, dtype=torch.float64), torch.randn(N, H, dtype=torch.float64)
    P = {k: v.detach() for k, v in gru.named_parameters()}
    z = 1 / (1 + torch.exp(-(X[:, 0] @ P["W_xz"] + h @ P["W_hz"] + P["b_z"])))
    r = 1 / (1 + torch.exp(-(X[:, 0] @ P["W_xr"] + h @ P["W_hr"] + P["b_r"])))
    cand = torch.tanh(X[:, 0] @ P["W_xh"] + (r * h) @ P["W_hh"] + P["b_h"])
    close(gru(X, h)[1], z * h + (1 - z) * cand)


def test_stacked_rnn_matches_multilayer_nn_rnn():
    L = 3
    ref, stack = nn.RNN(D, H, num_layers=L, batch_first=True), StackedRNN(D, H, L, rnn=RNNScratch)
    assert issubclass(StackedRNNScratch, StackedRNN)
    for k, cell in enumerate(stack.rnns):
        copy(cell.W_xh, getattr(ref, f"weight_ih_l{k}").T)
        copy(cell.W_hh, getattr(ref, f"weight_hh_l{k}").T)
        copy(cell.b_h, getattr(ref, f"bias_ih_l{k}") + getattr(ref, f"bias_hh_l{k}"))
    X, h0 = torch.randn(N, T, D), torch.randn(L, N, H)
    out, Hs = stack(X, list(h0))
    out_ref, h_ref = ref(X, h0)
    assert out.shape == (N, T, H) and len(Hs) == L
    close(out, out_ref)
    close(torch.stack(Hs), h_ref)


def test_stacked_lstm_cells_carry_a_pair_per_layer():
    ref = nn.LSTM(D, H, num_layers=2, batch_first=True)
    stack = StackedRNN(D, H, 2, rnn=lambda i, h, s: LSTMScratch(i, h, s, tanh_state=True))
    for k, m in enumerate(stack.rnns):
        _copy_gates(ref, [(m.W_xi, m.W_hi, m.b_i), (m.W_xf, m.W_hf, m.b_f),
                          (m.W_xc, m.W_hc, m.b_c), (m.W_xo, m.W_ho, m.b_o)],
                    getattr(ref, f"weight_ih_l{k}"), getattr(ref, f"weight_hh_l{k}"),
                    getattr(ref, f"bias_ih_l{k}") + getattr(ref, f"bias_hh_l{k}"))
    X = torch.randn(N, T, D)
    out, Hs = stack(X)
    out_ref, (h_ref, c_ref) = ref(X)
    close(out, out_ref)
    close(torch.stack([h for h, _ in Hs]), h_ref)
    close(torch.stack([c for _, c in Hs]), c_ref)


# --- the language models -------------------------------------------------------------------------

V = 7


def scratch_lm(cell=RNNScratch, hiddens=H):
    return RNNLMScratch(cell(V, hiddens), vocab_size=V)


@pytest.mark.parametrize("make", [
    lambda: scratch_lm(RNNScratch), lambda: scratch_lm(LSTMScratch), lambda: scratch_lm(GRUScratch),
    lambda: RNNLMScratch(StackedRNNScratch(V, H, 2), V),
    lambda: RNNModelConcise(nn.RNN(V, H), V), lambda: RNNModelConcise(nn.GRU(V, H, 2), V),
    lambda: RNNModelConcise(nn.LSTM(V, H), V),
], ids=["rnn", "lstm", "gru", "stacked", "nn.RNN", "nn.GRU", "nn.LSTM"])
def test_language_models_give_batch_first_logits_and_flattened_cross_entropy(make):
    model = make()
    assert model.output_kind == "logits"
    X, Y = torch.randint(0, V, (N, T)), torch.randint(0, V, (N, T))
    y_hat = model(X)
    assert y_hat.shape == (N, T, V)
    expected = F.cross_entropy(y_hat.reshape(-1, V), Y.reshape(-1))
    close(model.loss(y_hat, Y), expected)
    close(d2lai.loss(model, y_hat, Y), expected)
    per = model.loss(y_hat, Y, averaged=False)
    assert per.shape == (N * T,)
    close(per.mean(), expected)
    acc = (y_hat.argmax(-1) == Y).float().mean()
    close(model.accuracy(y_hat, Y), acc)
    loss, val_acc = model.validation_step((X, Y))
    close(loss, expected)
    close(val_acc, acc)
    model.check_batch(y_hat, Y, SimpleNamespace(num_classes=V))  # the first-batch check


def test_scratch_output_layer_is_the_affine_map_of_each_step():
    model = scratch_lm()
    X = torch.randint(0, V, (N, T))
    hiddens, _ = model.rnn(F.one_hot(X, V).float())  # (N, T, H), batch first as the Julia text
    by_hand = torch.stack([hiddens[:, t] @ model.W_hq + model.b_q for t in range(T)], dim=1)
    close(model(X), by_hand)
    close(d2lai.output_layer(model, hiddens), by_hand)


def test_concise_lstm_state_passes_through():
    lstm = nn.LSTM(V, H)
    model = RNNModelConcise(lstm, V)
    X = torch.randint(0, V, (N, T))
    h0, c0 = torch.randn(1, N, H), torch.randn(1, N, H)
    out, _ = lstm(F.one_hot(X.T, V).float(), (h0, c0))
    close(model(X, (h0, c0)), model.linear(out).transpose(0, 1))


def test_concise_model_takes_the_julia_argument_order():
    model = RNNModelConcise(nn.GRU(V, H), H, V)
    assert (model.num_hiddens, model.vocab_size) == (H, V)
    with pytest.raises(ValueError, match="num_hiddens=5 but the rnn outputs 6"):
        RNNModelConcise(nn.GRU(V, H), 5, V)


def test_concise_model_takes_a_module_holding_the_rnn_as_the_pytorch_edition_writes_it():
    class GRU(nn.Module):  # the edition's RNN/GRU: torch's layer as .rnn, forward(inputs, H)
        def __init__(self, num_inputs, num_hiddens, num_layers):
            super().__init__()
            self.rnn = nn.GRU(num_inputs, num_hiddens, num_layers)

        def forward(self, inputs, H=None):
            return self.rnn(inputs, H)

    gru = GRU(V, H, 2)
    model = RNNModelConcise(gru, V, lr=2)
    assert (model.num_hiddens, model.lr) == (H, 2.0)
    X = torch.randint(0, V, (N, T))
    close(model(X), model.linear(gru.rnn(F.one_hot(X.T, V).float())[0]).transpose(0, 1))


def test_target_mask_leaves_positions_out_of_loss_and_accuracy():
    class Padded(RNNLMScratch):
        def target_mask(self, y):
            return y != 0

    model = Padded(RNNScratch(V, H), V)
    X, Y = torch.randint(0, V, (N, T)), torch.randint(0, V, (N, T))
    Y[0, :3] = 0
    y_hat = model(X)
    keep = (Y != 0).reshape(-1)
    flat_hat, flat_y = y_hat.reshape(-1, V)[keep], Y.reshape(-1)[keep]
    close(model.loss(y_hat, Y), F.cross_entropy(flat_hat, flat_y))
    close(model.accuracy(y_hat, Y), (flat_hat.argmax(-1) == flat_y).float().mean())
    each = model.loss(y_hat, Y, averaged=False)  # every position, the masked ones as 0
    assert each.shape == (N * T,) and bool((each[~keep] == 0).all())


def test_perplexity_figures_are_exp_of_the_mean_losses():
    model = scratch_lm()
    figures = model.epoch_metrics({"train_loss": 1.5, "val_loss": 2.0, "val_acc": 0.3})
    assert figures == pytest.approx({"train_ppl": math.exp(1.5), "val_ppl": math.exp(2.0)})
    assert model.epoch_metrics({"train_loss": 0.5, "val_loss": None}) == pytest.approx(
        {"train_ppl": math.exp(0.5)})
    assert model.epoch_metrics({"train_loss": 1e4})["train_ppl"] == math.inf


# --- prediction ----------------------------------------------------------------------------------

VOCAB = TinyVocab("abcde")


def successor_scratch():
    """RNN LM rigged so that each character predicts the next one of 'abcde' (cyclic)."""
    v = len(VOCAB)
    model = RNNLMScratch(RNNScratch(v, v), v)
    copy(model.rnn.W_xh, 5 * torch.eye(v))  # H_t ~ one-hot of the input character
    copy(model.rnn.W_hh, torch.zeros(v, v))
    copy(model.W_hq, 10 * torch.roll(torch.eye(v), 1, dims=1))  # row i scores i + 1
    return model


def successor_concise():
    v = len(VOCAB)
    model = RNNModelConcise(nn.RNN(v, v), v)
    with torch.no_grad():
        model.rnn.weight_ih_l0.copy_(5 * torch.eye(v))
        for p in (model.rnn.weight_hh_l0, model.rnn.bias_ih_l0, model.rnn.bias_hh_l0,
                  model.linear.bias):
            p.zero_()
        model.linear.weight.copy_(10 * torch.roll(torch.eye(v), 1, dims=0))
    return model


@pytest.mark.parametrize("make", [successor_scratch, successor_concise])
def test_prediction_of_a_rigged_model_is_known(make):
    model = make()
    assert d2lai.prediction("ca", model, VOCAB, 7) == "cabcdeabc"
    assert model.predict("ed", 3, VOCAB) == "edeab"
    assert model.predict("b", 0, VOCAB) == "b"
    assert model.training  # put back in the mode it was in


@pytest.mark.parametrize("make", [lambda: scratch_lm(LSTMScratch, 8),
                                  lambda: RNNModelConcise(nn.LSTM(V, 8), V),
                                  lambda: RNNLMScratch(StackedRNN(V, 8, 2, cell=GRUScratch), V)])
def test_prediction_carries_the_state_like_a_forward_over_the_whole_text(make):
    model = make()
    with torch.no_grad():  # weights large enough that the argmax is far from ties
        for p in model.parameters():
            p.normal_(0, 1.0)
    vocab = TinyVocab("abcdefg")
    prefix, k = "gabfe", 6
    tokens = vocab[list(prefix)]
    with torch.no_grad():
        for _ in range(k):
            tokens.append(int(model(torch.tensor([tokens]))[0, -1].argmax()))
    assert model.predict(prefix, k, vocab) == "".join(vocab.to_tokens(tokens))


# --- clipping ------------------------------------------------------------------------------------

def test_clip_gradients_scales_to_the_global_norm_by_hand():
    model = nn.Linear(2, 1)
    unused = nn.Parameter(torch.ones(3))  # no gradient: left out
    model.register_parameter("unused", unused)
    model.weight.grad = torch.tensor([[3.0, 0.0]])
    model.bias.grad = torch.tensor([4.0])  # global norm sqrt(9 + 16) = 5
    norm = d2lai.clip_gradients(1, model, "max_norm")
    assert float(norm) == pytest.approx(5.0)
    assert model.weight.grad.tolist()[0] == pytest.approx([0.6, 0.0], abs=1e-6)
    assert model.bias.grad.tolist() == pytest.approx([0.8], abs=1e-6)
    assert unused.grad is None
    d2lai.clip_gradients(10, model, "max_norm")  # norm 1 <= 10: unchanged
    assert model.bias.grad.tolist() == pytest.approx([0.8], abs=1e-6)
    d2lai.clip_gradients(10, model)  # the Julia package's: rescaled to norm 10 all the same
    assert model.bias.grad.tolist() == pytest.approx([8.0], abs=1e-5)
    assert model.weight.grad.tolist()[0] == pytest.approx([6.0, 0.0], abs=1e-5)
    with pytest.raises(ValueError, match="clip must be one of 'rescale', 'max_norm'"):
        d2lai.clip_gradients(1, model, "norm")
    with pytest.raises(ValueError, match="grad_clip_val"):
        d2lai.clip_gradients(0, model)


def test_rescaling_leaves_zero_gradients_zero_and_keeps_each_dtype():
    zero = nn.Linear(2, 1)
    zero.weight.grad, zero.bias.grad = torch.zeros(1, 2), torch.zeros(1)
    assert float(d2lai.clip_gradients(1, zero)) == 0.0  # nothing to rescale: no 0/0
    assert zero.weight.grad.tolist() == [[0.0, 0.0]] and zero.bias.grad.tolist() == [0.0]
    f64 = nn.Linear(2, 1).double()  # the Julia text's |> f64
    f64.weight.grad = torch.tensor([[3.0, 0.0]], dtype=torch.float64)
    f64.bias.grad = torch.tensor([4.0], dtype=torch.float64)
    d2lai.clip_gradients(1, f64)
    assert f64.bias.grad.dtype == torch.float64 and f64.bias.grad.item() == pytest.approx(0.8)


# --- errors at the boundary ----------------------------------------------------------------------

@pytest.mark.parametrize("make, match", [
    (lambda: RNNScratch(0, 4), "num_inputs must be a positive integer, got 0"),
    (lambda: LSTMScratch(4, -2), "num_hiddens must be a positive integer, got -2"),
    (lambda: GRUScratch(4, 4, sigma=-1), "sigma"),
    (lambda: StackedRNN(4, 4, 0), "num_layers must be a positive integer, got 0"),
    (lambda: RNNLMScratch(RNNScratch(4, 4), 0), "vocab_size must be a positive integer"),
    (lambda: RNNLMScratch(RNNScratch(5, 4), 4), "takes 5 inputs .* vocab_size=4"),
    (lambda: RNNModelConcise(nn.Linear(4, 4), 4), "cannot tell the sizes"),
    (lambda: RNNLMScratch(RNNScratch(4, 4), 4, lr=0), "lr"),
])
def test_bad_sizes_are_refused_at_construction(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make()


def test_cells_refuse_inputs_of_the_wrong_rank_or_size_and_bad_states():
    rnn = RNNScratch(D, H)
    with pytest.raises(ValueError, match=r"\(batch_size, num_steps, 4\).*got shape \(3, 4\)"):
        rnn(torch.randn(N, D))
    with pytest.raises(ValueError, match="got shape"):
        rnn(torch.randn(N, T, D + 1))
    with pytest.raises(ValueError, match=r"state a tensor of shape \(3, 6\).*got shape \(2, 6\)"):
        rnn(torch.randn(N, T, D), torch.zeros(2, H))
    with pytest.raises(ValueError, match=r"pair \(H, C\)"):
        LSTMScratch(D, H)(torch.randn(N, T, D), torch.zeros(N, H))
    with pytest.raises(ValueError, match="one state per layer"):
        StackedRNN(D, H, 2)(torch.randn(N, T, D), [None])


def test_language_models_refuse_tokens_outside_their_vocabulary():
    for model in (scratch_lm(), RNNModelConcise(nn.GRU(V, H), V)):
        with pytest.raises(ValueError, match=r"token indices from 0 to 9 .* vocab_size=7.*at "
                                             r"least 10 tokens"):
            model(torch.tensor([[0, 9, 2]]))
        with pytest.raises(ValueError, match=r"integer tensor of shape \(batch_size, num_steps\)"):
            model(torch.randint(0, V, (N,)))
        with pytest.raises(ValueError, match=r"one-hot tokens of shape \(batch_size, num_steps, "
                                             r"7\), got \(3, 5, 8\)"):
            model(torch.rand(N, T, V + 1))
    model = scratch_lm()
    y_hat = model(torch.randint(0, V, (N, T)))
    with pytest.raises(ValueError, match="vocabulary has 9 tokens .* vocab_size=7"):
        model.check_batch(y_hat, torch.randint(0, V, (N, T)), SimpleNamespace(num_classes=9))
    with pytest.raises(ValueError,
                       match=r"class scores of shape \(3, num_classes\), got \(3, 5, 7\)"):
        model.check_batch(y_hat, torch.randint(0, V, (N,)))
    with pytest.raises(ValueError, match="vocabulary has 5 tokens .* vocab_size=7"):
        model.predict("ab", 3, VOCAB)
    with pytest.raises(ValueError, match="prefix"):
        successor_scratch().predict("", 3, VOCAB)


# --- a few training steps ------------------------------------------------------------------------

def repetitive_batches(text="abcdeabcdeabcdeabcde" * 4, steps=8):
    """(X, Y) windows of a cyclic text, Y the next character of each X."""
    ids = torch.tensor(VOCAB[list(text)])
    starts = torch.arange(len(ids) - steps - 1)
    X = torch.stack([ids[s:s + steps] for s in starts])
    Y = torch.stack([ids[s + 1:s + steps + 1] for s in starts])
    return X, Y


@pytest.mark.parametrize("make, lr", [
    (lambda v: RNNLMScratch(RNNScratch(v, 16), v), 1.0),
    (lambda v: RNNLMScratch(GRUScratch(v, 16), v), 4.0),
    (lambda v: RNNModelConcise(nn.LSTM(v, 16), v), 4.0),
], ids=["scratch-rnn", "scratch-gru", "concise-lstm"])
def test_a_few_steps_of_sgd_with_clipping_lower_the_loss(make, lr):
    model = make(len(VOCAB))
    X, Y = repetitive_batches()
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    losses = []
    for _ in range(60):
        loss = model.training_step((X, Y))
        opt.zero_grad()
        loss.backward()
        d2lai.clip_gradients(1, model)
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[0] == pytest.approx(math.log(len(VOCAB)), abs=0.1)  # uniform at the start
    assert losses[-1] < 0.25 * losses[0]
    assert model.predict("ab", 6, VOCAB) == "abcdeabc"
