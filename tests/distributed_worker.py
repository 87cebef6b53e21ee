"""One rank of the data-parallel tests: run under torchrun (or with its environment set by hand).

`python -m torch.distributed.run --nproc_per_node=2 tests/distributed_worker.py OUT SCENARIO...`
runs each scenario on every rank, in the folder OUT/rank<r> (so that a file a rank writes lands
in its own folder), and saves what the test compares in OUT/results/<scenario>-rank<r>.pt. The
data, the models and the one-process reference loop live here, so the tests use the same ones.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import time
from pathlib import Path

import torch
from torch import nn

import d2lai
from chapters.batch_norm import BatchNormLayer
from d2lai import distributed

SEED, LR = 7, 0.1


class Data(d2lai.AbstractData):
    """Random inputs, labels from a fixed rule: the same on every rank (a fixed generator)."""

    def __init__(self, num_train: int = 103, num_val: int = 40, batchsize: int = 16,
                 shape: tuple = (5,)):
        g = torch.Generator().manual_seed(0)
        X = torch.randn(num_train + num_val, *shape, generator=g)
        y = (X.flatten(1)[:, :3].argmax(1) if len(shape) > 1 else (X[:, 0] > 0).long())
        self.train = (X[:num_train], y[:num_train])
        self.val = (X[num_train:], y[num_train:])
        self.batchsize = batchsize


def image_data() -> Data:
    """(N, 1, 6, 6) inputs, 3 classes; the last training batch (7) splits 4 + 3."""
    return Data(num_train=103, num_val=30, batchsize=16, shape=(1, 6, 6))


class MLP(d2lai.AbstractClassifier):
    """No batch norm: data-parallel training must equal one process exactly."""

    output_kind = "logits"

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 2))


class ConvNet(d2lai.AbstractClassifier):
    """A conv and a dense layer, each with batch norm: the chapter's scratch layer or torch's."""

    output_kind = "logits"

    def __init__(self, norm: str = "scratch"):
        super().__init__()
        scratch = norm == "scratch"
        self.net = nn.Sequential(
            nn.Conv2d(1, 4, 3), BatchNormLayer(4, 4) if scratch else nn.BatchNorm2d(4),
            nn.ReLU(), nn.Flatten(), nn.Linear(4 * 4 * 4, 8),
            BatchNormLayer(8, 2) if scratch else nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))


def make(name: str, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    if name == "mlp":
        return MLP()
    return ConvNet(name)


def reference(model: nn.Module, data: Data, epochs: int, seed: int = SEED,
              outputs: list | None = None) -> dict:
    """One process, the whole global batch: the book's loop written out, each epoch's order
    `randperm` of a generator seeded with seed + epoch (as the ranks draw it). Returns the
    figures of every epoch; `model` is trained in place. With `outputs`, each pass's outputs
    and labels are appended to it: (train outputs, train labels, val outputs, val labels)."""
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    X, y = data.train
    n, B = len(X), data.batchsize
    starts = list(range(0, n, B))
    if len(starts) > 1 and n - starts[-1] == 1:  # one process merges a final batch of one
        starts.pop()
    history = {"train_loss": [], "train_acc": [], "val_loss": [], "val_acc": []}
    for epoch in range(epochs):
        order = torch.randperm(n, generator=torch.Generator().manual_seed(seed + epoch))
        model.train()
        loss_sum = acc_sum = 0.0
        seen = []
        for lo, hi in zip(starts, starts[1:] + [n], strict=True):
            rows = order[lo:hi]
            y_hat = model(X[rows])
            seen.append((y_hat.detach(), y[rows]))
            loss = model.loss(y_hat, y[rows])
            opt.zero_grad()
            loss.backward()
            opt.step()
            loss_sum += loss.item() * (hi - lo)
            acc_sum += float(model.accuracy(y_hat.detach(), y[rows])) * (hi - lo)
        model.eval()
        with torch.no_grad():
            y_hat = model(data.val[0])
            history["val_loss"].append(float(model.loss(y_hat, data.val[1])))
            history["val_acc"].append(float(model.accuracy(y_hat, data.val[1])))
        if outputs is not None:
            outputs.append((torch.cat([o for o, _ in seen]), torch.cat([t for _, t in seen]),
                            y_hat, data.val[1]))
        history["train_loss"].append(loss_sum / n)
        history["train_acc"].append(acc_sum / n)
    return history


# --- the scenarios, each run on every rank ----------------------------------------------------

def fit(model, data, **kwargs):
    kwargs = {"max_epochs": 2, "seed": SEED, "board": False, **kwargs}
    trainer = d2lai.Trainer(model, data, d2lai.Descent(LR), **kwargs)
    model, metrics = trainer.fit()
    return {"state": model.state_dict(), "history": trainer.history, "steps": trainer.steps,
            "metrics": {k: v for k, v in vars(metrics).items() if k != "history"}}


def plain():
    """No batch norm, with a board and a checkpoint (rank 0 alone must write them)."""
    out = fit(make("mlp"), Data(), board=True, board_path="board.png", checkpoint="run.pt")
    if distributed.is_main_process():
        shutil.copy("run.pt", "resume.pt")  # the 2-epoch checkpoint, resumed next
    return out


def resume():
    """On from the 2-epoch checkpoint to 3 epochs; rank 1 has no file of its own."""
    return fit(make("mlp", seed=1), Data(), max_epochs=3, checkpoint="resume.pt", resume=True)


def sync_scratch():
    return fit(distributed.sync_batch_norm(make("scratch")), image_data())


def sync_torch():
    return fit(distributed.sync_batch_norm(make("torch")), image_data())


def per_rank_scratch():
    return fit(make("scratch"), image_data())


def per_rank_torch():
    return fit(make("torch"), image_data())


class NaNOnRank1(MLP):
    """A non-finite loss at the third batch, on rank 1 only."""

    calls = 0

    def training_step(self, batch):
        loss = super().training_step(batch)
        self.calls += 1
        return loss * float("nan") if self.calls == 3 and distributed.rank() == 1 else loss


def diverge():
    torch.manual_seed(0)
    return fit(NaNOnRank1(), Data())


def edition():
    """The PyTorch edition's Trainer, a lazy layer and the edition's data module."""
    from d2lai import torch as d2l

    torch.manual_seed(0)
    data = d2l.SyntheticRegressionData(w=torch.tensor([2.0, -3.4]), b=4.2, num_train=96,
                                       num_val=32, batch_size=16)
    model = d2l.LinearRegression(lr=0.03)
    rows = []

    def count(module, args, out):  # training rows this rank's forward passes see
        if module.training:
            rows.append(len(args[0]))

    model.register_forward_hook(count)
    trainer = d2l.Trainer(max_epochs=2)
    trainer.fit(model, data)
    return {"state": model.state_dict(), "history": trainer.history, "rows": sum(rows)}


def unused():
    """A parameter that takes no part in the loss: DDP's complaint, said for this library.
    Last of its launch: the failed fit ends the process group."""
    class Spare(MLP):
        def __init__(self):
            super().__init__()
            self.spare = nn.Linear(2, 2)

    try:
        fit(Spare(), Data())
    except RuntimeError as err:
        return {"error": str(err)}
    return {"error": None}


class FiveClasses(MLP):
    """Five classes, so that a top-2 accuracy and a macro F1 are figures worth comparing."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(5, 16), nn.ReLU(), nn.Linear(16, 5))


def five_class_data() -> Data:
    data = Data()
    for split in ("train", "val"):
        X, _ = getattr(data, split)
        setattr(data, split, (X, X.argmax(1)))  # the largest of 5 features
    return data


def metrics():
    """Metrics of the reader's own: top-2 accuracy, a torchmetrics F1 and a plain function,
    measured on each rank's part and summed over the ranks."""
    from torchmetrics.classification import MulticlassF1Score

    def first_class(y_hat, y):
        return (y_hat.argmax(-1) == 0).float().mean()

    torch.manual_seed(0)
    return fit(FiveClasses(), five_class_data(), max_epochs=3, verbose=False, metrics=[
        d2lai.metrics.TopKAccuracy(2), MulticlassF1Score(5), first_class])


def killed():
    """Rank 1 dies at the start of the second epoch; rank 0 must stop with a clear error."""
    class Die(d2lai.Callback):
        def on_epoch_start(self, trainer):
            if trainer.epoch == 1 and distributed.rank() == 1:
                print(f"stopping at {time.time()}", flush=True)
                os.kill(os.getpid(), signal.SIGKILL)

    return fit(make("mlp"), Data(), max_epochs=3, callbacks=[Die()])


def interrupted():
    """Ctrl-C on rank 1 alone at the start of the second epoch: rank 1 ends its fit cleanly,
    rank 0 must stop with a clear error."""
    class CtrlC(d2lai.Callback):
        def on_epoch_start(self, trainer):
            if trainer.epoch == 1 and distributed.rank() == 1:
                print(f"stopping at {time.time()}", flush=True)
                raise KeyboardInterrupt

    out = fit(make("mlp"), Data(), max_epochs=3, callbacks=[CtrlC()])
    print(f"interrupted: {out['metrics']['interrupted']}", flush=True)
    return out


def hung():
    """Rank 1 stops answering at the start of the second epoch: rank 0 must fail at the
    timeout."""
    class Hang(d2lai.Callback):
        def on_epoch_start(self, trainer):
            if trainer.epoch == 1 and distributed.rank() == 1:
                print(f"stopping at {time.time()}", flush=True)
                time.sleep(600)

    return fit(make("mlp"), Data(), max_epochs=3, callbacks=[Hang()])


SCENARIOS = {f.__name__: f for f in (plain, resume, sync_scratch, sync_torch, per_rank_scratch,
                                     per_rank_torch, diverge, edition, metrics, unused, killed,
                                     interrupted, hung)}


def main(out: str, *names: str) -> None:
    torch.set_num_threads(1)
    distributed.start("cpu", timeout_s=float(os.environ.get("TEST_TIMEOUT_S", "20")))
    out = Path(out).resolve()
    here = out / f"rank{distributed.rank()}"
    here.mkdir(parents=True, exist_ok=True)
    (out / "results").mkdir(exist_ok=True)
    os.chdir(here)
    for name in names:
        result = SCENARIOS[name]()
        torch.save(result, out / "results" / f"{name}-rank{distributed.rank()}.pt")


if __name__ == "__main__":
    main(*sys.argv[1:])
