"""What a reader sees in a terminal: programs run on a real pseudo-terminal, screens read back.

The epoch lines, notes and the no-CUDA line never land on a live bar; one line an epoch stays;
Ctrl-C typed at the terminal stops after saving, with exit status 130; a redirected run keeps
its whole story; --log copies it to a file.
"""

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from terminal import run_in_terminal, screen

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "TERM": "xterm"}
EPOCH = re.compile(r"^\[ Info: Epoch (\d+)/(\d+) · \d+\.\d s · Train Loss: \d\.\d{4}, "
                   r"Train Acc: \d\.\d{4}, Val Loss: \d\.\d{4}, Val Acc: \d\.\d{4}$")

SCRIPT = """
import logging, sys, time
sys.path.insert(0, "tests")
import d2lai
from conftest import TinyClassifier

class Slow(d2lai.Callback):
    def on_train_batch_end(self, trainer, batch, loss):
        time.sleep(0.02)  # slow enough for the bar to be drawn
        if trainer.steps % 38 == 19:  # in the middle of each epoch, while its bar is live
            logging.getLogger("d2lai").info("a note in the middle of epoch %d", trainer.epoch + 1)

data = d2lai.FashionMNISTData(batchsize=16, root=sys.argv[1])
trainer = d2lai.Trainer(TinyClassifier(), data, d2lai.Descent(0.1), max_epochs=3, gpu=True,
                        callbacks=[Slow()])
d2lai.fit(trainer)
"""


def test_the_screen_model_replays_what_tqdm_does():
    raw = b"one\r\nEpoch 1/2:  10%|#   |\r\x1b[K[ Info: a note\r\nEpoch 1/2:  20%|##  |\r"
    assert screen(raw, 40) == ["one", "[ Info: a note", "Epoch 1/2:  20%|##  |"]
    assert screen(b"0123456789AB\r\n", 10) == ["0123456789", "AB"]  # autowrap
    assert screen(b"abc\r\ndef\x1b[A\rX\x1b[K", 10) == ["X", "def"]  # cursor up, erase


def test_lines_never_land_on_a_live_bar_and_one_line_an_epoch_stays(fashion_root):
    session = run_in_terminal([sys.executable, "-c", SCRIPT, str(fashion_root)], cols=140,
                              cwd=ROOT, env=ENV)
    text = "\n".join(session.lines)
    assert session.status == 0, text
    assert b"%|" in session.raw and b"batch/s" in session.raw  # bars were drawn while training
    assert all(line.startswith("[ Info: ") for line in session.lines), text  # no fragment
    epochs = [line for line in session.lines if EPOCH.match(line)]
    assert [EPOCH.match(line).groups() for line in epochs] == [("1", "3"), ("2", "3"),
                                                              ("3", "3")], text
    notes = [line for line in session.lines if "a note in the middle" in line]
    assert notes == [f"[ Info: a note in the middle of epoch {e}" for e in (1, 2, 3)], text
    assert session.lines[-1].startswith("[ Info: Best Val Acc at epoch ")
    if not torch.cuda.is_available():  # one info line, once, no warning and no source line
        cuda = [line for line in session.lines if "CUDA" in line]
        assert cuda == ["[ Info: no CUDA device: training on the CPU (gpu=True asks for a GPU "
                        "when there is one)"]
    assert "Warning" not in text and "d2lai.fit(trainer)" not in text


def _chapter(fashion_root, out, *flags):
    return [sys.executable, "-m", "chapters.batch_norm", "--data-root", str(fashion_root),
            "--num-train", "600", "--num-val", "100", "--model", "scratch", "--cpu",
            "--out", str(out), *flags]


def test_ctrl_c_at_the_terminal_saves_what_was_trained_and_exits_130(fashion_root, tmp_path):
    out = tmp_path / "out"
    session = run_in_terminal(_chapter(fashion_root, out, "--epochs", "200"), cwd=ROOT,
                              env=ENV, ctrl_c_after="Epoch 2/200")
    text = "\n".join(session.lines)
    assert session.status == 130, text
    # the terminal echoes ^C where the cursor is: at the far end of the line the bar left
    assert re.search(r"^\[ Warning: interrupted at epoch \d+( +\^C)?$", text, re.M), text
    assert "Traceback" not in text
    assert "%|" not in text
    saved = json.loads((out / "scratch-history.json").read_text())
    assert saved["metrics"]["interrupted"] and saved["metrics"]["epochs"] >= 1
    with open(out / "summary.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["model"] for r in rows] == ["BLeNetScratch"]
    assert int(rows[0]["epochs"]) == saved["metrics"]["epochs"]
    assert (out / "scratch-board.png").stat().st_size > 0
    assert re.search(r"^BLeNetScratch +\d+ ", text, re.M)  # the table was printed


def test_a_redirected_run_keeps_its_whole_story_in_order(fashion_root, tmp_path):
    out, log = tmp_path / "out", tmp_path / "logs" / "run.log"
    with open(tmp_path / "stdout.txt", "w") as f:
        done = subprocess.run(_chapter(fashion_root, out, "--epochs", "2", "--log", str(log)),
                              cwd=ROOT, env=ENV, stdout=f, stderr=subprocess.PIPE, text=True,
                              timeout=300)
    story = (tmp_path / "stdout.txt").read_text()
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # no bar (not a terminal), no warning
    lines = story.splitlines()
    header = next(i for i, x in enumerate(lines) if x.startswith("BLeNetScratch: "))
    epochs = [i for i, x in enumerate(lines) if EPOCH.match(x)]
    best = next(i for i, x in enumerate(lines) if x.startswith("[ Info: Best Val Acc"))
    table = next(i for i, x in enumerate(lines) if x.startswith("model "))
    assert header < epochs[0] < epochs[1] < best < table and len(epochs) == 2, story
    assert "best epoch" in lines[table] and "best val acc" in lines[table]
    assert log.read_text() == story  # --log: the same story in the file


def test_log_under_a_terminal_copies_the_story_without_the_bars(fashion_root, tmp_path):
    log = tmp_path / "run.log"
    session = run_in_terminal(_chapter(fashion_root, tmp_path / "out", "--epochs", "2",
                                       "--log", str(log)), cwd=ROOT, env=ENV)
    assert session.status == 0, "\n".join(session.lines)
    saved = log.read_text()
    assert "\r" not in saved and "%|" not in saved and "\x1b" not in saved
    kept = [line for line in saved.splitlines() if EPOCH.match(line)]
    assert len(kept) == 2 and all(line in session.lines for line in kept)


def test_a_log_file_that_cannot_be_written_is_refused_before_training(fashion_root, tmp_path):
    (tmp_path / "file").write_text("x")
    done = subprocess.run(_chapter(fashion_root, tmp_path / "out", "--epochs", "1", "--log",
                                   str(tmp_path / "file" / "run.log")),
                          cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "error: cannot write --log" in done.stderr and "Epoch" not in done.stdout


# --- help, data root, errors ----------------------------------------------------------------

def _help(capsys, parse, argv) -> str:
    with pytest.raises(SystemExit) as done:
        parse(argv)
    assert done.value.code == 0
    return " ".join(capsys.readouterr().out.split())  # wrapping depends on the terminal


def test_help_shows_the_defaults_and_says_what_model_is(capsys):
    from chapters import batch_norm, batch_norm_exercises
    from examples import deep_cnn, two_networks

    text = _help(capsys, batch_norm.parse_args, ["--help"])
    for flag in ("--epochs EPOCHS epochs to train (default: 10)",
                 "--batchsize BATCHSIZE samples a batch (default: 128)",
                 "--lr LR learning rate of Descent (default: 0.1)", "--out OUT folder for "
                 "plots and tables (default: out)", "--log FILE also write",
                 "--model {scratch,concise,both} which LeNet to train"):
        assert flag in text, text
    assert "(default: both)" in text and "(default: None)" not in text
    text = _help(capsys, batch_norm_exercises.parse_args, ["lr-sweep", "--help"])
    assert "(default: 10)" in text and "0.1 0.5 2 5 10 20 50" in text
    assert "--seed SEED seed for repeatable runs (default: 0)" in text
    assert "--steps STEPS batches to train each variant on (default 800)" in \
        _help(capsys, deep_cnn.parse_args, ["--help"])
    assert "--epochs EPOCHS epochs to train (default: 20)" in \
        _help(capsys, two_networks.parse_args, ["--help"])


def _args(root, **flags):
    import argparse

    return argparse.Namespace(**{"dataset": "fashion-mnist", "batchsize": 64, "data_root": root,
                                 "num_train": None, "num_val": None, "out": "out", **flags})


def test_data_root_at_the_raw_folder_or_the_data_sets_folder_is_taken_as_meant(
        fashion_root, caplog, monkeypatch, tmp_path):
    import logging

    from chapters.cli import load_data

    monkeypatch.chdir(tmp_path)
    caplog.set_level(logging.INFO, logger="d2lai")
    for given in (fashion_root / "FashionMNIST" / "raw", fashion_root / "FashionMNIST",
                  fashion_root):
        data = load_data(_args(str(given)))
        assert data.root == fashion_root and len(data.train[0]) == 600
    said = [r.getMessage() for r in caplog.records if "--data-root" in r.getMessage()]
    assert said == [f"--data-root {fashion_root / 'FashionMNIST' / 'raw'} is the data set's own "
                    f"folder: reading it from --data-root {fashion_root}",
                    f"--data-root {fashion_root / 'FashionMNIST'} is the data set's own "
                    f"folder: reading it from --data-root {fashion_root}"]


def test_data_errors_speak_of_data_root_to_cli_users(fashion_root, tmp_path, monkeypatch):
    import shutil

    from chapters.cli import load_data

    monkeypatch.chdir(tmp_path)
    def offline(*args, **kwargs):
        raise RuntimeError("offline")

    monkeypatch.setattr("torchvision.datasets.utils.download_url", offline)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SystemExit) as done:
        load_data(_args(str(empty)))
    assert "--data-root" in str(done.value) and "root=" not in str(done.value)
    assert str(empty / "FashionMNIST" / "raw") in str(done.value)
    loose = tmp_path / "downloads"  # the four files, but not in FashionMNIST/raw/
    shutil.copytree(fashion_root / "FashionMNIST" / "raw", loose)
    with pytest.raises(SystemExit) as done:
        load_data(_args(str(loose)))
    assert str(done.value) == (f"error: --data-root {loose} holds the data set's files itself; "
                               f"--data-root is the folder above FashionMNIST/raw/: move the "
                               f"four files to {loose / 'FashionMNIST' / 'raw'}/ and pass "
                               f"--data-root {loose}")
