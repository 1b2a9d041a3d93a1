"""The pytest plugin that records each check's outcome for the runner (:mod:`autograder.runner`), keeping only the
messages meant for students."""
from __future__ import annotations

import sys
import traceback
from typing import Any

import pytest

from autograder.failures import GradingFailure
from autograder.i18n import Message, json_fields, t
from autograder.rubric import check_of


class Collector:
    """A pytest plugin that records each check's outcome, keeping only messages meant for students."""

    def __init__(self) -> None:
        self.checks: list[dict[str, Any]] = []

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo):
        outcome = yield
        report = outcome.get_result()
        if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
            check = check_of(item)
            self.checks.append({
                "id": check.id, "question": check.question, "voids": check.voids, "weight": check.weight,
                "title": check.title, "title_ja": check.title_ja,
                "passed": report.passed,
                **json_fields("message", "" if report.passed else self._message(call)),
                "failure": "" if report.passed else self._kind(call),
                "seconds": round(report.duration, 3),
            })

    @staticmethod
    def _kind(call: pytest.CallInfo) -> str:
        """What stopped the check, for the class insights: the GradingFailure's class (``CheckFailed``: a named
        mistake; ``StudentError``, ``CheckTimeout``, ``CheckBlocked``, ``WorkerCrashed``), ``GraderError``
        for a bug of the grader's own."""
        error = call.excinfo.value if call.excinfo is not None else None
        return type(error).__name__ if isinstance(error, GradingFailure) else "GraderError"

    @staticmethod
    def _message(call: pytest.CallInfo) -> Message:
        if call.excinfo is None:
            return t("不合格です", "failed")
        error = call.excinfo.value
        if isinstance(error, GradingFailure):
            return error.message
        # A bug in the grader, not the student's: log it for the instructor, tell the student little.
        traceback.print_exception(error, file=sys.stderr)
        return t("採点プログラムの内部エラーです（{error}）。担当教員に知らせてください",
                 "internal grader error ({error}); please tell the instructor", error=type(error).__name__)
