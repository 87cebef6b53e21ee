"""Flux-named optimiser rules, bound to a model's parameters when fitting starts (`Flux.setup`).

Each rule has Flux's (Optimisers.jl's) name, argument order and defaults, and maps to the torch
optimiser that does the same arithmetic; `OptimiserChain(WeightDecay(λ), rule)` adds L2
regularisation the Flux way, `OptimiserChain(rule)` (or Flux's older name `Optimiser(rule)`)
is the rule alone.

Weight decay by parameter group. A rule applies to every parameter alike. To decay some
parameters and not others (the usual choice: weights decayed, biases and batch-norm scales and
shifts not), give the Trainer a torch optimiser with parameter groups; `fit` uses it as it is,
and a learning-rate scheduler (`d2lai.LRScheduler`) steps every group:

    decay = [p for n, p in model.named_parameters() if p.ndim > 1]      # weight matrices, kernels
    no_decay = [p for n, p in model.named_parameters() if p.ndim <= 1]  # biases, gamma, beta
    opt = torch.optim.SGD([{"params": decay, "weight_decay": 5e-4},
                           {"params": no_decay, "weight_decay": 0.0}], lr=0.1)
    d2lai.fit(Trainer(model, data, opt))

(A LazyLinear has no shape before its first batch: build such a model's groups after one
forward pass, or from the layer types.)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields

import torch
from torch import nn

from .checks import flag, number

__all__ = ["Descent", "Momentum", "Nesterov", "RMSProp", "AdaGrad", "AdaDelta", "Adam", "AdaMax",
           "AdamW", "WeightDecay", "OptimiserChain", "Optimiser", "setup", "describe_opt",
           "opt_text"]

LR_MAX = torch.finfo(torch.float32).max  # torch's step takes lr as a float32 factor
EPS_MIN = torch.finfo(torch.float32).tiny  # a smaller eps is 0 in float32: 0/0 is NaN

# An argument's allowed values, by its name: (low, high, low allowed, high allowed).
_DOMAINS = {
    "lr": (0.0, LR_MAX, True, True),
    "rho": (0.0, 1.0, True, False),
    "betas": (0.0, 1.0, True, False),
    "eps": (EPS_MIN, LR_MAX, True, True),
    "weight_decay": (0.0, LR_MAX, True, True),
}


def _in_domain(rule: str, name: str, value) -> float:
    """`value` as a float if it lies in `name`'s domain, else an error saying where it must."""
    low, high, with_low, with_high = _DOMAINS[name]
    return number(f"{rule}: {name}", value, low, high, open_low=not with_low,
                  open_high=not with_high, digits=".3g")


class _Rule:
    """Checks a rule's arguments by their names when it is made, and stores them as plain floats."""

    def __post_init__(self):
        rule = type(self).__name__
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "betas":
                if not (isinstance(value, (tuple, list)) and len(value) == 2):
                    raise ValueError(f"{rule}: betas must be two numbers in [0, 1), got {value!r}")
                value = tuple(_in_domain(rule, "betas", b) for b in value)
            elif isinstance(f.default, bool):
                value = flag(f"{rule}: {f.name}", value)
            else:
                value = _in_domain(rule, f.name, value)
            setattr(self, f.name, value)


@dataclass
class Descent(_Rule):
    """Plain gradient descent, x -= lr * dx: torch's SGD(lr)."""

    lr: float = 0.1

    def setup(self, params, weight_decay: float = 0.0) -> torch.optim.Optimizer:
        return torch.optim.SGD(params, lr=self.lr, weight_decay=weight_decay)


@dataclass
class Momentum(_Rule):
    """Descent with momentum, v = rho v + lr dx, x -= v: torch's SGD(lr, momentum=rho)."""

    lr: float = 0.01
    rho: float = 0.9

    def setup(self, params, weight_decay: float = 0.0) -> torch.optim.Optimizer:
        return torch.optim.SGD(params, lr=self.lr, momentum=self.rho, weight_decay=weight_decay)


@dataclass
class Nesterov(_Rule):
    """Descent with Nesterov momentum rho: torch's SGD(lr, momentum=rho, nesterov=True)."""

    lr: float = 0.001
    rho: float = 0.9

    def setup(self, params, weight_decay: float = 0.0) -> torch.optim.Optimizer:
        return torch.optim.SGD(params, lr=self.lr, momentum=self.rho, nesterov=self.rho > 0,
                               weight_decay=weight_decay)  # rho 0 is plain descent in both


@dataclass
class RMSProp(_Rule):
    """RMSProp, dx / (sqrt(avg dx²) + eps): torch's RMSprop(lr, alpha=rho, eps, centered)."""

    lr: float = 0.001
    rho: float = 0.9
    eps: float = 1e-8
    centred: bool = field(default=False, kw_only=True)

    def setup(self, params, weight_decay: float = 0.0) -> torch.optim.Optimizer:
        return torch.optim.RMSprop(params, lr=self.lr, alpha=self.rho, eps=self.eps,
                                   centered=self.centred, weight_decay=weight_decay)


@dataclass
class AdaGrad(_Rule):
    """AdaGrad, its sum of dx² starting at eps: torch's Adagrad(initial_accumulator_value=eps)."""

    lr: float = 0.1
    eps: float = 1e-8

    def setup(self, params, weight_decay: float = 0.0) -> torch.optim.Optimizer:
        return torch.optim.Adagrad(params, lr=self.lr, eps=self.eps,
                                   initial_accumulator_value=self.eps, weight_decay=weight_decay)


@dataclass
class AdaDelta(_Rule):
    """AdaDelta, which has no learning rate: torch's Adadelta(lr=1, rho, eps)."""

    rho: float = 0.9
    eps: float = 1e-8

    def setup(self, params, weight_decay: float = 0.0) -> torch.optim.Optimizer:
        return torch.optim.Adadelta(params, lr=1.0, rho=self.rho, eps=self.eps,
                                    weight_decay=weight_decay)


@dataclass
class Adam(_Rule):
    """Adam with Flux's defaults (lr 0.001, betas (0.9, 0.999), eps 1e-8): torch's Adam."""

    lr: float = 0.001
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8

    def setup(self, params, weight_decay: float = 0.0) -> torch.optim.Optimizer:
        return torch.optim.Adam(params, lr=self.lr, betas=self.betas, eps=self.eps,
                                weight_decay=weight_decay)


@dataclass
class AdaMax(_Rule):
    """AdaMax, Adam with an infinity norm: torch's Adamax, but for where eps goes (below).

    torch: u = max(b2 u, |dx| + eps), step m / u; Flux: u = max(b2 u, |dx|), step m / (u + eps).
    """

    lr: float = 0.001
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8

    def setup(self, params, weight_decay: float = 0.0) -> torch.optim.Optimizer:
        return torch.optim.Adamax(params, lr=self.lr, betas=self.betas, eps=self.eps,
                                  weight_decay=weight_decay)


@dataclass
class AdamW(_Rule):
    """Adam with decay, x -= lr (adam + weight_decay x): torch's AdamW (Optimisers.jl 0.4).

    couple=False, the older Flux AdamW: x -= lr adam + weight_decay x (torch's weight_decay / lr).
    """

    lr: float = 0.001
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0  # Flux's λ
    eps: float = 1e-8
    couple: bool = field(default=True, kw_only=True)

    def __post_init__(self):
        super().__post_init__()
        if not self.couple and self.weight_decay > 0 and self.lr == 0:
            raise ValueError(f"AdamW: couple=False with weight_decay {self.weight_decay} needs "
                             f"lr > 0 (torch decays by lr * weight_decay), got lr {self.lr}")

    def setup(self, params) -> torch.optim.Optimizer:
        decay = self.weight_decay
        if not self.couple and decay > 0:
            decay /= self.lr  # torch decays by lr * weight_decay: this makes it weight_decay
        return torch.optim.AdamW(params, lr=self.lr, betas=self.betas, eps=self.eps,
                                 weight_decay=decay)


@dataclass
class WeightDecay(_Rule):
    """L2 penalty λ/2 ||x||², dx += λ x, first in an OptimiserChain: torch's weight_decay=λ."""

    weight_decay: float = 5e-4


BASE_RULES = (Descent, Momentum, Nesterov, RMSProp, AdaGrad, AdaDelta, Adam, AdaMax)


@dataclass(init=False)
class OptimiserChain:
    """OptimiserChain(WeightDecay(λ), rule): rule on dx + λ x, i.e. its torch weight_decay=λ.
    OptimiserChain(rule): the rule alone (a chain of one, as the Julia text writes
    `Flux.Optimiser(Descent(1.))`)."""

    opts: tuple

    def __init__(self, *opts):
        self.opts = opts
        alone = len(opts) == 1 and isinstance(opts[0], (*BASE_RULES, AdamW))
        decayed = (len(opts) == 2 and isinstance(opts[0], WeightDecay)
                   and isinstance(opts[1], BASE_RULES))
        if not (alone or decayed):
            names = ", ".join(r.__name__ for r in BASE_RULES)
            got = ", ".join(map(repr, opts))
            raise ValueError(f"OptimiserChain supports OptimiserChain(rule) and "
                             f"OptimiserChain(WeightDecay(λ), rule), rule one of {names} "
                             f"(or AdamW alone: its decay is its own), got "
                             f"OptimiserChain({got})")

    def setup(self, params) -> torch.optim.Optimizer:
        if len(self.opts) == 1:
            return self.opts[0].setup(params)
        decay, rule = self.opts
        return rule.setup(params, weight_decay=decay.weight_decay)


Optimiser = OptimiserChain  # Flux's older name of a chain: `Flux.Optimiser(Descent(1.))`


RULES = (*BASE_RULES, AdamW, OptimiserChain)
ACCEPTED = (", ".join(r.__name__ for r in (*BASE_RULES, AdamW))
            + ", OptimiserChain(rule), OptimiserChain(WeightDecay(λ), rule) or a "
              "torch.optim.Optimizer")


def setup(rule, model: nn.Module) -> torch.optim.Optimizer:
    """A torch optimiser over `model`'s trainable parameters; a ready optimiser passes through."""
    if isinstance(rule, torch.optim.Optimizer):
        return rule
    if not isinstance(rule, RULES):
        raise TypeError(f"opt must be {ACCEPTED}, got {type(rule).__name__}")
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError(f"{type(model).__name__} has no trainable parameters to optimise")
    return rule.setup(params)


# --- describing a rule, to compare runs and checkpoints ---------------------------------------

_HYPER = (bool, int, float, str, tuple, type(None))


def describe_opt(opt) -> dict:
    """The rule and its hyperparameters, e.g. {'type': 'Descent', 'lr': 0.1}, to compare runs."""
    if dataclasses.is_dataclass(opt) and not isinstance(opt, type):
        return {"type": type(opt).__name__, **{f.name: _plain(getattr(opt, f.name))
                                               for f in dataclasses.fields(opt)}}
    if isinstance(opt, torch.optim.Optimizer):
        skip = {"params", "foreach", "fused", "capturable", "differentiable", "maximize"}
        group = opt.param_groups[0] if opt.param_groups else {}
        return {"type": type(opt).__name__,
                **{k: _plain(v) for k, v in group.items() if k not in skip
                   and isinstance(v, _HYPER)}}
    attrs = {k: v for k, v in vars(opt).items() if not k.startswith("_")
             and isinstance(v, (bool, int, float))}
    return {"type": type(opt).__name__, **attrs}


def opt_text(desc: dict) -> str:
    """`Descent(lr=0.1)` from a description."""
    def show(v):
        if isinstance(v, dict) and "type" in v:
            return opt_text(v)
        return f"[{', '.join(map(show, v))}]" if isinstance(v, list) else repr(v)

    return f"{desc['type']}({', '.join(f'{k}={show(v)}' for k, v in desc.items() if k != 'type')})"


def _plain(value):
    """Numbers, strings and lists as they are; a nested rule (a chain's) described with its type."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return describe_opt(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
