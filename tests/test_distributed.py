"""Data-parallel training: two real processes on the CPU (gloo), checked against one process.

The scenarios run in `distributed_worker.py`, started by torchrun (one launch for most tests,
shared by a module fixture), or with torchrun's environment set by hand where a rank must die
without torchrun stopping the other. The one-process reference is a plain loop written out in
the worker module (same data, same initial weights, same epoch order).
"""

from __future__ import annotations

import copy
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from distributed_worker import LR, MLP, Data, image_data, make, reference
from distributed_worker import fit as worker_fit
from torch import nn

import d2lai
from chapters.batch_norm import BatchNormLayer, batch_norm
from d2lai import distributed
from d2lai.data.base import TensorLoader

pytestmark = pytest.mark.skipif(not (dist.is_available() and dist.is_gloo_available()),
                                reason="torch.distributed with gloo is needed")

ROOT = Path(__file__).resolve().parents[1]
WORKER = Path(__file__).resolve().with_name("distributed_worker.py")
SCENARIOS = {"loop": ("plain", "resume", "diverge", "edition", "unused"),
             "batch_norm": ("sync_scratch", "sync_torch", "per_rank_scratch", "per_rank_torch")}


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE")}
    env.update(PYTHONPATH=os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]),
               OMP_NUM_THREADS="1", MPLBACKEND="Agg", **extra)
    return env


def torchrun(out: Path, *args: str, timeout: float = 120) -> tuple:
    """Run `args` under torchrun with 2 ranks; (the run, {rank: its stderr}, {rank: stdout})."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "--log-dir", str(out / "logs"), "--redirects", "3", *args]
    run = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=timeout,
                         cwd=out)
    logs = {kind: {int(p.parent.name): p.read_text()
                   for p in (out / "logs").glob(f"*/attempt_0/*/{kind}.log")}
            for kind in ("stderr", "stdout")}
    return run, logs["stderr"], logs["stdout"]


def _launch(tmp_path_factory, group: str) -> tuple:
    """The scenarios of one torchrun launch: the results folder and each rank's stderr."""
    out = tmp_path_factory.mktemp(group)
    run, stderr, _ = torchrun(out, str(WORKER), str(out), *SCENARIOS[group])
    assert run.returncode == 0, f"{run.stderr[-2000:]}\n{stderr.get(0, '')[-3000:]}"
    return out, stderr


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    return _launch(tmp_path_factory, "loop")


@pytest.fixture(scope="module")
def bn_ranks(tmp_path_factory):
    return _launch(tmp_path_factory, "batch_norm")


def result(out: Path, name: str, rank: int) -> dict:
    return torch.load(out / "results" / f"{name}-rank{rank}.pt", weights_only=False)


def max_difference(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a)


def same_history(history: dict, expected: dict, epochs: int) -> None:
    for name, values in expected.items():
        assert history[name][:epochs] == pytest.approx(values[:epochs], abs=1e-5), name


# --- two ranks against one process ------------------------------------------------------------

def test_weights_equal_on_both_ranks_and_to_one_process(ranks):
    out, _ = ranks
    r0, r1 = result(out, "plain", 0), result(out, "plain", 1)
    assert max_difference(r0["state"], r1["state"]) == 0  # the same step on every rank
    model = make("mlp")
    expected = reference(model, Data(), epochs=2)
    assert max_difference(r0["state"], model.state_dict()) < 1e-5
    same_history(r0["history"], expected, 2)  # the epoch line's figures: one process's
    assert r1["history"] == r0["history"]
    assert r0["metrics"]["val_loss"] == pytest.approx(expected["val_loss"][-1], abs=1e-5)
    assert r0["metrics"]["val_acc"] == pytest.approx(expected["val_acc"][-1], abs=1e-5)
    assert r0["steps"] == 2 * 7  # 103 samples, global batch 16: 7 steps an epoch, not 4


def test_one_process_with_the_seed_trains_as_the_ranks_do(ranks, one_thread):
    """`python train.py` and `torchrun --nproc_per_node=2 train.py` with the same seed: the
    same epoch orders, so the same weights (d2lai's own one-process fit, not a reference)."""
    out, _ = ranks
    alone = worker_fit(make("mlp"), Data())
    assert max_difference(result(out, "plain", 0)["state"], alone["state"]) < 1e-5
    assert alone["history"]["val_loss"] == pytest.approx(
        result(out, "plain", 0)["history"]["val_loss"], abs=1e-5)


@pytest.mark.parametrize("norm", ["scratch", "torch"])
def test_synchronised_batch_norm_equals_one_process(bn_ranks, norm):
    out, _ = bn_ranks
    r0, r1 = result(out, f"sync_{norm}", 0), result(out, f"sync_{norm}", 1)
    model = make(norm)  # one process: the whole batch is the batch of batch norm
    expected = reference(model, image_data(), epochs=2)
    assert max_difference(r0["state"], r1["state"]) == 0
    assert max_difference(r0["state"], model.state_dict()) < 1e-5  # weights and statistics
    same_history(r0["history"], expected, 2)


@pytest.mark.parametrize("norm", ["scratch", "torch"])
def test_per_rank_statistics_differ_from_one_process(bn_ranks, norm):
    out, _ = bn_ranks
    r0, r1 = result(out, f"per_rank_{norm}", 0), result(out, f"per_rank_{norm}", 1)
    assert max_difference(r0["state"], r1["state"]) == 0  # rank 0's statistics on both
    model = make(norm)
    reference(model, image_data(), epochs=2)
    params = {k: v for k, v in model.state_dict().items() if "moving" not in k
              and "running" not in k and "num_batches" not in k}
    weights = max_difference({k: r0["state"][k] for k in params}, params)
    stats = max_difference(r0["state"], model.state_dict())
    print(f"\nper-rank {norm} batch norm, 2 ranks vs one process after 2 epochs: weights differ "
          f"by up to {weights:.2e}, weights and moving statistics by up to {stats:.2e}")
    assert weights > 1e-4, f"per-rank statistics should change training (differ by {weights})"


def test_only_rank_0_writes_files_and_prints_epoch_lines(ranks):
    out, stderr = ranks
    assert sorted(p.name for p in (out / "rank1").iterdir()) == []
    assert {"board.png", "run.pt", "resume.pt"} <= {p.name for p in (out / "rank0").iterdir()}
    lines = re.findall(r"\[ Info: Epoch \d+/\d+ · .* Train Loss: .*", stderr[0])
    assert len(lines) == 2 + 1 + 2  # plain, resume (its third epoch), edition
    assert "resuming from resume.pt after epoch 2" in stderr[0]
    assert "Train Loss" not in stderr[1] and "[ Info" not in stderr[1]


def test_a_checkpoint_of_two_ranks_resumes_on_two(ranks):
    out, _ = ranks
    resumed, first = result(out, "resume", 0), result(out, "plain", 0)
    assert max_difference(resumed["state"], result(out, "resume", 1)["state"]) == 0
    model = make("mlp")
    expected = reference(model, Data(), epochs=3)  # as if never interrupted
    assert max_difference(resumed["state"], model.state_dict()) < 1e-5
    same_history(resumed["history"], expected, 3)
    assert resumed["history"]["train_loss"][:2] == first["history"]["train_loss"]


def test_a_checkpoint_of_two_ranks_resumes_on_one(ranks, tmp_path, one_thread):
    out, _ = ranks
    path = tmp_path / "run.pt"
    shutil.copy(out / "rank0" / "run.pt", path)  # after 2 epochs on 2 ranks
    trainer = d2lai.Trainer(make("mlp", seed=1), Data(), d2lai.Descent(LR), max_epochs=2,
                            checkpoint=path, resume=True, board=False, verbose=False)
    model, _ = trainer.fit()  # nothing left to train: the 2-rank weights, as saved
    assert max_difference(model.state_dict(), result(out, "plain", 0)["state"]) == 0
    trainer = d2lai.Trainer(make("mlp", seed=1), Data(), d2lai.Descent(LR), max_epochs=3,
                            checkpoint=path, resume=True, board=False, verbose=False)
    model, metrics = trainer.fit()  # the global batch is the same on 1 rank: it goes on
    assert metrics.epochs == 3 and trainer.steps == 3 * 7
    assert trainer.history["val_loss"][:2] == result(out, "plain", 0)["history"]["val_loss"]
    assert metrics.val_loss < trainer.history["val_loss"][0]


def test_divergence_is_decided_alike_on_all_ranks(ranks):
    out, _ = ranks
    r0, r1 = result(out, "diverge", 0), result(out, "diverge", 1)  # NaN on rank 1 only
    assert r0["metrics"]["diverged"] and r1["metrics"]["diverged"]
    assert r0["steps"] == r1["steps"] == 2  # both stopped before the third step
    assert max_difference(r0["state"], r1["state"]) == 0
    assert max_difference(r0["state"], make("mlp").state_dict()) == 0  # rolled back


def test_the_pytorch_editions_trainer_trains_data_parallel(ranks):
    out, _ = ranks
    r0, r1 = result(out, "edition", 0), result(out, "edition", 1)
    assert max_difference(r0["state"], r1["state"]) == 0
    assert r0["history"] == r1["history"] and len(r0["history"]["val_loss"]) == 2
    assert r0["rows"] == r1["rows"] == 2 * 96 // 2  # each rank trains on half of every batch


def test_a_parameter_outside_the_loss_is_a_clear_error(ranks):
    out, _ = ranks
    for rank in (0, 1):
        error = result(out, "unused", rank)["error"]
        assert error and error.startswith("Spare has parameters that take no part in its "
                                          "training step's loss"), error


def test_the_chapter_runs_under_torchrun(fashion_root, tmp_path):
    run, stderr, stdout = torchrun(
        tmp_path, "-m", "chapters.batch_norm", "--cpu", "--epochs", "1", "--model", "scratch",
        "--sync-bn", "--batchsize", "32", "--num-train", "96", "--num-val", "64",
        "--data-root", str(fashion_root), "--out", str(tmp_path / "out"))
    assert run.returncode == 0, f"{run.stderr[-2000:]}\n{stderr.get(0, '')[-2000:]}"
    assert "BLeNetScratch" in stdout[0] and "train loss" in stdout[0] and stdout[1] == ""
    assert "Train Loss" in stdout[0] and "Train Loss" not in stderr[1]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "scratch-board.png", "scratch-history.json", "summary.csv"]


# --- a rank that dies or hangs ------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("scenario, timeout_s", [("killed", 20), ("interrupted", 20),
                                                ("hung", 5)])
def test_a_lost_rank_stops_the_other_with_a_clear_error(tmp_path, scenario, timeout_s):
    """Started as torchrun would (but without it, which would stop the other rank itself)."""
    port = _free_port()
    ranks = [subprocess.Popen(
        [sys.executable, str(WORKER), str(tmp_path), scenario], cwd=tmp_path, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env=_env(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE="2", RANK=str(r),
                 LOCAL_RANK=str(r), LOCAL_WORLD_SIZE="2", TEST_TIMEOUT_S=str(timeout_s)))
        for r in range(2)]
    try:
        _, err0 = ranks[0].communicate(timeout=90)
        ended = time.time()
        if scenario == "hung":
            ranks[1].kill()
        out1 = ranks[1].communicate(timeout=60)[0]
    finally:
        for p in ranks:
            p.kill()
    stopped = float(re.search(r"stopping at ([\d.]+)", out1).group(1))
    assert ranks[0].returncode != 0
    assert "rank 0 of 2 lost the other ranks in epoch 2" in err0, err0[-2000:]
    assert "Timed out" in err0 if scenario == "hung" else "Connection" in err0
    if scenario == "interrupted":  # the interrupted rank ended its fit as one process does
        assert ranks[1].returncode == 0 and "interrupted: True" in out1
    waited = ended - stopped  # from rank 1's stop to rank 0's exit (rank 0 may have entered
    if scenario == "hung":     # its collective a little before rank 1 stopped answering)
        assert timeout_s - 2 < waited < timeout_s + 10, f"rank 0 waited {waited:.1f} s"
    else:  # a closed connection: no waiting for the timeout
        assert waited < timeout_s, f"rank 0 waited {waited:.1f} s"


# --- bad input: clear errors before training, in one process with torchrun's environment --------

@pytest.fixture
def as_rank_0_of(monkeypatch):
    def world(n: int, local: int | None = None):
        for name, value in (("RANK", 0), ("LOCAL_RANK", 0), ("WORLD_SIZE", n),
                            ("LOCAL_WORLD_SIZE", n if local is None else local)):
            monkeypatch.setenv(name, str(value))
    return world


def _fails_before_training(trainer, error, match):
    with pytest.raises(error, match=match):
        trainer.fit()
    assert trainer.steps == 0 and not dist.is_initialized()


def test_a_world_size_that_does_not_divide_the_batch_is_refused(as_rank_0_of):
    as_rank_0_of(3)
    trainer = d2lai.Trainer(MLP(), Data(batchsize=16), d2lai.Descent(LR), board=False)
    _fails_before_training(trainer, ValueError, r"batchsize 16 is the global batch, split "
                           r"over the 3 ranks: it must be a multiple of 3 \(e.g. 15 or 18\)")


def test_fewer_gpus_than_ranks_is_refused(as_rank_0_of, monkeypatch):
    as_rank_0_of(4, local=2)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    trainer = d2lai.Trainer(MLP(), Data(), d2lai.Descent(LR), gpu=True, board=False)
    _fails_before_training(trainer, ValueError, r"gpu=True with 2 ranks on this machine, but "
                           r"PyTorch sees 1 GPU\(s\).*--nproc_per_node=1")
    from d2lai import torch as d2l

    with pytest.raises(ValueError, match="2 ranks on this machine"):
        d2l.Trainer(max_epochs=1, num_gpus=2)


def test_what_cannot_be_split_over_the_ranks_is_refused(as_rank_0_of):
    as_rank_0_of(2)
    small = Data(num_val=1)
    _fails_before_training(d2lai.Trainer(MLP(), small, d2lai.Descent(LR), board=False),
                           ValueError, "the validation set has 1 samples, fewer than the 2 ranks")

    class Listed(Data):
        def get_dataloader(self, train=True):
            return list(super().get_dataloader(train))

    _fails_before_training(d2lai.Trainer(MLP(), Listed(), d2lai.Descent(LR), board=False),
                           TypeError, "the training loader of Listed is a list")

    class OwnLoop(d2lai.Trainer):
        def fit_epoch(self):
            return {}

    _fails_before_training(OwnLoop(MLP(), Data(), d2lai.Descent(LR), board=False),
                           ValueError, "OwnLoop replaces fit_epoch")


# --- the pieces, in one process -----------------------------------------------------------------

@pytest.mark.parametrize("n, batchsize, world", [(103, 16, 2), (100, 12, 3), (33, 8, 4),
                                                 (17, 16, 2), (9, 4, 1)])
def test_the_ranks_parts_cover_every_batch_once(n, batchsize, world):
    X = torch.arange(n)
    loaders = [TensorLoader(X, batchsize, shuffle=True).shard(r, world, seed=3)
               for r in range(world)]
    parts = [list(loader) for loader in loaders]
    bounds = loaders[0].bounds  # one process's batches, a final one too small merged:
    one = TensorLoader(X, batchsize).bounds
    small = one[-1][1] - one[-1][0] < 2 * world and len(one) > 1
    assert bounds == ([*one[:-2], (one[-2][0], n)] if small else one)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(3))  # on every rank
    assert all(len(p) == len(bounds) for p in parts)  # every rank takes the same steps
    for i, (lo, hi) in enumerate(bounds):
        joined = torch.cat([p[i][0] for p in parts])
        assert torch.equal(joined, order[lo:hi])  # the global batch, cut in rank order
        sizes = [len(p[i][0]) for p in parts]
        assert max(sizes) - min(sizes) <= 1 and min(sizes) >= min(2, (hi - lo) // world)
    assert sorted(torch.cat([b for p in parts for (b,) in p]).tolist()) == list(range(n))


def test_sharding_keeps_one_process_as_it_was():
    X = torch.arange(65)
    torch.manual_seed(0)
    before = [b for (b,) in TensorLoader(X, 16, shuffle=True)]
    torch.manual_seed(0)
    after = [b for (b,) in TensorLoader(X, 16, shuffle=True).shard(0, 1)]
    assert all(torch.equal(a, b) for a, b in zip(before, after, strict=True))
    assert [len(b) for b in before] == [16, 16, 16, 17]  # a final batch of one is merged
    loader = TensorLoader(X[:5], 4, merge_single=False).shard(1, 4)  # validation: 5 rows
    assert [len(b) for (b,) in loader] == [1] and len(loader) == 1  # rank 1's rows: 1, none


def test_batch_statistics_in_one_process_are_the_layers_own():
    X = torch.randn(6, 3, 4, 4)
    mean, var, n = distributed.mean_var_over_ranks(X, (0, 2, 3))
    assert n == 96 and torch.allclose(mean.flatten(), X.mean((0, 2, 3)))
    assert torch.allclose(var.flatten(), X.var((0, 2, 3), unbiased=False))
    torch.manual_seed(0)
    concise = nn.Sequential(nn.Conv2d(3, 2, 1), nn.BatchNorm2d(2), nn.Flatten(),
                            nn.BatchNorm1d(32))
    synced = distributed.sync_batch_norm(copy.deepcopy(concise))
    assert [type(m) for m in synced][1::2] == [nn.SyncBatchNorm, nn.SyncBatchNorm]
    assert torch.equal(synced(X), concise(X))  # one process: torch's batch norm
    for layer in synced[1::2]:
        layer.__class__ = distributed.CPUSyncBatchNorm  # as data_parallel does on CPU ranks
    assert torch.equal(synced(X), concise(X))
    assert torch.equal(synced[1].running_mean, concise[1].running_mean)


def test_the_scratch_layer_takes_the_sync_switch():
    layer = BatchNormLayer(3, 4)
    net = distributed.sync_batch_norm(nn.Sequential(layer))
    assert net[0] is layer and layer.sync
    X = torch.randn(5, 3, 2, 2)
    ones, zeros = torch.ones(1, 3, 1, 1), torch.zeros(1, 3, 1, 1)
    Y, _, _ = batch_norm(X, ones, zeros, zeros, ones, 1e-5, 0.1, sync=True)
    assert torch.allclose(layer(X), Y)  # one process: the batch's own statistics

    def variant(X, gamma, beta, moving_mean, moving_var, eps, momentum, train_mode=True):
        return batch_norm(X, gamma, beta, moving_mean, moving_var, eps, momentum, train_mode)

    with pytest.raises(ValueError, match="sync=True needs a norm_fn that takes sync="):
        BatchNormLayer(3, 4, norm_fn=variant, sync=True)
    with pytest.raises(ValueError, match="sync must be True or False"):
        BatchNormLayer(3, 4, sync="yes")
