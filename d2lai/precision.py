"""Mixed precision and compiled steps: how fast the training step runs, not what it computes.

`Trainer(..., precision="bf16")` runs the model's training and validation steps under
`torch.autocast` on the trainer's device: matrix products and convolutions in bfloat16 (on CPUs
with AVX512-BF16 or AMX, and on GPUs since Ampere, several times faster than in float32),
reductions, losses and batch-norm statistics in float32. The weights, their gradients and the
optimiser's state stay float32: only the arithmetic of the steps is in lower precision.
`precision="16"` does the same in float16 on a CUDA GPU, with a gradient scaler: the loss is
multiplied by a large factor before backward, so that small gradients do not vanish in float16;
the gradients are divided by it again before clipping and the step; a step whose gradients
overflowed is skipped (said on the epoch line) and the factor halved.

In bf16 and 16 a model with 2-D convolutions is put in channels-last memory format (its 4-D
weights stored height, width, channels: the layout the lower-precision convolution kernels of
oneDNN and cuDNN run fastest on; a ResNet-18 step on a CPU with AMX took 0.52 s against 0.72 s
in bf16, `bench/precision.py`). The values are the same; the weights stay in that layout after
the fit.

`Trainer(..., compile=True)` compiles the model's training and validation steps with
`torch.compile` at their first call; the seconds it took are said once, on the first epoch line.
Where compilation fails, the steps run eagerly, said once.

>>> Trainer(model, data, Descent(0.1), precision="bf16", compile=True)
"""

from __future__ import annotations

import logging
import time
from contextlib import nullcontext

import torch

from .callbacks.base import Callback
from .checks import ArgumentError, flag

__all__ = ["PRECISIONS", "Precision", "check_precision", "unsupported"]

logger = logging.getLogger("d2lai")

PRECISIONS = {"32": None, "bf16": torch.bfloat16, "16": torch.float16}  # autocast's dtype
ALIASES = {32: "32", 16: "16", "32-true": "32", "bf16-mixed": "bf16", "16-mixed": "16"}
BACKEND = "inductor"  # torch.compile's backend


def check_precision(name: str, value) -> str:
    """`value` as one of "32", "bf16", "16" (Lightning's "bf16-mixed" and 32, 16 accepted)."""
    key = ALIASES.get(value, value) if isinstance(value, (str, int)) else value  # True: no alias
    if not isinstance(key, str) or key not in PRECISIONS:
        raise ArgumentError(f"{name} must be '32' (float32), 'bf16' (bfloat16 autocast) or "
                            f"'16' (float16 autocast with a gradient scaler, on a GPU), got "
                            f"{value!r}")
    return key


def unsupported(precision: str, device: torch.device) -> str | None:
    """Why `device` cannot run `precision`, and what to use instead; None if it can."""
    if precision == "16" and device.type != "cuda":
        return (f"precision='16' (float16 with a gradient scaler) runs on a CUDA GPU, and this "
                f"trainer runs on the {device.type.upper()}: use precision='bf16' (bfloat16, fast "
                f"on CPUs with AVX512-BF16 or AMX) or '32'")
    if precision == "bf16" and device.type == "cuda" \
            and not torch.cuda.is_bf16_supported(including_emulation=False):
        return (f"precision='bf16': {torch.cuda.get_device_name(device)} has no bfloat16 "
                f"arithmetic (GPUs before Ampere): use precision='16' (float16 with a gradient "
                f"scaler) or '32'")
    return None


def native_bf16_cpu() -> bool:
    """Whether this CPU has bfloat16 instructions (AVX512-BF16 or AMX)."""
    cpu = torch.cpu
    return any(callable(f) and f() for f in (getattr(cpu, "_is_avx512_bf16_supported", None),
                                             getattr(cpu, "_is_amx_tile_supported", None)))


def has_conv2d(model: torch.nn.Module) -> bool:
    """Whether `model` holds a 2-D convolution (or its transpose)."""
    return any(isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)) for m in model.modules())


class Precision(Callback):
    """The training step's precision and compilation: autocast, the float16 gradient scaler,
    and the compiled steps. The trainer runs its steps through `run` and its backward and
    step through `backward`, `unscale` and `step`; as a callback it checks the device at fit
    start and puts its notes on the epoch line.

    Args:
        precision: "32", "bf16" or "16".
        compile: compile the training and validation steps with `torch.compile`.
    """

    order = 1

    def __init__(self, precision: str = "32", compile: bool = False):
        self.precision = check_precision("precision", precision)
        self.compile = flag("compile", compile)
        self.dtype = PRECISIONS[self.precision]
        self.device, self.scaler, self.compiled, self.timed = None, None, {}, set()
        self.fell_back = False
        self.noted, self.compile_s, self.skipped = False, 0.0, 0
        self.channels_last = False  # whether the model's convolutions were put channels-last

    def definition(self) -> dict:
        """What a run's definition holds of it."""
        return {"precision": self.precision, "compile": self.compile}

    def setup(self, device: torch.device, model: torch.nn.Module) -> None:
        """Refuse a precision the device cannot run, or a model not in float32 (the weights
        mixed precision keeps); build the float16 gradient scaler."""
        why = unsupported(self.precision, device)
        if why is not None:
            raise ValueError(why)
        odd = sorted({str(p.dtype) for p in model.parameters()
                      if p.is_floating_point() and p.dtype != torch.float32})
        if self.dtype is not None and odd:
            raise ValueError(f"precision={self.precision!r} keeps the weights in float32 and "
                             f"computes in {self.dtype}, but {type(model).__name__} has "
                             f"{', '.join(odd)} parameters: call model.float() first")
        if self.precision == "bf16" and device.type == "cpu" and not native_bf16_cpu() \
                and self.device is None:
            logger.info("this CPU has no bfloat16 instructions (AVX512-BF16 or AMX): "
                        "precision='bf16' runs emulated, likely slower than '32'")
        self.device = device
        if self.dtype is not None and has_conv2d(model):  # what the bf16/fp16 kernels run on
            model.to(memory_format=torch.channels_last)
            self.channels_last = True
        if self.precision == "16" and self.scaler is None:
            self.scaler = torch.amp.GradScaler(device.type)

    def on_fit_start(self, trainer) -> None:
        self.setup(trainer.device, trainer.model)
        self.compiled, self.timed = {}, set()  # the model may be another one
        self.noted, self.compile_s = False, 0.0

    # --- the step -----------------------------------------------------------------------------

    def autocast(self):
        """`torch.autocast` on the device in the lower precision (nothing in float32)."""
        if self.dtype is None or self.device is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def run(self, kind: str, step, batch):
        """`step(batch)` (the model's training or validation step) under autocast; with
        `compile`, compiled at its first call (timed), and eager from then on if compiling
        fails: the step is then run eagerly (a failure of the model itself raises its own
        error there) and the failure said once."""
        with self.autocast():
            if not self.compile or self.fell_back:
                return step(batch)
            compiled, tic = self.compiled.get(kind), time.perf_counter()
            if compiled is None:
                compiled = self.compiled[kind] = torch.compile(step, backend=BACKEND)
            try:
                out = compiled(batch)
            except Exception as err:  # torch's compiler stack raises many kinds
                out = step(batch)
                self.fell_back = True
                while (inner := getattr(err, "inner_exception", None) or err.__cause__):
                    err = inner  # the compiler's own error, not the wrapping of it
                reason = (str(err).strip().splitlines() or [""])[0][:300]
                logger.warning("torch.compile failed on the %s step (%s: %s): the steps run "
                               "eagerly", kind, type(err).__name__, reason)
                return out
            if kind not in self.timed:  # the first call: compiling, and one step
                self.timed.add(kind)
                self.compile_s += time.perf_counter() - tic
            return out

    def backward(self, loss: torch.Tensor) -> None:
        """`loss.backward()`; for float16 the loss scaled first."""
        (loss if self.scaler is None else self.scaler.scale(loss)).backward()

    def unscale(self, optimizer) -> None:
        """The gradients back to their true size (float16), before they are clipped."""
        if self.scaler is not None:
            self.scaler.unscale_(optimizer)

    def step(self, optimizer) -> None:
        """`optimizer.step()`; for float16 skipped if the gradients overflowed (counted), and
        the scale updated."""
        if self.scaler is None:
            optimizer.step()
            return
        scale = self.scaler.get_scale()
        self.scaler.step(optimizer)
        self.scaler.update()
        self.skipped += self.scaler.get_scale() < scale  # halved: this step was skipped

    # --- what the epoch line says ---------------------------------------------------------------

    def on_epoch_end(self, trainer, epoch: int, logs: dict) -> None:
        notes = trainer.notes
        if not self.noted and (self.dtype is not None or self.compile):
            self.noted = True
            mode = "float32" if self.dtype is None else f"{self.precision} autocast"
            if self.channels_last:
                mode += ", channels-last"
            if self.compile and self.compile_s:
                mode += f", compiled in {self.compile_s:.1f} s"
            elif self.compile:
                mode += ", eager (compiling failed)"
            notes.append(mode)
        if self.skipped:
            notes.append(f"{self.skipped} step{'s' * (self.skipped > 1)} skipped: float16 "
                         f"gradients overflowed (loss scale now {self.scaler.get_scale():g})")
            self.skipped = 0
