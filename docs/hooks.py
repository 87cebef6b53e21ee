"""What the documentation site generates when it is built (a MkDocs hook, see mkdocs.yml).

- The API reference: a page a module of `d2lai` and of `d2lai.torch`, made from the packages'
  `__all__`, so a name added to `__all__` appears with no page to edit.
- The command-line page: every chapter's and example's flags, read from their parsers.
- The PyTorch edition's coverage table: one row a chapter of `book-runs/sections.txt`, from the
  run logs `book-runs/<chapter folder>.txt` (a chapter without one is "not run").

Each is made from the code and files as they are, at every build.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import pkgutil
import re
import sys
from contextlib import redirect_stdout
from io import StringIO
from pathlib import Path
from unittest import mock

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # this checkout's code, not an installed copy
    sys.path.insert(0, str(ROOT))

API = "api"
CLI_MARK = "<!-- command-line flags -->"
RUNS_MARK = "<!-- book coverage -->"


# --- the API reference -----------------------------------------------------------------------

def _modules(package: str) -> list:
    """`package` and every module under it, imported, in name order."""
    top = importlib.import_module(package)
    names = [m.name for m in pkgutil.walk_packages(top.__path__, package + ".")]
    return [top] + [importlib.import_module(n) for n in sorted(names)]


def home(name: str, obj, modules: list) -> str | None:
    """The d2lai module that defines `obj` (public as `name`), or None for an outside object
    (a torch class under an edition's name)."""
    if inspect.ismodule(obj):  # a library the edition names (d2l.torchvision, d2l.plt)
        return obj.__name__ if obj.__name__.startswith("d2lai") else None
    module = getattr(obj, "__module__", None) if (inspect.isclass(obj) or callable(obj)) else None
    if module:
        return module if module.startswith("d2lai") else None
    # a constant: the deepest module that holds it under that name
    holders = [m.__name__ for m in modules if vars(m).get(name, object()) is obj]
    return max(holders, key=len) if holders else None


def api_pages() -> dict[str, str]:
    """Page path (under docs/) to its Markdown: the index, then a page a module."""
    d2lai, torch_face = importlib.import_module("d2lai"), importlib.import_module("d2lai.torch")
    core = [m for m in _modules("d2lai") if not m.__name__.startswith("d2lai.torch")]
    face = _modules("d2lai.torch")[1:]
    everything = core + face

    members: dict[str, list[str]] = {}  # module -> the public names it defines
    for m in core + face:
        for name in getattr(m, "__all__", []):
            if home(name, getattr(m, name), everything) == m.__name__:
                members.setdefault(m.__name__, []).append(name)
    for package in (d2lai, torch_face):  # names a package exports from a module's private part
        for name in package.__all__:
            where = home(name, getattr(package, name), everything)
            if where and name not in members.get(where, []):
                members.setdefault(where, []).append(name)

    def page(module: str) -> str:
        return f"{API}/{module}.md"

    def link(name: str, obj, from_module: str) -> str:
        where = home(name, obj, everything)
        if where is None and inspect.ismodule(obj):
            return f"the module `{obj.__name__}`"
        if where is None:
            outside = getattr(obj, "__module__", "")
            return f"`{outside}.{getattr(obj, '__qualname__', name)}`" if outside else "outside"
        rel = "" if where == from_module else f"{where}.md"
        return f"[`{where}.{name}`]({rel}#{where}.{name})"

    pages = {}
    for m in core + face:
        names = members.get(m.__name__, [])
        lines = [f"# `{m.__name__}`", "", f"::: {m.__name__}", "    options:",
                 "      show_root_heading: false", "      show_root_toc_entry: false",
                 f"      members: {names!r}" if names else "      members: false", ""]
        if m.__name__.startswith("d2lai.torch."):  # the edition's names that are core's own
            shared = [(n, getattr(m, n)) for n in getattr(m, "__all__", []) if n not in names]
            if shared:
                lines += ["## Names shared with the core", "",
                          "These `d2l` names are the core's objects under the edition's name:",
                          "", "| `d2l.` name | is |", "|---|---|"]
                lines += [f"| `d2l.{n}` | {link(n, o, m.__name__)} |" for n, o in shared]
        if names or m.__name__.startswith("d2lai.torch."):
            pages[page(m.__name__)] = "\n".join(lines) + "\n"

    def table(package, prefix: str) -> list[str]:
        rows = ["| name | defined in |", "|---|---|"]
        for name in sorted(package.__all__, key=str.lower):
            rows.append(f"| `{prefix}{name}` | {link(name, getattr(package, name), '')} |")
        return rows

    index = ["# API reference", "",
             "Every public name of `d2lai` (the Julia edition's names) and of `d2lai.torch` (the "
             "PyTorch edition's `d2l`), with the module that defines it. Each module's page "
             "shows the docstrings: what a name does, its arguments, what it returns, an "
             "example.", "",
             "## `import d2lai`", "", *table(d2lai, "d2lai.")]
    index += ["", "## `from d2lai import torch as d2l`", "", *table(torch_face, "d2l."),
              "", "## Modules", ""]
    index += [f"- [`{m}`]({m}.md)" for m in sorted(p[len(API) + 1:-3] for p in pages)]
    pages[f"{API}/index.md"] = "\n".join(index) + "\n"
    return pages


def api_nav(pages: dict[str, str]) -> list:
    """The API reference's part of the navigation: the index, the core's modules, the edition's."""
    modules = sorted(p for p in pages if p != f"{API}/index.md")
    core = [{p[len(API) + 1:-3]: p} for p in modules if not p.startswith(f"{API}/d2lai.torch")]
    face = [{p[len(API) + 1:-3]: p} for p in modules if p.startswith(f"{API}/d2lai.torch")]
    return [{"Index": f"{API}/index.md"}, {"d2lai": core}, {"d2lai.torch": face}]


# --- the command line ------------------------------------------------------------------------

PROGRAMS = ["chapters.batch_norm", "chapters.batch_norm_exercises", "chapters.rnn",
            "chapters.modern_rnn", "chapters.attention"]


class _Parser(Exception):
    """Raised in place of parsing, carrying the parser a `parse_args` built."""


def parser_of(module) -> argparse.ArgumentParser:
    """The ArgumentParser that `module.parse_args` builds, caught as it is about to parse."""
    def caught(self, args=None, namespace=None):
        raise _Parser(self)

    with mock.patch.object(argparse.ArgumentParser, "parse_args", caught):
        try:
            module.parse_args([])
        except _Parser as found:
            return found.args[0]
    raise RuntimeError(f"{module.__name__}.parse_args did not parse")


def programs() -> list[str]:
    """The chapters, then the examples: every module of chapters/ and examples/ with a
    `parse_args` (chapters.cli, the shared flags, has none)."""
    found = []
    for package in ("chapters", "examples"):
        for name in sorted(m.name for m in pkgutil.iter_modules([str(ROOT / package)])):
            if "def parse_args(" in (ROOT / package / f"{name}.py").read_text(encoding="utf-8"):
                found.append(f"{package}.{name}")
    order = {name: i for i, name in enumerate(PROGRAMS)}
    return sorted(found, key=lambda n: (not n.startswith("chapters"), order.get(n, 99), n))


def _flags_table(parser: argparse.ArgumentParser, leave_out: set = frozenset()) -> list[str]:
    """A row a flag of `parser` (but those whose dest is in `leave_out`)."""
    rows = ["| flag | default | what it does |", "|---|---|---|"]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) or action.help == argparse.SUPPRESS \
                or action.dest in leave_out:
            continue
        flag = ", ".join(f"`{s}`" for s in action.option_strings) or f"`{action.dest}`"
        if action.choices and not isinstance(action, argparse._SubParsersAction):
            flag += " " + "\\|".join(f"`{c}`" for c in action.choices)
        elif action.nargs != 0 and action.option_strings:
            flag += f" `{action.metavar or action.dest.upper()}`"
        default = parser.get_default(action.dest)
        shown = "" if default in (None, False, argparse.SUPPRESS) or action.nargs == 0 \
            else f"`{' '.join(map(str, default)) if isinstance(default, list) else default}`"
        text = (action.help or "").replace("%(default)s", str(default)).replace("|", "\\|")
        rows.append(f"| {flag} | {shown} | {' '.join(text.split())} |")
    return rows


def cli_markdown() -> str:
    """A section a program: how to run it, what it does, a table of its flags (a subcommand
    each its own table)."""
    out = []
    for name in programs():
        parser = parser_of(importlib.import_module(name))
        out += [f"## `{parser.prog}`", "", " ".join((parser.description or "").split()), ""]
        out += _flags_table(parser) + [""]
        for sub in [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]:
            commands = list(sub.choices.values())
            shared = set.intersection(*({a.dest for a in c._actions} for c in commands))
            out += [f"Every `{parser.prog} NAME` takes these; each `NAME` adds its own below.",
                    ""] + _flags_table(
                commands[0], {a.dest for a in commands[0]._actions} - shared) + [""]
            for sub_name, sub_parser in sub.choices.items():
                text = " ".join((sub_parser.description or "").split())
                out += [f"### `{parser.prog} {sub_name}`", "",  # "1. ..." is no list here
                        re.sub(r"^(\d+)\.", r"\1\\.", text), ""]
                out += _flags_table(sub_parser, shared) + [""]
    return "\n".join(out)


def help_text(module, *argv: str) -> str:
    """What `python -m module [argv] --help` prints."""
    text = StringIO()
    with redirect_stdout(text):
        try:
            module.parse_args([*argv, "--help"])
        except SystemExit:
            pass
    return text.getvalue()


# --- the PyTorch edition's coverage ----------------------------------------------------------

RUNS = ROOT / "docs" / "book-runs"
LINE = re.compile(r"^(?:ok {4}(?P<ok>\S+) \((?P<secs>\d+)s\)"
                  r"|FAIL  (?P<fail>\S+) \(rc (?P<rc>-?\d+), (?P<fsecs>\d+)s\):\s*(?P<error>.*))$")
TITLES = {
    "chapter_preliminaries": "Preliminaries", "chapter_linear-regression": "Linear regression",
    "chapter_linear-classification": "Linear classification",
    "chapter_multilayer-perceptrons": "Multilayer perceptrons",
    "chapter_builders-guide": "Builders' guide",
    "chapter_convolutional-neural-networks": "Convolutional neural networks",
    "chapter_convolutional-modern": "Modern CNNs",
    "chapter_recurrent-neural-networks": "Recurrent neural networks",
    "chapter_recurrent-modern": "Modern RNNs",
    "chapter_attention-mechanisms-and-transformers": "Attention and transformers",
    "chapter_optimization": "Optimisation",
    "chapter_computational-performance": "Computational performance",
    "chapter_computer-vision": "Computer vision",
    "chapter_natural-language-processing-pretraining": "NLP: pretraining",
    "chapter_natural-language-processing-applications": "NLP: applications",
    "chapter_hyperparameter-optimization": "Hyperparameter optimisation",
    "chapter_generative-adversarial-networks": "Generative adversarial networks",
    "chapter_reinforcement-learning": "Reinforcement learning",
    "chapter_appendix-mathematics-for-deep-learning": "Appendix: mathematics",
    "chapter_appendix-tools-for-deep-learning": "Appendix: tools",
}


def read_runs(path: Path) -> dict[str, dict]:
    """A run log of `run_all.sh` (its stdout): section name -> {"ok", "seconds", "error"}.
    Its total line is skipped, a line starting with '#' is a note (kept under "#notes"); any
    other line is an error naming the file and the line."""
    runs: dict[str, dict] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = line.rstrip()
        if not line or line.startswith("book sections:"):
            continue
        if line.startswith("#"):
            runs.setdefault("#notes", {"notes": []})["notes"].append(line.lstrip("# "))
            continue
        match = LINE.match(line)
        if not match:
            raise ValueError(f"{path.name}, line {number}: not a line of run_all.sh "
                             f"('ok    NAME (Ns)' or 'FAIL  NAME (rc N, Ns): ...'): {line!r}")
        if match["ok"]:
            runs[match["ok"]] = {"ok": True, "seconds": int(match["secs"]), "error": ""}
        else:
            error = match["error"] or (f"stopped at the run's time limit, {match['fsecs']} s"
                                       if match["rc"] == "124" else f"exit status {match['rc']}")
            runs[match["fail"]] = {"ok": False, "seconds": int(match["fsecs"]), "error": error}
    return runs


def coverage_markdown(runs_dir: Path = RUNS) -> str:
    """The table a chapter a row (sections, ran, failed, not in the log), then the failures
    and the logs' notes (each once, with its chapters), from every run log in `runs_dir`;
    the chapters from its sections.txt."""
    chapters: dict[str, list[str]] = {}
    for line in (runs_dir / "sections.txt").read_text(encoding="utf-8").split():
        folder, _, md = line.partition("/")
        chapters.setdefault(folder, []).append(f"{folder.removeprefix('chapter_')}__"
                                               f"{md.removesuffix('.md')}")
    known = {p.stem for p in runs_dir.glob("*.txt")} - {"sections"}
    strays = sorted(known - set(chapters))
    if strays:
        raise ValueError(f"book-runs/{strays[0]}.txt is no chapter folder of sections.txt")
    rows = ["| chapter | sections | run unchanged | failed | status |", "|---|---:|---:|---:|---|"]
    details, notes, total, passed = [], {}, 0, 0
    for folder, sections in chapters.items():
        title = TITLES.get(folder, folder.removeprefix("chapter_").replace("-", " ").capitalize())
        total += len(sections)
        if folder not in known:
            rows.append(f"| {title} | {len(sections)} | | | not run |")
            continue
        runs = read_runs(runs_dir / f"{folder}.txt")
        ok = [s for s in sections if runs.get(s, {}).get("ok")]
        failed = [s for s in sections if s in runs and not runs[s]["ok"]]
        missing = [s for s in sections if s not in runs]
        passed += len(ok)
        status = "all run" if len(ok) == len(sections) else \
            f"{len(missing)} not in the log" if missing and not failed else \
            f"see below{f', {len(missing)} not in the log' if missing else ''}"
        rows.append(f"| {title} | {len(sections)} | {len(ok)} | {len(failed)} | {status} |")
        if failed:
            details += [f"**{title}.**", ""]
            details += [f"- `{s.split('__', 1)[1]}`: {runs[s]['error']}" for s in failed] + [""]
        for note in runs.get("#notes", {}).get("notes", []):
            notes.setdefault(note, []).append(title)
    rows.append(f"| **all** | **{total}** | **{passed}** | | |")
    if notes:  # each note once, with the chapters whose logs say it
        details += ["**How they ran.**", ""]
        details += [f"- {note} ({', '.join(titles)})" for note, titles in notes.items()]
    return "\n".join(rows + [""] + details)


# --- MkDocs events ---------------------------------------------------------------------------

_PAGES: dict[str, str] = {}


def on_config(config):
    """Make the API pages and add them to the navigation; fetch no script from elsewhere (the
    offline plugin adds a shim from a CDN for search in a worker under file://)."""
    polyfills = config.extra.get("polyfills", [])
    polyfills[:] = [url for url in polyfills if not str(url).startswith(("http:", "https:"))]
    _PAGES.clear()
    _PAGES.update(api_pages())
    nav = config.get("nav") or []
    nav[:] = [item for item in nav if "API reference" not in item]
    nav.append({"API reference": api_nav(_PAGES)})
    return config


def on_files(files, config):
    """Add the generated API pages to the site's files."""
    from mkdocs.structure.files import File

    for path, text in _PAGES.items():
        files.append(File.generated(config, path, content=text))
    return files


def on_page_markdown(markdown: str, page, config, files):
    """Fill the command-line page and the coverage table in where their pages mark them."""
    if CLI_MARK in markdown:
        markdown = markdown.replace(CLI_MARK, cli_markdown())
    if RUNS_MARK in markdown:
        markdown = markdown.replace(RUNS_MARK, coverage_markdown())
    return markdown
