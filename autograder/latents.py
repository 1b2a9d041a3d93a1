"""What crosses from the encoder worker to the decoder worker: latents that the trusted side chose and sanitised.

Latents leave the ``encoder`` worker (which saw the held-out images) and reach the ``student`` worker (which
draws the images that are scored), so they are the one channel between the two, and a hostile model would use
it: two float32 numbers hide a thumbnail in their low mantissa bits, and an encoder that knows the VAE's ε can
cancel it. So the decoder never gets the encoder's numbers as they are:

* a VAE's ``z = μ + exp(½·logvar)·ε`` uses ε drawn from the course secret (:mod:`autograder.secret`);
* every latent is snapped to a grid of step ``h = spread / GRID_STEPS`` per dimension (``spread``: the latents'
  standard deviation over the batch), shifted by a secret offset, and placed uniformly at random inside its
  cell: nothing finer than ``h`` survives (about 0.5 % of the spread: no honest decoder notices);
* each latent is sent a second time moved by ``δ`` (``|δ| = SHIFT`` × the spread, in a secret direction), all
  shuffled together, so that the decoder cannot tell which is which; :func:`smoothness` then compares the two
  images. A decoder that reads a code out of ``z`` (an index into memorised images) jumps from one image to
  another when ``z`` moves a little; a decoder of a 2-D latent space does not.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from autograder.secret import generator

GRID_STEPS = 200
SHIFT = 0.05


def spread(z: torch.Tensor) -> torch.Tensor:
    """The latents' standard deviation per dimension (1 where they do not vary)."""
    deviation = z.double().std(dim=0) if len(z) > 1 else torch.ones(z.shape[1:], dtype=torch.float64)
    return torch.where(deviation > 0, deviation, torch.ones_like(deviation))


def sample(kind: str, latents: list[torch.Tensor], purpose: tuple) -> torch.Tensor:
    """The ``z`` of the encoder's output: ``encoded`` for an AE, ``μ + exp(½·logvar)·ε`` (secret ε) for a VAE."""
    if kind == "ae":
        return latents[0].double()
    mu, logvar = (part.double() for part in latents)
    eps = torch.randn(mu.shape, generator=generator(*purpose, "eps"), dtype=torch.float64)
    return mu + torch.exp(0.5 * logvar) * eps


def snapped(z: torch.Tensor, purpose: tuple) -> torch.Tensor:
    """``z`` on a grid of step spread / GRID_STEPS with a secret offset, placed at random within its cell."""
    draws = generator(*purpose, "grid")
    step = spread(z) / GRID_STEPS
    offset = torch.rand(z.shape[1:], generator=draws, dtype=torch.float64)
    cell = torch.floor(z.double() / step + offset)
    return (cell - offset + torch.rand(z.shape, generator=draws, dtype=torch.float64)) * step


@dataclass
class Crossing:
    """The latents sent to the decoder (``z`` and ``z + δ``, shuffled) and how to take its images apart again."""

    sent: torch.Tensor  # (2N, D), float32
    order: torch.Tensor  # sent[i] is row order[i] of [z; z + δ]

    def split(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The images decoded from ``z`` and from ``z + δ``, each in the held-out images' order."""
        restored = torch.empty_like(images)
        restored[self.order] = images
        half = len(images) // 2
        return restored[:half], restored[half:]


def crossing(kind: str, latents: list[torch.Tensor], purpose: tuple) -> Crossing:
    """What the decoder gets for the encoder's ``latents`` (see the module docstring)."""
    z = snapped(sample(kind, latents, purpose), purpose)
    draws = generator(*purpose, "shift")
    angle = torch.rand(len(z), generator=draws, dtype=torch.float64) * 2 * torch.pi
    direction = torch.stack([torch.cos(angle), torch.sin(angle)], dim=1) if z.shape[1] == 2 else \
        torch.nn.functional.normalize(torch.randn(z.shape, generator=draws, dtype=torch.float64), dim=1)
    both = torch.cat([z, z + SHIFT * spread(z) * direction])
    order = torch.randperm(len(both), generator=draws)
    return Crossing(sent=both[order].float(), order=order)


def smoothness(images: torch.Tensor, shifted: torch.Tensor) -> float:
    """How much the images change when z moves by δ, as a share of how much they differ from their mean:
    mean |D(z + δ) − D(z)| / mean |D(z) − mean D|."""
    images, shifted = images.double().flatten(1), shifted.double().flatten(1)
    change = (shifted - images).abs().mean()
    variety = (images - images.mean(dim=0)).abs().mean()
    return float(change / variety) if variety > 0 else 0.0
