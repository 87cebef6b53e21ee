"""The Julia edition's sections 8.1, 8.2, 9.4-9.7 and 10.6, translated line for line by the
rules of the design notes (the text's `features x steps x batch` arrays read batch first,
`(N, T, features)`; its 1-based indices 0-based), on small generated data: each runs as typed,
gives the text's shapes, and the values it prints where the stand-in data can give them.
Sections 8.3, 8.5, 8.6, 9.1-9.3 and 10.2-10.5: tests/test_julia_sections.py."""

import math
import zipfile
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import d2lai
from d2lai import (
    AbstractClassifier,
    AbstractData,
    AbstractModel,
    Descent,
    LinearRegressionConcise,
    Trainer,
    construct_nt_args,
)
from d2lai.testing import write_fake_time_machine


@pytest.fixture(autouse=True)
def _seeded(one_thread):
    torch.manual_seed(0)


@pytest.fixture
def fra(fra_root, monkeypatch):
    """The data folder holding fra-eng.zip, as the text finds it: through D2LAI_DATA."""
    monkeypatch.setenv("D2LAI_DATA", str(fra_root))
    return fra_root


@pytest.fixture
def tm(tmp_path, monkeypatch):
    write_fake_time_machine(tmp_path)
    monkeypatch.setenv("D2LAI_DATA", str(tmp_path))
    return tmp_path


def flux_dataloader(arrays, batchsize, shuffle):
    """`Flux.DataLoader((a, b, ...); batchsize, shuffle)`: the last batch kept, short or not."""
    return DataLoader(TensorDataset(*arrays), batch_size=batchsize, shuffle=shuffle)


# --- 8.1 working with sequences: the sine with noise, its regression, k-step predictions ------

class SineData(AbstractData):
    def __init__(self, batchsize=16, T=1000, num_train=600, tau=4):
        time = torch.arange(1, T + 1, dtype=torch.float32)  # collect(1:1:T)
        self.X = torch.sin(0.01 * time) + torch.randn(T) * 0.2
        self.time = time
        # the text's args: num_train = 600 whatever it is given
        self.args = construct_nt_args(batchsize=batchsize, num_train=600, tau=tau, T=T)

    def get_dataloader(self, train=True):
        a = self.args
        features = [self.X[i - 1:a.T - a.tau + i] for i in range(1, a.tau + 1)]
        features = torch.stack(features, 1)  # reduce(hcat, features)': (T - tau + 1, tau)
        labels = self.X[a.tau - 1:].reshape(-1, 1)  # reshape(X[tau:end], 1, :)
        if train:
            return flux_dataloader((features[:a.num_train], labels[:a.num_train]),
                                   a.batchsize, train)
        return flux_dataloader((features[a.num_train:], labels[a.num_train:]), a.batchsize,
                               train)


def test_8_1_sine_regression_and_k_step_predictions():
    data = SineData()
    assert data.X.shape == data.time.shape == (1000,)
    model = LinearRegressionConcise(nn.Linear(4, 1))  # Dense(4 => 1)
    opt = Descent(0.01)
    data = SineData()
    trainer = Trainer(model, data, opt, max_epochs=3, verbose=False, board=False)
    _, metrics = d2lai.fit(trainer)
    # the text: Train Loss 0.0152, Val Loss 0.0224 after 3 epochs; its label is the last of
    # its four features (X[tau:end]), so a net that copies that feature has loss 0
    assert metrics.val_loss < 0.06 and metrics.history["train_loss"][-1] < 0.06
    assert metrics.history["train_loss"][0] > metrics.history["train_loss"][-1]

    a = data.args
    features = torch.stack([data.X[i - 1:a.T - a.tau + i] for i in range(1, a.tau + 1)], 1)
    labels = data.X[a.tau - 1:].reshape(-1, 1)
    with torch.no_grad():
        onestep_preds = model.net(features)
    assert onestep_preds.shape == labels.shape == (997, 1)
    assert len(data.time[a.tau - 1:]) == 997

    X0 = data.X.clone()
    multistep_preds = data.X  # the same array: the text writes its predictions into data.X
    with torch.no_grad():
        for i in range(a.num_train + a.tau, a.T + 1):
            multistep_preds[i - 1] = model.net(multistep_preds[i - a.tau:i])[0]
    assert data.X is multistep_preds and torch.equal(data.X[:603], X0[:603])
    assert not torch.equal(data.X[603:], X0[603:])

    def k_step_pred(k):
        features = []
        for i in range(1, a.tau + 1):
            features.append(data.X[i - 1:i + a.T - a.tau - k + 1])
        for i in range(1, k + 1):
            with torch.no_grad():
                preds = model.net(torch.stack(features[i - 1:i + a.tau - 1], 1))
            features.append(preds.flatten())  # vec(preds)
        return features[a.tau - 1:]

    steps = (1, 4, 16, 64)
    preds = k_step_pred(steps[-1])
    assert len(preds) == steps[-1] + 1
    assert len(data.time[a.tau + steps[-1] - 2:]) == 934
    curves = torch.stack([preds[k - 1] for k in steps], 1)  # reduce(hcat, [preds[k] ...])
    assert curves.shape == (934, 4)
    # the text's preds[1] is its last window column, preds[2] the net on the four columns
    torch.testing.assert_close(preds[0], data.X[a.tau - 1:a.tau - 1 + 934])
    w, b = model.net.weight.detach()[0], model.net.bias.detach()[0]
    hand = sum(w[j] * data.X[j:j + 934] for j in range(4)) + b
    torch.testing.assert_close(preds[1], hand)


# --- 8.2 converting raw text into sequence data: the text's own reader and Vocab -------------

class TimeMachine(AbstractData):  # the text's own struct, beside the package's
    def __init__(self, X, y, raw_text):
        self.X, self.y, self.raw_text = X, y, raw_text

    @staticmethod
    def _download():
        file_path = d2lai._download("timemachine.txt")
        with open(file_path) as f:
            return f.read()

    @staticmethod
    def _preprocess(raw_text):
        import re
        return re.sub("[^A-Za-z]+", " ", raw_text).lower()

    @staticmethod
    def _tokenize(text):
        return [str(c) for c in text]  # string.(collect(text))

    @classmethod
    def build(cls, raw_text, vocab=None):
        tokens = cls._tokenize(cls._preprocess(raw_text))
        if vocab is None:
            vocab = Vocab(tokens=tokens)
        corpus = [vocab[token] for token in tokens]
        return corpus, vocab


class Vocab:  # the text's own
    def __init__(self, tokens=(), min_freq=0, reserved_tokens=()):
        tokens = list(tokens)
        if tokens and isinstance(tokens[0], list):  # flatten a 2D list if needed
            tokens = [t for line in tokens for t in line]
        counter = {}
        for t in tokens:
            counter[t] = counter.get(t, 0) + 1  # countmap(tokens)
        self.token_freqs = sorted(counter.items(), key=lambda x: x[1], reverse=True)
        self.idx_to_token = sorted(["<unk>", *reserved_tokens]
                                   + [str(t) for t, freq in self.token_freqs if freq >= min_freq])
        self.token_to_idx = {token: idx for idx, token in enumerate(self.idx_to_token)}

    def __len__(self):
        return len(self.idx_to_token)

    def unk(self):
        return self.token_to_idx["<unk>"]

    def __getitem__(self, tokens):
        if not isinstance(tokens, list):
            return self.token_to_idx[str(tokens)] if tokens in self.token_to_idx else self.unk()
        return [self[str(t)] for t in tokens]


def to_tokens(v, indices):
    return v.idx_to_token[indices] if isinstance(indices, int) \
        else [to_tokens(v, i) for i in indices]


def test_8_2_raw_text_to_sequences_with_the_texts_vocab(tm):
    data = TimeMachine(None, None, None)
    raw_text = data._download()
    assert raw_text[:39] == "The Time Machine, by H. G. Wells [1898]"
    text_ = TimeMachine._preprocess(raw_text)
    assert text_.startswith("the time machine by h g wells i ")
    tokens = TimeMachine._tokenize(text_[:30])
    assert " ,".join(tokens) == "t ,h ,e ,  ,t ,i ,m ,e ,  ,m ,a ,c ,h ,i ,n ,e ,  ,b ,y ,  ,h ," \
                                "  ,g ,  ,w ,e ,l ,l ,s , "
    vocab = Vocab(tokens=tokens)
    indices = vocab[tokens[:10]]
    # the text prints indices:[14, 8, 6, 1, 14, 9, 11, 6, 1, 11], counted from 1
    assert indices == [13, 7, 5, 0, 13, 8, 10, 5, 0, 10]
    assert to_tokens(vocab, indices) == ["t", "h", "e", " ", "t", "i", "m", "e", " ", "m"]
    package = d2lai.Vocab(tokens=tokens)  # the package's Vocab: the same indices
    assert package[tokens[:10]] == indices and d2lai.to_tokens(package, indices) == \
        to_tokens(vocab, indices)

    corpus, vocab = TimeMachine.build(raw_text)
    assert len(corpus) == len(text_) and len(vocab) <= 28  # the text: (173428, 28)
    p_corpus, p_vocab = d2lai.build(d2lai.TimeMachine, raw_text)
    assert p_corpus == corpus and p_vocab.idx_to_token == vocab.idx_to_token

    words = text_.split()
    for n in (1, 2, 3):  # unigrams, bigrams and trigrams, as the text counts them
        grams = ["--".join(g) for g in zip(*(words[i:len(words) - n + 1 + i]
                                             for i in range(n)), strict=True)]
        theirs, ours = Vocab(tokens=grams), d2lai.Vocab(tokens=grams)
        assert [f for _, f in theirs.token_freqs] == [f for _, f in ours.token_freqs]
        assert dict(theirs.token_freqs) == dict(ours.token_freqs)
    assert Vocab(tokens=words).token_freqs[0][1] == words.count(
        Vocab(tokens=words).token_freqs[0][0])


# --- 8.4 recurrent neural networks: concatenated weights (no d2lai) ---------------------------

def test_8_4_hidden_state_product_equals_the_concatenated_one():
    X, Wxh = torch.rand(3, 1), torch.rand(1, 4)  # rand(1, 3), rand(4, 1), batch first
    H, Whh = torch.rand(3, 4), torch.rand(4, 4)
    torch.testing.assert_close(X @ Wxh + H @ Whh, torch.cat((X, H), 1) @ torch.cat((Wxh, Whh), 0))


# --- 9.4 bidirectional RNNs: two of the package's RNNScratch in a namespace ------------------

class BiRNNScratch(AbstractModel):
    trainable = ("net",)  # Flux.@layer BiRNNScratch trainable=(net,)

    def __init__(self, num_inputs, num_hiddens, sigma=0.01):
        super().__init__()
        frnn = d2lai.RNNScratch(num_inputs, num_hiddens, sigma=sigma)
        brnn = d2lai.RNNScratch(num_inputs, num_hiddens, sigma=sigma)
        self.net = construct_nt_args(frnn=frnn, brnn=brnn)
        self.args = construct_nt_args(num_hiddens=num_hiddens * 2, num_inputs=num_inputs,
                                      sigma=sigma)

    def forward(self, x, state=None):
        f_state, b_state = (None, None) if state is None else state
        out_f, f_state = self.net.frnn(x, f_state)
        out_b, b_state = self.net.brnn(x.flip(1), b_state)  # reverse(x, dims = 2): time
        out = torch.cat((out_f, out_b.flip(1)), -1)  # cat(..., dims = 1): features
        return out, (f_state, b_state)


def test_9_4_bidirectional_rnn_from_scratch():
    num_inputs, num_hiddens, batch_size, num_steps = 5, 8, 3, 7
    birnn = BiRNNScratch(num_inputs, num_hiddens, sigma=0.1)
    assert len(list(birnn.parameters())) == 2 * 3  # both cells' weights reach torch
    X = torch.randn(batch_size, num_steps, num_inputs)
    out, (f_state, b_state) = birnn(X)
    assert out.shape == (batch_size, num_steps, 2 * num_hiddens)
    assert f_state.shape == b_state.shape == (batch_size, num_hiddens)
    # the second half at step t is the backward cell's output after reading steps T..t
    back, _ = birnn.net.brnn(X[:, 2:].flip(1))
    torch.testing.assert_close(out[:, 2, num_hiddens:], back[:, -1])
    torch.testing.assert_close(out[:, -1, :num_hiddens], f_state)
    torch.testing.assert_close(out[:, 0, num_hiddens:], b_state)
    # the args' num_hiddens (twice the cell's) is what a language model reads its sizes from
    model = d2lai.RNNLMScratch(BiRNNScratch(num_inputs, num_hiddens), num_inputs)
    assert model(F.one_hot(torch.randint(0, 5, (2, 4)), 5).float()).shape == (2, 4, 5)
    # the concise form, GRU(num_inputs => num_hiddens, bidirectional = true): Flux's GRU has no
    # such keyword; torch's has
    gru = nn.GRU(num_inputs, num_hiddens, bidirectional=True, batch_first=True)
    assert gru(X)[0].shape == (batch_size, num_steps, 2 * num_hiddens)


# --- 9.5 machine translation data: the text's own MTFraEng beside the package's --------------

class MTFraEng(AbstractData):  # the text's own struct and reader
    def __init__(self, src_vocab, tgt_vocab, arrays, args):
        self.src_vocab, self.tgt_vocab, self.arrays, self.args = src_vocab, tgt_vocab, arrays, args

    def get_dataloader(self, train=True):
        a = self.args
        idxs = slice(0, a.num_train) if train else slice(a.num_train, a.num_train + a.num_val)
        src_arr, decoder_arr = self.arrays[0][idxs], self.arrays[1][idxs]
        labels, src_valid_len = self.arrays[3][idxs], self.arrays[2][idxs]
        return flux_dataloader((src_arr, decoder_arr, src_valid_len, labels), a.batchsize, train)


def _extract(zip_path):
    zipfile.ZipFile(zip_path).extractall(Path(zip_path).parent)  # p7zip x ... -o$(dirname)
    return Path(zip_path).parent


def _download_mt():  # _download(::Type{MTFraEng})
    folder = _extract(d2lai._download("fra-eng.zip"))
    with open(folder / "fra-eng" / "fra.txt", encoding="utf-8") as f:
        return f.read()


def _no_space(char, prev_char):
    return char in (",", ".", "!", "?") and prev_char != " "


def _preprocess_mt(text):
    text = text.replace("\u202f", " ")  # non-breaking space as space
    out = []
    for i, char in enumerate(text.lower()):
        if i > 0 and _no_space(char, text[i - 1]):
            out.append(" ")
        out.append(char)
    return "".join(out)


def _tokenize_mt(text, max_examples=None):
    split_text = text.split("\n")
    max_examples = len(split_text) if max_examples is None else max_examples
    vec = []
    for line in split_text[:max_examples]:
        parts = line.split("\t")
        if len(parts) == 2:
            vec.append(((parts[0] + " <eos>").split(" "), (parts[1] + " <eos>").split(" ")))
    return [v[0] for v in vec], [v[1] for v in vec]


def _build_array(sentences, vocab, num_steps, is_tgt=False):
    def pad_or_trim(seq, t):
        return seq[:t] if len(seq) > t else seq + ["<pad>"] * (t - len(seq))

    sentences = [pad_or_trim(s, num_steps) for s in sentences]
    if is_tgt:
        sentences = [["<bos>", *s] for s in sentences]
    if vocab is None:
        vocab = d2lai.Vocab(tokens=sentences, min_freq=2)
    array = [vocab[s] for s in sentences]
    valid_len = torch.tensor([sum(i != vocab["<pad>"] for i in a) for a in array])
    return torch.tensor(array), vocab, valid_len  # reduce(hcat, array): (N, T)


def _build_arrays(raw_text, num_steps, src_vocab=None, tgt_vocab=None):
    src, tgt = _tokenize_mt(_preprocess_mt(raw_text))
    src_array, src_vocab, src_valid_len = _build_array(src, src_vocab, num_steps)
    tgt_array, tgt_vocab, _ = _build_array(tgt, tgt_vocab, num_steps, is_tgt=True)
    return ((src_array, tgt_array[:, :-1], src_valid_len, tgt_array[:, 1:]),
            src_vocab, tgt_vocab)


def mt_fra_eng(batchsize, num_steps=9, num_train=512, num_val=128):  # MTFraEng(batchsize, ...)
    raw_text = _download_mt()
    arrays, src_vocab, tgt_vocab = _build_arrays(raw_text, num_steps)
    args = construct_nt_args(batchsize=batchsize, num_steps=num_steps, num_train=num_train,
                             num_val=num_val)
    return MTFraEng(src_vocab, tgt_vocab, arrays, args)


def build_mt(data, src_sentences, tgt_sentences):  # build(data::MTFraEng, src, tgt)
    raw_text = "\n".join(s + "\t" + t for s, t in zip(src_sentences, tgt_sentences,
                                                         strict=True))
    arrays, *_ = _build_arrays(raw_text, data.args.num_steps, data.src_vocab, data.tgt_vocab)
    return arrays


def test_9_5_the_texts_reader_and_the_packages_mtfraeng_agree(fra):
    raw_text = _download_mt()
    assert raw_text[:24] == "Go.\tVa\u202f!\nHi.\tSalut\u202f!\nRun"
    text = _preprocess_mt(raw_text)
    assert text[:37] == "go .\tva !\nhi .\tsalut !\nrun !\tcours !\n"
    src, tgt = _tokenize_mt(text)
    assert src[:2] == [["go", ".", "<eos>"], ["hi", ".", "<eos>"]]
    assert tgt[:4] == [["va", "!", "<eos>"], ["salut", "!", "<eos>"], ["cours", "!", "<eos>"],
                       ["ça", "alors", "!", "<eos>"]]
    fig = d2lai.show_list_len_pair_hist(["source", "target"], "# tokens per sequence", "count",
                                        src, tgt)
    assert fig.axes[0].get_xlabel() == "# tokens per sequence"

    data = mt_fra_eng(3)
    batch = next(iter(d2lai.get_dataloader(data)))
    assert [tuple(a.shape) for a in batch] == [(3, 9), (3, 9), (3,), (3, 9)]
    src_b, tgt_b, src_valid_len, label = batch
    assert (tgt_b[:, 0] == data.tgt_vocab["<bos>"]).all() and torch.equal(tgt_b[:, 1:],
                                                                          label[:, :-1])
    assert torch.equal(src_valid_len, (src_b != data.src_vocab["<pad>"]).sum(1))

    # the package's MTFraEng reads the file as the text does: the whole file, the same
    # vocabularies and arrays
    package = d2lai.MTFraEng(3)
    assert package.src_vocab.idx_to_token == data.src_vocab.idx_to_token
    assert package.tgt_vocab.idx_to_token == data.tgt_vocab.idx_to_token
    for ours, theirs in zip(package.arrays, data.arrays, strict=True):
        assert torch.equal(ours, theirs)
    assert len(package.train[0]) == 512 and len(package.val[0]) == 128

    src_a, tgt_a, _, _ = build_mt(data, ["hi ."], ["salut ."])
    # the text prints source: hi . <eos> <pad>..., target: <bos> salut . <eos> <pad>...; the
    # stand-in holds "hi" and "salut" once, under min_freq = 2: unknown
    assert d2lai.to_tokens(data.src_vocab, src_a.flatten()) == \
        ["<unk>", ".", "<eos>"] + ["<pad>"] * 6
    assert d2lai.to_tokens(data.tgt_vocab, tgt_a.flatten()) == \
        ["<bos>", "<unk>", ".", "<eos>"] + ["<pad>"] * 5
    src_a, tgt_a, _, _ = build_mt(data, ["i see the cat ."], ["je vois le chat ."])
    assert d2lai.to_tokens(data.src_vocab, src_a.flatten()) == \
        ["i", "see", "the", "cat", ".", "<eos>"] + ["<pad>"] * 3
    assert d2lai.to_tokens(data.tgt_vocab, tgt_a.flatten()) == \
        ["<bos>", "je", "vois", "le", "chat", ".", "<eos>", "<pad>", "<pad>"]
    for ours, theirs in zip(d2lai.build(package, ["hi ."], ["salut ."]),
                            build_mt(data, ["hi ."], ["salut ."]), strict=True):
        assert torch.equal(ours, theirs)


# --- 9.6 the encoder-decoder architecture: the text's abstract types --------------------------

class AbstractEncoder(AbstractModel):
    pass


class AbstractDecoder(AbstractModel):
    def init_state(self, *args):  # function init_state(decoder::AbstractDecoder, args...) end
        return None


class AbstractEncoderDecoder(AbstractClassifier):
    def forward(self, enc_X, dec_X, *args):
        enc_all_outputs = self.encoder(enc_X, *args)
        dec_state = d2lai.init_state(self.decoder, enc_all_outputs, *args)
        return self.decoder(dec_X, dec_state)[0]


class _Encoder(AbstractEncoder):  # the smallest of each, to run the text's call
    def __init__(self):
        super().__init__()
        self.embedding = nn.Embedding(10, 4)

    def forward(self, X, *args):
        return self.embedding(X)


class _Decoder(AbstractDecoder):
    def __init__(self):
        super().__init__()
        self.embedding, self.dense = nn.Embedding(10, 4), nn.Linear(4, 10)

    def init_state(self, enc_all_outputs, *args):
        return enc_all_outputs.mean(1, keepdim=True)  # (N, 1, 4)

    def forward(self, X, state):
        return self.dense(self.embedding(X) + state), state


class _EncoderDecoder(AbstractEncoderDecoder):
    def __init__(self, encoder, decoder):
        super().__init__()
        self.encoder, self.decoder = encoder, decoder


def test_9_6_the_texts_encoder_decoder_call_is_the_packages():
    assert AbstractDecoder().init_state(1, 2) is None
    encoder, decoder = _Encoder(), _Decoder()
    enc_X, dec_X = torch.randint(0, 10, (2, 5)), torch.randint(0, 10, (2, 3))
    theirs = _EncoderDecoder(encoder, decoder)(enc_X, dec_X)
    assert theirs.shape == (2, 3, 10)
    ours = d2lai.AbstractEncoderDecoder(encoder, decoder)(enc_X, dec_X)
    torch.testing.assert_close(ours, theirs)


# --- 9.7 sequence to sequence learning: the text's encoder, decoder, loss and prediction ------

class Seq2SeqEncoder(AbstractModel):
    def __init__(self, vocab_size, embed_size, num_hiddens, num_layers, dropout=0):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed_size)
        self.rnn = d2lai.StackedRNN(embed_size, num_hiddens, num_layers)
        self.args = construct_nt_args(vocab_size=vocab_size, embed_size=embed_size,
                                      num_hiddens=num_hiddens, num_layers=num_layers)

    def forward(self, x, args):
        embs = self.embedding(x)
        out, state = self.rnn(embs)
        return out, state


class Seq2SeqDecoder(AbstractModel):
    def __init__(self, vocab_size, embed_size, num_hiddens, num_layers, dropout=0,
                 rnn=nn.LSTM):  # the text: StackedRNN(...; rnn = Flux.LSTM)
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed_size)
        self.rnn = d2lai.StackedRNN(embed_size + num_hiddens, num_hiddens, num_layers, rnn=rnn)
        self.dense = nn.Linear(num_hiddens, vocab_size)  # Dense(num_hiddens, vocab_size)
        self.args = construct_nt_args(vocab_size=vocab_size, embed_size=embed_size,
                                      num_hiddens=num_hiddens, num_layers=num_layers)

    def init_state(self, enc_all_out, args):  # d2lai.init_state(::Seq2SeqDecoder, ...)
        return enc_all_out

    def forward(self, x, state):
        embs = self.embedding(x)  # (N, T, embed)
        enc_output, hidden_state = state
        context = enc_output[:, -1, :]  # enc_output[:, end, :]: (N, h)
        context_copied = [context.clone() for _ in range(embs.shape[1])]
        context_reshaped = torch.stack(context_copied, 1)  # (N, T, h)
        embs_and_context = torch.cat((embs, context_reshaped), -1)  # vcat: features
        rnn_out, new_hidden_state = self.rnn(embs_and_context, hidden_state)
        outputs = self.dense(rnn_out)
        return outputs, (enc_output, new_hidden_state)


class Seq2Seq(d2lai.AbstractEncoderDecoder):  # the text's own struct, on the package's type
    def __init__(self, encoder, decoder, tgt_pad):
        super().__init__(encoder, decoder)
        self.tgt_pad = tgt_pad
        self.args = construct_nt_args()

    def training_step(self, batch):
        y_pred = d2lai.forward(self, *batch[:-1])
        return d2lai.loss(self, y_pred, batch[-1])

    def validation_step(self, batch):
        y_pred = d2lai.forward(self, *batch[:-1])
        return d2lai.loss(self, y_pred, batch[-1]), None

    def loss(self, y_pred, y):
        target_oh = F.one_hot(y, self.decoder.args.vocab_size)
        loss = -(target_oh * F.log_softmax(y_pred, -1)).sum(-1)  # logitcrossentropy, agg=identity
        mask = y.reshape(-1, 9) != self.tgt_pad  # reshape(y, 1, 9, :) .!= model.tgt_pad
        mask = mask.to(loss.dtype)
        masked_loss = mask * loss
        return masked_loss.sum() / (mask.sum() + torch.finfo(masked_loss.dtype).eps)


def predict_step(model, batch, device, num_steps):  # the text's own
    src, tgt, src_valid_len, _ = (t.to(device) for t in batch)
    enc_all_outputs = model.encoder(src, src_valid_len)
    dec_state = d2lai.init_state(model.decoder, enc_all_outputs, src_valid_len)
    outputs = [tgt[:, :1]]  # tgt[1:1, 1:end]
    for _ in range(num_steps):
        Y_t = outputs[-1]
        Y_t_plus_1, dec_state = model.decoder(Y_t, dec_state)
        outputs.append(Y_t_plus_1.argmax(-1))  # argmax(..., dims = 1): (N, 1)
    out = torch.cat(outputs, 1)
    return out[:, 1:]


def bleu(pred_seq, label_seq, k):  # the text's own
    pred_tokens, label_tokens = pred_seq.split(), label_seq.split()
    len_pred, len_label = len(pred_tokens), len(label_tokens)
    score = math.exp(min(0.0, 1 - len_label / len_pred))
    for n in range(1, min(k, len_pred) + 1):
        num_matches, label_subs = 0, {}
        for i in range(len_label - n + 1):
            ngram = " ".join(label_tokens[i:i + n])
            label_subs[ngram] = label_subs.get(ngram, 0) + 1
        for i in range(len_pred - n + 1):
            pred_ngram = " ".join(pred_tokens[i:i + n])
            if label_subs.get(pred_ngram, 0) > 0:
                num_matches += 1
                label_subs[pred_ngram] -= 1
        score *= (num_matches / (len_pred - n + 1)) ** (0.5 ** n)
    return score


def translate(m, data, engs, fras):
    """The text's loop: predict, cut each at its '<eos>', score with its bleu."""
    batch = d2lai.build(data, engs, fras)
    with torch.no_grad():
        preds = predict_step(m, batch, "cpu", data.args.num_steps)
    scores = []
    for _en, fr, p in zip(engs, fras, preds, strict=True):
        translation = []
        for token in d2lai.to_tokens(data.tgt_vocab, p):
            if token == "<eos>":
                break
            translation.append(token)
        scores.append(bleu(" ".join(translation), fr, 2))
        assert scores[-1] == pytest.approx(d2lai.bleu(" ".join(translation), fr, 2))
    return preds, scores


def test_9_7_the_texts_encoder_and_decoder_shapes():
    vocab_size, embed_size, num_hiddens, num_layers = 10, 8, 16, 2
    batch_size, num_steps = 4, 9
    encoder = Seq2SeqEncoder(vocab_size, embed_size, num_hiddens, num_layers)
    X = torch.ones(batch_size, num_steps, dtype=torch.long)  # ones(Int64, num_steps, batch)
    enc_outputs, enc_state = encoder(X, None)
    assert enc_outputs.shape == (batch_size, num_steps, num_hiddens)
    assert [tuple(s.shape) for s in enc_state] == [(batch_size, num_hiddens)] * num_layers

    # as typed, rnn = Flux.LSTM: the Julia package builds GRUs whatever rnn says; d2lai builds
    # the LSTM asked for, which cannot start from the GRU encoder's state, and says so
    decoder = Seq2SeqDecoder(vocab_size, embed_size, num_hiddens, num_layers)
    state = d2lai.init_state(decoder, encoder(X, None), None)
    with pytest.raises(ValueError, match=r"builds GRUs whatever rnn= says.*rnn=nn.GRU"):
        decoder(X, state)
    for rnn in (nn.GRU, d2lai.GRUScratch):  # what the package builds; the scratch GRU
        decoder = Seq2SeqDecoder(vocab_size, embed_size, num_hiddens, num_layers, rnn=rnn)
        state = d2lai.init_state(decoder, encoder(X, None), None)
        decoder_out, state = decoder(X, state)
        assert decoder_out.shape == (batch_size, num_steps, vocab_size)
        assert state[0].shape == (batch_size, num_steps, num_hiddens)


def test_9_7_seq2seq_trains_and_translates_the_stand_in(fra):
    data = d2lai.MTFraEng(128)
    # the text: 256, 256; its dropout is passed to no layer
    embed_size, num_hiddens, num_layers, _dropout = 64, 64, 2, 0.2

    encoder = Seq2SeqEncoder(len(data.src_vocab), embed_size, num_hiddens, num_layers)
    decoder = Seq2SeqDecoder(len(data.tgt_vocab), embed_size, num_hiddens, 1, rnn=nn.GRU)
    model = Seq2Seq(encoder, decoder, data.tgt_vocab["<pad>"])

    # the text's masked loss is the package's: the padding left out of the mean
    src, tgt, src_valid_len, label = next(iter(d2lai.val_dataloader(data)))
    y_pred = d2lai.forward(model, src, tgt, src_valid_len)
    keep = label != data.tgt_vocab["<pad>"]
    torch.testing.assert_close(model.loss(y_pred, label), F.cross_entropy(y_pred[keep],
                                                                          label[keep]))

    opt = d2lai.Adam(0.01)  # Flux.Adam(0.01)
    trainer = Trainer(model, data, opt, max_epochs=12, gradient_clip_val=1.0, verbose=False,
                      board=False)
    m, metrics = d2lai.fit(trainer)
    losses = metrics.history["train_loss"]
    assert losses[-1] < 0.5 * losses[0] and metrics.val_loss < 1.5

    engs = ["go .", "i lost .", "he's calm .", "i'm home ."]  # the text's four
    fras = ["va !", "j'ai perdu .", "il est calme .", "je suis chez moi ."]
    preds, scores = translate(m, data, engs, fras)
    assert preds.shape == (4, data.args.num_steps) and all(0 <= s <= 1 for s in scores)
    # held-out pairs of the stand-in's grammar: translated
    engs = ["i see the cat .", "we eat the bread ."]
    fras = ["je vois le chat .", "nous mangeons le pain ."]
    _, scores = translate(m, data, engs, fras)
    assert sum(scores) / len(scores) > 0.5, scores


# --- 10.6 self-attention and positional encoding --------------------------------------------

class PositionalEncoding(AbstractModel):  # the text's own
    def __init__(self, num_hiddens, dropout, max_len=1000):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        P = torch.zeros(1, max_len, num_hiddens)
        X = torch.arange(1, max_len + 1, dtype=torch.float32).reshape(-1, 1) \
            / 10000 ** (torch.arange(0, num_hiddens, 2) / num_hiddens)  # collect(1:max_len)
        P[:, :, 0::2] = torch.sin(X)  # P[1:2:end, :, :]
        P[:, :, 1::2] = torch.cos(X)  # P[2:2:end, :, :]
        self.P = P
        self.args = construct_nt_args(num_hiddens=num_hiddens, dropout=dropout, max_len=max_len)

    def forward(self, x):
        return self.dropout(x + self.P[:, :x.shape[1], :].to(x.device))


def test_10_6_self_attention_as_typed():
    num_hiddens, num_heads = 100, 5
    attention = d2lai.MultiHeadedAttention(num_hiddens, num_heads, 0.5)
    batch_size, num_queries, valid_lens = 2, 4, [3, 2]
    X = torch.ones(batch_size, num_queries, num_hiddens)  # ones(num_hiddens, queries, batch)
    attention.eval()  # Flux drops out only while differentiating; a torch module until eval()
    out, attention_weights = attention(X, X, X, valid_lens)
    assert out.shape == (batch_size, num_queries, num_hiddens)
    # every key is the same: each query spreads its weight evenly over the valid keys
    assert attention_weights.shape == (batch_size * num_heads, num_queries, num_queries)
    torch.testing.assert_close(attention_weights[:num_heads, :, :3],
                               torch.full((num_heads, num_queries, 3), 1 / 3))
    torch.testing.assert_close(attention_weights[num_heads:, :, :2],
                               torch.full((num_heads, num_queries, 2), 1 / 2))
    assert not attention_weights[:num_heads, :, 3:].any()


def test_10_6_the_texts_positional_encoding_by_hand():
    encoding_dim, num_steps = 32, 60
    pos_encoding = PositionalEncoding(encoding_dim, 0.3)
    X = pos_encoding(torch.zeros(1, num_steps, encoding_dim))
    P = pos_encoding.P[:, :X.shape[1], :]
    assert X.shape == P.shape == (1, num_steps, encoding_dim)
    # P[i, 2j] = sin(i / 10000^(2j/d)), P[i, 2j+1] = cos(...), positions i counted from 1
    for i, j in ((0, 0), (5, 3), (59, 15), (17, 8)):
        angle = (i + 1) / 10000 ** (2 * j / encoding_dim)
        assert float(P[0, i, 2 * j]) == pytest.approx(math.sin(angle), abs=1e-6)
        assert float(P[0, i, 2 * j + 1]) == pytest.approx(math.cos(angle), abs=1e-6)
    curves = P[0, :, 5:10]  # P[6:10, :, 1]': columns 6 to 10 along the positions
    assert curves.shape == (num_steps, 5)
    # the package's encoding counts positions from 0, as the PyTorch edition: one step behind
    ours = d2lai.PositionalEncoding(encoding_dim, 0.3).P
    torch.testing.assert_close(P[0, :-1], ours[0, 1:num_steps])

    P_ = P[0].unsqueeze(0).unsqueeze(0)  # Flux.unsqueeze(Flux.unsqueeze(P[:, :, 1], 3), 3)
    fig = d2lai.show_heatmaps(P_, "Column (encoding dimension)", "Row (position)")
    ax = fig.axes[0]
    # drawn as the text's Plots draws its (encoding, position) matrix: the encoding down, the
    # positions across, under the text's labels (which name the axes the other way round)
    assert ax.images[0].get_array().shape == (encoding_dim, num_steps)
    assert ax.get_xlabel() == "Column (encoding dimension)"
