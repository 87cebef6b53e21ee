"""Runs: train every combination of some settings, one record an epoch, compared in one table.

`grid` names the combinations, `sweep` trains each with `Trainer` + `fit` (resumable, with
statuses for runs that diverge or fail), `RunTable` prints, saves, loads and plots the records.
"""

from __future__ import annotations

import csv
import inspect
import itertools
import json
import math
import os
import re
import shutil
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator, MultipleLocator

from .board import check_plot_path
from .callbacks import Callback
from .callbacks.base import default_monitor, monitor_mode
from .callbacks.tensorboard import summary_writer
from .checks import callbacks as check_callbacks
from .checks import is_real
from .definition import differences, run_definition
from .device import seed as seed_all
from .distributed import is_main_process, say
from .files import check_output_path, claim, run_folder, write_json, write_whole
from .metrics import Accuracy, Loss, MetricList
from .trainer import Metrics, Trainer

__all__ = ["Run", "grid", "sweep", "RunTable"]

CLASSIFIER = MetricList([Loss(), Accuracy()])
METRIC_COLUMNS = tuple(CLASSIFIER.keys())  # every record's; then the fit's other metrics
TRAIN_LOSS, _, VAL_LOSS, VAL_ACC = METRIC_COLUMNS
COLUMNS = ("run", "epoch", *METRIC_COLUMNS, "epoch_s", "run_s", "status")  # then the settings
FINISHED = ("ok", "diverged", "failed", "no progress")  # "interrupted" runs are redone
BAD = ("diverged", "failed", "no progress")
LEARNING_BUDGET = 500  # optimiser steps after which a run stuck at chance has "failed"
_TRAINER_ARGS = set(inspect.signature(Trainer.__init__).parameters) - {"self"}


# --- runs and their names -------------------------------------------------------------------

def _label(value) -> Any:
    """A setting's value as names and tables show it: numbers and strings as they are, classes
    and functions by `__name__`, anything else by `str`."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return getattr(value, "__name__", None) or str(value)


def _text(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


@dataclass
class Run:
    """One run of a sweep: its unique `name` and the `settings` its build gets.

    `columns` holds the settings as the table shows them (by name); filled in if not given.

    >>> Run("lr=0.1", {"lr": 0.1})           # grid names and builds them for you
    """

    name: str
    settings: dict[str, Any]
    columns: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"Run: name must be a non-empty string, got {self.name!r}")
        if not isinstance(self.settings, dict):
            raise TypeError(f"Run {self.name!r}: settings must be a dict, got "
                            f"{type(self.settings).__name__}")
        _check_keys(self.settings)
        self.columns = self.columns or {k: _label(v) for k, v in self.settings.items()}


def _check_keys(settings: dict) -> None:
    for key in settings:
        if not isinstance(key, str) or not key:
            raise TypeError(f"setting names must be non-empty strings, got {key!r}")
        if key in COLUMNS:
            raise ValueError(f"setting {key!r} would hide the table's column of that name: "
                             f"rename it (the columns are {', '.join(COLUMNS)})")


def grid(settings: dict[str, list]) -> list[Run]:
    """Every combination of the named settings once, the last setting varying fastest.

    A setting's values are a list, or a dict {name: value} to name them in the run names.

    Args:
        settings: setting name -> its values.

    Returns:
        A `Run` for each combination.

    >>> [run.name for run in grid(dict(net={"BN": BLeNetConcise, "plain": LeNet}, lr=[0.1, 1.0]))]
    ['net=BN,lr=0.1', 'net=BN,lr=1', 'net=plain,lr=0.1', 'net=plain,lr=1']
    """
    if not isinstance(settings, dict) or not settings:
        raise ValueError(f"grid takes a non-empty dict of settings, e.g. dict(lr=[0.01, 0.1]), "
                         f"got {settings!r}")
    _check_keys(settings)
    named = {}
    for key, values in settings.items():
        if isinstance(values, dict):
            labels, values = [str(k) for k in values], list(values.values())
        elif isinstance(values, (list, tuple)):
            labels = [_label(v) for v in values]
        else:
            raise TypeError(f"setting {key!r} must be a list of values (or a dict "
                            f"{{name: value}}), got {type(values).__name__} {values!r}")
        if not values:
            raise ValueError(f"setting {key!r} has no values: give at least one")
        texts = [_text(label) for label in labels]
        twice = sorted({t for t in texts if texts.count(t) > 1})
        if twice:
            raise ValueError(f"setting {key!r} has two values shown as {twice[0]!r}, so two runs "
                             f"would have the same name: name them with a dict, e.g. "
                             f"{key}={{'a': ..., 'b': ...}}")
        named[key] = list(zip(labels, values, strict=True))
    runs = []
    for combo in itertools.product(*named.values()):
        keys = list(named)
        name = ",".join(f"{k}={_text(label)}" for k, (label, _) in zip(keys, combo, strict=True))
        runs.append(Run(name, {k: v for k, (_, v) in zip(keys, combo, strict=True)},
                        {k: label for k, (label, _) in zip(keys, combo, strict=True)}))
    return runs


# --- recording a run ------------------------------------------------------------------------

def _finite(value) -> float | None:
    return None if value is None or not math.isfinite(float(value)) else float(value)


class _Recorder(Callback):
    """Turns each epoch's logs into a record (and TensorBoard scalars); the status at the end."""

    def __init__(self, run: Run, logdir: Path | None = None):
        self.run, self.logdir, self.records, self.status = run, logdir, [], None

    def run_settings(self) -> None:
        return None  # it records the run, and changes none of its numbers

    def on_fit_start(self, trainer) -> None:
        self.start, self.hook = time.perf_counter(), None
        self.metric_list = trainer.metric_list
        self.metric_names = [*METRIC_COLUMNS, *(k for k in trainer.metric_list.keys()
                                                if k not in METRIC_COLUMNS)]
        self.classes = getattr(trainer.data, "num_classes", None)
        if self.classes is None:  # else the width of the model's first 2-d output
            self.hook = trainer.model.register_forward_hook(self._width)
        self.writer = summary_writer()(str(self.logdir)) if self.logdir else None

    def _width(self, module, args, out) -> None:
        if isinstance(out, torch.Tensor) and out.ndim == 2:
            self.classes = out.shape[1]
        self.hook.remove()

    def _record(self, epoch: int, logs: dict) -> dict:
        seconds = (logs["train_s"] + logs["val_s"]) if "train_s" in logs and "val_s" in logs \
            else None
        return {"run": self.run.name, "epoch": epoch,
                **{k: _finite(logs.get(k)) for k in self.metric_names}, "epoch_s": seconds,
                "run_s": time.perf_counter() - self.start, "status": None, **self.run.columns}

    def on_epoch_end(self, trainer, epoch: int, logs: dict[str, float]) -> None:
        self.records.append(self._record(epoch, logs))
        if self.writer:
            tags = {k: self.metric_list.tag(k) for k in self.metric_names} | {
                "epoch_s": "seconds/epoch"}
            for key, tag in tags.items():
                if self.records[-1][key] is not None:
                    self.writer.add_scalar(tag, self.records[-1][key], epoch)

    def on_fit_end(self, trainer, metrics: Metrics) -> None:
        if self.hook is not None:
            self.hook.remove()
        if not self.records:  # diverged or interrupted in its first epoch: one row all the same
            self.records.append(self._record(metrics.epochs, {}))
        self.status = _status(metrics, self.records, self.classes)
        for record in self.records:
            record["status"] = self.status
        if self.writer:
            self._hparams(metrics)
            self.writer.close()

    def _hparams(self, metrics: Metrics) -> None:
        """The run's settings and final metrics in the HParams tab, written by its own writer."""
        from torch.utils.tensorboard.summary import hparams

        final = {f"hparam/{k}": _finite(getattr(metrics, k)) for k in METRIC_COLUMNS
                 if any(r[k] is not None for r in self.records)} or \
            {f"hparam/{k}": None for k in METRIC_COLUMNS}
        for summary in hparams({**self.run.columns, "status": self.status}, final):
            self.writer.file_writer.add_summary(summary)
        for tag, value in final.items():
            if value is not None:
                self.writer.add_scalar(tag, value, metrics.epoch)


def _status(metrics: Metrics, records: list[dict], classes: int | None) -> str:
    """What was observed: interrupted, diverged (non-finite), ok, or stuck (chance accuracy, a
    loss worse than a uniform guess's log(classes), or a loss that never fell below the first
    epoch's): "failed" after `LEARNING_BUDGET` optimiser steps or more, which is enough for
    these nets to leave chance, else "no progress" (too short a run to say it cannot learn)."""
    if metrics.interrupted:
        return "interrupted"
    if metrics.diverged or _finite(metrics.train_loss) is None \
            or _finite(metrics.val_loss) is None:
        return "diverged"
    losses = [r[TRAIN_LOSS] for r in records]
    stuck = (metrics.val_acc is not None and classes
             and (metrics.val_acc < 1.5 / classes or metrics.train_loss > math.log(classes))) \
        or (len(losses) >= 2 and not any(loss < losses[0] for loss in losses[1:]))
    if stuck:
        return "failed" if metrics.steps >= LEARNING_BUDGET else "no progress"
    return "ok"


# --- the sweep ------------------------------------------------------------------------------

def sweep(runs_or_settings: list[Run] | dict[str, list], build: Callable[[dict], Any],
          out: str | os.PathLike | None = None, *, restart: bool = False,
          tensorboard: bool = False, callbacks: Sequence[Callback] = (), verbose: bool = False,
          **trainer_kwargs) -> RunTable:
    """Train each run: `build(settings)` gives (model, data, opt) or a dict of Trainer arguments.

    A `seed` setting or Trainer argument seeds each run before its build. With `out`, the table
    is saved to out/runs.csv and out/runs.json after each run, with what defines each run (its
    settings, the Trainer's arguments, the data's, the seed). A sweep run again with the same
    `out` skips the runs finished there with the same definition, and trains again those whose
    definition changed, saying what changed (`restart=True` starts over).

    Args:
        runs_or_settings: a dict of settings (as `grid` takes) or a list of `Run`s.
        build: a function of a run's settings that returns `(model, data, opt)`, or a dict
            with those keys and any other Trainer arguments.
        out: folder for runs.csv and runs.json (and TensorBoard's files).
        restart: train again the runs finished in `out`.
        tensorboard: also write each run's scalars and settings under out/tensorboard/<run>/.
        callbacks: callbacks for every run's Trainer, each run its own copy
            (`Callback.for_run`): schedulers and early stopping start afresh in each run, and
            a logger writes files named by the run (`CSVLogger("out/log.csv")`: out/<run>/log.csv).
        verbose: each run's epoch lines and bars.
        **trainer_kwargs: Trainer arguments for every run (`max_epochs=`, `gpu=`, ...).

    Returns:
        A `RunTable`, a record an epoch of each run with its status (`ok`, `diverged`,
        `failed`, `no progress`, `interrupted`); `table.models` and `table.metrics` map each
        run trained by this call to its trained model (on the CPU) and its `Metrics`.

    >>> table = d2lai.sweep(dict(lr=[0.1, 1.0]), lambda s: (Net(), data, Descent(s["lr"])),
    ...                     "out/lr", max_epochs=5)
    >>> table.final().print()                 # last and best epoch of each run
    >>> table.metrics["lr=0.1"].best().val_acc, table.models["lr=0.1"]
    """
    runs = grid(runs_or_settings) if isinstance(runs_or_settings, dict) else runs_or_settings
    if not isinstance(runs, (list, tuple)) or not all(isinstance(r, Run) for r in runs):
        raise TypeError("sweep takes a dict of settings or a list of d2lai.Run (from grid)")
    names = [r.name for r in runs]
    if len(set(names)) < len(names):
        raise ValueError(f"two runs are named {next(n for n in names if names.count(n) > 1)!r}: "
                         f"run names must be unique")
    if not callable(build):
        raise TypeError(f"build must be a function of the settings, got {type(build).__name__}")
    _check_trainer_args("sweep got", trainer_kwargs, {"model", "data", "opt", "callbacks"})
    callbacks = check_callbacks(callbacks)
    if tensorboard:
        if out is None:
            raise ValueError("tensorboard=True needs out= (the event files go to "
                             "out/tensorboard/<run name>/)")
        summary_writer()
        if len({run_folder(n) for n in names}) < len(names):
            raise ValueError("two run names give the same folder name: rename the runs")
    lock = None
    if out is not None:
        _check_csv([r.columns for r in runs])  # runs.csv will read back as written
        out = check_output_path(out, "out", folder=True)
        for table in ("runs.json", "runs.csv"):
            check_output_path(out / table, "the sweep's table")
        if is_main_process():  # held until the sweep ends; under torchrun, by rank 0
            lock = claim(out, "out", "sweep", folder=True)
    try:
        return _train_all(runs, build, out, restart, tensorboard, callbacks, verbose,
                          trainer_kwargs)
    finally:
        if lock is not None:
            lock.release()


def _train_all(runs: list[Run], build: Callable, out: Path | None, restart: bool,
               tensorboard: bool, callbacks: list, verbose: bool, trainer_kwargs: dict):
    """The sweep itself: the runs finished in `out` kept, the others trained one by one."""
    names = [r.name for r in runs]
    records, definitions, done, models, metrics_of = [], {}, set(), {}, {}
    if out is not None:
        if restart and is_main_process():  # under torchrun, rank 0 alone writes
            for file in (out / "runs.json", out / "runs.csv"):
                file.unlink(missing_ok=True)
        records, definitions = ([], {}) if restart else _finished(out)
        done = _unchanged(runs, records, definitions, build, callbacks, verbose, trainer_kwargs)
        records = [r for r in records if r["run"] in done or r["run"] not in names]
        if done:
            say(f"skipping {len(done)} of {len(runs)} runs already finished in {out} "
                  f"(restart=True starts over)")
    for i, run in enumerate(runs, 1):
        if run.name in done:
            continue
        say(f"[{i}/{len(runs)}] {run.name}: training")
        logdir = (out / "tensorboard" / run_folder(run.name) if tensorboard and is_main_process()
                  else None)
        if logdir is not None and logdir.exists():
            shutil.rmtree(logdir)  # an earlier, unfinished try of this run
        recorder = _Recorder(run, logdir)
        trainer = _trainer(run, build, callbacks, verbose, trainer_kwargs, recorder)
        definitions[run.name] = run_definition(trainer, run.columns)
        models[run.name], metrics = trainer.fit()
        metrics_of[run.name] = metrics
        records += recorder.records
        say(f"[{i}/{len(runs)}] {run.name}: {_outcome(recorder.records)}")
        if out is not None and is_main_process():
            _save(out, records, definitions)
        if metrics.interrupted:
            again = "; run it again with the same out to go on" if out is not None else ""
            say(f"interrupted: the sweep stops here{again}")
            break
    table = RunTable(records)
    table.models, table.metrics = models, metrics_of
    return table


def _save(out: Path, records: list[dict], definitions: dict) -> None:
    """runs.json (records and definitions) and runs.csv; one that cannot be written (a full
    disk) is said, and the sweep goes on with the table in memory."""
    kept = {r["run"] for r in records}
    defined = {name: d for name, d in definitions.items() if name in kept}
    writes = {"runs.json": lambda path: write_json(path, {"records": records,
                                                          "definitions": defined}),
              "runs.csv": lambda path: RunTable(records).to_csv(path)}
    for name, write in writes.items():
        try:
            write(out / name)
        except OSError as err:
            say(f"could not write {out / name} ({err}): the sweep goes on; its table is "
                  f"returned at the end")


def _unchanged(runs: list[Run], records: list[dict], definitions: dict, build: Callable,
               callbacks: list, verbose: bool, trainer_kwargs: dict) -> set[str]:
    """The runs finished earlier whose definition is still the same: each is built as it would
    be trained, to compare; a changed one is named with what changed, to be trained again."""
    finished = {r["run"] for r in records}
    same = set()
    for i, run in enumerate(runs, 1):
        if run.name not in finished:
            continue
        ours = run_definition(_trainer(run, build, callbacks, verbose, trainer_kwargs),
                              run.columns)
        saved = definitions.get(run.name)
        changed = ["no definition recorded"] if saved is None else differences(saved, ours)
        if changed:
            say(f"[{i}/{len(runs)}] {run.name}: {'; '.join(changed)}: training it again")
        else:
            same.add(run.name)
    return same


def _check_trainer_args(who: str, kwargs: dict, refused: set) -> None:
    unknown = sorted(set(kwargs) - _TRAINER_ARGS)
    if unknown:
        raise TypeError(f"{who} {', '.join(unknown)}, which Trainer does not take; it takes "
                        f"{', '.join(sorted(_TRAINER_ARGS - refused))}")
    clash = sorted(set(kwargs) & refused)
    if clash:
        raise TypeError(f"{who} {', '.join(clash)}: pass model, data and opt from build, and "
                        f"callbacks as sweep(..., callbacks=[...])")


def _trainer(run: Run, build: Callable, callbacks: list, verbose: bool, trainer_kwargs: dict,
             recorder: _Recorder | None = None) -> Trainer:
    """Seed and build one run: its Trainer, with the sweep's callbacks, build's, the recorder."""
    seed = run.settings.get("seed", trainer_kwargs.get("seed"))
    if seed is not None:
        seed_all(seed)
    built = build(dict(run.settings))
    if isinstance(built, (tuple, list)) and len(built) == 3:
        built = dict(zip(("model", "data", "opt"), built, strict=True))
    if not isinstance(built, dict) or "model" not in built or "data" not in built:
        raise TypeError(f"build must return (model, data, opt) or a dict with keys model, data, "
                        f"opt (and Trainer arguments); for run {run.name!r} it returned "
                        f"{type(built).__name__}")
    extra = {k: v for k, v in built.items() if k not in ("model", "data", "opt")}
    _check_trainer_args("build returned", extra, set())
    kwargs = {"verbose": verbose, **trainer_kwargs, **({"seed": seed} if seed is not None else {}),
              **extra}
    own = [c.for_run(run.name) for c in callbacks]  # each run its own copy
    kwargs["callbacks"] = [*own, *kwargs.get("callbacks", ()), *([recorder] if recorder else [])]
    return Trainer(built["model"], built["data"], built.get("opt"), **kwargs)


def _outcome(records: list[dict]) -> str:
    last = records[-1]
    text = ", ".join(f"{k.replace('_', ' ')} {last[k]:.4f}" for k in METRIC_COLUMNS
                     if last[k] is not None)
    return f"{last['status']} after {last['epoch']} epochs, {last['run_s']:.1f} s" + \
        (f": {text}" if text else "")


def _finished(out: Path) -> tuple[list[dict], dict[str, dict]]:
    """The records of the runs an earlier sweep finished in `out`, and what defined each run
    (none if it has no table)."""
    path = out / "runs.json"
    if not path.exists():
        return [], {}
    try:
        table = RunTable.from_json(path)
        definitions = json.loads(path.read_text()).get("definitions") or {}
        if not isinstance(definitions, dict):
            raise ValueError("its 'definitions' are not a dict")
    except (ValueError, TypeError, KeyError, AttributeError) as err:
        raise ValueError(f"{path} is not a table of runs ({err}): remove it, or pass "
                         f"restart=True to start over") from None
    runs = {}
    for r in table.records:
        runs.setdefault(r["run"], []).append(r)
    return [r for rows in runs.values() if _complete(rows) for r in rows], definitions


def _complete(rows: list[dict]) -> bool:
    """Whether a run's records are a finished run's: a final status and every epoch's metrics
    (none only for a run that diverged before its first epoch was over)."""
    last = rows[-1]
    if last.get("status") not in FINISHED \
            or not all(k in r for r in rows for k in ("epoch", *METRIC_COLUMNS)):
        return False
    return last["status"] == "diverged" or (last[TRAIN_LOSS] is not None
                                            and last[VAL_LOSS] is not None)


# --- the table ------------------------------------------------------------------------------

def _accuracy_axis(ax, metric: str) -> None:
    """An accuracy's whole range, 0 to 1, ticked every 0.1, so that a run at chance is seen at
    chance; other metrics keep matplotlib's limits with six or so ticks."""
    if "acc" in metric:
        ax.set_ylim(0, 1)
        ax.yaxis.set_major_locator(MultipleLocator(0.1))
    else:
        ax.yaxis.set_major_locator(MaxNLocator(nbins=6))


_INT = re.compile(r"[+-]?(0|[1-9]\d*)")  # as str(int) writes it: "007" is no int
_FLOAT = re.compile(r"[+-]?((0|[1-9]\d*)(\.\d*)?|\.\d+)([eE][+-]?\d+)?|[+-]?(nan|inf)")
KNOWN = {"run": str, "status": str, "epoch": int,
         **{k: float for k in (*METRIC_COLUMNS, "epoch_s", "run_s")}}  # the sweep's own columns


def _column_type(cells: list[str]) -> type:
    """What a CSV column holds, from all its cells at once: int, float, bool, else str (so that
    a column of names keeps '007' and 'True' as the text they were)."""
    cells = [c for c in cells if c != ""]
    if all(_INT.fullmatch(c) for c in cells):
        return int
    if all(_FLOAT.fullmatch(c) for c in cells):
        return float  # each cell an int or a float, as it was written
    if all(c in ("True", "False") for c in cells):
        return bool
    return str


def _parse(text: str, kind: type):
    """A CSV cell back as its column's type; an empty cell is None."""
    if text == "":
        return None
    if kind is bool:
        return text == "True"
    if kind in (int, float):
        return int(text) if _INT.fullmatch(text) else float(text)
    return text


def _check_csv(records: list[dict]) -> None:
    """Refuse a value that a CSV file would read back as another (the text 'True' as True, ''
    as None, '12' as 12): `from_csv` reads each column as all its cells say, and a table must
    read back as it was written."""
    for key in dict.fromkeys(k for r in records for k in r):
        values = [r.get(key) for r in records]
        kind = KNOWN.get(key) or _column_type(["" if v is None else str(v) for v in values])
        for v in values:
            if not isinstance(v, (str, bool, int, float)):
                continue  # other objects are written as their text, and read back as text
            back = _parse(str(v), kind)
            same = back == v and type(back) is type(v) or (
                isinstance(v, float) and isinstance(back, (int, float)) and
                (back == v or math.isnan(v) and math.isnan(back)))
            if not same:
                shown = f"the text {v!r}" if isinstance(v, str) else repr(v)
                raise ValueError(f"setting {key!r} holds {shown}, which a CSV table reads back "
                                 f"as {back!r}: name the value otherwise (a grid setting by a "
                                 f"dict, e.g. {key}={{'on': ...}}), or keep the table as JSON")


def _cell(key: str, value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        if key.endswith("_s") or key == "seconds":
            return f"{value:.1f}"
        return f"{value:.4f}" if "loss" in key or "acc" in key else f"{value:g}"
    return str(value)


def _check_record(i: int, record, need_run: bool = False) -> None:
    """Refuse what is not a record (a dict), or not a run's record (one naming its run) where
    runs are needed, saying which one (from 1)."""
    if not isinstance(record, dict):
        raise ValueError(f"record {i} is a {type(record).__name__}, not a dict of a run's "
                         f"metrics and settings")
    if "run" not in record:
        if need_run:
            raise ValueError(f"record {i} has no 'run' (the name of its run); it has "
                             f"{', '.join(map(repr, record)) or 'no keys'}")
    elif not isinstance(record["run"], str) or not record["run"]:
        raise ValueError(f"record {i}: 'run' must be a run's name (a non-empty string), got "
                         f"{record['run']!r}")


def _shown(text) -> str:
    """Text as matplotlib prints it literally: `$` would start mathematics."""
    return str(text).replace("$", r"\$")


class RunTable:
    """Records (dicts), one an epoch of each run: print, save, load, compare and plot them.

    Args:
        records: dicts with at least a `run` key (a sweep's: `epoch`, the metrics, `epoch_s`,
            `run_s`, `status` and the settings).

    `models` and `metrics` are filled by `sweep` (run name -> trained model, `Metrics`).

    >>> table = RunTable.from_csv("out/bn/runs.csv")
    >>> table.final().print(["run", "epoch", "val_acc", "best_epoch", "best_val_acc"])
    >>> table.plot_curves(["train_loss", "val_acc"], "curves.png")
    """

    def __init__(self, records: Iterable[dict] = ()):
        records = list(records)
        for i, r in enumerate(records, 1):
            _check_record(i, r)
        self.records: list[dict] = [dict(r) for r in records]
        self.models: dict[str, Any] = {}
        self.metrics: dict[str, Metrics] = {}

    def __len__(self) -> int:
        return len(self.records)

    def columns(self) -> list[str]:
        """Every key of the records, in the order first seen."""
        return list(dict.fromkeys(k for r in self.records for k in r))

    def runs(self) -> list[str]:
        """The runs' names, in order (every record must name its run)."""
        for i, r in enumerate(self.records, 1):
            _check_record(i, r, need_run=True)
        return list(dict.fromkeys(r["run"] for r in self.records))

    def final(self, monitor: str | None = None) -> RunTable:
        """The last record of each run, with its best epoch beside it: `best_epoch` (by
        `monitor`, default `val_acc`, else `val_loss`; the first on ties) and that epoch's
        metrics as `best_train_loss`, `best_train_acc`, `best_val_loss`, `best_val_acc`.

        A run whose last epoch is not its best shows both: in the chapter's default runs the
        concise net ends at 0.76 validation accuracy after 0.88 at an earlier epoch.
        """
        monitor = monitor or default_monitor({k for r in self.records for k, v in r.items()
                                              if v is not None})
        pick = min if monitor_mode(monitor) == "min" else max
        rows = []
        for name in self.runs():
            runs = [r for r in self.records if r["run"] == name]
            scored = [r for r in runs if _finite(r.get(monitor)) is not None]
            best = pick(scored, key=lambda r: r[monitor]) if scored else None
            rows.append({**runs[-1], "best_epoch": best and best.get("epoch"),
                         **{f"best_{k}": best and best.get(k) for k in METRIC_COLUMNS}})
        return RunTable(rows)

    def _check(self, what: str, names: Sequence[str]) -> None:
        missing = [n for n in names if n not in self.columns()]
        if missing:
            raise ValueError(f"{what} {missing[0]!r} is not a column; the columns are "
                             f"{', '.join(self.columns())}")

    def format(self, columns: Sequence[str] | None = None) -> str:
        """An aligned text table: metrics to 4 decimals, seconds to 1, None and NaN as '-'."""
        if columns is None:
            columns = [k for k in self.columns() if any(r.get(k) is not None
                                                        for r in self.records)]
        self._check("column", columns)
        rows = [[c.replace("_", " ") for c in columns]] + \
            [[_cell(c, r.get(c)) for c in columns] for r in self.records]
        widths = [max(len(row[i]) for row in rows) for i in range(len(columns))]
        left = [any(isinstance(r.get(c), str) for r in self.records) for c in columns]
        return "\n".join("  ".join(cell.ljust(w) if lft else cell.rjust(w)
                                   for cell, w, lft in zip(row, widths, left, strict=True)).rstrip()
                         for row in rows)

    def __str__(self) -> str:
        return self.format()

    def print(self, columns: Sequence[str] | None = None) -> str:
        """Print the table (after a blank line); return its text."""
        text = self.format(columns)
        print("\n" + text)
        return text

    def to_csv(self, path: str | os.PathLike) -> Path:
        """Write the records as CSV (None as an empty cell), whole or not at all."""
        _check_csv(self.records)

        def write(tmp: Path) -> None:
            with open(tmp, "w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=self.columns())
                writer.writeheader()
                writer.writerows({k: "" if v is None else v for k, v in r.items()}
                                 for r in self.records)

        return write_whole(check_output_path(path, "CSV file"), write)

    def to_json(self, path: str | os.PathLike) -> Path:
        """Write {"records": [...]} as strict JSON (NaN as null)."""
        return write_json(check_output_path(path, "JSON file"), {"records": self.records})

    @classmethod
    def from_csv(cls, path: str | os.PathLike) -> RunTable:
        """The table `to_csv` wrote, each column read back as its type: the sweep's columns as
        they are known (epoch int, metrics float, ...), a setting's column as all its cells
        say (int, float with NaN, bool, else text). An empty cell is None."""
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
        names = list(rows[0]) if rows else []
        kinds = {k: KNOWN.get(k) or _column_type([row[k] or "" for row in rows]) for k in names}
        return cls({k: _parse(v or "", kinds[k]) for k, v in row.items()} for row in rows)

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> RunTable:
        """The table `to_json` wrote (or any JSON with a list of records under "records")."""
        value = json.loads(Path(path).read_text())
        records = value.get("records") if isinstance(value, dict) else value
        if not isinstance(records, list):
            raise ValueError(f"{path} holds no list of records under 'records'")
        try:
            table = cls(records)
            table.runs()
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from None
        return table

    def to_pandas(self):
        """The records as a pandas DataFrame (pandas is optional)."""
        try:
            import pandas as pd
        except ImportError:
            raise ImportError("RunTable.to_pandas needs pandas: pip install pandas") from None
        return pd.DataFrame(self.records, columns=self.columns())

    def plot_curves(self, metric: str | Sequence[str] = VAL_ACC,
                    path: str | os.PathLike | None = None) -> Figure:
        """`metric` (or one panel a metric) against the epoch, a line a run; failed and
        diverged runs dashed and marked in the legend."""
        metrics = [metric] if isinstance(metric, str) else list(metric)
        names = self.runs()
        self._check("metric", metrics)
        file = check_plot_path(path) if path is not None else None
        fig = Figure(figsize=(9, 1 + 3 * len(metrics)), layout="constrained")
        axes = fig.subplots(len(metrics), 1, sharex=True, squeeze=False)[:, 0]
        colors = [f"C{i}" for i in range(len(names))] if len(names) <= 10 else \
            colormaps["tab20" if len(names) <= 20 else "turbo"].resampled(len(names)).colors
        labels = []
        for ax, key in zip(axes, metrics, strict=True):
            for name, color in zip(names, colors, strict=True):
                rows = [r for r in self.records if r["run"] == name]
                status = rows[-1].get("status")
                points = [(r["epoch"], r[key]) for r in rows if r.get(key) is not None]
                label = _shown(name + (f" ({status})" if status not in ("ok", None) else ""))
                ax.plot([x for x, _ in points], [y for _, y in points], color=color,
                        marker="o" if points else "x", markersize=3,
                        linestyle="--" if status in BAD else "-", label=label)
                if ax is axes[0]:  # given as they are: a name may start with _
                    labels.append(label)
            ax.set_ylabel(_shown(key.replace("_", " ")))
            _accuracy_axis(ax, key)
            ax.grid(True, alpha=0.3)
        axes[-1].set_xlabel("epoch")
        axes[-1].xaxis.set_major_locator(MaxNLocator(integer=True))
        fig.legend(axes[0].get_lines(), labels, loc="outside right upper", fontsize="small")
        if file is not None:
            fig.savefig(file, dpi=120)
        return fig

    def plot_final(self, metric: str, setting: str, path: str | os.PathLike | None = None,
                   by: str | None = None) -> Figure:
        """Each run's final `metric` against `setting`, a line for each value of `by`.

        Runs that failed (or made no progress) are x's where they ended, named in the legend
        with their status; runs with no value (diverged) are triangles below the axis. An
        accuracy's axis runs from 0 to 1."""
        self._check("column", [metric, setting, *([by] if by else [])])
        file = check_plot_path(path) if path is not None else None
        final = self.final().records
        xs = [r[setting] for r in final]
        numeric = all(is_real(x) for x in xs)
        groups: dict[Any, list[dict]] = {}
        for r in final:
            groups.setdefault(r[by] if by else None, []).append(r)
        fig = Figure(figsize=(6.5, 4.5), layout="constrained")
        ax = fig.add_subplot()
        labels = []
        for i, (group, rows) in enumerate(groups.items()):
            label = f"{by}={_text(group)}" if by else metric.replace("_", " ")
            if numeric:
                rows = sorted(rows, key=lambda r: r[setting])
            good = [r for r in rows
                    if r.get("status") not in BAD and _finite(r.get(metric)) is not None]
            labels.append(_shown(label))
            ax.plot([r[setting] for r in good], [r[metric] for r in good], "o-",
                    color=f"C{i % 10}", label=labels[-1])
            for status in sorted({r.get("status") for r in rows if r not in good}, key=str):
                bad = [r for r in rows if r not in good and r.get("status") == status]
                scored = [r for r in bad if _finite(r.get(metric)) is not None]
                if scored:  # where they ended: a failed run at chance is drawn at chance
                    labels.append(_shown(f"{label}: {status}"))
                    ax.plot([r[setting] for r in scored], [r[metric] for r in scored], "x",
                            color=f"C{i % 10}", markersize=10, markeredgewidth=2,
                            label=labels[-1])
                if len(scored) < len(bad):  # no value (diverged): a mark below the axis
                    labels.append(_shown(f"{label}: {status or 'no value'} (no {metric})"))
                    ax.plot([r[setting] for r in bad if r not in scored],
                            [0] * (len(bad) - len(scored)), "v", color=f"C{i % 10}",
                            markersize=9, clip_on=False, transform=ax.get_xaxis_transform(),
                            label=labels[-1])
        values = [x for x in xs if numeric and x > 0]
        if values and max(values) / min(values) >= 100:
            ax.set_xscale("log")
        ax.set_xlabel(_shown(setting.replace("_", " ")))
        ax.set_ylabel(_shown(f"final {metric.replace('_', ' ')}"))
        _accuracy_axis(ax, metric)
        ax.grid(True, alpha=0.3)
        ax.legend(ax.get_lines(), labels, fontsize="small")
        if file is not None:
            fig.savefig(file, dpi=120)
        return fig
