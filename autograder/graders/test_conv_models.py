"""課題 2.3 ``ConvAutoEncoder`` and 課題 2.4 ``ConvVAE``: structure, shapes, range, no bypass, and training.

Each check runs once per model, under that model's question id:

* ``ConvAutoEncoder(in_channels, image_size, latent_dim=2)``: ``forward(x)`` → (encoded, decoded);
* ``ConvVAE(in_channels, image_size, latent_dim=2)``: ``forward(x)`` → (reconstructed, mu, logvar).

"No bypass": a forward hook on ``model.decoder`` records what went in and came out; the returned
image must be the decoder's output and the decoder's input a (B, 2) latent.
"""
import pytest
import torch

from autograder import config
from autograder.graders.trained import check_score
from autograder.i18n import t
from autograder.oracle import Attempt, close, expect, items, tensor

SIZES = ((1, 28), (3, 32))
BATCH = 4
MODELS = {
    "ConvAutoEncoder": {"question": "conv_autoencoder", "outputs": ("encoded", "decoded")},
    "ConvVAE": {"question": "conv_vae", "outputs": ("reconstructed", "mu", "logvar")},
}
parametrize = pytest.mark.parametrize("name", [
    pytest.param(name, marks=pytest.mark.question(spec["question"]), id=spec["question"]) for name, spec in MODELS.items()
])
# The exercise is a *convolutional* model: an encoder without working convolutions voids the question, however well
# it trains (an MLP beats the conv models' limits under the same budget).
parametrize_voiding = pytest.mark.parametrize("name", [
    pytest.param(name, marks=pytest.mark.question(spec["question"], voids=True), id=spec["question"])
    for name, spec in MODELS.items()
])


@pytest.fixture(scope="module")
def attempts() -> dict:
    """Inspection reports, made once per model and shared by its checks."""
    return {}


def inspect(student, name: str, attempts: dict) -> list[dict]:
    """Build the model for (1, 28, 28) and (3, 32, 32) inputs and run it once each (cached per model)."""
    if name not in attempts:
        def step():
            reports = []
            for channels, size in SIZES:
                x = torch.rand(BATCH, channels, size, size, generator=torch.Generator().manual_seed(size))
                report = student.request("model", name=name, kwargs={"in_channels": channels, "image_size": size},
                                         inputs=[x], trusted=config.trusted(MODELS[name]["question"]))
                reports.append({"x": x, **report})
            return reports
        attempts[name] = Attempt(step)
    return attempts[name].get()


def image_and_latent(name: str, run: dict, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The returned image and latent tensors, after the layered type and shape checks."""
    labels = MODELS[name]["outputs"]
    parts = items({"info": run["info"], "value": run["outputs"]}, f"{name}.forward", len(labels), ", ".join(labels))
    shape = tuple(x.shape)
    if name == "ConvAutoEncoder":
        latents = [tensor(parts[0], _for_input("encoded", shape), shape=(BATCH, 2))]
        image = tensor(parts[1], _for_input("decoded", shape), shape=shape)
    else:
        image = tensor(parts[0], _for_input("reconstructed", shape), shape=shape)
        latents = [tensor(p, _for_input(label, shape), shape=(BATCH, 2)) for p, label in zip(parts[1:], labels[1:])]
    return image, latents


def _for_input(output: str, shape: tuple[int, ...]):
    return t("入力 {shape} に対する {output}", "{output} for input {shape}", output=output, shape=shape)


@parametrize_voiding
def test_encoder_has_conv2d(student, name, attempts, training_plan):
    """The model has self.encoder and self.decoder, and the encoder contains nn.Conv2d.

    ja: モデルが self.encoder と self.decoder をもち、エンコーダに nn.Conv2d が含まれている
    """
    weights = training_plan.weights(MODELS[name]["question"])  # plain data: the layer list below is a probe's word
    if weights is not None:
        kernels = [key for key, value in weights.items() if key.startswith("encoder.") and value.dim() == 4]
        expect(bool(kernels), t("学習後の {name} の重みに、encoder の畳み込みカーネル（encoder. で始まる 4 次元の重み）が"
                                "ありません。エンコーダは nn.Conv2d で作る必要があります",
                                "{name}'s trained weights hold no convolution kernel under encoder. (a 4-D weight): the "
                                "encoder must be built with nn.Conv2d", name=name))
        change = _without_kernels(student, name, weights, kernels)
        expect(change >= CONV_INFLUENCE, t("{name} のエンコーダの畳み込みカーネルを 0 にしても、潜在変数がほとんど変わりません"
                                           "（変化はばらつきの {change:.1%}）。畳み込み層は飾りではなく、画像から潜在変数を"
                                           "作る経路になっている必要があります",
                                           "zeroing {name}'s encoder convolution kernels hardly changes its latents (by "
                                           "{change:.1%} of their spread): the convolutions must be the encoder's path "
                                           "from the image to the latent, not an ornament", name=name, change=change))
    for report in inspect(student, name, attempts):
        for part in ("encoder", "decoder"):
            expect(report[f"{part}_layers"] is not None, t("{name} には nn.Module の属性 self.{part} が必要です",
                                                           "{name} needs an nn.Module attribute self.{part}",
                                                           name=name, part=part))
        expect("Conv2d" in report["encoder_layers"], t("{name}.encoder に nn.Conv2d の層がありません。エンコーダは"
                                                       "畳み込み層で作る必要があります",
                                                       "{name}.encoder has no nn.Conv2d layer: the encoder must be "
                                                       "convolutional", name=name))
        if name == "ConvVAE":
            expect({"fc_mu", "fc_logvar"} <= set(report["children"]), t("ConvVAE には self.fc_mu と self.fc_logvar が"
                                                                        "必要です",
                                                                        "ConvVAE needs self.fc_mu and self.fc_logvar"))


CONV_INFLUENCE = 0.2  # the reference's latents change by about their whole spread when its kernels are zeroed


def _without_kernels(student, name: str, weights: dict, kernels: list[str]) -> float:
    """How much the trained encoder's latents of 64 random images move when its convolution kernels are zeroed,
    as a share of their spread (weights prepared here, on the trusted side; the images are not held-out ones)."""
    question = MODELS[name]["question"]
    x = torch.rand(64, 1, 28, 28, generator=torch.Generator().manual_seed(6))
    kind = "ae" if name == "ConvAutoEncoder" else "vae"
    common = {"name": name, "kind": kind, "kwargs": {"in_channels": 1, "image_size": 28}, "seed": 0, "x": x,
              "stand_in": config.trusted(question)}
    zeroed = {key: torch.zeros_like(value) if key in kernels else value for key, value in weights.items()}
    latents = [student.request("encode", state=state, **common).get("latents") for state in (weights, zeroed)]
    if not all(isinstance(part, list) and part and isinstance(part[0], torch.Tensor) for part in latents):
        return 1.0  # nothing to compare: the other checks say what is wrong
    trained, without = latents[0][0].double(), latents[1][0].double()
    if trained.shape != without.shape:
        return 1.0
    spread = (trained - trained.mean(dim=0)).norm(dim=1).mean()
    return float((without - trained).norm(dim=1).mean() / spread) if spread > 0 else 0.0


@parametrize
def test_shapes_for_mnist_and_cifar(student, name, attempts):
    """Outputs have the right shapes for (1, 28, 28) and (3, 32, 32) inputs.

    ja: (1, 28, 28) と (3, 32, 32) の入力に対して、出力が正しい形状になる
    """
    for report in inspect(student, name, attempts):
        image_and_latent(name, report["runs"][0], report["x"])


@parametrize
def test_outputs_in_unit_interval(student, name, attempts):
    """The reconstructed images lie in [0, 1] (the decoder ends with a Sigmoid).

    ja: 再構成画像の値が [0, 1] の範囲にある（デコーダの最後が Sigmoid）
    """
    for report in inspect(student, name, attempts):
        image, _ = image_and_latent(name, report["runs"][0], report["x"])
        low, high = image.min().item(), image.max().item()
        expect(low >= 0 and high <= 1, t("出力画像の値の範囲が [0, 1] ではなく [{low:.3g}, {high:.3g}] です。デコーダの"
                                         "最後に nn.Sigmoid() を置いてください",
                                         "the output images span [{low:.3g}, {high:.3g}], not [0, 1]: end the decoder "
                                         "with nn.Sigmoid()", low=low, high=high))


@parametrize
def test_reconstruction_goes_through_latent(student, name, attempts):
    """The image comes out of self.decoder, fed a (B, 2) latent; the decoder alone maps latents to images.

    ja: 画像は (B, 2) の潜在変数を入力された self.decoder から出力され、デコーダだけで潜在変数を画像に写せる
    """
    for report in inspect(student, name, attempts):
        run, x = report["runs"][0], report["x"]
        image, latents = image_and_latent(name, run, x)
        expect(run["decoder_input"] is not None, t("入力 {shape} に対して forward が self.decoder を呼び出していません",
                                                   "forward never calls self.decoder for input {shape}",
                                                   shape=tuple(x.shape)))
        expect(isinstance(run["decoder_input"], torch.Tensor) and tuple(run["decoder_input"].shape) == (BATCH, 2),
               t("self.decoder に 2 次元の潜在変数が渡されていません（形状 (B, 2) のテンソルが必要です）",
                 "self.decoder is not fed the 2-D latent (expected a (B, 2) tensor)"))
        output = run["decoder_output"]
        expect(isinstance(output, torch.Tensor) and output.numel() == image.numel()
               and close(output.reshape(image.shape), image, 1e-5, 1e-6),
               t("返された画像がデコーダの出力ではありません。再構成は潜在変数を通る必要があります（x からボトルネックを"
                 "迂回する経路は使えません）",
                 "the returned image is not the decoder's output: the reconstruction must go through the latent "
                 "(no path from x around the bottleneck)"))
        if name == "ConvAutoEncoder":
            expect(close(run["decoder_input"], latents[0], 1e-5, 1e-6), t("デコーダに `encoded` が渡されていません",
                                                                          "the decoder is not fed `encoded`"))
        prior = {"info": run.get("decoded_prior_info", {"type": "NoneType"}), "value": run.get("decoded_prior")}
        decoded = tensor(prior, t("形状 ({batch}, 2) の z に対する {name}.decoder(z)",
                                  "{name}.decoder(z) for z of shape ({batch}, 2)", name=name, batch=BATCH),
                         shape=tuple(x.shape))
        expect(bool((decoded >= 0).all() and (decoded <= 1).all()), t("{name}.decoder(z) の値が [0, 1] の範囲にありません",
                                                                      "{name}.decoder(z) is not in [0, 1]", name=name))


@pytest.mark.question("conv_vae")
def test_conv_vae_samples_its_latent(student, attempts):
    """ConvVAE.forward samples z while training, from the mu and logvar it returns (in that order).

    Two passes under two random states give two reconstructions; and when forward calls
    ``reparameterize``, it is not called with the returned mu and logvar swapped.

    ja: 学習モードの ConvVAE.forward は、返す mu と logvar（この順）から z をサンプリングする
    """
    for report in inspect(student, "ConvVAE", attempts):
        run, x = report["runs"][0], report["x"]
        image_and_latent("ConvVAE", run, x)
        _check_sampled_with_returned(run)
        first, second = run.get("resampled") or (None, None)
        expect(isinstance(first, torch.Tensor) and isinstance(second, torch.Tensor) and first.shape == second.shape,
               t("学習モードの ConvVAE.forward が、最初の戻り値として再構成画像を返しませんでした",
                 "ConvVAE.forward in training mode did not return a reconstructed image first"))
        expect(not close(first, second, 1e-6, 1e-7),
               t("学習モードで 2 回 forward を実行すると同じ再構成になります。forward では "
                 "z = reparameterize(mu, logvar) をサンプリングする必要があります（mu をそのままデコードするのは評価時"
                 "だけです）",
                 "in training mode two forward passes give the same reconstruction: forward must sample "
                 "z = reparameterize(mu, logvar) (decoding mu is for evaluation only)"))


@parametrize
def test_gradients_reach_every_part(student, name):
    """One step of the training loss sends a gradient to the encoder, the decoder (and fc_mu, fc_logvar).

    ja: 学習の損失 1 ステップ分の勾配が、エンコーダ・デコーダ（と fc_mu, fc_logvar）のすべてのパラメータに届く
    """
    question = MODELS[name]["question"]
    x = torch.rand(BATCH, 1, 28, 28, generator=torch.Generator().manual_seed(5))
    grads = student.request("parameter_gradients", name=name, kind="ae" if name == "ConvAutoEncoder" else "vae",
                            kwargs={"in_channels": 1, "image_size": 28}, x=x, trusted=config.trusted(question))
    parts = ("encoder.", "decoder.") + (("fc_mu.", "fc_logvar.") if name == "ConvVAE" else ())
    cut = [key for key, value in grads.items() if key.startswith(parts) and value is None]
    expect(not cut, t("学習の損失から {names} に勾配が届きません（{count} 個のパラメータ）。.detach()、torch.no_grad()、"
                      ".data などで計算グラフが切れているため、これらは学習されません",
                      "no gradient reaches {names} from the training loss ({count} parameters): a .detach(), "
                      "torch.no_grad() or .data cuts them off the graph, so they never learn",
                      names=_some(cut), count=len(cut)))
    zero = [key for key, value in grads.items() if key.startswith(parts) and not value]
    expect(not zero, t("学習の損失から {names} に届く勾配がちょうど 0 です（{count} 個のパラメータ）。これらは計算グラフ"
                       "にはつながっていますが、途中で 0 が掛けられているか、入力がすべて 0 以下の ReLU を通っています"
                       "（例: 2 次元の潜在変数の直後や Sigmoid の直前の ReLU）。これでは学習されません",
                       "the gradient reaching {names} from the training loss is exactly 0 ({count} parameters): they "
                       "are on the graph, but multiplied by 0 or behind a ReLU whose inputs are all ≤ 0 (e.g. a ReLU "
                       "right after the 2-D latent or right before the Sigmoid), so they never learn",
                       names=_some(zero), count=len(zero)))


def _some(names: list[str]) -> str:
    return ", ".join(sorted(names)[:4]) + (", …" if len(names) > 4 else "")


@parametrize
def test_trains_to_calibrated_score(training_plan, name, calibration, pictures):
    """Trained by the grader's loop on MNIST, images decoded from held-out latents score within the calibrated limit.

    ja: 採点側の学習ループで MNIST を学習し、評価用データの潜在変数からデコードした画像の評価値が較正済みの基準値以内に入る
    """
    question = MODELS[name]["question"]
    check_score(training_plan.result(question), question, calibration, pictures)


def _check_sampled_with_returned(run: dict) -> None:
    """Fail when forward's call reparameterize(a, b) got the returned (logvar, mu) rather than (mu, logvar).

    Only that swap is named (the evidence is exact); a call with other tensors (e.g. a clamped logvar)
    is left to the training check.
    """
    sampled_with, outputs = run.get("sampled_with"), run.get("train_outputs")
    if not sampled_with or not isinstance(outputs, list) or len(outputs) != 3:
        return
    (a, b), (mu, logvar) = sampled_with, outputs[1:]
    if not all(isinstance(v, torch.Tensor) and v.shape == (BATCH, 2) for v in (a, b, mu, logvar)):
        return
    swapped = close(a, logvar, 1e-5, 1e-6) and close(b, mu, 1e-5, 1e-6)
    expect(not swapped or close(mu, logvar, 1e-5, 1e-6),
           t("forward が reparameterize に、返す mu と logvar を入れ替えて渡しています（z をサンプリングする "
             "reparameterize(mu, logvar) の引数か、戻り値 (reconstructed, mu, logvar) の順序が逆です）。学習の KL 項は"
             "返された mu と logvar で計算されるため、サンプリングと食い違います",
             "forward passes the mu and logvar it returns to reparameterize swapped (either the call "
             "reparameterize(mu, logvar) that samples z or the returned (reconstructed, mu, logvar) has them in the "
             "wrong order): the training's KL term uses the returned mu and logvar, so it disagrees with the sampling"))
