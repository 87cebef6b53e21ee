"""The edition's natural language processing: word2vec's PTB data, pretrained embeddings, BERT
and its WikiText-2 data, IMDb sentiment, SNLI inference, and the older sequence-to-sequence
helpers (`load_data_nmt`, `train_seq2seq`, ...) that the book's library still exports.

Every data set comes through d2lai's one `download` (the book's SHA-1s in `DATA_HUB`; offline,
the error names the URL, the file and the folder); vocabularies are d2lai's `Vocab`; BERT is
built from d2lai's transformer blocks. Data sets are held in memory as tensors and served in
batches by d2lai's `TensorLoader`, in the shapes the book's loaders give.
"""

from __future__ import annotations

import collections
import math
import os
import random
import re
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .. import data as _data
from ..checks import number, positive_int
from ..data.text import Vocab, _read_text
from ..models.attention import sequence_mask
from ..models.rnn import clip_gradients
from ..models.seq2seq import _tokens, init_seq2seq
from ..models.transformer import TransformerEncoderBlock
from .plotting import Animator
from .utils import Accumulator, Timer

__all__ = [
    # text helpers
    "tokenize", "truncate_pad",
    # word2vec on PTB
    "read_ptb", "subsample", "get_centers_and_contexts", "RandomGenerator", "get_negatives",
    "batchify", "load_data_ptb",
    # pretrained embeddings
    "TokenEmbedding",
    # BERT and WikiText-2
    "get_tokens_and_segments", "BERTEncoder", "MaskLM", "NextSentencePred", "BERTModel",
    "load_data_wiki",
    # sentiment analysis
    "read_imdb", "load_data_imdb", "predict_sentiment",
    # natural language inference
    "read_snli", "SNLIDataset", "load_data_snli", "predict_snli",
    # the older sequence-to-sequence helpers
    "read_data_nmt", "preprocess_nmt", "tokenize_nmt", "build_array_nmt", "load_data_nmt",
    "MaskedSoftmaxCELoss", "train_seq2seq", "predict_seq2seq",
]


def _folder(name: str, folder: str | None = None) -> Path:
    """The unpacked folder of a `DATA_HUB` archive in d2lai's data folder."""
    return _data.download_extract(name, folder)


def _need(path: Path, name: str) -> Path:
    """`path` if it is a file; else an error saying the unpacked data set is incomplete."""
    if not path.is_file():
        raise FileNotFoundError(f"{path.parent} holds no {path.name}: is it the book's {name} "
                                f"data set? Delete {path.parent} (and the archive beside it) and "
                                f"download it again")
    return path


# --- text helpers --------------------------------------------------------------------------------

def tokenize(lines, token: str = "word") -> list[list[str]]:
    """Each line as a list of word tokens (split at whitespace) or of characters."""
    if token not in ("word", "char"):
        raise ValueError(f"tokenize: token must be 'word' or 'char', got {token!r}")
    if isinstance(lines, str):
        raise TypeError("tokenize takes a list of lines, not one str: wrap it, [text]")
    return [line.split() if token == "word" else list(line) for line in lines]


def truncate_pad(line, num_steps: int, padding_token) -> list:
    """`line` cut to its first `num_steps` items, or padded to them with `padding_token`."""
    num_steps = positive_int("truncate_pad: num_steps", num_steps)
    line = list(line)
    return line[:num_steps] + [padding_token] * (num_steps - len(line))


# --- word2vec on the Penn Tree Bank --------------------------------------------------------------

def read_ptb() -> list[list[str]]:
    """The PTB training set (`ptb/ptb.train.txt`) as a list of sentences of word tokens."""
    path = _need(_folder("ptb") / "ptb.train.txt", "PTB")
    return [line.split() for line in _read_text(path).split("\n")]


def subsample(sentences, vocab: Vocab):
    """(sentences with '<unk>' dropped and each word w kept with probability
    sqrt(1e-4 / f(w)), f its frequency; the counts of the words before subsampling).

    Draws from Python's `random`, as the book's does, so `random.seed` repeats it."""
    sentences = [[token for token in line if vocab[token] != vocab.unk] for line in sentences]
    counter = collections.Counter(token for line in sentences for token in line)
    num_tokens = sum(counter.values())

    def keep(token):
        return random.uniform(0, 1) < math.sqrt(1e-4 / counter[token] * num_tokens)

    return [[token for token in line if keep(token)] for line in sentences], counter


def get_centers_and_contexts(corpus, max_window_size: int):
    """(centers, contexts) for skip-gram: every word of every sentence of two or more words is
    a center; its context is the words at most w away, w drawn from 1..max_window_size."""
    max_window_size = positive_int("max_window_size", max_window_size)
    centers, contexts = [], []
    for line in corpus:
        if len(line) < 2:  # a center needs at least one context word
            continue
        centers += line
        for i in range(len(line)):
            w = random.randint(1, max_window_size)
            contexts.append(line[max(0, i - w):i] + line[i + 1:i + 1 + w])
    return centers, contexts


class RandomGenerator:
    """Draws from {1, ..., n} with the n given `sampling_weights`, 10000 draws cached at a
    time (Python's `random.choices`)."""

    def __init__(self, sampling_weights):
        self.sampling_weights = list(sampling_weights)
        if not self.sampling_weights or min(self.sampling_weights) < 0 \
                or sum(self.sampling_weights) <= 0:
            raise ValueError("RandomGenerator needs a non-empty list of non-negative sampling "
                             "weights, not all zero")
        self.population = list(range(1, len(self.sampling_weights) + 1))
        self.candidates: list[int] = []
        self.i = 0

    def draw(self) -> int:
        if self.i == len(self.candidates):
            self.candidates = random.choices(self.population, self.sampling_weights, k=10000)
            self.i = 0
        self.i += 1
        return self.candidates[self.i - 1]


def get_negatives(all_contexts, vocab: Vocab, counter, K: int) -> list[list[int]]:
    """K noise words for each context word, drawn with probability proportional to count^0.75
    from the vocabulary's indices 1.. (0 is '<unk>'), never one of the context's words."""
    K = positive_int("K", K)
    weights = [counter[vocab.to_tokens(i)] ** 0.75 for i in range(1, len(vocab))]
    generator, all_negatives = RandomGenerator(weights), []
    for contexts in all_contexts:
        negatives = []
        while len(negatives) < len(contexts) * K:
            neg = generator.draw()
            if neg not in contexts:
                negatives.append(neg)
        all_negatives.append(negatives)
    return all_negatives


def batchify(data):
    """A skip-gram minibatch from (center, contexts, negatives) examples: centers (N, 1),
    contexts then negatives padded with 0 (N, L), masks (1 but on padding) and labels (1 on
    contexts), L the longest example."""
    if not data:
        raise ValueError("batchify needs at least one (center, contexts, negatives) example")
    max_len = max(len(c) + len(n) for _, c, n in data)
    centers, contexts_negatives, masks, labels = [], [], [], []
    for center, context, negative in data:
        cur_len = len(context) + len(negative)
        centers.append(center)
        contexts_negatives.append(list(context) + list(negative) + [0] * (max_len - cur_len))
        masks.append([1] * cur_len + [0] * (max_len - cur_len))
        labels.append([1] * len(context) + [0] * (max_len - len(context)))
    return (torch.tensor(centers).reshape(-1, 1), torch.tensor(contexts_negatives),
            torch.tensor(masks), torch.tensor(labels))


class _SkipGramBatches:
    """Shuffled skip-gram batches sliced from the whole data set batchified once: each batch
    cut to its own longest example, as `batchify` would make it."""

    def __init__(self, arrays, batch_size: int):
        self._loader = _data.TensorLoader(arrays, batch_size, shuffle=True, merge_single=False)

    def __len__(self) -> int:
        return len(self._loader)

    def __iter__(self):
        for center, context_negative, mask, label in self._loader:
            L = int(mask.sum(1).max())
            yield center, context_negative[:, :L], mask[:, :L], label[:, :L]


def load_data_ptb(batch_size: int, max_window_size: int, num_noise_words: int):
    """(batches, vocab) for skip-gram with negative sampling on PTB: words seen 10 times or
    more, subsampled; each batch (centers, contexts_negatives, masks, labels) as `batchify`
    gives them."""
    batch_size = positive_int("batch_size", batch_size)
    sentences = read_ptb()
    vocab = Vocab(sentences, min_freq=10)
    subsampled, counter = subsample(sentences, vocab)
    corpus = [vocab[line] for line in subsampled]
    all_centers, all_contexts = get_centers_and_contexts(corpus, max_window_size)
    all_negatives = get_negatives(all_contexts, vocab, counter, num_noise_words)
    if not all_centers:
        raise ValueError("PTB gave no skip-gram examples (no sentence kept two words): is "
                         "ptb.train.txt the book's file?")
    arrays = batchify(list(zip(all_centers, all_contexts, all_negatives, strict=True)))
    return _SkipGramBatches(arrays, batch_size), vocab


# --- pretrained word vectors ---------------------------------------------------------------------

class TokenEmbedding:
    """Pretrained word vectors (GloVe, fastText) from `vec.txt` in the unpacked `DATA_HUB`
    archive `embedding_name` ('glove.6b.50d', 'wiki.en', ...): `idx_to_token` in the file's
    order after '<unk>' (index 0, a zero vector), `idx_to_vec` (len, dim); `emb[tokens]` gives
    the vectors of a list of tokens, unknown ones zero."""

    def __init__(self, embedding_name: str):
        self.idx_to_token, self.idx_to_vec = self._load_embedding(embedding_name)
        self.unknown_idx = 0
        self.token_to_idx = {token: idx for idx, token in enumerate(self.idx_to_token)}

    def _load_embedding(self, embedding_name: str):
        path = _need(_folder(embedding_name) / "vec.txt", embedding_name)
        idx_to_token, rows, dim = ["<unk>"], [], None
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                token, _, numbers = line.rstrip().partition(" ")
                size = numbers.count(" ") + 1
                if size <= 1:  # fastText's first line: the number of words, the size
                    continue
                if dim is not None and size != dim:
                    raise ValueError(f"{path}, line {n}: {size} numbers after {token!r}, but "
                                     f"the vectors above have {dim}")
                dim = size
                idx_to_token.append(token)
                rows.append(numbers)
        if not rows:
            raise ValueError(f"{path} holds no word vectors (lines 'word x1 x2 ...')")
        try:
            vecs = np.fromstring(" ".join(rows), dtype=np.float32, sep=" ")  # parsed in C
        except ValueError:
            vecs = np.zeros(0)
        if vecs.size != len(rows) * dim:
            raise ValueError(f"{path} holds a word vector with something other than numbers "
                             f"after its word: is it the book's file?")
        vecs = vecs.reshape(len(rows), dim)
        return idx_to_token, torch.cat([torch.zeros(1, dim), torch.from_numpy(vecs)])

    def __getitem__(self, tokens):
        if isinstance(tokens, str):
            raise TypeError("index a TokenEmbedding with a list of tokens, e.g. emb[['the']]")
        indices = [self.token_to_idx.get(token, self.unknown_idx) for token in tokens]
        return self.idx_to_vec[torch.tensor(indices, dtype=torch.long)]

    def __len__(self) -> int:
        return len(self.idx_to_token)


# --- BERT ----------------------------------------------------------------------------------------

def get_tokens_and_segments(tokens_a, tokens_b=None):
    """(tokens, segments) of BERT's input: '<cls>' A '<sep>' [B '<sep>'], segment ids 0 for
    '<cls>', A and its '<sep>', 1 for B and its '<sep>'."""
    tokens = ["<cls>", *tokens_a, "<sep>"]
    segments = [0] * (len(tokens_a) + 2)
    if tokens_b is not None:
        tokens += [*tokens_b, "<sep>"]
        segments += [1] * (len(tokens_b) + 1)
    return tokens, segments


class BERTEncoder(nn.Module):
    """Token plus segment embeddings plus a learned positional embedding (up to `max_len`
    positions), then `num_blks` transformer encoder blocks (with biases): (N, T) tokens and
    segments in, (N, T, num_hiddens) out."""

    def __init__(self, vocab_size, num_hiddens, ffn_num_hiddens, num_heads, num_blks, dropout,
                 max_len=1000, **kwargs):
        super().__init__(**kwargs)
        self.vocab_size = positive_int("vocab_size", vocab_size)
        self.max_len = positive_int("max_len", max_len)
        self.token_embedding = nn.Embedding(vocab_size, positive_int("num_hiddens", num_hiddens))
        self.segment_embedding = nn.Embedding(2, num_hiddens)
        self.blks = nn.Sequential()
        for i in range(positive_int("num_blks", num_blks)):
            self.blks.add_module(f"{i}", TransformerEncoderBlock(
                num_hiddens, ffn_num_hiddens, num_heads, dropout, True))
        self.pos_embedding = nn.Parameter(torch.randn(1, max_len, num_hiddens))

    def forward(self, tokens, segments, valid_lens):
        tokens = _tokens(tokens, self.vocab_size, "BERT input")
        segments = _tokens(segments, 2, "segment")
        if tokens.shape != segments.shape or tokens.ndim != 2:
            raise ValueError(f"BERT takes tokens and segments of one shape (batch size, length),"
                             f" got {tuple(tokens.shape)} and {tuple(segments.shape)}")
        if tokens.shape[1] > self.max_len:
            raise ValueError(f"BERT input of {tokens.shape[1]} tokens, but the positional "
                             f"embedding holds max_len={self.max_len}: build it with a larger "
                             f"max_len or cut the input")
        X = self.token_embedding(tokens) + self.segment_embedding(segments)  # (N, T, h)
        X = X + self.pos_embedding[:, :X.shape[1], :]
        for blk in self.blks:
            X = blk(X, valid_lens)  # (N, T, h)
        return X


class MaskLM(nn.Module):
    """The masked language model: an MLP (hidden layer, ReLU, layer norm) scoring the
    vocabulary at the positions `pred_positions` (N, P) of the encoded X (N, T, h):
    (N, P, vocab_size) out."""

    def __init__(self, vocab_size, num_hiddens, **kwargs):
        super().__init__(**kwargs)
        self.mlp = nn.Sequential(nn.LazyLinear(num_hiddens), nn.ReLU(), nn.LayerNorm(num_hiddens),
                                 nn.LazyLinear(vocab_size))

    def forward(self, X, pred_positions):
        pred_positions = _tokens(pred_positions, X.shape[1], "prediction position")
        if pred_positions.ndim != 2 or len(pred_positions) != len(X):
            raise ValueError(f"pred_positions must be (batch size {len(X)}, positions), got "
                             f"{tuple(pred_positions.shape)}")
        N, P = pred_positions.shape
        batch_idx = torch.arange(N, device=X.device).repeat_interleave(P)  # (N * P,)
        masked_X = X[batch_idx, pred_positions.reshape(-1).to(X.device)].reshape(N, P, -1)
        return self.mlp(masked_X)  # (N, P, vocab_size)


class NextSentencePred(nn.Module):
    """Next sentence prediction: two logits (is next, is not) from the '<cls>' representation
    (N, h)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.output = nn.LazyLinear(2)

    def forward(self, X):
        return self.output(X)  # (N, 2)


class BERTModel(nn.Module):
    """BERT: the encoder, the masked language model (when `pred_positions` is given) and next
    sentence prediction on the '<cls>' token through a tanh layer. `forward` gives (encoded
    (N, T, h), MLM logits (N, P, vocab_size) or None, NSP logits (N, 2))."""

    def __init__(self, vocab_size, num_hiddens, ffn_num_hiddens, num_heads, num_blks, dropout,
                 max_len=1000):
        super().__init__()
        self.encoder = BERTEncoder(vocab_size, num_hiddens, ffn_num_hiddens, num_heads,
                                   num_blks, dropout, max_len=max_len)
        self.hidden = nn.Sequential(nn.LazyLinear(num_hiddens), nn.Tanh())
        self.mlm = MaskLM(vocab_size, num_hiddens)
        self.nsp = NextSentencePred()

    def forward(self, tokens, segments, valid_lens=None, pred_positions=None):
        encoded_X = self.encoder(tokens, segments, valid_lens)
        mlm_Y_hat = None if pred_positions is None else self.mlm(encoded_X, pred_positions)
        nsp_Y_hat = self.nsp(self.hidden(encoded_X[:, 0, :]))  # '<cls>' is position 0
        return encoded_X, mlm_Y_hat, nsp_Y_hat


def _read_wiki(data_dir) -> list[list[str]]:
    """WikiText-2's training paragraphs of two sentences or more, lower-cased, each a list of
    sentences (split at ' . '), in shuffled order."""
    text = _read_text(_need(Path(data_dir) / "wiki.train.tokens", "WikiText-2"))
    paragraphs = [line.strip().lower().split(" . ") for line in text.split("\n")
                  if len(line.split(" . ")) >= 2]
    random.shuffle(paragraphs)
    return paragraphs


def _get_next_sentence(sentence, next_sentence, paragraphs):
    """(sentence, the next one or, half the time, a random one, whether it is the next)."""
    if random.random() < 0.5:
        return sentence, next_sentence, True
    return sentence, random.choice(random.choice(paragraphs)), False


def _get_nsp_data_from_paragraph(paragraph, paragraphs, vocab, max_len):
    """(tokens, segments, is_next) of each pair of consecutive sentences that fits max_len."""
    examples = []
    for i in range(len(paragraph) - 1):
        tokens_a, tokens_b, is_next = _get_next_sentence(paragraph[i], paragraph[i + 1],
                                                         paragraphs)
        if len(tokens_a) + len(tokens_b) + 3 > max_len:  # '<cls>' and two '<sep>'
            continue
        tokens, segments = get_tokens_and_segments(tokens_a, tokens_b)
        examples.append((tokens, segments, is_next))
    return examples


def _replace_mlm_tokens(tokens, candidate_pred_positions, num_mlm_preds, vocab):
    """(input tokens, [(position, original token)]): `num_mlm_preds` of the candidate
    positions (shuffled in place) become '<mask>' 80% of the time, stay 10%, and become a
    random vocabulary token 10%."""
    mlm_input_tokens = list(tokens)
    pred_positions_and_labels = []
    random.shuffle(candidate_pred_positions)
    for position in candidate_pred_positions[:num_mlm_preds]:
        if random.random() < 0.8:
            masked_token = "<mask>"
        elif random.random() < 0.5:
            masked_token = tokens[position]
        else:
            masked_token = random.choice(vocab.idx_to_token)
        mlm_input_tokens[position] = masked_token
        pred_positions_and_labels.append((position, tokens[position]))
    return mlm_input_tokens, pred_positions_and_labels


def _get_mlm_data_from_tokens(tokens, vocab):
    """(input ids, prediction positions in order, their label ids) for 15% of the tokens
    (at least one), never '<cls>' or '<sep>'."""
    candidates = [i for i, token in enumerate(tokens) if token not in ("<cls>", "<sep>")]
    num_mlm_preds = max(1, round(len(tokens) * 0.15))
    mlm_input_tokens, pairs = _replace_mlm_tokens(tokens, candidates, num_mlm_preds, vocab)
    pairs = sorted(pairs, key=lambda x: x[0])
    return (vocab[mlm_input_tokens], [p for p, _ in pairs], vocab[[t for _, t in pairs]])


def _pad_bert_inputs(examples, max_len, vocab):
    """The examples (ids, positions, labels, segments, is_next) padded into lists of tensors:
    token ids and segments to max_len, valid lengths (float), prediction positions, weights
    (1 on real predictions) and labels to round(0.15 max_len), and the NSP labels."""
    max_num_mlm_preds = round(max_len * 0.15)
    pad = vocab["<pad>"]
    out = [[] for _ in range(7)]
    for token_ids, pred_positions, mlm_labels, segments, is_next in examples:
        n_pred = len(pred_positions)
        for i, (value, dtype) in enumerate((
                (token_ids + [pad] * (max_len - len(token_ids)), torch.long),
                (segments + [0] * (max_len - len(segments)), torch.long),
                (len(token_ids), torch.float32),
                (pred_positions + [0] * (max_num_mlm_preds - n_pred), torch.long),
                ([1.0] * n_pred + [0.0] * (max_num_mlm_preds - n_pred), torch.float32),
                (mlm_labels + [0] * (max_num_mlm_preds - n_pred), torch.long),
                (is_next, torch.long))):
            out[i].append(torch.tensor(value, dtype=dtype))
    return tuple(out)


class _WikiTextDataset(torch.utils.data.Dataset):
    """BERT's pretraining examples from paragraphs (lists of sentence strings): a vocabulary of
    words seen 5 times or more (with '<pad>', '<mask>', '<cls>', '<sep>'), and for each pair of
    consecutive sentences the padded MLM and NSP inputs and labels."""

    def __init__(self, paragraphs, max_len):
        paragraphs = [tokenize(paragraph, token="word") for paragraph in paragraphs]
        sentences = [sentence for paragraph in paragraphs for sentence in paragraph]
        self.vocab = Vocab(sentences, min_freq=5,
                           reserved_tokens=["<pad>", "<mask>", "<cls>", "<sep>"])
        examples = []
        for paragraph in paragraphs:
            examples.extend(_get_nsp_data_from_paragraph(paragraph, paragraphs, self.vocab,
                                                         max_len))
        examples = [_get_mlm_data_from_tokens(tokens, self.vocab) + (segments, is_next)
                    for tokens, segments, is_next in examples]
        (self.all_token_ids, self.all_segments, self.valid_lens, self.all_pred_positions,
         self.all_mlm_weights, self.all_mlm_labels, self.nsp_labels) = _pad_bert_inputs(
            examples, max_len, self.vocab)

    def __getitem__(self, idx):
        return (self.all_token_ids[idx], self.all_segments[idx], self.valid_lens[idx],
                self.all_pred_positions[idx], self.all_mlm_weights[idx],
                self.all_mlm_labels[idx], self.nsp_labels[idx])

    def __len__(self) -> int:
        return len(self.all_token_ids)


def load_data_wiki(batch_size: int, max_len: int):
    """(shuffled batches, vocab) of BERT pretraining examples from WikiText-2: each batch
    (tokens, segments, valid_lens, pred_positions, mlm_weights, mlm_labels, nsp_labels)."""
    batch_size, max_len = positive_int("batch_size", batch_size), positive_int("max_len", max_len)
    train_set = _WikiTextDataset(_read_wiki(_folder("wikitext-2", "wikitext-2")), max_len)
    if not len(train_set):
        raise ValueError(f"WikiText-2 gave no sentence pairs of at most {max_len} tokens: raise "
                         f"max_len, or check wiki.train.tokens")
    arrays = [torch.stack(list(column)) for column in (
        train_set.all_token_ids, train_set.all_segments, train_set.valid_lens,
        train_set.all_pred_positions, train_set.all_mlm_weights, train_set.all_mlm_labels,
        train_set.nsp_labels)]
    return _data.TensorLoader(arrays, batch_size, shuffle=True, merge_single=False), \
        train_set.vocab


def _get_batch_loss_bert(net, loss, vocab_size, tokens_X, segments_X, valid_lens_x,
                         pred_positions_X, mlm_weights_X, mlm_Y, nsp_y):
    """(MLM loss, NSP loss, their sum) of a pretraining batch. With an unreduced `loss` the
    MLM loss is the mean over the real (weight 1) predictions; with the book's mean-reduced
    `nn.CrossEntropyLoss()` it is, as in the book, the mean over all prediction slots."""
    _, mlm_Y_hat, nsp_Y_hat = net(tokens_X, segments_X, valid_lens_x.reshape(-1),
                                  pred_positions_X)
    # weights (N * P,): the book's (N * P, 1) would broadcast an unreduced loss to a square
    mlm_l = loss(mlm_Y_hat.reshape(-1, vocab_size), mlm_Y.reshape(-1)) \
        * mlm_weights_X.reshape(-1)
    mlm_l = mlm_l.sum() / (mlm_weights_X.sum() + 1e-8)
    nsp_l = loss(nsp_Y_hat, nsp_y)
    return mlm_l, nsp_l, mlm_l + nsp_l


# --- sentiment analysis --------------------------------------------------------------------------

def read_imdb(data_dir, is_train: bool):
    """(reviews, labels) of the IMDb split under `data_dir` (`train/` or `test/`): the
    `pos/` reviews (label 1) then the `neg/` ones (label 0), each file's text with its line
    breaks removed, files in name order."""
    data, labels = [], []
    for label in ("pos", "neg"):
        folder = Path(data_dir) / ("train" if is_train else "test") / label
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder} is missing: is {data_dir} the unpacked aclImdb "
                                    f"folder (train/pos, train/neg, test/pos, test/neg)?")
        for file in sorted(os.listdir(folder)):
            data.append((folder / file).read_bytes().decode("utf-8").replace("\n", ""))
            labels.append(1 if label == "pos" else 0)
    return data, labels


def load_data_imdb(batch_size: int, num_steps: int = 500):
    """(training batches, shuffled; test batches; vocab) of IMDb: word indices cut or padded
    to `num_steps` with '<pad>' (words seen 5 times or more in training), labels 1 positive,
    0 negative."""
    from .data import load_array

    num_steps = positive_int("num_steps", num_steps)
    data_dir = _folder("aclImdb", "aclImdb")
    train_data, test_data = read_imdb(data_dir, True), read_imdb(data_dir, False)
    train_tokens, test_tokens = tokenize(train_data[0]), tokenize(test_data[0])
    vocab = Vocab(train_tokens, min_freq=5)

    def features(lines):
        return torch.tensor([truncate_pad(vocab[line], num_steps, vocab["<pad>"])
                             for line in lines], dtype=torch.long).reshape(len(lines), num_steps)

    if not train_data[0]:
        raise ValueError(f"{data_dir}/train holds no reviews (pos/*.txt, neg/*.txt): is it the "
                         f"book's aclImdb folder?")
    train_iter = load_array((features(train_tokens), torch.tensor(train_data[1])), batch_size)
    test_iter = load_array((features(test_tokens), torch.tensor(test_data[1])), batch_size,
                           is_train=False)
    return train_iter, test_iter, vocab


def _device_of(net: nn.Module) -> torch.device:
    return next((p.device for p in net.parameters()), torch.device("cpu"))


def predict_sentiment(net: nn.Module, vocab: Vocab, sequence: str) -> str:
    """'positive' or 'negative': `net`'s class for the words of `sequence`, on its device."""
    tokens = torch.tensor(vocab[sequence.split()], device=_device_of(net))
    label = torch.argmax(net(tokens.reshape(1, -1)), dim=1)
    return "positive" if label == 1 else "negative"


# --- natural language inference ------------------------------------------------------------------

SNLI_LABELS = {"entailment": 0, "contradiction": 1, "neutral": 2}


def read_snli(data_dir, is_train: bool):
    """(premises, hypotheses, labels) of SNLI's training or test file: sentences from the
    binary parses, brackets removed; labels 0 entailment, 1 contradiction, 2 neutral (pairs
    without a gold label left out)."""
    def extract_text(s):
        s = re.sub(r"\(", "", s)
        s = re.sub(r"\)", "", s)
        return re.sub(r"\s{2,}", " ", s).strip()

    path = Path(data_dir) / ("snli_1.0_train.txt" if is_train else "snli_1.0_test.txt")
    rows = [row.split("\t") for row in _read_text(_need(path, "SNLI")).split("\n")[1:]]
    rows = [row for row in rows if row[0] in SNLI_LABELS and len(row) >= 3]
    return ([extract_text(row[1]) for row in rows], [extract_text(row[2]) for row in rows],
            [SNLI_LABELS[row[0]] for row in rows])


class SNLIDataset(torch.utils.data.Dataset):
    """SNLI pairs as word indices cut or padded to `num_steps`: `[i]` gives
    ((premise, hypothesis), label). The vocabulary keeps words seen 5 times or more (and
    '<pad>') unless `vocab` is given."""

    def __init__(self, dataset, num_steps: int, vocab: Vocab | None = None):
        self.num_steps = positive_int("num_steps", num_steps)
        all_premise_tokens, all_hypothesis_tokens = tokenize(dataset[0]), tokenize(dataset[1])
        self.vocab = vocab if vocab is not None else Vocab(
            all_premise_tokens + all_hypothesis_tokens, min_freq=5, reserved_tokens=["<pad>"])
        self.premises = self._pad(all_premise_tokens)
        self.hypotheses = self._pad(all_hypothesis_tokens)
        self.labels = torch.tensor(dataset[2], dtype=torch.long)
        print(f"read {len(self.premises)} examples")

    def _pad(self, lines):
        pad = self.vocab["<pad>"]
        return torch.tensor([truncate_pad(self.vocab[line], self.num_steps, pad)
                             for line in lines], dtype=torch.long).reshape(len(lines),
                                                                           self.num_steps)

    def __getitem__(self, idx):
        return (self.premises[idx], self.hypotheses[idx]), self.labels[idx]

    def __len__(self) -> int:
        return len(self.premises)


class _PairBatches:
    """Batches [[premises, hypotheses], labels] of an `SNLIDataset`, sliced from its tensors
    (the layout torch's DataLoader gives)."""

    def __init__(self, dataset: SNLIDataset, batch_size: int, shuffle: bool):
        self.dataset = dataset
        self._loader = _data.TensorLoader(
            (dataset.premises, dataset.hypotheses, dataset.labels), batch_size, shuffle=shuffle,
            merge_single=False)

    def __len__(self) -> int:
        return len(self._loader)

    def __iter__(self):
        for premises, hypotheses, labels in self._loader:
            yield [premises, hypotheses], labels


def load_data_snli(batch_size: int, num_steps: int = 50):
    """(training batches, shuffled; test batches; vocab) of SNLI, each batch
    [[premises (N, num_steps), hypotheses (N, num_steps)], labels (N,)]."""
    batch_size = positive_int("batch_size", batch_size)
    data_dir = _folder("SNLI")
    train_set = SNLIDataset(read_snli(data_dir, True), num_steps)
    test_set = SNLIDataset(read_snli(data_dir, False), num_steps, train_set.vocab)
    return (_PairBatches(train_set, batch_size, True), _PairBatches(test_set, batch_size, False),
            train_set.vocab)


def predict_snli(net: nn.Module, vocab: Vocab, premise, hypothesis) -> str:
    """'entailment', 'contradiction' or 'neutral': `net`'s class for a premise and a
    hypothesis (lists of tokens), on its device, in evaluation mode."""
    net.eval()
    device = _device_of(net)
    premise = torch.tensor(vocab[list(premise)], device=device).reshape(1, -1)
    hypothesis = torch.tensor(vocab[list(hypothesis)], device=device).reshape(1, -1)
    label = int(torch.argmax(net([premise, hypothesis]), dim=1))
    return list(SNLI_LABELS)[label]


# --- the older sequence-to-sequence helpers ------------------------------------------------------

def read_data_nmt() -> str:
    """The English-French pairs file `fra-eng/fra.txt`, as one string."""
    return _read_text(_need(_folder("fra-eng") / "fra.txt", "English-French"))


def preprocess_nmt(text: str) -> str:
    """Non-breaking spaces as spaces, lower case, a space before , . ! ? that lack one."""
    return _data.MTFraEng._preprocess(text)


def tokenize_nmt(text: str, num_examples: int | None = None):
    """(source, target) word lists from 'english<TAB>french' lines; with `num_examples`, the
    lines up to index num_examples (as the book's, that is num_examples + 1 lines)."""
    source, target = [], []
    for i, line in enumerate(text.split("\n")):
        if num_examples and i > num_examples:
            break
        parts = line.split("\t")
        if len(parts) == 2:
            source.append(parts[0].split(" "))
            target.append(parts[1].split(" "))
    return source, target


def build_array_nmt(lines, vocab: Vocab, num_steps: int):
    """(indices (N, num_steps), valid lengths (N,)): each line's indices ended by '<eos>', cut
    or padded with '<pad>'; the valid length counts the tokens that are not '<pad>'."""
    num_steps = positive_int("num_steps", num_steps)
    pad, eos = vocab["<pad>"], vocab["<eos>"]
    array = torch.tensor([truncate_pad(vocab[line] + [eos], num_steps, pad) for line in lines],
                         dtype=torch.long).reshape(len(lines), num_steps)
    return array, (array != pad).type(torch.int32).sum(1)


def load_data_nmt(batch_size: int, num_steps: int, num_examples: int = 600):
    """(shuffled batches of (source, source valid lengths, target, target valid lengths),
    source vocab, target vocab) of the English-French pairs; vocabularies of words seen
    twice or more, with '<pad>', '<bos>', '<eos>'."""
    from .data import load_array

    source, target = tokenize_nmt(preprocess_nmt(read_data_nmt()), num_examples)
    reserved = ["<pad>", "<bos>", "<eos>"]
    src_vocab = Vocab(source, min_freq=2, reserved_tokens=reserved)
    tgt_vocab = Vocab(target, min_freq=2, reserved_tokens=reserved)
    src_array, src_valid_len = build_array_nmt(source, src_vocab, num_steps)
    tgt_array, tgt_valid_len = build_array_nmt(target, tgt_vocab, num_steps)
    data_iter = load_array((src_array, src_valid_len, tgt_array, tgt_valid_len), batch_size)
    return data_iter, src_vocab, tgt_vocab


class MaskedSoftmaxCELoss(nn.CrossEntropyLoss):
    """Cross-entropy of logits `pred` (N, T, V) against `label` (N, T), the positions at or
    past `valid_len` (N,) counted as 0: (N,) the mean over the T positions of each sequence."""

    def forward(self, pred, label, valid_len):
        if pred.ndim != 3 or tuple(label.shape) != tuple(pred.shape[:2]):
            raise ValueError(f"MaskedSoftmaxCELoss takes pred (N, T, V) and label (N, T), got "
                             f"{tuple(pred.shape)} and {tuple(label.shape)}")
        weights = sequence_mask(torch.ones_like(label, dtype=torch.float32), valid_len)  # (N, T)
        self.reduction = "none"
        unweighted_loss = super().forward(pred.permute(0, 2, 1), label)  # (N, T)
        return (unweighted_loss * weights).mean(dim=1)


def train_seq2seq(net: nn.Module, data_iter, lr: float, num_epochs: int, tgt_vocab: Vocab,
                  device) -> None:
    """Train an encoder-decoder on batches (X, X_valid_len, Y, Y_valid_len) with Adam, teacher
    forcing ('<bos>' then Y shifted), the masked cross-entropy and gradients clipped to norm
    1; Xavier-uniform weights first. Draws the loss per token every 10 epochs."""
    num_epochs = positive_int("num_epochs", num_epochs)
    lr = number("lr", lr, 0, open_low=True)
    net.apply(init_seq2seq)
    net.to(device)
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)
    loss = MaskedSoftmaxCELoss()
    net.train()
    animator = Animator(xlabel="epoch", ylabel="loss", xlim=[10, num_epochs])
    for epoch in range(num_epochs):
        timer, metric = Timer(), Accumulator(2)  # summed loss, tokens
        for batch in data_iter:
            optimizer.zero_grad()
            X, X_valid_len, Y, Y_valid_len = [x.to(device) for x in batch]
            bos = torch.full((Y.shape[0], 1), tgt_vocab["<bos>"], device=device)
            dec_input = torch.cat([bos, Y[:, :-1]], 1)  # teacher forcing
            Y_hat = net(X, dec_input, X_valid_len)
            if isinstance(Y_hat, tuple):  # the older encoder-decoders return (output, state)
                Y_hat = Y_hat[0]
            l = loss(Y_hat, Y, Y_valid_len)  # noqa: E741 (the book's name)
            l.sum().backward()
            clip_gradients(1, net)
            optimizer.step()
            with torch.no_grad():
                metric.add(l.sum(), Y_valid_len.sum())
        if (epoch + 1) % 10 == 0:
            animator.add(epoch + 1, (metric[0] / metric[1],))
    print(f"loss {metric[0] / metric[1]:.3f}, {metric[1] / timer.stop():.1f} tokens/sec on "
          f"{device}")


def predict_seq2seq(net: nn.Module, src_sentence: str, src_vocab: Vocab, tgt_vocab: Vocab,
                    num_steps: int, device, save_attention_weights: bool = False):
    """(translation, attention weights of each step if asked): greedy decoding of
    `src_sentence` (lower-cased, split at spaces, ended by '<eos>') for at most `num_steps`
    tokens, stopping at '<eos>'."""
    num_steps = positive_int("num_steps", num_steps)
    net.eval()
    src_tokens = src_vocab[src_sentence.lower().split(" ")] + [src_vocab["<eos>"]]
    enc_valid_len = torch.tensor([len(src_tokens)], device=device)
    src_tokens = truncate_pad(src_tokens, num_steps, src_vocab["<pad>"])
    enc_X = torch.tensor(src_tokens, dtype=torch.long, device=device).unsqueeze(0)  # (1, T)
    output_seq, attention_weight_seq = [], []
    with torch.no_grad():
        enc_outputs = net.encoder(enc_X, enc_valid_len)
        dec_state = net.decoder.init_state(enc_outputs, enc_valid_len)
        dec_X = torch.tensor([[tgt_vocab["<bos>"]]], dtype=torch.long, device=device)
        for _ in range(num_steps):
            Y, dec_state = net.decoder(dec_X, dec_state)
            dec_X = Y.argmax(dim=2)  # (1, 1): the likeliest token, fed back
            pred = int(dec_X.squeeze(dim=0))
            if save_attention_weights:
                attention_weight_seq.append(net.decoder.attention_weights)
            if pred == tgt_vocab["<eos>"]:
                break
            output_seq.append(pred)
    return " ".join(tgt_vocab.to_tokens(output_seq)), attention_weight_seq
