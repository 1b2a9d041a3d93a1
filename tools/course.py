#!/usr/bin/env python3
"""Run the nbgrader exchange workflow of the lab: release, collect, feedback, and the gradebook.

The course directory (default: the repository root) gets nbgrader's usual folders::

    release/autoencoders/                      what `release` hands out (a copy of assignment/)
    submitted/<student_id>/autoencoders/       what `collect` gathers (exchange and LMS download)
    downloaded/autoencoders/archive/           LMS downloads you put there (optional)
    feedback/<student_id>/autoencoders/        what `feedback` hands back
    gradebook.db                               nbgrader's database: the release's cells are recorded in
                                               it by `release` and `collect`
    autograded/<student_id>/autoencoders/      what formgrader shows (`nbgrader autograde`, `gradebook`)
    nbgrader_config.py                         `release` and `collect` write it when it is missing (a copy of
                                               the repository's) and check it when it is there: it makes
                                               `nbgrader autograde` grade with the sandboxed grader

Every nbgrader setting that the commands here need is given on nbgrader's command line
(``--Exchange.root``, ``--CourseDirectory.root``, ``--CourseDirectory.course_id``); the course's
``nbgrader_config.py`` sets how ``nbgrader autograde`` grades (``autograder/nbgrader_autograde.py``),
so that ``nbgrader autograde autoencoders`` and formgrader's Autograde button grade as ``make grade``.
Students need the same exchange and course id, e.g. in ``/etc/jupyter/nbgrader_config.py``::

    c.Exchange.root = "/srv/nbgrader/exchange"
    c.CourseDirectory.course_id = "ae-vae-lab"

Usage::

    python tools/course.py release                     # hand out assignment/ (rerunnable)
    python tools/course.py collect                     # exchange + downloaded/ -> submitted/
    nbgrader autograde autoencoders                    # in the course directory: grades into gradebook.db
    python -m autograder grade submitted --out grades   # or: make grade (batch: many cores, Ray)
    python tools/course.py feedback --grades grades
    python tools/course.py gradebook --grades grades   # the autograded points into gradebook.db
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # run as a script: `autograder` imports from this checkout
    sys.path.insert(0, str(REPO_ROOT))
ASSIGNMENT_DIR = REPO_ROOT / "assignment"
ASSIGNMENT_ID = "autoencoders"
NOTEBOOK = "autoencoders"  # the graded notebook: autoencoders.ipynb
DEFAULT_COURSE_ID = "ae-vae-lab"
DEFAULT_EXCHANGE = "/srv/nbgrader/exchange"

# zip_collect applies this to the *absolute path* of every file under downloaded/<id>/extracted/.
# The student id is taken from the file name or, for Moodle's one-folder-per-student download,
# from the folder name; see the `collect` help below for the accepted names.
NAMED_REGEXP = (
    r"^(?:.*/)?(?P<student_id>[^/]+?)"
    r"(?:_(?:late_|LATE_)?\d+_\d+_"            # Canvas: <name>[_LATE]_<user id>_<submission id>_
    r"|_\d+_assignsubmission_file_?/?"      # Moodle: <Full Name>_<id>_assignsubmission_file_[/]
    r"|_)"                                  # plain:  <student_id>_
    rf"(?P<file_id>{re.escape(NOTEBOOK)})(?:-\d+)?\.ipynb$"  # Canvas adds -1, -2 to resubmissions
)

COLLECT_HELP = f"""\
Collect submissions into <course>/submitted/<student_id>/{ASSIGNMENT_ID}/:

1. `nbgrader collect --update` from the exchange (the newest submission of each student;
   skipped with a note when the exchange has no inbound folder for the course);
2. when <course>/downloaded/{ASSIGNMENT_ID}/ exists, `nbgrader zip_collect --force`: put the files
   and .zip archives downloaded from an LMS into downloaded/{ASSIGNMENT_ID}/archive/; they are
   extracted to downloaded/{ASSIGNMENT_ID}/extracted/ and every notebook whose name matches one of

     <student_id>_{NOTEBOOK}.ipynb                                  e.g. jane_doe_{NOTEBOOK}.ipynb
     <name>_<user id>_<submission id>_{NOTEBOOK}[-N].ipynb          Canvas, e.g.
         doejane_12345_67890_{NOTEBOOK}.ipynb, doejane_LATE_12345_67890_{NOTEBOOK}-1.ipynb
     <Full Name>_<id>_assignsubmission_file_{NOTEBOOK}.ipynb        Moodle (flat)
     <Full Name>_<id>_assignsubmission_file_/{NOTEBOOK}.ipynb       Moodle (a folder per student)

   is copied to submitted/<student_id>/{ASSIGNMENT_ID}/{NOTEBOOK}.ipynb (student id: doejane for
   Canvas, "Full Name" for Moodle).  Other files are skipped with a warning.  This replaces an
   earlier submission of the same student id, including one collected from the exchange.
   --regexp replaces the pattern (it must define the groups student_id and file_id and is matched
   against the absolute path).
"""

FEEDBACK_HELP = f"""\
Hand the grader's feedback back through the exchange.

For every GRADES/<student_id>/feedback.html (as written by `python -m autograder grade ... --out
GRADES`) whose student has <course>/submitted/<student_id>/{ASSIGNMENT_ID}/, the html is copied to
<course>/feedback/<student_id>/{ASSIGNMENT_ID}/<notebook>.html (<notebook>: the submitted
{NOTEBOOK}.ipynb, or the submission's only notebook) together with the submission's timestamp.txt
and submission_secret.txt; then `nbgrader release_feedback` publishes it as
<exchange>/<course id>/feedback/<hash of secret and notebook>.html, and each student gets theirs
with `nbgrader fetch_feedback {ASSIGNMENT_ID}` (into {ASSIGNMENT_ID}/feedback/<timestamp>/).

Submissions without submission_secret.txt did not come through the exchange (LMS downloads): their
feedback is put in feedback/<student_id>/{ASSIGNMENT_ID}/ for you to upload, and not released.
"""


GRADEBOOK_HELP = """\
Put the autograded points of GRADES/<student_id>/results.json (as written by `python -m autograder
grade ... --out GRADES`) into <course>/gradebook.db, as the scores of the release's grade cells
auto_<question id>, beside the hand-graded 考察 answers: formgrader shows both, and `nbgrader export`
totals both.  Runs `python -m autograder.gradebook` (its --help has the details); each graded
submission is brought into <course>/autograded/ by `nbgrader autograde` with execution disabled.
Manual scores are kept; rerun after every grading run.
"""


class CourseError(Exception):
    """Bad input, or an nbgrader step failed; the message is one line."""


COURSE_CONFIG = REPO_ROOT / "nbgrader_config.py"  # the course configuration that `release` and `collect` install


def course_config(course_dir: Path) -> Path:
    """Make sure ``<course>/nbgrader_config.py`` makes ``nbgrader autograde`` grade with the sandboxed grader:
    write a copy of the repository's when it is missing; raise :class:`CourseError` when the course's own
    does not (it would run the notebooks in nbgrader's kernel, and the auto_* cells would score 0).
    Returns the file."""
    target = course_dir / COURSE_CONFIG.name
    if not COURSE_CONFIG.is_file():
        raise CourseError(f"{COURSE_CONFIG} is missing (restore it from git)")
    if not target.exists():
        shutil.copyfile(COURSE_CONFIG, target)
        print(f"wrote {target}: `nbgrader autograde` grades with the sandboxed grader")
        return target
    if target.read_bytes() == COURSE_CONFIG.read_bytes():
        return target
    from traitlets.config.loader import PyFileConfigLoader

    from autograder.nbgrader_autograde import is_configured

    try:
        loaded = PyFileConfigLoader(target.name, path=str(course_dir)).load_config()
    except Exception as error:  # noqa: BLE001  (whatever the course's own file raises)
        raise CourseError(f"cannot load {target} ({type(error).__name__}: {error})") from None
    if not is_configured(loaded):
        raise CourseError(f"{target} does not make `nbgrader autograde` grade with the sandboxed grader: copy the "
                          f"Autograde settings of {COURSE_CONFIG} into it (SandboxedGrader in the place of Execute), "
                          "or remove it and rerun to get a copy of that file")
    return target


def registered(course_dir: Path) -> bool:
    """Whether ``<course>/gradebook.db`` records the assignment's notebook (read with sqlite3: quick)."""
    import sqlite3
    from contextlib import closing

    db = course_dir / "gradebook.db"
    if not db.is_file():
        return False
    try:
        with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as connection:
            row = connection.execute(
                "SELECT 1 FROM notebook JOIN assignment ON notebook.assignment_id = assignment.id "
                "WHERE assignment.name = ? AND notebook.name = ?", (ASSIGNMENT_ID, NOTEBOOK)).fetchone()
    except sqlite3.Error:
        return False
    return row is not None


def register_release(course_dir: Path, course_id: str) -> Path:
    """Record the release's assignment, notebook and cells in ``<course>/gradebook.db`` (made when missing),
    as ``nbgrader generate_assignment`` would: ``nbgrader autograde`` needs them. Returns the release notebook."""
    import nbformat

    from autograder import gradebook

    release_nb = gradebook.release_notebook(course_dir, ASSIGNMENT_ID)
    os.environ["PATH"] = str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", "")  # alembic
    try:
        notebook = nbformat.read(release_nb, as_version=4)
        gradebook.check_release(notebook, release_nb)
        gradebook.register_release(course_dir / "gradebook.db", notebook, ASSIGNMENT_ID, course_id)
    except gradebook.GradebookError as error:
        raise CourseError(str(error)) from None
    return release_nb


def _nbgrader(subcommand: str, args: list[str], course_dir: Path, exchange: Path,
              course_id: str) -> None:
    """Run ``nbgrader SUBCOMMAND ASSIGNMENT_ID ARGS`` for this course; raise on failure.

    nbgrader runs as a subprocess of this interpreter with its ``bin/`` first on PATH (the
    gradebook shells out to ``alembic``) and the course directory as working directory."""
    cmd = [sys.executable, "-m", "nbgrader", subcommand, ASSIGNMENT_ID,
           f"--Exchange.root={exchange}",
           f"--CourseDirectory.root={course_dir}",
           f"--CourseDirectory.course_id={course_id}", *args]
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    print(f"$ nbgrader {subcommand} {ASSIGNMENT_ID} {' '.join(args)}".rstrip(), flush=True)
    proc = subprocess.run(cmd, cwd=course_dir, env=env)
    if proc.returncode != 0:
        raise CourseError(f"nbgrader {subcommand} failed (exit {proc.returncode}); see its log above")


def release(course_dir: Path, exchange: Path, course_id: str,
            assignment_dir: Path = ASSIGNMENT_DIR) -> Path:
    """Copy ``assignment_dir`` to ``<course>/release/autoencoders/`` and release it to the exchange
    (replacing an earlier release).  Returns the release folder."""
    if not (assignment_dir / f"{NOTEBOOK}.ipynb").is_file():
        raise CourseError(f"{assignment_dir / (NOTEBOOK + '.ipynb')} is missing: run tools/release.py")
    target = course_dir / "release" / ASSIGNMENT_ID
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(assignment_dir, target,
                    ignore=shutil.ignore_patterns("__pycache__", ".ipynb_checkpoints", "*.pyc", ".*"))
    course_config(course_dir)
    register_release(course_dir, course_id)
    _nbgrader("release_assignment", ["--force"], course_dir, exchange, course_id)
    return target


def collect(course_dir: Path, exchange: Path, course_id: str,
            named_regexp: str = NAMED_REGEXP) -> list[str]:
    """Collect exchange submissions and LMS downloads into ``<course>/submitted/``.

    Returns the student ids found in ``submitted/`` afterwards."""
    inbound = exchange / course_id / "inbound"
    downloaded = course_dir / "downloaded" / ASSIGNMENT_ID
    if not inbound.is_dir() and not downloaded.is_dir():
        raise CourseError(f"nothing to collect: no {inbound} (run `release` first) and no {downloaded}")
    if inbound.is_dir():
        _nbgrader("collect", ["--update"], course_dir, exchange, course_id)
    else:
        print(f"note: {inbound} does not exist; collecting only {downloaded}")
    if downloaded.is_dir():
        (downloaded / "archive").mkdir(exist_ok=True)
        _nbgrader("zip_collect", ["--force", f"--FileNameCollectorPlugin.named_regexp={named_regexp}"],
                  course_dir, exchange, course_id)
    try:
        course_config(course_dir)
    except CourseError as error:
        print(f"warning: {error}", file=sys.stderr)
    if not registered(course_dir):  # an LMS-only course, never released from here
        register_release(course_dir, course_id)
    submitted = course_dir / "submitted"
    students = sorted(p.parent.name for p in submitted.glob(f"*/{ASSIGNMENT_ID}") if p.is_dir())
    print(f"{len(students)} submission(s) in {submitted}: {', '.join(students) or '-'}")
    return students


def _feedback_name(submission: Path) -> str | None:
    """The notebook id the feedback html is named after: the graded notebook if it was
    submitted, else the submission's only notebook (None when that is ambiguous)."""
    if (submission / f"{NOTEBOOK}.ipynb").is_file():
        return NOTEBOOK
    notebooks = sorted(submission.glob("*.ipynb"))
    return notebooks[0].stem if len(notebooks) == 1 else None


def feedback(course_dir: Path, exchange: Path, course_id: str, grades_dir: Path) -> list[str]:
    """Put ``GRADES/<student>/feedback.html`` into ``<course>/feedback/`` and release it.

    Returns the student ids whose feedback was released through the exchange."""
    if not grades_dir.is_dir():
        raise CourseError(f"grades folder {grades_dir} does not exist")
    htmls = sorted(grades_dir.glob("*/feedback.html"))
    if not htmls:
        raise CourseError(f"no <student_id>/feedback.html in {grades_dir}")
    released, lms_only = [], []
    for html in htmls:
        student = html.parent.name
        submission = course_dir / "submitted" / student / ASSIGNMENT_ID
        name = _feedback_name(submission) if submission.is_dir() else None
        if name is None:
            print(f"warning: skipping {student}: no single notebook in {submission}", file=sys.stderr)
            continue
        target = course_dir / "feedback" / student / ASSIGNMENT_ID
        if target.exists():
            shutil.rmtree(target)
        target.mkdir(parents=True)
        shutil.copyfile(html, target / f"{name}.html")
        for meta in ("timestamp.txt", "submission_secret.txt"):
            if (submission / meta).is_file():
                shutil.copyfile(submission / meta, target / meta)
        exchanged = (target / "timestamp.txt").is_file() and (target / "submission_secret.txt").is_file()
        (released if exchanged else lms_only).append(student)
    if not released and not lms_only:
        raise CourseError(f"none of the {len(htmls)} student(s) in {grades_dir} has a submission "
                          f"in {course_dir / 'submitted'}")
    if lms_only:
        print(f"not released (no exchange submission; upload from {course_dir / 'feedback'}): "
              f"{', '.join(lms_only)}")
    if released:
        # release_feedback publishes every feedback/*/<id>/*.html and needs both .txt files beside
        # it, so the students without them (LMS only, this run or earlier) are excluded by name.
        unreleasable = sorted(d.parent.name for d in (course_dir / "feedback").glob(f"*/{ASSIGNMENT_ID}")
                              if not ((d / "timestamp.txt").is_file()
                                      and (d / "submission_secret.txt").is_file()))
        args = [f"--CourseDirectory.student_id_exclude={','.join(unreleasable)}"] if unreleasable else []
        _nbgrader("release_feedback", args, course_dir, exchange, course_id)
        print(f"released feedback for {len(released)} student(s): {', '.join(released)}")
    return released


def gradebook(course_dir: Path, course_id: str, grades_dir: Path) -> int:
    """Run ``python -m autograder.gradebook`` for this course; returns its exit status."""
    cmd = [sys.executable, "-m", "autograder.gradebook", "--course-dir", str(course_dir),
           "--grades", str(grades_dir), "--course-id", course_id]
    return subprocess.run(cmd, cwd=REPO_ROOT).returncode


def _existing_dir(value: str) -> Path:
    path = Path(value)
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"{value} is not a directory")
    return path.resolve()


def main(argv: list[str] | None = None) -> int:
    def common(suppress: bool) -> argparse.ArgumentParser:
        """The shared options, accepted before or after COMMAND."""
        p = argparse.ArgumentParser(add_help=False)
        default = (lambda value: argparse.SUPPRESS) if suppress else (lambda value: value)
        p.add_argument("--course-dir", type=_existing_dir, default=default(REPO_ROOT),
                       help="the nbgrader course directory (default: the repository root)")
        p.add_argument("--exchange", type=Path,
                       default=default(Path(os.environ.get("NBGRADER_EXCHANGE", DEFAULT_EXCHANGE))),
                       help="the nbgrader exchange root, shared with the students "
                            f"(default: $NBGRADER_EXCHANGE or {DEFAULT_EXCHANGE})")
        p.add_argument("--course-id",
                       default=default(os.environ.get("NBGRADER_COURSE_ID", DEFAULT_COURSE_ID)),
                       help="the course id in the exchange (default: $NBGRADER_COURSE_ID or "
                            f"{DEFAULT_COURSE_ID})")
        return p

    parser = argparse.ArgumentParser(
        prog="course.py", parents=[common(suppress=False)],
        description="nbgrader workflow of the lab around a course directory and an exchange: "
                    "`release` hands out assignment/, `collect` gathers submissions (exchange and "
                    "LMS downloads) into <course>/submitted/, `feedback` hands back the html "
                    "feedback written by `python -m autograder grade`, `gradebook` puts its scores "
                    "into nbgrader's gradebook.db.",
        epilog="Run `course.py COMMAND --help` for the details of a command.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    shared = [common(suppress=True)]
    sub.add_parser("release", parents=shared, help="copy assignment/ to <course>/release/ and "
                   "release it to the exchange (replaces an earlier release)",
                   description="Copy the committed assignment/ to <course>/release/"
                   f"{ASSIGNMENT_ID}/ and run `nbgrader release_assignment --force`, so students "
                   f"can `nbgrader fetch_assignment {ASSIGNMENT_ID}`.  Run tools/release.py first "
                   "if solutions/ changed.")
    p_collect = sub.add_parser("collect", parents=shared, help="exchange submissions and LMS "
                               "downloads -> <course>/submitted/", description=COLLECT_HELP,
                               formatter_class=argparse.RawDescriptionHelpFormatter)
    p_collect.add_argument("--regexp", default=NAMED_REGEXP,
                           help="zip_collect's FileNameCollectorPlugin.named_regexp")
    p_feedback = sub.add_parser("feedback", parents=shared, help="release "
                                "GRADES/<student_id>/feedback.html to the students",
                                description=FEEDBACK_HELP,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p_feedback.add_argument("--grades", type=Path, required=True, metavar="DIR",
                            help="the --out folder of `python -m autograder grade`")
    p_gradebook = sub.add_parser("gradebook", parents=shared, help="put GRADES/<student_id>/results.json "
                                 "into <course>/gradebook.db (formgrader, nbgrader export)",
                                 description=GRADEBOOK_HELP,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    p_gradebook.add_argument("--grades", type=Path, required=True, metavar="DIR",
                             help="the --out folder of `python -m autograder grade`")
    args = parser.parse_args(argv)

    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", args.course_id):
        parser.error(f"invalid course id {args.course_id!r} (letters, digits, . _ - only)")
    exchange = args.exchange.resolve()
    if args.command == "gradebook":
        return gradebook(args.course_dir, args.course_id, args.grades.resolve())
    try:
        if args.command == "release":
            target = release(args.course_dir, exchange, args.course_id)
            print(f"released {target} as {args.course_id}/{ASSIGNMENT_ID} in {exchange}")
        elif args.command == "collect":
            try:
                groups = re.compile(args.regexp).groupindex
            except re.error as exc:
                raise CourseError(f"--regexp is not a regular expression: {exc}") from None
            if not {"student_id", "file_id"} <= set(groups):
                raise CourseError("--regexp must define the groups (?P<student_id>...) and "
                                  "(?P<file_id>...)")
            collect(args.course_dir, exchange, args.course_id, args.regexp)
        else:
            feedback(args.course_dir, exchange, args.course_id, args.grades.resolve())
    except CourseError as exc:
        print(f"course.py {args.command}: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
