"""The PyTorch edition's `d2l` API on d2lai's core: `from d2lai import torch as d2l`.

The PyTorch edition of *Dive into Deep Learning* trains with `d2l.Trainer(max_epochs,
num_gpus).fit(model, data)`, models derived from `d2l.Module` / `d2l.Classifier` (logits) and
data modules such as `d2l.FashionMNIST(batch_size)` or `d2l.TimeMachine(batch_size,
num_steps)`. This package gives those names, signatures and calling conventions, so that a
chapter's code runs with only its import line changed. Underneath there is one training loop
(`d2lai.Trainer`'s: first-batch checks, divergence watch, whole-set validation, one log line per
epoch, Ctrl-C), one data pipeline (d2lai's in-memory `TensorLoader`, over the same data
folders), one board (`d2lai.ProgressBoard`) and one set of models (d2lai's classifiers,
recurrent nets, encoder-decoders and attention).

The modules follow the book's parts: `tensors` (the preliminaries' tensor names, devices),
`models` (models and training), `data`, `sequences` (recurrent nets, encoder-decoders,
attention), `optimization` and `performance`, `vision` (boxes, anchors, detection and
segmentation data, `train_ch13`), `nlp` (word2vec, embeddings, BERT, sentiment, inference),
`hpo` (hyperparameter optimisation), `gan`, `rl` (reinforcement learning), `plotting`; `utils`
holds the function-style utilities of the first chapters that the later ones reuse.
"""

from .. import torch as d2l  # noqa: F401 (the edition's `d2l` module names itself `d2l`)
from . import (
    data,
    gan,
    hpo,
    models,
    nlp,
    optimization,
    performance,
    plotting,
    rl,
    sequences,
    tensors,
    utils,
    vision,
)
from .data import *  # noqa: F403
from .gan import *  # noqa: F403
from .hpo import *  # noqa: F403
from .models import *  # noqa: F403
from .nlp import *  # noqa: F403
from .nlp import (  # noqa: F401 (the book's helpers of BERT's data, reached as d2l._name)
    _get_batch_loss_bert,
    _get_mlm_data_from_tokens,
    _get_next_sentence,
    _get_nsp_data_from_paragraph,
    _pad_bert_inputs,
    _read_wiki,
    _replace_mlm_tokens,
    _WikiTextDataset,
)
from .optimization import *  # noqa: F403
from .performance import *  # noqa: F403
from .plotting import *  # noqa: F403
from .plotting import plt  # noqa: F401 (pyplot, imported when first used)
from .rl import *  # noqa: F403
from .sequences import *  # noqa: F403
from .tensors import *  # noqa: F403
from .tensors import (  # noqa: F401 (the edition's names for tensor operations)
    abs,
    arange,
    argmax,
    astype,
    batch_matmul,
    concat,
    cos,
    cosh,
    exp,
    expand_dims,
    eye,
    float32,
    int32,
    int64,
    linspace,
    log,
    matmul,
    meshgrid,
    normal,
    numpy,
    ones,
    ones_like,
    rand,
    randn,
    reduce_mean,
    reduce_sum,
    repeat,
    reshape,
    sigmoid,
    sin,
    sinh,
    size,
    stack,
    swapaxes,
    tanh,
    tensor,
    to,
    transpose,
    zeros,
    zeros_like,
)
from .utils import *  # noqa: F403
from .vision import *  # noqa: F403

__all__ = (tensors.__all__ + plotting.__all__ + models.__all__ + data.__all__ + utils.__all__
           + sequences.__all__ + optimization.__all__ + performance.__all__ + hpo.__all__
           + gan.__all__ + rl.__all__ + vision.__all__ + nlp.__all__)
