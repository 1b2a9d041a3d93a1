"""``nbgrader autograde`` through the course's sandboxed grader: an nbgrader preprocessor in ``Execute``'s place.

nbgrader's ``Autograde`` runs a list of preprocessors on each submitted notebook (by default ``Execute``,
``IgnorePattern``, ``ClearMetadataPreprocessor``, ``LimitOutput``, ``SaveAutoGrades``, ``AssignLatePenalties``,
``CheckCellMetadata``). The course's ``nbgrader_config.py`` lists :class:`SandboxedGrader` where ``Execute``
was (:func:`is_configured` checks a configuration for it), so ``nbgrader autograde``, ``nbgrader autograde
--student ID`` and formgrader's Autograde button all grade like ``make grade``:

1. :class:`SandboxedGrader` never runs the notebook in nbgrader's kernel and imports no student code. It runs
   ``python -m autograder grade <the submitted notebook> --out <grades_dir> --sandbox bwrap`` in a subprocess
   (the same grader, sandbox and record as ``make grade``: ``<grades_dir>/<student>/results.json``,
   ``feedback.html`` and that student's row of ``grades.csv`` are updated), on the bytes the student submitted
   (``submitted/<student>/<assignment>/<notebook>.ipynb``), so the points are ``make grade``'s.
2. Into each ``auto_<question id>`` grade cell it writes two outputs, replacing whatever the cell held: a
   stdout stream with that question's bilingual feedback (the check names, points and messages of
   results.json, plain text, clipped to :attr:`SandboxedGrader.feedback_chars`), and an ``execute_result``
   whose ``text/plain`` is the question's points to 0.01, as ``grades.csv`` has them (both come from the
   student's ``scored.json``; results.json holds each check's share, rounded). nbgrader's ``SaveAutoGrades``
   reads that as the cell's score (``nbgrader.utils.determine_grade``: a single number in ``[0, points]`` is
   partial credit, so a 0 is a 0); manual overrides, "needs manual grade" and ``AssignLatePenalties`` then
   work as nbgrader defines them, and ``nbgrader generate_feedback`` shows the feedback beside the graders'
   comments on the 考察 answers.
3. Anything it cannot grade stops that submission with an error (nbgrader logs it, keeps no autograded copy
   and scores nothing): the grader failed or timed out, its record has no score for a question, or the
   notebook has a code grade cell that is not an ``auto_<question id>`` cell (``SaveAutoGrades`` would give it
   full points).

That file also drops ``ClearOutput`` from ``Autograde.sanitize_preprocessors``: nothing re-executes the
notebook, so the student's own figures stay in ``autograded/`` for the graders of the 考察 answers (as
``python -m autograder gradebook`` keeps them). The ``auto_*`` cells themselves hold a guard that makes nbgrader's
own ``Execute`` score them 0 with a message (never full points) when this configuration is missing.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from nbconvert.exporters.exporter import ResourcesDict
from nbformat.notebooknode import NotebookNode
from nbformat.v4 import new_output
from nbgrader import utils
from nbgrader.coursedir import CourseDirectory
from nbgrader.preprocessors import Execute, NbGraderPreprocessor
from traitlets import Enum, Integer, List, TraitError, Unicode, validate
from traitlets.config import Config
from traitlets.utils.importstring import import_item

from autograder import config, gradesheet
from autograder.gradebook import ASSIGNMENT, CELL_PREFIX, file_stamp

REPO_ROOT = config.PACKAGE_DIR.parent
_REFUSED_ARGS = ("-k", "--out", "--jobs", "--sandbox", "--backend", "--address")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # terminal escapes and the like; keeps \t and \n


class GradingFailed(RuntimeError):
    """The grader could not score this submission; nbgrader reports it and records no score."""


class SandboxedGrader(NbGraderPreprocessor):
    """Grade the submission with ``python -m autograder grade`` and write each question's points and feedback
    into its ``auto_<question id>`` cell (see the module docstring)."""

    grades_dir = Unicode(
        "grades",
        help="The grader's output folder (results.json, feedback.html, grades.csv per student), relative to the "
             "course directory: the same record as `make grade GRADES=...`.").tag(config=True)
    sandbox = Enum(
        ["bwrap", "none"], "bwrap",
        help="The grader's --sandbox: bwrap (bubblewrap), or none on a machine without it (unsafe: student code "
             "runs unconfined).").tag(config=True)
    data_dir = Unicode(
        "",
        help="The datasets folder (DATA_DIR) the grader reads; empty: $DATA_DIR, else the repository's data/ "
             "(as `make grade`).").tag(config=True)
    python = Unicode(
        sys.executable,
        help="The Python that runs `-m autograder grade` (default: the one running nbgrader).").tag(config=True)
    grader_args = List(
        Unicode(), [],
        help="More options of `python -m autograder grade`, e.g. ['--device', 'cuda', '--memory-gb', '8']; not "
             f"{', '.join(_REFUSED_ARGS)} (this preprocessor sets those).").tag(config=True)
    timeout = Integer(
        3600, help="Seconds one submission's grading may take before it is stopped (an error).").tag(config=True)
    feedback_chars = Integer(
        4000, help="The feedback text written into an auto_* cell is clipped to this many characters "
                   "(feedback.html has it all).").tag(config=True)

    @validate("grader_args")
    def _no_refused_args(self, proposal: Any) -> list[str]:
        refused = [arg for arg in proposal["value"]
                   if arg.split("=")[0] in _REFUSED_ARGS or (arg.startswith("-k") and not arg.startswith("--"))]
        if refused:
            raise TraitError(f"SandboxedGrader.grader_args may not hold {', '.join(refused)} "
                             "(the preprocessor sets it, or it would leave questions ungraded)")
        return proposal["value"]

    # --- where things are -------------------------------------------------------------------------------

    def _coursedir(self) -> CourseDirectory:
        """The converter's course directory (formgrader passes its own), else one read from this config."""
        node = self.parent
        while node is not None:
            coursedir = getattr(node, "coursedir", None)
            if isinstance(coursedir, CourseDirectory):
                return coursedir
            node = getattr(node, "parent", None)
        return CourseDirectory(config=self.config)

    def _data_dir(self, root: Path) -> str:
        if self.data_dir:
            return str((root / self.data_dir).resolve())
        if os.environ.get("DATA_DIR"):
            return str(Path(os.environ["DATA_DIR"]).resolve())
        return str(REPO_ROOT / "data")

    # --- grading ------------------------------------------------------------------------------------------

    def grade(self, submitted: Path, student: str, grades: Path, root: Path) -> tuple[dict, dict]:
        """Run the grader on ``submitted`` (a copy laid out as ``<student>/autoencoders/``) into ``grades``;
        returns that student's results.json and scored.json (the record grades.csv is made from)."""
        results = grades / student / "results.json"
        before = file_stamp(results)
        env = {key: value for key, value in os.environ.items() if key != "NBGRADER_EXECUTION"}
        env["DATA_DIR"] = self._data_dir(root)
        with tempfile.TemporaryDirectory(prefix="nbgrader-autograde-") as tmp:
            notebook = Path(tmp) / student / ASSIGNMENT / submitted.name
            notebook.parent.mkdir(parents=True)
            shutil.copyfile(submitted, notebook)
            command = [self.python, "-m", "autograder", "grade", str(notebook), "--out", str(grades),
                       "--sandbox", self.sandbox, "--jobs", "1", *self.grader_args]
            self.log.info("Grading %s with the sandboxed grader: %s", student, " ".join(command))
            code, output = _run(command, cwd=REPO_ROOT, env=env, timeout=self.timeout)
        self.log.debug("grader output:\n%s", output)
        if code != 0:
            tail = "\n".join(output.strip().splitlines()[-15:])
            raise GradingFailed(f"`python -m autograder grade` exited {code} on {submitted}:\n{tail}")
        if file_stamp(results) in (None, before):
            raise GradingFailed(f"the grader wrote no new {results} for {submitted}")
        return (json.loads(results.read_text(encoding="utf-8")),
                json.loads((grades / student / gradesheet.SCORED).read_text(encoding="utf-8")))

    def preprocess(self, nb: NotebookNode, resources: ResourcesDict) -> tuple[NotebookNode, ResourcesDict]:
        questions = config.questions()
        cells = {}
        for cell in nb.cells:
            if cell.cell_type != "code" or not utils.is_grade(cell):
                continue
            grade_id = cell.metadata["nbgrader"]["grade_id"]
            question = grade_id.removeprefix(CELL_PREFIX)
            if not grade_id.startswith(CELL_PREFIX) or question not in questions:
                raise GradingFailed(f"code grade cell {grade_id!r} is not an auto_<question id> cell of "
                                    "questions.toml: the sandboxed grader cannot score it")
            cells[question] = cell
        if not cells:
            return nb, resources
        info = resources["nbgrader"]
        coursedir = self._coursedir()
        root = Path(coursedir.root).resolve()
        submitted = Path(coursedir.format_path(coursedir.submitted_directory, info["student"],
                                               info["assignment"])) / f"{info['notebook']}.ipynb"
        if not submitted.is_file():
            raise GradingFailed(f"no submitted notebook {submitted} to grade")
        results, scored = self.grade(submitted, info["student"], root / self.grades_dir, root)
        tests = results.get("tests", [])
        # grades.csv's numbers: each graded question's points, to 0.01 (results.json holds rounded shares)
        points = {q: round(float(spec["points"]), 2) for q, spec in scored.get("questions", {}).items()
                  if gradesheet.graded(spec)}
        missing = sorted(set(cells) - set(points))
        if missing:
            raise GradingFailed(f"the grader scored no check of {', '.join(missing)} for {info['student']}")
        for question, cell in cells.items():
            maximum = float(cell.metadata["nbgrader"]["points"])
            graded_max = float(scored["questions"][question]["max_points"])
            if graded_max != maximum:
                raise GradingFailed(f"{CELL_PREFIX}{question} is worth {maximum:g} points in the release and "
                                    f"{graded_max:g} in questions.toml: release the assignment again")
            score = min(max(points[question], 0.0), maximum)
            text = feedback_text(questions[question], score, maximum,
                                 [t for t in tests if t.get("tags") == [question]], self.feedback_chars)
            cell.outputs = [new_output("stream", name="stdout", text=text),
                            new_output("execute_result", data={"text/plain": repr(score)}, metadata={},
                                       execution_count=None)]
        return nb, resources


def _interruptible() -> None:
    """In the grader's process, before it starts: SIGINT does its default again. A process started with SIGINT
    ignored (a CI job in the background, ``nohup``) passes that on, and Python then never raises
    KeyboardInterrupt, so the timeout's SIGINT would wait its whole grace for nothing."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _run(command: list[str], cwd: Path, env: dict[str, str], timeout: int) -> tuple[int, str]:
    """Run ``command`` in its own process group; on timeout stop the whole group. Returns (exit status,
    stdout and stderr together)."""
    proc = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, encoding="utf-8", errors="replace", start_new_session=True,
                            preexec_fn=_interruptible)
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        for sig, wait in ((signal.SIGINT, 30), (signal.SIGKILL, None)):  # SIGINT: the grader leaves its files whole
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.communicate(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue
        raise GradingFailed(f"the grader took more than {timeout} s (SandboxedGrader.timeout) and was stopped") from None
    except BaseException:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise
    return proc.returncode, output


def _number(value: float) -> str:
    return f"{round(value, 2):g}"


def _clean(text: str) -> str:
    return _CONTROL.sub("", text)


def feedback_text(spec: dict[str, Any], score: float, maximum: float, tests: list[dict[str, Any]],
                  limit: int) -> str:
    """One question's feedback as plain text: its title and points (Japanese, then English), then one line
    per check shown to students (mark, points, name) with the check's message indented below it."""
    lines = [f"【自動採点】{spec['title']}: {_number(score)} / {_number(maximum)} 点",
             f"Autograder: {spec.get('title_en', spec['title'])}: {_number(score)} / {_number(maximum)} points", ""]
    for test in tests:
        if test.get("visibility") == "hidden":
            continue
        mark = "✓" if test.get("status") == "passed" else "✗"
        name = str(test.get("name", "")).split(": ", 1)[-1]
        lines.append(f"{mark} {_number(float(test['score']))}/{_number(float(test['max_score']))}  {name}")
        lines += [f"    {line}" for line in str(test.get("output") or "").strip().splitlines()]
    text = _clean("\n".join(lines)) + "\n"
    if len(text) > limit:
        note = "\n…(省略: 全文は feedback.html にあります / clipped: feedback.html has it all)\n"
        text = text[: max(0, limit - len(note))].rstrip() + note
    return text


def is_configured(c: Config) -> bool:
    """Whether ``c`` makes ``nbgrader autograde`` grade with :class:`SandboxedGrader` and not ``Execute``
    (classes or their dotted names, as nbconvert takes them)."""
    if "Autograde" not in c or "autograde_preprocessors" not in c.Autograde:
        return False
    found = []
    for pp in c.Autograde.autograde_preprocessors:
        try:
            found.append(import_item(pp) if isinstance(pp, str) else pp)
        except ImportError:
            return False
    return SandboxedGrader in found and Execute not in found
