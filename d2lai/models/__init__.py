"""Model families: each owns its loss, its figures and its shape checks (`base`: any model;
`classifier`: class scores)."""

from .base import AbstractModel, forward, loss, training_step, validation_step
from .classifier import HEADS, AbstractClassifier, accuracy, guess_head

__all__ = ["AbstractModel", "AbstractClassifier", "HEADS", "accuracy", "guess_head", "forward",
           "loss", "training_step", "validation_step"]
