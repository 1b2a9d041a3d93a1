"""課題 2.2 ``vae_loss(reconstructed, x, mu, logvar)`` = BCE(sum) + KL(sum), a scalar tensor.

KL(N(μ, σ²) ‖ N(0, I)) = −½·Σ(1 + logvar − μ² − exp(logvar)) ≥ 0, and it is 0 at μ = 0, logvar = 0.
Every value is compared with the reference solution's ``vae_loss`` on the same fixed inputs, within a
tolerance that grows with the number of pixels summed (see ``PER_PIXEL``). A known mistake is named
only when the value matches it unambiguously; otherwise the feedback says what was measured.
"""
import pytest
import torch
import torch.nn.functional as F

from autograder.i18n import Message, t
from autograder.oracle import compare, expect, tensor
from autograder.secret import submission_generator

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
# Each notebook gets its own inputs: the ones above, moved a little by draws keyed to the notebook and the course
# secret (autograder/secret.py), so that a table of stored answers matches none of them. The moves are small
# (5 % of a logit, 0.05 in μ and logvar) against the gaps between the known mistakes' values.
_moves = submission_generator("vae_loss")
RECON = torch.sigmoid(torch.logit(RECON) + 0.05 * torch.randn(RECON.shape, generator=_moves))
X = (X + 0.02 * torch.rand(X.shape, generator=_moves)).clamp(0, 1)
MU, LOGVAR, MU_KL, LOGVAR_KL = (value + 0.05 * torch.randn(value.shape, generator=_moves)
                                for value in (MU, LOGVAR, MU_KL, LOGVAR_KL))
X_BINARY = torch.where(torch.rand(X_BINARY.shape, generator=_moves) < 0.02, 1 - X_BINARY, X_BINARY)
MU_AWAY = 1 + 0.1 * torch.rand(BATCH, 2, generator=_moves)  # μ moved away from 0 (test_sign_and_minimum)
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


def loss_of(functions, recon, x, mu, logvar) -> dict:
    return functions.request("call", name="vae_loss", args=[recon, x, mu, logvar])


KL_PART = t("KL 項", "KL term")
BCE_PART = t("BCE 項", "BCE term")
PIXEL = t("ピクセル", "pixel")
LATENT_DIMENSION = t("潜在変数の次元", "latent dimension")


def ratio_message(part: Message, summed_over: Message, expected: torch.Tensor, counts: tuple[int, ...]):
    """What was measured, when no known mistake explains it: the part's value as a multiple of the expected.

    It adds "it must be summed" only when the ratio is 1/n for a count n that an average divides by
    (``counts``: the batch, the elements of one image, all elements); any other ratio is just reported.
    """
    def message(value: torch.Tensor) -> Message:
        ratio = value.item() / expected.item() if expected.item() else float("inf")
        if any(abs(ratio * n - 1) < 0.01 for n in counts):
            return t("{part}が期待値の {ratio:.4g} 倍です（{expected:.6g} であるべきところが {value:.6g}）。平均ではなく、"
                     "すべての{summed_over}とバッチ内のすべての画像について和をとる必要があります",
                     "the {part} is {ratio:.4g}× the expected value ({value:.6g} instead of {expected:.6g}): it is "
                     "averaged; it must be summed over every {summed_over} and every image of the batch",
                     part=part, ratio=ratio, value=value.item(), expected=expected.item(), summed_over=summed_over)
        return t("{part}が期待値の {ratio:.4g} 倍です（{expected:.6g} であるべきところが {value:.6g}）",
                 "the {part} is {ratio:.4g}× the expected value ({value:.6g} instead of {expected:.6g})",
                 part=part, ratio=ratio, value=value.item(), expected=expected.item())
    return message


KL_MISTAKES = [  # (the KL part a mistake gives, its name), as functions of μ and logvar
    (lambda m, v: -kl(m, v), t("KL 項の符号が逆です。KL = −0.5·Σ(1 + logvar − μ² − exp(logvar)) ≥ 0 です",
                               "the KL term has the wrong sign: KL = −0.5·Σ(1 + logvar − μ² − exp(logvar)) ≥ 0")),
    (lambda m, v: 2 * kl(m, v), t("KL 項に係数 0.5 が抜けています", "the KL term lacks the factor 0.5")),
    (lambda m, v: -2 * kl(m, v), t("KL 項に係数 −0.5 が抜けています（KL = −0.5·Σ(1 + logvar − μ² − exp(logvar))）",
                                   "the KL term lacks its factor −0.5: KL = −0.5·Σ(1 + logvar − μ² − exp(logvar))")),
    (lambda m, v: -0.5 * torch.sum(1 + v + m.pow(2) - v.exp()), t("KL 項で μ² の符号が逆です（− μ² であるべきところが "
                                                                  "+ μ²）",
                                                                  "the KL term has μ² with the wrong sign (+ μ² where it "
                                                                  "needs − μ²)")),
    (lambda m, v: -0.5 * torch.sum(1 + v - m.pow(2) + v.exp()), t("KL 項で exp(logvar) の符号が逆です（− exp(logvar) で"
                                                                  "あるべきところが + exp(logvar)）",
                                                                  "the KL term has exp(logvar) with the wrong sign "
                                                                  "(+ exp(logvar) where it needs − exp(logvar))")),
    (lambda m, v: -0.5 * torch.sum(1 + v - m.pow(2)), t("KL 項で和の中の exp(logvar) が抜けています"
                                                        "（1 + logvar − μ² − exp(logvar)）",
                                                        "the KL term lacks the exp(logvar) inside the sum "
                                                        "(1 + logvar − μ² − exp(logvar))")),
    (lambda m, v: kl(m, v) / BATCH, t("KL 項がバッチについて平均されています。和をとる必要があります",
                                      "the KL term is averaged over the batch; it must be summed")),
    (lambda m, v: kl(m, v) / m.numel(), t("KL 項が（全要素について）平均されています。和をとる必要があります",
                                          "the KL term is averaged (mean over all elements); it must be summed")),
    (lambda m, v: -0.5 * torch.sum(1 + v - m.pow(2) - v), t("KL 項で exp(logvar) が logvar と書かれています",
                                                            "exp(logvar) is written as logvar in the KL term")),
    (lambda m, v: -0.5 * torch.sum(1 + v - m - v.exp()), t("KL 項で μ が 2 乗されていません",
                                                           "μ is not squared in the KL term")),
    (lambda m, v: -0.5 * torch.sum(1 + v - m.pow(2) - (0.5 * v).exp()),
     t("KL 項で exp(logvar)（σ²）を使うべきところに exp(0.5·logvar)（σ）が使われています",
       "the KL term uses exp(0.5·logvar) (σ) where it needs exp(logvar) (σ²)")),
    (lambda m, v: -0.5 * torch.sum(v - m.pow(2) - v.exp()), t("KL 項で和の中の 1 が抜けています",
                                                              "the KL term lacks the 1 inside the sum")),
    (lambda m, v: -0.5 * torch.sum(1 - v - m.pow(2) - v.exp()), t("KL 項で logvar の符号が逆です（1 + logvar であるべき"
                                                                  "ところが 1 − logvar）",
                                                                  "the KL term has logvar with the wrong sign "
                                                                  "(1 − logvar where it needs 1 + logvar)")),
    (lambda m, v: -0.5 * torch.sum(1 - m.pow(2) - v.exp()), t("KL 項で和の中の logvar が抜けています"
                                                              "（1 + logvar − μ² − exp(logvar)）",
                                                              "the KL term lacks the logvar inside the sum "
                                                              "(1 + logvar − μ² − exp(logvar))")),
]
KL_MISSING = t("KL 項が抜けています。損失は BCE + KL です", "the KL term is missing: the loss must be BCE + KL")
BCE_MISSING = t("再構成（BCE）項が抜けています。損失は BCE + KL です",
                "the reconstruction (BCE) term is missing: the loss must be BCE + KL")
BCE_MEAN = t("BCE が reduction='mean' になっています。reduction='sum' を使ってください",
             "the BCE uses reduction='mean'; use reduction='sum'")
MSE_USED = t("再構成誤差に MSE が使われています。VAE の損失では BCE（和）を使います",
             "MSE is used for reconstruction; the VAE loss uses BCE (sum)")
BCE_SWAPPED = t("binary_cross_entropy の引数の順序が逆です。(reconstructed, x) の順に渡してください",
                "binary_cross_entropy's arguments are swapped: (reconstructed, x)")


def test_returns_a_scalar_tensor(functions):
    """vae_loss returns a 0-dimensional tensor (the sum over the batch) that gradients flow through.

    ja: vae_loss は勾配が流れる 0 次元テンソル（バッチについての和）を返す
    """
    result = functions.request("gradients", name="vae_loss", args=[RECON, X, MU, LOGVAR], weight=torch.ones(()),
                             differentiate=[True, False, True, True])
    info = result["info"]
    expect(info.get("type") == "Tensor", t("vae_loss は torch.Tensor を返す必要がありますが、{type} を返しました",
                                           "vae_loss must return a torch.Tensor, not {type}", type=info.get("type")))
    expect(info["shape"] == [], t("vae_loss はスカラー（0 次元）のテンソルを返す必要がありますが、形状が {shape} です。"
                                  "バッチについて和をとってください（reduction='sum'）",
                                  "vae_loss must return a scalar (0-dim) tensor, not shape {shape}: "
                                  "sum over the batch (reduction='sum')", shape=tuple(info["shape"])))
    expect(result["attached"], t("損失が計算グラフから切り離されています（.item()、.detach()、numpy、torch.tensor(...) "
                                 "など）。これでは学習で誤差逆伝播ができません",
                                 "the loss is cut off from the graph (.item(), .detach(), numpy or torch.tensor(...)):"
                                 " training could not back-propagate through it"))
    grad_recon, _, grad_mu, grad_logvar = result["grads"]
    for grad, name in ((grad_recon, "reconstructed"), (grad_mu, "mu"), (grad_logvar, "logvar")):
        expect(grad is not None and bool(grad.abs().sum() > 0), t("損失から {name} に勾配が届きません",
                                                                  "no gradient reaches {name} through the loss",
                                                                  name=name))


def test_matches_reference_on_fixed_inputs(functions, reference):
    """Equal to the reference BCE(sum) + KL(sum) on fixed inputs, with image- and flat-shaped x.

    ja: 固定した入力で模範解答の BCE(sum) + KL(sum) と一致する（画像の形状の x でも平坦な x でも）
    """
    expected = reference["vae_loss"](RECON, X, MU_KL, LOGVAR_KL)
    b, k = bce(RECON, X), kl(MU_KL, LOGVAR_KL)
    diagnoses = [(b + wrong(MU_KL, LOGVAR_KL), message) for wrong, message in KL_MISTAKES] + [
        (b, KL_MISSING),
        (k, BCE_MISSING),
        (bce(RECON, X, "mean") + k, BCE_MEAN),
        ((b + k) / BATCH, t("損失がバッチサイズで割られています。バッチについての和を返してください",
                            "the loss is divided by the batch size; return the sum over the batch")),
        (F.mse_loss(RECON, X, reduction="sum") + k, MSE_USED),
        (bce(X, RECON) + k, BCE_SWAPPED),
    ]
    compare(loss_of(functions, RECON, X, MU_KL, LOGVAR_KL), expected, "vae_loss", rtol=RTOL, atol=ATOL,
            diagnoses=diagnoses)
    flat = loss_of(functions, RECON.flatten(1), X, MU_KL, LOGVAR_KL)
    compare(flat, expected, t("reconstructed の形状が (B, 784)、x の形状が (B, 1, 28, 28) のときの vae_loss",
                              "vae_loss with reconstructed of shape (B, 784) and x of shape (B, 1, 28, 28)"),
            rtol=RTOL, atol=ATOL)


def test_kl_term_alone(functions, reference):
    """With a perfect reconstruction (BCE = 0) the loss is exactly the KL term.

    ja: 再構成が完全なとき（BCE = 0）、損失は KL 項そのものになる
    """
    expected = reference["vae_loss"](X_BINARY, X_BINARY, MU_KL, LOGVAR_KL)
    diagnoses = [(wrong(MU_KL, LOGVAR_KL), message) for wrong, message in KL_MISTAKES] + [
        (torch.zeros(()), t("KL 項が抜けています（再構成が完全なとき損失が 0 になっています）",
                            "the KL term is missing (the loss is 0 for a perfect reconstruction)"))]
    compare(loss_of(functions, X_BINARY, X_BINARY, MU_KL, LOGVAR_KL), expected, t("KL 項", "the KL term"), rtol=RTOL,
            atol=ATOL, diagnoses=diagnoses,
            measured=ratio_message(KL_PART, LATENT_DIMENSION, expected, (BATCH, MU_KL.shape[1], MU_KL.numel())))


def test_bce_term_alone(functions, reference):
    """With μ = 0 and logvar = 0 (KL = 0) the loss is exactly the BCE summed over all pixels.

    The BCE part is measured as loss(reconstructed, x, 0, 0) − loss(x′, x′, 0, 0) for binary x′ (a perfect
    reconstruction, where BCE = 0), so that a KL term that is not 0 at (0, 0) (``test_sign_and_minimum``
    charges it) is not blamed on the BCE as well.

    ja: μ = 0、logvar = 0（KL = 0）のとき、損失は全ピクセルについて和をとった BCE そのものになる
    """
    expected = reference["vae_loss"](RECON, X, ZEROS, ZEROS)
    at_zero = tensor(loss_of(functions, X_BINARY, X_BINARY, ZEROS, ZEROS), "vae_loss", shape=())
    expect(bool(torch.isfinite(at_zero)), t("再構成が完全で μ = 0、logvar = 0（BCE = 0、KL = 0）のとき、損失が {value} に"
                                            "なっています。有限の値（0）になるはずです",
                                            "for a perfect reconstruction with μ = 0 and logvar = 0 (BCE = 0 and KL = "
                                            "0) the loss is {value}; it must be finite (0)", value=at_zero.item()))
    diagnoses = [
        (bce(RECON, X, "mean"), BCE_MEAN),
        (bce(RECON, X) / BATCH, t("BCE がバッチサイズで割られています。和を返してください",
                                  "the BCE is divided by the batch size; return the sum")),
        (F.binary_cross_entropy(X, RECON), BCE_SWAPPED),
        (F.binary_cross_entropy(X, RECON, reduction="sum"), BCE_SWAPPED),
        (F.mse_loss(RECON, X, reduction="sum"), MSE_USED),
        (torch.zeros(()), BCE_MISSING),
    ]
    result = loss_of(functions, RECON, X, ZEROS, ZEROS)
    if isinstance(result.get("value"), torch.Tensor) and abs(at_zero.item()) > ATOL:
        result = {**result, "value": result["value"] - at_zero.to(result["value"].dtype)}
    compare(result, expected, t("BCE 項", "the BCE term"), rtol=RTOL, atol=ATOL, diagnoses=diagnoses,
            measured=ratio_message(BCE_PART, PIXEL, expected, (BATCH, X[0].numel(), X.numel())))


def test_sign_and_minimum(functions):
    """KL(0, 0) = 0, and the loss grows when μ moves away from 0 (the loss is minimised, not maximised).

    ja: KL(0, 0) = 0 であり、μ が 0 から離れると損失が増える（損失は最大化ではなく最小化される）
    """
    at_zero = tensor(loss_of(functions, X_BINARY, X_BINARY, ZEROS, ZEROS), "vae_loss", shape=())
    expect(abs(at_zero.item()) <= ATOL, t("再構成が完全で μ = 0、logvar = 0 のとき、損失は 0 になるはずです"
                                          "（KL(0, 0) = 0）が、{value:.4g} になっています",
                                          "for a perfect reconstruction with μ = 0 and logvar = 0 the loss must be 0 "
                                          "(KL(0, 0) = 0), it is {value:.4g}", value=at_zero.item()))
    moved = tensor(loss_of(functions, X_BINARY, X_BINARY, MU_AWAY, ZEROS), "vae_loss", shape=())
    # KL(μ ≈ 1, logvar = 0) = ½·Σμ² ≥ 16 here: far above the tolerance
    expect(abs(moved.item() - at_zero.item()) > ATOL,
           t("μ を 0 から動かしても損失が変わりません（{value:.4g} のまま）。KL 項が抜けているか、μ に依存していません"
             "（和の中の − μ²）",
             "the loss does not change when μ moves away from 0 (it stays {value:.4g}): the KL term is missing or "
             "does not depend on μ (the − μ² inside the sum)", value=moved.item()))
    expect(moved.item() > at_zero.item() + ATOL,
           t("μ が 0 から離れると損失は大きくなるはずです（{before:.4g} から {after:.4g} に変化しました）。KL 項の"
             "符号を確認してください",
             "the loss must grow when μ moves away from 0 (it went from {before:.4g} to {after:.4g}): "
             "check the sign of the KL term", before=at_zero.item(), after=moved.item()))
