"""ProgressBoard: curves that grow as training goes; live in Jupyter, saved as PNG or GIF."""

from __future__ import annotations

import math
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
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter, NullLocator

from .checks import flag, is_real, positive_int

__all__ = ["ProgressBoard", "draw", "save_plot", "save_gif", "metric_panel"]

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
    if is_real(value):
        try:
            return [float(value)]
        except OverflowError:  # an int beyond a float's range
            raise ValueError(f"draw: {name} is an integer too large for a float "
                             f"({len(str(value))} digits)") from None
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
            or any(not is_real(v) or not 0 < v <= MAX_INCHES for v in value)):
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


def metric_panel(label: str) -> str:
    """The panel a metric (`label`) goes on, as its metric says (`d2lai.metrics`): the losses
    on "loss", the accuracies on "accuracy", `val_ppl` on "perplexity", `lr` on "learning rate";
    any other metric on a panel of its own name. A trainer's board asks its own metric list.

    >>> metric_panel("val_acc")
    'accuracy'
    """
    from .metrics import KNOWN

    return KNOWN.panel(label)


figure_panel = metric_panel  # its earlier name


def _readable_ticks(ax, log: bool) -> None:
    """Four to eight labelled y ticks at plain numbers: a log axis over less than a decade gets
    them at round values (matplotlib would label one or two), a wider one at 1, 2, 3 and 5 of
    each decade, 1, 2 and 5 from two decades, the powers of ten from four."""
    plain = FuncFormatter(lambda y, _: f"{y:g}")
    steady = MaxNLocator(nbins=6, steps=[1, 2, 2.5, 5, 10], min_n_ticks=4)
    if not log:
        ax.yaxis.set_major_locator(steady)
        return
    low, high = ax.get_ylim()
    decades = math.log10(high / low) if low > 0 else math.inf
    if decades < 1:
        ax.yaxis.set_major_locator(steady)
    else:
        subs = (1.0, 2.0, 3.0, 5.0) if decades < 2 else (1.0, 2.0, 5.0) if decades < 4 else (1.0,)
        ax.yaxis.set_major_locator(LogLocator(base=10, subs=subs))
    ax.yaxis.set_major_formatter(plain)
    ax.yaxis.set_minor_locator(NullLocator())
    ax.yaxis.set_minor_formatter(NullFormatter())


class ProgressBoard:
    """Named series of (x, y) points, drawn as they grow: live in Jupyter, saved as PNG or GIF.

    Args:
        xlabel: the x axis's label ("epoch").
        ylabels: series named in advance: each gets its colour and legend slot in that order,
            series drawn later the following ones.
        xscale, yscale: "identity" (or "linear") or "log10" (or "log"), the book's names.
        colors: matplotlib colours, cycled over the slots.
        size, figsize: (width, height) in inches (`size` is the Julia name); default 6 x 4
            for one panel, taller for more.
        live: redraw in the notebook cell at each `draw` (None: when in a Jupyter kernel).
        title: the title (the best point is added to it, see `mark_best`).
        panel_of: a function of a series' name that gives the panel (a labelled axes of its
            own) it goes on; None: one panel for all. The trainer's board uses
            `metric_panel`: losses on one panel, accuracies on another (always linear),
            perplexity and learning rate on their own.

    Uses a bare matplotlib `Figure` (no pyplot), so nothing pops up in a terminal and it works
    headless. Every y axis gets five or so labelled ticks, on a log scale too.

    >>> board = ProgressBoard("epoch", yscale="log10")
    >>> for epoch in range(1, 4):
    ...     board.draw(epoch, 1 / epoch, "train_loss")
    >>> board.save_plot("board.png")
    'board.png'
    """

    def __init__(self, xlabel: str | None = "epoch", ylabels: Sequence[str] = (), *,
                 xscale: str = "identity", yscale: str = "identity",
                 colors: Sequence | None = None, size: tuple[float, float] | None = None,
                 figsize: tuple[float, float] | None = None, live: bool | None = None,
                 title: str | None = None, panel_of=None):
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
        flag("live", live, none_means="live in Jupyter")
        if title is not None and not isinstance(title, str):
            raise TypeError(f"title must be a str or None, got {_what(title)}")
        if panel_of is not None and not callable(panel_of):
            raise TypeError(f"panel_of must be a function of a series name (e.g. "
                            f"d2lai.board.metric_panel) or None, got {_what(panel_of)}")
        self.panel_of, self.fixed_size = panel_of, bool(given)
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

    def panels(self) -> dict[str | None, list[str]]:
        """The series by panel, in slot order: losses first, accuracies next, then the others
        as first drawn (one panel, None, without `panel_of`)."""
        groups: dict[str | None, list[str]] = {}
        for label in self.labels():
            groups.setdefault(self.panel_of(label) if self.panel_of else None, []).append(label)
        rank = {"loss": 0, "accuracy": 1}
        order = sorted(groups, key=lambda p: (rank.get(p, 2), list(groups).index(p)))
        return {p: groups[p] for p in order} or {None: []}

    def _plot(self, ax, upto: float, legend_at: str | tuple[float, float] = "best") -> None:
        """Draw every series (points with x <= `upto`) and the best point on one axes `ax` (a
        subclass may draw its own way here)."""
        panels = self.panels()
        self._plot_panels([ax], upto, [legend_at],
                          panels if len(panels) == 1 else {None: self.labels()})

    def _draw(self, axes, upto: float, legend_at: list | None = None) -> None:
        """Draw the board on `axes`, one for each of `panels()`: one panel through `_plot`."""
        if len(axes) == 1:
            self._plot(axes[0], upto, legend_at[0] if legend_at else "best")
        else:
            self._plot_panels(axes, upto, legend_at, self.panels())

    def _plot_panels(self, axes, upto: float, legend_at: list | None,
                     panels: dict[str | None, list[str]]) -> None:
        """Draw each panel's series (points with x <= `upto`) and the best point."""
        title, allx = self.title, []
        for k, (ax, (panel, labels)) in enumerate(zip(axes, panels.items(), strict=True)):
            log = check_scale("yscale", self.yscale) == "log" and panel != "accuracy"
            ax.set_xscale(self.xscale)
            ax.set_yscale("log" if log else "linear")
            for i, label in enumerate(labels):
                xs, ys = self._points(label, upto)
                allx += xs
                slot = i if self.panel_of else self.labels().index(label)
                color = self.colors[slot % len(self.colors)]
                ax.plot(xs, ys, marker="o", markersize=3, color=color, label=label)
                if self.best is not None and self.best[0] == label and xs:
                    pick = min if self.best[1] == "min" else max
                    j = pick(range(len(ys)), key=ys.__getitem__)  # the first on ties
                    ax.plot([xs[j]], [ys[j]], marker="*", markersize=14, linestyle="none",
                            color=color, markeredgecolor="black", label="_best", gid="best",
                            zorder=3)
                    ax.annotate(_fmt(ys[j]), (xs[j], ys[j]), xytext=(0, 9),
                                textcoords="offset points", ha="center", color=color,
                                gid="best")
                    if title:
                        title += (f": best {label.replace('_', ' ')} {_fmt(ys[j])} at "
                                  f"{self.xlabel or 'x'} {_fmt_x(xs[j])}")
            if panel is not None:
                ax.set_ylabel(panel)
            if labels:
                ax.legend(loc=legend_at[k] if legend_at else "best")
            ax.grid(True, alpha=0.3)
            _readable_ticks(ax, log)
        if self.xlabel is not None:
            axes[-1].set_xlabel(self.xlabel)
        if all(x.is_integer() for x in allx):
            axes[-1].xaxis.set_major_locator(MaxNLocator(integer=True))
        if title:
            axes[0].set_title(title)

    def figure(self, upto: float = math.inf) -> Figure:
        """A figure of every series, a panel for each of `panels()`, keeping only points with
        x <= `upto`."""
        n = len(self.panels())
        size = self.figsize if self.fixed_size or n == 1 else (self.figsize[0], 1.2 + 2.6 * n)
        fig = Figure(figsize=size, layout="constrained")
        self._draw(fig.subplots(n, 1, sharex=True, squeeze=False)[:, 0], upto)
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

        fps = positive_int("fps", fps)
        file = check_plot_path(path, gif=True)
        steps = sorted({x for label in self.series for x in self._points(label, math.inf)[0]})
        if not steps:
            raise ValueError("save_gif: the board is empty (no finite points); draw some first")
        fig = self.figure()
        axes = fig.axes
        FigureCanvasAgg(fig).draw()  # lay out the whole board once: limits and legends stay put
        limits = [(ax.get_xlim(), ax.get_ylim()) for ax in axes]
        legends = [None if ax.get_legend() is None else ax.get_legend().get_window_extent()
                   .transformed(ax.transAxes.inverted()) for ax in axes]
        spots = [(box.x0, box.y0) if box is not None else "best" for box in legends]

        def frame(i: int):
            for ax in axes:
                ax.clear()
            self._draw(axes, steps[i], legend_at=spots)
            for ax, (xlim, ylim) in zip(axes, limits, strict=True):
                ax.set_xlim(xlim)
                ax.set_ylim(ylim)
            return [child for ax in axes for child in ax.get_children()]

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
    """Add point(s) `(x, y)` to the series `label` of `board`, as the Julia text calls it.

    Args:
        board: a `ProgressBoard`.
        x, y: numbers, or equal-length sequences, arrays or tensors.
        label: the series' name.

    >>> d2lai.draw(board, 1, 0.5, "train_loss")
    """
    _check_board("draw", board).draw(x, y, label)


def save_plot(board: ProgressBoard, path: str | os.PathLike = "plot_1.png") -> str:
    """Write `board` as an image (the format from the extension); returns the path written.

    Args:
        board: a `ProgressBoard`.
        path: .png, .svg, .pdf, ...; a name without extension gets .png.

    >>> d2lai.save_plot(trainer.board, "out/board.png")
    'out/board.png'
    """
    return _check_board("save_plot", board).save_plot(path)


def save_gif(board: ProgressBoard, path: str | os.PathLike = "anim_fps.gif", fps: int = 15) -> str:
    """Write `board` as an animated GIF, one frame per distinct x; returns the path written.

    Args:
        board: a `ProgressBoard`.
        path: the .gif file.
        fps: frames a second.

    >>> d2lai.save_gif(trainer.board, "out/board.gif", fps=5)
    'out/board.gif'
    """
    return _check_board("save_gif", board).save_gif(path, fps)
