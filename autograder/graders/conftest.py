"""Fixtures shared by the graders: the student's worker, the reference solution, the calibration."""
from __future__ import annotations

from typing import Any, Iterator

import pytest

from autograder import config
from autograder.client import Worker
from autograder.extract import load_definitions


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "question(id, voids=False, weight=1): the question id (questions.toml) a check "
                                       "belongs to; its share of the points is weight / the question's total weight; "
                                       "voids=True: failing this check voids the whole question")


@pytest.fixture(scope="session")
def context(request: pytest.FixtureRequest) -> Any:
    """The submission being graded (see :class:`autograder.submission.Context`)."""
    from autograder.submission import Context

    return next(p for p in request.config.pluginmanager.get_plugins() if isinstance(p, Context))


@pytest.fixture(scope="session")
def student(context: Any) -> Iterator[Worker]:
    """The student's definitions, loaded in a sandboxed worker process. It never sees a held-out image."""
    worker = context.worker("student")
    yield worker
    context.worker_starts += worker.starts
    context.failed_cells = worker.failed_cells()
    worker.close()


@pytest.fixture(scope="session")
def encoder(context: Any) -> Iterator[Worker]:
    """A second worker with the same definitions that maps held-out images to latents, and nothing else.

    It sees the held-out images, so it is never asked to decode: what gets scored is drawn by
    :func:`student`'s worker from latents alone (see :mod:`autograder.bottleneck`).
    """
    worker = context.worker("encoder")
    yield worker
    context.worker_starts += worker.starts
    worker.close()


@pytest.fixture(scope="session")
def training_plan(student: Worker, encoder: Worker, device: str, context: Any,
                  request: pytest.FixtureRequest) -> Iterator[Any]:
    """The selected training questions, trained (two at a time) on first use; see :class:`TrainingPlan`."""
    from autograder.bottleneck import TrainingPlan

    selected = {item.get_closest_marker("question").args[0] for item in request.session.items
                if "training_plan" in getattr(item, "fixturenames", ()) and item.get_closest_marker("question")}
    plan = TrainingPlan(student, encoder, [q for q in config.budgets() if q in selected], device)
    yield plan
    plan.close()
    context.training_seconds = plan.seconds


@pytest.fixture(scope="session")
def pictures(context: Any) -> list[dict]:
    """Pictures for the feedback page, drawn here from tensors the grader holds (see autograder/pictures.py):
    each ``{"question", "caption_ja", "caption_en", "uri"}``."""
    return context.pictures


@pytest.fixture(scope="session")
def device(context: Any) -> str:
    return context.sandbox.device


@pytest.fixture(scope="session")
def reference() -> dict:
    """The reference solution's ``vae_loss`` (trusted code, loaded in this process)."""
    return load_definitions(config.REFERENCE_NOTEBOOK, names={"vae_loss"})


@pytest.fixture(scope="session")
def calibration(device: str) -> dict:
    return config.calibration(device)


@pytest.fixture(scope="session")
def submitted_notebook(context: Any) -> dict:
    """The submitted notebook as JSON (parsed, never run, by the runner)."""
    return context.notebook
