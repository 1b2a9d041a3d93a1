"""The rubric: every check of the hidden graders, the question it belongs to, and the points it is worth.

Collected from the graders themselves (pytest ``--collect-only`` in this process, nothing is run), so
the list a TA reads before the semester is exactly what grading will score. A check whose
``question`` marker is missing or names no question in questions.toml would silently drop out of the
scores; :func:`collect` refuses such a graders folder with :class:`RubricError` at start-up instead.
"""
from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from pathlib import Path

import pytest

from autograder import config

GRADERS_DIR = Path(__file__).resolve().parent / "graders"
PYTEST_OPTIONS = ["-q", "-p", "no:cacheprovider", "-p", "no:randomly", "-o", "addopts=", "-o", "python_files=test_*.py",
                  "--no-header", "-W", "ignore"]


RUBRIC_EXIT_CODE = 3  # the runner's exit code when the graders themselves are broken


class RubricError(RuntimeError):
    """A grader check that would not count: no question marker, or an unknown question id."""


@dataclass(frozen=True)
class Check:
    id: str
    question: str | None  # None: the test has no question marker
    title: str  # English: the docstring's first line
    weight: float
    voids: bool
    points: float = 0.0
    title_ja: str = ""  # the docstring's line "ja: ..." ("" when there is none)


class _Items:
    def __init__(self) -> None:
        self.items: list[pytest.Item] = []

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.items = list(session.items)


JA_PREFIX = "ja:"  # a grader test's docstring gives its Japanese title on a line of its own, e.g. "ja: z は…"


def check_of(item: pytest.Item) -> Check:
    """The check a collected grader test is: its id, question, title (docstring's first line), its Japanese
    title (the docstring's line that starts with ``ja:``), weight, voids."""
    marker = item.get_closest_marker("question")
    doc = [line.strip() for line in (getattr(item, "obj", None).__doc__ or "").strip().splitlines()]
    title_ja = next((line[len(JA_PREFIX):].strip() for line in doc if line.startswith(JA_PREFIX)), "")
    return Check(item.nodeid.split("::", 1)[-1], marker.args[0] if marker and marker.args else None,
                 doc[0] if doc else item.name, float(marker.kwargs.get("weight", 1)) if marker else 1.0,
                 bool(marker.kwargs.get("voids")) if marker else False, title_ja=title_ja)


def problems(items: list[pytest.Item], questions: dict) -> list[str]:
    """The collected checks that would count towards no question, each with the reason."""
    found = []
    for item in items:
        marker = item.get_closest_marker("question")
        if marker is None or not marker.args:
            found.append(f"{item.nodeid}: no @pytest.mark.question(...) marker")
        elif marker.args[0] not in questions:
            found.append(f"{item.nodeid}: question {marker.args[0]!r} is not in questions.toml")
    return found


def describe_problems(found: list[str]) -> str:
    return "these grader checks would not count towards any score:\n  " + "\n  ".join(found)


def collect(graders: Path = GRADERS_DIR, questions: dict | None = None) -> list[Check]:
    """Every check under ``graders`` with its points; raises :class:`RubricError` naming each check that
    has no ``question`` marker or one whose id is not in questions.toml."""
    questions = config.questions() if questions is None else questions
    plugin = _Items()
    with contextlib.redirect_stdout(io.StringIO()) as output:
        code = pytest.main([str(graders), "--collect-only", "--rootdir", str(graders), *PYTEST_OPTIONS],
                           plugins=[plugin])
    if code not in (0, 5):
        raise RubricError(f"the graders in {graders} could not be collected:\n{output.getvalue()[-2000:]}")
    found = problems(plugin.items, questions)
    if found:
        raise RubricError(describe_problems(found))
    checks = [check_of(item) for item in plugin.items]
    weights = {qid: sum(c.weight for c in checks if c.question == qid) for qid in questions}
    return [Check(**{**c.__dict__, "points": questions[c.question]["points"] * c.weight / weights[c.question]
                     if weights[c.question] else 0.0}) for c in checks]


def table(checks: list[Check], questions: dict | None = None) -> str:
    """The rubric as text: each question with its points, then its checks with theirs."""
    questions = config.questions() if questions is None else questions
    lines = []
    for qid, spec in questions.items():
        mine = [c for c in checks if c.question == qid]
        lines.append(f"{qid} — {spec['title']}: {spec['points']:g} points, {len(mine)} checks")
        for check in mine:
            note = " (a failure voids the question)" if check.voids else ""
            lines.append(f"  {check.points:6.2f}  {check.title}{note}")
    total = sum(spec["points"] for spec in questions.values())
    lines.append(f"total: {total:g} points in {len(checks)} checks (the written answers 考察 1–4 are graded by hand)")
    return "\n".join(lines)
