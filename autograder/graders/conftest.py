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


def _role(context: Any, role: str) -> Iterator[Worker]:
    worker = context.worker(role)
    yield worker
    context.worker_starts += worker.starts
    context.failed_cells += [cell for cell in worker.failed_cells() if cell not in context.failed_cells]
    worker.close()


@pytest.fixture(scope="session")
def functions(context: Any) -> Iterator[Worker]:
    """The worker that runs the student's functions (reparameterize, vae_loss, kmeans, plot_latent_clusters).

    Its runtime has no training loop, no trusted implementation and no data, and the forbidden k-means packages
    are not installed in it (see autograder/sandbox.py's ROLE_FILES)."""
    yield from _role(context, "functions")


@pytest.fixture(scope="session")
def student(context: Any) -> Iterator[Worker]:
    """The worker that builds, probes and trains the model classes (with the trusted implementations of
    questions.toml's ``trusted`` names) and decodes the latents the grader chose. It never sees a held-out image."""
    yield from _role(context, "student")


@pytest.fixture(scope="session")
def encoder(context: Any) -> Iterator[Worker]:
    """A worker with the same definitions that trains the models that call the student's own functions
    (vae_training: it holds no trusted implementation), then maps held-out images to latents.

    It sees the held-out images, so it is never asked to decode: what gets scored is drawn by
    :func:`student`'s worker from latents alone (see :mod:`autograder.bottleneck`).
    """
    yield from _role(context, "encoder")


@pytest.fixture(scope="session")
def training_plan(functions: Worker, student: Worker, encoder: Worker, context: Any,
                  request: pytest.FixtureRequest) -> Iterator[Any]:
    """The selected training questions, two at a time, started as soon as they were collected (see
    :meth:`autograder.submission.Context.training_plan` and :class:`autograder.bottleneck.TrainingPlan`)."""
    plan = context.training_plan(request.session.items)
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
