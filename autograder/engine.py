"""Grade a class: find the submissions, grade each in its own trusted runner process, score them.

A PATH is an nbgrader ``submitted/`` folder (``submitted/<student_id>/autoencoders/*.ipynb``), one
student's ``submitted/<student_id>`` folder, a folder of notebooks (the student id is the file name), or a notebook. Each submission is graded
by ``python -m autograder.runner`` (which talks to the student's code only through a sandboxed
worker); submissions run in parallel, ``jobs`` at a time on this machine, or as Ray tasks on a cluster
(:mod:`autograder.ray_backend`). Points come from questions.toml.

A runner caps its own CPU time (:func:`limit_own_cpu`, :data:`RUNNER_CPU_S`): a notebook that makes the
trusted side's analyses too expensive ends that runner with ``SIGXCPU``, which costs that submission only
(:data:`TOO_EXPENSIVE`), however the notebook managed it.
"""
from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from autograder import config
from autograder.secret import VALUE_VARIABLE
from autograder.i18n import Message, json_fields, t
from autograder.rubric import RUBRIC_EXIT_CODE, RubricError

ASSIGNMENT = "autoencoders"
RUNNER_TIMEOUT_S = 3600
# The runner's own CPU time (RLIMIT_CPU, soft), its start-up included; its workers' CPU is theirs, not counted.
# Measured on this project's 2-core machine: the reference's runner used 9.7 CPU-s ("cpu_seconds" in
# grades/reference/scored.json after `DATA_DIR=../shared/datasets python -m autograder grade
# examples/submitted/reference --out grades`; 9.6 for `cheater`, 7.1 for `untouched`). About twice that (20),
# with a floor of 30: a slower machine, CUDA's start-up in the trusted process or a busy machine's cache misses
# must not end an honest run. The attacks it backs up cost the runner seconds now, not minutes.
RUNNER_CPU_S = 30
RUNNER = (sys.executable, "-m", "autograder.runner")
PER_GPU = 4  # submissions sharing one GPU with the Ray backend, by default
MAX_NOTEBOOK_BYTES = 64 * 2**20  # the lab's notebook with all its figures is about 1 MB


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


def _student_id(name: str, source: Path) -> str:
    """``name`` as a student id: it names an output folder, so it is never hidden nor a path step (``..``), and
    it is the first cell of a grades.csv row, so it never starts as a spreadsheet formula (``=``, ``+``, ``-``, ``@``)."""
    if not name or name[0] in ".=+-@":
        raise BadInput(f"{source}: {name!r} cannot be a student id (a hidden name, a path step such as '..', or "
                       f"a spreadsheet formula); rename it")
    return name


def discover(paths: list[Path]) -> list[Submission]:
    """The submissions under ``paths``, sorted by student id; raises :class:`BadInput` with a one-line reason."""
    found: dict[str, Submission] = {}
    for path in paths:
        if path.is_file():
            if path.suffix != ".ipynb":
                raise BadInput(f"{path} is not a notebook (.ipynb)")
            parts = path.resolve().parts
            student = _student_id(parts[-3] if len(parts) >= 3 and parts[-2] == ASSIGNMENT else path.stem, path)
            found[student] = Submission(student, path)
        elif path.is_dir():
            # submitted/ (one folder per student), one student's folder submitted/<student_id>, or its autoencoders/
            if path.resolve().name == ASSIGNMENT and _pick_notebook(path) is not None:
                student = _student_id(path.resolve().parent.name, path)
                found[student] = Submission(student, _pick_notebook(path))
                continue
            students = [path] if (path / ASSIGNMENT).is_dir() else [
                d for d in sorted(path.iterdir()) if (d / ASSIGNMENT).is_dir()]
            for student_dir in students:
                notebook = _pick_notebook(student_dir / ASSIGNMENT)
                if notebook is not None:
                    student = _student_id(student_dir.resolve().name, student_dir)
                    found[student] = Submission(student, notebook)
            if not students:
                for notebook in sorted(path.glob("*.ipynb")):
                    if not notebook.name.startswith("."):  # hidden, as in _pick_notebook (a "...ipynb" is not "..")
                        found[_student_id(notebook.stem, notebook)] = Submission(notebook.stem, notebook)
        else:
            raise BadInput(f"{path} does not exist")
    if not found:
        raise BadInput(f"no notebooks found in {', '.join(map(str, paths))} "
                       f"(expected submitted/<student_id>/{ASSIGNMENT}/*.ipynb or .ipynb files)")
    return sorted(found.values(), key=lambda s: s.student_id)


@dataclass(frozen=True)
class RunnerOutcome:
    """What one runner process left behind, as plain data (it crosses machines with the Ray backend)."""

    code: int | str  # the runner's exit code, or "timeout"
    result: dict[str, Any] | None  # the checks' outcomes when the runner finished (code 0)
    log: str  # the runner's stdout and stderr, for grader.log


def run_runner(name: str, notebook: bytes, options: list[str], *,
               runner: list[str] | None = None, secret: str | None = None) -> RunnerOutcome:
    """Run the runner on a notebook's bytes, written as ``name`` into a private temporary folder.

    Both backends call this, so a submission is graded the same way on this machine or on a Ray node;
    nothing here reads the driver's files. ``runner`` replaces the command (tests use it to inject failures);
    ``secret`` (hex) is the driver's course secret, for a node that does not have its file (autograder/secret.py).
    """
    with tempfile.TemporaryDirectory(prefix="grade-") as tmp:
        notebook_path, result_path, log_path = Path(tmp, name), Path(tmp, "checks.json"), Path(tmp, "grader.log")
        notebook_path.write_bytes(notebook)
        command = [*(runner or RUNNER), str(notebook_path), "--json", str(result_path), *options]
        with open(log_path, "wb") as log:
            try:
                code: int | str = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT,
                                                 timeout=RUNNER_TIMEOUT_S,
                                                 env={**os.environ, VALUE_VARIABLE: secret} if secret else None
                                                 ).returncode
            except subprocess.TimeoutExpired:
                code = "timeout"
        result = json.loads(result_path.read_text()) if code == 0 and result_path.exists() else None
        return RunnerOutcome(code, result, log_path.read_text(errors="replace"))


TOO_EXPENSIVE = t("このノートブックは採点プログラムの解析に時間がかかりすぎました（採点側の CPU 時間が上限の {seconds} 秒を"
                  "超えたため、採点を打ち切りました）。この提出物だけが 0 点になります",
                  "the notebook made the grader's analysis too expensive (the grader's own CPU time went over its "
                  "{seconds} s limit, so grading stopped); only this submission scores 0", seconds=RUNNER_CPU_S)


def limit_own_cpu() -> None:
    """Cap this process's CPU time at :data:`RUNNER_CPU_S` (soft ``RLIMIT_CPU``: the kernel then sends ``SIGXCPU``,
    which ends a Python process), without a core dump. The runner calls it on itself, first thing.

    The hard limit stays as it is, so that the sandboxed workers the runner starts can still be given their own,
    larger limit (:mod:`autograder.limits` raises their soft limit, which an unprivileged process may do only up to
    the hard one). ``RLIMIT_CPU`` counts each process's own CPU, so the workers' training is not counted here.
    """
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    if hard == resource.RLIM_INFINITY or hard > RUNNER_CPU_S:
        resource.setrlimit(resource.RLIMIT_CPU, (RUNNER_CPU_S, hard))
    resource.setrlimit(resource.RLIMIT_CORE, (0, resource.getrlimit(resource.RLIMIT_CORE)[1]))


def runner_error(submission: Submission, message: Message | str) -> dict[str, Any]:
    """The result of a submission whose grading failed: no check ran, and the notes say why (both languages)."""
    return {"notebook": str(submission.notebook), "checks": [], **json_fields("runner_error", message)}


def finish(submission: Submission, out: Path, outcome: RunnerOutcome) -> dict[str, Any]:
    """Write ``out/<student>/grader.log`` and return the submission's unscored result; raises
    :class:`RubricError` when the graders themselves are broken (exit code 3: stop the whole run)."""
    folder = out / submission.student_id
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "grader.log").write_text(outcome.log)
    if outcome.code == RUBRIC_EXIT_CODE:
        raise RubricError(outcome.log.strip().removeprefix("error: "))
    if outcome.code == -signal.SIGXCPU:
        return runner_error(submission, TOO_EXPENSIVE)
    if outcome.result is None:
        return runner_error(submission, t("この提出物の採点中に採点プログラム自体が失敗しました（{code}）。担当教員は"
                                          "出力フォルダの grader.log で原因を確認できます",
                                          "the grader itself failed on this submission ({code}); the instructor can "
                                          "read grader.log in its output folder", code=outcome.code))
    return {**outcome.result, "notebook": str(submission.notebook)}


class NotebookTooLarge(OSError):
    """A submitted file over :data:`MAX_NOTEBOOK_BYTES`: it is not read at all."""


def read_notebook(submission: Submission) -> bytes:
    """The submitted file's bytes; raises :class:`NotebookTooLarge` (before reading) or another OSError."""
    size = submission.notebook.stat().st_size
    if size > MAX_NOTEBOOK_BYTES:
        raise NotebookTooLarge(f"{size / 2**20:.0f} MB")
    return submission.notebook.read_bytes()


def unreadable(submission: Submission, error: OSError) -> dict[str, Any]:
    """The result of a submission whose file the driver could not read (or would not: too large)."""
    if isinstance(error, NotebookTooLarge):
        return runner_error(submission, t("提出されたファイルが大きすぎます（{size}、上限 {limit} MB）。出力の画像を減らして"
                                          "保存し直してください",
                                          "the submitted file is too large ({size}; the limit is {limit} MB): clear "
                                          "some outputs and save it again", size=str(error),
                                          limit=MAX_NOTEBOOK_BYTES // 2**20))
    return runner_error(submission, t("提出されたファイルを読み込めませんでした（{error}）",
                                      "the submitted file could not be read ({error})", error=type(error).__name__))


def run_one(submission: Submission, out: Path, options: list[str]) -> dict[str, Any]:
    """Grade one submission in a runner process on this machine; a runner that fails yields a result saying so."""
    try:
        notebook = read_notebook(submission)
    except OSError as error:
        return unreadable(submission, error)
    return finish(submission, out, run_runner(submission.notebook.name, notebook, options))


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
        scored[qid] = {"title": spec["title"], "title_en": spec.get("title_en", spec["title"]),
                       "points": sum(c["points"] for c in checks),
                       "max_points": float(spec["points"]), "checks": checks}
    total = sum(q["points"] for q in scored.values())
    return {**result, "questions": scored, "total": round(total, 2),
            "max_total": float(sum(spec["points"] for spec in questions.values()))}


def grade_all(submissions: list[Submission], out: Path, *, jobs: int, options: list[str], backend: str = "local",
              address: str | None = None, per_gpu: int = PER_GPU) -> dict[str, dict]:
    """Grade every submission and return student id -> scored result.

    ``backend="local"`` runs ``jobs`` runners at a time on this machine; ``backend="ray"`` sends each
    submission to a Ray task (:mod:`autograder.ray_backend`: a cluster at ``address``, or a local Ray with
    ``jobs`` CPUs; ``per_gpu`` submissions share a GPU). Both give the same results.
    """
    if backend == "ray":
        from autograder import ray_backend

        return ray_backend.grade_all(submissions, out, jobs=jobs, options=options, address=address, per_gpu=per_gpu)
    if backend != "local":
        raise ValueError(f"unknown backend {backend!r} (use 'local' or 'ray')")
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
