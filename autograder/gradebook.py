"""The autograded points in nbgrader's gradebook, beside the hand-graded 考察 answers.

``sync(course_dir, grades_dir)`` puts each student's points per question, read from
``grades_dir/<student>/results.json`` (written by ``python -m autograder grade``; a test's ``tags`` is
``[question id]``), into ``course_dir/gradebook.db`` through nbgrader's own :class:`nbgrader.api.Gradebook`:
the score of question ``q`` is the ``auto_score`` of the release's read-only grade cell ``auto_<q>``.
Formgrader then shows the autograded checks and the 考察 answers of a submission together, manual grading
works as usual, and ``nbgrader export`` gives one CSV whose totals include both. Step by step:

1. **The assignment's cells.** The release notebook (``course_dir/release/<assignment>/autoencoders.ipynb``,
   made by ``tools/course.py release``, else the committed ``assignment/autoencoders.ipynb``) must hold one
   ``auto_<q>`` cell per question of ``questions.toml``, with its points. Its grade, solution and locked
   cells are recorded in the gradebook by nbgrader's ``SaveCells`` preprocessor, the step of
   ``nbgrader generate_assignment`` that does it (run on the release, whose cells are already cleared and
   checksummed, it records what ``generate_assignment`` records), since this course's release is generated
   outside the course directory (``tools/release.py``).
2. **The submissions.** Formgrader opens a submission from ``autograded/<student>/<assignment>/``, so a
   database row alone would list the student but show no notebook. Each graded student with a notebook in
   ``submitted/`` is brought in by ``nbgrader autograde`` itself, with ``--Execute.enabled=False`` and
   ``--SandboxedGrader.enabled=False`` (whichever the course's ``nbgrader_config.py`` uses; nothing is graded
   and no student code runs: nbgrader only sanitises the notebook, restores the locked cells, copies it to
   ``autograded/`` and creates the student and the submission) and ``--ClearOutput.enabled=False`` (the
   student's own figures stay visible to the graders of the 考察 answers). nbgrader skips submissions
   already autograded and redoes those with a newer ``timestamp.txt`` (a re-collected submission); manual
   scores survive both. A student graded from a notebook outside ``submitted/`` gets the submission
   through the API only: the scores count, but formgrader cannot open the notebook.
3. **The scores.** For every ``auto_<q>`` grade of a graded student: ``auto_score`` = the sum of that
   question's test scores (rounded to 0.01, as ``grades.csv``). ``manual_score`` is never written, so a
   grader's override in formgrader stays on top (and is flagged for review when the autograded score under
   it changes); the ``answer_*`` cells are never touched. A question absent from ``results.json`` (not
   graded, e.g. a ``-k`` run) keeps its previous score; on a submission brought in by this run it has none
   (``auto_score`` empty, flagged "needs manual grade"): the score nbgrader gives an ``auto_*`` cell that
   nothing graded means nothing.

Re-running updates the scores (idempotent). This is the batch path (``make grade`` on many cores, Ray); with the
course's ``nbgrader_config.py``, ``nbgrader autograde`` grades through the same grader itself
(:mod:`autograder.nbgrader_autograde`), and both write the same scores.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import sqlite3
import subprocess
import sys
import warnings
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from autograder import config

ASSIGNMENT = "autoencoders"
NOTEBOOK = "autoencoders"  # the graded notebook, autoencoders.ipynb
CELL_PREFIX = "auto_"
DEFAULT_COURSE_ID = os.environ.get("NBGRADER_COURSE_ID", "ae-vae-lab")
AUTOGRADE_LOG = "nbgrader-autograde.log"  # written into the grades folder
COMMITTED_RELEASE = config.PACKAGE_DIR.parent / "assignment" / f"{NOTEBOOK}.ipynb"
DESCRIPTION = """\
Put the autograded points of `python -m autograder grade --out DIR` into nbgrader's gradebook.db, as the
scores of the release's read-only grade cells auto_<question id>, so that formgrader shows them beside the
hand-graded 考察 answers and `nbgrader export` totals both.

Records the release's cells in the gradebook (nbgrader's SaveCells), brings each graded student's
submitted/ notebook into autograded/ with `nbgrader autograde --Execute.enabled=False
--SandboxedGrader.enabled=False` (nothing is graded and no student code runs; formgrader needs that copy),
then sets each auto_* cell's autograded score. Manual scores are never changed: a grader's override in
formgrader stays on top. A question that DIR has not graded keeps its previous score. Rerun after every
`make grade`."""


class GradebookError(Exception):
    """Bad input (not a course directory, no results, a release without the auto_* cells): one line."""


@dataclass
class SyncSummary:
    """What :func:`sync` did. ``updated``: students whose autograded scores were written; ``new_students``:
    those added to nbgrader's student table; ``autograded``: submissions brought into ``autograded/`` by
    this run; ``not_shown``: student -> why formgrader cannot open their notebook; ``failed``: those of them
    that ``nbgrader autograde`` failed on; ``not_graded``: student -> the questions that have no autograded
    score yet; ``release``: the notebook the cells came from."""

    release: Path
    updated: list[str] = field(default_factory=list)
    new_students: list[str] = field(default_factory=list)
    autograded: list[str] = field(default_factory=list)
    not_shown: dict[str, str] = field(default_factory=dict)
    failed: list[str] = field(default_factory=list)
    not_graded: dict[str, list[str]] = field(default_factory=dict)


def auto_cell(question: str) -> str:
    """The grade_id of the release's grade cell that holds a question's autograded points."""
    return CELL_PREFIX + question


def read_scores(grades_dir: Path) -> dict[str, dict[str, float]]:
    """Student id -> {question id: points} from every ``grades_dir/<student>/results.json``; a question
    without a test in the file is absent (not graded)."""
    if not grades_dir.is_dir():
        raise GradebookError(f"grades folder {grades_dir} does not exist")
    files = sorted(grades_dir.glob("*/results.json"))
    if not files:
        raise GradebookError(f"no <student_id>/results.json in {grades_dir}: run `python -m autograder grade` first")
    scores: dict[str, dict[str, float]] = {}
    for path in files:
        try:
            tests = json.loads(path.read_text(encoding="utf-8"))["tests"]
            sums: dict[str, float] = {}
            for test in tests:
                (question,) = test["tags"]
                sums[question] = sums.get(question, 0.0) + float(test["score"])
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise GradebookError(f"{path} is not an autograder results.json ({type(error).__name__}: {error})") \
                from None
        scores[path.parent.name] = {question: round(total, 2) for question, total in sums.items()}
    return scores


def release_notebook(course_dir: Path, assignment: str = ASSIGNMENT) -> Path:
    """The course's release of the notebook (``tools/course.py release``), else the committed one."""
    released = course_dir / "release" / assignment / f"{NOTEBOOK}.ipynb"
    return released if released.is_file() else COMMITTED_RELEASE


def check_release(notebook: nbformat.NotebookNode, where: Path) -> None:
    """The release's ``auto_*`` cells are exactly one read-only autograded grade cell per question of
    ``questions.toml``, in its order, with its points."""
    cells = [c for c in notebook.cells if c.metadata.get("nbgrader", {}).get("grade_id", "").startswith(CELL_PREFIX)]
    found = [(c.metadata.nbgrader["grade_id"], float(c.metadata.nbgrader.get("points", -1))) for c in cells]
    wanted = [(auto_cell(q), float(spec["points"])) for q, spec in config.questions().items()]
    if found != wanted:
        raise GradebookError(f"{where}'s auto_* cells {found} are not questions.toml's {wanted}: "
                             "run `make assignment`")
    for cell in cells:
        meta = cell.metadata.nbgrader
        if cell.cell_type != "code" or not meta.get("grade") or meta.get("solution") or not meta.get("locked"):
            raise GradebookError(f"{where}: cell {meta['grade_id']} is not a locked autograded grade cell")


def _open_gradebook(db: Path, course_id: str):
    from nbgrader.api import Gradebook

    return Gradebook(f"sqlite:///{db}", course_id)


def register_release(db: Path, notebook: nbformat.NotebookNode, assignment: str, course_id: str) -> None:
    """Record the assignment, its notebook and its cells in the gradebook, as ``generate_assignment`` does."""
    from nbgrader.preprocessors import SaveCells

    with _open_gradebook(db, course_id) as gb:
        gb.update_or_create_assignment(assignment)
    resources = {"nbgrader": {"notebook": NOTEBOOK, "assignment": assignment, "db_url": f"sqlite:///{db}"}}
    try:
        SaveCells().preprocess(notebook, resources)
    except RuntimeError as error:  # nbgrader refuses to change the cells of a notebook that has submissions
        raise GradebookError(f"{db}: {error}: the gradebook holds an older release of {assignment}") from None


def _nbgrader_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")  # nbgrader runs `alembic`
    return env


def autograde_commands(course_dir: Path, db: Path, assignment: str, course_id: str,
                       students: list[str], others: list[str]) -> list[list[str]]:
    """The ``nbgrader autograde`` command lines (no execution, outputs kept) for ``students`` and none of
    ``others`` (the other folders of ``submitted/``): one run that excludes the others, or, when an id holds
    a comma (nbgrader's exclusion list is comma-separated), one run per student."""
    base = [sys.executable, "-m", "nbgrader", "autograde", assignment, f"--CourseDirectory.root={course_dir}",
            f"--CourseDirectory.db_url=sqlite:///{db}", f"--CourseDirectory.course_id={course_id}",
            "--Execute.enabled=False", "--SandboxedGrader.enabled=False", "--ClearOutput.enabled=False"]
    if any("," in name for name in students + others):
        return [base + [f"--CourseDirectory.student_id={glob.escape(s)}"] for s in students]
    return [base + ["--CourseDirectory.student_id=*", f"--CourseDirectory.student_id_exclude={','.join(others)}"]]


def file_stamp(path: Path) -> tuple[int, int, int] | None:
    """The file's inode, modification time and size (None when it is missing): a rewrite changes it."""
    try:
        info = path.stat()
    except FileNotFoundError:
        return None
    return info.st_ino, info.st_mtime_ns, info.st_size


def _read(path: Path) -> bytes | None:
    return path.read_bytes() if path.is_file() else None


def _up_to_date(submission: Path, autograded: Path) -> bool:
    """Whether nbgrader would skip the submission: autograded already, from the same ``timestamp.txt``."""
    return ((autograded / f"{NOTEBOOK}.ipynb").is_file()
            and _read(submission / "timestamp.txt") == _read(autograded / "timestamp.txt"))


def bring_in(course_dir: Path, db: Path, assignment: str, course_id: str,
             students: list[str], summary: SyncSummary, log: Path) -> None:
    """Run ``nbgrader autograde`` (no execution, its output into ``log``) for the ``students`` that have a
    submitted notebook; record in ``summary`` those whose autograded notebook was written now, and why
    the others' is missing."""
    submitted = course_dir / "submitted"
    with_notebook = [s for s in students if (submitted / s / assignment / f"{NOTEBOOK}.ipynb").is_file()]
    summary.not_shown.update({s: f"no notebook in {submitted / s / assignment}"
                              for s in students if s not in with_notebook})
    if all(_up_to_date(submitted / s / assignment, course_dir / "autograded" / s / assignment)
           for s in with_notebook):
        return  # spares nbgrader's start-up (seconds)
    autograded = {s: course_dir / "autograded" / s / assignment / f"{NOTEBOOK}.ipynb" for s in with_notebook}
    before = {s: file_stamp(path) for s, path in autograded.items()}
    others = sorted(p.name for p in submitted.iterdir() if p.is_dir() and p.name not in with_notebook)
    with open(log, "w", encoding="utf-8") as file:
        for command in autograde_commands(course_dir, db, assignment, course_id, with_notebook, others):
            file.write(f"$ {' '.join(command)}\n")
            file.flush()
            subprocess.run(command, cwd=course_dir, env=_nbgrader_env(), stdout=file, stderr=subprocess.STDOUT)
    summary.failed = [s for s, path in autograded.items() if file_stamp(path) is None]
    summary.not_shown.update({s: f"nbgrader autograde failed on it (see {log})" for s in summary.failed})
    summary.autograded = [s for s, path in autograded.items() if file_stamp(path) not in (None, before[s])]


def _write_scores(db: Path, assignment: str, course_id: str, scores: dict[str, dict[str, float]],
                  summary: SyncSummary) -> None:
    """Set the ``auto_*`` grades' ``auto_score`` of every student in ``scores`` (see the module docstring)."""
    from nbgrader.api import MissingEntry

    questions = list(config.questions())
    fresh = set(summary.autograded)  # nbgrader just gave their auto_* cells its own, meaningless scores
    with _open_gradebook(db, course_id) as gb:
        for student, points in scores.items():
            gb.update_or_create_student(student)
            try:
                gb.find_submission(assignment, student)
            except MissingEntry:
                gb.add_submission(assignment, student)
                fresh.add(student)
            for question in questions:
                grade = gb.find_grade(auto_cell(question), NOTEBOOK, assignment, student)
                if question in points:
                    changed = grade.auto_score != points[question]
                    grade.auto_score = points[question]
                    if grade.manual_score is None:
                        grade.needs_manual_grade = False
                    elif changed:  # the override was given against another autograded score: review it
                        grade.needs_manual_grade = True
                elif student in fresh:
                    grade.auto_score, grade.needs_manual_grade = None, True
                if grade.auto_score is None:
                    summary.not_graded.setdefault(student, []).append(question)
            gb.db.commit()
            summary.updated.append(student)


def sync(course_dir: Path, grades_dir: Path, assignment: str = ASSIGNMENT, *,
         course_id: str = DEFAULT_COURSE_ID) -> SyncSummary:
    """Put the autograded points of ``grades_dir`` into ``course_dir/gradebook.db`` (module docstring)."""
    course_dir, grades_dir = Path(course_dir).resolve(), Path(grades_dir).resolve()
    if not course_dir.is_dir():
        raise GradebookError(f"course directory {course_dir} does not exist")
    db = course_dir / "gradebook.db"
    if not db.is_file():
        raise GradebookError(f"no gradebook.db in {course_dir}: not an nbgrader course directory (nbgrader makes "
                             f"it there, e.g. `nbgrader db assignment add {assignment}` run in that folder)")
    try:
        with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as connection:
            tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    except sqlite3.DatabaseError as error:
        raise GradebookError(f"{db} is not an nbgrader gradebook ({error})") from None
    if not {"alembic_version", "grade", "submitted_assignment"} <= tables:
        raise GradebookError(f"{db} is not an nbgrader gradebook (it lacks nbgrader's tables)")
    scores = read_scores(grades_dir)
    release = release_notebook(course_dir, assignment)
    try:
        notebook = nbformat.read(release, as_version=4)
    except (OSError, ValueError) as error:
        raise GradebookError(f"cannot read the release notebook {release}: {error}") from None
    check_release(notebook, release)
    unknown = sorted({q for points in scores.values() for q in points} - set(config.questions()))
    if unknown:
        raise GradebookError(f"{grades_dir} scores questions that questions.toml does not have: {', '.join(unknown)}")

    summary = SyncSummary(release=release)
    from sqlalchemy.exc import SAWarning

    with warnings.catch_warnings():  # nbgrader's own SQLAlchemy usage warns on every new submission
        warnings.simplefilter("ignore", SAWarning)
        with _open_gradebook(db, course_id) as gb:
            known = {student.id for student in gb.students}
        register_release(db, notebook, assignment, course_id)
        bring_in(course_dir, db, assignment, course_id, sorted(scores), summary, grades_dir / AUTOGRADE_LOG)
        _write_scores(db, assignment, course_id, scores, summary)
    summary.new_students = sorted(set(scores) - known)
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m autograder gradebook", description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Exit status: 0 done; 1 done, but nbgrader autograde could not bring some submission into "
               "autograded/ (their scores are in the gradebook; formgrader cannot open their notebook); "
               "2 bad input.")
    parser.add_argument("--course-dir", type=Path, required=True, metavar="DIR",
                        help="the nbgrader course directory (holds gradebook.db and submitted/)")
    parser.add_argument("--grades", type=Path, required=True, metavar="DIR",
                        help="the --out folder of `python -m autograder grade` (<student_id>/results.json)")
    parser.add_argument("--assignment", default=ASSIGNMENT, help=f"the nbgrader assignment id (default {ASSIGNMENT})")
    parser.add_argument("--course-id", default=DEFAULT_COURSE_ID,
                        help=f"the nbgrader course id (default: $NBGRADER_COURSE_ID or {DEFAULT_COURSE_ID})")
    args = parser.parse_args(argv)
    try:
        summary = sync(args.course_dir, args.grades, args.assignment, course_id=args.course_id)
    except GradebookError as error:
        print(f"gradebook: error: {error}", file=sys.stderr)
        return 2
    if summary.autograded:
        print(f"nbgrader autograde (no execution) brought in {len(summary.autograded)} submission(s): "
              f"{', '.join(summary.autograded)}")
    new = f" ({len(summary.new_students)} new in nbgrader's student table)" if summary.new_students else ""
    print(f"wrote the autograded scores of {len(summary.updated)} student(s){new} into "
          f"{Path(args.course_dir) / 'gradebook.db'} (cells from {summary.release})")
    for student, why in summary.not_shown.items():
        print(f"warning: {student}: formgrader cannot open the notebook: {why}", file=sys.stderr)
    for student, questions in summary.not_graded.items():
        print(f"note: {student}: no autograded score yet: {', '.join(questions)}")
    return 1 if summary.failed else 0


if __name__ == "__main__":
    sys.exit(main())
