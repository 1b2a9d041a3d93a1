"""課題 2.2 ``vae_loss(reconstructed, x, mu, logvar)`` = BCE(sum) + KL(sum), a scalar tensor.

KL(N(μ, σ²) ‖ N(0, I)) = −½·Σ(1 + logvar − μ² − exp(logvar)) ≥ 0, and it is 0 at μ = 0, logvar = 0.
Every value is compared with the reference solution's ``vae_loss`` on the same fixed inputs, within a
tolerance that grows with the number of pixels summed (see ``PER_PIXEL``). A known mistake is named
only when the value matches it unambiguously; otherwise the feedback says what was measured.
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
# Spread-out μ and logvar, so that every known KL mistake gives a clearly different value (also next to the BCE)
_kl_generator = torch.Generator().manual_seed(5)
MU_KL = 2 * torch.randn(BATCH, 2, generator=_kl_generator)
LOGVAR_KL = torch.randn(BATCH, 2, generator=_kl_generator)
# Tolerances. A sum over N pixels of a correct BCE may differ from the reference by a little per pixel: a
# reconstruction clamped to [1e-7, 1 − 1e-7] or [1e-5, …] (log stays finite), a logit round trip, float64.
# So: |value − reference| ≤ PER_PIXEL·N + RTOL·|reference|. Every known mistake changes the value by far more.
PER_PIXEL = 2e-5
RTOL = 1e-4
ATOL = PER_PIXEL * X.numel()


def bce(recon: torch.Tensor, x: torch.Tensor, reduction: str = "sum") -> torch.Tensor:
    return F.binary_cross_entropy(recon, x.reshape(recon.shape), reduction=reduction)


def kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    return -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())


def loss_of(student, recon, x, mu, logvar) -> dict:
    return student.request("call", name="vae_loss", args=[recon, x, mu, logvar])


def ratio_message(part: str, expected: torch.Tensor):
    """What was measured, when no known mistake explains it: the part's value as a multiple of the expected."""
    def message(value: torch.Tensor) -> str:
        ratio = value.item() / expected.item() if expected.item() else float("inf")
        return (f"the {part} is {ratio:.4g}× the expected value ({value.item():.6g} instead of {expected.item():.6g}); "
                f"it must be summed over every {'pixel' if part.startswith('BCE') else 'latent dimension'} "
                "and every image of the batch")
    return message


KL_MISTAKES = [  # (the KL part a mistake gives, its name), as functions of μ and logvar
    (lambda m, v: -kl(m, v), "the KL term has the wrong sign: KL = −0.5·Σ(1 + logvar − μ² − exp(logvar)) ≥ 0"),
    (lambda m, v: 2 * kl(m, v), "the KL term lacks the factor 0.5"),
    (lambda m, v: kl(m, v) / BATCH, "the KL term is averaged over the batch; it must be summed"),
    (lambda m, v: kl(m, v) / m.numel(), "the KL term is averaged (mean over all elements); it must be summed"),
    (lambda m, v: -0.5 * torch.sum(1 + v - m.pow(2) - v), "exp(logvar) is written as logvar in the KL term"),
    (lambda m, v: -0.5 * torch.sum(1 + v - m - v.exp()), "μ is not squared in the KL term"),
    (lambda m, v: -0.5 * torch.sum(1 + v - m.pow(2) - (0.5 * v).exp()),
     "the KL term uses exp(0.5·logvar) (σ) where it needs exp(logvar) (σ²)"),
    (lambda m, v: -0.5 * torch.sum(v - m.pow(2) - v.exp()), "the KL term lacks the 1 inside the sum"),
]


def test_returns_a_scalar_tensor(student):
    """vae_loss returns a 0-dimensional tensor (the sum over the batch) that gradients flow through."""
    result = student.request("gradients", name="vae_loss", args=[RECON, X, MU, LOGVAR], weight=torch.ones(()),
                             differentiate=[True, False, True, True])
    info = result["info"]
    expect(info.get("type") == "Tensor", f"vae_loss must return a torch.Tensor, not {info.get('type')}")
    expect(info["shape"] == [], f"vae_loss must return a scalar (0-dim) tensor, not shape {tuple(info['shape'])}: "
                                "sum over the batch (reduction='sum')")
    expect(result["attached"], "the loss is cut off from the graph (.item(), .detach(), numpy or torch.tensor(...)):"
                               " training could not back-propagate through it")
    grad_recon, _, grad_mu, grad_logvar = result["grads"]
    for grad, name in ((grad_recon, "reconstructed"), (grad_mu, "mu"), (grad_logvar, "logvar")):
        expect(grad is not None and bool(grad.abs().sum() > 0), f"no gradient reaches {name} through the loss")


def test_matches_reference_on_fixed_inputs(student, reference):
    """Equal to the reference BCE(sum) + KL(sum) on fixed inputs, with image- and flat-shaped x."""
    expected = reference["vae_loss"](RECON, X, MU_KL, LOGVAR_KL)
    b, k = bce(RECON, X), kl(MU_KL, LOGVAR_KL)
    diagnoses = [(b + wrong(MU_KL, LOGVAR_KL), message) for wrong, message in KL_MISTAKES] + [
        (b, "the KL term is missing: the loss must be BCE + KL"),
        (k, "the reconstruction (BCE) term is missing: the loss must be BCE + KL"),
        (bce(RECON, X, "mean") + k, "the BCE uses reduction='mean'; use reduction='sum'"),
        ((b + k) / BATCH, "the loss is divided by the batch size; return the sum over the batch"),
        (F.mse_loss(RECON, X, reduction="sum") + k, "MSE is used for reconstruction; the VAE loss uses BCE (sum)"),
        (bce(X, RECON) + k, "binary_cross_entropy's arguments are swapped: (reconstructed, x)"),
    ]
    compare(loss_of(student, RECON, X, MU_KL, LOGVAR_KL), expected, "vae_loss", rtol=RTOL, atol=ATOL,
            diagnoses=diagnoses)
    flat = loss_of(student, RECON.flatten(1), X, MU_KL, LOGVAR_KL)
    compare(flat, expected, "vae_loss with reconstructed of shape (B, 784) and x of shape (B, 1, 28, 28)",
            rtol=RTOL, atol=ATOL)


def test_kl_term_alone(student, reference):
    """With a perfect reconstruction (BCE = 0) the loss is exactly the KL term."""
    expected = reference["vae_loss"](X_BINARY, X_BINARY, MU_KL, LOGVAR_KL)
    diagnoses = [(wrong(MU_KL, LOGVAR_KL), message) for wrong, message in KL_MISTAKES] + [
        (torch.zeros(()), "the KL term is missing (the loss is 0 for a perfect reconstruction)")]
    compare(loss_of(student, X_BINARY, X_BINARY, MU_KL, LOGVAR_KL), expected, "the KL term", rtol=RTOL, atol=ATOL,
            diagnoses=diagnoses, measured=ratio_message("KL term", expected))


def test_bce_term_alone(student, reference):
    """With μ = 0 and logvar = 0 (KL = 0) the loss is exactly the BCE summed over all pixels."""
    expected = reference["vae_loss"](RECON, X, ZEROS, ZEROS)
    compare(loss_of(student, RECON, X, ZEROS, ZEROS), expected, "the BCE term", rtol=RTOL, atol=ATOL, diagnoses=[
        (bce(RECON, X, "mean"), "the BCE uses reduction='mean'; use reduction='sum'"),
        (bce(RECON, X) / BATCH, "the BCE is divided by the batch size; return the sum"),
        (F.binary_cross_entropy(X, RECON), "binary_cross_entropy's arguments are swapped: (reconstructed, x)"),
        (F.binary_cross_entropy(X, RECON, reduction="sum"), "binary_cross_entropy's arguments are swapped: "
                                                            "(reconstructed, x)"),
        (F.mse_loss(RECON, X, reduction="sum"), "MSE is used for reconstruction; the VAE loss uses BCE (sum)"),
        (torch.zeros(()), "the reconstruction (BCE) term is missing: the loss must be BCE + KL"),
    ], measured=ratio_message("BCE term", expected))


def test_sign_and_minimum(student):
    """KL(0, 0) = 0, and the loss grows when μ moves away from 0 (the loss is minimised, not maximised)."""
    at_zero = tensor(loss_of(student, X_BINARY, X_BINARY, ZEROS, ZEROS), "vae_loss", shape=())
    expect(abs(at_zero.item()) <= ATOL, f"for a perfect reconstruction with μ = 0 and logvar = 0 the loss must be 0 "
                                        f"(KL(0, 0) = 0), it is {at_zero.item():.4g}")
    moved = tensor(loss_of(student, X_BINARY, X_BINARY, torch.ones(BATCH, 2), ZEROS), "vae_loss", shape=())
    # KL(μ = 1, logvar = 0) = ½·Σμ² = 16 here: far above the tolerance
    expect(moved.item() > at_zero.item() + ATOL,
           f"the loss must grow when μ moves away from 0 (it went from {at_zero.item():.4g} to {moved.item():.4g}): "
           "check the sign of the KL term")
