"""The grader's own versions of the student functions that other questions' code calls.

"A bug costs once": while a question's model is built or trained, the names it lists under ``trusted`` in
questions.toml (``conv_vae`` lists ``reparameterize``) are replaced in the student's namespace by these
implementations, so that a mistake in ``reparameterize`` is charged to ``reparameterize`` alone and not again
to ``ConvVAE``.

This file is mounted in the ``student`` worker only: the ``functions`` worker, which answers the
``reparameterize`` probes, and the ``encoder`` worker, which trains the ``VAE`` with the student's own
``reparameterize`` (``vae_training``), cannot import it.
"""
from __future__ import annotations

from typing import Callable

import torch


def reparameterize(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """z = μ + exp(½·logvar)·ε, ε ~ N(0, I) (the reference's operations, in its order: same draws, same values)."""
    std = torch.exp(0.5 * logvar)
    eps = torch.randn_like(std)
    return mu + eps * std


IMPLEMENTATIONS = {"reparameterize": reparameterize}


def implementations(names: list[str]) -> dict[str, Callable]:
    """The trusted implementations of ``names`` (KeyError naming any that has none)."""
    unknown = [name for name in names if name not in IMPLEMENTATIONS]
    if unknown:
        raise KeyError(f"no trusted implementation of {', '.join(unknown)}")
    return {name: IMPLEMENTATIONS[name] for name in names}
