"""課題 2.2 ``vae_loss(reconstructed, x, mu, logvar)`` = BCE(sum) + KL(sum), a scalar tensor.

KL(N(μ, σ²) ‖ N(0, I)) = −½·Σ(1 + logvar − μ² − exp(logvar)) ≥ 0, and it is 0 at μ = 0, logvar = 0.
Every value is compared with the reference solution's ``vae_loss`` on the same fixed inputs.
"""
import pytest
import torch
import torch.nn.functional as F

from autograder.oracle import compare, expect, tensor

pytestmark = pytest.mark.question("vae_loss")

BATCH = 16
_generator = torch.Generator().manual_seed(2)
RECON = torch.sigmoid(torch.randn(BATCH, 1, 28, 28, generator=_generator))
X = torch.rand(BATCH, 1, 28, 28, generator=_generator)
X_BINARY = (torch.rand(BATCH, 1, 28, 28, generator=_generator) > 0.5).float()
MU = torch.randn(BATCH, 2, generator=_generator)
LOGVAR = 0.5 * torch.randn(BATCH, 2, generator=_generator)
ZEROS = torch.zeros(BATCH, 2)


def bce(recon: torch.Tensor, x: torch.Tensor, reduction: str = "sum") -> torch.Tensor:
    return F.binary_cross_entropy(recon, x.reshape(recon.shape), reduction=reduction)


def kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    return -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())


def loss_of(student, recon, x, mu, logvar) -> dict:
    return student.request("call", name="vae_loss", args=[recon, x, mu, logvar])


def test_returns_a_scalar_tensor(student):
    """vae_loss returns a 0-dimensional tensor (the sum over the batch)."""
    result = loss_of(student, RECON, X, MU, LOGVAR)
    info = result["info"]
    expect(info.get("type") == "Tensor", f"vae_loss must return a torch.Tensor, not {info.get('type')}")
    expect(info["shape"] == [], f"vae_loss must return a scalar (0-dim) tensor, not shape {tuple(info['shape'])}: "
                                "sum over the batch (reduction='sum')")


def test_matches_reference_on_fixed_inputs(student, reference):
    """Equal to the reference BCE(sum) + KL(sum) on fixed inputs, with image- and flat-shaped x."""
    expected = reference["vae_loss"](RECON, X, MU, LOGVAR)
    b, k = bce(RECON, X), kl(MU, LOGVAR)
    diagnoses = [
        (b - k, "the KL term has the wrong sign: KL = −0.5·Σ(1 + logvar − μ² − exp(logvar))"),
        (b, "the KL term is missing: the loss must be BCE + KL"),
        (k, "the reconstruction (BCE) term is missing: the loss must be BCE + KL"),
        (b + 2 * k, "the KL term lacks the factor 0.5"),
        (bce(RECON, X, "mean") + k, "the BCE uses reduction='mean'; use reduction='sum'"),
        ((b + k) / BATCH, "the loss is divided by the batch size; return the sum over the batch"),
        (F.mse_loss(RECON, X, reduction="sum") + k, "MSE is used for reconstruction; the VAE loss uses BCE (sum)"),
    ]
    compare(loss_of(student, RECON, X, MU, LOGVAR), expected, "vae_loss", rtol=1e-4, diagnoses=diagnoses)
    flat = loss_of(student, RECON.flatten(1), X, MU, LOGVAR)
    compare(flat, expected, "vae_loss with reconstructed of shape (B, 784) and x of shape (B, 1, 28, 28)", rtol=1e-4,
            diagnoses=[])


def test_kl_term_alone(student, reference):
    """With a perfect reconstruction (BCE = 0) the loss is exactly the KL term."""
    expected = reference["vae_loss"](X_BINARY, X_BINARY, MU, LOGVAR)
    k = kl(MU, LOGVAR)
    compare(loss_of(student, X_BINARY, X_BINARY, MU, LOGVAR), expected, "the KL term", rtol=1e-4, atol=1e-4,
            diagnoses=[
                (-k, "the KL term has the wrong sign: KL = −0.5·Σ(1 + logvar − μ² − exp(logvar)) ≥ 0"),
                (torch.zeros(()), "the KL term is missing (the loss is 0 for a perfect reconstruction)"),
                (2 * k, "the KL term lacks the factor 0.5"),
                (k / BATCH, "the KL term is averaged over the batch; it must be summed"),
                (k / MU.numel(), "the KL term is averaged (mean); it must be summed"),
                (-0.5 * torch.sum(1 + LOGVAR - MU.pow(2) - LOGVAR), "exp(logvar) is written as logvar in the KL term"),
                (-0.5 * torch.sum(1 + LOGVAR - MU - LOGVAR.exp()), "μ is not squared in the KL term"),
            ])


def test_bce_term_alone(student, reference):
    """With μ = 0 and logvar = 0 (KL = 0) the loss is exactly the BCE summed over all pixels."""
    expected = reference["vae_loss"](RECON, X, ZEROS, ZEROS)
    compare(loss_of(student, RECON, X, ZEROS, ZEROS), expected, "the BCE term", rtol=1e-4, diagnoses=[
        (bce(RECON, X, "mean"), "the BCE uses reduction='mean'; use reduction='sum'"),
        (bce(RECON, X) / BATCH, "the BCE is divided by the batch size; return the sum"),
        (F.binary_cross_entropy(X, RECON), "binary_cross_entropy's arguments are swapped: (reconstructed, x)"),
        (F.binary_cross_entropy(X, RECON, reduction="sum"), "binary_cross_entropy's arguments are swapped: "
                                                            "(reconstructed, x)"),
        (F.mse_loss(RECON, X, reduction="sum"), "MSE is used for reconstruction; the VAE loss uses BCE (sum)"),
    ])


def test_sign_and_minimum(student):
    """KL(0, 0) = 0, and the loss grows when μ moves away from 0 (the loss is minimised, not maximised)."""
    at_zero = tensor(loss_of(student, X_BINARY, X_BINARY, ZEROS, ZEROS), "vae_loss", shape=())
    expect(abs(at_zero.item()) < 1e-3, f"for a perfect reconstruction with μ = 0 and logvar = 0 the loss must be 0 "
                                       f"(KL(0, 0) = 0), it is {at_zero.item():.4g}")
    moved = tensor(loss_of(student, X_BINARY, X_BINARY, torch.ones(BATCH, 2), ZEROS), "vae_loss", shape=())
    expect(moved.item() > at_zero.item() + 1e-3,
           f"the loss must grow when μ moves away from 0 (it went from {at_zero.item():.4g} to {moved.item():.4g}): "
           "check the sign of the KL term")
