"""Check that a notebook's ``image/png`` outputs are real, non-blank figures.

An output that merely *has* an ``image/png`` key proves nothing (``{"image/png": ""}`` has one).
:func:`png_problem` accepts a payload only when, in this order:

1. it is base64 text (a string, or a list of strings that nbformat joins), at most
   :data:`MAX_BYTES` (5 MB) once decoded, whitespace and newlines ignored;
2. the bytes start with the PNG signature and a well-formed ``IHDR`` chunk (length 13, valid CRC,
   a legal bit depth / colour type, compression 0, filter 0, interlace 0 or 1), parsed with
   :mod:`struct` *before any image decoder runs*, whose width and height are each between
   :data:`MIN_SIDE` (50) and :data:`MAX_SIDE` (10000) pixels and whose area is at most
   :data:`MAX_PIXELS`;
3. Pillow decodes it completely (``img.load()``) as a PNG, with ``Image.MAX_IMAGE_PIXELS`` bounded
   and truncated images refused;
4. it is not blank: it has at least two distinct colours and no single colour covers more than
   :data:`MAX_SHARE` (99.5 %) of the pixels (fully transparent pixels count as one colour).

The reasons are bilingual (:class:`autograder.i18n.Message`).

A matplotlib scatter plot passes; a uniformly white or black figure fails. Note that an empty
set of axes (frame, ticks and labels only) is not blank by this measure: whether a figure shows the
right data is for checks that inspect the figure object itself.

:func:`figure_outputs` collects the ``image/png`` payloads of a code cell's outputs without ever
raising on malformed JSON, and bounds what a cell can make the grader look at: at most
:data:`MAX_FIGURES` payloads, :data:`MAX_CELL_TEXT` characters of base64 and :data:`MAX_CELL_PIXELS`
pixels that would be decoded (the sizes read from each payload's header, before any decoding), all
its payloads together; the first payload is always looked at. A cell full of huge 1-bit PNGs
(a few kB each, 40 M pixels once decoded) used to hold the grader for minutes; now it costs at most
one large image's decoding.
"""
from __future__ import annotations

import base64
import binascii
import io
import math
import struct
import threading
import warnings
import zlib

from autograder.i18n import Message, t

MAX_BYTES = 5 * 1024 * 1024
MIN_SIDE = 50
MAX_SIDE = 10_000
MAX_PIXELS = 16_000_000  # e.g. 4000 x 4000 (under 0.6 s to check); a 300-dpi 6.4 x 4.8 in matplotlib figure is 2.8 M
MAX_SHARE = 0.995
MAX_FIGURES = 8  # image payloads looked at per cell: a cell that plots shows one or two
MAX_CELL_PIXELS = MAX_PIXELS  # pixels decoded per cell: one image of the largest size
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# colour type -> allowed bit depths (PNG specification, table 11.1)
_BIT_DEPTHS = {0: (1, 2, 4, 8, 16), 2: (8, 16), 3: (1, 2, 4, 8), 4: (8, 16), 6: (8, 16)}
_MAX_TEXT = 2 * MAX_BYTES  # base64 is 4/3 of the bytes: generous room for line breaks
MAX_CELL_TEXT = _MAX_TEXT  # base64 characters looked at per cell: one payload of the largest size
_HEADER_CHARS = 44  # base64 characters of the signature and the IHDR chunk (33 bytes)
_TOO_BIG = t("画像が {mb} MB を超えています", "the image is larger than {mb} MB", mb=MAX_BYTES // (1024 * 1024))
_PIL_LOCK = threading.Lock()  # Pillow's limits are module globals: set and restore them under a lock


def _payload_text(data: object) -> str | None:
    """The base64 text of a payload (a string or a list of strings), or None if it is neither."""
    if isinstance(data, str):
        return data
    if isinstance(data, list) and all(isinstance(part, str) for part in data):
        return "".join(data)
    return None


def _decode_base64(text: str) -> bytes | Message:
    """The decoded bytes, or the reason they cannot be had."""
    if len(text) > _MAX_TEXT:
        return _TOO_BIG
    compact = "".join(text.split())
    if not compact:
        return t("画像データが空です", "the image data is empty")
    try:
        raw = base64.b64decode(compact.encode("ascii"), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        return t("画像データが正しい base64 ではありません", "the image data is not valid base64")
    if len(raw) > MAX_BYTES:
        return _TOO_BIG
    return raw


def _check_header(raw: bytes) -> Message | None:
    """Signature and IHDR, read with struct: the reason the header is refused, or None."""
    if not raw.startswith(PNG_SIGNATURE):
        return t("画像が PNG ではありません", "the image is not a PNG")
    if len(raw) < 33:
        return t("PNG が途中で切れています（IHDR チャンクが完全ではありません）",
                 "the PNG is truncated (no complete IHDR chunk)")
    length, kind = struct.unpack(">I4s", raw[8:16])
    if kind != b"IHDR" or length != 13:
        return t("PNG が正しい IHDR チャンクで始まっていません", "the PNG does not start with a valid IHDR chunk")
    width, height, depth, colour, compression, filtering, interlace = struct.unpack(">IIBBBBB", raw[16:29])
    (crc,) = struct.unpack(">I", raw[29:33])
    if zlib.crc32(raw[12:29]) & 0xFFFFFFFF != crc:
        return t("PNG の IHDR チャンクが壊れています（CRC の不一致）", "the PNG's IHDR chunk is corrupt (bad CRC)")
    if depth not in _BIT_DEPTHS.get(colour, ()) or compression != 0 or filtering != 0 or interlace not in (0, 1):
        return t("PNG の IHDR チャンクが不正です", "the PNG's IHDR chunk is invalid")
    if not (MIN_SIDE <= width <= MAX_SIDE and MIN_SIDE <= height <= MAX_SIDE):
        return t("画像は {width}x{height} ピクセルです。図の各辺は {low}〜{high} ピクセルである必要があります",
                 "the image is {width}x{height} pixels; a figure should be between {low} and {high} "
                 "pixels on each side", width=width, height=height, low=MIN_SIDE, high=MAX_SIDE)
    if width * height > MAX_PIXELS:
        return t("画像は {width}x{height} ピクセルで、合計 {limit} ピクセルを超えています",
                 "the image is {width}x{height} pixels, more than {limit} pixels in all",
                 width=width, height=height, limit=MAX_PIXELS)
    return None


def _decode(raw: bytes) -> object | Message:
    """The fully decoded Pillow image, or the reason it cannot be decoded."""
    from PIL import Image, ImageFile  # imported only once the header has been accepted

    with _PIL_LOCK:
        saved = Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES
        Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES = MAX_PIXELS, False
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                image = Image.open(io.BytesIO(raw), formats=["PNG"])
                image.load()
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            return t("画像が大きすぎてデコードできません", "the image is too large to decode")
        except Exception as error:  # noqa: BLE001 - any decoder failure means "not a readable PNG"
            return t("PNG をデコードできません（{error}）", "the PNG cannot be decoded ({error})",
                     error=type(error).__name__)
        finally:
            Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES = saved
    return image


def _without_hidden_colours(image: object) -> object:
    """The image in a mode whose pixel values are its colours, fully transparent pixels all made (0, …, 0).

    A 1-bit image becomes 8-bit grey (cheap; same colours), anything else but L, LA, RGB and RGBA becomes RGBA.
    """
    from PIL import Image

    if image.mode == "1":
        return image.convert("L")
    if image.mode not in ("L", "LA", "RGB", "RGBA"):
        image = image.convert("RGBA")
    if image.mode in ("LA", "RGBA"):  # all fully transparent pixels are one colour
        visible = image.getchannel("A").point(lambda alpha: 255 if alpha else 0)
        cleared = Image.new(image.mode, image.size, 0)
        cleared.paste(image, mask=visible)
        return cleared
    return image


def _check_not_blank(image: object) -> Message | None:
    """The reason the image is blank, or None.

    Pillow counts the colours in C (``getcolors``), at most :data:`MAX_SHARE`'s complement of the pixels of
    them plus one: an image with more distinct colours than that cannot have one covering more than
    ``MAX_SHARE`` of it, so it is not blank, and no count is needed.
    """
    image = _without_hidden_colours(image)
    total = image.size[0] * image.size[1]
    counts = image.getcolors(math.ceil((1 - MAX_SHARE) * total) + 1)
    if counts is None:
        return None
    if len(counts) < 2:
        return t("画像が空白です（1 色しかありません）", "the image is blank (a single colour)")
    share = max(count for count, _ in counts) / total
    if share > MAX_SHARE:
        return t("画像がほとんど空白です（ピクセルの {share:.1%} が同じ色です）",
                 "the image is almost blank ({share:.1%} of its pixels are one colour)", share=share)
    return None


def _text_length(data: object) -> int:
    """The number of characters of a payload's text (a string, or the strings of a list), without joining them."""
    if isinstance(data, str):
        return len(data)
    if isinstance(data, list):
        return sum(len(part) for part in data if isinstance(part, str))
    return 0


def png_problem(data: object) -> Message | None:
    """None when ``data`` (an output's ``image/png`` value) is a real, non-blank PNG, else a short reason.

    Never raises: any unexpected input yields a reason.
    """
    if isinstance(data, list) and _text_length(data) > _MAX_TEXT:
        return _TOO_BIG  # refused before joining a huge list
    text = _payload_text(data)
    if text is None:
        return t("画像データが base64 のテキストではありません", "the image data is not base64 text")
    raw = _decode_base64(text)
    if isinstance(raw, Message):
        return raw
    reason = _check_header(raw)
    if reason is not None:
        return reason
    image = _decode(raw)
    if isinstance(image, Message):
        return image
    try:
        return _check_not_blank(image)
    except Exception as error:  # noqa: BLE001 - e.g. an exotic mode Pillow cannot convert
        return t("画像を解析できません（{error}）", "the image cannot be analysed ({error})", error=type(error).__name__)


def _header_bytes(text: str) -> bytes:
    """The signature and IHDR of a payload, decoded from its first :data:`_HEADER_CHARS` base64 characters.

    Whitespace is skipped a block at a time, so the cost is that of the text up to the header, not of the whole.
    Empty when the text has no valid base64 there.
    """
    compact = ""
    for start in range(0, len(text), 4096):
        compact += "".join(text[start:start + 4096].split())
        if len(compact) >= _HEADER_CHARS:
            break
    try:
        return base64.b64decode(compact[:_HEADER_CHARS], validate=True)
    except (binascii.Error, ValueError):
        return b""


def _cost(data: object) -> tuple[int, int]:
    """The base64 characters and the pixels :func:`png_problem` would decode for ``data``, read from its header.

    A payload that it refuses before decoding (not text, too long, a refused header) costs (0, 0).
    """
    length = _text_length(data)
    text = _payload_text(data) if length <= _MAX_TEXT else None
    if text is None:
        return 0, 0
    header = _header_bytes(text)
    if _check_header(header) is not None:
        return length, 0
    width, height = struct.unpack(">II", header[16:24])
    return length, width * height


def _png_payloads(cell: object) -> list:
    """Every ``image/png`` payload of a code cell's ``display_data``/``execute_result`` outputs; never raises."""
    if not isinstance(cell, dict):
        return []
    outputs = cell.get("outputs")
    if not isinstance(outputs, list):
        return []
    payloads = []
    for output in outputs:
        if not isinstance(output, dict) or output.get("output_type") not in ("display_data", "execute_result"):
            continue
        data = output.get("data")
        if isinstance(data, dict) and "image/png" in data:
            payloads.append(data["image/png"])
    return payloads


def figure_outputs(cell: object) -> list:
    """The ``image/png`` payloads of a code cell's ``display_data``/``execute_result`` outputs that are worth checking.

    Payloads are returned as stored (normally base64 text); pass each to :func:`png_problem`. At most
    :data:`MAX_FIGURES` of them, in order, as long as together they hold at most :data:`MAX_CELL_TEXT` characters
    and :data:`MAX_CELL_PIXELS` pixels to decode (sizes read from the headers); the first is always returned. So the
    check of any cell costs at most about one large image, whatever the notebook holds.
    Malformed cells, outputs or data (non-dicts, missing keys) contribute nothing; never raises.
    """
    chosen: list = []
    characters = pixels = 0
    for data in _png_payloads(cell):
        if len(chosen) == MAX_FIGURES:
            break
        length, area = _cost(data)
        characters, pixels = characters + length, pixels + area
        if chosen and (characters > MAX_CELL_TEXT or pixels > MAX_CELL_PIXELS):
            break
        chosen.append(data)
    return chosen
