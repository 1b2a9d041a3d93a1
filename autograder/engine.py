"""Grade a class: find the submissions, grade each in its own trusted runner process, score them.

A PATH is an nbgrader ``submitted/`` folder (``submitted/<student_id>/autoencoders/*.ipynb``), one
student's ``submitted/<student_id>`` folder, a folder of notebooks (the student id is the file name), or a notebook. Each submission is graded
by ``python -m autograder.runner`` (which talks to the student's code only through a sandboxed
worker); submissions run in parallel, ``jobs`` at a time. Points come from questions.toml.
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from autograder import config
from autograder.rubric import RUBRIC_EXIT_CODE, RubricError

ASSIGNMENT = "autoencoders"
RUNNER_TIMEOUT_S = 3600


@dataclass(frozen=True)
class Submission:
    student_id: str
    notebook: Path


class BadInput(ValueError):
    """A PATH that holds no notebook to grade."""


def _pick_notebook(folder: Path) -> Path | None:
    notebooks = sorted(p for p in folder.glob("*.ipynb") if not p.name.startswith("."))
    preferred = folder / f"{ASSIGNMENT}.ipynb"
    return preferred if preferred in notebooks else (notebooks[0] if notebooks else None)


def discover(paths: list[Path]) -> list[Submission]:
    """The submissions under ``paths``, sorted by student id; raises :class:`BadInput` with a one-line reason."""
    found: dict[str, Submission] = {}
    for path in paths:
        if path.is_file():
            if path.suffix != ".ipynb":
                raise BadInput(f"{path} is not a notebook (.ipynb)")
            parts = path.resolve().parts
            student = parts[-3] if len(parts) >= 3 and parts[-2] == ASSIGNMENT else path.stem
            found[student] = Submission(student, path)
        elif path.is_dir():
            # submitted/ (one folder per student), one student's folder submitted/<student_id>, or its autoencoders/
            if path.resolve().name == ASSIGNMENT and _pick_notebook(path) is not None:
                found[path.resolve().parent.name] = Submission(path.resolve().parent.name, _pick_notebook(path))
                continue
            students = [path] if (path / ASSIGNMENT).is_dir() else [
                d for d in sorted(path.iterdir()) if (d / ASSIGNMENT).is_dir()]
            for student_dir in students:
                notebook = _pick_notebook(student_dir / ASSIGNMENT)
                if notebook is not None:
                    found[student_dir.name] = Submission(student_dir.name, notebook)
            if not students:
                for notebook in sorted(path.glob("*.ipynb")):
                    found[notebook.stem] = Submission(notebook.stem, notebook)
        else:
            raise BadInput(f"{path} does not exist")
    if not found:
        raise BadInput(f"no notebooks found in {', '.join(map(str, paths))} "
                       f"(expected submitted/<student_id>/{ASSIGNMENT}/*.ipynb or .ipynb files)")
    return sorted(found.values(), key=lambda s: s.student_id)


def run_one(submission: Submission, out: Path, options: list[str]) -> dict[str, Any]:
    """Grade one submission in a runner process; a runner that fails yields a result saying so."""
    folder = out / submission.student_id
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="grade-") as tmp:
        result_path = Path(tmp) / "checks.json"
        command = [sys.executable, "-m", "autograder.runner", str(submission.notebook), "--json", str(result_path),
                   *options]
        with open(folder / "grader.log", "w") as log:
            try:
                code = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, timeout=RUNNER_TIMEOUT_S).returncode
            except subprocess.TimeoutExpired:
                code = "timeout"
        if code == 0 and result_path.exists():
            return json.loads(result_path.read_text())
    if code == RUBRIC_EXIT_CODE:  # the graders are broken for everyone: stop the whole run
        raise RubricError((folder / "grader.log").read_text(errors="replace").strip().removeprefix("error: "))
    return {"notebook": str(submission.notebook), "checks": [], "runner_error":
            f"the grader itself failed on this submission ({code}); the instructor can read grader.log in its "
            "output folder"}


def score(result: dict[str, Any], questions: dict[str, dict]) -> dict[str, Any]:
    """Points per check and per question: each question's points split between its checks by their weights
    (``weight=`` on the marker, 1 by default); a failed check marked ``voids=True`` zeroes its question."""
    by_question: dict[str, list[dict]] = {qid: [] for qid in questions}
    for check in result["checks"]:
        by_question.setdefault(check["question"], []).append(check)
    scored = {}
    for qid, spec in questions.items():
        checks = by_question[qid]
        weights = sum(check.get("weight", 1) for check in checks)
        void = any(check.get("voids") and not check["passed"] for check in checks)  # e.g. a source policy
        for check in checks:
            share = spec["points"] * check.get("weight", 1) / weights if weights else 0.0
            check["max_points"] = share
            check["points"] = share if check["passed"] and not void else 0.0
        scored[qid] = {"title": spec["title"], "points": sum(c["points"] for c in checks),
                       "max_points": float(spec["points"]), "checks": checks}
    total = sum(q["points"] for q in scored.values())
    return {**result, "questions": scored, "total": round(total, 2),
            "max_total": float(sum(spec["points"] for spec in questions.values()))}


def grade_all(submissions: list[Submission], out: Path, *, jobs: int, options: list[str]) -> dict[str, dict]:
    """Grade every submission (``jobs`` in parallel) and return student id -> scored result."""
    questions = config.questions()
    results: dict[str, dict] = {}
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = {pool.submit(run_one, s, out, options): s for s in submissions}
        with tqdm(total=len(futures), desc="grading", unit="notebook") as bar:
            for future in as_completed(futures):
                submission = futures[future]
                results[submission.student_id] = score(future.result(), questions)
                bar.set_postfix(last=submission.student_id)
                bar.update()
    return dict(sorted(results.items()))
