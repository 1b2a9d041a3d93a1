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
        latents = [tensor(parts[0], f"encoded for input {shape}", shape=(BATCH, 2))]
        image = tensor(parts[1], f"decoded for input {shape}", shape=shape)
    else:
        image = tensor(parts[0], f"reconstructed for input {shape}", shape=shape)
        latents = [tensor(p, f"{label} for input {shape}", shape=(BATCH, 2)) for p, label in zip(parts[1:], labels[1:])]
    return image, latents


@parametrize
def test_encoder_has_conv2d(student, name, attempts):
    """The model has self.encoder and self.decoder, and the encoder contains nn.Conv2d."""
    for report in inspect(student, name, attempts):
        expect(report["encoder_layers"] is not None, f"{name} needs an nn.Module attribute self.encoder")
        expect(report["decoder_layers"] is not None, f"{name} needs an nn.Module attribute self.decoder")
        expect("Conv2d" in report["encoder_layers"], f"{name}.encoder has no nn.Conv2d layer: the encoder must be "
                                                     "convolutional")
        if name == "ConvVAE":
            expect({"fc_mu", "fc_logvar"} <= set(report["children"]), "ConvVAE needs self.fc_mu and self.fc_logvar")


@parametrize
def test_shapes_for_mnist_and_cifar(student, name, attempts):
    """Outputs have the right shapes for (1, 28, 28) and (3, 32, 32) inputs."""
    for report in inspect(student, name, attempts):
        image_and_latent(name, report["runs"][0], report["x"])


@parametrize
def test_outputs_in_unit_interval(student, name, attempts):
    """The reconstructed images lie in [0, 1] (the decoder ends with a Sigmoid)."""
    for report in inspect(student, name, attempts):
        image, _ = image_and_latent(name, report["runs"][0], report["x"])
        low, high = image.min().item(), image.max().item()
        expect(low >= 0 and high <= 1, f"the output images span [{low:.3g}, {high:.3g}], not [0, 1]: end the decoder "
                                       "with nn.Sigmoid()")


@parametrize
def test_reconstruction_goes_through_latent(student, name, attempts):
    """The image comes out of self.decoder, fed a (B, 2) latent; the decoder alone maps latents to images."""
    for report in inspect(student, name, attempts):
        run, x = report["runs"][0], report["x"]
        image, latents = image_and_latent(name, run, x)
        expect(run["decoder_input"] is not None, f"forward never calls self.decoder for input {tuple(x.shape)}")
        expect(isinstance(run["decoder_input"], torch.Tensor) and tuple(run["decoder_input"].shape) == (BATCH, 2),
               "self.decoder is not fed the 2-D latent (expected a (B, 2) tensor)")
        output = run["decoder_output"]
        expect(isinstance(output, torch.Tensor) and output.numel() == image.numel()
               and close(output.reshape(image.shape), image, 1e-5, 1e-6),
               "the returned image is not the decoder's output: the reconstruction must go through the latent "
               "(no path from x around the bottleneck)")
        if name == "ConvAutoEncoder":
            expect(close(run["decoder_input"], latents[0], 1e-5, 1e-6), "the decoder is not fed `encoded`")
        prior = {"info": run.get("decoded_prior_info", {"type": "NoneType"}), "value": run.get("decoded_prior")}
        decoded = tensor(prior, f"{name}.decoder(z) for z of shape ({BATCH}, 2)", shape=tuple(x.shape))
        expect(bool((decoded >= 0).all() and (decoded <= 1).all()), f"{name}.decoder(z) is not in [0, 1]")


@pytest.mark.question("conv_vae")
def test_conv_vae_samples_its_latent(student, attempts):
    """ConvVAE.forward samples z while training: two passes under two random states give two reconstructions."""
    for report in inspect(student, "ConvVAE", attempts):
        run, x = report["runs"][0], report["x"]
        image_and_latent("ConvVAE", run, x)
        first, second = run.get("resampled") or (None, None)
        expect(isinstance(first, torch.Tensor) and isinstance(second, torch.Tensor) and first.shape == second.shape,
               "ConvVAE.forward in training mode did not return a reconstructed image first")
        expect(not close(first, second, 1e-6, 1e-7),
               "in training mode two forward passes give the same reconstruction: forward must sample "
               "z = reparameterize(mu, logvar) (decoding mu is for evaluation only)")


@parametrize
def test_trains_to_calibrated_score(training_plan, name, calibration):
    """Trained by the grader's loop on MNIST, images decoded from held-out latents score within the calibrated limit."""
    question = MODELS[name]["question"]
    check_score(training_plan.result(question), question, calibration)
