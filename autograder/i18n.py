"""Bilingual feedback: every message a student reads exists in Japanese and in English.

The graders write ``t(ja, en, **fields)``: two ``str.format`` templates with the same fields. A field
that is itself a :class:`Message` is filled in the same language; any other value (a number, a shape,
a code name, the student's own exception text) appears verbatim in both. Why templates and not two
f-strings: each value is computed once, and a test (tests/test_i18n.py) can check statically that the
two templates exist, that the Japanese one is Japanese, and that both use the same fields.

Messages cross from the runner process to the engine as plain JSON (:func:`json_fields`): ``key`` holds
the "both" rendering (the Japanese, then the English on the next line), ``key_ja`` and ``key_en`` the
two languages; :func:`from_fields` reads them back. :func:`render` picks a language for the reports
(``--lang ja|en|both``).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

LANGS = ("ja", "en", "both")
# Hiragana, katakana, CJK ideographs and the full-width forms: a text with none of them is not Japanese.
JAPANESE = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uff00-\uffef]")


@dataclass(frozen=True)
class Message:
    """One piece of feedback in both languages."""

    ja: str
    en: str


def _filled(template: str, fields: dict[str, Any], lang: str) -> str:
    return template.format(**{name: getattr(value, lang) if isinstance(value, Message) else value
                              for name, value in fields.items()})


def t(ja: str, en: str, /, **fields: Any) -> Message:
    """The message with Japanese template ``ja`` and English template ``en``, both filled with ``fields``.

    Templates follow ``str.format`` (``{score:.4g}``; a literal brace is written ``{{``), and are
    always formatted, so that a brace means the same with or without fields.
    """
    return Message(_filled(ja, fields, "ja"), _filled(en, fields, "en"))


def verbatim(text: str) -> Message:
    """Text that is the same in both languages: a code name, or what the student's code printed or raised."""
    return Message(text, text)


def as_message(value: Message | str) -> Message:
    """``value`` as a Message; a plain string (data, or text nobody has translated yet) is shown as it is."""
    return value if isinstance(value, Message) else verbatim(str(value))


def join(messages: list[Message]) -> Message:
    """Several messages as one: sentences joined by 「。」 in Japanese and by "; " in English."""
    return Message("。".join(m.ja for m in messages), "; ".join(m.en for m in messages))


def render(message: Message, lang: str) -> str:
    """The text of ``message`` in ``lang``: "ja", "en", or "both" (the Japanese, then the English on the next
    line; once when the two are the same)."""
    if lang not in LANGS:
        raise ValueError(f"unknown language {lang!r} (expected one of {', '.join(LANGS)})")
    if lang == "both":
        return message.ja if message.ja == message.en else f"{message.ja}\n{message.en}"
    return getattr(message, lang)


def json_fields(key: str, message: Message | str) -> dict[str, str]:
    """``{key: both, key_ja: Japanese, key_en: English}``: a message as the runner's JSON carries it."""
    message = as_message(message)
    return {key: render(message, "both"), f"{key}_ja": message.ja, f"{key}_en": message.en}


def from_fields(record: dict[str, Any], key: str) -> Message:
    """The message stored under ``key`` by :func:`json_fields`; a missing or empty ``key_ja``/``key_en`` (older
    results, or a field written elsewhere in one language) is replaced by the text under ``key``."""
    text = str(record.get(key) or "")
    return Message(str(record.get(f"{key}_ja") or text), str(record.get(f"{key}_en") or text))


def is_japanese(text: str) -> bool:
    """Whether ``text`` contains kana or kanji."""
    return bool(JAPANESE.search(text))
