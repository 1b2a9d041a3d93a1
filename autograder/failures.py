"""Why a check failed, and how text that the student's code controls reaches the feedback.

The :class:`~autograder.i18n.Message` of each :class:`GradingFailure` is the feedback the student reads,
in Japanese and in English (``str()`` of a failure is its English text, for logs and instructor tools).
Parts of it can come
from the student's own code (an exception's message, the source line it was raised at, what the
worker printed before it died, a type's name). Such text passes through a :class:`StudentText`
budget first: host paths are shortened to their last component, each piece is clipped, and the
whole submission gets at most :data:`STUDENT_TEXT_BYTES` of it, so feedback cannot be used to carry
files out of the sandbox.
"""
from __future__ import annotations

import re

from autograder.explain import likely_cause
from autograder.i18n import Message, as_message, t

STUDENT_TEXT_BYTES = 2048
PIECE_CHARS = 240
OMITTED = "[…]"
# An absolute path of two or more components, e.g. /srv/nbgrader/exchange/x → …/x
_PATH = re.compile(r"(?<![\w.~:/])/(?:[^\s/'\"`<>|:,;()\[\]{}]+/)+(?=[^\s/'\"`<>|:,;()\[\]{}]*)")


def scrub_paths(text: str) -> str:
    """Shorten every absolute path in ``text`` to ``…/`` plus its last component."""
    return _PATH.sub("…/", text)


class StudentText:
    """The per-submission budget of feedback text that the student's code controls."""

    def __init__(self, total: int = STUDENT_TEXT_BYTES, piece: int = PIECE_CHARS) -> None:
        self.left, self.piece = total, piece

    def take(self, text: object) -> str:
        """``text`` with paths scrubbed, clipped to one piece and to what is left of the budget."""
        clean = scrub_paths(str(text)).replace("\x00", "")
        if len(clean) > self.piece:
            clean = clean[: self.piece - 1] + "…"
        size = len(clean.encode("utf-8"))
        if size <= self.left:
            self.left -= size
            return clean
        kept = clean.encode("utf-8")[: max(self.left, 0)].decode("utf-8", "ignore")
        self.left = 0
        return kept + OMITTED


class GradingFailure(Exception):
    """Base class: a check failed for a reason that the feedback may show as it is.

    ``message`` is what the student reads in both languages; a plain string (text that nobody has
    translated) is kept as it is in both, so that an untranslated message is shown, never lost.
    """

    def __init__(self, message: Message | str) -> None:
        self.message = as_message(message)
        super().__init__(self.message.en)


class CheckFailed(GradingFailure):
    """The student's answer was wrong; the message names the likely bug."""


class StudentError(GradingFailure):
    """The student's code raised an exception inside the worker (every part of it already budgeted).

    The message quotes the error and where it was raised, then, for a common error, its likely cause
    (:func:`autograder.explain.likely_cause`).
    """

    def __init__(self, name: Message | str, error: str, message: str, where: str) -> None:
        self.error = error
        text = t("{name} で {error} が発生しました", "{name} raised {error}", name=name, error=error)
        if message:
            text = t("{text}：{message}", "{text}: {message}", text=text, message=message)
        if where:
            text = t("{text}（発生箇所: {where}）", "{text} (at {where})", text=text, where=where)
        if error == "NotImplementedError":
            text = t("{text}。この部分はまだ未記入のテンプレートのままではありませんか？",
                     "{text}. Is this part still the unfilled template?", text=text)
        cause = likely_cause(error, message, where)
        if cause is not None:
            text = t("{text}。考えられる原因: {cause}", "{text}. Likely cause: {cause}", text=text, cause=cause)
        super().__init__(text)


class WorkerCrashed(GradingFailure):
    """The worker process died (os._exit, a segfault, running out of memory, ...)."""


class CheckTimeout(GradingFailure):
    """The student's code did not answer within the check's time limit."""


class CheckBlocked(CheckTimeout):
    """The student's code stopped using the CPU while the grader waited (a sleep, a lock, input)."""
