"""The text data of chapters 8-10: Vocab, TimeMachine, MTFraEng, against hand computations."""

import zipfile

import pytest
import torch
from matplotlib.figure import Figure

import d2lai
from d2lai import MTFraEng, TimeMachine, Vocab

NNBSP = "\u202f"  # the narrow no-break space the real fra.txt puts before '!' and '?'


pytestmark = pytest.mark.usefixtures("offline")


def write_fra(root, text: str):
    """root/fra-eng.zip holding fra-eng/fra.txt with `text` (bytes written as they are)."""
    data = text if isinstance(text, bytes) else text.encode("utf-8")
    with zipfile.ZipFile(root / "fra-eng.zip", "w") as z:
        z.writestr("fra-eng/fra.txt", data)


# --- Vocab ------------------------------------------------------------------------------------

def test_vocab_against_a_hand_count():
    lines = [["b", "a", "c", "a"], ["a", "b", "d"]]
    vocab = Vocab(lines, min_freq=2, reserved_tokens=["<pad>"])
    # a: 3, b: 2, c: 1, d: 1 (c before d: first seen first)
    assert vocab.token_freqs == [("a", 3), ("b", 2), ("c", 1), ("d", 1)]
    # '<unk>', the reserved token and the tokens seen twice, by code point ('<' < 'a')
    assert vocab.idx_to_token == ["<pad>", "<unk>", "a", "b"]
    assert vocab.token_to_idx == {"<pad>": 0, "<unk>": 1, "a": 2, "b": 3}
    assert len(vocab) == 4
    assert vocab["b"] == 3 and vocab["c"] == 1 and vocab["never"] == 1
    assert vocab[["b", "z", "a"]] == [3, 1, 2]
    assert vocab[[["a"], ["b", "d"]]] == [[2], [3, 1]]
    assert vocab.unk == 1 and d2lai.unk(vocab) == 1
    assert vocab.to_tokens(2) == "a"
    assert vocab.to_tokens([3, 0]) == ["b", "<pad>"]
    assert vocab.to_tokens([3]) == ["b"]  # a list of one gives a list
    assert d2lai.to_tokens(vocab, torch.tensor([[2, 3], [1, 0]])) == [["a", "b"],
                                                                      ["<unk>", "<pad>"]]
    assert vocab.to_tokens(torch.tensor(3)) == "b"
    # a flat list counts the same as the list of lists
    assert Vocab([t for line in lines for t in line], 2, ["<pad>"]).idx_to_token == \
        vocab.idx_to_token


def test_vocab_of_characters_puts_space_then_unk_then_letters():
    vocab = Vocab(list("ba ab"))
    assert vocab.idx_to_token == [" ", "<unk>", "a", "b"]
    assert vocab.token_freqs == [("b", 2), ("a", 2), (" ", 1)]
    assert vocab[list("ab c")] == [2, 3, 0, 1]


def test_vocab_ties_follow_first_appearance_and_repeat():
    tokens = "the cat saw the dog and the cat ran".split()
    a, b = Vocab(tokens), Vocab(list(tokens))
    assert a.token_freqs == b.token_freqs == [("the", 3), ("cat", 2), ("saw", 1), ("dog", 1),
                                              ("and", 1), ("ran", 1)]
    assert a.idx_to_token == ["<unk>", "and", "cat", "dog", "ran", "saw", "the"]


def test_empty_vocab_holds_only_unk():
    vocab = Vocab()
    assert vocab.idx_to_token == ["<unk>"] and vocab["x"] == 0 and len(vocab) == 1


def test_vocab_errors():
    with pytest.raises(TypeError, match="not a str"):
        Vocab("hello")
    with pytest.raises(TypeError, match="element 1 is int"):
        Vocab(["a", 1])
    with pytest.raises(TypeError, match="reserved_tokens"):
        Vocab(["a"], reserved_tokens="<pad>")
    with pytest.raises(ValueError, match="min_freq"):
        Vocab(["a"], min_freq=-1)
    vocab = Vocab(["a", "b"])
    for bad in (3, -1, 1.0, True):
        with pytest.raises(IndexError, match="from 0 to 2"):
            vocab.to_tokens(bad)


# --- TimeMachine ------------------------------------------------------------------------------

def test_time_machine_windows_by_hand(tmp_path):
    (tmp_path / "timemachine.txt").write_text("Ab, ba!")
    data = TimeMachine(2, 2, num_train=3, num_val=1, root=tmp_path)
    # "ab ba " -> vocab [' ', '<unk>', 'a', 'b'] -> corpus [2, 3, 0, 3, 2, 0]
    assert data.vocab.idx_to_token == [" ", "<unk>", "a", "b"]
    assert data.corpus == [2, 3, 0, 3, 2, 0]
    assert data.X.tolist() == [[2, 3], [3, 0], [0, 3], [3, 2]]
    assert data.Y.tolist() == [[3, 0], [0, 3], [3, 2], [2, 0]]
    assert [t.tolist() for t in data.train] == [data.X.tolist()[:3], data.Y.tolist()[:3]]
    assert [t.tolist() for t in data.val] == [[[3, 2]], [[2, 0]]]
    assert data.num_classes == 4
    assert data.y is data.Y  # the Julia package's name, and the PyTorch edition's
    (X, Y), = list(data.val_dataloader())  # X one-hot (N, T, V), as the Julia package serves it
    assert X.dtype == torch.float32 and X.shape == (1, 2, 4)
    assert X.argmax(-1).tolist() == [[3, 2]] and Y.tolist() == [[2, 0]]
    assert X.sum(-1).tolist() == [[1.0, 1.0]]
    rows = sorted(tuple(x) for X, _ in data.train_dataloader() for x in X.argmax(-1).tolist())
    assert rows == sorted(tuple(x) for x in data.X.tolist()[:3])


def test_time_machine_windows_against_the_corpus(tm_root, one_thread):
    text = (tm_root / "timemachine.txt").read_text()
    # the preprocessing, computed another way: letters lowered, each run of others one space
    chars = []
    for c in text:
        letter = c.isascii() and c.isalpha()
        if letter or not chars or chars[-1] != " ":
            chars.append(c.lower() if letter else " ")
    data = d2lai.TimeMachine(batch_size=8, num_steps=5, num_train=100, num_val=50, root=tm_root)
    assert data.vocab.idx_to_token == sorted(set(chars) | {"<unk>"})
    assert "".join(data.vocab.to_tokens(data.corpus)) == "".join(chars)
    assert data.X.shape == data.Y.shape == (len(chars) - 5, 5)
    corpus = torch.tensor(data.corpus)
    for i in (0, 1, 99, 100, 149, len(chars) - 6):
        assert torch.equal(data.X[i], corpus[i:i + 5])
        assert torch.equal(data.Y[i], corpus[i + 1:i + 6])
    assert data.num_classes == len(data.vocab) == len(set(chars)) + 1
    train, val = list(data.train_dataloader()), list(data.val_dataloader())
    assert [len(X) for X, _ in train] == [8] * 12 + [4]
    assert [len(X) for X, _ in val] == [8] * 6 + [2]
    for X, Y in train + val:
        assert X.dtype == torch.float32 and Y.dtype == torch.long
        assert X.shape[1:] == (5, len(data.vocab))
        assert torch.equal(X.argmax(-1)[:, 1:], Y[:, :-1])
    assert torch.equal(torch.cat([X.argmax(-1) for X, _ in val]), data.X[100:150])


def test_time_machine_default_sizes_fit_the_generated_text(tm_root):
    data = TimeMachine(1024, 32, root=tm_root)
    assert len(data.train[0]) == 10000 and len(data.val[0]) == 5000
    assert data.args.batchsize == 1024 and data.args.num_steps == 32


def test_build_with_a_given_vocab(tm_root):
    data = TimeMachine(4, 3, num_train=10, num_val=10, root=tm_root)
    corpus, vocab = d2lai.build(TimeMachine, "Hi, Bo!", data.vocab)
    assert vocab is data.vocab
    assert vocab.to_tokens(corpus) == list("hi bo ")
    corpus, vocab = data.build("zz")
    assert vocab.idx_to_token == ["<unk>", "z"] and corpus == [1, 1]
    with pytest.raises(TypeError, match="raw text as a str"):
        TimeMachine.build(["a"])


def test_time_machine_bad_arguments(tm_root):
    with pytest.raises(ValueError, match="num_steps must be a positive integer, got 0"):
        TimeMachine(4, 0, root=tm_root)
    with pytest.raises(TypeError, match="num_steps must be a positive integer, got 2.5"):
        TimeMachine(4, 2.5, root=tm_root)
    with pytest.raises(TypeError, match="num_steps"):
        TimeMachine(4, root=tm_root)
    with pytest.raises(ValueError, match="num_val must be a positive integer"):
        TimeMachine(4, 3, num_val=0, root=tm_root)
    with pytest.raises(ValueError, match="batchsize or batch_size, not both"):
        TimeMachine(4, 3, root=tm_root, batch_size=8)


def test_time_machine_never_gives_fewer_windows_than_asked(tmp_path):
    (tmp_path / "timemachine.txt").write_text("abcdefgh")
    with pytest.raises(ValueError, match="gives? 5 windows") as err:
        TimeMachine(2, 3, num_train=4, num_val=2, root=tmp_path)
    assert "num_train + num_val = 6" in str(err.value)
    assert len(TimeMachine(2, 3, num_train=4, num_val=1, root=tmp_path).val[0]) == 1


@pytest.mark.parametrize("text, chars", [("", 0), ("!?  \n", 1), ("abc", 3)])
def test_a_corpus_too_short_for_a_window_is_refused(tmp_path, text, chars):
    (tmp_path / "timemachine.txt").write_text(text)
    with pytest.raises(ValueError, match=f"has {chars} characters after preprocessing") as err:
        TimeMachine(2, 3, root=tmp_path)
    assert str(tmp_path / "timemachine.txt") in str(err.value)


def test_time_machine_missing_file_gives_the_offline_error(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        TimeMachine(2, 3, root=tmp_path / "data")
    msg = str(err.value)
    assert "timemachine.txt" in msg and str(tmp_path / "data") in msg
    assert d2lai.data.DATA_HUB["time_machine"][0] in msg


def test_a_file_that_is_not_utf8_is_named(tmp_path):
    (tmp_path / "timemachine.txt").write_bytes(b"The Time \xff\xfe Machine")
    with pytest.raises(ValueError, match="not UTF-8 text") as err:
        TimeMachine(2, 3, root=tmp_path)
    assert str(tmp_path / "timemachine.txt") in str(err.value)


# --- MTFraEng ---------------------------------------------------------------------------------

TWO_LINES = f"Go.\tVa{NNBSP}!\nGo away, go!\tVa, va-t'en{NNBSP}!\n"


def test_mt_fra_eng_by_hand_on_two_lines(tmp_path):
    write_fra(tmp_path, TWO_LINES)
    data = MTFraEng(2, num_steps=4, num_train=1, num_val=1, root=tmp_path)
    # source: [go . <eos> <pad>], [go away , go] (cut: no <eos>); only 'go' is seen twice
    src_vocab = ["<eos>", "<pad>", "<unk>", "go"]
    assert data.src_vocab.idx_to_token == src_vocab
    # target: [<bos> va ! <eos> <pad>], [<bos> va , va-t'en !]; seen twice: <bos>, va, !
    tgt_vocab = ["!", "<bos>", "<eos>", "<pad>", "<unk>", "va"]
    assert data.tgt_vocab.idx_to_token == tgt_vocab
    s, t = src_vocab.index, tgt_vocab.index
    src, dec_input, src_valid_len, label = data.arrays
    assert src.tolist() == [[s("go"), s("<unk>"), s("<eos>"), s("<pad>")],
                            [s("go"), s("<unk>"), s("<unk>"), s("go")]]
    assert src_valid_len.tolist() == [3, 4]
    assert dec_input.tolist() == [[t("<bos>"), t("va"), t("!"), t("<eos>")],
                                  [t("<bos>"), t("va"), t("<unk>"), t("<unk>")]]
    assert label.tolist() == [[t("va"), t("!"), t("<eos>"), t("<pad>")],
                              [t("va"), t("<unk>"), t("<unk>"), t("!")]]
    assert data.num_classes == 6
    assert [a.tolist() for a in data.train] == [a[:1].tolist() for a in data.arrays]
    (batch,) = list(data.val_dataloader())
    assert [a.tolist() for a in batch] == [a[1:].tolist() for a in data.arrays]
    # build: the same vocabularies for new sentences
    again = d2lai.build(data, ["Go."], [f"Va{NNBSP}!"])
    assert [a.tolist() for a in again] == [a[:1].tolist() for a in data.arrays]
    src, _, valid, _ = data.build(["Go, go"], ["va"])
    assert data.src_vocab.to_tokens(src[0]) == ["go", "<unk>", "go", "<eos>"]
    assert valid.tolist() == [4]


def test_mt_preprocess_and_tokenize():
    text = MTFraEng._preprocess(f"Hi.\tSalut{NNBSP}!\nI'm OK,\xa0you?\tÇa va.")
    assert text == "hi .\tsalut !\ni'm ok , you ?\tça va ."
    src, tgt = MTFraEng._tokenize(text + "\nno tab here\n")
    assert src == [["hi", ".", "<eos>"], ["i'm", "ok", ",", "you", "?", "<eos>"]]
    assert tgt == [["salut", "!", "<eos>"], ["ça", "va", ".", "<eos>"]]
    assert MTFraEng._tokenize(text, max_examples=1) == ([src[0]], [tgt[0]])


def test_crlf_lines_and_a_third_column_read_the_same(tmp_path):
    write_fra(tmp_path, TWO_LINES)
    plain = MTFraEng(2, num_steps=4, num_train=1, num_val=1, root=tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    write_fra(other, TWO_LINES.replace("!\n", "!\tCC-BY 2.0 (France)\r\n"))
    odd = MTFraEng(2, num_steps=4, num_train=1, num_val=1, root=other)
    assert all(torch.equal(a, b) for a, b in zip(plain.arrays, odd.arrays, strict=True))


def test_mt_batches_on_the_generated_pairs(fra_root):
    data = MTFraEng(batch_size=64, root=fra_root)
    bos, eos, pad = (data.tgt_vocab[t] for t in ("<bos>", "<eos>", "<pad>"))
    assert data.num_classes == len(data.tgt_vocab)
    assert data.src_vocab.unk not in data.arrays[0][10:].unique()  # the grammar's words repeat
    batches = list(data.train_dataloader())
    assert [len(b[0]) for b in batches] == [64] * 8
    for src, dec_input, valid, label in batches + list(data.val_dataloader()):
        assert src.shape == dec_input.shape == label.shape == (len(src), 9)
        assert valid.shape == (len(src),) and valid.dtype == torch.long
        assert (dec_input[:, 0] == bos).all() and torch.equal(dec_input[:, 1:], label[:, :-1])
        assert torch.equal(valid, (src != data.src_vocab["<pad>"]).sum(1))
        ends = (label == eos).float().argmax(1)  # every pair fits: one <eos>, then padding
        assert ((label == eos).sum(1) == 1).all()
        for row, end in zip(label, ends, strict=True):
            assert (row[end + 1:] == pad).all() and (row[:end] != pad).all()
    assert sum(len(b[0]) for b in data.val_dataloader()) == 128


def test_mt_fra_eng_errors(tmp_path, fra_root):
    with pytest.raises(ValueError, match="holds 810 sentence pairs"):
        MTFraEng(2, num_train=800, num_val=11, root=fra_root)
    with pytest.raises(ValueError, match="num_steps must be a positive integer, got -1"):
        MTFraEng(2, num_steps=-1, root=fra_root)
    with pytest.raises(TypeError, match="batchsize"):
        MTFraEng(root=fra_root)
    data = MTFraEng(2, num_train=4, num_val=4, root=fra_root)
    with pytest.raises(TypeError, match="list of sentences"):
        data.build("go .", "va !")
    with pytest.raises(ValueError, match="1 source sentences but 2 target"):
        data.build(["go ."], ["va !", "va !"])
    empty = tmp_path / "empty"
    empty.mkdir()
    write_fra(empty, "no tabs in this file\n")
    with pytest.raises(ValueError, match="holds 0 sentence pairs"):
        MTFraEng(2, num_train=1, num_val=1, root=empty)


def test_mt_fra_eng_missing_corrupt_and_not_utf8(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        MTFraEng(2, root=tmp_path)
    assert "fra-eng.zip" in str(err.value) and str(tmp_path) in str(err.value)
    (tmp_path / "fra-eng.zip").write_bytes(b"PK\x03\x04 not a zip at all")
    with pytest.raises(ValueError, match="not a whole zip file") as err:
        MTFraEng(2, root=tmp_path)
    assert str(tmp_path / "fra-eng.zip") in str(err.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fra-eng.zip"]
    write_fra(tmp_path, "Go.\tVa \xe0 la gare.\n".encode("latin-1"))
    with pytest.raises(ValueError, match="not UTF-8 text") as err:
        MTFraEng(2, num_train=1, num_val=1, root=tmp_path)
    assert str(tmp_path / "fra-eng" / "fra.txt") in str(err.value)


def test_show_list_len_pair_hist(tmp_path, fra_root):
    src, tgt = MTFraEng._tokenize(MTFraEng._preprocess(
        zipfile.ZipFile(fra_root / "fra-eng.zip").read("fra-eng/fra.txt").decode()))
    fig = d2lai.show_list_len_pair_hist(["source", "target"], "# tokens per sequence", "count",
                                        src, tgt, path=tmp_path / "hist.png")
    assert isinstance(fig, Figure) and (tmp_path / "hist.png").stat().st_size > 0
    (ax,) = fig.axes
    assert ax.get_xlabel() == "# tokens per sequence" and ax.get_ylabel() == "count"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["source", "target"]
    bars = list(ax.containers)
    assert len(bars) == 2 and all(p.get_hatch() == "/" for p in bars[1].patches)
    assert sum(p.get_height() for p in bars[0].patches) == len(src)
    with pytest.raises(ValueError, match="legend"):
        d2lai.show_list_len_pair_hist("source", "x", "y", src, tgt)
