"""Chapter 10 end to end on generated English-French pairs: the RNN with Bahdanau attention
and the transformer train (loss falls), translate the book's sentences and held-out pairs with
BLEU, draw their attention weights, and print the table; bad input stops with a message."""

import json
import runpy
import sys
import zipfile

import pytest
import torch

import d2lai
from chapters import attention as chapter

pytestmark = [pytest.mark.filterwarnings("ignore:.*is not the book's file"),
              pytest.mark.usefixtures("offline")]


def test_both_models_train_translate_and_draw(fra_root, tmp_path, capsys, one_thread):
    out = tmp_path / "out"
    results = chapter.main(["--data-root", str(fra_root), "--out", str(out), "--cpu",
                            "--seed", "0", "--epochs", "6", "--batchsize", "32",
                            "--num-train", "160", "--num-val", "64", "--num-hiddens", "32"])
    assert list(results) == ["bahdanau", "transformer"]
    printed = capsys.readouterr().out
    for name, r in results.items():
        losses = r["history"]["train_loss"]
        assert len(losses) == 6 and losses[-1] < 0.8 * losses[0], (name, losses)
        assert [row["en"] for row in r["book"]] == chapter.ENGS
        assert len(r["held_out"]) == 4
        for row in r["book"] + r["held_out"]:
            assert row["bleu"] == d2lai.bleu(" ".join(row["translation"]), row["fr"], 2)
            assert 0 <= row["bleu"] <= 1 and "<eos>" not in row["translation"]
            assert f"{row['en']} => {row['translation']}, bleu {row['bleu']:.3f}" in printed
        assert (out / f"{name}-attention.png").stat().st_size > 1000
        assert (out / f"{name}-board.png").stat().st_size > 1000
        saved = json.loads((out / f"{name}-history.json").read_text())
        assert saved["held_out"] == r["held_out"]
        assert any(line.split()[:2] == [name, "6"] for line in printed.splitlines())
    # the RNN: one row a decoding step over the source's 3 tokens and <eos>
    rows, cols, steps, keys = results["bahdanau"]["heatmap"]["shape"]
    assert (rows, cols, keys) == (1, 1, 4) and 1 <= steps <= 9
    # the transformer: each of 2 encoder blocks, each of 4 heads, source over source
    assert results["transformer"]["heatmap"]["shape"] == (2, 4, 4, 4)
    assert "BLEU held-out" in printed


def test_held_out_pairs_are_the_validation_pairs_as_text(fra_root):
    data = d2lai.MTFraEng(8, num_train=16, num_val=8, root=fra_root)
    engs, fras = chapter.held_out_pairs(data, 3)
    assert len(engs) == len(fras) == 3
    src, _, valid_len, label = data.build(engs, fras)
    assert torch.equal(src, data.val[0][:3]) and torch.equal(label, data.val[3][:3])
    assert torch.equal(valid_len, data.val[2][:3])


def test_a_model_the_book_would_translate_perfectly_scores_bleu_one(fra_root):
    data = d2lai.MTFraEng(8, num_train=16, num_val=8, root=fra_root)
    engs, fras = chapter.held_out_pairs(data, 2)
    model = chapter.bahdanau(data, 8)
    labels = data.build(engs, fras)[3]  # (N, T): the French words, then <eos>, then <pad>

    def oracle(batch, device, num_steps, save_attention_weights=False, eos=None):
        return labels, []

    model.predict_step = oracle
    rows = chapter.translate(model, data, engs, fras)
    assert [row["bleu"] for row in rows] == [1.0, 1.0]
    assert [" ".join(row["translation"]) for row in rows] == fras


def test_help_and_bad_flags(monkeypatch, capsys, fra_root, tmp_path):
    monkeypatch.setattr(sys, "argv", ["chapters/attention.py", "--help"])
    with pytest.raises(SystemExit) as done:
        runpy.run_path(chapter.__file__, run_name="__main__")
    assert done.value.code == 0 and "--held-out" in capsys.readouterr().out
    for flags, message in ((["--num-steps", "0"], "--num-steps: must be a positive integer"),
                           (["--lr", "0"], "--lr: must be above 0"),
                           (["--model", "lstm"], "invalid choice: 'lstm'")):
        with pytest.raises(SystemExit) as done:
            chapter.main(flags)
        assert done.value.code == 2 and message in capsys.readouterr().err
    with pytest.raises(SystemExit, match=r"error: --num-hiddens 30: num_hiddens \(30\) must be "
                                         r"divisible by num_heads \(4\)"):
        chapter.main(["--data-root", str(fra_root), "--out", str(tmp_path), "--model",
                      "transformer", "--num-hiddens", "30"])


def test_missing_or_corrupt_pairs_stop_before_training(tmp_path, capsys):
    with pytest.raises(SystemExit, match=r"error: fra-eng.zip is not in .* could not be "
                                         r"downloaded from http.*fra-eng.zip"):
        chapter.main(["--data-root", str(tmp_path), "--out", str(tmp_path / "o")])
    (tmp_path / "fra-eng.zip").write_bytes(b"PK\x03\x04 not a whole zip")
    with pytest.raises(SystemExit, match="error: .*fra-eng.zip is not a whole zip file"):
        chapter.main(["--data-root", str(tmp_path), "--out", str(tmp_path / "o")])
    (tmp_path / "fra-eng.zip").unlink()
    with zipfile.ZipFile(tmp_path / "fra-eng.zip", "w") as z:
        z.writestr("fra-eng/fra.txt", "")  # an empty corpus
    with pytest.raises(SystemExit, match=r"error: .*fra.txt holds 0 sentence pairs"):
        chapter.main(["--data-root", str(tmp_path), "--out", str(tmp_path / "o")])
    assert "Train Loss" not in capsys.readouterr().err


def test_an_output_that_cannot_be_written_stops_before_training(fra_root, tmp_path, capsys):
    (tmp_path / "transformer-attention.png").mkdir()  # the last file written: a folder
    with pytest.raises(SystemExit, match=r"error: .*transformer-attention.png"):
        chapter.main(["--data-root", str(fra_root), "--out", str(tmp_path), "--quick"])
    assert not (tmp_path / "bahdanau-history.json").exists()  # nothing was trained
