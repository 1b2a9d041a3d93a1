"""Held-out scores of a model trained by the grader's loop, computed on the trusted side.

The worker returns the trained model's outputs on the first ``n_eval`` MNIST test images; the
score uses the reference formula, never a number the student's code reports:

* ``"ae"``:  mean squared error of ``decoded`` (over pixels and images);
* ``"vae"``: [BCE(sum) + KL(sum)] / n_eval, the lab's per-image VAE loss.

The same function scores the reference solution during calibration.
"""
from __future__ import annotations

import torch

from autograder.oracle import expect, items, tensor
from autograder.sandboxed.training import vae_loss_sum


def held_out_score(kind: str, result: dict, x_eval: torch.Tensor, what: str) -> float:
    """The reference metric of the trained model's outputs ``result`` (a ``{"info", "value"}`` pair) on ``x_eval``."""
    n, image = len(x_eval), tuple(x_eval.shape)
    if kind == "ae":
        encoded, decoded = items(result, what, 2, "encoded, decoded")
        tensor(encoded, f"{what}'s encoded", shape=(n, 2))
        decoded = tensor(decoded, f"{what}'s decoded", shape=image).double()
        expect(bool(torch.isfinite(decoded).all()), f"{what} produced NaN or inf after training")
        return torch.mean((decoded - x_eval.double()) ** 2).item()
    reconstructed, mu, logvar = items(result, what, 3, "reconstructed, mu, logvar")
    reconstructed = tensor(reconstructed, f"{what}'s reconstructed", shape=image).double()
    mu = tensor(mu, f"{what}'s mu", shape=(n, 2)).double()
    logvar = tensor(logvar, f"{what}'s logvar", shape=(n, 2)).double()
    expect(bool(torch.isfinite(reconstructed).all() and torch.isfinite(mu).all() and torch.isfinite(logvar).all()),
           f"{what} produced NaN or inf after training")
    expect(bool((reconstructed >= 0).all() and (reconstructed <= 1).all()),
           f"{what}'s reconstruction is outside [0, 1] (the decoder must end with a Sigmoid)")
    return vae_loss_sum(reconstructed, x_eval.double(), mu, logvar).item() / n


def baseline_score(kind: str, x_train: torch.Tensor, x_eval: torch.Tensor) -> float:
    """The score of a model that ignores its input and outputs the mean training image (μ = 0, logvar = 0)."""
    mean = x_train.double().mean(dim=0, keepdim=True).expand_as(x_eval).clamp(1e-6, 1 - 1e-6)
    if kind == "ae":
        return torch.mean((mean - x_eval.double()) ** 2).item()
    zeros = torch.zeros(len(x_eval), 2, dtype=torch.float64)
    return vae_loss_sum(mean, x_eval.double(), zeros, zeros).item() / len(x_eval)
