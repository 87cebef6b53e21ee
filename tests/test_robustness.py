"""Failing well: divergence, Ctrl-C, checkpoints, bad files, bad tensors, repeatable runs."""

import copy
import logging

import pytest
import torch
from conftest import FailAt, TinyClassifier, fail_torch_save

import d2lai
from chapters.batch_norm import BLeNetScratch
from d2lai.data import AbstractData
from d2lai.testing import write_fake_fashion_mnist, write_idx


def _trainer(data, model, **kwargs):
    kwargs.setdefault("verbose", False)
    kwargs.setdefault("max_epochs", 3)
    return d2lai.Trainer(model, data, d2lai.Descent(0.1), **kwargs)


def test_divergence_stops_the_run_and_keeps_what_was_trained(tiny_data, caplog, tmp_path):
    model = FailAt(2, 3)
    trainer = _trainer(tiny_data, model, board_path=tmp_path / "b.png")
    weights = []
    original = model.training_step

    def remember(batch):  # the weights as they were before each batch
        weights.append({k: v.detach().clone() for k, v in model.named_parameters()})
        return original(batch)

    model.training_step = remember
    with caplog.at_level(logging.WARNING, logger="d2lai"):
        model, metrics = d2lai.fit(trainer)
    assert "diverged at epoch 2, batch 3 (loss=nan)" in caplog.text
    assert metrics.diverged and not metrics.interrupted and metrics.epochs == 1
    assert len(trainer.history["train_loss"]) == 1
    assert metrics.val_acc == trainer.history["val_acc"][0]
    after_epoch_1 = weights[10]  # epoch 1 trained, as its figures say
    assert all(torch.equal(v, after_epoch_1[k]) for k, v in model.named_parameters())
    assert (tmp_path / "b.png").stat().st_size > 0  # what it had was drawn


def test_a_huge_learning_rate_diverges_without_an_exception(tiny_data):
    # A softmax net's loss is capped at -log(eps) (lr=1e6 only gets stuck near 14),
    # so it takes weights that overflow float32 to make it NaN.
    d2lai.seed(0)
    trainer = d2lai.Trainer(BLeNetScratch(), tiny_data, d2lai.Descent(3e38), max_epochs=3,
                            verbose=False)
    _, metrics = trainer.fit()
    assert metrics.diverged and metrics.epochs < 3


def test_divergence_can_raise(tiny_data):
    with pytest.raises(FloatingPointError, match="diverged at epoch 1, batch 2"):
        _trainer(tiny_data, FailAt(1, 2), on_diverge="raise").fit()


def test_ctrl_c_returns_what_was_trained(tiny_data, caplog, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    trainer = _trainer(tiny_data, FailAt(2, 5, KeyboardInterrupt()), verbose=True,
                       board_path=tmp_path / "out" / "board.png")
    with caplog.at_level(logging.INFO, logger="d2lai"):
        model, metrics = trainer.fit()
    assert "interrupted at epoch 2" in caplog.text
    assert metrics.interrupted and not metrics.diverged and metrics.epochs == 1
    assert next(model.parameters()).device.type == "cpu"
    assert (tmp_path / "out" / "board.png").stat().st_size > 0  # what it had was drawn


def test_no_picture_is_written_unless_asked(tiny_data, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _trainer(tiny_data, TinyClassifier(), max_epochs=1, verbose=True).fit()
    assert list(tmp_path.iterdir()) == []


def test_checkpoint_resume_gives_the_uninterrupted_result(tiny_data, tmp_path):
    def run(model, **kwargs):
        return _trainer(tiny_data, model, max_epochs=4, seed=0, **kwargs)

    d2lai.seed(7)
    straight = TinyClassifier()
    d2lai.seed(7)
    crashed = FailAt(3, 4, RuntimeError("power cut"))
    ckpt = tmp_path / "run.pt"
    with pytest.raises(RuntimeError, match="power cut"):
        run(crashed, checkpoint=ckpt).fit()
    state = torch.load(ckpt, weights_only=True)
    assert state["epoch"] == 2 and len(state["history"]["val_acc"]) == 2
    assert not (tmp_path / "run.pt.tmp").exists()
    d2lai.seed(123)  # whatever happens in between, the checkpoint's RNG state is restored
    resumed_model = TinyClassifier()
    resumed = run(resumed_model, checkpoint=ckpt, resume=True)
    model, metrics = resumed.fit()
    reference = run(straight)
    ref_model, ref_metrics = reference.fit()
    assert metrics.epochs == 4 and resumed.history == reference.history
    for (k, v), (_, w) in zip(model.state_dict().items(), ref_model.state_dict().items(),
                              strict=True):
        assert torch.equal(v, w), k


def test_resume_without_a_checkpoint_starts_fresh(tiny_data, tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="d2lai"):
        _, metrics = _trainer(tiny_data, TinyClassifier(), max_epochs=1,
                              checkpoint=tmp_path / "new.pt", resume=True).fit()
    assert metrics.epochs == 1 and (tmp_path / "new.pt").exists()
    assert "no checkpoint" in caplog.text


def test_a_crash_while_writing_leaves_the_last_checkpoint_whole(tiny_data, tmp_path,
                                                                monkeypatch):
    ckpt = tmp_path / "run.pt"
    _trainer(tiny_data, TinyClassifier(), max_epochs=1, checkpoint=ckpt).fit()
    good = ckpt.read_bytes()
    fail_torch_save(monkeypatch, OSError("disk full"), keep_bytes=100)
    _, metrics = _trainer(tiny_data, TinyClassifier(), max_epochs=2, checkpoint=ckpt,
                          resume=True).fit()  # warns, and returns what it trained
    assert metrics.epochs == 2 and ckpt.read_bytes() == good
    assert torch.load(ckpt, weights_only=True)["epoch"] == 1


def test_two_seeded_runs_are_identical(tiny_data):
    def run():
        d2lai.seed(0)
        return _trainer(tiny_data, BLeNetScratch(), max_epochs=2).fit()[1]

    a, b = run(), run()
    assert a == b
    trainers = [_trainer(tiny_data, TinyClassifier(), max_epochs=2, seed=5) for _ in range(2)]
    start = copy.deepcopy(trainers[0].model.state_dict())
    for t in trainers:
        t.model.load_state_dict(start)
        t.fit()
    assert trainers[0].history == trainers[1].history


@pytest.fixture
def raw(tmp_path):
    return write_fake_fashion_mnist(tmp_path, num_train=50, num_val=20)


def test_truncated_idx_file_is_named(raw, tmp_path):
    path = raw / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(ValueError, match="truncated or corrupt") as err:
        d2lai.FashionMNISTData(root=tmp_path)
    assert str(path) in str(err.value) and "50 items" in str(err.value)


def test_wrong_or_tiny_file_is_named(raw, tmp_path):
    (raw / "t10k-labels-idx1-ubyte").write_bytes(b"\x00\x00")
    with pytest.raises(ValueError, match="t10k-labels-idx1-ubyte is truncated or corrupt"):
        d2lai.FashionMNISTData(root=tmp_path)
    write_idx(raw / "t10k-labels-idx1-ubyte", torch.zeros(20, 28, 28, dtype=torch.uint8).numpy())
    with pytest.raises(ValueError, match="t10k-labels-idx1-ubyte is corrupt or not the right"):
        d2lai.FashionMNISTData(root=tmp_path)


def test_image_and_label_counts_must_agree(raw, tmp_path):
    write_idx(raw / "train-labels-idx1-ubyte", torch.zeros(49, dtype=torch.uint8).numpy())
    with pytest.raises(ValueError, match="holds 50 images but .* holds 49 labels"):
        d2lai.FashionMNISTData(root=tmp_path)


def test_labels_out_of_range_in_a_file(raw, tmp_path):
    write_idx(raw / "train-labels-idx1-ubyte", torch.full((50,), 12, dtype=torch.uint8).numpy())
    with pytest.raises(ValueError, match="labels must lie in 0..9, found 12..12"):
        d2lai.FashionMNISTData(root=tmp_path)


def test_root_that_is_a_file(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError, match="is a file"):
        d2lai.FashionMNISTData(root=tmp_path / "file")


def test_root_not_writable_for_the_download(tmp_path, monkeypatch):
    monkeypatch.setattr("d2lai.data.vision._writable", lambda folder: False)
    with pytest.raises(PermissionError, match="not writable") as err:
        d2lai.FashionMNISTData(root=tmp_path / "ro")
    assert str(tmp_path / "ro" / "FashionMNIST" / "raw") in str(err.value)


class Tensors(AbstractData):
    def __init__(self, X, y, batchsize=16, num_classes=None):
        self.train = self.val = (X, y)
        self.batchsize = batchsize
        if num_classes is not None:
            self.num_classes = num_classes


def test_output_size_must_match_the_classes(tiny_data):
    with pytest.raises(ValueError, match="expected the model to output 10 class .* got 5"):
        _trainer(tiny_data, BLeNetScratch(num_classes=5)).fit()


def test_labels_out_of_range_at_the_first_batch():
    data = Tensors(torch.rand(32, 1, 28, 28), torch.full((32,), 11))
    with pytest.raises(ValueError, match=r"has labels from 11 to 11, .* expected labels in 0..9"):
        _trainer(data, BLeNetScratch()).fit()


def test_float_labels_are_refused():
    data = Tensors(torch.rand(32, 1, 28, 28), torch.zeros(32))
    with pytest.raises(ValueError, match="integer tensor"):
        _trainer(data, BLeNetScratch()).fit()


def test_wrong_number_of_channels_at_the_first_batch():
    data = Tensors(torch.rand(32, 3, 28, 28), torch.zeros(32, dtype=torch.long))
    with pytest.raises(ValueError, match=r"first training batch \(input \(16, 3, 28, 28\)") as e:
        _trainer(data, BLeNetScratch()).fit()
    assert "to have 1 channels, but got 3 channels" in str(e.value)


def test_wrong_number_of_features_in_a_scratch_layer():
    model = BLeNetScratch()
    model.net[0] = torch.nn.Conv2d(1, 4, 5)  # the batch-norm layer after it expects 6
    data = Tensors(torch.rand(32, 1, 28, 28), torch.zeros(32, dtype=torch.long))
    with pytest.raises(ValueError, match="expected 6 channels, got 4"):
        _trainer(data, model).fit()


def test_batch_norm_edge_cases_last_batch_of_one_and_eval_batch_of_one(fashion_root):
    data = d2lai.FashionMNISTData(batchsize=64, root=fashion_root, num_train=129, num_val=1)
    assert [len(b[1]) for b in data.train_dataloader()] == [64, 65]
    _, metrics = _trainer(data, BLeNetScratch(), max_epochs=1).fit()
    assert metrics.epochs == 1 and metrics.val_acc in (0.0, 1.0)
