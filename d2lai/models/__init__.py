"""Model families: each owns its loss, its metrics and its shape checks (`base`: any model;
`regression`: the concise linear regression; `classifier`: class scores; `rnn`: recurrent nets
and language models; `seq2seq`: encoder-decoders), and the layers they are built of
(`attention`, `transformer`)."""

from .attention import (
    AdditiveAttention,
    DotProductAttention,
    MultiHeadAttention,
    MultiHeadedAttention,
    PositionalEncoding,
    masked_softmax,
    sequence_mask,
    show_heatmaps,
)
from .base import (
    AbstractConciseModel,
    AbstractModel,
    Model,
    forward,
    loss,
    training_step,
    validation_step,
)
from .classifier import HEADS, AbstractClassifier, accuracy, guess_head
from .regression import LinearRegressionConcise
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
    flux_init,
    output_layer,
    prediction,
)
from .seq2seq import (
    AbstractEncoderDecoder,
    Seq2Seq,
    Seq2SeqAttentionDecoder,
    Seq2SeqDecoder,
    Seq2SeqEncoder,
    bleu,
    init_seq2seq,
    init_state,
    predict_step,
)
from .transformer import (
    AddNorm,
    PositionWiseFFN,
    TransformerDecoder,
    TransformerDecoderBlock,
    TransformerEncoder,
    TransformerEncoderBlock,
)

__all__ = ["AbstractModel", "AbstractConciseModel", "Model", "AbstractClassifier", "HEADS",
           "accuracy", "guess_head", "forward", "loss", "training_step", "validation_step",
           "LinearRegressionConcise",
           # recurrent nets
           "AbstractRNNClassifier", "RNNScratch", "LSTMScratch", "GRUScratch", "StackedRNN",
           "StackedRNNScratch", "RNNLMScratch", "RNNModelConcise", "clip_gradients", "flux_init",
           "output_layer", "prediction",
           # attention
           "sequence_mask", "masked_softmax", "DotProductAttention", "AdditiveAttention",
           "MultiHeadedAttention", "MultiHeadAttention", "PositionalEncoding", "show_heatmaps",
           # encoder-decoders
           "AbstractEncoderDecoder", "Seq2SeqEncoder", "Seq2SeqDecoder",
           "Seq2SeqAttentionDecoder", "Seq2Seq", "init_seq2seq", "init_state", "predict_step",
           "bleu",
           # the transformer
           "PositionWiseFFN", "AddNorm", "TransformerEncoderBlock", "TransformerEncoder",
           "TransformerDecoderBlock", "TransformerDecoder"]
