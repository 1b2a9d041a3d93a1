"""Fixtures shared by the graders: the student's worker, the reference solution, the calibration."""
from __future__ import annotations

from typing import Any, Iterator

import pytest
import torch

from autograder import config
from autograder.client import Worker
from autograder.extract import load_definitions


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "question(id): the question id (questions.toml) a check belongs to")


@pytest.fixture(scope="session")
def context(request: pytest.FixtureRequest) -> Any:
    """The submission being graded (see :class:`autograder.submission.Context`)."""
    from autograder.submission import Context

    return next(p for p in request.config.pluginmanager.get_plugins() if isinstance(p, Context))


@pytest.fixture(scope="session")
def student(context: Any) -> Iterator[Worker]:
    """The student's definitions, loaded in a sandboxed worker process."""
    if context.notebook_error:
        worker = Worker([], context.runtime, context.sandbox, context.log_path)
        worker.broken = context.notebook_error
    else:
        worker = Worker(context.cells, context.runtime, context.sandbox, context.log_path)
    yield worker
    context.worker_starts = worker.starts
    context.load_report = worker.loaded
    worker.close()


@pytest.fixture(scope="session")
def device(context: Any) -> str:
    return context.sandbox.device


@pytest.fixture(scope="session")
def reference() -> dict:
    """The reference solution's definitions (trusted code, loaded in this process)."""
    return load_definitions(config.REFERENCE_NOTEBOOK)


@pytest.fixture(scope="session")
def calibration() -> dict:
    return config.calibration()


@pytest.fixture(scope="session")
def held_out_images() -> torch.Tensor:
    """MNIST test images (the grader's own copy), for scoring held-out outputs."""
    n_eval = max(budget["n_eval"] for budget in config.budgets().values())
    return config.labtools().load_dataset("mnist", train=False, limit=n_eval)[0]


@pytest.fixture(scope="session")
def submitted_notebook(context: Any) -> dict:
    """The submitted notebook as JSON (parsed, never run, by the runner)."""
    return context.notebook
