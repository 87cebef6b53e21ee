"""Flux-named rules: torch counterparts, Optimisers.jl's arithmetic by hand, defaults, bad input."""

import dataclasses
import io
import math
import re

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import d2lai
from d2lai.optim import (
    RULES,
    AdaDelta,
    AdaGrad,
    Adam,
    AdaMax,
    AdamW,
    Descent,
    Momentum,
    Nesterov,
    OptimiserChain,
    RMSProp,
    WeightDecay,
)

OPT = torch.optim
STEPS = 4
NAN, INF = float("nan"), float("inf")


def _data():
    g = torch.Generator().manual_seed(1)
    return torch.randn(6, 3, generator=g), torch.randn(6, 2, generator=g)


def _loss(out, Y):
    return (out - Y).pow(2).mean() + out.sin().sum()  # not quadratic, so later steps differ


def _start():
    torch.manual_seed(0)
    return nn.Linear(3, 2)


def _train(make_opt, steps=STEPS):
    """Parameters after `steps` steps of the optimiser `make_opt(model)` on a fixed loss."""
    model, (X, Y) = _start(), _data()
    opt = make_opt(model)
    for _ in range(steps):
        opt.zero_grad()
        _loss(model(X), Y).backward()
        opt.step()
    return [p.detach() for p in model.parameters()]


def _flux(apply, steps=STEPS, penalty=0.0):
    """The same run, each parameter moved by x -= apply(state, x, dx) as Optimisers.jl does."""
    xs, (X, Y) = [p.detach().clone() for p in _start().parameters()], _data()
    states = [{} for _ in xs]
    for _ in range(steps):
        ws = [x.clone().requires_grad_() for x in xs]
        loss = _loss(F.linear(X, *ws), Y) + penalty / 2 * sum(w.pow(2).sum() for w in ws)
        grads = torch.autograd.grad(loss, ws)
        xs = [x - apply(s, x, dx) for s, x, dx in zip(states, xs, grads, strict=True)]
    return xs


# Optimisers.jl's `apply!` of each rule, line for line: returns what x is decreased by.
def descent(eta):
    return lambda s, x, dx: eta * dx


def momentum(eta, rho):
    def apply(s, x, dx):
        s["v"] = rho * s.get("v", 0) + eta * dx
        return s["v"]
    return apply


def nesterov(eta, rho):
    def apply(s, x, dx):
        vel = s.get("vel", torch.zeros_like(x))
        s["vel"] = rho * vel - eta * dx
        return -rho**2 * vel + (1 + rho) * eta * dx
    return apply


def rmsprop(eta, rho, eps, centred=False):
    def apply(s, x, dx):
        s["quad"] = rho * s.get("quad", 0) + (1 - rho) * dx**2
        s["lin"] = rho * s.get("lin", 0) + (1 - rho) * dx if centred else 0
        return dx * eta / ((s["quad"] - s["lin"] ** 2).sqrt() + eps)
    return apply


def adagrad(eta, eps):
    def apply(s, x, dx):
        s["acc"] = s.get("acc", eps) + dx**2  # the sum starts at eps
        return dx * eta / (s["acc"].sqrt() + eps)
    return apply


def adadelta(rho, eps):
    def apply(s, x, dx):
        s["acc"] = rho * s.get("acc", 0) + (1 - rho) * dx**2
        new = dx * (s.get("dacc", 0) + eps) ** 0.5 / (s["acc"] + eps).sqrt()
        s["dacc"] = rho * s.get("dacc", 0) + (1 - rho) * new**2
        return new
    return apply


def _moments(s, dx, betas):
    s["m"] = betas[0] * s.get("m", 0) + (1 - betas[0]) * dx
    s["v"] = betas[1] * s.get("v", 0) + (1 - betas[1]) * dx**2
    s["bt"] = [b * c for b, c in zip(s.get("bt", (1, 1)), betas, strict=True)]
    return s["m"] / (1 - s["bt"][0]), s["v"] / (1 - s["bt"][1])


def adam(eta, betas, eps):
    def apply(s, x, dx):
        m, v = _moments(s, dx, betas)
        return m / (v.sqrt() + eps) * eta
    return apply


def adamax(eta, betas, eps, eps_inside_max=False):
    """Flux adds eps to the max; torch's Adamax adds it to |dx| inside the max."""
    def apply(s, x, dx):
        s["m"] = betas[0] * s.get("m", 0) + (1 - betas[0]) * dx
        s["b1t"] = s.get("b1t", 1) * betas[0]
        if eps_inside_max:
            s["u"] = torch.maximum(betas[1] * s.get("u", torch.zeros_like(x)), dx.abs() + eps)
            return eta / (1 - s["b1t"]) * s["m"] / s["u"]
        s["u"] = torch.maximum(betas[1] * s.get("u", torch.zeros_like(x)), dx.abs())
        return eta / (1 - s["b1t"]) * s["m"] / (s["u"] + eps)
    return apply


def adamw(eta, betas, lam, eps, couple=True):
    def apply(s, x, dx):
        m, v = _moments(s, dx, betas)
        step = m / (v.sqrt() + eps)  # Adam with learning rate 1
        return eta * (step + lam * x) if couple else eta * step + lam * x
    return apply


def chain(lam, inner):  # OptimiserChain(WeightDecay(lam), rule)
    return lambda s, x, dx: inner(s, x, dx + lam * x)


B = (0.8, 0.9)
B2 = (0.8, 0.999)  # AdaMax: a slow decay, so that b2 u wins the max at times
# rule, its torch optimiser and arguments, Optimisers.jl's arithmetic. The large eps values make a
# wrong eps mapping (torch's own default, a missing initial accumulator) show in the numbers.
CASES = [
    (Descent(0.1), OPT.SGD, dict(lr=0.1), descent(0.1)),
    (Momentum(0.05, 0.8), OPT.SGD, dict(lr=0.05, momentum=0.8), momentum(0.05, 0.8)),
    (Nesterov(0.05, 0.8), OPT.SGD, dict(lr=0.05, momentum=0.8, nesterov=True), nesterov(0.05, 0.8)),
    (Nesterov(0.05, 0.0), OPT.SGD, dict(lr=0.05, momentum=0.0), nesterov(0.05, 0.0)),
    (RMSProp(0.01, 0.8, 0.1), OPT.RMSprop, dict(lr=0.01, alpha=0.8, eps=0.1, centered=False),
     rmsprop(0.01, 0.8, 0.1)),
    (RMSProp(0.01, 0.8, 0.1, centred=True), OPT.RMSprop,
     dict(lr=0.01, alpha=0.8, eps=0.1, centered=True), rmsprop(0.01, 0.8, 0.1, centred=True)),
    (AdaGrad(0.1, 0.5), OPT.Adagrad, dict(lr=0.1, eps=0.5, initial_accumulator_value=0.5),
     adagrad(0.1, 0.5)),
    (AdaDelta(0.8, 0.01), OPT.Adadelta, dict(lr=1.0, rho=0.8, eps=0.01), adadelta(0.8, 0.01)),
    (Adam(0.01, B, 0.1), OPT.Adam, dict(lr=0.01, betas=B, eps=0.1), adam(0.01, B, 0.1)),
    (AdaMax(0.1, B2, 0.1), OPT.Adamax, dict(lr=0.1, betas=B2, eps=0.1),
     adamax(0.1, B2, 0.1, eps_inside_max=True)),
    (AdamW(0.01, B, 0.5, 0.1), OPT.AdamW, dict(lr=0.01, betas=B, eps=0.1, weight_decay=0.5),
     adamw(0.01, B, 0.5, 0.1)),
    (AdamW(0.01, B, 0.005, 0.1, couple=False), OPT.AdamW,
     dict(lr=0.01, betas=B, eps=0.1, weight_decay=0.5), adamw(0.01, B, 0.005, 0.1, couple=False)),
    # Flux's defaults, against torch given those values (torch's own defaults differ)
    (Nesterov(), OPT.SGD, dict(lr=0.001, momentum=0.9, nesterov=True), nesterov(0.001, 0.9)),
    (RMSProp(), OPT.RMSprop, dict(lr=0.001, alpha=0.9, eps=1e-8), rmsprop(0.001, 0.9, 1e-8)),
    (AdaGrad(), OPT.Adagrad, dict(lr=0.1, eps=1e-8, initial_accumulator_value=1e-8),
     adagrad(0.1, 1e-8)),
    (AdaDelta(), OPT.Adadelta, dict(lr=1.0, rho=0.9, eps=1e-8), adadelta(0.9, 1e-8)),
    (AdaMax(), OPT.Adamax, dict(lr=0.001, betas=(0.9, 0.999), eps=1e-8),
     adamax(0.001, (0.9, 0.999), 1e-8)),  # eps's place is below 1e-6 here
    (AdamW(), OPT.AdamW, dict(lr=0.001, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0),
     adamw(0.001, (0.9, 0.999), 0.0, 1e-8)),
    # L2 the Flux way: the rule's torch optimiser with weight_decay
    (OptimiserChain(WeightDecay(0.3), Descent(0.1)), OPT.SGD, dict(lr=0.1, weight_decay=0.3),
     chain(0.3, descent(0.1))),
    (OptimiserChain(WeightDecay(0.3), Momentum(0.05, 0.8)), OPT.SGD,
     dict(lr=0.05, momentum=0.8, weight_decay=0.3), chain(0.3, momentum(0.05, 0.8))),
    (OptimiserChain(WeightDecay(0.3), Nesterov(0.05, 0.8)), OPT.SGD,
     dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.3), chain(0.3, nesterov(0.05, 0.8))),
    (OptimiserChain(WeightDecay(0.3), RMSProp(0.01, 0.8, 0.1)), OPT.RMSprop,
     dict(lr=0.01, alpha=0.8, eps=0.1, weight_decay=0.3), chain(0.3, rmsprop(0.01, 0.8, 0.1))),
    (OptimiserChain(WeightDecay(0.3), AdaGrad(0.1, 0.5)), OPT.Adagrad,
     dict(lr=0.1, eps=0.5, initial_accumulator_value=0.5, weight_decay=0.3),
     chain(0.3, adagrad(0.1, 0.5))),
    (OptimiserChain(WeightDecay(0.3), AdaDelta(0.8, 0.01)), OPT.Adadelta,
     dict(lr=1.0, rho=0.8, eps=0.01, weight_decay=0.3), chain(0.3, adadelta(0.8, 0.01))),
    (OptimiserChain(WeightDecay(0.3), Adam(0.01, B, 0.1)), OPT.Adam,
     dict(lr=0.01, betas=B, eps=0.1, weight_decay=0.3), chain(0.3, adam(0.01, B, 0.1))),
    (OptimiserChain(WeightDecay(0.3), AdaMax(0.1, B2, 0.1)), OPT.Adamax,
     dict(lr=0.1, betas=B2, eps=0.1, weight_decay=0.3),
     chain(0.3, adamax(0.1, B2, 0.1, eps_inside_max=True))),
]
IDS = [repr(c[0]) for c in CASES]


def _close(a, b, atol=1e-6):
    return all(torch.allclose(x, y, rtol=0, atol=atol) for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize("rule, cls, kwargs, flux", CASES, ids=IDS)
def test_rule_is_its_torch_optimiser(rule, cls, kwargs, flux):
    opt = d2lai.setup(rule, nn.Linear(3, 2))
    assert type(opt) is cls
    for k, v in kwargs.items():  # one by one: approx takes no tuples inside a dict
        assert opt.param_groups[0][k] == pytest.approx(v, rel=1e-12), k
    ours = _train(lambda m: d2lai.setup(rule, m))
    theirs = _train(lambda m: cls(m.parameters(), **kwargs))
    assert _close(ours, theirs)
    assert not _close(ours, [p.detach() for p in _start().parameters()])  # it moved


@pytest.mark.parametrize("rule, cls, kwargs, flux", CASES, ids=IDS)
def test_rule_does_optimisers_jl_arithmetic(rule, cls, kwargs, flux):
    assert _close(_train(lambda m: d2lai.setup(rule, m)), _flux(flux))


def test_adamax_puts_eps_where_torch_does_not_where_flux_does():
    ours = _train(lambda m: d2lai.setup(AdaMax(0.1, B2, 0.1), m))
    assert _close(ours, _flux(adamax(0.1, B2, 0.1, eps_inside_max=True)))
    assert not _close(ours, _flux(adamax(0.1, B2, 0.1)), atol=1e-5)  # the documented difference


def test_weight_decay_chain_is_descent_on_the_l2_penalised_loss():
    rule = OptimiserChain(WeightDecay(0.01), Descent(0.1))
    ours = _train(lambda m: d2lai.setup(rule, m))
    assert _close(ours, _train(lambda m: OPT.SGD(m.parameters(), lr=0.1, weight_decay=0.01)))
    assert _close(ours, _flux(descent(0.1), penalty=0.01))  # loss + λ/2 ||w||², by hand
    assert not _close(ours, _train(lambda m: d2lai.setup(Descent(0.1), m)), atol=1e-5)


@pytest.mark.parametrize("rule, fields", [
    (Descent(), dict(lr=0.1)),
    (Momentum(), dict(lr=0.01, rho=0.9)),
    (Nesterov(), dict(lr=0.001, rho=0.9)),
    (RMSProp(), dict(lr=0.001, rho=0.9, eps=1e-8, centred=False)),
    (AdaGrad(), dict(lr=0.1, eps=1e-8)),
    (AdaDelta(), dict(rho=0.9, eps=1e-8)),
    (Adam(), dict(lr=0.001, betas=(0.9, 0.999), eps=1e-8)),
    (AdaMax(), dict(lr=0.001, betas=(0.9, 0.999), eps=1e-8)),
    (AdamW(), dict(lr=0.001, betas=(0.9, 0.999), weight_decay=0.0, eps=1e-8, couple=True)),
    (WeightDecay(), dict(weight_decay=5e-4)),
], ids=lambda v: type(v).__name__ if dataclasses.is_dataclass(v) else "")
def test_defaults_and_argument_order_are_flux(rule, fields):
    assert dataclasses.asdict(rule) == fields
    positional = [v for k, v in fields.items() if k not in ("centred", "couple")]
    assert type(rule)(*positional) == rule  # Flux's order: η, ρ / β, (λ,) ϵ


def test_rules_are_plain_dataclasses_a_checkpoint_can_hold():
    import numpy as np
    rules = [Descent(1), Adam(np.float32(0.5), [0.5, 0.75]), RMSProp(centred=True),
             OptimiserChain(WeightDecay(0.01), Nesterov(0.1, 0.5))]
    assert Descent(1).lr == 1.0 and type(Descent(1).lr) is float
    assert Adam(np.float32(0.5), [0.5, 0.75]).betas == (0.5, 0.75)
    assert dataclasses.asdict(rules[-1]) == {"opts": ({"weight_decay": 0.01},
                                                      {"lr": 0.1, "rho": 0.5})}
    for rule in rules:
        buf = io.BytesIO()
        torch.save({"type": type(rule).__name__, "rule": dataclasses.asdict(rule)}, buf)
        buf.seek(0)
        assert torch.load(buf, weights_only=True)["rule"] == dataclasses.asdict(rule)
    assert all(dataclasses.is_dataclass(r) for r in RULES)


F32, NONNEG = "[1.18e-38, 3.4e+38]", "[0, 3.4e+38]"


@pytest.mark.parametrize("make, message", [
    (lambda: Adam(eps=INF), f"Adam: eps must be a number in {F32}, got inf"),
    (lambda: Adam(eps=NAN), f"Adam: eps must be a number in {F32}, got nan"),
    (lambda: Adam(eps=0), f"Adam: eps must be a number in {F32}, got 0"),
    (lambda: Adam(eps=1e-50), f"Adam: eps must be a number in {F32}, got 1e-50"),
    (lambda: Adam(betas=(NAN, 0.999)), "Adam: betas must be a number in [0, 1), got nan"),
    (lambda: Adam(betas=(0.9,)), "Adam: betas must be two numbers in [0, 1), got (0.9,)"),
    (lambda: Adam(betas=0.9), "Adam: betas must be two numbers in [0, 1), got 0.9"),
    (lambda: AdaMax(betas=(0.9, 1.0)), "AdaMax: betas must be a number in [0, 1), got 1.0"),
    (lambda: AdamW(betas=(-0.1, 0.9)), "AdamW: betas must be a number in [0, 1), got -0.1"),
    (lambda: Momentum(rho=NAN), "Momentum: rho must be a number in [0, 1), got nan"),
    (lambda: Nesterov(0.1, 1), "Nesterov: rho must be a number in [0, 1), got 1"),
    (lambda: RMSProp(rho=-0.1), "RMSProp: rho must be a number in [0, 1), got -0.1"),
    (lambda: AdaDelta(1.0), "AdaDelta: rho must be a number in [0, 1), got 1.0"),
    (lambda: AdaDelta(eps=0.0), f"AdaDelta: eps must be a number in {F32}, got 0.0"),
    (lambda: AdaGrad(eps=NAN), f"AdaGrad: eps must be a number in {F32}, got nan"),
    (lambda: Descent(NAN), "Descent: lr must be a number in [0, 3.4e+38], got nan"),
    (lambda: Descent(INF), "Descent: lr must be a number in [0, 3.4e+38], got inf"),
    (lambda: Descent(1e39), "Descent: lr must be a number in [0, 3.4e+38], got 1e+39"),
    (lambda: Nesterov(-0.1), "Nesterov: lr must be a number in [0, 3.4e+38], got -0.1"),
    (lambda: AdaGrad(True), "AdaGrad: lr must be a number in [0, 3.4e+38], got True"),
    (lambda: RMSProp("0.1"), "RMSProp: lr must be a number in [0, 3.4e+38], got '0.1'"),
    (lambda: AdaMax(None), "AdaMax: lr must be a number in [0, 3.4e+38], got None"),
    (lambda: RMSProp(centred="yes"), "RMSProp: centred must be True or False, got 'yes'"),
    (lambda: AdamW(couple=1), "AdamW: couple must be True or False, got 1"),
    (lambda: AdamW(weight_decay=-1), f"AdamW: weight_decay must be a number in {NONNEG}, got -1"),
    (lambda: AdamW(weight_decay=NAN), f"AdamW: weight_decay must be a number in {NONNEG}, got nan"),
    (lambda: AdamW(0, weight_decay=0.1, couple=False),
     "AdamW: couple=False with weight_decay 0.1 needs lr > 0"),
    (lambda: WeightDecay(-1), f"WeightDecay: weight_decay must be a number in {NONNEG}, got -1"),
    (lambda: WeightDecay(INF), f"WeightDecay: weight_decay must be a number in {NONNEG}, got inf"),
])
def test_bad_arguments_are_refused_with_what_is_allowed(make, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        make()


CHAIN_ONLY = re.escape("OptimiserChain supports OptimiserChain(rule) and "
                       "OptimiserChain(WeightDecay(λ), rule), rule one of Descent, Momentum, "
                       "Nesterov, RMSProp, AdaGrad, AdaDelta, Adam, AdaMax (or AdamW alone: its "
                       "decay is its own), got OptimiserChain(")


@pytest.mark.parametrize("make, got", [
    (lambda: OptimiserChain(Descent(0.1), Adam()), "Descent(lr=0.1), Adam("),
    (lambda: OptimiserChain(WeightDecay(0.1)), "WeightDecay(weight_decay=0.1))"),
    (lambda: OptimiserChain(Descent(0.1), WeightDecay(0.1)), "Descent(lr=0.1), WeightDecay("),
    (lambda: OptimiserChain(WeightDecay(0.1), AdamW()), "WeightDecay(weight_decay=0.1), AdamW("),
    (lambda: OptimiserChain(WeightDecay(0.1), "sgd"), "WeightDecay(weight_decay=0.1), 'sgd')"),
    (lambda: OptimiserChain(WeightDecay(0.1), Descent(0.1), Descent(0.1)),
     "WeightDecay(weight_decay=0.1), Descent(lr=0.1), Descent(lr=0.1))"),
    (lambda: OptimiserChain(), ")"),
])
def test_chains_other_than_a_rule_or_weight_decay_then_a_rule_are_refused(make, got):
    with pytest.raises(ValueError, match=CHAIN_ONLY + re.escape(got)):
        make()


def test_setup_lists_the_accepted_rules():
    with pytest.raises(TypeError, match=r"opt must be Descent, .*Nesterov, .*AdamW, "
                                        r"OptimiserChain\(rule\), "
                                        r"OptimiserChain\(WeightDecay\(λ\), rule\) or a "
                                        r"torch\.optim\.Optimizer, got WeightDecay"):
        d2lai.setup(WeightDecay(0.1), nn.Linear(2, 1))


def test_coupled_and_decoupled_adamw_decay_differ_by_lr():
    start = [p.detach() for p in _start().parameters()]
    one_step = _train(lambda m: d2lai.setup(AdamW(0.0 + 1e-3, weight_decay=0.5, couple=False), m),
                      steps=1)
    adam_only = _train(lambda m: d2lai.setup(AdamW(1e-3), m), steps=1)
    for x0, x1, xa in zip(start, one_step, adam_only, strict=True):  # x -= lr adam + λ x
        assert torch.allclose(x1, xa - 0.5 * x0, atol=1e-6)
    assert math.isclose(d2lai.setup(AdamW(0.01, weight_decay=0.5), nn.Linear(2, 1))
                        .param_groups[0]["weight_decay"], 0.5)
