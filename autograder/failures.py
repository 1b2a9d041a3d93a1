"""Why a check failed. The text of each exception is the feedback the student reads."""
from __future__ import annotations


class GradingFailure(Exception):
    """Base class: a check failed for a reason that the feedback may show as it is."""


class CheckFailed(GradingFailure):
    """The student's answer was wrong; the message names the likely bug."""


class StudentError(GradingFailure):
    """The student's code raised an exception inside the worker."""

    def __init__(self, name: str, error: str, message: str, where: str) -> None:
        self.error = error
        text = f"{name} raised {error}" + (f": {message}" if message else "")
        if where:
            text += f" (at {where})"
        if error == "NotImplementedError":
            text += ". Is this part still the unfilled template?"
        super().__init__(text)


class WorkerCrashed(GradingFailure):
    """The worker process died (os._exit, a segfault, running out of memory, ...)."""


class CheckTimeout(GradingFailure):
    """The student's code did not answer within the check's time limit."""
