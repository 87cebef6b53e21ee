"""d2lai: the companion library of the Julia edition of Dive into Deep Learning, on PyTorch."""

from .board import ProgressBoard, draw, save_gif, save_plot
from .callbacks import Callback, EarlyStopping
from .data import (
    AbstractData,
    FashionMNISTData,
    MNISTData,
    MNISTLikeData,
    SyntheticRegressionData,
    TensorLoader,
    get_dataloader,
    train_dataloader,
    val_dataloader,
)
from .device import get_device, seed
from .models import (
    AbstractClassifier,
    AbstractModel,
    accuracy,
    forward,
    loss,
    training_step,
    validation_step,
)
from .optim import (
    AdaDelta,
    AdaGrad,
    Adam,
    AdaMax,
    AdamW,
    Descent,
    Momentum,
    Nesterov,
    OptimiserChain,
    RMSProp,
    WeightDecay,
    setup,
)
from .runs import Run, RunTable, grid, sweep
from .trainer import Metrics, Trainer, fit

__version__ = "0.1.0"

__all__ = [
    "AbstractClassifier",
    "AbstractData",
    "AbstractModel",
    "AdaDelta",
    "AdaGrad",
    "AdaMax",
    "Adam",
    "AdamW",
    "Callback",
    "Descent",
    "EarlyStopping",
    "FashionMNISTData",
    "MNISTData",
    "MNISTLikeData",
    "Metrics",
    "Momentum",
    "Nesterov",
    "OptimiserChain",
    "ProgressBoard",
    "RMSProp",
    "Run",
    "RunTable",
    "SyntheticRegressionData",
    "TensorLoader",
    "Trainer",
    "WeightDecay",
    "accuracy",
    "draw",
    "fit",
    "forward",
    "get_dataloader",
    "get_device",
    "grid",
    "loss",
    "save_gif",
    "save_plot",
    "seed",
    "setup",
    "sweep",
    "train_dataloader",
    "training_step",
    "val_dataloader",
    "validation_step",
]
