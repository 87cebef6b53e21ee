"""Callbacks: everything around the training loop, one file each, called at its named events
(see `base` for the events and the order they run in)."""

from .base import Callback, MonitorCallback, monitor_mode
from .batch_checks import BatchChecks
from .board import DrawBoard
from .checkpoint import Checkpoint
from .csv_logger import CSVLogger
from .data_parallel import DataParallel, SeededShuffle
from .divergence import Diverged, DivergenceWatch
from .early_stopping import EarlyStopping
from .epoch_log import EpochLog
from .lr_scheduler import LRScheduler
from .progress import ProgressBar
from .reduce_metrics import ReduceMetrics
from .reduce_metrics import ReduceMetrics as ReduceFigures  # its earlier name  # noqa: F401
from .tensorboard import TensorBoardLogger
from .validation_batches import BatchValues, ValidationBatches

__all__ = ["Callback", "MonitorCallback", "monitor_mode", "BatchChecks", "Checkpoint",
           "CSVLogger", "DataParallel", "Diverged", "DivergenceWatch", "DrawBoard",
           "EarlyStopping", "EpochLog", "LRScheduler", "ProgressBar", "ReduceMetrics",
           "SeededShuffle", "TensorBoardLogger", "BatchValues", "ValidationBatches"]
