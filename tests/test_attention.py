"""Attention: masking, the scorers, multi-head attention, positional encoding, the transformer
blocks and heatmaps, each against torch's own layers or a hand computation."""

import math

import matplotlib.image
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import d2lai
from d2lai.models import (  # the core layers; the Julia faces: tests/test_julia_face.py
    AdditiveAttention,
    DotProductAttention,
    MultiHeadAttention,
    MultiHeadedAttention,
    PositionalEncoding,
    TransformerDecoder,
    TransformerEncoder,
    TransformerEncoderBlock,
    masked_softmax,
    sequence_mask,
    show_heatmaps,
)


def key_mask(valid_lens, N, Q, K):
    """(N, Q, K) boolean mask, True where a query may look at a key."""
    lens = valid_lens[:, None] if valid_lens.ndim == 1 else valid_lens  # (N, 1) or (N, Q)
    return torch.arange(K)[None, None, :] < lens[..., None].expand(N, Q, 1)


def test_sequence_mask_sets_positions_past_each_length_and_leaves_input_alone():
    X = torch.arange(1.0, 13.0).reshape(3, 4)
    before = X.clone()
    out = sequence_mask(X, torch.tensor([1, 4, 0]), value=-1)
    expected = torch.tensor([[1.0, -1, -1, -1], [5, 6, 7, 8], [-1, -1, -1, -1]])
    assert torch.equal(out, expected)
    assert torch.equal(X, before)
    X3 = torch.ones(2, 3, 2)  # trailing feature dimensions are masked whole
    out3 = sequence_mask(X3, torch.tensor([2, 1]))
    assert out3.sum(-1).tolist() == [[2, 2, 0], [2, 0, 0]]
    with pytest.raises(ValueError, match="valid_len must be a tensor of 3 lengths"):
        sequence_mask(X, torch.tensor([1, 2]))


@pytest.mark.parametrize("two_d", [False, True])
def test_masked_softmax_matches_scaled_dot_product_attention(two_d):
    torch.manual_seed(0)
    N, Q, K = 3, 4, 5
    X = torch.randn(N, Q, K)
    valid_lens = torch.randint(1, K + 1, (N, Q) if two_d else (N,))
    # softmax(X q-by-k) @ I is the weight matrix itself: SDPA with keys = I, values = I, scale 1
    eye = torch.eye(K).expand(N, K, K)
    expected = F.scaled_dot_product_attention(X, eye, eye, attn_mask=key_mask(valid_lens, N, Q, K),
                                              scale=1.0)
    got = masked_softmax(X, valid_lens)
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-5)
    assert bool((got[~key_mask(valid_lens, N, Q, K)] == 0).all())
    torch.testing.assert_close(masked_softmax(X, None), X.softmax(-1))


@pytest.mark.parametrize("two_d", [False, True])
def test_dot_product_attention_matches_scaled_dot_product_attention(two_d):
    torch.manual_seed(1)
    N, Q, K, d, v = 2, 3, 6, 8, 5
    q, k, val = torch.randn(N, Q, d), torch.randn(N, K, d), torch.randn(N, K, v)
    valid_lens = torch.tensor([[2, 6, 1], [4, 3, 5]]) if two_d else torch.tensor([2, 5])
    attention = DotProductAttention(dropout=0.0)
    out = attention(q, k, val, valid_lens)
    expected = F.scaled_dot_product_attention(q, k, val, attn_mask=key_mask(valid_lens, N, Q, K))
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=1e-5)
    assert attention.attention_weights.shape == (N, Q, K)
    torch.testing.assert_close(attention.attention_weights.sum(-1), torch.ones(N, Q))


def test_additive_attention_matches_a_hand_computation():
    torch.manual_seed(2)
    N, Q, K, dq, dk, h, v = 2, 2, 4, 5, 3, 6, 2
    q, k, val = torch.randn(N, Q, dq), torch.randn(N, K, dk), torch.randn(N, K, v)
    valid_lens = torch.tensor([3, 1])
    attention = AdditiveAttention(h, 0.0, query_size=dq, key_size=dk)
    out = attention(q, k, val, valid_lens)
    Wq, Wk, wv = attention.W_q.weight, attention.W_k.weight, attention.w_v.weight[0]
    expected = torch.zeros(N, Q, v)
    with torch.no_grad():
        for n in range(N):
            for i in range(Q):
                scores = [float(wv @ torch.tanh(Wq @ q[n, i] + Wk @ k[n, j]))
                          for j in range(int(valid_lens[n]))]
                weights = torch.tensor(scores).softmax(0)
                expected[n, i] = sum(w * val[n, j] for j, w in enumerate(weights))
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=1e-5)
    assert attention.attention_weights[1, :, 1:].abs().max() == 0


def test_additive_attention_learns_its_input_sizes_lazily_as_the_book():
    attention = AdditiveAttention(num_hiddens=8, dropout=0.1)
    attention.eval()
    out = attention(torch.randn(2, 1, 20), torch.randn(2, 10, 2), torch.randn(2, 10, 4),
                    torch.tensor([2, 6]))
    assert out.shape == (2, 1, 4)
    assert attention.attention_weights.shape == (2, 1, 10)


def copy_into_torch_mha(ours, bias):
    """An nn.MultiheadAttention holding our W_q, W_k, W_v, W_o."""
    h = ours.W_o.out_features
    theirs = nn.MultiheadAttention(h, ours.num_heads, bias=bias, batch_first=True,
                                   kdim=ours.W_k.in_features, vdim=ours.W_v.in_features)
    with torch.no_grad():
        if theirs._qkv_same_embed_dim:
            theirs.in_proj_weight.copy_(torch.cat([ours.W_q.weight, ours.W_k.weight,
                                                   ours.W_v.weight]))
        else:
            theirs.q_proj_weight.copy_(ours.W_q.weight)
            theirs.k_proj_weight.copy_(ours.W_k.weight)
            theirs.v_proj_weight.copy_(ours.W_v.weight)
        theirs.out_proj.weight.copy_(ours.W_o.weight)
        if bias:
            theirs.in_proj_bias.copy_(torch.cat([ours.W_q.bias, ours.W_k.bias, ours.W_v.bias]))
            theirs.out_proj.bias.copy_(ours.W_o.bias)
    return theirs


@pytest.mark.parametrize("bias", [False, True])
def test_multi_head_attention_matches_torch_with_copied_weights(bias):
    torch.manual_seed(3)
    N, Q, K, h, heads = 2, 4, 6, 12, 3
    ours = MultiHeadedAttention(h, heads, 0.0, bias=bias).eval()
    theirs = copy_into_torch_mha(ours, bias).eval()
    q, kv = torch.randn(N, Q, h), torch.randn(N, K, h)
    valid_lens = torch.tensor([3, 6])
    out = ours(q, kv, kv, valid_lens)
    pad = torch.arange(K)[None, :] >= valid_lens[:, None]  # True: leave this key out
    expected, weights = theirs(q, kv, kv, key_padding_mask=pad, average_attn_weights=False)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    # ours keeps (N * heads, Q, K), head fastest; torch gives (N, heads, Q, K)
    torch.testing.assert_close(ours.attention_weights.reshape(N, heads, Q, K), weights,
                               atol=1e-5, rtol=1e-5)


def test_multi_head_attention_with_per_query_lengths_and_other_input_sizes():
    torch.manual_seed(4)
    N, Q, K, h, heads = 2, 3, 5, 8, 2
    ours = MultiHeadAttention(h, heads, 0.0, query_size=h, key_size=6, value_size=7).eval()
    theirs = copy_into_torch_mha(ours, bias=False).eval()
    q, k, v = torch.randn(N, Q, h), torch.randn(N, K, 6), torch.randn(N, K, 7)
    valid_lens = torch.tensor([[1, 2, 3], [5, 4, 2]])  # (N, Q): one length a query
    out = ours(q, k, v, valid_lens)
    # torch's 3-D mask is (N * heads, Q, K), batch-major, True where attention is NOT allowed
    blocked = ~key_mask(valid_lens, N, Q, K).repeat_interleave(heads, dim=0)
    expected, _ = theirs(q, k, v, attn_mask=blocked)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)


def test_transpose_qkv_and_transpose_output_are_inverse():
    attention = MultiHeadedAttention(12, 4, 0.0)
    X = torch.randn(3, 5, 12)
    split = attention.transpose_qkv(X)
    assert split.shape == (12, 5, 3)
    assert torch.equal(split[1 * 4 + 2], X[1, :, 6:9])  # batch item 1, head 2
    assert torch.equal(attention.transpose_output(split), X)


def test_multi_head_attention_refuses_what_cannot_work():
    with pytest.raises(ValueError, match=r"num_hiddens \(10\) must be divisible by num_heads "
                                         r"\(3\).*num_hiddens=9"):
        MultiHeadedAttention(10, 3, 0.1)
    with pytest.raises(ValueError, match="dropout"):
        MultiHeadedAttention(8, 2, 1.5)
    with pytest.raises(TypeError, match="num_heads must be a positive integer"):
        MultiHeadedAttention(8, 2.0, 0.1)
    attention = MultiHeadedAttention(8, 2, 0.0)
    X = torch.randn(2, 3, 8)
    with pytest.raises(ValueError, match=r"shape \(N,\) = \(2,\) or \(N, Q\) = \(2, 3\).*"
                                         r"got shape \(4,\)"):
        attention(X, X, X, torch.tensor([1, 2, 3, 1]))
    with pytest.raises(ValueError, match=r"got shape \(2, 2\)"):
        masked_softmax(torch.randn(2, 3, 4), torch.ones(2, 2))


def test_positional_encoding_follows_the_formula():
    for h in (6, 7):  # even and odd widths
        encoding = PositionalEncoding(h, dropout=0.0, max_len=50)
        out = encoding(torch.zeros(2, 10, h))
        expected = torch.zeros(10, h)
        for i in range(10):
            for j in range(h):
                angle = i / 10000 ** ((j - j % 2) / h)
                expected[i, j] = math.sin(angle) if j % 2 == 0 else math.cos(angle)
        torch.testing.assert_close(out, expected.expand(2, 10, h), atol=1e-6, rtol=1e-5)
        shifted = encoding(torch.zeros(1, 3, h), offset=4)  # positions 4, 5, 6
        torch.testing.assert_close(shifted[0], expected[4:7], atol=1e-6, rtol=1e-5)


def test_positional_encoding_refuses_sequences_longer_than_max_len():
    encoding = PositionalEncoding(8, 0.0, max_len=5)
    assert encoding(torch.zeros(1, 5, 8)).shape == (1, 5, 8)
    with pytest.raises(ValueError, match=r"need 6 positions.*max_len=5.*max_len >= 6"):
        encoding(torch.zeros(1, 6, 8))
    with pytest.raises(ValueError, match="need 7 positions"):
        encoding(torch.zeros(1, 2, 8), offset=5)


def test_transformer_encoder_ignores_padding_past_the_valid_lengths():
    torch.manual_seed(5)
    encoder = TransformerEncoder(20, 16, 32, 4, 2, 0.0).eval()
    X = torch.randint(0, 20, (2, 6))
    valid_lens = torch.tensor([3, 6])
    out = encoder(X, valid_lens)
    assert out.shape == (2, 6, 16)
    X2 = X.clone()
    X2[0, 3:] = (X2[0, 3:] + 1) % 20  # change only sequence 0's padding
    out2 = encoder(X2, valid_lens)
    torch.testing.assert_close(out2[0, :3], out[0, :3])
    torch.testing.assert_close(out2[1], out[1])
    assert len(encoder.attention_weights) == 2
    assert encoder.attention_weights[0].shape == (2 * 4, 6, 6)


def test_transformer_decoder_fed_a_token_at_a_time_matches_the_whole_sequence():
    torch.manual_seed(6)
    decoder = TransformerDecoder(15, 16, 32, 4, 2, 0.0).eval()
    enc_outputs, enc_valid_lens = torch.randn(2, 5, 16), torch.tensor([5, 2])
    Y = torch.randint(0, 15, (2, 6))
    whole, _ = decoder(Y, decoder.init_state(enc_outputs, enc_valid_lens))
    state, steps = decoder.init_state(enc_outputs, enc_valid_lens), []
    for t in range(6):
        out, state = decoder(Y[:, t:t + 1], state)
        steps.append(out)
    torch.testing.assert_close(torch.cat(steps, 1), whole, atol=1e-5, rtol=1e-5)
    # and no position sees the future: changing the last token changes only the last output
    Y2 = Y.clone()
    Y2[:, -1] = (Y2[:, -1] + 1) % 15
    whole2, _ = decoder(Y2, decoder.init_state(enc_outputs, enc_valid_lens))
    torch.testing.assert_close(whole2[:, :-1], whole[:, :-1])
    self_weights, cross_weights = decoder.attention_weights
    assert self_weights[0].shape == (2 * 4, 6, 6) and cross_weights[1].shape == (2 * 4, 6, 5)


def test_transformer_blocks_keep_shapes_as_the_book():
    X = torch.ones(2, 100, 24)
    block = TransformerEncoderBlock(24, 48, 8, 0.5).eval()
    assert block(X, torch.tensor([3, 2])).shape == X.shape
    ffn = d2lai.PositionWiseFFN(4, 8).eval()  # lazy input size, as the book's example
    assert ffn(torch.ones(2, 3, 4)).shape == (2, 3, 8)
    assert d2lai.AddNorm(4, 0.5)(torch.ones(2, 3, 4), torch.ones(2, 3, 4)).shape == (2, 3, 4)


def test_show_heatmaps_writes_a_png_with_one_axes_per_matrix_and_a_colour_bar(tmp_path):
    path = tmp_path / "weights.png"
    matrices = torch.rand(2, 3, 4, 5)
    fig = show_heatmaps(matrices, xlabel="Keys", ylabel="Queries",
                        titles=["Head 1", "Head 2", "Head 3"], figsize=(6, 4), path=path)
    assert len(fig.axes) == 2 * 3 + 1  # six heatmaps and the colour bar
    assert [ax.get_title() for ax in fig.axes[:3]] == ["Head 1", "Head 2", "Head 3"]
    assert fig.axes[3].get_xlabel() == "Keys" and fig.axes[0].get_ylabel() == "Queries"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = matplotlib.image.imread(path)
    assert image.shape[:2] == (4 * fig.dpi, 6 * fig.dpi)
    with pytest.raises(ValueError, match=r"must be 4-D.*got shape \(4, 5\)"):
        show_heatmaps(torch.rand(4, 5), "Keys", "Queries")
