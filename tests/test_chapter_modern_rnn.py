"""Chapter 9 end to end on a generated Time Machine: the LSTM, GRU and deep GRU language
models, scratch and concise, each with the text's own learning rate; perplexity falls."""

import json
import runpy
import sys

import pytest

from chapters import modern_rnn as chapter

pytestmark = pytest.mark.filterwarnings("ignore:.*is not the book's file")


def test_each_model_trains_with_its_own_settings(tm_root, tmp_path, capsys, one_thread):
    out = tmp_path / "out"
    results = chapter.main(["--model", "gru", "lstm-concise", "deep-gru-concise", "--data-root",
                            str(tm_root), "--out", str(out), "--cpu", "--seed", "0",
                            "--epochs", "3", "--batchsize", "32", "--num-steps", "8",
                            "--num-train", "320", "--num-val", "64"])
    assert list(results) == ["gru", "lstm-concise", "deep-gru-concise"]
    printed = capsys.readouterr()
    for name, cls in (("gru", "RNNLMScratch"), ("lstm-concise", "RNNModelConcise"),
                      ("deep-gru-concise", "RNNModelConcise")):
        ppl = results[name]["history"]["val_ppl"]
        assert len(ppl) == 3 and ppl[-1] < ppl[0], (name, ppl)
        assert json.loads((out / f"{name}-history.json").read_text())["model"] == cls
        assert (out / f"{name}-board.png").is_file()
        assert any(line.startswith(name) and cls in line for line in printed.out.splitlines())
    # each with the text's learning rate: 4 for the GRU, 1 for the LSTM, 2 for the deep GRU
    assert "3 epochs of Descent(4.0)" in printed.out.split("(gru)")[1].split("\n")[0]
    assert "Descent(1.0)" in printed.out.split("(lstm-concise)")[1].split("\n")[0]
    assert "Descent(2.0)" in printed.out.split("(deep-gru-concise)")[1].split("\n")[0]


def test_the_models_are_the_texts():
    import torch
    from torch import nn

    import d2lai

    V, H = 7, 5
    models = {name: make(V, H) for name, (make, _, _) in chapter.MODELS.items()}
    assert isinstance(models["lstm"].rnn, d2lai.LSTMScratch) and models["lstm"].rnn.sigma == 0.1
    assert isinstance(models["gru"].rnn, d2lai.GRUScratch)
    deep = models["deep-gru"].rnn
    assert isinstance(deep, d2lai.StackedRNN) and len(deep.rnns) == 2
    assert all(isinstance(cell, d2lai.GRUScratch) for cell in deep.rnns)
    assert isinstance(models["deep-gru-concise"].rnn, nn.GRU)
    assert models["deep-gru-concise"].rnn.num_layers == 2
    X = torch.randint(0, V, (3, 4))
    for model in models.values():
        assert model(X).shape == (3, 4, V)
    assert {name: (lr, epochs) for name, (_, lr, epochs) in chapter.MODELS.items()} == {
        "lstm": (1.0, 100), "lstm-concise": (1.0, 100), "gru": (4.0, 50),
        "gru-concise": (4.0, 50), "deep-gru": (4.0, 50), "deep-gru-concise": (2.0, 100)}
    args = chapter.parse_args(["--model", "all", "gru"])
    assert args.model == list(chapter.MODELS) and args.epochs is None  # each model's own


def test_help_and_bad_flags(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["chapters/modern_rnn.py", "--help"])
    with pytest.raises(SystemExit) as done:
        runpy.run_path(chapter.__file__, run_name="__main__")
    assert done.value.code == 0 and "deep-gru-concise" in capsys.readouterr().out
    for flags, message in ((["--num-steps", "-2"], "--num-steps: must be a positive integer"),
                           (["--model", "rnn"], "invalid choice: 'rnn'")):
        with pytest.raises(SystemExit) as done:
            chapter.main(flags)
        assert done.value.code == 2 and message in capsys.readouterr().err
