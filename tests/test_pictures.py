"""Pictures on the feedback page (autograder/pictures.py): drawn on the trusted side, embedded, small."""
from __future__ import annotations

import base64
import io

import torch
from PIL import Image

from autograder import config, pictures, report
from autograder.bottleneck import TrainedModel
from autograder.engine import score
from autograder.i18n import t


def _png(uri: str) -> Image.Image:
    assert uri.startswith("data:image/png;base64,")
    return Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))


def test_a_trained_model_gets_three_pictures():
    x = torch.rand(32, 1, 28, 28)
    trained = TrainedModel(history=[1.0], forward_info={}, latents=[torch.randn(32, 2)], images=torch.rand(32, 784),
                           prior_images=torch.rand(16, 784))
    drawn: list[dict] = []
    pictures.add_trained(drawn, "vae_training", "VAE", x, torch.randint(0, 10, (32,)), trained)
    assert [p["question"] for p in drawn] == ["vae_training"] * 3
    for picture in drawn:
        image = _png(picture["uri"])
        assert image.width > 100 and image.height > 50
        assert picture["caption_ja"] != picture["caption_en"]


def test_a_picture_that_cannot_be_drawn_is_left_out():
    drawn: list[dict] = []
    pictures.add(drawn, "kmeans", t("図", "a figure"), lambda: pictures.scatter(torch.randn(5, 1, 3), torch.zeros(4),
                                                                               "odd", "cluster"))
    assert drawn == []
    trained = TrainedModel(history=[], forward_info={}, latents=[], images=torch.rand(8, 5), prior_images=None)
    pictures.add_trained(drawn, "conv_vae", "ConvVAE", torch.rand(8, 1, 28, 28), torch.zeros(8), trained)
    assert drawn == []  # decoded images of an impossible shape: no picture, and no error


def test_feedback_page_embeds_each_question_s_pictures(tmp_path):
    uri = pictures.scatter(torch.randn(50, 2), torch.randint(0, 10, (50,)), "latents", "digit")
    result = score({"notebook": "x.ipynb", "checks": [
        {"id": "a", "question": "kmeans", "title": "t", "passed": True, "message": ""}], "pictures": [
        {"question": "kmeans", "caption_ja": "潜在空間の散布図", "caption_en": "scatter of the latent space", "uri": uri},
        {"question": "kmeans", "caption_ja": "悪い", "caption_en": "bad", "uri": "javascript:alert(1)"}]},
        config.questions())
    page_path = tmp_path / "feedback.html"
    report.write_feedback_html(page_path, "amy", result, lang="both")
    page = page_path.read_text(encoding="utf-8")
    assert page.count("<img ") == 1 and uri in page and "javascript:" not in page
    assert "潜在空間の散布図" in page and "scatter of the latent space" in page
    report.write_feedback_html(page_path, "amy", result, lang="en")
    assert "潜在空間の散布図" not in page_path.read_text(encoding="utf-8")
