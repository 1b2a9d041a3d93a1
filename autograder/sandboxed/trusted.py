"""The grader's own versions of the student functions that other questions' code calls.

"A bug costs once": while a question's model is built, trained, encoded or decoded, the names it lists
under ``trusted`` in questions.toml (e.g. ``conv_vae`` lists ``reparameterize``) are replaced in the
student's namespace by these implementations, so that a mistake in ``reparameterize`` is charged to
``reparameterize`` alone and not again to ``ConvVAE``. (``vae_training`` lists nothing: its purpose is
to train the given VAE with the student's ``reparameterize``.)
"""
from __future__ import annotations

import contextlib
from typing import Iterator

import torch


def reparameterize(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """z = μ + exp(½·logvar)·ε, ε ~ N(0, I) (the reference's operations, in its order: same draws, same values)."""
    std = torch.exp(0.5 * logvar)
    eps = torch.randn_like(std)
    return mu + eps * std


IMPLEMENTATIONS = {"reparameterize": reparameterize}


@contextlib.contextmanager
def substituted(namespace: dict, names: list[str] | None) -> Iterator[None]:
    """Replace ``names`` in ``namespace`` by the trusted implementations for the duration of the block."""
    unknown = [name for name in names or [] if name not in IMPLEMENTATIONS]
    if unknown:
        raise KeyError(f"no trusted implementation of {', '.join(unknown)}")
    with replaced(namespace, {name: IMPLEMENTATIONS[name] for name in names or []}):
        yield


@contextlib.contextmanager
def replaced(namespace: dict, values: dict) -> Iterator[None]:
    """``namespace`` with ``values`` in place during the block; afterwards each of those names is as it was
    before (or absent, if it was)."""
    saved = {name: namespace[name] for name in values if name in namespace}
    namespace.update(values)
    try:
        yield
    finally:
        for name in values:
            namespace.pop(name, None)
        namespace.update(saved)
