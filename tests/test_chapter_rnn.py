"""Chapter 8 end to end on a generated Time Machine: both language models train (perplexity
falls), predict after the prefix, write their boards and histories, print the table; bad flags
and bad data stop before training with the package's message."""

import json
import runpy
import sys

import pytest

from chapters import rnn as chapter

pytestmark = [pytest.mark.filterwarnings("ignore:.*is not the book's file"),
              pytest.mark.usefixtures("offline")]


SMALL = ["--cpu", "--seed", "0", "--epochs", "4", "--batchsize", "32", "--num-steps", "8",
         "--num-train", "320", "--num-val", "64"]


def test_both_models_train_predict_and_report(tm_root, tmp_path, capsys, one_thread):
    out = tmp_path / "out"
    results = chapter.main(["--data-root", str(tm_root), "--out", str(out), *SMALL])
    assert list(results) == ["scratch", "concise"]
    printed = capsys.readouterr().out
    for name, cls in (("scratch", "RNNLMScratch"), ("concise", "RNNModelConcise")):
        r = results[name]
        ppl = r["history"]["val_ppl"]
        assert len(ppl) == 4 and ppl[-1] < ppl[0], ppl  # perplexity falls
        assert ppl[0] < 30  # from about the vocabulary's size (25 symbols) down
        assert r["prediction"].startswith("it has") and len(r["prediction"]) == 6 + 20
        assert (out / f"{name}-board.png").stat().st_size > 1000
        saved = json.loads((out / f"{name}-history.json").read_text())
        assert saved["prediction"] == r["prediction"] and saved["history"]["val_ppl"] == ppl
        row = next(line for line in printed.splitlines() if line.startswith(name))
        assert row.split()[1:3] == [cls, "4"] and f"{ppl[-1]:.3f}" in row
        losses = r["history"]["val_loss"]  # the best epoch: the lowest validation loss
        best = min(range(len(losses)), key=losses.__getitem__) + 1
        assert r["best"]["epoch"] == saved["best"]["epoch"] == best
        assert row.split()[6:8] == [str(best), f"{ppl[best - 1]:.3f}"], row
    assert "train ppl" in printed and "best val ppl" in printed and "prediction" in printed


def test_an_output_that_cannot_be_written_stops_before_training(tm_root, tmp_path, capsys):
    (tmp_path / "concise-history.json").mkdir()  # the second model's file: a folder
    with pytest.raises(SystemExit, match=r"error: .*concise-history.json"):
        chapter.main(["--data-root", str(tm_root), "--out", str(tmp_path), *SMALL])
    assert "Train Loss" not in capsys.readouterr().out  # nothing was trained
    assert not (tmp_path / "scratch-history.json").exists()


def test_quick_mode_is_short_and_keeps_the_flags_given(tm_root, tmp_path, one_thread):
    results = chapter.main(["--quick", "--model", "concise", "--data-root", str(tm_root),
                            "--out", str(tmp_path), "--cpu", "--num-preds", "5",
                            "--prefix", "the"])
    r = results["concise"]
    assert r["metrics"]["epochs"] == chapter.QUICK["epochs"]
    assert r["history"]["val_ppl"][-1] < r["history"]["val_ppl"][0]
    assert len(r["prediction"]) == 3 + 5 and r["prediction"].startswith("the")
    args = chapter.parse_args(["--quick", "--epochs", "2"])
    assert (args.epochs, args.batchsize, args.num_steps) == (2, 64, 16)
    book = chapter.parse_args([])
    assert (book.epochs, book.batchsize, book.num_steps, book.num_hiddens, book.lr) == \
        (100, 1024, 32, 32, 1.0)


def test_help_runs_as_a_module(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["chapters/rnn.py", "--help"])
    with pytest.raises(SystemExit) as done:  # the file run as __main__, as python -m does
        runpy.run_path(chapter.__file__, run_name="__main__")
    assert done.value.code == 0
    text = capsys.readouterr().out
    for flag in ("--num-steps", "--quick", "--data-root", "--out", "--prefix", "--clip"):
        assert flag in text


@pytest.mark.parametrize("flags, message", [
    (["--num-steps", "0"], "--num-steps: must be a positive integer, got 0"),
    (["--batchsize", "0"], "--batchsize: must be a positive integer, got 0"),
    (["--clip", "-1"], "--clip: must be a number >= 0"),
    (["--lr", "-1"], "--lr: Descent: lr must be a number in"),
    (["--model", "gru"], "invalid choice: 'gru'"),
])
def test_bad_flags_stop_with_a_message(flags, message, capsys):
    with pytest.raises(SystemExit) as done:
        chapter.main(flags)
    assert done.value.code == 2 and message in capsys.readouterr().err


def test_missing_empty_or_too_short_text_stops_before_training(tmp_path, capsys):
    with pytest.raises(SystemExit, match=r"error: timemachine.txt is not in .* could not be "
                                         r"downloaded from http.*/timemachine.txt"):
        chapter.main(["--data-root", str(tmp_path / "none"), "--out", str(tmp_path / "o")])
    (tmp_path / "timemachine.txt").write_text("")
    with pytest.raises(SystemExit, match="error: .* has 0 characters after preprocessing"):
        chapter.main(["--data-root", str(tmp_path), "--out", str(tmp_path / "o")])
    (tmp_path / "timemachine.txt").write_text("a short text " * 10)
    with pytest.raises(SystemExit, match=r"error: TimeMachine: num_train \+ num_val = 15000 "
                                         r"windows asked"):
        chapter.main(["--data-root", str(tmp_path), "--out", str(tmp_path / "o")])
    assert "Train Loss" not in capsys.readouterr().err


def test_ctrl_c_in_the_first_model_skips_the_second(tm_root, tmp_path, monkeypatch):
    def interrupted(self, batch):
        raise KeyboardInterrupt

    monkeypatch.setattr(chapter.RNNLMScratch, "training_step", interrupted)
    results = chapter.main(["--data-root", str(tm_root), "--out", str(tmp_path), *SMALL])
    assert list(results) == ["scratch"]
    assert results["scratch"]["metrics"]["interrupted"] is True
    assert results["scratch"]["prediction"].startswith("it has")  # what was trained, shown
