"""The trainer's own callbacks, made from its arguments in one table."""

from __future__ import annotations

import os

from .. import distributed
from .base import Callback
from .batch_checks import BatchChecks
from .board import DrawBoard
from .checkpoint import Checkpoint
from .data_parallel import DataParallel, SeededShuffle
from .divergence import DivergenceWatch
from .epoch_log import EpochLog
from .progress import ProgressBar
from .reduce_metrics import ReduceMetrics
from .validation_batches import ValidationBatches

__all__ = ["own_callbacks"]


def own_callbacks(trainer, *, on_diverge: str = "stop",
                  board_path: str | os.PathLike | None = None,
                  checkpoint: str | os.PathLike | None = None, resume: bool = False,
                  override_opt: bool = False) -> list[Callback]:
    """The callbacks `Trainer(...)`'s own arguments ask for: each row of the table is (wanted,
    how it is made), with the arguments that configure it. `trainer.verbose`, `print_every`
    and `board` (its `ProgressBoard`) and `trainer.amp` (precision, compile) are the trainer's.
    """
    launched = distributed.launched()  # under torchrun: gradients and metrics over the ranks
    table = [
        (True, BatchChecks),                                   # the first batch, checked
        (True, lambda: trainer.amp),                           # precision=, compile=
        (True, lambda: DivergenceWatch(on_diverge)),           # on_diverge=
        (True, EpochLog),                                      # verbose=, print_every=
        (trainer.verbose, ProgressBar),                        # verbose=
        (bool(checkpoint), lambda: Checkpoint(checkpoint, resume, override_opt)),  # resume=
        (trainer.board is not None, lambda: DrawBoard(trainer.board, board_path)),  # board=
        (launched, DataParallel),
        (launched, ReduceMetrics),
        (not launched, SeededShuffle),                         # seed=
        (True, ValidationBatches),        # the last validation pass batch by batch (Julia's)
    ]
    return [make() for wanted, make in table if wanted]
