"""Linear regression, concise (chapter 3): a given net, the mean squared error."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import AbstractConciseModel

__all__ = ["LinearRegressionConcise"]


class LinearRegressionConcise(AbstractConciseModel):
    """`LinearRegressionConcise(nn.Linear(2, 1))`: the net's output against the targets, loss
    the mean of the squared errors (Flux's `mse`, without the scratch model's 1/2)."""

    def loss(self, y_hat: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(y_hat, y)
