"""`d2lai.torch` is a package by the book's parts whose `__init__` only re-exports, and its
sequence names are d2lai's own models under the edition's names: one implementation."""

import ast
import inspect
from pathlib import Path

import d2lai
from d2lai import torch as d2l

PARTS = ("tensors", "models", "data", "sequences", "optimization", "performance", "plotting",
         "utils", "vision")


def test_init_only_re_exports_the_parts():
    tree = ast.parse(Path(d2l.__file__).read_text())
    defined = [node for node in tree.body
               if isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.Assign))
               and not (isinstance(node, ast.Assign) and node.targets[0].id == "__all__")]
    assert defined == []
    for name in d2l.__all__:
        value = getattr(d2l, name)
        home = getattr(value, "__module__", "") or ""
        part = next((p for p in PARTS if name in getattr(d2l, p).__all__), None)
        assert part is not None, name
        if home.startswith("d2lai.torch."):
            assert home == f"d2lai.torch.{part}", (name, home)
    assert len(d2l.__all__) == len(set(d2l.__all__))
    assert d2l.plt.__name__ == "matplotlib.pyplot" and d2l.reshape.__module__.endswith("tensors")


def test_the_sequence_names_are_d2lais_models():
    same = {"Vocab": d2lai.Vocab, "masked_softmax": d2lai.masked_softmax,
            "sequence_mask": d2lai.sequence_mask, "bleu": d2lai.bleu,
            "init_seq2seq": d2lai.init_seq2seq, "DotProductAttention": d2lai.DotProductAttention,
            "AdditiveAttention": d2lai.AdditiveAttention,
            "PositionalEncoding": d2lai.PositionalEncoding, "AddNorm": d2lai.AddNorm,
            "PositionWiseFFN": d2lai.PositionWiseFFN,
            "TransformerEncoderBlock": d2lai.TransformerEncoderBlock}
    for name, core in same.items():
        assert getattr(d2l, name) is core, name
    derived = {"RNNScratch": d2lai.RNNScratch, "RNNLMScratch": d2lai.RNNLMScratch,
               "EncoderDecoder": d2lai.AbstractEncoderDecoder, "Seq2Seq": d2lai.Seq2Seq,
               "Seq2SeqEncoder": d2lai.Seq2SeqEncoder,
               "MultiHeadAttention": d2lai.MultiHeadAttention,
               "TransformerEncoder": d2lai.TransformerEncoder,
               "TimeMachine": d2l.DataModule, "MTFraEng": d2l.DataModule,
               "Classifier": d2lai.AbstractClassifier}
    for name, base in derived.items():
        assert issubclass(getattr(d2l, name), base), name
    assert issubclass(d2l.RNNLM, d2l.RNNLMScratch) and issubclass(d2l.Seq2Seq, d2l.Classifier)
    assert d2l.RNNLM.output_layer is d2lai.RNNModelConcise.output_layer
    # no mathematics of its own: the sequence layer's code is names, construction and plotting
    source = inspect.getsource(d2l.sequences)
    assert "torch.bmm" not in source and "softmax(" not in source
