"""The VAE's training objective: the reference ``vae_loss`` (BCE summed + KL summed).

Mounted only in the workers that train VAEs (``encoder`` and ``student``), never in the ``functions`` worker,
which answers the ``vae_loss`` probes. The trusted side scores with the same function (:mod:`autograder.scoring`).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def vae_loss_sum(reconstructed: torch.Tensor, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """BCE(reconstructed, x) summed over pixels and batch, plus KL(N(mu, exp(logvar)) || N(0, I)) summed, with
    KL = -0.5 * sum(1 + logvar - mu^2 - exp(logvar))."""
    bce = F.binary_cross_entropy(reconstructed.reshape(x.shape), x, reduction="sum")
    kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
    return bce + kl
