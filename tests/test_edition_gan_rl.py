"""The GAN steps against a hand computation, the Pokemon stand-in through download_extract, the
FrozenLake environment and its figures, and the appendices' odds and ends (rbfkernel, d2l.plt's
stem, the error for a missing name)."""

import copy
import math
import sys

import matplotlib
import numpy as np
import pytest
import torch
import torchvision
from matplotlib import pyplot
from torch import nn

from d2lai import torch as d2l
from d2lai.testing import write_fake_pokemon


def nets():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(2, 3), nn.Tanh(), nn.Linear(3, 1)), nn.Linear(2, 2)


def test_update_D_takes_one_step_on_the_mean_of_both_losses_and_leaves_G_alone():
    net_D, net_G = nets()
    X, Z = torch.randn(5, 2), torch.randn(5, 2)
    D0, G0 = copy.deepcopy(net_D), copy.deepcopy(net_G)
    loss = nn.BCEWithLogitsLoss(reduction="sum")
    loss_D = d2l.update_D(X, Z, net_D, net_G, loss, torch.optim.SGD(net_D.parameters(), lr=0.1))
    # by hand: -log sigmoid(D(x)) for the real ones, -log(1 - sigmoid(D(G(z)))) for the fakes
    expected = (F_softplus(-D0(X)).sum() + F_softplus(D0(G0(Z))).sum()) / 2
    assert loss_D.item() == pytest.approx(expected.item(), rel=1e-6)
    expected.backward()
    for p, p0 in zip(net_D.parameters(), D0.parameters(), strict=True):
        assert torch.allclose(p, p0 - 0.1 * p0.grad, atol=1e-6)
    for p, p0 in zip(net_G.parameters(), G0.parameters(), strict=True):
        assert torch.equal(p, p0)
    with pytest.raises(ValueError, match="5 real examples but 4 noise vectors"):
        d2l.update_D(X, Z[:4], net_D, net_G, loss, torch.optim.SGD(net_D.parameters(), lr=0.1))


def F_softplus(x):
    return torch.log1p(torch.exp(x))


def test_update_G_steps_the_generator_towards_being_taken_for_real():
    net_D, net_G = nets()
    Z = torch.randn(6, 2)
    D0, G0 = copy.deepcopy(net_D), copy.deepcopy(net_G)
    loss = nn.BCEWithLogitsLoss(reduction="sum")
    loss_G = d2l.update_G(Z, net_D, net_G, loss, torch.optim.SGD(net_G.parameters(), lr=0.1))
    expected = F_softplus(-D0(G0(Z))).sum()
    assert loss_G.item() == pytest.approx(expected.item(), rel=1e-6)
    expected.backward()
    for p, p0 in zip(net_G.parameters(), G0.parameters(), strict=True):
        assert torch.allclose(p, p0 - 0.1 * p0.grad, atol=1e-6)
    for p, p0 in zip(net_D.parameters(), D0.parameters(), strict=True):
        assert torch.equal(p, p0)


def test_pokemon_stand_in_is_an_image_folder_through_download_extract(tmp_path, monkeypatch):
    write_fake_pokemon(tmp_path, num_classes=3, per_class=4, size=40)
    monkeypatch.setenv("D2LAI_DATA", str(tmp_path))
    assert d2l.DATA_HUB["pokemon"][1] == "c065c0e2593b8b161a2d7873e42418bf6a21106c"
    pokemon = torchvision.datasets.ImageFolder(d2l.download_extract("pokemon"))
    assert len(pokemon) == 12 and pokemon.classes == ["0", "1", "2"]
    image, label = pokemon[5]
    assert image.size == (40, 40) and image.mode == "RGB" and label == 1


def test_frozen_lake_spells_out_its_mdp_and_speaks_the_chapters_step_api():
    pytest.importorskip("gymnasium")
    env_info = d2l.make_env("FrozenLake-v1", seed=0)
    assert env_info["num_states"] == 16 and env_info["num_actions"] == 4
    assert env_info["desc"].shape == (4, 4) and env_info["desc"][3, 3] == b"G"
    # deterministic moves: from 0 down (1) to 4; from 14 right (2) into the goal, reward 1
    assert env_info["mdp"][(0, 1)] == [(1.0, 4, 0.0, False)]
    assert env_info["mdp"][(14, 2)] == [(1.0, 15, 1.0, True)]
    env = env_info["env"]
    assert env.reset() == 0
    state, reward, done, info = env.step(2)
    assert (state, reward, done) == (1, 0.0, False)
    with pytest.raises(ValueError, match="'CartPole-v1' is not supported"):
        d2l.make_env("CartPole-v1")


def test_without_gymnasium_the_error_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "gymnasium", None)
    with pytest.raises(ImportError, match=r"the 'rl' extra: pip install 'd2lai\[rl\]'"):
        d2l.make_env("FrozenLake-v1")


def panels():
    return [ax for ax in pyplot.gcf().axes if ax.get_title()]


def test_value_and_q_progress_draw_a_panel_per_shown_iteration():
    desc = np.array([[bytes([c]) for c in row] for row in
                     (b"SFFF", b"FHFH", b"FFFH", b"HFFG")])
    V, pi = np.random.rand(3, 16), np.random.randint(0, 4, (3, 16)).astype(float)
    pyplot.close("all")
    d2l.show_value_function_progress(desc, V, pi)
    shown = panels()
    assert [ax.get_title() for ax in shown] == ["Step = 1", "Step = 2", "Step = 3"]
    assert len(shown[0].patches) == 16 - 5  # an arrow on each cell but the 4 holes and the goal
    pyplot.close("all")
    d2l.show_Q_function_progress(desc, np.random.rand(25, 16), np.zeros((25, 16)))
    assert [ax.get_title() for ax in panels()] == [f"Step = {i + 1}" for i in range(0, 25, 2)]
    pyplot.close("all")
    with pytest.raises(ValueError, match=r"V and pi must both be \(iterations, 16 states\)"):
        d2l.show_value_function_progress(desc, V[:, :9], pi)


def test_rbfkernel_against_a_loop():
    x1, x2 = np.array([0.0, 1.0, 3.0]), torch.tensor([0.5, -2.0])
    K = d2l.rbfkernel(x1, x2, ls=2.0)
    assert K.shape == (3, 2)
    for i, a in enumerate(x1):
        for j, b in enumerate(x2.tolist()):
            assert K[i, j] == pytest.approx(math.exp(-((a - b) ** 2) / (2 * 2.0)))
    with pytest.raises(ValueError, match="two 1-d arrays"):
        d2l.rbfkernel(np.zeros((2, 2)), x1)


def test_plt_takes_the_editions_stem_and_leaves_pyplot_as_it_is():
    assert matplotlib.get_backend().lower() == "agg"
    assert d2l.plt.plot is pyplot.plot and d2l.plt.gcf is pyplot.gcf
    stems = d2l.plt.stem([1, 2, 3], [3, 1, 2], use_line_collection=True)
    assert len(stems.markerline.get_xdata()) == 3
    pyplot.close("all")
    if tuple(int(v) for v in matplotlib.__version__.split(".")[:2]) >= (3, 8):
        with pytest.raises(TypeError, match="use_line_collection"):
            pyplot.stem([1, 2], [1, 2], use_line_collection=True)
    pyplot.close("all")


def test_a_missing_name_names_the_module_the_reader_typed():
    with pytest.raises(AttributeError, match="^module 'd2lai.torch' has no attribute 'Nope'$"):
        d2l.Nope  # noqa: B018
    assert d2l.d2l is d2l
