"""The edition's plotting helpers, on pyplot as the edition draws: `plot`, `show_images`, the
live curves of `Animator`, heatmaps of attention weights and the histogram of sentence lengths
(the last two drawn by d2lai's own functions into a pyplot figure). `d2l.plt` is pyplot.
"""

from __future__ import annotations

import matplotlib
import numpy as np
import torch

from .. import board as _board
from ..checks import positive_int
from ..data import text as _text
from ..models import attention as _attention

__all__ = ["use_svg_display", "set_figsize", "set_axes", "plot", "show_images", "Animator",
           "show_heatmaps", "show_list_len_pair_hist"]


def use_svg_display() -> None:
    """Show plots as SVG in Jupyter (nothing to do elsewhere)."""
    if _board.in_notebook():
        try:
            from matplotlib_inline.backend_inline import set_matplotlib_formats
        except ImportError:
            return
        set_matplotlib_formats("svg")


def set_figsize(figsize=(3.5, 2.5)) -> None:
    """Set matplotlib's default figure size (inches)."""
    use_svg_display()
    matplotlib.rcParams["figure.figsize"] = figsize


def set_axes(axes, xlabel, ylabel, xlim, ylim, xscale, yscale, legend) -> None:
    """Set labels, scales, limits and legend of matplotlib `axes`, with a grid."""
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.set_xscale(xscale)
    axes.set_yscale(yscale)
    axes.set_xlim(xlim)
    axes.set_ylim(ylim)
    if legend:
        axes.legend(legend)
    axes.grid()


def _as_plottable(values, name: str | None = None):
    """`values` as matplotlib takes them; with `name`, a curve's values checked first: numbers
    a float holds, and at least one finite value (a curve of NaNs draws nothing, silently)."""
    values = values.detach().cpu().numpy() if isinstance(values, torch.Tensor) else values
    if name is None:
        return values
    try:
        floats = np.asarray(values, dtype=float)
    except OverflowError:
        raise ValueError(f"plot: {name} holds an integer too large for a float") from None
    except (TypeError, ValueError):  # not numbers (dates, names): matplotlib's to judge
        return values
    if floats.size and not np.isfinite(floats).any():
        raise ValueError(f"plot: {name} has no finite value (all NaN or infinite): nothing "
                         f"would be drawn")
    return floats


def plot(X, Y=None, xlabel=None, ylabel=None, legend=[], xlim=None,  # noqa: B006 (the edition's)
         ylim=None, xscale="linear", yscale="linear", fmts=("-", "m--", "g-.", "r:"),
         figsize=(3.5, 2.5), axes=None):
    """Plot one or several curves: `plot(y)`, `plot(x, y)`, `plot(x, [y1, y2])`,
    `plot([x1, x2], [y1, y2])`; tensors are fine (also ones that require grad)."""
    from matplotlib import pyplot as plt

    def one_curve(v):
        return (getattr(v, "ndim", None) == 1
                or (isinstance(v, list) and len(v) > 0 and not hasattr(v[0], "__len__")))

    X = [X] if one_curve(X) else list(X)
    if Y is None:
        X, Y = [None] * len(X), X
    else:
        Y = [Y] if one_curve(Y) else list(Y)
        if len(X) == 1:
            X = X * len(Y)
    if len(X) != len(Y):
        raise ValueError(f"plot: {len(X)} x-sequences for {len(Y)} y-sequences; give one x for "
                         f"all, or one per y")
    set_figsize(figsize)
    if axes is None:
        axes = plt.gca()
    axes.cla()
    for i, (x, y) in enumerate(zip(X, Y, strict=True)):
        fmt = fmts[i % len(fmts)]
        if x is None or len(x) == 0:
            axes.plot(_as_plottable(y, f"curve {i}"), fmt)
        else:
            axes.plot(_as_plottable(x, f"x of curve {i}"), _as_plottable(y, f"curve {i}"), fmt)
    set_axes(axes, xlabel, ylabel, xlim, ylim, xscale, yscale, legend)


def show_images(imgs, num_rows, num_cols, titles=None, scale=1.5):
    """Show images in a grid of `num_rows` x `num_cols` (titled by `titles`); the axes."""
    from matplotlib import pyplot as plt

    _, axes = plt.subplots(num_rows, num_cols, figsize=(num_cols * scale, num_rows * scale),
                           squeeze=False)
    axes = axes.flatten()
    for i, (ax, img) in enumerate(zip(axes, imgs, strict=False)):
        ax.imshow(_as_plottable(img))
        ax.axes.get_xaxis().set_visible(False)
        ax.axes.get_yaxis().set_visible(False)
        if titles:
            ax.set_title(titles[i])
    return axes



# --- live curves ---------------------------------------------------------------------------------

def _value(v):
    """A point's coordinate as a float (one-element tensors and arrays too); None stays None."""
    if v is None:
        return None
    n = v.numel() if isinstance(v, torch.Tensor) else np.size(v)
    if n != 1:
        raise ValueError(f"Animator.add takes numbers, got {type(v).__name__} of {n} values")
    return float(v)


class Animator:
    """Curves that grow a point at a time: `add(x, (y1, y2, ...))` appends one point to each
    curve (a None skips that curve) and redraws. In Jupyter the picture updates in place;
    elsewhere it stays a pyplot figure (`animator.fig`) to show or save."""

    def __init__(self, xlabel=None, ylabel=None, legend=None, xlim=None, ylim=None,
                 xscale="linear", yscale="linear", fmts=("-", "m--", "g-.", "r:"), nrows=1,
                 ncols=1, figsize=(3.5, 2.5)):
        from matplotlib import pyplot as plt

        nrows, ncols = positive_int("nrows", nrows), positive_int("ncols", ncols)
        if isinstance(fmts, str) or not fmts:
            raise TypeError(f"fmts must be a list of line formats such as ['-', 'm--'], "
                            f"got {fmts!r}")
        legend = [] if legend is None else list(legend)
        use_svg_display()
        self.fig, axes = plt.subplots(nrows, ncols, figsize=figsize)
        self.axes = list(np.ravel(axes))
        self.config_axes = lambda: set_axes(self.axes[0], xlabel, ylabel, xlim, ylim, xscale,
                                            yscale, legend)
        self.X, self.Y, self.fmts = None, None, fmts

    def add(self, x, y) -> None:
        """One point per curve: `y` a value or a sequence of values (one per curve), `x` one
        value for all or one per curve."""
        ys = list(y) if hasattr(y, "__len__") and not _is_scalar(y) else [y]
        xs = list(x) if hasattr(x, "__len__") and not _is_scalar(x) else [x] * len(ys)
        if len(xs) != len(ys):
            raise ValueError(f"Animator.add: {len(xs)} x values for {len(ys)} y values")
        if self.X is None:
            self.X, self.Y = [[] for _ in ys], [[] for _ in ys]
        if len(ys) != len(self.Y):
            raise ValueError(f"Animator.add: {len(ys)} values, but this animator draws "
                             f"{len(self.Y)} curves")
        for i, (a, b) in enumerate(zip(xs, ys, strict=True)):
            a, b = _value(a), _value(b)
            if a is not None and b is not None:
                self.X[i].append(a)
                self.Y[i].append(b)
        ax = self.axes[0]
        ax.cla()
        for i, (xs_i, ys_i) in enumerate(zip(self.X, self.Y, strict=True)):
            ax.plot(xs_i, ys_i, self.fmts[i % len(self.fmts)])
        self.config_axes()
        if _board.in_notebook():
            from IPython import display

            display.display(self.fig)
            display.clear_output(wait=True)


def _is_scalar(v) -> bool:
    return isinstance(v, (torch.Tensor, np.ndarray)) and v.ndim == 0



# --- figures of the attention chapters -----------------------------------------------------------

def show_heatmaps(matrices, xlabel, ylabel, titles=None, figsize=(2.5, 2.5), cmap="Reds"):
    """Heatmaps of `matrices` (rows, cols, queries, keys) in a grid, with a colour bar, on a new
    pyplot figure; `titles` name the columns."""
    from matplotlib import pyplot as plt

    use_svg_display()
    _attention.show_heatmaps(matrices, xlabel, ylabel, titles, figsize, cmap,
                             fig=plt.figure(figsize=figsize))


def show_list_len_pair_hist(legend, xlabel, ylabel, xlist, ylist):
    """A histogram of the lengths of the sequences of two lists (source and target sentences),
    side by side, the second hatched, on a new pyplot figure."""
    from matplotlib import pyplot as plt

    set_figsize()
    _text.show_list_len_pair_hist(legend, xlabel, ylabel, xlist, ylist, fig=plt.figure())


def __getattr__(name: str):
    """`d2l.plt` is matplotlib's pyplot, imported when first used."""
    if name == "plt":
        from matplotlib import pyplot

        return pyplot
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
