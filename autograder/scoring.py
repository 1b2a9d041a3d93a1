"""Held-out scores of a model trained by the grader's loop, computed on the trusted side.

The images scored are the student's decoder applied to latents of the held-out images (see
:mod:`autograder.bottleneck`); the score uses the reference formula, never a number the student's
code reports:

* ``"ae"``:  mean squared error of the decoded images (over pixels and images);
* ``"vae"``: [BCE(sum) + KL(sum)] / n_eval, the lab's per-image VAE loss, with the encoder's μ and logvar.

The same function scores the reference solution during calibration.
"""
from __future__ import annotations

import torch

from autograder.i18n import Message, t
from autograder.oracle import expect
from autograder.sandboxed.vae_objective import vae_loss_sum


def held_out_score(kind: str, images: torch.Tensor, latents: list[torch.Tensor], x_eval: torch.Tensor,
                   what: Message | str) -> float:
    """The reference metric of ``images`` (decoded from ``latents``) against the held-out ``x_eval``."""
    images, x = images.double(), x_eval.double()
    if kind == "ae":
        return torch.mean((images - x) ** 2).item()
    expect(bool((images >= 0).all() and (images <= 1).all()),
           t("{what} がデコードした画像の値が [0, 1] の範囲外です（デコーダの最後は Sigmoid にする必要があります）",
             "{what}'s decoded images are outside [0, 1] (the decoder must end with a Sigmoid)", what=what))
    mu, logvar = (part.double() for part in latents)
    return vae_loss_sum(images, x, mu, logvar).item() / len(x)


def baseline_score(kind: str, x_train: torch.Tensor, x_eval: torch.Tensor) -> float:
    """The score of a model that ignores its input and outputs the mean training image (μ = 0, logvar = 0)."""
    mean = x_train.double().mean(dim=0, keepdim=True).expand_as(x_eval).clamp(1e-6, 1 - 1e-6)
    zeros = [torch.zeros(len(x_eval), 2, dtype=torch.float64)] * 2
    return held_out_score(kind, mean, zeros, x_eval, t("平均画像", "the mean image"))
