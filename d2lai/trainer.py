"""Trainer and fit: the book's training loop, whole-set validation, logs, board, checkpoints."""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

try:  # notebook progress widgets when Jupyter can draw them, text bars otherwise
    import ipywidgets  # noqa: F401
    from tqdm.auto import tqdm
except ImportError:
    from tqdm import tqdm

from .board import ProgressBoard, check_scale
from .data import AbstractData
from .device import get_device, rng_state, seed, set_rng_state
from .optim import RULES

__all__ = ["Trainer", "Metrics", "fit"]

logger = logging.getLogger("d2lai")


@dataclass
class Metrics:
    """How a fit ended: the last completed epoch's figures over the whole validation set."""

    val_loss: float
    val_acc: float | None
    train_loss: float
    epochs: int
    diverged: bool = False
    interrupted: bool = False


class _Diverged(Exception):
    def __init__(self, epoch: int, batch: int, loss: float):
        super().__init__(f"diverged at epoch {epoch}, batch {batch} (loss={loss})")


class Trainer:
    """Holds what a run needs; `fit` trains `model` on `data` with optimiser rule `opt`."""

    def __init__(self, model: nn.Module, data: AbstractData, opt, max_epochs: int = 10,
                 gpu: bool = False, board_yscale: str = "log10", verbose: bool = True,
                 gradient_clip_val: float = 0.0, print_every: int = 1, board: bool = True, *,
                 board_path: str | os.PathLike | None = None, on_diverge: str = "stop",
                 checkpoint: str | os.PathLike | None = None, resume: bool = False,
                 seed: int | None = None):
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module (a d2lai.AbstractClassifier, say), "
                            f"got {type(model).__name__}")
        if not hasattr(model, "training_step") or not hasattr(model, "validation_step"):
            raise TypeError(f"model {type(model).__name__} has no training_step/validation_step: "
                            f"make it a subclass of d2lai.AbstractModel or AbstractClassifier")
        if not (hasattr(data, "train_dataloader") and hasattr(data, "val_dataloader")):
            raise TypeError(f"data must be a d2lai.AbstractData (FashionMNISTData, say), "
                            f"got {type(data).__name__}")
        if not isinstance(opt, (*RULES, torch.optim.Optimizer)):
            raise TypeError(f"opt must be Descent, Momentum, Adam or a torch.optim.Optimizer, "
                            f"got {type(opt).__name__}")
        for name, value in (("max_epochs", max_epochs), ("print_every", print_every)):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        check_scale("board_yscale", board_yscale)
        if isinstance(gradient_clip_val, bool) or not isinstance(gradient_clip_val, (int, float)) \
                or not gradient_clip_val >= 0:
            raise ValueError(f"gradient_clip_val must be a number >= 0 (0 turns clipping off), "
                             f"got {gradient_clip_val!r}")
        if on_diverge not in ("stop", "raise"):
            raise ValueError(f"on_diverge must be 'stop' or 'raise', got {on_diverge!r}")
        if resume and checkpoint is None:
            raise ValueError("resume=True needs checkpoint='path.pt' to resume from")
        self.model, self.data, self.opt = model, data, opt
        self.max_epochs, self.gpu, self.verbose = max_epochs, gpu, verbose
        self.gradient_clip_val, self.print_every = float(gradient_clip_val), print_every
        self.board = ProgressBoard("epoch", yscale=board_yscale,
                                   title=type(model).__name__) if board else None
        self.board_path, self.on_diverge, self.seed = board_path, on_diverge, seed
        self.checkpoint = Path(checkpoint) if checkpoint is not None else None
        self.resume = resume
        self.history: dict[str, list[float]] = {"train_loss": [], "val_loss": []}
        self.timings: dict[str, list[float]] = {"train_s": [], "val_s": []}

    def fit(self) -> tuple[nn.Module, Metrics]:
        """Train `max_epochs` epochs, validating after each; return (model on the CPU, metrics)."""
        if self.verbose:
            _show_logs()
        device = get_device(self.gpu)
        model = self.model.to(device)
        self.data.to(device)
        optimizer = model.configure_optimizers(self.opt)
        epoch = first = self._start(optimizer)
        self._checked = set()
        diverged = interrupted = False
        try:
            for epoch in range(first, self.max_epochs + 1):
                tic = time.perf_counter()
                train_loss = self._train_epoch(epoch, optimizer, device)
                toc = time.perf_counter()
                val_loss, val_acc = self._validate()
                self.timings["train_s"].append(toc - tic)
                self.timings["val_s"].append(time.perf_counter() - toc)
                self._record(epoch, train_loss=train_loss, val_loss=val_loss, val_acc=val_acc)
                if self.checkpoint is not None:
                    self._save_checkpoint(epoch, optimizer)
        except _Diverged as err:
            logger.warning("%s", err)
            if self.on_diverge == "raise":
                raise FloatingPointError(f"training {err}; lower the learning rate, or clip "
                                         f"gradients with gradient_clip_val") from None
            diverged = True
        except KeyboardInterrupt:
            logger.warning("interrupted at epoch %d", epoch)
            interrupted = True
        finally:
            model.cpu()
            self._save_board()
        return model, self._metrics(diverged, interrupted)

    def _train_epoch(self, epoch: int, optimizer: torch.optim.Optimizer,
                     device: torch.device) -> float:
        """One pass over the training set; the mean training loss over its samples."""
        self.model.train()
        loader = self.data.train_dataloader()
        losses, sizes = torch.zeros(len(loader), device=device), []
        every = 1 if device.type == "cpu" else 25  # on a GPU, look at the losses without a sync
        checked = 0
        bar = tqdm(loader, desc=f"epoch {epoch}/{self.max_epochs}", unit="batch", leave=False,
                   disable=not self.verbose, dynamic_ncols=True)
        with bar:
            for i, batch in enumerate(bar):
                self._check_first(batch, "training")
                loss = self.model.training_step(batch)
                losses[i] = loss.detach()
                sizes.append(len(batch[-1]))
                if (i + 1) % every == 0 or i + 1 == len(loader):
                    checked = _check_finite(losses, checked, i + 1, epoch)
                    if self.verbose:
                        bar.set_postfix_str(f"loss {losses[i]:.4f}", refresh=False)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if self.gradient_clip_val > 0:
                    nn.utils.clip_grad_norm_(self.model.parameters(), self.gradient_clip_val)
                optimizer.step()
        return float(losses @ torch.tensor(sizes, dtype=losses.dtype, device=device)) / sum(sizes)

    @torch.no_grad()
    def _validate(self) -> tuple[float, float | None]:
        """Loss (and accuracy) over the WHOLE validation set, in evaluation mode."""
        self.model.eval()
        sums, n = None, 0
        for batch in self.data.val_dataloader():
            self._check_first(batch, "validation")
            out = self.model.validation_step(batch)
            out = torch.stack([torch.as_tensor(v).float() for v in _as_tuple(out)])
            k = len(batch[-1])
            sums = out * k if sums is None else sums + out * k
            n += k
        if n == 0:
            raise ValueError("the validation set is empty: give the data at least one sample")
        means = (sums / n).tolist()
        return means[0], (means[1] if len(means) > 1 else None)

    def _check_first(self, batch, kind: str) -> None:
        """On the first batch of each kind, check shapes and labels (errors say expected/got)."""
        if kind in self._checked:
            return
        self._checked.add(kind)
        *X, y = batch
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.no_grad():
                y_hat = self.model(*X)
        except RuntimeError as err:
            shapes = ", ".join(f"{tuple(x.shape)} {x.dtype}" for x in X)
            raise ValueError(f"the model cannot take the first {kind} batch "
                             f"(input {shapes}): {err}") from err
        finally:
            self.model.train(was_training)
        if hasattr(self.model, "check_batch"):
            self.model.check_batch(y_hat, y, getattr(self.data, "num_classes", None))

    def _record(self, epoch: int, **values: float | None) -> None:
        """Append an epoch's figures to the history and board; log them every `print_every`."""
        for name, value in values.items():
            if value is None:
                continue
            self.history.setdefault(name, []).append(value)
            if self.board is not None:
                self.board.draw(epoch, value, name)
        if epoch % self.print_every == 0:
            line = ", ".join(f"{_TITLES[k]}: {v:.4f}" for k, v in values.items() if v is not None)
            logger.log(logging.INFO if self.verbose else logging.DEBUG, line)

    def _start(self, optimizer: torch.optim.Optimizer) -> int:
        """Seed a fresh run, or restore model, optimiser, history and RNG from the checkpoint."""
        if self.resume and self.checkpoint.exists():
            # on the CPU: the RNG state must stay there; load_state_dict moves the rest
            state = torch.load(self.checkpoint, map_location="cpu", weights_only=True)
            self.model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            set_rng_state(state["rng"])
            self.history = {k: list(v) for k, v in state["history"].items()}
            if self.board is not None:
                for name, values in self.history.items():
                    self.board.draw(list(range(1, len(values) + 1)), values, name)
            logger.info("resuming from %s after epoch %d", self.checkpoint, state["epoch"])
            return state["epoch"] + 1
        if self.resume:
            logger.info("no checkpoint at %s yet: starting from epoch 1", self.checkpoint)
        if self.seed is not None:
            seed(self.seed)
        return 1

    def _save_checkpoint(self, epoch: int, optimizer: torch.optim.Optimizer) -> None:
        """Write model, optimiser, history and RNG state to a temporary file, then rename it."""
        state = {"epoch": epoch, "model": self.model.state_dict(),
                 "optimizer": optimizer.state_dict(), "history": self.history, "rng": rng_state()}
        self.checkpoint.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.checkpoint.with_name(self.checkpoint.name + ".tmp")
        torch.save(state, tmp)
        os.replace(tmp, self.checkpoint)

    def _save_board(self) -> None:
        if self.board is None or not self.board.series:
            return
        if self.board_path is not None or self.verbose:
            path = self.board_path or f"{type(self.model).__name__}-board.png"
            logger.log(logging.INFO if self.verbose else logging.DEBUG,
                       "board saved to %s", self.board.save_plot(path))

    def _metrics(self, diverged: bool, interrupted: bool) -> Metrics:
        last = {k: v[-1] if v else math.nan for k, v in self.history.items()}
        return Metrics(val_loss=last["val_loss"], val_acc=last.get("val_acc"),
                       train_loss=last["train_loss"], epochs=len(self.history["train_loss"]),
                       diverged=diverged, interrupted=interrupted)


_TITLES = {"train_loss": "Train Loss", "val_loss": "Val Loss", "val_acc": "Val Acc"}


def _as_tuple(out) -> tuple:
    return tuple(out) if isinstance(out, (tuple, list)) else (out,)


def _check_finite(losses: torch.Tensor, start: int, stop: int, epoch: int) -> int:
    """Raise `_Diverged` at the first non-finite loss in losses[start:stop]; else return stop."""
    bad = (~torch.isfinite(losses[start:stop])).nonzero()
    if len(bad):
        b = start + int(bad[0])
        raise _Diverged(epoch, b + 1, float(losses[b]))
    return stop


class _JuliaFormatter(logging.Formatter):
    """`[ Info: message`, as Julia's logging macros print it."""

    def format(self, record: logging.LogRecord) -> str:
        return f"[ {record.levelname.capitalize()}: {record.getMessage()}"


def _show_logs() -> None:
    """Make the `d2lai` logger's INFO lines visible, unless the program set up logging itself."""
    if not logger.hasHandlers():
        handler = logging.StreamHandler()
        handler.setFormatter(_JuliaFormatter())
        logger.addHandler(handler)
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.INFO)


def fit(trainer: Trainer) -> tuple[nn.Module, Metrics]:
    """`d2lai.fit(trainer)`, as the book calls it."""
    return trainer.fit()
