"""The grader's own training loop and the reference objectives it trains with.

The student's model is trained here, inside the worker, with *this* loop (Adam, fixed batch
order from a seeded generator), never with the student's own loop or loss. The trusted side
then scores the returned held-out outputs with the reference formula.

Objectives (per sample, averaged over the batch):

* ``"ae"``:  MSE(decoded, x), the mean over pixels, as in the lab;
* ``"vae"``: [BCE_sum(reconstructed, x) + KL_sum] / B (:mod:`sandboxed.vae_objective`).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def objective(kind: str, model: nn.Module, xb: torch.Tensor) -> torch.Tensor:
    """The lab's training loss of ``model`` on the batch ``xb`` for ``kind`` in {"ae", "vae"}.

    The VAE objective is the reference ``vae_loss``: it lives in :mod:`sandboxed.vae_objective`, which the
    ``functions`` worker (it answers the ``vae_loss`` probes, and trains autoencoders only) does not mount."""
    if kind == "ae":
        _, decoded = model(xb)
        return F.mse_loss(decoded, xb)
    from sandboxed.vae_objective import vae_loss_sum  # noqa: PLC0415 - mounted where VAEs train

    reconstructed, mu, logvar = model(xb)
    return vae_loss_sum(reconstructed, xb, mu, logvar) / len(xb)


def _adam(parameters: list[torch.nn.Parameter], lr: float) -> torch.optim.Optimizer:
    """Adam, fused (one kernel per step on the CPU and on CUDA) where the parameters allow it."""
    try:
        return torch.optim.Adam(parameters, lr=lr, fused=True)
    except (RuntimeError, ValueError, TypeError):  # e.g. parameters of a dtype the fused kernel lacks
        return torch.optim.Adam(parameters, lr=lr)


def fit(model: nn.Module, x: torch.Tensor, kind: str, *, epochs: int, batch_size: int, lr: float,
        seed: int) -> list[float]:
    """Train ``model`` on ``x`` with Adam; return the mean training loss of each epoch."""
    generator = torch.Generator().manual_seed(seed)
    optimizer = _adam(list(model.parameters()), lr)
    history = []
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=generator).to(x.device)
        total = 0.0
        for start in range(0, len(x), batch_size):
            xb = x[order[start : start + batch_size]]
            loss = objective(kind, model, xb)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(xb)
        history.append(total / len(x))
    return history
