"""d2lai: the companion library of the Julia edition of Dive into Deep Learning, on PyTorch."""

from .board import ProgressBoard, draw, save_gif, save_plot
from .data import (
    AbstractData,
    FashionMNISTData,
    SyntheticRegressionData,
    TensorLoader,
    get_dataloader,
    train_dataloader,
    val_dataloader,
)
from .device import get_device, seed
from .model import AbstractClassifier, AbstractModel, accuracy
from .optim import Adam, Descent, Momentum, setup
from .trainer import Metrics, Trainer, fit

__version__ = "0.1.0"

__all__ = [
    "AbstractClassifier",
    "AbstractData",
    "AbstractModel",
    "Adam",
    "Descent",
    "FashionMNISTData",
    "Metrics",
    "Momentum",
    "ProgressBoard",
    "SyntheticRegressionData",
    "TensorLoader",
    "Trainer",
    "accuracy",
    "draw",
    "fit",
    "get_dataloader",
    "get_device",
    "save_gif",
    "save_plot",
    "seed",
    "setup",
    "train_dataloader",
    "val_dataloader",
]
