"""ProgressBoard: series, headless PNG and GIF output, and what the trainer draws on it."""

import pytest
from conftest import TinyClassifier
from PIL import Image

import d2lai


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
    assert set(trainer.board.series) == {"train_loss", "val_loss", "val_acc"}
    assert trainer.board.series["val_acc"] == ([1.0, 2.0, 3.0], trainer.history["val_acc"])
    assert (tmp_path / "fit.png").stat().st_size > 0
    d2lai.save_gif(trainer.board, tmp_path / "fit.gif")
    with Image.open(tmp_path / "fit.gif") as im:
        assert im.n_frames == 3


def test_verbose_fit_saves_the_board_in_the_working_folder(tiny_data, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    d2lai.fit(d2lai.Trainer(TinyClassifier(), tiny_data, d2lai.Descent(0.1), max_epochs=1))
    assert (tmp_path / "TinyClassifier-board.png").stat().st_size > 0


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
    board = d2lai.ProgressBoard(live=True)
    board.draw(1, 0.5, "loss")
    board.draw(2, 0.4, "loss")
    assert [kind for kind, _ in shown] == ["display", "update"]
    assert all(obj.data[:8] == b"\x89PNG\r\n\x1a\n" for _, obj in shown)
    assert d2lai.ProgressBoard().live is False  # not in a notebook here
