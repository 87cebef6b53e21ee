"""The optimisation chapter's helpers: 2-D traces of update rules, and the airfoil regression
that each optimiser is trained on, from scratch (`train_ch11`) and with `torch.optim`."""

import numpy as np
import pytest
import torch
from matplotlib import pyplot as plt

from d2lai import torch as d2l


def write_airfoil(root, n=400, num_features=5, seed=0):
    """An airfoil_self_noise.dat stand-in: tab-separated rows, the features then a target
    that is linear in them plus noise."""
    rng = np.random.default_rng(seed)
    X = rng.uniform(0, 10, size=(n, num_features)) * rng.uniform(1, 100, size=num_features)
    y = X @ rng.normal(size=num_features) + rng.normal(0, 5, size=n)
    np.savetxt(root / "airfoil_self_noise.dat", np.column_stack([X, y]), delimiter="\t",
               fmt="%.6g")
    return np.column_stack([X, y])


@pytest.fixture
def airfoil_root(tmp_path, monkeypatch):
    monkeypatch.setenv("D2LAI_DATA", str(tmp_path))
    write_airfoil(tmp_path)
    return tmp_path


def f_2d(x1, x2):
    return x1 ** 2 + 2 * x2 ** 2


def test_train_2d_follows_the_rule_from_minus_5_minus_2(capsys):
    def gd_2d(x1, x2, s1, s2, f_grad):
        g1, g2 = f_grad(x1, x2)
        return x1 - 0.1 * g1, x2 - 0.1 * g2, s1 + 1, s2

    results = d2l.train_2d(gd_2d, steps=3, f_grad=lambda x1, x2: (2 * x1, 4 * x2))
    x1, x2 = -5.0, -2.0
    expected = [(x1, x2)]
    for _ in range(3):
        x1, x2 = 0.8 * x1, 0.6 * x2
        expected.append((x1, x2))
    assert np.allclose(np.array(results, dtype=float), np.array(expected))
    assert capsys.readouterr().out == f"epoch 3, x1: {x1:f}, x2: {x2:f}\n"

    seen_states = []

    def momentum_2d(x1, x2, v1, v2):  # a rule without f_grad, with state
        seen_states.append((v1, v2))
        return x1, x2, v1 + 1, v2 + 2

    d2l.train_2d(momentum_2d, steps=2)
    assert seen_states == [(0, 0), (1, 2)]
    with pytest.raises(ValueError, match="steps must be a positive integer"):
        d2l.train_2d(momentum_2d, steps=0)


def test_show_trace_2d_draws_the_path_over_contours():
    plt.close("all")
    results = [(-5.0, -2.0), (torch.tensor(-4.0), torch.tensor(-1.0)), (-3.0, 0.5)]
    d2l.show_trace_2d(f_2d, results)
    ax = plt.gca()
    path = ax.lines[0]
    assert list(path.get_xdata()) == [-5.0, -4.0, -3.0]
    assert list(path.get_ydata()) == [-2.0, -1.0, 0.5]
    assert len(ax.collections) >= 1  # the contour set
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("x1", "x2")
    d2l.annotate("start", (-5.0, -2.0), (-4.0, 0.0))
    assert [t.get_text() for t in ax.texts] == ["start"]
    plt.close("all")


def test_get_data_ch11_standardises_the_file(airfoil_root):
    raw = np.loadtxt(airfoil_root / "airfoil_self_noise.dat", delimiter="\t")
    data_iter, feature_dim = d2l.get_data_ch11(batch_size=32, n=300)
    assert feature_dim == 5 and len(data_iter) == 10  # 300 rows: 9 batches of 32 and one of 12
    batches = list(data_iter)  # one pass: each pass draws a new order
    X, y = torch.cat([b[0] for b in batches]), torch.cat([b[1] for b in batches])
    assert X.shape == (300, 5) and y.shape == (300,)
    whole = (raw - raw.mean(axis=0)) / raw.std(axis=0)  # over the whole file, not the n rows
    rows = sorted(zip(y.tolist(), X.tolist(), strict=True))
    expected = sorted(zip(whole[:300, -1].tolist(), whole[:300, :-1].tolist(), strict=True))
    assert np.allclose(np.array([r[1] for r in rows]), np.array([r[1] for r in expected]),
                       atol=1e-4)


def test_get_data_ch11_says_what_is_wrong_with_a_bad_file(tmp_path, monkeypatch):
    monkeypatch.setenv("D2LAI_DATA", str(tmp_path))
    (tmp_path / "airfoil_self_noise.dat").write_text("1\t2\t3\n4\tx\t6\n")
    with pytest.raises(ValueError, match="1 unreadable values"):
        d2l.get_data_ch11()
    (tmp_path / "airfoil_self_noise.dat").write_text("1\t2\t3\n4\t2\t6\n")
    with pytest.raises(ValueError, match=r"column\(s\) \[1\] hold one value only"):
        d2l.get_data_ch11()


def sgd(params, states, hyperparams):
    """The chapter's from-scratch rule: p -= lr * grad, then clear the gradient."""
    for p in params:
        p.data.sub_(hyperparams["lr"] * p.grad)
        p.grad.data.zero_()


def test_train_ch11_with_sgd_lowers_the_loss(airfoil_root, capsys, one_thread):
    torch.manual_seed(0)
    data_iter, feature_dim = d2l.get_data_ch11(batch_size=10, n=400)
    start = d2l.evaluate_loss(lambda X: torch.zeros(len(X), 1), data_iter, d2l.squared_loss)
    times, losses = d2l.train_ch11(sgd, None, {"lr": 0.05}, data_iter, feature_dim,
                                   num_epochs=2)
    assert len(losses) == 4 and len(times) == 4  # one point every 200 of 800 examples
    assert times == sorted(times)
    assert losses[-1] < 0.5 * start and losses[-1] <= losses[0]
    assert capsys.readouterr().out.startswith(f"loss: {losses[-1]:.3f}, ")


def test_train_ch11_draws_once_when_fewer_than_200_examples(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("D2LAI_DATA", str(tmp_path))
    write_airfoil(tmp_path, n=50)
    data_iter, feature_dim = d2l.get_data_ch11(batch_size=50, n=50)
    _, losses = d2l.train_ch11(sgd, None, {"lr": 0.1}, data_iter, feature_dim, num_epochs=1)
    assert len(losses) == 1


def test_train_concise_ch11_with_torch_sgd_lowers_the_loss(tmp_path, monkeypatch, one_thread):
    monkeypatch.setenv("D2LAI_DATA", str(tmp_path))
    write_airfoil(tmp_path, num_features=3)  # the layer takes the data's width
    torch.manual_seed(0)
    data_iter, feature_dim = d2l.get_data_ch11(batch_size=10, n=400)
    assert feature_dim == 3
    start = d2l.evaluate_loss(lambda X: torch.zeros(len(X), 1), data_iter, d2l.squared_loss)
    times, losses = d2l.train_concise_ch11(torch.optim.SGD, {"lr": 0.05, "momentum": 0.5},
                                           data_iter, num_epochs=1)
    assert len(losses) == 2 and losses[-1] < 0.5 * start
