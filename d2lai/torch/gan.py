"""The GAN chapter's training steps: `update_D` and `update_G`, one optimiser step of the
discriminator and of the generator, as the chapter's own training loops call them. The DCGAN
section's Pokemon sprites are `download_extract('pokemon')` (DATA_HUB has the book's SHA-1),
an image folder for `torchvision.datasets.ImageFolder`."""

from __future__ import annotations

import torch

__all__ = ["update_D", "update_G"]


def _targets(value: float, like: torch.Tensor) -> torch.Tensor:
    """Labels for binary cross-entropy: `value` everywhere, in the shape of the scores."""
    return torch.full_like(like, value)


def update_D(X, Z, net_D, net_G, loss, trainer_D):
    """One step of the discriminator: real `X` labelled 1, the generator's images of noise `Z`
    labelled 0 (the generator's graph cut off); the mean of the two losses, after the step."""
    if X.shape[0] != Z.shape[0]:
        raise ValueError(f"update_D: {X.shape[0]} real examples but {Z.shape[0]} noise vectors; "
                         f"give one noise vector per real example")
    trainer_D.zero_grad()
    real_Y = net_D(X)
    fake_Y = net_D(net_G(Z).detach())  # no gradient to the generator
    loss_D = (loss(real_Y, _targets(1.0, real_Y)) + loss(fake_Y, _targets(0.0, fake_Y))) / 2
    loss_D.backward()
    trainer_D.step()
    return loss_D


def update_G(Z, net_D, net_G, loss, trainer_G):
    """One step of the generator: its images of `Z` scored by the (just updated) discriminator
    against label 1, i.e. the generator learns to be taken for real; the loss."""
    trainer_G.zero_grad()
    fake_Y = net_D(net_G(Z))
    loss_G = loss(fake_Y, _targets(1.0, fake_Y))
    loss_G.backward()
    trainer_G.step()
    return loss_G
