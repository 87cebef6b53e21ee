"""Text data of chapters 8-10: a vocabulary, The Time Machine as characters, English-French pairs.

Indices are 0-based (the Julia package counts from 1) and batches are batch first (the Julia
text's `features x num_steps x batch` read in Python): `TimeMachine` gives `(X, y)`, X one-hot
(N, num_steps, V) as the Julia package serves it, y indices (N, num_steps); `MTFraEng` gives
`(src, dec_input, src_valid_len, label)` of shapes (N, T), (N, T), (N,), (N, T).
"""

from __future__ import annotations

import collections
import os
import re
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace

import torch

from ..checks import Check, count, is_int, positive_int
from .base import AbstractData, batchsize_of, default_root
from .download import download, download_extract

__all__ = ["Vocab", "TimeMachine", "MTFraEng", "unk", "to_tokens", "build",
           "show_list_len_pair_hist"]

SIZES = Check(num_steps=positive_int, num_train=positive_int, num_val=positive_int)


class Vocab:
    """Tokens <-> indices, for tokens given as a list or a list of lists (flattened).

    `token_freqs` is (token, count) by falling count, ties in order of first appearance.
    `idx_to_token` holds '<unk>', the reserved tokens and every token seen at least `min_freq`
    times, each once, sorted by code point as both editions of the book sort it: so ' ' comes
    before '<unk>', which comes before the letters. Unknown tokens map to `unk`.
    """

    def __init__(self, tokens: Sequence = (), min_freq: int = 0,
                 reserved_tokens: Sequence[str] = ()):
        min_freq = count("Vocab: min_freq", min_freq)
        if isinstance(tokens, str):
            raise TypeError("Vocab takes a list of tokens, not a str: for characters pass "
                            "list(text), for words text.split()")
        tokens = tokens if isinstance(tokens, (list, tuple)) else list(tokens)
        if tokens and isinstance(tokens[0], (list, tuple)):
            tokens = [token for line in tokens for token in line]
        _all_str("Vocab: tokens", tokens)
        _all_str("Vocab: reserved_tokens", reserved_tokens)
        counter = collections.Counter(tokens)
        self.token_freqs = sorted(counter.items(), key=lambda x: x[1], reverse=True)
        self.idx_to_token = sorted(set(["<unk>", *reserved_tokens] + [
            token for token, freq in self.token_freqs if freq >= min_freq]))
        self.token_to_idx = {token: idx for idx, token in enumerate(self.idx_to_token)}

    def __len__(self) -> int:
        return len(self.idx_to_token)

    def __getitem__(self, tokens):
        """The index of a token (`unk` if unknown); a list of indices for a list of tokens."""
        if not isinstance(tokens, (list, tuple)):
            return self.token_to_idx.get(tokens, self.unk)
        return [self.__getitem__(token) for token in tokens]

    def to_tokens(self, indices):
        """The token of an index; a list of tokens for a list (or tensor) of indices."""
        if isinstance(indices, torch.Tensor) or hasattr(indices, "tolist"):
            indices = indices.tolist()
        if isinstance(indices, (list, tuple)):
            return [self.to_tokens(i) for i in indices]
        if not is_int(indices) or not 0 <= indices < len(self):
            raise IndexError(f"to_tokens takes indices from 0 to {len(self) - 1} (this "
                             f"vocabulary has {len(self)} tokens), got {indices!r}")
        return self.idx_to_token[indices]

    @property
    def unk(self) -> int:
        """The index of the unknown token '<unk>'."""
        return self.token_to_idx["<unk>"]

    def __repr__(self) -> str:
        head = ", ".join(map(repr, self.idx_to_token[:5]))
        return f"Vocab({len(self)} tokens: {head}{', ...' if len(self) > 5 else ''})"


def _all_str(name: str, tokens) -> None:
    if isinstance(tokens, str):
        raise TypeError(f"{name} must be a list of strings, not one str ({tokens!r})")
    for i, token in enumerate(tokens):
        if not isinstance(token, str):
            raise TypeError(f"{name} must be strings (or lists of strings), but element {i} is "
                            f"{type(token).__name__} {token!r}")


def unk(vocab: Vocab) -> int:
    """`vocab.unk`, under the Julia package's name."""
    return vocab.unk


def to_tokens(vocab: Vocab, indices):
    """`vocab.to_tokens(indices)`, as the Julia text calls it (indices here are 0-based)."""
    return vocab.to_tokens(indices)


def build(data, *args, **kwargs):
    """`data.build(...)`, as the Julia text calls it: `build(TimeMachine, raw_text, vocab)`
    gives (corpus, vocab); `build(mt_data, src_sentences, tgt_sentences)` gives the arrays."""
    return data.build(*args, **kwargs)


def _read_text(path: Path) -> str:
    """A whole UTF-8 text file (a byte-order mark is dropped)."""
    try:
        return path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise ValueError(f"{path} is not UTF-8 text (byte {err.object[err.start]:#04x} at "
                         f"offset {err.start}): is it the book's file? Delete it and download "
                         f"it again.") from None


def _root(root) -> Path:
    return Path(root).expanduser() if root is not None else default_root()


class TimeMachine(AbstractData):
    """H. G. Wells's The Time Machine as a sequence of characters, cut into windows.

    Window i gives `X[i] = corpus[i:i+num_steps]` and the next characters `y[i] =
    corpus[i+1:i+num_steps+1]` (also `Y`, the PyTorch edition's name); the first `num_train`
    windows train, the next `num_val` validate. Batches serve X one-hot, (N, num_steps, V) in
    float32, as the Julia package does (made where the batch is cut); `X` keeps the indices.
    The file is `timemachine.txt` in the data folder (downloaded if missing).
    """

    def __init__(self, batchsize: int | None = None, num_steps: int | None = None,
                 num_train: int = 10000, num_val: int = 5000,
                 root: str | os.PathLike | None = None, *, batch_size: int | None = None):
        if (batchsize is None and batch_size is None) or num_steps is None:
            raise TypeError("TimeMachine needs batchsize (or batch_size) and num_steps, "
                            "e.g. TimeMachine(1024, 32)")
        self.batchsize = batchsize_of(batchsize, batch_size, 0)
        checked = SIZES(locals(), "TimeMachine")
        self.num_steps, self.num_train = checked["num_steps"], checked["num_train"]
        self.num_val = checked["num_val"]
        self.root = _root(root)
        self.args = SimpleNamespace(batchsize=self.batchsize, **checked)
        self.corpus, self.vocab = self.build(self._download())
        T, n = self.num_steps, self.num_train + self.num_val
        windows = len(self.corpus) - T
        if windows < 1:
            raise ValueError(f"{self._path}: the text has {len(self.corpus)} characters after "
                             f"preprocessing (letters and spaces), too few for one window of "
                             f"num_steps + 1 = {T + 1}: is it the book's file?")
        if n > windows:
            raise ValueError(f"TimeMachine: num_train + num_val = {n} windows asked, but the "
                             f"{len(self.corpus)} characters give {windows} windows of "
                             f"num_steps + 1 = {T + 1}: lower num_train or num_val")
        array = torch.tensor(self.corpus).unfold(0, T + 1, 1)  # (windows, T + 1), a view
        self.X, self.y = array[:, :-1], array[:, 1:]  # (windows, T) each
        self.Y = self.y

    def transform(self, X: torch.Tensor) -> torch.Tensor:
        """A batch of windows (N, T) as one-hot vectors (N, T, V)."""
        return torch.nn.functional.one_hot(X, len(self.vocab)).float()

    def _download(self) -> str:
        self._path = download("time_machine", root=self.root)
        return _read_text(self._path)

    @staticmethod
    def _preprocess(text: str) -> str:
        """Every run of non-letters becomes one space; lower case."""
        return re.sub("[^A-Za-z]+", " ", text).lower()

    @staticmethod
    def _tokenize(text: str) -> list[str]:
        """Character tokens."""
        return list(text)

    @classmethod
    def build(cls, raw_text: str, vocab: Vocab | None = None) -> tuple[list[int], Vocab]:
        """(corpus, vocab): the text's character indices, in a new vocabulary or `vocab`."""
        if not isinstance(raw_text, str):
            raise TypeError(f"build takes the raw text as a str, got {type(raw_text).__name__}")
        if vocab is not None and not isinstance(vocab, Vocab):
            raise TypeError(f"vocab must be a Vocab or None, got {type(vocab).__name__}")
        tokens = cls._tokenize(cls._preprocess(raw_text))
        if vocab is None:
            vocab = Vocab(tokens)
        return [vocab[token] for token in tokens], vocab

    @property
    def num_classes(self) -> int:
        return len(self.vocab)

    @property
    def train(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.X[:self.num_train], self.y[:self.num_train]

    @property
    def val(self) -> tuple[torch.Tensor, torch.Tensor]:
        end = self.num_train + self.num_val
        return self.X[self.num_train:end], self.y[self.num_train:end]


class MTFraEng(AbstractData):
    """English-French sentence pairs, as padded index arrays for an encoder-decoder.

    Every pair of `fra-eng/fra.txt` (from `fra-eng.zip` in the data folder; the vocabularies
    come from the whole file, as in both editions; the first `num_train` pairs train, the next
    `num_val` validate) is lower-cased, split into words and punctuation, ended by '<eos>', cut
    or padded with '<pad>' to `num_steps`; targets start with '<bos>'. Both vocabularies keep
    tokens seen at least twice (the book's min_freq=2), and always hold '<pad>' and '<eos>'
    ('<bos>' too on the target side), so a tiny file still pads with '<pad>' and not '<unk>'.
    """

    def __init__(self, batchsize: int | None = None, num_steps: int = 9, num_train: int = 512,
                 num_val: int = 128, root: str | os.PathLike | None = None, *,
                 batch_size: int | None = None):
        if batchsize is None and batch_size is None:
            raise TypeError("MTFraEng needs batchsize (or batch_size), e.g. MTFraEng(128)")
        self.batchsize = batchsize_of(batchsize, batch_size, 0)
        checked = SIZES(locals(), "MTFraEng")
        self.num_steps, self.num_train = checked["num_steps"], checked["num_train"]
        self.num_val = checked["num_val"]
        self.root = _root(root)
        self.args = SimpleNamespace(batchsize=self.batchsize, **checked)
        n = self.num_train + self.num_val
        src, tgt = self._tokenize(self._preprocess(self._download()))
        if len(src) < n:
            raise ValueError(f"{self._path} holds {len(src)} sentence pairs (lines 'english<TAB>"
                             f"french'), but num_train + num_val = {n}: lower num_train or "
                             f"num_val" + (", or check the file" if not src else ""))
        self.arrays, self.src_vocab, self.tgt_vocab = self._build_arrays(src, tgt)

    def _download(self) -> str:
        folder = download_extract("fra-eng", root=self.root)
        self._path = folder / "fra.txt"
        if not self._path.is_file():
            raise FileNotFoundError(f"{folder} holds no fra.txt: delete {folder} (and "
                                    f"{folder.name}.zip beside it) and download it again")
        return _read_text(self._path)

    @staticmethod
    def _preprocess(text: str) -> str:
        """Non-breaking spaces as spaces, lower case, a space before , . ! ? that lack one."""
        text = text.replace("\u202f", " ").replace("\xa0", " ").lower()
        return "".join(" " + c if i > 0 and c in ",.!?" and text[i - 1] != " " else c
                       for i, c in enumerate(text))

    @staticmethod
    def _tokenize(text: str, max_examples: int | None = None
                  ) -> tuple[list[list[str]], list[list[str]]]:
        """(source, target) token lists, each ending in '<eos>', from 'src<TAB>tgt' lines;
        lines without a tab are skipped (a third column, as newer copies carry, is ignored)."""
        src, tgt = [], []
        for line in text.split("\n"):
            if max_examples is not None and len(src) >= max_examples:
                break
            parts = line.split("\t")
            if len(parts) >= 2:
                src.append([*parts[0].split(), "<eos>"])
                tgt.append([*parts[1].split(), "<eos>"])
        return src, tgt

    def _build_arrays(self, src: list[list[str]], tgt: list[list[str]],
                      src_vocab: Vocab | None = None, tgt_vocab: Vocab | None = None):
        """((src, dec_input, src_valid_len, label), src_vocab, tgt_vocab) from token lists."""
        T = self.num_steps

        def build_array(sentences, vocab, is_tgt=False):
            sentences = [s[:T] if len(s) > T else s + ["<pad>"] * (T - len(s))
                         for s in sentences]
            if is_tgt:
                sentences = [["<bos>", *s] for s in sentences]
            if vocab is None:
                reserved = ["<pad>", "<bos>", "<eos>"] if is_tgt else ["<pad>", "<eos>"]
                vocab = Vocab(sentences, min_freq=2, reserved_tokens=reserved)
            array = torch.tensor([vocab[s] for s in sentences], dtype=torch.long)
            array = array.reshape(len(sentences), T + is_tgt)  # (N, T) or (N, T + 1)
            valid_len = (array != vocab["<pad>"]).sum(1)  # (N,)
            return array, vocab, valid_len

        src_array, src_vocab, src_valid_len = build_array(src, src_vocab)
        tgt_array, tgt_vocab, _ = build_array(tgt, tgt_vocab, True)
        return ((src_array, tgt_array[:, :-1], src_valid_len, tgt_array[:, 1:]),
                src_vocab, tgt_vocab)

    def build(self, src_sentences: Sequence[str], tgt_sentences: Sequence[str]):
        """(src, dec_input, src_valid_len, label) for new sentence pairs, in this data's
        vocabularies (words they do not hold become '<unk>')."""
        for name, s in (("src_sentences", src_sentences), ("tgt_sentences", tgt_sentences)):
            if isinstance(s, str) or not isinstance(s, (list, tuple)):
                raise TypeError(f"build: {name} must be a list of sentences (str), got "
                                f"{type(s).__name__}")
            _all_str(f"build: {name}", s)
        if len(src_sentences) != len(tgt_sentences):
            raise ValueError(f"build: {len(src_sentences)} source sentences but "
                             f"{len(tgt_sentences)} target sentences; give them in pairs")
        src = [[*self._preprocess(s).split(), "<eos>"] for s in src_sentences]
        tgt = [[*self._preprocess(s).split(), "<eos>"] for s in tgt_sentences]
        arrays, _, _ = self._build_arrays(src, tgt, self.src_vocab, self.tgt_vocab)
        return arrays

    @property
    def num_classes(self) -> int:
        return len(self.tgt_vocab)

    @property
    def train(self) -> tuple[torch.Tensor, ...]:
        return tuple(a[:self.num_train] for a in self.arrays)

    @property
    def val(self) -> tuple[torch.Tensor, ...]:
        return tuple(a[self.num_train:self.num_train + self.num_val] for a in self.arrays)


def show_list_len_pair_hist(legend: Sequence[str], xlabel: str, ylabel: str, xlist, ylist,
                            path: str | os.PathLike | None = None, fig=None):
    """A histogram of the lengths of two lists of sequences (source and target sentences, say),
    side by side, the second hatched; returns the matplotlib figure (`fig` when given, a pyplot
    figure say, else a new one), saved to `path` if given."""
    from matplotlib.figure import Figure

    from ..board import check_plot_path

    if isinstance(legend, str) or len(legend) != 2:
        raise ValueError(f"legend must name the two lists, e.g. ['source', 'target'], "
                         f"got {legend!r}")
    file = check_plot_path(path) if path is not None else None
    if fig is None:
        fig = Figure(figsize=(3.5, 2.5), layout="constrained")
    ax = fig.add_subplot()
    _, _, patches = ax.hist([[len(s) for s in xlist], [len(s) for s in ylist]])
    for patch in patches[1].patches:
        patch.set_hatch("/")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(legend)
    if file is not None:
        file.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(file, dpi=120)
    return fig
