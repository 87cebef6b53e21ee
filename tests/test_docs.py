"""The documentation: docstrings where things are defined, and the site MkDocs builds from them
(`mkdocs build --strict`): the API reference, the command-line flags and the PyTorch edition's
coverage table generated from the code and the run logs, readable offline."""

import importlib.util
import inspect
import os
import re
import subprocess
import sys
from contextlib import redirect_stdout
from html import unescape
from io import StringIO
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


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The site as `mkdocs build --strict` makes it from this checkout: a warning (a broken link,
    a missing page, a docstring mkdocstrings cannot render) fails the build."""
    for name in ("mkdocs", "material", "mkdocstrings_handlers.python"):
        pytest.importorskip(name, reason="the site needs the docs extra (pip install -e '.[docs]')")
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    return out


def _hooks():
    spec = importlib.util.spec_from_file_location("docs_hooks", ROOT / "docs" / "hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _ids(pages) -> set[str]:
    return {i for page in pages for i in re.findall(r'id="([^"]+)"', page.read_text())}


def test_every_public_name_of_d2lai_is_documented_on_an_api_page(site):
    import d2lai

    pages = [p for p in (site / "api").glob("d2lai.*.html")
             if not p.name.startswith("d2lai.torch.")]
    ids = _ids(pages)
    missing = [n for n in d2lai.__all__ if not any(i.endswith("." + n) for i in ids)]
    assert not missing, f"not documented on any API page: {missing}"
    trainer = (site / "api" / "d2lai.trainer.html").read_text()
    assert "gradient_clip_val" in trainer and "max_steps" in trainer and "evaluate" in trainer
    assert "Weight decay by parameter group" in (site / "api" / "d2lai.optim.html").read_text()


def test_every_public_name_of_d2lai_torch_is_on_an_api_page(site):
    from d2lai import torch as d2l

    pages = list((site / "api").glob("d2lai.torch.*.html"))
    ids, all_ids = _ids(pages), _ids((site / "api").glob("*.html"))
    text = unescape("".join(p.read_text() for p in pages))
    missing = []
    for name in d2l.__all__:
        documented = any(i.endswith("." + name) for i in ids)
        # a core object under the edition's name: a row that links to where it is documented
        row = re.search(rf"<code>d2l\.{name}</code></td>\s*<td>(.*?)</td>", text, re.S)
        target = row and re.search(r'href="[^"#]*#([^"]+)"', row.group(1))
        if not (documented or (row and (target is None and "<code>" in row.group(1)
                                        or target and target.group(1) in all_ids))):
            missing.append(name)
    assert not missing, f"not on any API page of d2lai.torch: {missing}"


def test_the_api_index_lists_every_name_with_a_link(site):
    import d2lai
    from d2lai import torch as d2l

    index = unescape((site / "api" / "index.html").read_text())
    for name in d2lai.__all__:
        assert f"<code>d2lai.{name}</code>" in index, name
    for name in d2l.__all__:
        assert f"<code>d2l.{name}</code>" in index, name


def _help(module, *argv) -> str:
    text = StringIO()
    with redirect_stdout(text), pytest.raises(SystemExit):
        module.parse_args([*argv, "--help"])
    return text.getvalue()


def _programs() -> list[str]:
    return [f"{folder}.{path.stem}" for folder in ("chapters", "examples")
            for path in sorted((ROOT / folder).glob("*.py"))
            if "def parse_args(" in path.read_text(encoding="utf-8")]


def test_every_flag_of_every_chapter_and_example_is_on_the_command_line_page(site):
    page = unescape((site / "cli.html").read_text())
    programs = _programs()
    assert {"chapters.batch_norm", "chapters.rnn", "chapters.modern_rnn", "chapters.attention",
            "chapters.batch_norm_exercises", "examples.deep_cnn"} <= set(programs)
    missing = []
    for name in programs:
        module = importlib.import_module(name)
        helps = [_help(module)]
        commands = re.search(r"\{([a-z,-]+)\}", helps[0])  # a program with subcommands
        helps += [_help(module, c) for c in commands.group(1).split(",")] if commands else []
        prog = re.search(r"usage: (\S+(?: \S+\.py| -m \S+))", helps[0]).group(1)
        assert f"<code>{prog}</code>" in page, f"{name}: no section for {prog}"
        missing += [f"{name} {flag}" for text in helps
                    for flag in set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", text))
                    if f"<code>{flag}</code>" not in page]
    assert not missing, f"flags missing from the command-line page: {missing}"


def test_the_site_reads_offline(site):
    """No page loads a script, style, font or image from elsewhere; search works from files."""
    remote = re.compile(r'<(?:script|link|img|iframe|source)\b[^>]*\b(?:src|href)="(?:https?:)?//')
    pages = list(site.rglob("*.html"))
    assert len(pages) > 30
    fetching = [str(p.relative_to(site)) for p in pages if remote.search(p.read_text())]
    assert not fetching, f"pages that fetch from elsewhere: {fetching[:5]}"
    assert not any("fonts.googleapis" in p.read_text() for p in site.rglob("*.css"))
    assert (site / "search" / "search_index.js").read_text().startswith("var __index = ")
    assert 'href="getting-started.html"' in (site / "index.html").read_text()  # file links


def _write_runs(root: Path, sections: list[str], runs: dict[str, str]) -> Path:
    root.mkdir()
    (root / "sections.txt").write_text("\n".join(sections) + "\n")
    for folder, text in runs.items():
        (root / f"{folder}.txt").write_text(text)
    return root


def test_the_coverage_table_is_made_from_the_run_logs(tmp_path):
    hooks = _hooks()
    runs = _write_runs(tmp_path / "runs", [
        "chapter_preliminaries/ndarray.md", "chapter_preliminaries/autograd.md",
        "chapter_builders-guide/use-gpu.md", "chapter_builders-guide/parameters.md",
        "chapter_builders-guide/lazy-init.md", "chapter_optimization/sgd.md",
        "chapter_recurrent-modern/lstm.md"], {
        "chapter_recurrent-modern": "FAIL  recurrent-modern__lstm (rc 124, 900s): \n",
        "chapter_preliminaries": "ok    preliminaries__ndarray (1s)\n"
                                 "ok    preliminaries__autograd (2s)\n"
                                 "book sections: 2 passed, 0 failed\n",
        "chapter_builders-guide": "ok    builders-guide__parameters (1s)\n"
                                  "FAIL  builders-guide__use-gpu (rc 1, 2s): RuntimeError: "
                                  "Found no NVIDIA driver\n# a note on the run\n"})
    table = hooks.coverage_markdown(runs)
    rows = {r.split("|")[1].strip(): [c.strip() for c in r.split("|")[2:-1]]
            for r in table.splitlines() if r.startswith("| ") and "---" not in r}
    assert rows["Preliminaries"] == ["2", "2", "0", "all run"]
    assert rows["Builders' guide"] == ["3", "1", "1", "see below, 1 not in the log"]
    assert rows["Optimisation"] == ["1", "", "", "not run"]
    assert rows["Modern RNNs"] == ["1", "0", "1", "see below"]
    assert rows["**all**"][:2] == ["**7**", "**3**"]
    assert "- `lstm`: stopped at the run's time limit, 900 s" in table  # timeout's rc 124
    assert "- `use-gpu`: RuntimeError: Found no NVIDIA driver" in table
    assert "- a note on the run (Builders' guide)" in table


@pytest.mark.parametrize("text, problem", [
    ("ok preliminaries__ndarray\n", "chapter_preliminaries.txt, line 1: not a line of run_all"),
    ("fine\n", "line 1"),
])
def test_a_run_log_that_is_not_run_all_output_is_refused_with_its_line(tmp_path, text, problem):
    hooks = _hooks()
    runs = _write_runs(tmp_path / "runs", ["chapter_preliminaries/ndarray.md"],
                       {"chapter_preliminaries": text})
    with pytest.raises(ValueError, match=re.escape(problem)):
        hooks.coverage_markdown(runs)


def test_a_run_log_of_no_chapter_is_refused(tmp_path):
    runs = _write_runs(tmp_path / "runs", ["chapter_preliminaries/ndarray.md"],
                       {"chapter_typo": "ok    typo__x (1s)\n"})
    with pytest.raises(ValueError, match="chapter_typo.txt is no chapter folder"):
        _hooks().coverage_markdown(runs)


def test_the_committed_run_logs_make_the_pytorch_page(site):
    page = unescape((site / "pytorch.html").read_text())
    chapters = {line.split("/")[0] for line in
                (ROOT / "docs" / "book-runs" / "sections.txt").read_text().split()}
    assert page.count("<td>not run</td>") == len(
        chapters - {p.stem for p in (ROOT / "docs" / "book-runs").glob("chapter_*.txt")})
    assert "<td>Preliminaries</td>" in page


def test_doctest_examples_are_shown_as_code():
    spec = importlib.util.spec_from_file_location("doctests", ROOT / "docs" / "doctests.py")
    doctests = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(doctests)
    text = "Sum.\n\n>>> 1 + 1\n2\n\nAfter.\n```python\n>>> kept\n```"
    assert doctests.fence_examples(text) == (
        "Sum.\n\n```pycon\n>>> 1 + 1\n2\n```\n\nAfter.\n```python\n>>> kept\n```")


def test_the_readme_is_a_first_screen_that_links_into_the_site():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 150
    assert "pip install -e . && python -m chapters.batch_norm" in readme
    assert 'pip install -e ".[dev]" && ruff check . && python -m pytest -q' in readme
    links = re.findall(r"\]\((docs/[^)#]+)", readme)
    assert len(links) >= 5
    assert [link for link in links if not (ROOT / link).exists()] == []
