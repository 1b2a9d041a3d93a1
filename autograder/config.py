"""The grader's data: questions and points (``questions.toml``) and calibrated thresholds (``calibration.json``)."""
from __future__ import annotations

import importlib
import json
from functools import lru_cache
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

PACKAGE_DIR = Path(__file__).resolve().parent
QUESTIONS_FILE = PACKAGE_DIR / "questions.toml"
CALIBRATION_FILE = PACKAGE_DIR / "calibration.json"
# Thresholds are per device: training on CUDA rounds differently, so `make calibrate DEVICE=cuda` writes its own.
CALIBRATION_FILES = {"cpu": CALIBRATION_FILE, "cuda": PACKAGE_DIR / "calibration-cuda.json"}
LATENTS_FILE = PACKAGE_DIR / "data" / "mnist_ae_latents.npy"
REFERENCE_NOTEBOOK = PACKAGE_DIR.parent / "solutions" / "autoencoders.ipynb"
TEMPLATE_NOTEBOOK = PACKAGE_DIR.parent / "assignment" / "autoencoders.ipynb"
GRADING_SEED = 0
# Recorded in calibration.json: thresholds made with another way of training or scoring are stale.
PIPELINE = ("train (student or encoder worker) → encode (encoder worker) → decode (student worker); "
            "z from the course secret, snapped to a grid, with smoothness pairs; vae_training trains the given VAE")


class StaleCalibration(RuntimeError):
    """calibration.json is missing or was made for other budgets."""


def labtools() -> ModuleType:
    """The instructor's copy of ``labtools`` (solutions/labtools.py), imported in this trusted process."""
    folder = str(REFERENCE_NOTEBOOK.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    return importlib.import_module("labtools")


def questions(path: Path = QUESTIONS_FILE) -> dict[str, dict[str, Any]]:
    """Question id -> {"points", "title", optional "budget"}, in the handout's order."""
    with open(path, "rb") as file:
        data = tomllib.load(file)
    for qid, spec in data.items():
        if not isinstance(spec.get("points"), (int, float)) or spec["points"] < 0:
            raise ValueError(f"{path.name}: [{qid}] needs points = a number >= 0")
    return data


def budgets() -> dict[str, dict[str, Any]]:
    """Question id -> training budget, for the questions that train a model."""
    return {qid: spec["budget"] for qid, spec in questions().items() if "budget" in spec}


def trusted(question: str) -> list[str]:
    """The student functions that the grader's own versions replace while ``question`` is graded (a bug
    costs once: ``conv_vae`` uses the grader's ``reparameterize``)."""
    return list(questions()[question].get("trusted", []))


def calls(question: str) -> list[str]:
    """The student functions that ``question``'s model calls as the student wrote them (``vae_training``'s VAE
    calls ``reparameterize``): it must train where no trusted implementation of them is mounted."""
    return list(questions()[question].get("calls", []))


def training_budget(question: str) -> dict[str, Any]:
    """The question's budget with its ``trusted``, ``calls`` and ``given`` settings, as the training pipeline
    takes it."""
    spec = questions()[question]
    return {**budgets()[question], "trusted": trusted(question), "calls": calls(question),
            "given": bool(spec.get("given", False))}


@lru_cache(maxsize=4)
def template_source(model: str) -> str:
    """The released template's definitions (assignment/autoencoders.ipynb) that class ``model`` needs, for a
    question whose model class is the given one (questions.toml's ``given``): public code, stubs included."""
    from autograder.extract import extract_notebook
    from autograder.needed import needed_cells

    cells = [(str(index), code) for index, code in extract_notebook(TEMPLATE_NOTEBOOK).cells]
    return "\n\n".join(code for _, code in needed_cells(cells, [model]))


def graded_models() -> list[str]:
    """The student's names that the training questions use: each budget's model class, and the functions it
    ``calls`` or that a ``trusted`` version replaces."""
    return sorted({name for qid, budget in budgets().items() for name in [budget["model"], *calls(qid), *trusted(qid)]})


def graded_names() -> list[str]:
    """Every name of the student's that a check asks a worker for: the questions' ``functions`` and
    :func:`graded_models` (a worker loads only what these need: :mod:`autograder.needed`)."""
    return sorted({*graded_models(), *(name for spec in questions().values() for name in spec.get("functions", []))})


def train_arguments(budget: dict[str, Any]) -> dict[str, Any]:
    """The ``train`` probe's arguments for a budget (everything but the model's name and the time limit)."""
    return {key: budget[key] for key in ("kind", "dataset", "n_train", "epochs", "batch_size", "lr")}


def forbidden_modules() -> list[str]:
    """Every module that a question's source policy forbids (``[QUESTION.policy] forbid``): the ``functions``
    worker, which runs those questions' functions, has none of them (autograder/sandbox.py hides them)."""
    return sorted({module for spec in questions().values() for module in spec.get("policy", {}).get("forbid", [])})


def datasets() -> list[str]:
    """The datasets whose training split the workers need (those of the training budgets)."""
    return sorted({budget["dataset"] for budget in budgets().values()})


def calibration_file(device: str = "cpu") -> Path:
    """The calibration that grading on ``device`` uses: that device's own when it exists, else the CPU's
    (see :func:`calibration_warning`)."""
    own = CALIBRATION_FILES.get(device, CALIBRATION_FILE)
    return own if own.exists() else CALIBRATION_FILE


def calibration_warning(device: str) -> str | None:
    """A line for the instructor when ``device`` has no calibration of its own (its thresholds are the CPU's)."""
    if device != "cpu" and not CALIBRATION_FILES[device].exists():
        return (f"no {device.upper()} calibration yet ({CALIBRATION_FILES[device].name}): the training checks use the "
                f"CPU's thresholds; run `make calibrate DEVICE={device}` on this machine for its own")
    return None


def calibration(device: str = "cpu", path: Path | None = None) -> dict[str, Any]:
    """The calibration for ``device`` (see :func:`calibration_file`), checked against the current budgets."""
    path = path or calibration_file(device)
    if not path.exists():
        raise StaleCalibration(f"{path.name} is missing: run `make calibrate`")
    data = json.loads(path.read_text())
    fix = f"run `make calibrate{'' if path == CALIBRATION_FILE else ' DEVICE=' + device}`"
    if data.get("pipeline") != PIPELINE:
        raise StaleCalibration(f"{path.name} was made with another training pipeline: {fix}")
    for qid, budget in budgets().items():
        recorded = data.get("questions", {}).get(qid, {}).get("budget")
        if not isinstance(recorded, dict) or _trained(recorded) != _trained(budget):
            raise StaleCalibration(f"{path.name} was made for another {qid} budget: {fix}")
    return data


def _trained(budget: dict[str, Any]) -> dict[str, Any]:
    """What decides a budget's trained model: everything but its CPU limit (``cpu_s``), which only stops it."""
    return {key: value for key, value in budget.items() if key != "cpu_s"}


def reference_cpu_s(device: str = "cpu") -> float:
    """The CPU-seconds the reference solution's workers use in a full grading (``make calibrate`` measures it);
    infinite while calibrate itself grades the reference, before it has been measured, and when the calibration is
    stale (the training checks then fail with that reason themselves)."""
    try:
        recorded = calibration(device).get("reference_cpu_s")
    except StaleCalibration:
        return float("inf")
    return float(recorded) if isinstance(recorded, (int, float)) and recorded > 0 else float("inf")
