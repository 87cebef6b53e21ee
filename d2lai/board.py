"""ProgressBoard: curves that grow as training goes; live in Jupyter, saved as PNG or GIF."""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Sequence

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

__all__ = ["ProgressBoard", "draw", "save_plot", "save_gif"]

SCALES = {"identity": "linear", "linear": "linear", "log10": "log", "log": "log"}


def check_scale(name: str, scale: str) -> str:
    """The matplotlib name of a book's axis scale (`"identity"`, `"log10"`, ...)."""
    if scale not in SCALES:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, SCALES))}, got {scale!r}")
    return SCALES[scale]


def _in_notebook() -> bool:
    shell = sys.modules.get("IPython") and sys.modules["IPython"].get_ipython()
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


class ProgressBoard:
    """Named series of (x, y) points on one set of axes.

    Uses a bare matplotlib `Figure` (no pyplot), so nothing pops up in a terminal and it works
    headless; in a Jupyter kernel the figure is shown in the cell and updated in place.
    """

    def __init__(self, xlabel: str = "epoch", ylabels: Sequence[str] = (),
                 xscale: str = "identity", yscale: str = "identity",
                 live: bool | None = None, figsize: tuple[float, float] = (6, 4),
                 title: str | None = None):
        self.xlabel, self.ylabels, self.title = xlabel, list(ylabels), title
        self.xscale, self.yscale = check_scale("xscale", xscale), check_scale("yscale", yscale)
        self.figsize = figsize
        self.series: dict[str, tuple[list[float], list[float]]] = {}
        self.live = _in_notebook() if live is None else live
        self._display = None

    def draw(self, x, y, label: str) -> None:
        """Add point(s) `(x, y)` to the series `label` (scalars or equal-length sequences)."""
        xs = list(x) if isinstance(x, Sequence) else [x]
        ys = list(y) if isinstance(y, Sequence) else [y]
        if len(xs) != len(ys):
            raise ValueError(f"draw: x and y must have the same length, got {len(xs)} and "
                             f"{len(ys)}")
        px, py = self.series.setdefault(label, ([], []))
        px.extend(float(v) for v in xs)
        py.extend(float(v) for v in ys)
        if self.live:
            self._show()

    def figure(self, upto: float = math.inf) -> Figure:
        """A figure of every series, keeping only points with x <= `upto`."""
        fig = Figure(figsize=self.figsize, layout="constrained")
        ax = fig.add_subplot()
        for label, (xs, ys) in self.series.items():
            pts = [(a, b) for a, b in zip(xs, ys, strict=True) if a <= upto and math.isfinite(b)
                   and (self.yscale == "linear" or b > 0)]
            ax.plot([a for a, _ in pts], [b for _, b in pts], marker="o", markersize=3,
                    label=label)
        ax.set_xscale(self.xscale)
        ax.set_yscale(self.yscale)
        ax.set_xlabel(self.xlabel)
        if all(x == int(x) for xs, _ in self.series.values() for x in xs):
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if self.title:
            ax.set_title(self.title)
        if self.ylabels:
            ax.set_ylabel(", ".join(self.ylabels))
        if self.series:
            ax.legend()
        ax.grid(True, alpha=0.3)
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

    def save_plot(self, path: str | os.PathLike) -> str:
        """Write the board as an image (format from the file name, e.g. .png, .pdf, .svg)."""
        _make_parent(path)
        self.figure().savefig(path, dpi=120)
        return str(path)

    def save_gif(self, path: str | os.PathLike, fps: int = 15) -> str:
        """Write an animated GIF of the curves growing, one frame per distinct x."""
        from matplotlib.animation import FuncAnimation, PillowWriter

        if not isinstance(fps, int) or fps <= 0:
            raise ValueError(f"fps must be a positive integer, got {fps!r}")
        steps = sorted({x for xs, _ in self.series.values() for x in xs})
        if not steps:
            raise ValueError("save_gif: the board is empty; draw some points first")
        fig = self.figure()
        ax = fig.axes[0]
        xlim, ylim = ax.get_xlim(), ax.get_ylim()
        lines = {line.get_label(): line for line in ax.get_lines()}
        full = {label: line.get_data() for label, line in lines.items()}

        def frame(i: int):
            for label, line in lines.items():
                xs, ys = full[label]
                keep = [k for k, x in enumerate(xs) if x <= steps[i]]
                line.set_data([xs[k] for k in keep], [ys[k] for k in keep])
            ax.set_xlim(xlim)
            ax.set_ylim(ylim)
            return list(lines.values())

        _make_parent(path)
        FuncAnimation(fig, frame, frames=len(steps)).save(path, writer=PillowWriter(fps=fps))
        return str(path)


def _make_parent(path: str | os.PathLike) -> None:
    parent = os.path.dirname(os.fspath(path))
    if parent:
        os.makedirs(parent, exist_ok=True)


def draw(board: ProgressBoard, x, y, label: str) -> None:
    board.draw(x, y, label)


def save_plot(board: ProgressBoard, path: str | os.PathLike) -> str:
    return board.save_plot(path)


def save_gif(board: ProgressBoard, path: str | os.PathLike, fps: int = 15) -> str:
    return board.save_gif(path, fps)
