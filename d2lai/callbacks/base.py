"""Callbacks: code that runs around the training loop, at its named events."""

from __future__ import annotations

__all__ = ["Callback", "monitor_mode"]


class Callback:
    """Hooks the trainer calls; each does nothing unless overridden."""

    def on_fit_start(self, trainer) -> None:
        """Before the first epoch of a fit (the model and data are on their device)."""

    def on_epoch_end(self, trainer, epoch: int, logs: dict[str, float]) -> None:
        """After an epoch's validation, with its figures (`train_loss`, `val_acc`, ...)."""

    def on_fit_end(self, trainer, metrics) -> None:
        """After the last epoch, also when the fit diverged or was interrupted."""


def monitor_mode(monitor: str, mode: str = "auto") -> str:
    """'min' or 'max': 'auto' maximises accuracies and minimises everything else."""
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
    if mode != "auto":
        return mode
    return "max" if "acc" in monitor else "min"
