"""Pictures for the feedback page, drawn on the trusted side from tensors the grader already holds.

Every picture is made in the runner (never in the student's worker) from plain tensors that came back
over the data-only channel: the held-out images the grader chose, the images the student's trained
decoder drew from the latents of those images, the latents themselves, decodes of prior samples and the
k-means labels. Each is returned as a ``data:image/png;base64,…`` URI, so the page embeds it and needs no
other file; pictures are small (about 20–60 KB each) to keep a page well under 1 MB.
"""
from __future__ import annotations

import base64
import io
from typing import TYPE_CHECKING, Callable

import numpy as np
import torch

if TYPE_CHECKING:
    from autograder.bottleneck import TrainedModel
    from autograder.i18n import Message

DPI = 72
SCALE = 2  # image_rows: screen pixels per image pixel
GAP = 2  # image_rows: white pixels between images


def _png(figure) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, pil_kwargs={"optimize": True})
    plt.close(figure)
    return _data_url(buffer)


def _data_url(png: io.BytesIO) -> str:
    """The PNG written into ``png`` as a ``data:`` URL for the feedback page."""
    return "data:image/png;base64," + base64.b64encode(png.getvalue()).decode("ascii")


def _figure(width: float, height: float):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.figure(figsize=(width, height))


def _image(tensor: torch.Tensor) -> np.ndarray:
    """(C, H, W) in [0, 1] -> an array (H, W), or (H, W, 3) for colour images."""
    array = tensor.detach().float().clamp(0, 1).cpu().numpy()
    return array[0] if array.shape[0] == 1 else array.transpose(1, 2, 0)


def _as_images(batch: torch.Tensor) -> torch.Tensor:
    """A batch of images as (N, C, H, W): flat (N, H·W) rows are taken as square one-channel images."""
    if batch.dim() == 2:
        side = int(round(batch.shape[1] ** 0.5))
        return batch.reshape(len(batch), 1, side, side)
    return batch.unsqueeze(1) if batch.dim() == 3 else batch


def image_rows(rows: list[torch.Tensor], n: int = 8) -> str:
    """Rows of ``n`` images each (e.g. held-out digits over what the decoder drew from their latents), tiled on a
    white grid with numpy and each pixel drawn as ``SCALE`` × ``SCALE``; the caption says what each row is.

    Tiled directly rather than through matplotlib: 16 small axes cost about 0.4 s a picture, this about 10 ms.
    """
    from PIL import Image

    tiles = [_as_images(images)[:n] for images in rows]
    shapes = {tuple(images.shape[1:]) for images in tiles}
    if len(shapes) != 1:
        raise ValueError(f"rows of images of different shapes: {sorted(shapes)}")
    channels, height, width = shapes.pop()
    canvas = np.ones((len(tiles) * (height + GAP) + GAP, n * (width + GAP) + GAP, 3))
    for r, images in enumerate(tiles):
        for c, image in enumerate(images):
            top, left = GAP + r * (height + GAP), GAP + c * (width + GAP)
            pixels = _image(image)
            canvas[top:top + height, left:left + width] = pixels[..., None] if pixels.ndim == 2 else pixels
    picture = Image.fromarray(np.round(np.nan_to_num(canvas) * 255).astype(np.uint8))
    picture = picture.resize((picture.width * SCALE, picture.height * SCALE), Image.NEAREST)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG", optimize=True)
    return _data_url(buffer)


def scatter(latents: torch.Tensor, colours: torch.Tensor, title: str, legend: str) -> str:
    """The 2-D latents, coloured by ``colours`` (digit labels, or k-means clusters)."""
    points = latents.detach().float().cpu().numpy().reshape(len(latents), -1)[:, :2]
    values = colours.detach().cpu().numpy().astype(int).reshape(-1)
    if len(points) != len(values) or points.shape[1] < 2:
        raise ValueError(f"{len(points)} points of dimension {points.shape[1]} for {len(values)} colours")
    figure = _figure(4.2, 3.6)
    axis = figure.add_subplot()
    drawn = axis.scatter(points[:, 0], points[:, 1], c=values, cmap="tab10", s=3, vmin=-0.5, vmax=9.5)
    colourbar = figure.colorbar(drawn, ax=axis, ticks=sorted(set(values.tolist()))[:10])
    colourbar.set_label(legend, fontsize=8)
    axis.set_title(title, fontsize=9)
    axis.tick_params(labelsize=7)
    figure.tight_layout()
    return _png(figure)


def add(pictures: list[dict], question: str, caption: Message, draw: Callable[[], str]) -> None:
    """Draw one picture for ``question``'s part of the feedback page; a picture that cannot be drawn is left out
    (it scores nothing)."""
    try:
        uri = draw()
    except Exception:  # noqa: BLE001 - odd shapes or values from a student's model: no picture, no failure
        return
    pictures.append({"question": question, "caption_ja": caption.ja, "caption_en": caption.en, "uri": uri})


def add_trained(pictures: list[dict], question: str, model: str, x_eval: torch.Tensor, labels: torch.Tensor,
                trained: TrainedModel) -> None:
    """The pictures of one trained model: held-out digits over the images decoded from their latents, the
    latents coloured by digit, and decodes of prior samples z ~ N(0, I)."""
    from autograder.i18n import t

    add(pictures, question, t("上段: 評価用の画像、下段: その潜在変数から {model}.decoder が描いた画像",
                              "top: held-out images; bottom: what {model}.decoder drew from their latents",
                              model=model),
        lambda: image_rows([x_eval[:8], trained.images[:8]]))
    if trained.latents and trained.latents[0].dim() == 2 and trained.latents[0].shape[1] >= 2:
        add(pictures, question, t("評価用の画像 {n} 枚の潜在変数（色は数字のラベル）",
                                  "the latents of {n} held-out images, coloured by digit", n=len(labels)),
            lambda: scatter(trained.latents[0], labels, f"{model}: latents", "digit"))
    if trained.prior_images is not None:
        images = trained.prior_images
        add(pictures, question, t("z ~ N(0, I) から {model}.decoder が描いた画像", "what {model}.decoder draws from "
                                  "z ~ N(0, I)", model=model),
            lambda: image_rows([images[:8], images[8:16]]))
