"""autograder.figures: an ``image/png`` output counts only when it is a real, non-blank PNG."""
from __future__ import annotations

import base64
import io
import struct
import zlib

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

from autograder import figures  # noqa: E402
from autograder.figures import figure_outputs, png_problem  # noqa: E402


def check_png(data: object) -> str | None:
    """The English reason of :func:`png_problem` (None for a real, non-blank PNG): what these tests assert on."""
    problem = png_problem(data)
    return problem.en if problem is not None else None


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _figure_png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


def _pillow_png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def scatter_png() -> bytes:
    """What a notebook's plot_latent_clusters cell shows: 300 points, 5 clusters, tab10, a legend."""
    rng = np.random.default_rng(0)
    latents, labels = rng.normal(size=(300, 2)) * 3, np.arange(300) % 5
    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    for k in range(5):
        ax.scatter(*latents[labels == k].T, s=8, color=plt.cm.tab10(k), label=f"cluster {k}")
    ax.legend()
    ax.set_title("k-means on the latent space")
    return _figure_png(fig)


def _with_ihdr(raw: bytes, width: int, height: int) -> bytes:
    """The PNG with its IHDR's size replaced (and the CRC recomputed, so only the size is wrong)."""
    body = raw[12:16] + struct.pack(">II", width, height) + raw[24:29]
    return raw[:8] + raw[8:12] + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF) + raw[33:]


def test_a_matplotlib_scatter_passes(scatter_png: bytes) -> None:
    assert check_png(_b64(scatter_png)) is None


def test_a_transparent_background_scatter_passes() -> None:
    fig, ax = plt.subplots()
    ax.scatter(np.arange(300) % 17, np.arange(300) % 13, s=8)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", transparent=True)
    plt.close(fig)
    assert check_png(_b64(buffer.getvalue())) is None


def test_list_of_strings_and_line_breaks_work(scatter_png: bytes) -> None:
    text = _b64(scatter_png)
    lines = [text[i:i + 76] + "\n" for i in range(0, len(text), 76)]
    assert check_png(lines) is None
    assert check_png("".join(lines)) is None


@pytest.mark.parametrize("data, words", [
    ("", "empty"),
    ("   \n", "empty"),
    ([], "empty"),
    (None, "not base64 text"),
    (123, "not base64 text"),
    (["iVBOR", 5], "not base64 text"),
    ({"image/png": ""}, "not base64 text"),
    ("this is not base64 at all!!", "not valid base64"),
    ("iVBORw0KGgo=====", "not valid base64"),
    ("ünïcødé", "not valid base64"),
    (_b64(b"just some bytes, no image"), "not a PNG"),
    (_b64(b"\x89PNG\r\n\x1a\n"), "truncated"),
])
def test_junk_payloads_are_refused(data: object, words: str) -> None:
    reason = check_png(data)
    assert reason is not None and words in reason


def test_a_jpeg_is_refused() -> None:
    image = Image.new("RGB", (200, 100), "white")
    image.paste((200, 30, 30), (20, 20, 120, 80))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG")
    assert "not a PNG" in check_png(_b64(buffer.getvalue()))


def test_a_huge_ihdr_is_refused_before_any_decoder_runs(scatter_png: bytes, monkeypatch) -> None:
    def no_decoding(*args, **kwargs):
        raise AssertionError("Pillow must not be reached")

    monkeypatch.setattr(Image, "open", no_decoding)
    monkeypatch.setattr(figures, "_decode", no_decoding)
    reason = check_png(_b64(_with_ihdr(scatter_png, 100_000, 100_000)))
    assert reason is not None and "100000x100000" in reason


def test_a_bad_ihdr_crc_or_chunk_is_refused(scatter_png: bytes) -> None:
    corrupt = bytearray(scatter_png)
    corrupt[20] ^= 0x01  # change the width without fixing the CRC
    assert "CRC" in check_png(_b64(bytes(corrupt)))
    not_ihdr = scatter_png[:12] + b"IDAT" + scatter_png[16:]
    assert "IHDR" in check_png(_b64(not_ihdr))


def test_an_ihdr_that_lies_about_the_size_fails_to_decode(scatter_png: bytes) -> None:
    lying = _with_ihdr(scatter_png, 700, 500)  # plausible size, but the pixel data does not fit it
    assert check_png(_b64(lying)) is not None


def test_a_tiny_image_is_refused() -> None:
    image = Image.new("RGB", (10, 10), "white")
    image.putpixel((3, 3), (0, 0, 0))
    reason = check_png(_b64(_pillow_png(image)))
    assert reason is not None and "10x10" in reason


@pytest.mark.parametrize("colour", ["white", "black"])
def test_a_uniform_figure_is_blank(colour: str) -> None:
    reason = check_png(_b64(_pillow_png(Image.new("RGB", (400, 300), colour))))
    assert reason is not None and "blank" in reason


def test_an_empty_matplotlib_figure_is_blank() -> None:
    fig = plt.figure()  # no axes: a white canvas
    reason = check_png(_b64(_figure_png(fig)))
    assert reason is not None and "blank" in reason


def test_a_few_stray_pixels_are_still_blank() -> None:
    image = Image.new("RGB", (400, 300), "white")
    for x in range(100):  # 100 of 120 000 pixels: 0.08 %
        image.putpixel((x, 7), (255, 0, 0))
    reason = check_png(_b64(_pillow_png(image)))
    assert reason is not None and "almost blank" in reason


def test_a_truncated_png_is_refused(scatter_png: bytes) -> None:
    reason = check_png(_b64(scatter_png[: len(scatter_png) // 2]))
    assert reason is not None and "cannot be decoded" in reason


def test_an_oversized_payload_is_refused_without_decoding() -> None:
    assert "larger than 5 MB" in check_png("A" * (11 * 1024 * 1024))
    assert "larger than 5 MB" in check_png(["A" * (6 * 1024 * 1024)] * 2)
    assert "larger than 5 MB" in check_png(_b64(b"\0" * (5 * 1024 * 1024 + 4)))


def test_pillow_limits_are_restored(scatter_png: bytes) -> None:
    from PIL import ImageFile

    before = Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES
    check_png(_b64(scatter_png))
    check_png(_b64(scatter_png[:2000]))
    assert (Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES) == before


def test_figure_outputs_collects_png_payloads() -> None:
    cell = {"cell_type": "code", "outputs": [
        {"output_type": "stream", "name": "stdout", "text": "hi"},
        {"output_type": "display_data", "data": {"image/png": "AAA", "text/plain": "<Figure>"}},
        {"output_type": "execute_result", "data": {"image/png": ["BB", "CC"]}, "execution_count": 3},
        {"output_type": "display_data", "data": {"text/plain": "no image"}},
        {"output_type": "error", "data": {"image/png": "not a display"}},
    ]}
    assert figure_outputs(cell) == ["AAA", ["BB", "CC"]]


@pytest.mark.parametrize("cell", [
    None, 3, "cell", [], {}, {"outputs": None}, {"outputs": "x"}, {"outputs": {"a": 1}},
    {"outputs": [None, 1, "x", [], {"output_type": "display_data"},
                 {"output_type": "display_data", "data": None},
                 {"output_type": "display_data", "data": ["image/png"]},
                 {"output_type": ["display_data"], "data": {"image/png": "A"}}]},
])
def test_figure_outputs_never_raises_on_malformed_cells(cell: object) -> None:
    assert figure_outputs(cell) == []


def test_empty_image_key_no_longer_counts_as_a_figure() -> None:
    cell = {"outputs": [{"output_type": "display_data", "data": {"image/png": ""}}]}
    assert [check_png(p) for p in figure_outputs(cell)] == ["the image data is empty"]


@pytest.mark.parametrize("others, words", [(599, "almost blank"), (600, None), (601, None)])
def test_the_colour_count_shortcut_is_exact(others: int, words: str | None) -> None:
    """Pillow stops counting past (1 - MAX_SHARE) of the pixels plus one colour: with that many distinct colours no
    colour can cover over MAX_SHARE, so the answer is the full count's. At the border: 120,000 pixels, 0.5 % = 600
    others, each a colour of its own (599: 99.50083 % white, almost blank; 600: exactly 99.5 %, not over it)."""
    image = Image.new("RGB", (400, 300), "white")
    for index in range(others):
        image.putpixel((index % 400, index // 400), (index % 256, index // 256, 7))
    reason = check_png(_b64(_pillow_png(image)))
    assert (reason is None) if words is None else (words in reason), reason
