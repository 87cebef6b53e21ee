"""The API reference: docstrings where things are defined, and pages pdoc builds from them."""

import importlib
import inspect
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Modules whose every public name documents its arguments and shows an example.
DOCUMENTED = ["d2lai.trainer", "d2lai.board", "d2lai.runs", "d2lai.device",
              "d2lai.callbacks.base", "d2lai.callbacks.batch_checks", "d2lai.callbacks.board",
              "d2lai.callbacks.csv_logger",
              "d2lai.callbacks.divergence", "d2lai.callbacks.early_stopping",
              "d2lai.callbacks.epoch_log", "d2lai.callbacks.lr_scheduler",
              "d2lai.callbacks.progress", "d2lai.callbacks.tensorboard",
              "d2lai.metrics", "chapters.cli"]
IGNORED = {"self", "args", "kwargs", "trainer_kwargs", "cls"}


def _public(module):
    for name in getattr(module, "__all__", []):
        obj = getattr(module, name)
        if (inspect.isclass(obj) or inspect.isfunction(obj)) and obj.__module__ == module.__name__:
            yield name, obj


def _text(obj) -> str:
    """The docstring of a function, or of a class with its __init__'s."""
    text = inspect.getdoc(obj) or ""
    if inspect.isclass(obj) and "__init__" in vars(obj):
        text += inspect.getdoc(obj.__init__) or ""
    return text


def _parameters(obj) -> list[str]:
    target = obj.__init__ if inspect.isclass(obj) else obj
    if inspect.isclass(obj) and "__init__" not in vars(obj) and not hasattr(
            obj, "__dataclass_fields__"):
        return []
    return [p for p in inspect.signature(target).parameters if p not in IGNORED]


@pytest.mark.parametrize("module_name", DOCUMENTED)
def test_every_public_name_documents_its_arguments_and_shows_an_example(module_name):
    module = importlib.import_module(module_name)
    assert inspect.getdoc(module), f"{module_name} has no module docstring"
    problems = []
    for name, obj in _public(module):
        text = _text(obj)
        missing = [p for p in _parameters(obj) if p not in text]
        if not text:
            problems.append(f"{name}: no docstring")
        elif missing:
            problems.append(f"{name}: arguments not described: {', '.join(missing)}")
        elif ">>>" not in text and not (inspect.isclass(obj) and issubclass(obj, Exception)):
            problems.append(f"{name}: no example (>>>)")
    assert not problems, f"{module_name}:\n" + "\n".join(problems)


def test_trainer_documents_every_argument_by_name():
    from d2lai import Trainer

    text = inspect.getdoc(Trainer)
    for name in inspect.signature(Trainer.__init__).parameters:
        if name != "self":
            assert f"    {name}:" in text, f"Trainer's docstring does not describe {name}"


def test_the_api_reference_builds_from_the_docstrings(tmp_path):
    pytest.importorskip("pdoc", reason="the API reference needs pdoc (the dev extra)")
    out = tmp_path / "api"
    done = subprocess.run([sys.executable, "docs/api.py", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    for page in ("d2lai.html", "d2lai/trainer.html", "d2lai/callbacks.html",
                 "d2lai/callbacks/lr_scheduler.html", "d2lai/board.html", "d2lai/runs.html",
                 "d2lai/data.html", "d2lai/optim.html", "d2lai/models.html", "d2lai/torch.html"):
        assert (out / page).is_file(), f"no page {page}: {sorted(p.name for p in out.iterdir())}"
    trainer = (out / "d2lai" / "trainer.html").read_text()
    assert "gradient_clip_val" in trainer and "evaluate" in trainer and "max_steps" in trainer
    assert "Weight decay by parameter group" in (out / "d2lai" / "optim.html").read_text()
    assert (out / "chapters" / "cli.html").is_file() and (out / "index.html").is_file()
