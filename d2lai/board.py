"""ProgressBoard: curves that grow as training goes; live in Jupyter, saved as PNG or GIF."""

from __future__ import annotations

import math
import numbers
import os
import reprlib
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

import matplotlib
import numpy as np
import torch
from matplotlib.backend_bases import FigureCanvasBase
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import is_color_like
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

__all__ = ["ProgressBoard", "draw", "save_plot", "save_gif"]

SCALES = {"identity": "linear", "linear": "linear", "log10": "log", "log": "log"}
MAX_INCHES = 50  # Plots.jl's `size` is in pixels; (600, 400) inches here would be gigapixels

_warned_not_live = False


def check_scale(name: str, scale: str) -> str:
    """The matplotlib name of a book's axis scale (`"identity"`, `"log10"`, ...)."""
    if not isinstance(scale, str) or scale not in SCALES:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, SCALES))}, got {scale!r}")
    return SCALES[scale]


def check_plot_path(path: str | os.PathLike, gif: bool = False) -> Path:
    """The file `save_plot` (or `save_gif`) will write, checked before any drawing.

    A name without extension gets `.png` (`.gif`); an extension matplotlib cannot write, a
    folder, or a parent that is a file is an error here, so a bad path fails before training.
    """
    if isinstance(path, bytes) or not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or pathlib.Path, got {_what(path)}")
    text = os.fspath(path)
    if not text.strip():
        raise ValueError("path is empty; give a file name such as 'plot_1.png'")
    file = Path(text)
    default = "anim_fps.gif" if gif else "plot_1.png"
    if text.endswith(("/", os.sep)) or file.is_dir():
        raise IsADirectoryError(f"cannot write {text!r}: it is a folder; give a file name, "
                                f"e.g. {str(file / default)!r}")
    kinds = ["gif"] if gif else sorted(FigureCanvasBase.get_supported_filetypes())
    if not file.suffix:
        file = file.with_name(file.name + (".gif" if gif else ".png"))
    elif file.suffix[1:].lower() not in kinds:
        what = "save_gif writes" if gif else "matplotlib can write"
        raise ValueError(f"cannot write {text!r}: {what} only "
                         f"{', '.join('.' + k for k in kinds)} files")
    for parent in file.parents:
        if parent.exists():
            if not parent.is_dir():
                raise NotADirectoryError(f"cannot write {text!r}: {str(parent)!r} is a file, "
                                         f"not a folder")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise PermissionError(f"cannot write {text!r}: folder {str(parent)!r} is not "
                                      f"writable")
            break
    return file


def _what(value) -> str:
    """`value` in an error message: its type and a short repr."""
    return "None" if value is None else f"{type(value).__name__} {reprlib.repr(value)}"


def _as_floats(value, name: str, scalar: bool = False) -> list[float]:
    """`value` (a number, a sequence of numbers, a 0-D/1-D array or tensor) as a list of floats;
    with `scalar`, one number only."""
    if isinstance(value, torch.Tensor):
        if value.dtype == torch.bool or value.is_complex():
            raise TypeError(f"draw: {name} must hold real numbers, got a {value.dtype} tensor")
        value = value.detach().to("cpu", torch.float64).numpy()
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "iuf":
            raise TypeError(f"draw: {name} must hold real numbers, got an array of dtype "
                            f"{value.dtype}")
        if value.ndim > (0 if scalar else 1):
            raise ValueError(f"draw: {name} must be {'a number' if scalar else '0-D or 1-D'}, "
                             f"got an array of shape {tuple(value.shape)}")
        return value.astype(float).reshape(-1).tolist()
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return [float(value)]
    if not scalar and isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        return [f for i, v in enumerate(value) for f in _as_floats(v, f"{name}[{i}]", True)]
    wanted = "a real number" if scalar else "a number, numbers, or a 0-D/1-D array or tensor"
    raise TypeError(f"draw: {name} must be {wanted}, got {_what(value)}")


def check_label(name: str, label) -> str:
    if not isinstance(label, str) or not label:
        raise TypeError(f"{name} must be a non-empty str, got {_what(label)}")
    if label.startswith("_"):
        raise ValueError(f"{name} must not start with '_' (matplotlib hides such series from the "
                         f"legend), got {label!r}")
    return label


def _check_figsize(name: str, value) -> tuple[float, float]:
    if (not isinstance(value, Sequence) or isinstance(value, str) or len(value) != 2
            or any(isinstance(v, bool) or not isinstance(v, numbers.Real)
                   or not 0 < v <= MAX_INCHES for v in value)):
        raise ValueError(f"{name} must be (width, height) in inches, two numbers in "
                         f"(0, {MAX_INCHES}], got {value!r}")
    return float(value[0]), float(value[1])


def in_notebook() -> bool:
    shell = sys.modules.get("IPython") and sys.modules["IPython"].get_ipython()
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


def _fmt(y: float) -> str:
    return f"{y:.4f}" if 1e-3 <= abs(y) < 1e4 else f"{y:.4g}"


def _fmt_x(x: float) -> str:
    return str(int(x)) if x.is_integer() else f"{x:.4g}"


class ProgressBoard:
    """Named series of (x, y) points on one set of axes.

    `ylabels` names series in advance: each gets its colour and legend slot in that order,
    series drawn later the following ones; `colors` are cycled over the slots. `size` is
    `figsize` (inches) under the Julia name. Uses a bare matplotlib `Figure` (no pyplot), so
    nothing pops up in a terminal and it works headless; in a Jupyter kernel the figure is
    shown in the cell and updated in place.
    """

    def __init__(self, xlabel: str | None = "epoch", ylabels: Sequence[str] = (), *,
                 xscale: str = "identity", yscale: str = "identity",
                 colors: Sequence | None = None, size: tuple[float, float] | None = None,
                 figsize: tuple[float, float] | None = None, live: bool | None = None,
                 title: str | None = None):
        if xlabel is not None and not isinstance(xlabel, str):
            raise TypeError(f"xlabel must be a str or None, got {_what(xlabel)}")
        if isinstance(ylabels, str) or not isinstance(ylabels, Sequence):
            raise TypeError(f"ylabels must be a list of series names, e.g. ['train_loss'], "
                            f"got {_what(ylabels)}")
        for i, label in enumerate(ylabels):
            check_label(f"ylabels[{i}]", label)
        if len(set(ylabels)) != len(ylabels):
            raise ValueError(f"ylabels must be distinct, got {list(ylabels)!r}")
        if colors is None:
            colors = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
        elif isinstance(colors, str) or not isinstance(colors, Sequence) or not colors:
            raise TypeError(f"colors must be a non-empty list of matplotlib colours, e.g. "
                            f"['blue', 'red', 'orange'], got {_what(colors)}")
        for i, color in enumerate(colors):
            if not is_color_like(color):
                raise ValueError(f"colors[{i}] is not a matplotlib colour: {color!r}")
        given = {k: _check_figsize(k, v) for k, v in (("size", size), ("figsize", figsize))
                 if v is not None}
        if len(set(given.values())) > 1:
            raise ValueError(f"size and figsize are the same setting (inches); give one, got "
                             f"size={size!r} and figsize={figsize!r}")
        if live is not None and not isinstance(live, bool):
            raise TypeError(f"live must be True, False or None (None: live in Jupyter), "
                            f"got {_what(live)}")
        if title is not None and not isinstance(title, str):
            raise TypeError(f"title must be a str or None, got {_what(title)}")
        self.xlabel, self.ylabels, self.title = xlabel, list(ylabels), title
        self.xscale, self.yscale = check_scale("xscale", xscale), check_scale("yscale", yscale)
        self.colors = list(colors)
        self.figsize = next(iter(given.values()), (6.0, 4.0))
        self.series: dict[str, tuple[list[float], list[float]]] = {}
        self.best: tuple[str, str] | None = None
        self.live = in_notebook() if live is None else live and _live_or_warn()
        self._display = None

    @property
    def size(self) -> tuple[float, float]:
        """The Julia name of `figsize` (inches)."""
        return self.figsize

    def labels(self) -> list[str]:
        """Series names in slot order: `ylabels` first, then the others as first drawn."""
        return self.ylabels + [label for label in self.series if label not in self.ylabels]

    def draw(self, x, y, label: str) -> None:
        """Add point(s) `(x, y)` to the series `label`: numbers, or equal-length 1-D sequences,
        arrays or tensors."""
        check_label("label", label)
        xs, ys = _as_floats(x, "x"), _as_floats(y, "y")
        if len(xs) != len(ys):
            raise ValueError(f"draw: x and y must have the same length, got {len(xs)} and "
                             f"{len(ys)}")
        px, py = self.series.setdefault(label, ([], []))
        px.extend(xs)
        py.extend(ys)
        if self.live:
            self._show()

    def mark_best(self, label: str | None, mode: str | None = None) -> None:
        """Mark the best point of series `label` (`mode` "min" or "max") on the figure and in
        the title; the first one on ties, non-finite values ignored. `None` turns it off."""
        if label is not None:
            check_label("label", label)
            if mode not in ("min", "max"):
                raise ValueError(f"mark_best: mode must be 'min' or 'max', got {mode!r}")
        best = None if label is None else (label, mode)
        if self.best != best:
            self.best = best
            if self.live and self.series:
                self._show()

    def _points(self, label: str, upto: float) -> tuple[list[float], list[float]]:
        """The points of `label` that can be drawn: finite, positive on a log axis, x <= upto."""
        xs, ys = self.series.get(label, ([], []))
        xlog = check_scale("xscale", self.xscale) != "linear"  # scales may be set after __init__
        ylog = check_scale("yscale", self.yscale) != "linear"
        pts = [(a, b) for a, b in zip(xs, ys, strict=True)
               if a <= upto and math.isfinite(a) and math.isfinite(b)
               and (not xlog or a > 0) and (not ylog or b > 0)]
        return [a for a, _ in pts], [b for _, b in pts]

    def _plot(self, ax, upto: float, legend_at: str | tuple[float, float] = "best") -> None:
        """Draw every series (points with x <= `upto`) and the best point on `ax`."""
        ax.set_xscale(self.xscale)
        ax.set_yscale(self.yscale)
        title, allx = self.title, []
        for i, label in enumerate(self.labels()):
            xs, ys = self._points(label, upto)
            allx += xs
            color = self.colors[i % len(self.colors)]
            ax.plot(xs, ys, marker="o", markersize=3, color=color, label=label)
            if self.best is not None and self.best[0] == label and xs:
                pick = min if self.best[1] == "min" else max
                k = pick(range(len(ys)), key=ys.__getitem__)  # the first on ties
                ax.plot([xs[k]], [ys[k]], marker="*", markersize=14, linestyle="none",
                        color=color, markeredgecolor="black", label="_best", gid="best",
                        zorder=3)
                ax.annotate(_fmt(ys[k]), (xs[k], ys[k]), xytext=(0, 9),
                            textcoords="offset points", ha="center", color=color, gid="best")
                if title:
                    title += (f": best {label.replace('_', ' ')} {_fmt(ys[k])} at "
                              f"{self.xlabel or 'x'} {_fmt_x(xs[k])}")
        if self.xlabel is not None:
            ax.set_xlabel(self.xlabel)
        if all(x.is_integer() for x in allx):
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if title:
            ax.set_title(title)
        if self.labels():
            ax.legend(loc=legend_at)
        ax.grid(True, alpha=0.3)

    def figure(self, upto: float = math.inf) -> Figure:
        """A figure of every series, keeping only points with x <= `upto`."""
        fig = Figure(figsize=self.figsize, layout="constrained")
        self._plot(fig.add_subplot(), upto)
        return fig

    def _show(self) -> None:
        """Show the board in the notebook cell, replacing the previous picture."""
        import io

        from IPython.display import Image, display

        buf = io.BytesIO()
        self.figure().savefig(buf, format="png", dpi=100)
        image = Image(data=buf.getvalue(), format="png")
        if self._display is None:
            self._display = display(image, display_id=True)
        else:
            self._display.update(image)

    def save_plot(self, path: str | os.PathLike = "plot_1.png") -> str:
        """Write the board as an image (format from the file name: .png, .pdf, .svg, ...)."""
        file = check_plot_path(path)
        fig = self.figure()
        file.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(file, dpi=120)
        return str(file)

    def save_gif(self, path: str | os.PathLike = "anim_fps.gif", fps: int = 15) -> str:
        """Write an animated GIF of the curves growing, one frame per distinct x."""
        from matplotlib.animation import FuncAnimation, PillowWriter

        if isinstance(fps, bool) or not isinstance(fps, int) or fps <= 0:
            raise ValueError(f"fps must be a positive integer, got {fps!r}")
        file = check_plot_path(path, gif=True)
        steps = sorted({x for label in self.series for x in self._points(label, math.inf)[0]})
        if not steps:
            raise ValueError("save_gif: the board is empty (no finite points); draw some first")
        fig = self.figure()
        ax = fig.axes[0]
        FigureCanvasAgg(fig).draw()  # lay out the whole board once: limits and legend stay put
        xlim, ylim = ax.get_xlim(), ax.get_ylim()
        legend = ax.get_legend().get_window_extent().transformed(ax.transAxes.inverted())

        def frame(i: int):
            ax.clear()
            self._plot(ax, steps[i], legend_at=(legend.x0, legend.y0))
            ax.set_xlim(xlim)
            ax.set_ylim(ylim)
            return ax.get_children()

        file.parent.mkdir(parents=True, exist_ok=True)
        FuncAnimation(fig, frame, frames=len(steps)).save(file, writer=PillowWriter(fps=fps))
        return str(file)


def _live_or_warn() -> bool:
    """True in a Jupyter kernel; elsewhere False, with a warning (once) that live needs one."""
    global _warned_not_live
    if in_notebook():
        return True
    if not _warned_not_live:
        _warned_not_live = True
        warnings.warn("live=True: the board is shown live only in a Jupyter kernel, and this is "
                      "not one; it is drawn without display: save it with "
                      "save_plot(board, 'board.png')", UserWarning, stacklevel=3)
    return False


def _check_board(fn: str, board) -> ProgressBoard:
    if not isinstance(board, ProgressBoard):
        raise TypeError(f"{fn}: board must be a ProgressBoard, got {_what(board)}")
    return board


def draw(board: ProgressBoard, x, y, label: str) -> None:
    """Add point(s) `(x, y)` to the series `label` of `board`."""
    _check_board("draw", board).draw(x, y, label)


def save_plot(board: ProgressBoard, path: str | os.PathLike = "plot_1.png") -> str:
    """Write `board` as an image; the path written."""
    return _check_board("save_plot", board).save_plot(path)


def save_gif(board: ProgressBoard, path: str | os.PathLike = "anim_fps.gif", fps: int = 15) -> str:
    """Write `board` as an animated GIF, one frame per distinct x; the path written."""
    return _check_board("save_gif", board).save_gif(path, fps)
