"""Training checks shared by vae_training, conv_autoencoder and conv_vae.

The student's model is trained once per question by the grader's loop (budget from
questions.toml), and its held-out score is compared with the calibrated limit.
"""
from __future__ import annotations

import torch

from autograder import config
from autograder.client import Worker
from autograder.oracle import Attempt, expect
from autograder.scoring import held_out_score

PLAUSIBLE_FRACTION = 0.5  # a score below half the best reference run is not believed


def train_once(student: Worker, question: str, device: str) -> Attempt:
    """Train the question's model under its budget (one attempt; failures are kept for every check)."""
    budget = config.budgets()[question]
    return Attempt(lambda: student.request("train", timeout=budget["timeout_s"], name=budget["model"],
                                           seed=config.GRADING_SEED, device=device, **config.train_arguments(budget)))


def check_score(attempt: Attempt, question: str, calibration: dict, held_out_images: torch.Tensor) -> None:
    """Fail unless the trained model's held-out score is within the calibrated limit."""
    budget = config.budgets()[question]
    trained = attempt.get()
    expect(all(torch.isfinite(torch.tensor(trained["history"]))), "the training loss became NaN or inf")
    score = held_out_score(budget["kind"], {"info": trained["info"], "value": trained["outputs"]},
                           held_out_images[: budget["n_eval"]], budget["model"])
    figures = calibration["questions"][question]
    metric = "MSE" if budget["kind"] == "ae" else "loss per image"
    # The outputs come from the untrusted worker: a 2-D bottleneck cannot get anywhere near a perfect score.
    expect(score >= PLAUSIBLE_FRACTION * figures["min"],
           f"the held-out {metric} ({score:.4g}) is implausibly good for a 2-D latent (the best reference run reaches "
           f"{figures['min']:.4g}): the reconstruction does not seem to come from the latent")
    expect(score <= figures["threshold"],
           f"after the grader's training budget ({budget['epochs']} epochs on {budget['n_train']} images) the held-out "
           f"{metric} is {score:.4g}; the limit is {figures['threshold']:.4g} (the reference solution reaches "
           f"{figures['mean']:.4g} ± {figures['std']:.2g} over {len(figures['values'])} seeds; predicting the mean "
           f"image gives {figures['baseline']:.4g})")
