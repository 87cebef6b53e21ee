"""Data modules: in-memory tensors served as batches (`base`), the MNIST-format image sets
(`vision`), the book's downloadable files (`download`), the text of chapters 8-10 (`text`)."""

from .base import (
    AbstractData,
    SyntheticRegressionData,
    TensorLoader,
    default_root,
    get_dataloader,
    train_dataloader,
    val_dataloader,
)
from .download import DATA_HUB, DATA_URL, download, download_extract, extract
from .text import (
    MTFraEng,
    TimeMachine,
    Vocab,
    build,
    show_list_len_pair_hist,
    to_tokens,
    unk,
)
from .vision import FASHION_MNIST_FILES, IDX_FILES, FashionMNISTData, MNISTData, MNISTLikeData

__all__ = ["AbstractData", "TensorLoader", "SyntheticRegressionData", "get_dataloader",
           "train_dataloader", "val_dataloader", "default_root", "MNISTLikeData",
           "FashionMNISTData", "MNISTData", "IDX_FILES", "FASHION_MNIST_FILES",
           "DATA_URL", "DATA_HUB", "download", "extract", "download_extract",
           "Vocab", "TimeMachine", "MTFraEng", "unk", "to_tokens", "build",
           "show_list_len_pair_hist"]
