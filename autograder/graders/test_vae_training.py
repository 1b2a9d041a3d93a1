"""The student's ``VAE`` (with their ``reparameterize``) trained by the grader's own loop.

The grader trains with the reference loss and scores the held-out outputs with the reference
formula; the student's own training loop and reported losses play no part.
"""
import pytest

from autograder.graders.trained import check_score, train_once
from autograder.oracle import items, tensor

QUESTION = "vae_training"
pytestmark = pytest.mark.question(QUESTION)


@pytest.fixture(scope="module")
def trained(student, device):
    return train_once(student, QUESTION, device)


def test_trains_and_returns_reconstruction_mu_logvar(trained, calibration):
    """VAE trains under the grader's loop and returns (reconstructed, mu, logvar) of the right shapes."""
    result = trained.get()
    n = calibration["questions"][QUESTION]["budget"]["n_eval"]
    reconstructed, mu, logvar = items({"info": result["info"], "value": result["outputs"]}, "VAE.forward", 3,
                                      "reconstructed, mu, logvar")
    tensor(reconstructed, "reconstructed", shape=(n, 1, 28, 28))
    tensor(mu, "mu", shape=(n, 2))
    tensor(logvar, "logvar", shape=(n, 2))


def test_held_out_loss_within_calibrated_limit(trained, calibration, held_out_images):
    """The held-out loss (reference BCE + KL per image) is within the calibrated limit."""
    check_score(trained, QUESTION, calibration, held_out_images)
