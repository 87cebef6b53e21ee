"""AbstractClassifier's loss and accuracy; the Flux-named optimiser rules against hand steps."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import d2lai


class Softmaxed(d2lai.AbstractClassifier):
    def __init__(self, d_in=4, k=3):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(d_in, k), nn.Softmax(dim=1))


def test_classifier_loss_is_cross_entropy_of_probabilities():
    model = Softmaxed()
    X, y = torch.randn(16, 4), torch.randint(0, 3, (16,))
    logits = model.net[0](X)
    assert torch.allclose(model.loss(model(X), y), F.cross_entropy(logits, y), atol=1e-5)
    per_sample = model.loss(model(X), y, averaged=False)
    assert per_sample.shape == (16,)
    assert torch.allclose(per_sample, F.cross_entropy(logits, y, reduction="none"), atol=1e-5)


def test_loss_stays_finite_for_a_probability_of_zero():
    model = Softmaxed()
    p = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], requires_grad=True)
    loss = model.loss(p, torch.tensor([1, 1]))
    loss.backward()
    assert math.isfinite(loss.item()) and loss.item() > 5  # -log(eps)/2: large but finite
    assert torch.isfinite(p.grad).all()


def test_accuracy():
    y_hat = torch.tensor([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
    y = torch.tensor([1, 0, 0, 0])
    assert float(d2lai.accuracy(y_hat, y)) == 0.75
    assert d2lai.accuracy(y_hat, y, averaged=False).tolist() == [1, 1, 0, 1]
    assert float(Softmaxed().accuracy(y_hat, y)) == 0.75


def test_validation_step_returns_loss_and_accuracy():
    model = Softmaxed()
    X, y = torch.randn(8, 4), torch.randint(0, 3, (8,))
    loss, acc = model.validation_step((X, y))
    assert torch.allclose(loss, model.loss(model(X), y))
    assert torch.allclose(acc, d2lai.accuracy(model(X), y))
    assert torch.allclose(model.training_step((X, y)), loss)


def test_abstract_model_without_loss_says_what_to_define():
    class NoLoss(d2lai.AbstractModel):
        def __init__(self):
            super().__init__()
            self.net = nn.Linear(2, 1)

    with pytest.raises(NotImplementedError, match="loss"):
        NoLoss().training_step((torch.randn(3, 2), torch.randn(3, 1)))


def _one_step(rule, steps=1):
    torch.manual_seed(0)
    model = nn.Linear(3, 2)
    X = torch.randn(5, 3)
    start = [p.detach().clone() for p in model.parameters()]
    opt = d2lai.setup(rule, model)
    grads = []
    for _ in range(steps):
        opt.zero_grad()
        model(X).pow(2).sum().backward()
        grads.append([p.grad.clone() for p in model.parameters()])
        opt.step()
    return start, grads, [p.detach() for p in model.parameters()]


def test_descent_step_by_hand():
    start, (g,), end = _one_step(d2lai.Descent(0.1))
    for x0, gi, x1 in zip(start, g, end, strict=True):
        assert torch.allclose(x1, x0 - 0.1 * gi)


def test_momentum_steps_by_hand_flux_formula():
    start, grads, end = _one_step(d2lai.Momentum(0.01, rho=0.9), steps=2)
    for k, x0 in enumerate(start):
        v = 0.01 * grads[0][k]                    # Flux: v = rho v + lr g;  x -= v
        x = x0 - v
        v = 0.9 * v + 0.01 * grads[1][k]
        assert torch.allclose(end[k], x - v, atol=1e-7)


def test_adam_first_step_by_hand():
    start, (g,), end = _one_step(d2lai.Adam(0.001))
    for x0, gi, x1 in zip(start, g, end, strict=True):
        m_hat, v_hat = gi, gi**2  # bias-corrected first moments after one step
        assert torch.allclose(x1, x0 - 0.001 * m_hat / (v_hat.sqrt() + 1e-8), atol=1e-7)


def test_rules_take_only_trainable_parameters():
    model = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 1))
    model[0].weight.requires_grad_(False)
    opt = d2lai.setup(d2lai.Descent(0.1), model)
    assert sum(len(g["params"]) for g in opt.param_groups) == 3


def test_ready_torch_optimizer_passes_through():
    model = nn.Linear(2, 1)
    sgd = torch.optim.SGD(model.parameters(), lr=0.5)
    assert d2lai.setup(sgd, model) is sgd


@pytest.mark.parametrize("make, match", [
    (lambda: d2lai.Descent(-0.1), "lr"), (lambda: d2lai.Momentum(-1), "lr"),
    (lambda: d2lai.Adam(lr=float("nan")), "lr"), (lambda: d2lai.Descent(float("inf")), "lr"),
    (lambda: d2lai.Descent(1e39), "lr"),
    (lambda: d2lai.Momentum(0.1, rho=1.5), "rho"),
    (lambda: d2lai.Adam(betas=(0.9, 1.0)), "betas"), (lambda: d2lai.Descent("0.1"), "lr"),
])
def test_bad_rule_arguments(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_setup_rejects_unknown_rules():
    with pytest.raises(TypeError, match="opt must be"):
        d2lai.setup("sgd", nn.Linear(2, 1))
