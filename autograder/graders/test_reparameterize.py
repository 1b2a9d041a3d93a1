"""課題 2.1 ``reparameterize(mu, logvar)``: z = μ + σ·ε with σ = exp(½·logvar), ε ~ N(0, I).

Property checks, no stored numbers: ∂z/∂μ = 1 and ∂z/∂logvar = ½·(z − μ); over many draws
mean(z) ≈ μ and std(z) ≈ exp(½·logvar); the standardised noise is N(0, 1) (Kolmogorov–Smirnov).
"""
import math

import pytest
import torch
from scipy import stats

from autograder.i18n import t, verbatim
from autograder.oracle import close, compare, expect, fail, result_of, tensor

pytestmark = pytest.mark.question("reparameterize")

N_DRAWS = 20_000
MU = torch.tensor([1.0, -2.0])
LOGVAR = torch.tensor([math.log(4.0), -1.0])  # σ = (2, 0.61); exp(logvar) = (4, 0.37); |logvar| = (1.39, 1)
SIGMA = torch.exp(0.5 * LOGVAR)
CORRELATION_LIMIT = 0.05  # 20,000 independent pairs: |r| < 0.05 with probability 1 − 1e-12
KS_LIMIT = 0.02  # the KS distance of 40,000 true N(0,1) draws is < 0.011 with probability 1 − 1e-4


def draw(functions, n: int = N_DRAWS, seed: int = 0) -> torch.Tensor:
    """z for n copies of (MU, LOGVAR); the worker seeds torch's global generator with ``seed`` first."""
    result = functions.request("call", name="reparameterize", args=[MU.expand(n, 2).clone(), LOGVAR.expand(n, 2).clone()],
                             seed=seed)
    return tensor(result, "z", shape=(n, 2), dtype="float32").double()


def test_keeps_shape_dtype_and_device(functions, device):
    """z has the shape, dtype and device of mu.

    ja: z は mu と同じ形状・dtype・デバイスをもつ
    """
    for shape, dtype in [((64, 2), torch.float32), ((8, 5), torch.float64)]:
        mu, logvar = torch.randn(shape, dtype=dtype), torch.randn(shape, dtype=dtype)
        result = functions.request("call", name="reparameterize", args=[mu, logvar], device=device)
        z = tensor(result, "z", shape=shape, dtype=str(dtype).replace("torch.", ""), device=device)
        # a function that returns mu itself (or a copy) has the right shape but is no answer: no points for it
        expect(not torch.equal(z.cpu(), mu), t("z が mu と同じです。ノイズ eps·std が加わっていません",
                                               "z equals mu: the noise eps·std is not added"))


def test_gradients_reach_mu_and_logvar(functions):
    """Gradients flow from z to mu and to logvar: ∂z/∂μ = 1, ∂z/∂logvar = ½·(z − μ).

    ja: z から mu と logvar へ勾配が流れる: ∂z/∂μ = 1、∂z/∂logvar = ½·(z − μ)
    """
    generator = torch.Generator().manual_seed(1)
    mu, logvar = torch.randn(16, 2, generator=generator), torch.randn(16, 2, generator=generator)
    weight = torch.randn(16, 2, generator=generator)
    result = functions.request("gradients", name="reparameterize", args=[mu, logvar], weight=weight)
    z = tensor(result, "z", shape=(16, 2))
    expect(not close(z, mu, 0.0, 0.0), t("z が mu と等しくなっています。ノイズの項 std * eps が抜けています"
                                         "（z = mu + std * eps）",
                                         "z equals mu: the noise term std * eps is missing (z = mu + std * eps)"))
    expect(result["attached"], t("z が計算グラフから切り離されているため、mu にも logvar にも勾配が届きません"
                                 "（detach()、.data、torch.no_grad() を使ったり、numpy を経由したりしていませんか？）",
                                 "z is cut off from the graph, so no gradient reaches mu or logvar "
                                 "(detach(), .data, torch.no_grad() or a numpy round trip?)"))
    grad_mu, grad_logvar = result["grads"]
    expect(grad_mu is not None, t("mu に勾配が届きません。z は mu から計算する必要があります（z = mu + std * eps）",
                                  "no gradient reaches mu: z must be computed from mu (z = mu + std * eps)"))
    expect(grad_logvar is not None, t("logvar に勾配が届きません。z は std = torch.exp(0.5 * logvar) を通して logvar に"
                                      "依存し、サンプリングするのは eps だけでなければなりません（z = mu + std * eps の "
                                      "std が抜けている、detach されている、または torch 以外で計算されていませんか？）",
                                      "no gradient reaches logvar: z must depend on logvar through std = "
                                      "torch.exp(0.5 * logvar), with only eps sampled (is std missing from "
                                      "z = mu + std * eps, detached, or computed outside torch?)"))
    compare(result_of(grad_mu), weight, "∂z/∂mu", rtol=1e-4, atol=1e-5, diagnoses=[
        (torch.zeros_like(weight), t("mu に勾配が届きません", "no gradient reaches mu"))])
    expected = weight * 0.5 * (z - mu)
    compare(result_of(grad_logvar), expected, "∂z/∂logvar", rtol=1e-3, atol=1e-5, diagnoses=[
                (weight * (z - mu), t("∂z/∂logvar が (z − μ) になっており、std = exp(logvar) としているようです。"
                                      "std は exp(0.5·logvar) です",
                                      "∂z/∂logvar is (z − μ), as if std = exp(logvar): std must be exp(0.5·logvar)")),
                (weight * torch.ones_like(z), t("∂z/∂logvar が 1 です。logvar がノイズのスケールに使われず、z に"
                                                "そのまま足されています",
                                                "∂z/∂logvar is 1: logvar is added to z instead of scaling the noise")),
                (torch.zeros_like(weight), t("logvar に勾配が届きません（eps に計算グラフから切り離した std を"
                                             "掛けていませんか？）",
                                             "no gradient reaches logvar (is eps multiplied by a detached std?)")),
            ])


def test_mean_and_std_match_mu_and_sigma(functions):
    """Over 20,000 draws, mean(z) ≈ μ and std(z) ≈ exp(½·logvar).

    ja: 20,000 回のサンプルで mean(z) ≈ μ、std(z) ≈ exp(½·logvar) となる
    """
    z = draw(functions)
    std, mean = z.std(dim=0), z.mean(dim=0)
    expect(bool((std > 1e-6).all()), t("z がサンプルごとに変化しません。ノイズ eps が抜けています（z = mu + std * eps "
                                       "です）", "z does not vary between draws: the noise eps is missing "
                                                "(z = mu + std * eps)"))
    candidates = [
        (LOGVAR.exp(), t("z の広がり（標準偏差）が exp(logvar) になっています。exp(0.5·logvar)（つまり sqrt(exp(logvar))）"
                         "である必要があります",
                         "the spread of z is exp(logvar), it must be exp(0.5·logvar) (that is, sqrt(exp(logvar)))")),
        (LOGVAR.abs(), t("logvar がそのまま標準偏差として使われています。std は exp(0.5·logvar) です",
                         "logvar is used as the standard deviation; std must be exp(0.5·logvar)")),
        (torch.exp(-0.5 * LOGVAR), t("z の広がりが exp(−0.5·logvar) = 1/σ になっています。指数の符号が逆か、eps を std で"
                                     "割っています（z = mu + std * eps）",
                                     "the spread of z is exp(−0.5·logvar) = 1/σ: the exponent's sign is wrong, or eps "
                                     "is divided by std (z = mu + std * eps)")),
        (0.5 * LOGVAR.abs(), t("0.5·logvar が標準偏差として使われています。std は exp(0.5·logvar) です",
                               "0.5·logvar is used as the standard deviation; std must be exp(0.5·logvar)")),
        (torch.ones(2), t("z の広がりが logvar に依存していません（std は exp(0.5·logvar) です）",
                          "the spread of z does not depend on logvar (std must be exp(0.5·logvar))")),
        (SIGMA / math.sqrt(12), t("ノイズの広がりが一様分布 U(0, 1) のものになっています。rand_like ではなく "
                                  "torch.randn_like を使ってください",
                                  "the noise has the spread of a uniform U(0, 1): use torch.randn_like, "
                                  "not rand_like")),
    ]
    if not torch.allclose(std.float(), SIGMA, rtol=0.03):
        for wrong, message in candidates:
            if torch.allclose(std.float(), wrong, rtol=0.03):
                fail(message)
        fail(t("std(z) が ({s0:.3f}, {s1:.3f}) です。exp(0.5·logvar) = ({e0:.3f}, {e1:.3f}) になるはずです",
               "std(z) is ({s0:.3f}, {s1:.3f}), expected exp(0.5·logvar) = ({e0:.3f}, {e1:.3f})",
               s0=std[0].item(), s1=std[1].item(), e0=SIGMA[0].item(), e1=SIGMA[1].item()))
    limit = 5 * SIGMA.double() / math.sqrt(N_DRAWS)
    expect(not bool((mean.abs() < limit).all()), t("mean(z) が 0 付近（{m0:.3f}, {m1:.3f}）で、mu = ({mu0:.1f}, {mu1:.1f}) "
                                                   "ではありません。z に mu が足されていません（z = mu + std * eps）",
                                                   "mean(z) is near 0 ({m0:.3f}, {m1:.3f}), not mu = ({mu0:.1f}, "
                                                   "{mu1:.1f}): mu is not added to z (z = mu + std * eps)",
                                                   m0=mean[0].item(), m1=mean[1].item(), mu0=MU[0].item(),
                                                   mu1=MU[1].item()))
    expect(bool(((mean - MU.double()).abs() < limit).all()),
           t("mean(z) が ({m0:.3f}, {m1:.3f}) です。mu = ({mu0:.1f}, {mu1:.1f}) になるはずです。ノイズの平均は 0 で"
             "なければなりません（z = mu + std * eps）",
             "mean(z) is ({m0:.3f}, {m1:.3f}), expected mu = ({mu0:.1f}, {mu1:.1f}): "
             "the noise must have mean 0 (z = mu + std * eps)",
             m0=mean[0].item(), m1=mean[1].item(), mu0=MU[0].item(), mu1=MU[1].item()))


def test_noise_is_standard_normal(functions):
    """The noise is Gaussian (torch.randn_like), independent across dimensions and drawn afresh on every call.

    ja: ノイズは正規分布（torch.randn_like）に従い、次元ごとに独立で、呼び出しのたびに新しく引かれる
    """
    z = draw(functions)
    expect(bool((z.std(dim=0) > 1e-6).all()), t("z がサンプルごとに変化しません。ノイズ eps が抜けています",
                                                "z does not vary between draws: the noise eps is missing"))
    again = draw(functions, seed=1)
    expect(not torch.equal(z, again), t("乱数の状態を変えて呼び出しても z が毎回同じです。関数の中でシードを固定した"
                                        "生成器を使わず、呼び出しのたびに torch.randn_like(std) で新しいノイズを引いて"
                                        "ください",
                                        "z is the same on every call (with a different random state): draw fresh "
                                        "noise each time with torch.randn_like(std), not from a generator seeded "
                                        "inside"))
    correlation = torch.corrcoef(((z - z.mean(dim=0)) / z.std(dim=0)).T)[0, 1].item()
    expect(abs(correlation) < CORRELATION_LIMIT,
           t("潜在変数の 2 つの次元のノイズが相関しています（相関係数 {correlation:.2f}）。行ごとに 1 つではなく、"
             "要素ごとに独立な ε を引いてください（torch.randn_like(std)）",
             "the noise of the two latent dimensions is correlated ({correlation:.2f}): draw one independent ε per "
             "element (torch.randn_like(std)), not one per row", correlation=correlation))
    standardised = ((z - z.mean(dim=0)) / z.std(dim=0)).flatten().numpy()
    distance = stats.kstest(standardised, "norm").statistic
    uniform = stats.kstest(standardised, "uniform", args=(-math.sqrt(3), 2 * math.sqrt(3))).statistic
    if distance > KS_LIMIT:
        hint = verbatim("")
        if uniform < KS_LIMIT:
            hint = t("一様分布のように見えます。torch.rand_like ではなく torch.randn_like を使ってください。",
                     " It looks uniform: use torch.randn_like, not torch.rand_like.")
        fail(t("ノイズが正規分布に従っていません（KS 距離 {distance:.3f} > {limit}）。{hint}",
               "the noise is not normally distributed (KS distance {distance:.3f} > {limit}).{hint}",
               distance=distance, limit=KS_LIMIT, hint=hint))
