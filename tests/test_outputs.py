"""One output file, one owner; every path a run writes checked before its first batch; a write
that fails later warns, keeps what it can, and the run still returns what it trained."""

import errno
import logging

import pytest
from conftest import TinyClassifier, fail_torch_save

import chapters.batch_norm as chapter
import chapters.cli as cli
import d2lai
from chapters import batch_norm_exercises as ex
from d2lai.files import claim, write_whole
from d2lai.runs import RunTable, sweep

pytestmark = pytest.mark.usefixtures("one_thread")
QUICK = ["--cpu", "--epochs", "1", "--num-train", "96", "--num-val", "32", "--batchsize", "32"]


def _trainer(data, **kwargs):
    kwargs.setdefault("verbose", False)
    kwargs.setdefault("board", False)
    return d2lai.Trainer(TinyClassifier(), data, d2lai.Descent(0.1), **kwargs)


# --- one owner --------------------------------------------------------------------------------

def test_a_checkpoint_in_use_by_a_running_fit_is_refused(tiny_data, tmp_path):
    path, refused = tmp_path / "run.pt", []

    class SecondFit(d2lai.Callback):  # another run on the same file, while the first runs
        def on_epoch_end(self, trainer, epoch, logs):
            for resume in (False, True):
                with pytest.raises(RuntimeError, match=rf"checkpoint {path} is in use by "
                                                       r"another fit"):
                    _trainer(tiny_data, max_epochs=2, checkpoint=path, resume=resume).fit()
                refused.append(resume)

    _, metrics = _trainer(tiny_data, max_epochs=1, checkpoint=path,
                          callbacks=[SecondFit()]).fit()
    assert refused == [False, True] and metrics.epochs == 1
    _, metrics = _trainer(tiny_data, max_epochs=2, checkpoint=path, resume=True).fit()
    assert metrics.epochs == 2  # free again once the first fit is over


def test_a_fit_refused_at_its_start_leaves_the_file_free(tiny_data, tmp_path):
    path = tmp_path / "run.pt"
    _trainer(tiny_data, max_epochs=1, checkpoint=path).fit()
    with pytest.raises(FileExistsError):  # a new run on another run's file
        _trainer(tiny_data, max_epochs=1, checkpoint=path).fit()
    _, metrics = _trainer(tiny_data, max_epochs=2, checkpoint=path, resume=True).fit()
    assert metrics.epochs == 2


def test_a_sweep_folder_in_use_by_a_running_sweep_is_refused(tiny_data, tmp_path):
    refused, tmp_path = [], tmp_path / "new"  # a folder the first sweep makes

    class SecondSweep(d2lai.Callback):
        def on_fit_start(self, trainer):
            with pytest.raises(RuntimeError, match=rf"out {tmp_path} is in use by another "
                                                   r"sweep"):
                sweep(dict(lr=[0.3]), lambda s: (TinyClassifier(), tiny_data,
                                                 d2lai.Descent(s["lr"])), tmp_path, board=False)
            refused.append(True)

    table = sweep(dict(lr=[0.1]), lambda s: (TinyClassifier(), tiny_data,
                                             d2lai.Descent(s["lr"])), tmp_path, board=False,
                  max_epochs=1, callbacks=[SecondSweep()])
    assert refused == [True] and table.runs() == ["lr=0.1"]
    again = sweep(dict(lr=[0.3]), lambda s: (TinyClassifier(), tiny_data,
                                             d2lai.Descent(s["lr"])), tmp_path, board=False,
                  max_epochs=1)
    assert again.runs() == ["lr=0.1", "lr=0.3"]


def test_a_folder_has_one_lock_whether_or_not_it_exists_yet(tmp_path):
    out = tmp_path / "new"
    lock = claim(out, "out", "sweep", folder=True)
    assert out.is_dir()  # made, with its lock inside: a second claim finds the same lock
    with pytest.raises(RuntimeError, match=rf"out {out} is in use by another sweep"):
        claim(out, "out", "sweep", folder=True)
    lock.release()
    claim(out, "out", "sweep", folder=True).release()


def test_temporary_files_have_unique_names_and_go_when_a_write_fails(tmp_path):
    path, seen = tmp_path / "table.json", []
    path.write_text("old")

    def failing(tmp):
        seen.append(tmp)
        tmp.write_text("half")
        raise OSError(errno.ENOSPC, "No space left on device")

    for _ in range(2):
        with pytest.raises(OSError, match="No space left"):
            write_whole(path, failing)
    assert seen[0] != seen[1] and all(t.parent == tmp_path for t in seen)
    assert path.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == \
        ["table.json"]
    write_whole(path, lambda tmp: (seen.append(tmp), tmp.write_text("new")))
    assert path.read_text() == "new" and not seen[2].exists()


# --- every output checked before the first batch ------------------------------------------

@pytest.fixture
def no_training(monkeypatch):
    def refuse(self):
        raise AssertionError("trained before the outputs were checked")

    monkeypatch.setattr(d2lai.Trainer, "fit", refuse)


@pytest.mark.parametrize("folder", ["scratch-history.json", "concise-board.png",
                                    "concise-history.json"])
def test_the_chapter_checks_every_output_before_training(fashion_root, tmp_path, folder,
                                                         no_training):
    (tmp_path / folder).mkdir()
    with pytest.raises(SystemExit, match=rf"error: .*{folder}.* is a folder"):
        chapter.main(["--data-root", str(fashion_root), "--out", str(tmp_path), *QUICK])


@pytest.mark.parametrize("name, folder", [
    ("bias", "bias.json"), ("bias", "bias.png"), ("lr-sweep", "lr-sweep-accuracy.png"),
    ("bias", "bias-boards/no-bias-before-bn-lr0.1.png"), ("bias", "bias/runs.csv"),
])
def test_the_exercises_check_every_output_before_training(fashion_root, tmp_path, name, folder,
                                                          no_training):
    (tmp_path / folder).mkdir(parents=True)
    with pytest.raises(SystemExit, match=rf"error: .*{folder}.* is a folder"):
        ex.main([name, "--data-root", str(fashion_root), "--out", str(tmp_path), *QUICK])


def test_a_sweep_checks_its_tables_before_training(tiny_data, tmp_path, no_training):
    (tmp_path / "runs.csv").mkdir()
    with pytest.raises(IsADirectoryError, match="runs.csv is a folder"):
        sweep(dict(lr=[0.1]), lambda s: (TinyClassifier(), tiny_data, d2lai.Descent(0.1)),
              tmp_path)


# --- a write that fails later -------------------------------------------------------------

@pytest.mark.parametrize("error", [
    RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 64 vs 0"),
    OSError(errno.ENOSPC, "No space left on device"),
])
def test_a_full_disk_at_a_checkpoint_warns_and_the_fit_returns(tiny_data, tmp_path, monkeypatch,
                                                              caplog, error):
    path = tmp_path / "run.pt"
    _trainer(tiny_data, max_epochs=1, checkpoint=path).fit()
    good = path.read_bytes()
    fail_torch_save(monkeypatch, error, keep_bytes=64)
    with caplog.at_level(logging.WARNING, logger="d2lai"):
        model, metrics = _trainer(tiny_data, max_epochs=3, checkpoint=path, resume=True).fit()
    assert metrics.epochs == 3 and len(metrics.history["val_acc"]) == 3
    assert isinstance(model, TinyClassifier)
    assert f"could not save checkpoint {path} after epoch 2" in caplog.text
    assert "it still holds epoch 1" in caplog.text
    assert path.read_bytes() == good  # the last whole checkpoint, no temporary file beside
    assert {p.name for p in tmp_path.iterdir()} == {"run.pt", ".run.pt.lock"}


def test_a_sweep_whose_table_cannot_be_written_warns_and_goes_on(tiny_data, tmp_path,
                                                                 monkeypatch, capsys):
    def full(self, path):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(RunTable, "to_csv", full)
    table = sweep(dict(lr=[0.1, 0.5]), lambda s: (TinyClassifier(), tiny_data,
                                                  d2lai.Descent(s["lr"])), tmp_path,
                  board=False, max_epochs=1)
    assert table.runs() == ["lr=0.1", "lr=0.5"]
    printed = capsys.readouterr().out
    assert f"could not write {tmp_path / 'runs.csv'}" in printed and "No space left" in printed
    assert RunTable.from_json(tmp_path / "runs.json").records == table.records  # kept


def test_the_exercises_keep_what_they_can_when_a_write_fails(fashion_root, tmp_path,
                                                             monkeypatch, capsys):
    def full(path, value):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ex, "write_json", full)
    rows = ex.main(["bias", "--data-root", str(fashion_root), "--out", str(tmp_path), *QUICK])
    assert len(rows) == 2
    printed = capsys.readouterr().out
    assert f"could not write {tmp_path / 'bias.json'}" in printed
    assert (tmp_path / "bias.png").is_file()  # the plots are still written


def test_the_chapter_keeps_training_when_a_history_cannot_be_written(fashion_root, tmp_path,
                                                                   monkeypatch, capsys):
    def full(path, value):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(cli, "write_json", full)  # the chapters write through chapters.cli
    results = chapter.main(["--data-root", str(fashion_root), "--out", str(tmp_path), *QUICK])
    assert list(results) == ["scratch", "concise"]  # the second model trained all the same
    assert f"could not write {tmp_path / 'scratch-history.json'}" in capsys.readouterr().out
