"""Models: what a model must say about its loss, its training step and its validation step."""

from __future__ import annotations

from types import SimpleNamespace

import torch
from torch import nn

from ..metrics import Loss, Metric, MetricList

__all__ = ["AbstractModel", "AbstractConciseModel", "Model", "Weights", "registered", "forward",
           "loss", "training_step", "validation_step"]


class AbstractModel(nn.Module):
    """A model that knows its loss. Subclasses set `self.net` (or override `forward`) and `loss`.

    `METRICS` declares what a fit of this family measures (here: the loss); a family adds its
    own (a classifier's accuracy, a language model's perplexity).
    """

    METRICS: tuple[Metric, ...] = (Loss(),)
    # The fields Flux's `@layer Model trainable = (...)` names: tensors assigned to them become
    # nn.Parameters (namespaces of tensors, lists of cells: registered modules).
    trainable: tuple[str, ...] = ()
    # Floating tensors kept as plain fields are weights, as a Flux struct's arrays are: a fit
    # refuses those its optimiser would not train. (The PyTorch edition keeps constants so.)
    fields_are_weights = True

    def __setattr__(self, name: str, value) -> None:
        if name in type(self).trainable or (type(self).fields_are_weights
                                            and _holds_cells(value)):
            value = registered(value)
        super().__setattr__(name, value)

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        return self.net(X)

    def loss(self, y_hat: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} must define loss(y_hat, y)")

    def training_step(self, batch) -> torch.Tensor:
        """Loss of one batch `(X..., y)`; the trainer differentiates it."""
        *X, y = batch
        return self.loss(self(*X), y)

    def validation_step(self, batch) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(loss, None) of one validation batch; a classifier returns (loss, accuracy)."""
        *X, y = batch
        return self.loss(self(*X), y), None

    def configure_optimizers(self, rule) -> torch.optim.Optimizer:
        """Bind an optimiser rule (`Descent(0.1)`, ...) to this model's trainable parameters."""
        from ..optim import setup

        return setup(rule, self)

    def check_batch(self, y_hat, y, data=None) -> str | None:
        """Raise a ValueError when a batch's targets and the model's output cannot go together
        (called on the first batch of a fit); return a note for the log, or None.

        Here, for a regression: one output per target, of the targets' shape (an element-wise
        loss between other shapes would broadcast, silently). Model families override it."""
        if not (isinstance(y_hat, torch.Tensor) and isinstance(y, torch.Tensor)):
            return None
        if y_hat.ndim == 0 or y.ndim == 0 or y_hat.shape[0] != y.shape[0]:
            raise ValueError(f"the model returned output of shape {tuple(y_hat.shape)} for a "
                             f"batch of targets of shape {tuple(y.shape)}: expected one output "
                             f"row per target")
        if y_hat.shape != y.shape:
            try:
                both = tuple(torch.broadcast_shapes(y_hat.shape, y.shape))
            except RuntimeError:
                both = None
            how = f"broadcast them to {both}" if both else "fail"
            raise ValueError(f"the model's output has shape {tuple(y_hat.shape)} but the "
                             f"targets have shape {tuple(y.shape)}: an element-wise loss "
                             f"would {how}, silently. Make them the same shape (e.g. "
                             f"reshape the output, or the targets, to {tuple(y.shape)}).")
        return None

    def epoch_metrics(self, logs: dict[str, float]) -> dict[str, float]:
        """Metrics this family derives from an epoch's others (a language model's perplexity:
        its `METRICS`'); a family may add its own here."""
        return MetricList(self.METRICS).derive(logs)

    def metric_names(self) -> list[str] | None:
        """The names of the metrics a fit of this model logs each epoch, known before it
        starts: its `METRICS`', then its own `epoch_metrics` (found from stand-in values); None
        when these cannot be found so."""
        names = MetricList(self.METRICS).keys()
        try:
            own = self.epoch_metrics({name: 1.0 for name in names})
        except Exception:  # metrics that need real values: known after the first epoch only
            return None
        return names + [k for k in own if k not in names]


class AbstractConciseModel(AbstractModel):
    """A model that is a ready-made net (`nn.Sequential`, a torch layer): `Model(net)`, whose
    forward pass is the net's. Subclasses define `loss`."""

    def __init__(self, net: nn.Module):
        super().__init__()
        if not isinstance(net, nn.Module):
            raise TypeError(f"{type(self).__name__} takes its net as a torch.nn.Module (e.g. "
                            f"nn.Linear(2, 1)), got {type(net).__name__}")
        self.net = net


class Model(AbstractConciseModel):
    """The Julia package's `Model(net, args)`: a net and its settings (`args`, keyword
    arguments or a dict, kept as a namespace: `model.args.lr`). Subclass it to give a loss."""

    def __init__(self, net: nn.Module, args=None, **kwargs):
        super().__init__(net)
        if isinstance(args, SimpleNamespace):
            args = vars(args)
        elif hasattr(args, "_asdict"):  # a namedtuple, Julia's NamedTuple
            args = args._asdict()
        elif not isinstance(args, (dict, type(None))):
            raise TypeError(f"Model's args must be a dict, a namespace or keyword arguments, "
                            f"got {type(args).__name__}")
        self.args = SimpleNamespace(**(args or {}), **kwargs)


class Weights(nn.Module):
    """A namespace of weights registered with its model: the Julia text's NamedTuples of
    arrays (`construct_nt_args(W_xi=..., b_i=...)`) as a module whose tensors are parameters,
    read as before (`weights.input_gate.W_xi`)."""

    def __init__(self, items: dict):
        super().__init__()
        for key, value in items.items():
            setattr(self, key, registered(value))

    def __getitem__(self, key: str):
        return getattr(self, key)

    def __repr__(self) -> str:
        names = [*self._parameters, *self._modules,
                 *(k for k in vars(self) if not k.startswith("_") and k != "training")]
        return f"Weights({', '.join(names)})"


def registered(value):
    """`value` as torch sees weights: a floating tensor as an nn.Parameter, a namespace or
    dict as `Weights`, a list of modules as an nn.ModuleList, of tensors as an
    nn.ParameterList; anything else as it is."""
    if isinstance(value, nn.Parameter) or isinstance(value, nn.Module):
        return value
    if isinstance(value, torch.Tensor):
        return nn.Parameter(value) if value.is_floating_point() else value
    if isinstance(value, SimpleNamespace):
        return Weights(vars(value))
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return Weights(value)
    if isinstance(value, (list, tuple)) and value:
        if all(isinstance(v, nn.Module) for v in value):
            return nn.ModuleList(value)
        if all(isinstance(v, torch.Tensor) and v.is_floating_point() for v in value):
            return nn.ParameterList(value)
    return value


def _holds_cells(value) -> bool:
    """A namespace holding tensors or modules, or a list of modules: a field the Julia text
    fills with weights or cells, which torch would not see."""
    if isinstance(value, SimpleNamespace):
        return any(isinstance(v, (torch.Tensor, nn.Module)) or _holds_cells(v)
                   for v in vars(value).values())
    return isinstance(value, (list, tuple)) and bool(value) \
        and all(isinstance(v, nn.Module) for v in value)


# The Julia text calls these as functions of the model: `d2lai.forward(model, X)`, ...
def forward(model: nn.Module, *X: torch.Tensor) -> torch.Tensor:
    """The model's output for input `X` (`model(X)`)."""
    return model(*X)


def loss(model: AbstractModel, y_hat: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The model's loss of output `y_hat` against targets `y`."""
    return model.loss(y_hat, y)


def training_step(model: AbstractModel, batch) -> torch.Tensor:
    """The model's training loss of one batch `(X..., y)`."""
    return model.training_step(batch)


def validation_step(model: AbstractModel, batch):
    """(loss, accuracy or None) of one validation batch."""
    return model.validation_step(batch)
