"""ProgressBoard: series, headless PNG and GIF output, and what the trainer draws on it."""

import math
import sys
import types
import warnings

import numpy as np
import pytest
import torch
from conftest import TinyClassifier
from matplotlib.colors import to_rgba
from PIL import Image

import d2lai
from d2lai import board as board_mod
from d2lai.board import check_plot_path


@pytest.fixture(autouse=True)
def _fresh_live_warning(monkeypatch):
    """Each test sees the once-a-process 'not live outside Jupyter' warning afresh."""
    monkeypatch.setattr(board_mod, "_warned_not_live", False)


def _pretend_kernel(monkeypatch):
    """Make IPython's get_ipython() answer a Jupyter kernel's shell."""
    ipython = pytest.importorskip("IPython")
    kernel = types.SimpleNamespace(config={"IPKernelApp": {}})
    monkeypatch.setattr(ipython, "get_ipython", lambda: kernel)


def _lines(fig):
    """The series' lines of a board's figure (not the best-point marker), by label."""
    return {ln.get_label(): ln for ln in fig.axes[0].get_lines() if ln.get_gid() != "best"}


def _best(fig):
    """(x, y) of the best-point marker, or None."""
    marks = [ln for ln in fig.axes[0].get_lines() if ln.get_gid() == "best"]
    assert len(marks) <= 1
    return tuple(marks[0].get_xydata()[0]) if marks else None


def test_draw_scalars_and_sequences():
    board = d2lai.ProgressBoard("epoch", yscale="log10")
    d2lai.draw(board, 1, 0.5, "loss")
    d2lai.draw(board, [2, 3], [0.25, 0.125], "loss")
    d2lai.draw(board, 1, 0.8, "acc")
    assert board.series["loss"] == ([1.0, 2.0, 3.0], [0.5, 0.25, 0.125])
    assert board.series["acc"] == ([1.0], [0.8])
    fig = board.figure()
    ax = fig.axes[0]
    assert ax.get_yscale() == "log" and ax.get_xlabel() == "epoch"
    assert [line.get_label() for line in ax.get_lines()] == ["loss", "acc"]


def test_save_plot_and_gif(tmp_path):
    board = d2lai.ProgressBoard("epoch")
    for epoch in range(1, 6):
        board.draw(epoch, 1 / epoch, "train_loss")
        board.draw(epoch, 0.5 + epoch / 20, "val_acc")
    png = d2lai.save_plot(board, tmp_path / "sub" / "board.png")
    gif = d2lai.save_gif(board, tmp_path / "board.gif", fps=5)
    with Image.open(png) as im:
        assert im.format == "PNG" and im.size[0] > 100
    with Image.open(gif) as im:
        assert im.format == "GIF" and im.n_frames == 5


def test_non_finite_points_are_skipped_not_fatal(tmp_path):
    board = d2lai.ProgressBoard(yscale="log10")
    board.draw([1, 2, 3], [1.0, float("nan"), 0.0], "loss")
    line = board.figure().axes[0].get_lines()[0]
    assert list(line.get_xdata()) == [1.0]
    assert (tmp_path / "b.png").exists() is False
    board.save_plot(tmp_path / "b.png")
    assert (tmp_path / "b.png").stat().st_size > 0


def test_board_errors():
    with pytest.raises(ValueError, match="yscale"):
        d2lai.ProgressBoard(yscale="symlog")
    board = d2lai.ProgressBoard()
    with pytest.raises(ValueError, match="same length"):
        board.draw([1, 2], [1.0], "x")
    with pytest.raises(ValueError, match="empty"):
        board.save_gif("never.gif")


def test_trainer_draws_its_curves_and_saves_them(tiny_data, tmp_path):
    trainer = d2lai.Trainer(TinyClassifier(), tiny_data, d2lai.Descent(0.1), max_epochs=3,
                            verbose=False, board_path=tmp_path / "fit.png")
    trainer.fit()
    assert set(trainer.board.series) == {"train_loss", "train_acc", "val_loss", "val_acc"}
    assert trainer.board.series["val_acc"] == ([1.0, 2.0, 3.0], trainer.history["val_acc"])
    assert (tmp_path / "fit.png").stat().st_size > 0
    d2lai.save_gif(trainer.board, tmp_path / "fit.gif")
    with Image.open(tmp_path / "fit.gif") as im:
        assert im.n_frames == 3


def test_verbose_fit_writes_no_picture_unless_asked(tiny_data, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    trainer = d2lai.Trainer(TinyClassifier(), tiny_data, d2lai.Descent(0.1), max_epochs=1)
    d2lai.fit(trainer)
    assert list(tmp_path.iterdir()) == [] and trainer.board.series  # drawn, not written


def test_board_off(tiny_data, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    trainer = d2lai.Trainer(TinyClassifier(), tiny_data, d2lai.Descent(0.1), max_epochs=1,
                            board=False)
    trainer.fit()
    assert trainer.board is None and list(tmp_path.iterdir()) == []


def test_live_board_shows_one_picture_and_updates_it(monkeypatch):
    display_mod = pytest.importorskip("IPython.display")
    shown = []

    class Handle:
        def update(self, obj):
            shown.append(("update", obj))

    def display(obj, display_id=False):
        shown.append(("display", obj))
        return Handle()

    monkeypatch.setattr(display_mod, "display", display)
    _pretend_kernel(monkeypatch)
    board = d2lai.ProgressBoard(live=True)
    board.draw(1, 0.5, "loss")
    board.draw(2, 0.4, "loss")
    assert [kind for kind, _ in shown] == ["display", "update"]
    assert all(obj.data[:8] == b"\x89PNG\r\n\x1a\n" for _, obj in shown)
    assert d2lai.ProgressBoard().live is True  # live=None: live in a kernel
    board.mark_best("loss", "min")  # redrawn at once
    board.mark_best("loss", "min")  # unchanged: not redrawn
    board.mark_best(None)  # off: redrawn
    assert [kind for kind, _ in shown] == ["display", "update", "update", "update"]
    monkeypatch.undo()
    assert d2lai.ProgressBoard().live is False  # not in a notebook here


# -- draw: what it accepts -------------------------------------------------------------------

def test_draw_accepts_numbers_sequences_arrays_and_tensors():
    board = d2lai.ProgressBoard()
    w = torch.tensor(0.25, requires_grad=True)
    board.draw(np.int64(1), np.float32(0.5), "a")            # NumPy scalars
    board.draw(np.array(2), np.array(0.75), "a")             # 0-D arrays
    board.draw(torch.tensor(3), w * 2, "a")                  # 0-D tensors, one with a graph
    board.draw(range(4, 6), (1, 2.5), "a")                   # range and tuple
    board.draw(np.arange(6, 8), torch.tensor([3.0, 4.0], dtype=torch.float16), "a")
    board.draw([8, 9], [torch.tensor(5.0), np.float64(6.0)], "a")  # list of 0-D items
    xs, ys = board.series["a"]
    assert xs == [float(v) for v in range(1, 10)] and all(type(v) is float for v in xs + ys)
    assert ys == [0.5, 0.75, 0.5, 1.0, 2.5, 3.0, 4.0, 5.0, 6.0]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_draw_accepts_tensors_on_the_gpu():
    board = d2lai.ProgressBoard()
    y = torch.tensor([0.5, 0.25], device="cuda", requires_grad=True) * 1
    board.draw(torch.arange(1, 3, device="cuda"), y, "loss")
    board.draw(3, y.sum(), "loss")
    assert board.series["loss"] == ([1.0, 2.0, 3.0], [0.5, 0.25, 0.75])


@pytest.mark.parametrize("x, y, error, message", [
    ("12", "34", TypeError, r"x must be a number.*got str '12'"),
    (None, 1.0, TypeError, r"x must be .*got None"),
    (1, None, TypeError, r"y must be .*got None"),
    (True, 1.0, TypeError, r"x must be .*got bool True"),
    ([1, 2], [1.0, True], TypeError, r"y\[1\] must be a real number, got bool True"),
    ([1, 2], [1.0, "a"], TypeError, r"y\[1\] must be a real number, got str 'a'"),
    ([1, 2], [[1.0], [2.0]], TypeError, r"y\[0\] must be a real number, got list \[1.0\]"),
    ([1, 2], [1.0, np.array([2.0])], ValueError, r"y\[1\] must be a number, got an array of shape"),
    ((v for v in [1]), 1.0, TypeError, r"x must be .*got generator"),
    ({1, 2}, [1.0, 2.0], TypeError, r"x must be .*got set"),
    (np.ones((2, 2)), np.ones(4), ValueError, r"x must be 0-D or 1-D, got .*shape \(2, 2\)"),
    ([1, 2, 3, 4], torch.ones(2, 2), ValueError, r"y must be 0-D or 1-D.*\(2, 2\)"),
    (np.array([True]), [1.0], TypeError, r"x must hold real numbers, got an array of dtype bool"),
    (np.array(["1"]), [1.0], TypeError, r"x must hold real numbers, got an array of dtype <U1"),
    ([1], torch.tensor([True]), TypeError, r"y must hold real numbers, got a torch.bool tensor"),
    ([1], torch.tensor([1j]), TypeError, r"y must hold real numbers, got a torch.complex64"),
    ([1, 2], [1.0], ValueError, r"same length, got 2 and 1"),
    (1, torch.tensor([1.0, 2.0]), ValueError, r"same length, got 1 and 2"),
])
def test_draw_refuses_what_is_not_numbers(x, y, error, message):
    board = d2lai.ProgressBoard()
    with pytest.raises(error, match=message):
        d2lai.draw(board, x, y, "loss")
    assert board.series == {}  # nothing half-added


@pytest.mark.parametrize("label, error, message", [
    ("", TypeError, "label must be a non-empty str, got str ''"),
    (None, TypeError, "label must be a non-empty str, got None"),
    (3, TypeError, "label must be a non-empty str, got int 3"),
    ("_loss", ValueError, "must not start with '_'"),
])
def test_draw_refuses_bad_labels(label, error, message):
    with pytest.raises(error, match=message):
        d2lai.draw(d2lai.ProgressBoard(), 1, 1.0, label)


def test_module_functions_want_a_board_first():
    with pytest.raises(TypeError, match="draw: board must be a ProgressBoard, got int 1"):
        d2lai.draw(1, 0.5, "loss", "x")
    with pytest.raises(TypeError, match="save_plot: board must be a ProgressBoard, got str"):
        d2lai.save_plot("plot.png")


# -- the constructor: Julia's names and meanings ---------------------------------------------

def test_ylabels_reserve_colour_and_legend_slots_in_order():
    board = d2lai.ProgressBoard("epoch", ["train_loss", "val_loss", "val_acc"],
                                colors=["red", "green", "blue"])
    board.draw([1, 2], [0.9, 0.8], "val_acc")   # drawn first, keeps its third slot
    board.draw(1, 0.5, "other")                  # not declared: the next slot, colours cycle
    board.draw([1, 2], [1.0, 0.6], "train_loss")
    fig = board.figure()
    lines = fig.axes[0].get_lines()
    assert [ln.get_label() for ln in lines] == ["train_loss", "val_loss", "val_acc", "other"]
    assert [to_rgba(ln.get_color()) for ln in lines] == [to_rgba(c) for c in
                                                        ["red", "green", "blue", "red"]]
    assert list(lines[1].get_xdata()) == []    # declared, nothing drawn yet: an empty slot
    assert list(lines[2].get_ydata()) == [0.9, 0.8]
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert legend == ["train_loss", "val_loss", "val_acc", "other"]
    assert board.labels() == legend and board.ylabels == ["train_loss", "val_loss", "val_acc"]


def test_default_colours_follow_matplotlib_cycle():
    import matplotlib

    cycle = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
    board = d2lai.ProgressBoard()
    for k in range(len(cycle) + 1):
        board.draw(1, k, f"s{k}")
    colours = [to_rgba(ln.get_color()) for ln in board.figure().axes[0].get_lines()]
    assert colours == [to_rgba(c) for c in cycle + cycle[:1]]


def test_size_is_figsize_in_inches():
    assert tuple(d2lai.ProgressBoard().figure().get_size_inches()) == (6, 4)
    assert tuple(d2lai.ProgressBoard(size=(8, 3)).figure().get_size_inches()) == (8, 3)
    assert tuple(d2lai.ProgressBoard(figsize=(5, 2.5)).figure().get_size_inches()) == (5, 2.5)
    board = d2lai.ProgressBoard(size=(7, 3), figsize=[7, 3])  # the same twice: fine
    assert board.size == board.figsize == (7.0, 3.0)
    with pytest.raises(ValueError, match=r"size and figsize are the same setting.*\(8, 3\)"):
        d2lai.ProgressBoard(size=(8, 3), figsize=(6, 4))


def test_positional_xlabel_and_ylabels_keyword_scales():
    board = d2lai.ProgressBoard("step", ["loss"], yscale="log10", xscale="log")
    ax = board.figure().axes[0]
    assert ax.get_xlabel() == "step" and ax.get_yscale() == "log" and ax.get_xscale() == "log"
    assert board.labels() == ["loss"]
    with pytest.raises(TypeError):
        d2lai.ProgressBoard("epoch", [], "log10")  # scales are keywords, as in Julia


@pytest.mark.parametrize("kwargs, error, message", [
    ({"xscale": "log2"}, ValueError, "xscale must be one of 'identity'.*got 'log2'"),
    ({"yscale": None}, ValueError, "yscale must be one of"),
    ({"yscale": ["log"]}, ValueError, r"yscale must be one of.*got \[.log.\]"),
    ({"ylabels": "loss"}, TypeError, r"ylabels must be a list of series names.*got str 'loss'"),
    ({"ylabels": ["loss", 3]}, TypeError, r"ylabels\[1\] must be a non-empty str, got int 3"),
    ({"ylabels": ["loss", "loss"]}, ValueError, "ylabels must be distinct"),
    ({"colors": "red"}, TypeError, "colors must be a non-empty list of matplotlib colours"),
    ({"colors": []}, TypeError, "colors must be a non-empty list"),
    ({"colors": ["red", "reddish"]}, ValueError, r"colors\[1\] is not a matplotlib colour"),
    ({"size": (600, 400)}, ValueError, r"size must be \(width, height\) in inches.*\(600, 400\)"),
    ({"figsize": (0, 4)}, ValueError, r"figsize must be \(width, height\) in inches"),
    ({"figsize": (math.nan, 4)}, ValueError, "figsize must be"),
    ({"figsize": (True, 4)}, ValueError, "figsize must be"),
    ({"figsize": "64"}, ValueError, "figsize must be"),
    ({"figsize": 6}, ValueError, "figsize must be"),
    ({"live": "yes"}, TypeError, "live must be True, False or None"),
    ({"title": 3}, TypeError, "title must be a str or None, got int 3"),
    ({"xlabel": 3}, TypeError, "xlabel must be a str or None, got int 3"),
])
def test_board_arguments_are_checked(kwargs, error, message):
    with pytest.raises(error, match=message):
        d2lai.ProgressBoard(**kwargs)


# -- live=True outside Jupyter ---------------------------------------------------------------

def test_live_without_ipython_warns_once_and_draws_quietly(monkeypatch):
    monkeypatch.setitem(sys.modules, "IPython", None)  # `import IPython` would fail
    with pytest.warns(UserWarning, match="shown live only in a Jupyter kernel.*save_plot"):
        board = d2lai.ProgressBoard(live=True)
    assert board.live is False
    board.draw(1, 0.5, "loss")  # no display attempted
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert d2lai.ProgressBoard(live=True).live is False  # once
        assert d2lai.ProgressBoard(live=False).live is False


def test_live_in_a_terminal_ipython_is_not_live(monkeypatch):
    terminal = types.ModuleType("IPython")
    terminal.get_ipython = lambda: types.SimpleNamespace(config={"TerminalIPythonApp": {}})
    monkeypatch.setitem(sys.modules, "IPython", terminal)
    assert d2lai.ProgressBoard().live is False
    with pytest.warns(UserWarning, match="only in a Jupyter kernel"):
        assert d2lai.ProgressBoard(live=True).live is False


# -- saving: Julia's default names, paths checked first --------------------------------------

def _small_board():
    board = d2lai.ProgressBoard()
    board.draw([1, 2, 3], [0.9, 0.5, 0.4], "loss")
    return board


def test_default_file_names_are_julias(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    board = _small_board()
    assert d2lai.save_plot(board) == "plot_1.png" and (tmp_path / "plot_1.png").stat().st_size
    assert d2lai.save_gif(board) == "anim_fps.gif"
    with Image.open(tmp_path / "anim_fps.gif") as im:
        assert im.n_frames == 3
        assert im.info["duration"] == pytest.approx(1000 / 15, abs=10)  # fps=15
    (tmp_path / "plot_1.png").unlink()
    assert board.save_plot() == "plot_1.png" and (tmp_path / "plot_1.png").exists()


def test_save_plot_writes_the_format_of_the_extension(tmp_path):
    board = _small_board()
    assert d2lai.save_plot(board, tmp_path / "b.svg") == str(tmp_path / "b.svg")
    assert "<svg" in (tmp_path / "b.svg").read_text()
    board.save_plot(tmp_path / "b.PDF")
    assert (tmp_path / "b.PDF").read_bytes()[:5] == b"%PDF-"
    assert board.save_plot(tmp_path / "new" / "run") == str(tmp_path / "new" / "run.png")
    with Image.open(tmp_path / "new" / "run.png") as im:
        assert im.format == "PNG"


def test_check_plot_path(tmp_path):
    (tmp_path / "f.txt").write_text("a file")
    assert check_plot_path(tmp_path / "a" / "b.png") == tmp_path / "a" / "b.png"
    assert check_plot_path(str(tmp_path / "b.JPG")) == tmp_path / "b.JPG"
    assert check_plot_path(tmp_path / "run") == tmp_path / "run.png"
    assert check_plot_path(tmp_path / "run", gif=True) == tmp_path / "run.gif"
    with pytest.raises(ValueError, match=r"cannot write '.*b\.xyz': matplotlib can write only .*"
                                         r"\.eps, .*\.pdf, .*\.png, .*\.svg"):
        check_plot_path(tmp_path / "b.xyz")
    with pytest.raises(ValueError, match=r"b\.png': save_gif writes only \.gif files"):
        check_plot_path(tmp_path / "b.png", gif=True)
    for bad in (tmp_path / "f.txt" / "b.png", tmp_path / "f.txt" / "sub" / "b.png"):
        with pytest.raises(NotADirectoryError, match=r"f\.txt' is a file, not a folder"):
            check_plot_path(bad)
    with pytest.raises(IsADirectoryError, match="is a folder; give a file name"):
        check_plot_path(tmp_path)
    with pytest.raises(IsADirectoryError, match="is a folder"):
        check_plot_path("plots/")
    with pytest.raises(ValueError, match="path is empty"):
        check_plot_path("")
    with pytest.raises(TypeError, match="path must be a str or pathlib.Path, got int 3"):
        check_plot_path(3)
    assert list(tmp_path.iterdir()) == [tmp_path / "f.txt"]  # checking creates nothing


def test_bad_paths_fail_before_any_drawing(tmp_path, monkeypatch):
    board = _small_board()

    def no_drawing(*args, **kwargs):
        raise AssertionError("drew before checking the path")

    monkeypatch.setattr(board, "figure", no_drawing)
    monkeypatch.setattr(board, "_plot", no_drawing)
    with pytest.raises(ValueError, match=r"b\.xyz"):
        d2lai.save_plot(board, tmp_path / "b.xyz")
    with pytest.raises(ValueError, match=r"b\.mp4"):
        d2lai.save_gif(board, tmp_path / "b.mp4")
    (tmp_path / "f").write_text("")
    with pytest.raises(NotADirectoryError):
        board.save_gif(tmp_path / "f" / "b.gif")
    with pytest.raises(ValueError, match="fps must be a positive integer, got True"):
        board.save_gif(tmp_path / "b.gif", fps=True)


# -- the best point --------------------------------------------------------------------------

def test_mark_best_max_marks_the_first_best_point_and_titles_it():
    board = d2lai.ProgressBoard(title="BLeNetScratch")
    acc = [0.5, 0.8731, 0.8731, math.nan, 0.87, math.inf]
    board.draw(range(1, 7), acc, "val_acc")
    board.draw(range(1, 7), [1.0, 0.4, 0.3, 0.2, 0.1, 0.05], "val_loss")
    board.mark_best("val_acc", "max")
    fig = board.figure()
    finite = np.where(np.isfinite(acc), acc, -np.inf)
    k = int(np.argmax(finite))  # NumPy's argmax: the first of ties
    assert _best(fig) == (k + 1, acc[k]) == (2, 0.8731)
    ax = fig.axes[0]
    assert ax.get_title() == "BLeNetScratch: best val acc 0.8731 at epoch 2"
    assert [t.get_text() for t in ax.texts] == ["0.8731"]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["val_acc", "val_loss"]
    star = [ln for ln in ax.get_lines() if ln.get_gid() == "best"][0]
    assert star.get_marker() == "*" and star.get_color() == _lines(fig)["val_acc"].get_color()


def test_mark_best_min_ignores_non_finite_and_shows_fractional_x():
    board = d2lai.ProgressBoard("step", title="run")
    board.draw([0.5, 1.0, 1.5, 2.0], [0.4, -math.inf, 0.25, math.nan], "train_loss")
    board.mark_best("train_loss", "min")
    fig = board.figure()
    assert _best(fig) == (1.5, 0.25)
    assert fig.axes[0].get_title() == "run: best train loss 0.2500 at step 1.5"
    assert _best(board.figure(upto=1.0)) == (0.5, 0.4)  # the best so far (a GIF frame)


def test_mark_best_without_title_off_and_before_drawing():
    board = d2lai.ProgressBoard(title="T")
    board.mark_best("val_acc", "max")  # nothing drawn yet: no mark, plain title
    assert _best(board.figure()) is None and board.figure().axes[0].get_title() == "T"
    board.draw([1, 2], [0.2, 0.1], "val_acc")
    assert _best(board.figure()) == (1, 0.2)
    board.title = None
    ax = board.figure().axes[0]
    assert ax.get_title() == "" and _best(ax.figure) == (1, 0.2)
    board.mark_best(None)
    assert _best(board.figure()) is None and len(board.figure().axes[0].texts) == 0


@pytest.mark.parametrize("args, error, message", [
    (("val_acc", "best"), ValueError, "mode must be 'min' or 'max', got 'best'"),
    (("val_acc",), ValueError, "mode must be 'min' or 'max', got None"),
    ((3, "max"), TypeError, "label must be a non-empty str, got int 3"),
])
def test_mark_best_errors(args, error, message):
    with pytest.raises(error, match=message):
        d2lai.ProgressBoard().mark_best(*args)


def test_gif_with_a_best_mark_has_a_frame_per_epoch(tmp_path):
    board = d2lai.ProgressBoard(title="T")
    board.draw(range(1, 5), [0.5, 0.7, 0.6, 0.8], "val_acc")
    board.mark_best("val_acc", "max")
    with Image.open(board.save_gif(tmp_path / "b.gif", fps=5)) as im:
        assert im.n_frames == 4
    assert board.figure().axes[0].get_title() == "T: best val acc 0.8000 at epoch 4"


# -- what the figure keeps out ---------------------------------------------------------------

def test_figure_skips_points_it_cannot_place_and_ticks_integer_epochs():
    board = d2lai.ProgressBoard(xscale="log10", yscale="log10")
    board.draw([math.inf, 0, 1, 2, 3, math.nan], [1.0, 1.0, 0.5, -1.0, 0.25, 1.0], "loss")
    line = _lines(board.figure())["loss"]
    assert list(line.get_xdata()) == [1.0, 3.0] and list(line.get_ydata()) == [0.5, 0.25]
    ax = d2lai.ProgressBoard().figure().axes[0]  # empty board: fine
    assert ax.get_lines() == []
    epochs = d2lai.ProgressBoard()
    epochs.draw([1, 2, 3], [0.3, 0.2, 0.1], "loss")
    ticks = epochs.figure().axes[0].get_xticks()
    assert len(ticks) >= 2 and all(t == int(t) for t in ticks)
    steps = d2lai.ProgressBoard()
    steps.draw([1, 1.25, 1.5], [0.3, 0.2, 0.1], "loss")
    assert any(t != int(t) for t in steps.figure().axes[0].get_xticks())
