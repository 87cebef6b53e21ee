"""Model families: each owns its loss, its figures and its shape checks (`base`: any model;
`classifier`: class scores;
`rnn`: recurrent nets and language models)."""

from .base import AbstractModel, forward, loss, training_step, validation_step
from .classifier import HEADS, AbstractClassifier, accuracy, guess_head
from .rnn import (
    AbstractRNNClassifier,
    GRUScratch,
    LSTMScratch,
    RNNLMScratch,
    RNNModelConcise,
    RNNScratch,
    StackedRNN,
    StackedRNNScratch,
    clip_gradients,
    output_layer,
    prediction,
)

__all__ = ["AbstractModel", "AbstractClassifier", "HEADS", "accuracy", "guess_head", "forward",
           "loss", "training_step", "validation_step", "AbstractRNNClassifier", "GRUScratch",
           "LSTMScratch", "RNNLMScratch", "RNNModelConcise", "RNNScratch", "StackedRNN",
           "StackedRNNScratch", "clip_gradients", "output_layer", "prediction"]
