"""Nothing silently wrong: a run is identified by what it is made of, a resumed run keeps its
logs and schedules, a sweep's callbacks belong to one run each, and inputs that would give wrong
numbers (labels that are not classes, a pad from the wrong vocabulary, a model that reads what
it predicts, a stray RANK) are refused where they enter, saying what to do."""

import csv
import logging
import math

import numpy as np
import pytest
import torch
from distributed_worker import MLP, Data
from torch import nn
from torch.optim.lr_scheduler import OneCycleLR, ReduceLROnPlateau, StepLR

import d2lai
from d2lai import distributed
from d2lai.callbacks import DataParallel
from d2lai.runs import RunTable, sweep
from d2lai.testing import write_fake_fashion_mnist

pytestmark = pytest.mark.usefixtures("one_thread")


class Wide(d2lai.AbstractClassifier):
    """An MLP on `Data`'s 5 features whose width and dropout a test changes."""

    output_kind = "logits"

    def __init__(self, width: int = 8, dropout: float = 0.0):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(5, width), nn.ReLU(), nn.Dropout(dropout),
                                 nn.Linear(width, 2))


class Killed(BaseException):
    """What kill -9 leaves: the files as they were at that instant, no callback's ending."""


class KillAt(d2lai.Callback):
    """Dies at the end of epoch `epoch`, after the CSV row (60), before the checkpoint (80)."""

    order = 70

    def __init__(self, epoch):
        self.epoch = epoch

    def on_epoch_end(self, trainer, epoch, logs):
        if epoch == self.epoch:
            raise Killed


def trainer(model=None, data=None, **kwargs):
    torch.manual_seed(0)
    kwargs = {"max_epochs": 2, "board": False, "verbose": False, "seed": 0, **kwargs}
    return d2lai.Trainer(model or MLP(), data or Data(), d2lai.Descent(0.1), **kwargs)


def csv_epochs(path):
    with open(path, newline="") as f:
        return [int(row["epoch"]) for row in csv.DictReader(f)]


# --- 1. a run is its content ------------------------------------------------------------------

def test_a_sweep_retrains_a_run_whose_model_callbacks_or_inputs_changed(tmp_path, capsys):
    data = Data()
    runs = {"width": 8, "dropout": 0.0, "patience": 0, "data": data}

    def build(s):
        return {"model": Wide(runs["width"], runs["dropout"]), "data": runs["data"],
                "opt": d2lai.Descent(s["lr"]),
                "callbacks": [d2lai.EarlyStopping(patience=runs["patience"])]}

    def again():
        capsys.readouterr()
        sweep(dict(lr=[0.1]), build, tmp_path, seed=0, board=False, max_epochs=1)
        return capsys.readouterr().out

    again()
    assert "skipping 1 of 1" in again()
    for key, value, said in (("width", 16, "model.parameters was 66, is 130 now"),
                             ("dropout", 0.5, "model.structure was"),
                             ("patience", 5, "callbacks.EarlyStopping.patience was 0, is 5")):
        runs[key] = value
        printed = again()
        assert "training it again" in printed and said in printed, (key, printed)
        assert "skipping 1 of 1" in again()
    scaled = Data()
    scaled.train = (scaled.train[0] * 10, scaled.train[1])  # the same labels, other inputs
    runs["data"] = scaled
    printed = again()
    assert "data.train_inputs was" in printed and "training it again" in printed


# --- 2. and 4. a resumed run keeps its CSV and its schedule -----------------------------------

def test_a_resumed_run_keeps_its_csv_rows_and_drops_those_past_its_checkpoint(tmp_path, caplog):
    log, ckpt = tmp_path / "log.csv", tmp_path / "run.pt"
    trainer(checkpoint=ckpt, callbacks=[d2lai.CSVLogger(log)]).fit()
    trainer(max_epochs=4, checkpoint=ckpt, resume=True, callbacks=[d2lai.CSVLogger(log)]).fit()
    assert csv_epochs(log) == [1, 2, 3, 4]
    # killed between epoch 3's row and its checkpoint: the row of epoch 3 is dropped on resume
    log, ckpt = tmp_path / "killed.csv", tmp_path / "killed.pt"
    with pytest.raises(Killed):
        trainer(max_epochs=4, checkpoint=ckpt, callbacks=[d2lai.CSVLogger(log),
                                                          KillAt(3)]).fit()
    assert csv_epochs(log) == [1, 2, 3]
    with caplog.at_level(logging.INFO, logger="d2lai"):
        trainer(max_epochs=4, checkpoint=ckpt, resume=True,
                callbacks=[d2lai.CSVLogger(log)]).fit()
    assert csv_epochs(log) == [1, 2, 3, 4]
    assert "dropped the row of epoch 3" in caplog.text
    assert "going on with" in caplog.text and "from epoch 3" in caplog.text


def lrs(**kwargs):
    t = trainer(callbacks=[d2lai.LRScheduler(lambda opt: StepLR(opt, 1, 0.5)),
                           *kwargs.pop("callbacks", [])], **kwargs)
    t.fit()
    return t


def test_a_schedule_resumes_where_it_stopped(tmp_path):
    whole = lrs(max_epochs=4)
    assert whole.history["lr"] == pytest.approx([0.1, 0.05, 0.025, 0.0125])
    lrs(checkpoint=tmp_path / "a.pt")
    resumed = lrs(max_epochs=4, checkpoint=tmp_path / "a.pt", resume=True)
    assert resumed.history["lr"] == pytest.approx(whole.history["lr"])
    with pytest.raises(Killed):  # killed after epoch 3's schedule step, before its checkpoint
        lrs(max_epochs=4, checkpoint=tmp_path / "b.pt", callbacks=[KillAt(3)])
    resumed = lrs(max_epochs=4, checkpoint=tmp_path / "b.pt", resume=True)
    assert resumed.history["lr"] == pytest.approx(whole.history["lr"])
    assert torch.equal(resumed.model.net[0].weight, whole.model.net[0].weight)


def test_early_stopping_goes_on_waiting_across_a_kill(tmp_path):
    """The wait, and the best figure so far, come back with the checkpoint."""
    def stop():
        return d2lai.EarlyStopping("val_loss", patience=2, min_delta=10.0)  # never improves

    whole = trainer(max_epochs=6, callbacks=[stop()])
    whole.fit()
    assert whole.epoch == 3
    with pytest.raises(Killed):
        trainer(max_epochs=6, checkpoint=tmp_path / "c.pt", callbacks=[stop(), KillAt(3)]).fit()
    resumed = trainer(max_epochs=6, checkpoint=tmp_path / "c.pt", resume=True,
                      callbacks=[stop()])
    resumed.fit()
    assert resumed.epoch == 3


# --- 3. a sweep's callbacks belong to one run each ---------------------------------------------

def test_a_sweeps_callbacks_are_each_runs_own(tmp_path):
    table = sweep(dict(lr=[0.1, 0.2]), lambda s: (MLP(), Data(), d2lai.Descent(s["lr"])),
                  seed=0, board=False, max_epochs=2,
                  callbacks=[d2lai.LRScheduler(lambda opt: StepLR(opt, 1, 0.5)),
                             d2lai.CSVLogger(tmp_path / "log.csv")])
    assert [m.history["lr"] for m in table.metrics.values()] == [
        pytest.approx([0.1, 0.05]), pytest.approx([0.2, 0.1])]
    for run in ("lr=0.1", "lr=0.2"):
        assert csv_epochs(tmp_path / run / "log.csv") == [1, 2]
    assert not (tmp_path / "log.csv").exists()


# --- 5. and 10. ranks only in a launched run ----------------------------------------------------

def test_a_stray_rank_is_an_error_not_a_silent_rank(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RANK", "1")
    with pytest.raises(ValueError, match=r"RANK=1 but WORLD_SIZE is not set.*torchrun"):
        trainer()
    monkeypatch.setenv("WORLD_SIZE", "1")
    with pytest.raises(ValueError, match=r"RANK=1 .* WORLD_SIZE=1"):
        distributed.is_main_process()
    monkeypatch.setenv("RANK", "0")
    assert distributed.is_main_process() and not distributed.launched()
    monkeypatch.delenv("RANK")
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ValueError, match="WORLD_SIZE=2 but RANK is not set"):
        distributed.launched()


def test_data_parallel_pieces_without_torchrun_say_what_to_run(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    hand_made = trainer(callbacks=[DataParallel()])
    with pytest.raises(ValueError, match=r"torchrun --nproc_per_node=N"):
        hand_made.fit()
    assert hand_made.steps == 0
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    no_master = trainer()
    with pytest.raises(ValueError, match=r"MASTER_ADDR.*torchrun --nproc_per_node=2"):
        no_master.fit()
    assert no_master.steps == 0


# --- 6. and 11. sequence models guard their own meaning --------------------------------------

def test_seq2seq_refuses_a_pad_or_sizes_that_do_not_fit_its_decoder(fra_root):
    enc, dec = d2lai.Seq2SeqEncoder(20, 8, 16, 1), d2lai.Seq2SeqDecoder(12, 8, 16, 1)
    with pytest.raises(ValueError, match=r"tgt_pad=15 .* target vocabulary of 12"):
        d2lai.Seq2Seq(enc, dec, tgt_pad=15)
    with pytest.raises(ValueError, match=r"encoder .* 16 .* decoder .* 24"):
        d2lai.Seq2Seq(enc, d2lai.Seq2SeqDecoder(12, 8, 24, 1), tgt_pad=0)
    with pytest.raises(ValueError, match=r"encoder .* 1 layer.* decoder .* 2"):
        d2lai.Seq2Seq(enc, d2lai.Seq2SeqDecoder(12, 8, 16, 2), tgt_pad=0)
    data = d2lai.MTFraEng(batchsize=32, num_train=64, num_val=32, root=fra_root)
    src_pad, tgt_pad = data.src_vocab["<pad>"], data.tgt_vocab["<pad>"]
    wrong = src_pad if src_pad != tgt_pad else data.tgt_vocab["<eos>"]
    V_src, V_tgt = len(data.src_vocab), len(data.tgt_vocab)
    model = d2lai.Seq2Seq(d2lai.Seq2SeqEncoder(V_src, 8, 16, 1),
                          d2lai.Seq2SeqDecoder(V_tgt, 8, 16, 1), tgt_pad=wrong)
    t = d2lai.Trainer(model, data, d2lai.Adam(0.01), max_epochs=1, board=False, verbose=False)
    with pytest.raises(ValueError, match=rf"tgt_pad={wrong} .* '<pad>' is {tgt_pad}"):
        t.fit()
    assert t.steps == 0


def test_a_bidirectional_rnn_is_refused_under_a_language_model(tm_root):
    data = d2lai.TimeMachine(batchsize=16, num_steps=8, num_train=64, num_val=32, root=tm_root)
    V = len(data.vocab)
    model = d2lai.RNNModelConcise(nn.GRU(V, 8, bidirectional=True), V)
    assert model(data.train[0][:2]).shape == (2, 8, V)  # built and run, as the book shows it
    t = d2lai.Trainer(model, data, d2lai.Descent(1.0), max_epochs=1, board=False,
                      verbose=False)
    with pytest.raises(ValueError, match="bidirectional.*reads the token it is to predict"):
        t.fit()
    assert t.steps == 0


# --- 7. labels that are not class indices -----------------------------------------------------

def test_labels_that_are_not_class_indices_are_refused():
    model = MLP()
    y_hat = torch.randn(2, 2)
    with pytest.raises(ValueError, match=r"labels must be class indices.*0.7"):
        model.loss(y_hat, torch.tensor([0.7, 1.9]))
    with pytest.raises(ValueError, match=r"labels must be class indices"):
        model.accuracy(y_hat, torch.tensor([0.7, 1.9]))
    assert float(model.loss(y_hat, torch.tensor([0.0, 1.0]))) == pytest.approx(
        float(nn.functional.cross_entropy(y_hat, torch.tensor([0, 1]))))
    one_hot = torch.eye(2)[torch.tensor([0, 1])]
    with pytest.raises(ValueError, match=r"one-hot labels: pass class indices "
                                         r"\(labels.argmax\(1\)\)"):
        model.loss(y_hat, one_hot)
    data = Data()
    data.train = (data.train[0], torch.eye(2)[data.train[1]])
    t = trainer(data=data)
    with pytest.raises(ValueError, match=r"one-hot labels: pass class indices"):
        t.fit()
    assert t.steps == 0


# --- 8. smaller ---------------------------------------------------------------------------------

def test_a_head_attribute_set_after_the_class_is_honoured_with_a_warning():
    class Soft(d2lai.AbstractClassifier):
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(nn.Linear(5, 2), nn.Softmax(dim=1))

    Soft.head = "logits"
    model, X, y = Soft(), torch.randn(4, 5), torch.tensor([0, 1, 1, 0])
    with pytest.warns(DeprecationWarning, match="`head` is now called `output_kind`"):
        loss = model.loss(model(X), y)
    assert loss.item() == pytest.approx(nn.functional.cross_entropy(model(X), y).item())


def test_board_yscale_is_checked_without_a_board():
    with pytest.raises(ValueError, match="board_yscale"):
        trainer(board_yscale="lgo")


def test_a_damaged_file_replaced_in_the_same_process_is_warned_again(tmp_path, caplog):
    from d2lai.data.download import download

    url, sha1 = "https://example.invalid/file.txt", "0" * 40
    for text in ("first damaged copy", "second damaged copy"):
        (tmp_path / "file.txt").write_text(text)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="d2lai"):
            download(url, sha1, tmp_path)
            download(url, sha1, tmp_path)  # the same content: said once
        assert caplog.text.count("is not the book's file") == 1, text


def test_a_csv_table_reads_back_as_written_or_is_refused(tmp_path):
    ok = RunTable([{"run": "a", "epoch": 1, "flag": True, "name": "007", "lr": 0.1},
                   {"run": "b", "epoch": 1, "flag": False, "name": "x", "lr": None}])
    ok.to_csv(tmp_path / "ok.csv")
    assert RunTable.from_csv(tmp_path / "ok.csv").records == ok.records
    for value in ("True", "", "12"):
        with pytest.raises(ValueError, match=rf"setting 'note' holds the text {value!r}"):
            RunTable([{"run": "a", "note": value}]).to_csv(tmp_path / "bad.csv")
    assert not (tmp_path / "bad.csv").exists()
    with pytest.raises(ValueError, match="holds the text 'True'"):
        sweep(dict(note=["True", "False"]), lambda s: (MLP(), Data(), d2lai.Descent(0.1)),
              tmp_path / "sweep", max_epochs=1, board=False)


# --- 9. evaluate's argument --------------------------------------------------------------------

@pytest.mark.parametrize("bad, said", [
    ("tuple", r"a tuple of 2 tensors.*TensorLoader\(data.val"),
    (42, "got int"),
    ([], "no batches")])
def test_evaluate_checks_its_argument(bad, said):
    t = trainer()
    bad = t.data.val if bad == "tuple" else bad
    with pytest.raises((TypeError, ValueError), match=said):
        t.evaluate(bad)
    assert set(t.evaluate(d2lai.TensorLoader(t.data.val, 16))) == {"val_loss", "val_acc"}


# --- 12. disk, plots, numpy seeds ---------------------------------------------------------------

def test_a_full_disk_while_unpacking_is_said_as_such(tmp_path, monkeypatch):
    import errno
    import shutil

    write_fake_fashion_mnist(tmp_path, 64, 32, gz=True)

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(shutil, "copyfileobj", full)
    with pytest.raises(OSError, match=r"no space left .*unpacking .*gz.*free some space"):
        d2lai.FashionMNISTData(batchsize=16, root=tmp_path)
    assert not [p for p in (tmp_path / "FashionMNIST" / "raw").iterdir()
                if not p.name.endswith(".gz")]


def test_plot_inputs_are_checked_before_matplotlib():
    from d2lai import torch as d2l

    with pytest.raises(ValueError, match="too large"):
        d2l.plot([1, 2], [1, 10**400])
    with pytest.raises(ValueError, match="no finite value"):
        d2l.plot([1, 2], [math.nan, math.nan])
    board = d2lai.ProgressBoard("epoch")
    with pytest.raises(ValueError, match="too large"):
        board.draw(1, 10**400, "loss")


def test_a_numpy_integer_seed_is_a_seed():
    assert trainer(seed=np.int64(3)).seed == 3
    d2lai.seed(np.int64(0))
    a = torch.rand(2)
    d2lai.seed(0)
    assert torch.equal(a, torch.rand(2))


# --- 13. schedules checked at fit start -------------------------------------------------------

def test_a_scheduler_monitor_or_length_that_cannot_work_is_refused_at_fit_start():
    plateau = trainer(callbacks=[d2lai.LRScheduler(lambda o: ReduceLROnPlateau(o),
                                                   monitor="val_los")])
    with pytest.raises(ValueError, match="monitor='val_los' is not among"):
        plateau.fit()
    assert plateau.steps == 0
    short = trainer(callbacks=[d2lai.LRScheduler(
        lambda o: OneCycleLR(o, max_lr=0.5, total_steps=5), "step")])
    with pytest.raises(ValueError, match=r"total_steps=5.*14 steps"):
        short.fit()
    assert short.steps == 0
    trainer(callbacks=[d2lai.LRScheduler(lambda o: OneCycleLR(o, max_lr=0.5, total_steps=14),
                                         "step")]).fit()


def test_a_seeded_run_resumed_without_its_seed_goes_on_as_it_would_have(tmp_path):
    """The checkpoint's seed is the run's: the orders of the epochs after the resume are
    drawn from it, as in the uninterrupted run."""
    whole = trainer(max_epochs=4)
    whole.fit()
    trainer(checkpoint=tmp_path / "s.pt").fit()
    resumed = trainer(max_epochs=4, checkpoint=tmp_path / "s.pt", resume=True, seed=None)
    resumed.fit()
    assert resumed.seed == 0
    assert torch.equal(resumed.model.net[0].weight, whole.model.net[0].weight)
