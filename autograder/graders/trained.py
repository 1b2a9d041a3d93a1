"""Training checks shared by vae_training, conv_autoencoder and conv_vae.

The student's model is trained once per question by the grader's loop (budget from questions.toml),
through the train → encode → decode pipeline of :mod:`autograder.bottleneck` (the ``training_plan``
fixture), and the held-out score of the images decoded from its latents is compared with the
calibrated limit.
"""
from __future__ import annotations

from autograder import config
from autograder.bottleneck import TrainedModel, held_out_images
from autograder.oracle import expect
from autograder.scoring import held_out_score

PLAUSIBLE_FRACTION = 0.5  # a score below half the best reference run is not believed
CONSTANT_FRACTION = 0.05  # decoded images that vary less than this share of the targets' spread ignore z


def check_score(trained: TrainedModel, question: str, calibration: dict) -> None:
    """Fail unless the held-out score of the images decoded from the model's latents is within the limit."""
    budget = config.budgets()[question]
    x_eval = held_out_images(budget["dataset"], budget["n_eval"])
    spread, target_spread = trained.images.double().std(dim=0).mean().item(), x_eval.double().std(dim=0).mean().item()
    expect(spread >= CONSTANT_FRACTION * target_spread,
           f"{budget['model']}.decoder ignores z: the images decoded from 2,000 different latents are almost identical "
           f"(their pixels vary by {spread:.3g} on average; the held-out images by {target_spread:.3g}). The image "
           "must be computed from the latent alone, not from anything forward stored")
    score = held_out_score(budget["kind"], trained.images, trained.latents, x_eval, budget["model"])
    figures = calibration["questions"][question]
    metric = "MSE" if budget["kind"] == "ae" else "loss per image"
    # A 2-D bottleneck cannot get anywhere near a perfect score.
    expect(score >= PLAUSIBLE_FRACTION * figures["min"],
           f"the held-out {metric} ({score:.4g}) is implausibly good for a 2-D latent (the best reference run reaches "
           f"{figures['min']:.4g}): the reconstruction does not seem to come from the latent")
    expect(score <= figures["threshold"],
           f"after the grader's training budget ({budget['epochs']} epochs on {budget['n_train']} images) the held-out "
           f"{metric} of the images decoded from the model's latents is {score:.4g}; the limit is "
           f"{figures['threshold']:.4g} (the reference solution reaches {figures['mean']:.4g} ± {figures['std']:.2g} "
           f"over {len(figures['values'])} seeds; predicting the mean image gives {figures['baseline']:.4g})")
