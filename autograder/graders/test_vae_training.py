"""The student's ``VAE`` (with their ``reparameterize``) trained by the grader's own loop.

The grader trains with the reference loss, encodes the held-out images in a second worker, decodes
trusted-side samples ``z = mu + exp(½·logvar)·ε`` in the first, and scores those images with the
reference formula; the student's own training loop and reported losses play no part.
"""
import pytest

from autograder.graders.trained import check_score
from autograder.oracle import describe_only, items

QUESTION = "vae_training"
pytestmark = pytest.mark.question(QUESTION)


def test_trains_and_returns_reconstruction_mu_logvar(training_plan, calibration):
    """VAE trains under the grader's loop and returns (reconstructed, mu, logvar) of the right shapes.

    ja: VAE が採点側の学習ループで学習でき、正しい形状の (reconstructed, mu, logvar) を返す
    """
    result = training_plan.result(QUESTION)
    n = calibration["questions"][QUESTION]["budget"]["n_eval"]
    reconstructed, mu, logvar = items({"info": result.forward_info, "value": [None, None, None]}, "VAE.forward", 3,
                                      "reconstructed, mu, logvar")
    for part, name, shape in ((reconstructed, "reconstructed", (n, 1, 28, 28)), (mu, "mu", (n, 2)),
                              (logvar, "logvar", (n, 2))):
        describe_only(part, name, shape)


def test_held_out_loss_within_calibrated_limit(training_plan, calibration, pictures):
    """The held-out loss (reference BCE + KL per image) of images decoded from the latents is within the limit.

    ja: 潜在変数からデコードした画像の評価用データでの損失（模範解答の式による 1 画像あたりの BCE + KL）が基準値以内に入る
    """
    check_score(training_plan.result(QUESTION), QUESTION, calibration, pictures)
