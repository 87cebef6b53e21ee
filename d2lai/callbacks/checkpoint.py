"""Checkpoint: save the run after every epoch; resume it from the file at fit start."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from ..checkpoint import check_model_state, load_checkpoint, save_checkpoint
from ..definition import differences, run_definition
from ..device import rng_state, set_rng_state
from ..distributed import from_main, is_main_process
from ..files import check_output_path, claim
from ..optim import describe_opt, opt_text
from .base import Callback, by_class

logger = logging.getLogger("d2lai")

__all__ = ["Checkpoint"]


# What a resumed run may change: how far it goes (the totals to reach) and its callbacks (a
# logger added); its rule is checked on its own (override_opt), its model by the state's keys
# and shapes.
RESUMABLE = ("trainer.max_epochs", "trainer.max_steps", "opt", "model", "callbacks")


def _stateful(trainer):
    """(key, callback) for the trainer's callbacks that keep a state (EarlyStopping's wait and
    best, LRScheduler's schedule), keyed by class name (and number, for two of one class)."""
    return by_class(c for c in trainer.callbacks if callable(getattr(c, "state_dict", None)))


def _rule(trainer):
    """What the reader chose: the rule given to the trainer, else the model's own optimiser."""
    return trainer.opt if trainer.opt is not None else trainer.optimizer


class Checkpoint(Callback):
    """Save the run after every epoch; with `resume`, continue from the file at fit start.

    The file holds what defines the run (`d2lai.definition`) and the state of the callbacks
    that keep one (EarlyStopping's wait and best). A new run refuses to overwrite another run's
    checkpoint; a resumed one refuses a checkpoint of another run (other data, batch size,
    seed, clipping): only `max_epochs` and `max_steps`, the totals to reach, may change.
    Resuming with another optimiser rule (type or hyperparameters) than the one saved is an
    error unless `override_opt`: then the new rule's hyperparameters apply from here on (its
    state is kept when the type is the same, and starts afresh when it is not). Under
    torchrun, rank 0 holds and writes the file, and every rank resumes from rank 0's copy.
    """

    order = 80

    def __init__(self, path: str | os.PathLike, resume: bool = False, override_opt: bool = False):
        self.path, self.resume, self.override_opt = Path(path), resume, override_opt
        self.owner = None  # the trainer whose run the file holds

    def on_fit_start(self, trainer) -> None:
        check_output_path(self.path, "checkpoint")
        # held until the fit ends; under torchrun, by rank 0, whose file serves every rank
        self.lock = claim(self.path, "checkpoint", "fit") if is_main_process() else None
        try:
            self.definition = run_definition(trainer)
            if self.owner is not trainer:
                self.saved = None  # the epoch the file holds, once this run has written one
            if self.owner is trainer or not from_main(self.path.exists):
                if self.resume and self.owner is None:
                    logger.info("no checkpoint at %s yet: starting from epoch 1", self.path)
                self.owner = trainer
                return
            if not self.resume:
                raise FileExistsError(
                    f"checkpoint {self.path} already exists, from another run. Pass "
                    f"resume=True to continue that run, or delete the file (or choose another "
                    f"path) to start over.")
            self.restore(trainer, from_main(lambda: load_checkpoint(self.path)))
            self.owner = trainer
        except BaseException:
            self.on_fit_end(trainer, None)
            raise

    def restore(self, trainer, state: dict) -> None:
        """Put a checked checkpoint's state into the trainer, its model and optimiser."""
        check_model_state(trainer.model, state["model"], self.path)
        ignore = RESUMABLE
        if trainer.seed is None:  # not given again: the saved run's (its random state is here)
            ignore += ("seed",)
            self.definition["seed"] = state.get("definition", {}).get("seed")
            trainer.seed = self.definition["seed"]  # its epochs' orders are drawn from it
        changed = differences(state.get("definition", self.definition), self.definition,
                              ignore=ignore, when="in the checkpoint")
        if changed:
            raise ValueError(
                f"checkpoint {self.path} is another run's: {'; '.join(changed)}. Build the "
                f"trainer and its data as that run was to go on with it, or delete the file (or "
                f"choose another path) to start over.")
        saved, ours = state["opt"], describe_opt(_rule(trainer))
        same_type = saved["type"] == ours["type"]
        if saved != ours and not self.override_opt:
            raise ValueError(
                f"checkpoint {self.path} was trained with {opt_text(saved)}, but this trainer "
                f"has {opt_text(ours)}. Pass the checkpoint's rule to continue the run as it "
                f"was, or override_opt=True to go on with the new one.")
        trainer.model.load_state_dict(state["model"])
        if same_type:
            hyper = [{k: v for k, v in g.items() if k != "params"}
                     for g in getattr(trainer.optimizer, "param_groups", [])]
            try:
                trainer.optimizer.load_state_dict(state["optimizer"])
            except (ValueError, KeyError, RuntimeError) as err:
                raise ValueError(f"checkpoint {self.path}: its optimiser state does not fit "
                                 f"this optimiser ({err})") from None
            for group, h in zip(getattr(trainer.optimizer, "param_groups", []), hyper,
                                strict=True):
                group.update(h)  # the rule given now (equal to the saved one unless overridden)
        kept = state.get("callbacks", {})
        for key, callback in _stateful(trainer):
            if key in kept:
                callback.load_state_dict(kept[key])
        set_rng_state(state["rng"])
        trainer.history = {k: list(v) for k, v in state["history"].items()}
        trainer.epoch, trainer.steps = state["epoch"], state["steps"]
        self.saved = state["epoch"]
        if saved != ours:
            logger.warning("resuming %s with %s instead of %s%s", self.path, opt_text(ours),
                           opt_text(saved), "" if same_type else " (its state starts afresh)")
        logger.info("resuming from %s after epoch %d", self.path, state["epoch"])

    def on_epoch_end(self, trainer, epoch: int, logs: dict[str, float]) -> None:
        if not is_main_process():  # under torchrun, rank 0 alone writes
            return
        optimizer = trainer.optimizer
        state = {
            "epoch": epoch, "steps": trainer.steps, "model": trainer.model.state_dict(),
            "optimizer": optimizer.state_dict() if hasattr(optimizer, "state_dict") else {},
            "opt": describe_opt(_rule(trainer)), "history": trainer.history, "rng": rng_state(),
            "definition": self.definition,
            "callbacks": {key: c.state_dict() for key, c in _stateful(trainer)}}
        try:
            save_checkpoint(self.path, state)
        except (OSError, RuntimeError) as err:  # a full disk: torch says so as a RuntimeError
            held = f"it still holds epoch {self.saved}" if self.saved else "it was not written"
            logger.warning("could not save checkpoint %s after epoch %d (%s): %s; training "
                           "goes on", self.path, epoch, str(err).strip() or type(err).__name__,
                           held)
            return
        self.saved = epoch

    def on_fit_end(self, trainer, metrics) -> None:
        if self.lock is not None:
            self.lock.release()
            self.lock = None
