"""Callbacks: everything around the training loop, one file each, called at its named events."""

from .base import Callback, monitor_mode
from .board import DrawBoard
from .checkpoint import Checkpoint
from .early_stopping import EarlyStopping

__all__ = ["Callback", "Checkpoint", "DrawBoard", "EarlyStopping", "monitor_mode"]
