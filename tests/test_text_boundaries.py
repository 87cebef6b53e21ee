"""Bad input at the boundary of a fit on text: each is refused before the first step, with a
message that says what to change, through `d2lai.fit` as a reader would meet it."""

import warnings

import pytest
import torch
from torch import nn

import d2lai
from d2lai.testing import write_fake_fra_eng, write_fake_time_machine

pytestmark = pytest.mark.usefixtures("offline")


@pytest.fixture(scope="module")
def text(tm_root):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the stand-in is not the book's file
        return d2lai.TimeMachine(32, 8, num_train=96, num_val=32, root=tm_root)


@pytest.fixture(scope="module")
def pairs(fra_root):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return d2lai.MTFraEng(32, num_train=64, num_val=32, root=fra_root)


def _fit_refuses(model, data, match):
    """fit raises a ValueError matching `match` before any step, leaving the weights alone."""
    before = {k: v.clone() for k, v in model.state_dict().items()}
    trainer = d2lai.Trainer(model, data, d2lai.Adam(0.01), max_epochs=1, verbose=False)
    with pytest.raises(ValueError, match=match):
        d2lai.fit(trainer)
    assert trainer.steps == 0 and trainer.history == {}
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_sequences_longer_than_the_transformer_can_place(pairs):
    V_src, V_tgt = len(pairs.src_vocab), len(pairs.tgt_vocab)
    model = d2lai.Seq2Seq(d2lai.TransformerEncoder(V_src, 8, 16, 2, 1, 0.0, max_len=5),
                          d2lai.TransformerDecoder(V_tgt, 8, 16, 2, 1, 0.0, max_len=5),
                          pairs.tgt_vocab["<pad>"])
    _fit_refuses(model, pairs, r"the sequences need 9 positions but the positional encoding "
                               r"has max_len=5: build it with max_len >= 9")


def test_a_language_model_for_another_vocabulary(text):
    V = len(text.vocab)
    larger = d2lai.RNNLMScratch(d2lai.RNNScratch(V + 3, 8), V + 3)
    _fit_refuses(larger, text, rf"the data's vocabulary has {V} tokens but RNNLMScratch was "
                               rf"built for vocab_size={V + 3}: build the model with "
                               rf"vocab_size=len\(data.vocab\)")
    smaller = d2lai.RNNModelConcise(nn.GRU(V - 5, 8), V - 5)
    _fit_refuses(smaller, text, rf"the data's vocabulary has {V} tokens but RNNModelConcise "
                                rf"was built for vocab_size={V - 5}")  # one-hot batches


def test_an_encoder_decoder_for_other_vocabularies(pairs):
    V_src, V_tgt, pad = len(pairs.src_vocab), len(pairs.tgt_vocab), pairs.tgt_vocab["<pad>"]

    def model(v_src, v_tgt):
        return d2lai.Seq2Seq(d2lai.Seq2SeqEncoder(v_src, 8, 8, 1),
                             d2lai.Seq2SeqAttentionDecoder(v_tgt, 8, 8, 1), pad)

    _fit_refuses(model(V_src - 4, V_tgt), pairs,
                 rf"source token indices range from 0 to {V_src - 1}, but the source "
                 rf"vocabulary of the model has {V_src - 4} tokens")
    _fit_refuses(model(V_src, V_tgt + 2), pairs,
                 rf"expected the model to output {V_tgt} class scores per target \(the data has "
                 rf"{V_tgt} classes\), got {V_tgt + 2}")


def test_num_steps_of_zero_or_less_is_refused_by_the_data(tmp_path):
    write_fake_time_machine(tmp_path)
    write_fake_fra_eng(tmp_path)
    for steps in (0, -3):
        with pytest.raises(ValueError, match=f"TimeMachine: num_steps must be a positive "
                                             f"integer, got {steps}"):
            d2lai.TimeMachine(32, steps, root=tmp_path)
        with pytest.raises(ValueError, match=f"MTFraEng: num_steps must be a positive "
                                             f"integer, got {steps}"):
            d2lai.MTFraEng(32, num_steps=steps, root=tmp_path)


def test_an_empty_corpus_is_refused_by_the_data(tmp_path):
    import zipfile

    (tmp_path / "timemachine.txt").write_text("")
    with pytest.raises(ValueError, match="has 0 characters after preprocessing"):
        d2lai.TimeMachine(32, 8, root=tmp_path)
    with zipfile.ZipFile(tmp_path / "fra-eng.zip", "w") as z:
        z.writestr("fra-eng/fra.txt", "no tab on this line\n")
    with pytest.raises(ValueError, match=r"holds 0 sentence pairs .*or check the file"):
        d2lai.MTFraEng(32, root=tmp_path)
