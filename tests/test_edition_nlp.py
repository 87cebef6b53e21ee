"""The NLP chapters through `from d2lai import torch as d2l`: word2vec's PTB data, pretrained
embeddings, BERT against torch's own encoder layer, its WikiText-2 data, IMDb, SNLI and the
older sequence-to-sequence helpers; on the generated stand-ins of d2lai.testing."""

import collections
import json
import math
import random

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from d2lai import torch as d2l
from d2lai.testing import (
    write_fake_bert,
    write_fake_embedding,
    write_fake_fra_eng,
    write_fake_imdb,
    write_fake_ptb,
    write_fake_snli,
    write_fake_wikitext2,
)


@pytest.fixture
def root(tmp_path, monkeypatch, offline):
    monkeypatch.setenv("D2LAI_DATA", str(tmp_path))
    return tmp_path


# --- text helpers and the data sets' files -------------------------------------------------------

def test_tokenize_and_truncate_pad():
    assert d2l.tokenize(["a b  c", "d"]) == [["a", "b", "c"], ["d"]]
    assert d2l.tokenize(["ab"], token="char") == [["a", "b"]]
    assert d2l.truncate_pad([1, 2, 3], 5, 0) == [1, 2, 3, 0, 0]
    assert d2l.truncate_pad([1, 2, 3], 2, 0) == [1, 2]
    with pytest.raises(ValueError, match="'word' or 'char'"):
        d2l.tokenize(["a"], token="byte")
    with pytest.raises(TypeError, match="list of lines"):
        d2l.tokenize("a b")
    with pytest.raises(ValueError, match="num_steps"):
        d2l.truncate_pad([1], 0, 0)


@pytest.mark.parametrize("name, file", [("ptb", "ptb.zip"), ("aclImdb", "aclImdb_v1.tar.gz"),
                                        ("SNLI", "snli_1.0.zip")])
def test_offline_the_error_names_url_file_and_folder(root, name, file):
    with pytest.raises(FileNotFoundError) as err:
        d2l.download_extract(name)
    message = str(err.value)
    assert d2l.DATA_HUB[name][0] in message and file in message and str(root) in message


def test_an_archive_unpacks_to_its_whole_stem(root):
    write_fake_embedding(root, "glove.6b.50d", num_words=50)
    assert d2l.download_extract("glove.6b.50d").endswith("glove.6B.50d")
    write_fake_snli(root, num_train=10, num_test=10)
    assert d2l.download_extract("SNLI").endswith("snli_1.0")


# --- word2vec: PTB, subsampling, contexts, negatives ---------------------------------------------

def test_subsampling_keeps_each_word_with_probability_sqrt_t_over_f():
    random.seed(0)
    sentences = [["a"] * 90000 + ["b"] * 10 + ["rare"]]
    vocab = d2l.Vocab(sentences, min_freq=2)  # 'rare' is '<unk>': dropped, not counted
    kept, counter = d2l.subsample(sentences, vocab)
    assert counter == collections.Counter({"a": 90000, "b": 10})
    n = 90010
    p_a, p_b = math.sqrt(1e-4 * n / 90000), min(1.0, math.sqrt(1e-4 * n / 10))
    got_a = kept[0].count("a")
    assert abs(got_a - 90000 * p_a) < 5 * math.sqrt(90000 * p_a * (1 - p_a))
    assert kept[0].count("b") >= 6 and "rare" not in kept[0]
    assert p_b > 0.9


def test_contexts_are_the_neighbours_within_the_window():
    corpus = [[0, 1, 2, 3], [9], [5, 6]]
    centers, contexts = d2l.get_centers_and_contexts(corpus, 1)  # window 1: no draw matters
    assert centers == [0, 1, 2, 3, 5, 6]  # a one-word sentence has no center
    assert contexts == [[1], [0, 2], [1, 3], [2], [6], [5]]
    random.seed(1)
    line = list(range(20))
    centers, contexts = d2l.get_centers_and_contexts([line], 3)
    for c, ctx in zip(centers, contexts, strict=True):
        w = max(c - min(ctx), max(ctx) - c)
        assert 1 <= w <= 3 and c not in ctx
        assert ctx == [i for i in range(max(0, c - w), min(20, c + w + 1)) if i != c]


def test_random_generator_draws_in_proportion_to_the_weights():
    random.seed(0)
    gen = d2l.RandomGenerator([2, 3, 5])
    draws = collections.Counter(gen.draw() for _ in range(30000))
    assert set(draws) == {1, 2, 3}
    for k, w in zip((1, 2, 3), (0.2, 0.3, 0.5), strict=True):
        assert abs(draws[k] / 30000 - w) < 0.015
    with pytest.raises(ValueError, match="sampling weights"):
        d2l.RandomGenerator([])


def test_negatives_avoid_the_context_and_follow_count_to_the_three_quarters():
    random.seed(0)
    vocab = d2l.Vocab([["x"] * 5 + ["y"] * 80 + ["z"] * 15])  # indices: <unk> 0, x 1, y 2, z 3
    counter = collections.Counter({"x": 5, "y": 80, "z": 15})
    negatives = d2l.get_negatives([[1]] * 4000, vocab, counter, 2)
    assert all(len(n) == 2 and 1 not in n for n in negatives)
    drawn = collections.Counter(i for n in negatives for i in n)
    w = {2: 80 ** 0.75, 3: 15 ** 0.75}
    assert abs(drawn[2] / 8000 - w[2] / (w[2] + w[3])) < 0.02


def test_batchify_pads_and_masks_by_hand():
    data = ((1, (2, 2), (3, 3, 3, 3)), (1, (2, 2, 2), (3, 3)))
    center, ctx_neg, mask, label = d2l.batchify(data)
    assert center.tolist() == [[1], [1]]
    assert ctx_neg.tolist() == [[2, 2, 3, 3, 3, 3], [2, 2, 2, 3, 3, 0]]
    assert mask.tolist() == [[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 0]]
    assert label.tolist() == [[1, 1, 0, 0, 0, 0], [1, 1, 1, 0, 0, 0]]


def test_load_data_ptb_and_the_skip_gram_loss_by_hand(root):
    write_fake_ptb(root, num_lines=600)
    random.seed(0)
    torch.manual_seed(0)
    data_iter, vocab = d2l.load_data_ptb(64, 2, 3)
    counts = collections.Counter(t for line in d2l.read_ptb() for t in line)
    assert all(counts[t] >= 10 for t in vocab.idx_to_token if t != "<unk>")
    batches = list(data_iter)
    assert len(batches) == len(data_iter) and sum(len(b[0]) for b in batches) > 200
    for _, ctx_neg, mask, label in batches:
        n_ctx = label.sum(1)
        assert (mask.sum(1) == 4 * n_ctx).all()  # 3 negatives per context word
        assert mask.sum(1).max() == ctx_neg.shape[1] and (label <= mask).all()
    center, ctx_neg, mask, label = batches[0]
    embed_v, embed_u = nn.Embedding(len(vocab), 8), nn.Embedding(len(vocab), 8)
    pred = torch.bmm(embed_v(center), embed_u(ctx_neg).permute(0, 2, 1)).squeeze(1)  # (N, L)
    loss = (F.binary_cross_entropy_with_logits(pred, label.float(), weight=mask.float(),
                                               reduction="none").mean(1)
            / mask.sum(1) * mask.shape[1])
    hand = []
    for i in range(len(center)):
        v = embed_v.weight[center[i, 0]]
        terms = [-math.log(torch.sigmoid((1 if label[i, j] else -1) * v @ embed_u.weight[
            ctx_neg[i, j]]).item()) for j in range(int(mask[i].sum()))]
        hand.append(sum(terms) / len(terms))
    torch.testing.assert_close(loss, torch.tensor(hand), rtol=1e-4, atol=1e-5)


# --- pretrained embeddings -----------------------------------------------------------------------

@pytest.mark.parametrize("name", ["glove.6b.50d", "wiki.en"])
def test_token_embedding_reads_the_vectors_in_file_order(root, name):
    write_fake_embedding(root, name, num_words=200)
    emb = d2l.TokenEmbedding(name)
    folder = d2l.download_extract(name)
    lines = open(f"{folder}/vec.txt", encoding="utf-8").read().split("\n")
    first = lines[1 if name == "wiki.en" else 0].split(" ")
    assert emb.idx_to_token[:2] == ["<unk>", first[0]] and len(emb) == 201
    torch.testing.assert_close(emb[[first[0], "no-such-word"]],
                               torch.stack([torch.tensor([float(x) for x in first[1:]]),
                                            torch.zeros(len(first) - 1)]))
    # the stand-in's analogies hold: woman - man + son is nearest daughter
    W = emb.idx_to_vec
    x = emb[["woman"]][0] - emb[["man"]][0] + emb[["son"]][0]
    cos = W @ x / (W.norm(dim=1) * x.norm() + 1e-9)
    assert emb.idx_to_token[int(cos.argmax())] == "daughter"


def test_token_embedding_says_which_file_is_wrong(root):
    import zipfile

    with zipfile.ZipFile(root / "glove.6B.50d.zip", "w") as z:
        z.writestr("glove.6B.50d/vec.txt", "a 1 2 3\nb 1 2\n")
    with pytest.raises(ValueError, match="line 2: 2 numbers after 'b'"):
        d2l.TokenEmbedding("glove.6b.50d")
    with zipfile.ZipFile(root / "wiki.en.zip", "w") as z:
        z.writestr("wiki.en/vec.txt", "2 3\na 1 2 3\nb 1 x 3\n")
    with pytest.raises(ValueError, match="something other than numbers"):
        d2l.TokenEmbedding("wiki.en")


# --- BERT ----------------------------------------------------------------------------------------

def test_tokens_and_segments_by_hand():
    assert d2l.get_tokens_and_segments(["a", "b"]) == (["<cls>", "a", "b", "<sep>"], [0] * 4)
    assert d2l.get_tokens_and_segments(["a"], ["c", "d"]) == (
        ["<cls>", "a", "<sep>", "c", "d", "<sep>"], [0, 0, 0, 1, 1, 1])


def test_bert_encoder_equals_torch_encoder_layers_with_copied_weights():
    torch.manual_seed(0)
    V, h, ffn, heads, T = 20, 16, 24, 4, 6
    enc = d2l.BERTEncoder(V, h, ffn, heads, 2, 0.0, max_len=10)
    layers = [nn.TransformerEncoderLayer(h, heads, ffn, dropout=0.0, batch_first=True)
              for _ in range(2)]
    with torch.no_grad():
        for blk, layer in zip(enc.blks, layers, strict=True):
            att = blk.attention
            layer.self_attn.in_proj_weight.copy_(torch.cat([att.W_q.weight, att.W_k.weight,
                                                            att.W_v.weight]))
            layer.self_attn.in_proj_bias.copy_(torch.cat([att.W_q.bias, att.W_k.bias,
                                                          att.W_v.bias]))
            layer.self_attn.out_proj.weight.copy_(att.W_o.weight)
            layer.self_attn.out_proj.bias.copy_(att.W_o.bias)
            for mine, theirs in ((blk.ffn.dense1, layer.linear1), (blk.ffn.dense2, layer.linear2),
                                 (blk.addnorm1.ln, layer.norm1), (blk.addnorm2.ln, layer.norm2)):
                theirs.weight.copy_(mine.weight)
                theirs.bias.copy_(mine.bias)
    tokens = torch.randint(0, V, (2, T))
    segments = torch.tensor([[0, 0, 0, 1, 1, 1], [0, 0, 1, 1, 0, 0]])
    valid_lens = torch.tensor([6, 4])
    out = enc(tokens, segments, valid_lens)
    X = enc.token_embedding(tokens) + enc.segment_embedding(segments) + enc.pos_embedding[:, :T]
    pad = torch.arange(T)[None, :] >= valid_lens[:, None]
    for layer in layers:
        X = layer(X, src_key_padding_mask=pad)
    assert out.shape == (2, T, h)
    torch.testing.assert_close(out[0], X[0], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(out[1, :4], X[1, :4], rtol=1e-4, atol=1e-5)


def test_masked_lm_scores_the_chosen_positions_and_bert_gives_three_outputs():
    torch.manual_seed(0)
    X = torch.randn(2, 8, 16)
    mlm = d2l.MaskLM(30, 16)
    positions = torch.tensor([[1, 5, 2], [6, 1, 5]])
    Y = mlm(X, positions)
    assert Y.shape == (2, 3, 30)
    torch.testing.assert_close(Y[1, 0], mlm.mlp(X[1, 6]))
    torch.testing.assert_close(Y[0, 2], mlm.mlp(X[0, 2]))
    assert d2l.NextSentencePred()(X[:, 0]).shape == (2, 2)
    net = d2l.BERTModel(30, 16, 32, 2, 2, 0.1, max_len=8)
    tokens, segments = torch.randint(0, 30, (2, 8)), torch.zeros(2, 8, dtype=torch.long)
    encoded, mlm_Y, nsp_Y = net(tokens, segments, torch.tensor([8, 5]), positions)
    assert encoded.shape == (2, 8, 16) and mlm_Y.shape == (2, 3, 30) and nsp_Y.shape == (2, 2)
    assert net(tokens, segments)[1] is None
    with pytest.raises(ValueError, match="max_len=8"):
        net(torch.zeros(1, 9, dtype=torch.long), torch.zeros(1, 9, dtype=torch.long))
    with pytest.raises(ValueError, match="segment token indices range from 0 to 2"):
        net(tokens, segments + torch.tensor([0] * 7 + [2]))
    with pytest.raises(ValueError, match="prediction position"):
        mlm(X, torch.tensor([[8], [0]]))


def test_load_data_wiki_gives_padded_pretraining_batches(root):
    write_fake_wikitext2(root, num_paragraphs=60)
    random.seed(0)
    data_iter, vocab = d2l.load_data_wiki(32, 24)
    batch = next(iter(data_iter))
    tokens, segments, valid_lens, positions, weights, labels, nsp = batch
    P = round(24 * 0.15)
    assert tokens.shape == segments.shape == (32, 24) and positions.shape == (32, P)
    assert weights.shape == labels.shape == (32, P) and nsp.shape == valid_lens.shape == (32,)
    assert (tokens[:, 0] == vocab["<cls>"]).all()
    # the last real token is the closing '<sep>' (a random replacement may be '<pad>' itself)
    sep = vocab["<sep>"]
    last_sep = [max(i for i, t in enumerate(row) if t == sep) for row in tokens.tolist()]
    assert valid_lens.tolist() == [i + 1 for i in last_sep]
    assert (tokens[torch.arange(24)[None, :] >= valid_lens[:, None]] == vocab["<pad>"]).all()
    real = weights.bool()
    assert (weights.sum(1) == torch.clamp(torch.round(valid_lens * 0.15), min=1)).all()
    chosen = tokens.gather(1, positions)[real]
    assert not ((chosen == vocab["<cls>"]) | (chosen == vocab["<sep>"])).any()
    assert set(nsp.tolist()) <= {0, 1}
    # the pretraining loss of the book's helper, by hand
    net = d2l.BERTModel(len(vocab), 16, 32, 2, 1, 0.0, max_len=24)
    loss = nn.CrossEntropyLoss(reduction="none")
    mlm_l, nsp_l, total = d2l._get_batch_loss_bert(net, loss, len(vocab), *batch)
    torch.manual_seed(0)
    _, mlm_Y, nsp_Y = net(tokens, segments, valid_lens, positions)
    torch.testing.assert_close(mlm_l, F.cross_entropy(mlm_Y[real], labels[real]), rtol=1e-4,
                               atol=1e-6)
    torch.testing.assert_close(total, mlm_l + nsp_l)
    assert nsp_l.shape == (32,)
    mean_mlm, mean_nsp, _ = d2l._get_batch_loss_bert(net, nn.CrossEntropyLoss(), len(vocab),
                                                     *batch)  # the book's loss: every slot
    torch.testing.assert_close(mean_mlm, F.cross_entropy(mlm_Y.reshape(-1, len(vocab)),
                                                         labels.reshape(-1)), rtol=1e-4,
                               atol=1e-6)
    torch.testing.assert_close(mean_nsp, F.cross_entropy(nsp_Y, nsp))


def test_the_pretrained_bert_stand_in_loads_into_the_book_sized_model(root):
    write_fake_bert(root, num_hiddens=32, ffn_num_hiddens=64, max_len=16)
    folder = d2l.download_extract("bert.small")
    vocab = json.load(open(f"{folder}/vocab.json"))
    bert = d2l.BERTModel(len(vocab), 32, 64, 4, 2, 0.2, max_len=16)
    bert.load_state_dict(torch.load(f"{folder}/pretrained.params"))
    assert vocab[:5] == ["<unk>", "<pad>", "<mask>", "<cls>", "<sep>"]
    assert bert(torch.zeros(1, 4, dtype=torch.long), torch.zeros(1, 4, dtype=torch.long))[2] \
        .shape == (1, 2)


# --- sentiment analysis --------------------------------------------------------------------------

class _Fixed(nn.Module):
    """Scores class `c` highest for every input (a probe for the predict_* helpers)."""

    def __init__(self, c, n):
        super().__init__()
        self.c, self.n, self.w = c, n, nn.Parameter(torch.zeros(1))
        self.inputs = None

    def forward(self, X):
        self.inputs = X
        N = len(X[0]) if isinstance(X, list) else len(X)
        return F.one_hot(torch.full((N,), self.c), self.n).float() + self.w


def test_imdb_reads_reviews_and_pads_them(root):
    write_fake_imdb(root, num_train=40, num_test=20)
    data_dir = d2l.download_extract("aclImdb", "aclImdb")
    reviews, labels = d2l.read_imdb(data_dir, True)
    assert len(reviews) == 40 and labels == [1] * 20 + [0] * 20
    assert all("\n" not in r for r in reviews)
    train_iter, test_iter, vocab = d2l.load_data_imdb(16, num_steps=30)
    X, y = next(iter(test_iter))
    assert X.shape == (16, 30) and y.tolist() == [1] * 10 + [0] * 6  # in order: pos, neg
    first = d2l.truncate_pad(vocab[d2l.read_imdb(data_dir, False)[0][0].split()], 30,
                             vocab["<pad>"])
    assert X[0].tolist() == first
    assert sum(len(b[1]) for b in train_iter) == 40
    net = _Fixed(1, 2)
    assert d2l.predict_sentiment(net, vocab, "this movie is great") == "positive"
    assert net.inputs.tolist() == [vocab[["this", "movie", "is", "great"]]]
    assert d2l.predict_sentiment(_Fixed(0, 2), vocab, "so bad") == "negative"
    with pytest.raises(FileNotFoundError, match="train/pos"):
        d2l.read_imdb(root, True)


def test_load_data_imdb_without_reviews_says_so(root):
    import tarfile

    with tarfile.open(root / "aclImdb_v1.tar.gz", "w:gz") as t:
        for split in ("train", "test"):
            for label in ("pos", "neg"):
                info = tarfile.TarInfo(f"aclImdb/{split}/{label}")
                info.type = tarfile.DIRTYPE
                t.addfile(info)
    with pytest.raises(ValueError, match="holds no reviews"):
        d2l.load_data_imdb(8)


# --- natural language inference ------------------------------------------------------------------

def test_snli_reads_gold_pairs_and_batches_them(root, capsys):
    write_fake_snli(root, num_train=120, num_test=40)
    data_dir = d2l.download_extract("SNLI")
    premises, hypotheses, labels = d2l.read_snli(data_dir, True)
    rows = open(f"{data_dir}/snli_1.0_train.txt").read().split("\n")[1:]
    gold = [r.split("\t") for r in rows if r and r.split("\t")[0] != "-"]
    assert len(premises) == len(hypotheses) == len(labels) == len(gold) < 120
    assert premises[0] == gold[0][5] and "(" not in premises[0] + hypotheses[0]
    assert labels[0] == {"entailment": 0, "contradiction": 1, "neutral": 2}[gold[0][0]]
    train_iter, test_iter, vocab = d2l.load_data_snli(16, num_steps=12)
    assert "read" in capsys.readouterr().out
    (P, H), y = next(iter(test_iter))
    assert P.shape == H.shape == (16, 12) and y.shape == (16,)
    test = d2l.SNLIDataset(d2l.read_snli(data_dir, False), 12, vocab)
    (p0, h0), y0 = test[0]
    assert torch.equal(P[0], p0) and torch.equal(H[0], h0) and y[0] == y0
    first = d2l.read_snli(data_dir, False)[0][0].split()
    assert p0.tolist() == d2l.truncate_pad(vocab[first], 12, vocab["<pad>"])
    net = _Fixed(1, 3)
    assert d2l.predict_snli(net, vocab, ["a", "man"], ["a", "dog"]) == "contradiction"
    assert [t.shape for t in net.inputs] == [(1, 2), (1, 2)]
    assert d2l.predict_snli(_Fixed(2, 3), vocab, ["a"], ["b"]) == "neutral"


# --- the older sequence-to-sequence helpers ------------------------------------------------------

def test_nmt_helpers_by_hand(root):
    text = d2l.preprocess_nmt("Go.\tVa !\nHi!\tSalut\u202f!\nRun\tCours\n")
    assert text == "go .\tva !\nhi !\tsalut !\nrun\tcours\n"
    source, target = d2l.tokenize_nmt(text)
    assert source == [["go", "."], ["hi", "!"], ["run"]] and target[1] == ["salut", "!"]
    assert len(d2l.tokenize_nmt(text, 1)[0]) == 2  # as the book's: lines 0..num_examples
    vocab = d2l.Vocab(source, reserved_tokens=["<pad>", "<bos>", "<eos>"])
    array, valid_len = d2l.build_array_nmt(source, vocab, 3)
    assert array.tolist() == [vocab[["go", ".", "<eos>"]], vocab[["hi", "!", "<eos>"]],
                              vocab[["run", "<eos>", "<pad>"]]]
    assert valid_len.tolist() == [3, 3, 2]
    write_fake_fra_eng(root)
    data_iter, src_vocab, tgt_vocab = d2l.load_data_nmt(8, 6, num_examples=40)
    X, X_len, Y, Y_len = next(iter(data_iter))
    assert X.shape == Y.shape == (8, 6) and X_len.shape == (8,)
    assert (X_len == (X != src_vocab["<pad>"]).sum(1)).all()


def test_masked_softmax_ce_loss_equals_cross_entropy_on_the_kept_positions():
    torch.manual_seed(0)
    pred, label = torch.randn(3, 4, 10), torch.randint(0, 10, (3, 4))
    valid_len = torch.tensor([4, 2, 0])
    loss = d2l.MaskedSoftmaxCELoss()(pred, label, valid_len)
    assert loss.shape == (3,)
    for i, n in enumerate(valid_len.tolist()):
        kept = F.cross_entropy(pred[i, :n], label[i, :n], reduction="sum") if n else 0.0
        torch.testing.assert_close(loss[i], torch.as_tensor(kept / 4, dtype=torch.float32))
    with pytest.raises(ValueError, match=r"pred \(N, T, V\)"):
        d2l.MaskedSoftmaxCELoss()(pred[0], label[0], valid_len)


def test_train_seq2seq_lowers_the_loss_and_predict_seq2seq_decodes(root, capsys):
    write_fake_fra_eng(root)
    torch.manual_seed(0)
    data_iter, src_vocab, tgt_vocab = d2l.load_data_nmt(32, 8, num_examples=100)
    from d2lai.models.seq2seq import Seq2SeqDecoder

    net = d2l.EncoderDecoder(d2l.Seq2SeqEncoder(len(src_vocab), 16, 32, 1),
                             Seq2SeqDecoder(len(tgt_vocab), 16, 32, 1))
    loss = d2l.MaskedSoftmaxCELoss()

    def mean_loss():
        total = tokens = 0
        with torch.no_grad():
            for X, X_len, Y, Y_len in data_iter:
                dec = torch.cat([torch.full((len(Y), 1), tgt_vocab["<bos>"]), Y[:, :-1]], 1)
                total += loss(net(X, dec, X_len), Y, Y_len).sum()
                tokens += Y_len.sum()
        return total / tokens

    d2l.train_seq2seq(net, data_iter, 0.005, 1, tgt_vocab, "cpu")
    before = mean_loss()
    d2l.train_seq2seq(net, data_iter, 0.005, 10, tgt_vocab, "cpu")
    assert mean_loss() < before
    assert "tokens/sec on cpu" in capsys.readouterr().out
    translation, weights = d2l.predict_seq2seq(net, "go .", src_vocab, tgt_vocab, 5, "cpu")
    assert isinstance(translation, str) and len(translation.split()) <= 5 and weights == []
