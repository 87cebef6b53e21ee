"""Every public name of the book's `d2l/torch.py` (d2l 1.0.3, 205 names) exists in `d2lai.torch`,
and each callable takes the book's parameters: the same names in the same order, a default
where the book has one, `*args` / `**kwargs` where the book takes them; parameters of d2lai's
own come after the book's, each with a default. (The book's modules hand their `**kwargs` to
`nn.Module.__init__`, which takes none: a module of d2lai's need not take them.) The list
below was read from the book's package once and is kept here as data: the tests never import
the book's `d2l`.

In the list, a name's parameters are written as the book's signature has them (`x=` has a
default); None marks a value that is not called (a constant, a dtype, the module itself) and
'...' one of torch's own functions (no Python signature to compare).
"""

import inspect

from torch import nn

from d2lai import torch as d2l

BOOK_NAMES = {
    'DATA_HUB': None,
    'DATA_URL': None,
    'nn_Module': '*args, **kwargs',
    'd2l': None,
    'use_svg_display': '',
    'set_figsize': 'figsize=',
    'set_axes': 'axes, xlabel, ylabel, xlim, ylim, xscale, yscale, legend',
    'plot': ('X, Y=, xlabel=, ylabel=, legend=, xlim=, ylim=, xscale=, yscale=, fmts=, '
             'figsize=, axes='),
    'add_to_class': 'Class',
    'HyperParameters': '',
    'ProgressBoard': ('xlabel=, ylabel=, xlim=, ylim=, xscale=, yscale=, ls=, colors=, fig=, '
                      'axes=, figsize=, display='),
    'Module': 'plot_train_per_epoch=, plot_valid_per_epoch=',
    'DataModule': 'root=, num_workers=',
    'Trainer': 'max_epochs, num_gpus=, gradient_clip_val=',
    'SyntheticRegressionData': 'w, b, noise=, num_train=, num_val=, batch_size=',
    'LinearRegressionScratch': 'num_inputs, lr, sigma=',
    'SGD': 'params, lr',
    'LinearRegression': 'lr',
    'FashionMNIST': 'batch_size=, resize=',
    'show_images': 'imgs, num_rows, num_cols, titles=, scale=',
    'Classifier': 'plot_train_per_epoch=, plot_valid_per_epoch=',
    'SoftmaxRegression': 'num_outputs, lr',
    'cpu': '',
    'gpu': 'i=',
    'num_gpus': '',
    'try_gpu': 'i=',
    'try_all_gpus': '',
    'corr2d': 'X, K',
    'init_cnn': 'module',
    'LeNet': 'lr=, num_classes=',
    'Residual': 'num_channels, use_1x1conv=, strides=',
    'ResNeXtBlock': 'num_channels, groups, bot_mul, use_1x1conv=, strides=',
    'TimeMachine': 'batch_size, num_steps, num_train=, num_val=',
    'Vocab': 'tokens=, min_freq=, reserved_tokens=',
    'RNNScratch': 'num_inputs, num_hiddens, sigma=',
    'check_len': 'a, n',
    'check_shape': 'a, shape',
    'RNNLMScratch': 'rnn, vocab_size, lr=',
    'RNN': 'num_inputs, num_hiddens',
    'RNNLM': 'rnn, vocab_size, lr=',
    'GRU': 'num_inputs, num_hiddens, num_layers, dropout=',
    'MTFraEng': 'batch_size, num_steps=, num_train=, num_val=',
    'show_list_len_pair_hist': 'legend, xlabel, ylabel, xlist, ylist',
    'Encoder': '',
    'Decoder': '',
    'EncoderDecoder': 'encoder, decoder',
    'init_seq2seq': 'module',
    'Seq2SeqEncoder': 'vocab_size, embed_size, num_hiddens, num_layers, dropout=',
    'Seq2Seq': 'encoder, decoder, tgt_pad, lr',
    'bleu': 'pred_seq, label_seq, k',
    'show_heatmaps': 'matrices, xlabel, ylabel, titles=, figsize=, cmap=',
    'masked_softmax': 'X, valid_lens',
    'DotProductAttention': 'dropout',
    'AdditiveAttention': 'num_hiddens, dropout, **kwargs',
    'AttentionDecoder': '',
    'MultiHeadAttention': 'num_hiddens, num_heads, dropout, bias=, **kwargs',
    'PositionalEncoding': 'num_hiddens, dropout, max_len=',
    'PositionWiseFFN': 'ffn_num_hiddens, ffn_num_outputs',
    'AddNorm': 'norm_shape, dropout',
    'TransformerEncoderBlock': 'num_hiddens, ffn_num_hiddens, num_heads, dropout, use_bias=',
    'TransformerEncoder': ('vocab_size, num_hiddens, ffn_num_hiddens, num_heads, num_blks, '
                           'dropout, use_bias='),
    'annotate': 'text, xy, xytext',
    'train_2d': 'trainer, steps=, f_grad=',
    'show_trace_2d': 'f, results',
    'Timer': '',
    'get_data_ch11': 'batch_size=, n=',
    'train_ch11': 'trainer_fn, states, hyperparams, data_iter, feature_dim, num_epochs=',
    'train_concise_ch11': 'trainer_fn, hyperparams, data_iter, num_epochs=',
    'Benchmark': 'description=',
    'split_batch': 'X, y, devices',
    'resnet18': 'num_classes, in_channels=',
    'train_batch_ch13': 'net, X, y, loss, trainer, devices',
    'train_ch13': 'net, train_iter, test_iter, loss, trainer, num_epochs, devices=',
    'box_corner_to_center': 'boxes',
    'box_center_to_corner': 'boxes',
    'bbox_to_rect': 'bbox, color',
    'multibox_prior': 'data, sizes, ratios',
    'show_bboxes': 'axes, bboxes, labels=, colors=',
    'box_iou': 'boxes1, boxes2',
    'assign_anchor_to_bbox': 'ground_truth, anchors, device, iou_threshold=',
    'offset_boxes': 'anchors, assigned_bb, eps=',
    'multibox_target': 'anchors, labels',
    'offset_inverse': 'anchors, offset_preds',
    'nms': 'boxes, scores, iou_threshold',
    'multibox_detection': 'cls_probs, offset_preds, anchors, nms_threshold=, pos_threshold=',
    'read_data_bananas': 'is_train=',
    'BananasDataset': 'is_train',
    'load_data_bananas': 'batch_size',
    'read_voc_images': 'voc_dir, is_train=',
    'VOC_COLORMAP': None,
    'VOC_CLASSES': None,
    'voc_colormap2label': '',
    'voc_label_indices': 'colormap, colormap2label',
    'voc_rand_crop': 'feature, label, height, width',
    'VOCSegDataset': 'is_train, crop_size, voc_dir',
    'load_data_voc': 'batch_size, crop_size',
    'read_csv_labels': 'fname',
    'copyfile': 'filename, target_dir',
    'reorg_train_valid': 'data_dir, labels, valid_ratio',
    'reorg_test': 'data_dir',
    'read_ptb': '',
    'subsample': 'sentences, vocab',
    'get_centers_and_contexts': 'corpus, max_window_size',
    'RandomGenerator': 'sampling_weights',
    'get_negatives': 'all_contexts, vocab, counter, K',
    'batchify': 'data',
    'load_data_ptb': 'batch_size, max_window_size, num_noise_words',
    'TokenEmbedding': 'embedding_name',
    'get_tokens_and_segments': 'tokens_a, tokens_b=',
    'BERTEncoder': ('vocab_size, num_hiddens, ffn_num_hiddens, num_heads, num_blks, dropout, '
                    'max_len=, **kwargs'),
    'MaskLM': 'vocab_size, num_hiddens, **kwargs',
    'NextSentencePred': '**kwargs',
    'BERTModel': 'vocab_size, num_hiddens, ffn_num_hiddens, num_heads, num_blks, dropout, max_len=',
    'load_data_wiki': 'batch_size, max_len',
    'read_imdb': 'data_dir, is_train',
    'load_data_imdb': 'batch_size, num_steps=',
    'predict_sentiment': 'net, vocab, sequence',
    'read_snli': 'data_dir, is_train',
    'SNLIDataset': 'dataset, num_steps, vocab=',
    'load_data_snli': 'batch_size, num_steps=',
    'predict_snli': 'net, vocab, premise, hypothesis',
    'rbfkernel': 'x1, x2, ls=',
    'HPOTrainer': 'max_epochs, num_gpus=, gradient_clip_val=',
    'HPOSearcher': '',
    'RandomSearcher': 'config_space, initial_config=',
    'HPOScheduler': '',
    'BasicScheduler': 'searcher',
    'HPOTuner': 'scheduler, objective',
    'hpo_objective_lenet': 'learning_rate, batch_size, max_epochs=',
    'SuccessiveHalvingScheduler': 'searcher, eta, r_min, r_max, prefact=',
    'update_D': 'X, Z, net_D, net_G, loss, trainer_D',
    'update_G': 'Z, net_D, net_G, loss, trainer_G',
    'frozen_lake': 'seed',
    'make_env': 'name=, seed=',
    'show_value_function_progress': 'env_desc, V, pi',
    'show_Q_function_progress': 'env_desc, V_all, pi_all',
    'load_array': 'data_arrays, batch_size, is_train=',
    'synthetic_data': 'w, b, num_examples',
    'sgd': 'params, lr, batch_size',
    'get_dataloader_workers': '',
    'load_data_fashion_mnist': 'batch_size, resize=',
    'evaluate_accuracy_gpu': 'net, data_iter, device=',
    'train_ch6': 'net, train_iter, test_iter, num_epochs, lr, device',
    'linreg': 'X, w, b',
    'squared_loss': 'y_hat, y',
    'get_fashion_mnist_labels': 'labels',
    'Animator': ('xlabel=, ylabel=, legend=, xlim=, ylim=, xscale=, yscale=, fmts=, nrows=, '
                 'ncols=, figsize='),
    'Accumulator': 'n',
    'accuracy': 'y_hat, y',
    'download': 'url, folder=, sha1_hash=',
    'extract': 'filename, folder=',
    'download_extract': 'name, folder=',
    'tokenize': 'lines, token=',
    'evaluate_loss': 'net, data_iter, loss',
    'grad_clipping': 'net, theta',
    'read_data_nmt': '',
    'preprocess_nmt': 'text',
    'tokenize_nmt': 'text, num_examples=',
    'truncate_pad': 'line, num_steps, padding_token',
    'build_array_nmt': 'lines, vocab, num_steps',
    'load_data_nmt': 'batch_size, num_steps, num_examples=',
    'sequence_mask': 'X, valid_len, value=',
    'MaskedSoftmaxCELoss': ('weight=, size_average=, ignore_index=, reduce=, reduction=, '
                            'label_smoothing='),
    'train_seq2seq': 'net, data_iter, lr, num_epochs, tgt_vocab, device',
    'predict_seq2seq': ('net, src_sentence, src_vocab, tgt_vocab, num_steps, device, '
                        'save_attention_weights='),
    'ones_like': '...',
    'ones': '...',
    'zeros_like': '...',
    'zeros': '...',
    'tensor': '...',
    'arange': '...',
    'meshgrid': '*tensors, indexing=',
    'sin': '...',
    'sinh': '...',
    'cos': '...',
    'cosh': '...',
    'tanh': '...',
    'linspace': '...',
    'exp': '...',
    'log': '...',
    'normal': '...',
    'rand': '...',
    'randn': '...',
    'matmul': '...',
    'int32': None,
    'int64': None,
    'float32': None,
    'concat': '...',
    'stack': '...',
    'abs': '...',
    'eye': '...',
    'sigmoid': '...',
    'batch_matmul': '...',
    'numpy': 'x, *args, **kwargs',
    'size': 'x, *args, **kwargs',
    'reshape': 'x, *args, **kwargs',
    'to': 'x, *args, **kwargs',
    'reduce_sum': 'x, *args, **kwargs',
    'argmax': 'x, *args, **kwargs',
    'astype': 'x, *args, **kwargs',
    'transpose': 'x, *args, **kwargs',
    'reduce_mean': 'x, *args, **kwargs',
    'expand_dims': 'x, *args, **kwargs',
    'swapaxes': 'x, *args, **kwargs',
    'repeat': 'x, *args, **kwargs',
}


def parameters(obj) -> list[str]:
    """A callable's parameters written as in BOOK_NAMES."""
    out = []
    for p in inspect.signature(obj).parameters.values():
        if p.kind is p.VAR_POSITIONAL:
            out.append("*" + p.name)
        elif p.kind is p.VAR_KEYWORD:
            out.append("**" + p.name)
        else:
            out.append(p.name + ("=" if p.default is not p.empty else ""))
    return out


def mismatch(name: str, book: str) -> str | None:
    """How d2lai's `name` fails to take the book's parameters `book`, or None."""
    obj = getattr(d2l, name)
    ours = parameters(obj)
    want = [p for p in book.split(", ") if p]
    if isinstance(obj, type) and issubclass(obj, nn.Module):
        want = [p for p in want if not p.startswith("**")]
    for i, p in enumerate(want):
        if p.startswith("*"):
            if p not in ours:
                return f"takes no {p}"
            continue
        if i >= len(ours) or ours[i].rstrip("=") != p.rstrip("="):
            return f"parameter {i + 1} is {ours[i] if i < len(ours) else 'missing'}, the " \
                   f"book's is {p}"
        if p.endswith("=") and not ours[i].endswith("="):
            return f"{p.rstrip('=')} has no default, the book's has one"
    extra = [p for p in ours[len(want):] if not (p.endswith("=") or p.startswith("*"))]
    if extra:
        return f"its own parameters {', '.join(extra)} have no default"
    return None


def test_the_list_is_the_books_whole_list():
    assert len(BOOK_NAMES) == 205


def test_every_name_of_the_book_exists():
    missing = [name for name in BOOK_NAMES if not hasattr(d2l, name)]
    assert missing == [], f"{len(missing)} of the book's names are missing: {' '.join(missing)}"


def test_every_callable_takes_the_books_parameters():
    wrong = {}
    for name, book in BOOK_NAMES.items():
        if not hasattr(d2l, name) or book is None:
            continue
        assert callable(getattr(d2l, name)), name
        if book != "...":
            problem = mismatch(name, book)
            if problem:
                wrong[name] = problem
    assert wrong == {}


def test_a_wrong_signature_is_caught():
    assert mismatch("Trainer", "max_epochs, num_gpus=, gradient_clip_val=") is None
    assert mismatch("Trainer", "epochs, num_gpus=") == \
        "parameter 1 is max_epochs, the book's is epochs"
    assert mismatch("cpu", "*args") == "takes no *args"
    assert "has no default" in mismatch("Trainer", "max_epochs=")
