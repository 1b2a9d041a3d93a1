"""The submission being graded, as the graders' fixtures see it (registered as a pytest plugin)."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from typing import Any

from autograder.budget import IDLE_ACCOUNT_S, SUBMISSION_FACTOR, CpuAccount
from autograder.client import Worker
from autograder.extract import extract_cells
from autograder.failures import StudentText
from autograder.i18n import Message, t
from autograder.limits import QUEUE_KNOWN
from autograder.needed import needed_cells
from autograder.sandbox import ROLES, Runtime, SandboxConfig


@dataclass(eq=False)  # hashable: pytest keeps plugins in a set
class Context:
    """What the graders' fixtures need to know about the submission (registered as a pytest plugin)."""

    notebook_path: Path
    runtimes: dict[str, Runtime]  # role -> what that role's worker sees (sandbox.ROLE_FILES)
    sandbox: SandboxConfig
    log_dir: Path  # each worker's output goes to worker-<role>.log here
    notebook: dict | None = None
    notebook_error: Message | None = None
    cells: list[tuple[str, str]] = field(default_factory=list)  # (cell label, definitions)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (cell label, reason)
    worker_starts: int = 0
    failed_cells: list[list[str]] = field(default_factory=list)
    text: StudentText = field(default_factory=StudentText)  # the feedback text the student's code controls
    workers: dict[str, Worker] = field(default_factory=dict)  # role -> its worker, made on first use
    rubric_problems: list[str] = field(default_factory=list)
    pictures: list[dict] = field(default_factory=list)  # for the feedback page (conftest's ``pictures`` fixture)
    training_seconds: dict[str, dict[str, float]] = field(default_factory=dict)  # question -> step -> seconds
    plan: Any = None  # the TrainingPlan of the selected training questions, started once they are collected
    account: CpuAccount | None = None  # what the workers may spend together (budget.py); from the calibration

    def __post_init__(self) -> None:
        if self.account is None:
            from autograder import config

            device = self.sandbox.device if self.sandbox is not None else "cpu"
            self.account = CpuAccount(SUBMISSION_FACTOR * config.reference_cpu_s(device),
                                      IDLE_ACCOUNT_S if QUEUE_KNOWN else float("inf"))  # idle needs run-queue time

    def worker(self, role: str) -> Worker:
        """The submission's worker of ``role``: ``functions``, ``student`` or ``encoder`` (see the graders' conftest).

        Each role is its own process with its own runtime and pipes: they share nothing but what the trusted
        side passes between them."""
        if role not in self.workers:
            worker = Worker(needed_cells(self.cells, roots(role)), self.runtimes[role], self.sandbox, self.log_dir / f"worker-{role}.log",
                            text=self.text, account=self.account)
            worker.broken = self.notebook_error
            self.workers[role] = worker
        return self.workers[role]

    def worker_cpu(self) -> dict[str, dict[str, float]]:
        """Role -> "op:name" -> the CPU-seconds its worker's requests used (loads included)."""
        return {role: dict(worker.cpu_by_request) for role, worker in self.workers.items()}

    def pytest_collection_modifyitems(self, session: Any, config: Any, items: list) -> None:
        """A check that would count towards no question stops the run before any check (see rubric.py)."""
        from autograder import config as grading
        from autograder.rubric import problems

        self.rubric_problems = problems(items, grading.questions())
        if self.rubric_problems:
            items.clear()
        items.sort(key=lambda item: "training_plan" in getattr(item, "fixturenames", ()))  # stable: trainings last

    def pytest_collection_finish(self, session: Any) -> None:
        """Start the workers that the selected checks need, and the trainings, now: the ``functions`` worker's
        checks then run while the ``student`` and ``encoder`` workers train."""
        for role in ROLES:
            if any(role in getattr(item, "fixturenames", ()) for item in session.items):
                self.worker(role).prestart()
        self.training_plan(session.items)

    def training_plan(self, items: list) -> Any:
        """The trainings of the questions whose checks in ``items`` need one (started on the first call)."""
        if self.plan is None:
            from autograder import config as grading
            from autograder.bottleneck import TrainingPlan

            selected = {item.get_closest_marker("question").args[0] for item in items
                        if "training_plan" in getattr(item, "fixturenames", ()) and item.get_closest_marker("question")}
            if selected:
                self.plan = TrainingPlan(self.worker("student"), self.worker("encoder"),
                                         [q for q in grading.budgets() if q in selected], self.sandbox.device,
                                         functions=self.worker("functions"))
        return self.plan


def roots(role: str) -> list[str]:
    """The student's names a worker of ``role`` is asked for: the models (and the functions they call) in every
    role, the questions' functions too in the ``functions`` role (it answers their probes)."""
    from autograder import config

    return config.graded_names() if role == "functions" else config.graded_models()


def read_notebook(context: Context) -> None:
    """Parse the notebook as JSON and extract each code cell's definitions; record what fails."""
    try:
        notebook = json.loads(context.notebook_path.read_text(encoding="utf-8"))
        if not isinstance(notebook, dict) or not isinstance(notebook.get("cells"), list):
            raise ValueError("no list of cells")
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as error:  # RecursionError: [[[[…]]]]
        reason = error.msg if isinstance(error, json.JSONDecodeError) else type(error).__name__
        context.notebook_error = t("提出されたファイルはノートブックとして読み込めません（{error}: {reason}）",
                                   "the submitted file is not a readable notebook ({error}: {reason})",
                                   error=type(error).__name__, reason=reason)
        return
    context.notebook = notebook
    extraction = extract_cells(notebook)
    labels = [cell_label(index, cell) for index, cell in enumerate(notebook["cells"])]
    context.cells = [(labels[index], code) for index, code in extraction.cells]
    context.skipped = [(labels[index], context.text.take(reason)) for index, reason in extraction.skipped[:50]]


def cell_label(index: int, cell: object) -> str:
    """How feedback names a cell: its nbgrader grade_id (the function it holds) or its 1-based position."""
    metadata = cell.get("metadata") if isinstance(cell, dict) else None
    nbgrader = metadata.get("nbgrader") if isinstance(metadata, dict) else None
    grade_id = nbgrader.get("grade_id") if isinstance(nbgrader, dict) else None
    usable = isinstance(grade_id, str) and grade_id.isidentifier() and len(grade_id) <= 40
    return f"`{grade_id}`" if usable else f"#{index + 1}"
