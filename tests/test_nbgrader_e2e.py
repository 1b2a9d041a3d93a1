"""The nbgrader exchange workflow of ``tools/course.py``: release, collect, grade, feedback.

* ``test_named_regexp``: which LMS file names ``collect`` (zip_collect) accepts (no nbgrader run);
* ``test_zip_collect_lms_downloads``: files and a .zip from an LMS in ``downloaded/`` land in
  ``submitted/<student>/autoencoders/``; their feedback is placed but not released;
* ``test_exchange_roundtrip``: release, fetch, submit, collect, feedback (a hand-made
  feedback.html), fetch_feedback, all as the current user (a few seconds, no accounts);
* ``test_three_students_end_to_end``: three real accounts (useradd; needs root) fetch, fill in
  (all solutions / some / none) and submit; the instructor collects, grades with
  ``python -m autograder grade`` (with ``$DATA_DIR``) and releases the feedback, and every student
  fetches theirs.  Student-side nbgrader runs as the account under /usr/bin/python3 with this
  venv's site-packages on PYTHONPATH (the venv's own interpreter may sit in a folder other
  accounts cannot enter).
"""
from __future__ import annotations

import csv
import os
import pwd
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import uuid
import zipfile
from pathlib import Path

import nbformat
import pytest

from tools.course import ASSIGNMENT_ID, NAMED_REGEXP

REPO_ROOT = Path(__file__).resolve().parent.parent
COURSE_PY = REPO_ROOT / "tools" / "course.py"
SOLUTION_NB = REPO_ROOT / "solutions" / "autoencoders.ipynb"
NOTEBOOK = "autoencoders.ipynb"
COURSE_ID = "ae-vae-lab-test"
STUDENT_PYTHON = "/usr/bin/python3"
PARTIAL_CELLS = ("reparameterize", "vae_loss", "kmeans")  # what the partial student fills in


def _run(cmd: list[str], timeout: float = 120, **kwargs) -> subprocess.CompletedProcess:
    """Run ``cmd``; fail the test with its output when it exits non-zero."""
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kwargs)
    assert proc.returncode == 0, f"{' '.join(map(str, cmd))} exited {proc.returncode}:\n" \
                                 f"{proc.stdout}\n{proc.stderr}"
    return proc


def _course(course: Path, exchange: Path, *args: str) -> subprocess.CompletedProcess:
    return _run([sys.executable, str(COURSE_PY), "--course-dir", str(course), "--exchange",
                 str(exchange), "--course-id", COURSE_ID, *args], cwd=REPO_ROOT)


def _nbgrader_student_args(exchange: Path) -> list[str]:
    return [f"--Exchange.root={exchange}", f"--CourseDirectory.course_id={COURSE_ID}"]


def _fill_in(notebook: Path, grade_ids: set[str] | None) -> None:
    """Replace the stub of every ``solution: true`` code cell whose grade_id is in ``grade_ids``
    (all of them when None) with the source of the same cell of the solution notebook."""
    solutions = {c.metadata["nbgrader"]["grade_id"]: c.source
                 for c in nbformat.read(SOLUTION_NB, as_version=4).cells
                 if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("solution")}
    nb = nbformat.read(notebook, as_version=4)
    filled = 0
    for cell in nb.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if cell.cell_type == "code" and gid in solutions and (grade_ids is None or gid in grade_ids):
            cell.source = solutions[gid]
            filled += 1
    assert filled == (len(solutions) if grade_ids is None else len(grade_ids)), filled
    nbformat.write(nb, notebook)


def _fake_feedback(grades: Path, students: list[str]) -> None:
    for student in students:
        (grades / student).mkdir(parents=True)
        (grades / student / "feedback.html").write_text(
            f"<html><body>feedback for {student}</body></html>\n", encoding="utf-8")


# --- file names accepted by zip_collect ---------------------------------------------------------

@pytest.mark.parametrize("rel, student", [
    ("alice_autoencoders.ipynb", "alice"),
    ("jane_doe_autoencoders.ipynb", "jane_doe"),
    ("doejane_12345_67890_autoencoders.ipynb", "doejane"),                       # Canvas
    ("doejane_LATE_12345_67890_autoencoders-1.ipynb", "doejane"),                # Canvas, late
    ("Jane Doe_123456_assignsubmission_file_autoencoders.ipynb", "Jane Doe"),    # Moodle, flat
    ("dl/Jane Doe_123456_assignsubmission_file_/autoencoders.ipynb", "Jane Doe"),  # Moodle, folders
    ("autoencoders.ipynb", None),
    ("alice_notes.ipynb", None),
    ("alice_autoencoders.py", None),
])
def test_named_regexp(rel, student):
    match = re.match(NAMED_REGEXP, f"/srv/my_course/downloaded/{ASSIGNMENT_ID}/extracted/{rel}")
    if student is None:
        assert match is None
    else:
        assert match and match["student_id"] == student and match["file_id"] == "autoencoders"


# --- LMS downloads: zip_collect -----------------------------------------------------------------

def test_zip_collect_lms_downloads(tmp_path, assignment_dir):
    course, exchange = tmp_path / "course", tmp_path / "exchange"  # no exchange: LMS only
    archive = course / "downloaded" / ASSIGNMENT_ID / "archive"
    archive.mkdir(parents=True)
    stub = (assignment_dir / NOTEBOOK).read_bytes()
    (archive / "alice_autoencoders.ipynb").write_bytes(stub)
    (archive / "doejane_LATE_12345_67890_autoencoders-1.ipynb").write_bytes(stub)
    with zipfile.ZipFile(archive / "moodle.zip", "w") as zf:
        zf.writestr("Bob Smith_4242_assignsubmission_file_/autoencoders.ipynb", stub)
    (archive / "readme.txt").write_text("not a submission")

    out = _course(course, exchange, "collect").stdout
    for student in ("alice", "doejane", "Bob Smith"):
        submitted = course / "submitted" / student / ASSIGNMENT_ID / NOTEBOOK
        assert submitted.read_bytes() == stub, out
    assert sorted(p.name for p in (course / "submitted").iterdir()) == ["Bob Smith", "alice", "doejane"]
    _course(course, exchange, "collect")  # rerunnable

    grades = tmp_path / "grades"
    _fake_feedback(grades, ["alice", "doejane"])
    out = _course(course, exchange, "feedback", "--grades", str(grades)).stdout
    assert "not released" in out and "release_feedback" not in out, out
    html = course / "feedback" / "alice" / ASSIGNMENT_ID / "autoencoders.html"
    assert html.read_text() == (grades / "alice" / "feedback.html").read_text()
    assert not exchange.exists()


def test_course_cli_errors(tmp_path):
    def fails(*args: str) -> str:
        proc = subprocess.run([sys.executable, str(COURSE_PY), *args], capture_output=True, text=True)
        assert proc.returncode != 0
        return proc.stderr.strip()

    assert "does not exist" in fails("--course-dir", str(tmp_path), "feedback", "--grades",
                                     str(tmp_path / "nope"))
    assert "nothing to collect" in fails("--course-dir", str(tmp_path), "--exchange",
                                         str(tmp_path / "ex"), "collect")
    assert "is not a directory" in fails("--course-dir", str(tmp_path / "nope"), "release")
    assert "invalid course id" in fails("--course-id", "a b", "release")


# --- exchange round trip, one user --------------------------------------------------------------

def test_exchange_roundtrip(tmp_path, assignment_dir):
    """release → fetch → submit → collect → feedback → fetch_feedback as the current user, next to
    an LMS download (collected too; its feedback is not released)."""
    course, exchange, home = tmp_path / "course", tmp_path / "exchange", tmp_path / "home"
    archive = course / "downloaded" / ASSIGNMENT_ID / "archive"
    for d in (archive, home):
        d.mkdir(parents=True)
    shutil.copyfile(assignment_dir / NOTEBOOK, archive / "lmsonly_autoencoders.ipynb")
    student = pwd.getpwuid(os.getuid()).pw_name  # nbgrader's student id: the OS account
    nbgrader = [sys.executable, "-m", "nbgrader"]
    args = _nbgrader_student_args(exchange) + [f"--Exchange.cache={tmp_path / 'cache'}"]

    _course(course, exchange, "release")
    _course(course, exchange, "release")  # rerunnable
    _run([*nbgrader, "fetch_assignment", ASSIGNMENT_ID, *args], cwd=home)
    _fill_in(home / ASSIGNMENT_ID / NOTEBOOK, {"reparameterize"})
    _run([*nbgrader, "submit", ASSIGNMENT_ID, *args], cwd=home)
    _course(course, exchange, "collect")
    submitted = course / "submitted" / student / ASSIGNMENT_ID
    assert (submitted / NOTEBOOK).read_bytes() == (home / ASSIGNMENT_ID / NOTEBOOK).read_bytes()

    assert (course / "submitted" / "lmsonly" / ASSIGNMENT_ID / NOTEBOOK).is_file()

    grades = tmp_path / "grades"
    _fake_feedback(grades, [student, "lmsonly"])
    out = _course(course, exchange, "feedback", "--grades", str(grades)).stdout
    assert "not released" in out and "lmsonly" in out, out
    _course(course, exchange, "feedback", "--grades", str(grades))  # rerunnable
    assert len(list((exchange / COURSE_ID / "feedback").glob("*.html"))) == 1
    _run([*nbgrader, "fetch_feedback", ASSIGNMENT_ID, *args], cwd=home)
    timestamp = (submitted / "timestamp.txt").read_text()
    fetched = home / ASSIGNMENT_ID / "feedback" / timestamp / "autoencoders.html"
    assert fetched.read_text() == (grades / student / "feedback.html").read_text()


# --- three student accounts ---------------------------------------------------------------------

class Student:
    """A throw-away OS account whose home is the folder nbgrader fetches into."""

    def __init__(self, name: str, home: Path, pythonpath: str) -> None:
        self.name, self.home, self.pythonpath = name, home, pythonpath

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        """Run ``/usr/bin/python3 ARGS`` as this account, in its home, with a clean environment."""
        env = [f"HOME={self.home}", f"USER={self.name}", f"LOGNAME={self.name}",
               "PATH=/usr/local/bin:/usr/bin:/bin", f"PYTHONPATH={self.pythonpath}", "LANG=C.UTF-8"]
        return _run(["runuser", "-u", self.name, "--", "env", "-i", *env, STUDENT_PYTHON, *args],
                    cwd=self.home, timeout=timeout)

    def nbgrader(self, *args: str) -> subprocess.CompletedProcess:
        return self.run("-m", "nbgrader", *args)


@pytest.fixture
def e2e_dir():
    """A temporary folder the student accounts can enter (pytest's tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="nbgrader-e2e-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def students(e2e_dir, request):
    """Three new accounts good/partial/untouched (names unique per run; removed afterwards)."""
    if os.geteuid() != 0:
        pytest.skip("needs root: creates OS accounts (nbgrader takes the student id from the account)")
    missing = [tool for tool in ("useradd", "userdel", "runuser") if shutil.which(tool) is None]
    if missing or not Path(STUDENT_PYTHON).is_file():
        pytest.skip(f"needs {', '.join(missing) or STUDENT_PYTHON} to run nbgrader as student accounts")
    paths = sysconfig.get_paths()
    pythonpath = os.pathsep.join(dict.fromkeys([paths["purelib"], paths["platlib"]]))
    tag = uuid.uuid4().hex[:6]
    created: list[str] = []

    def cleanup() -> None:
        for name in created:
            subprocess.run(["userdel", "-r", name], capture_output=True)
    request.addfinalizer(cleanup)

    accounts = {}
    for role in ("good", "partial", "untouched"):
        name = f"ae{tag}{role[:4]}"
        home = e2e_dir / "home" / name
        home.parent.mkdir(exist_ok=True)
        _run(["useradd", "--create-home", "--home-dir", str(home), "--shell", "/bin/sh",
              "--user-group", name])
        created.append(name)
        accounts[role] = Student(name, home, pythonpath)
    probe = subprocess.run(["runuser", "-u", accounts["good"].name, "--", "env", "-i",
                            f"PYTHONPATH={pythonpath}", STUDENT_PYTHON, "-c", "import nbgrader"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"{STUDENT_PYTHON} cannot import nbgrader from {pythonpath} as a student "
                    f"account: {probe.stderr.strip().splitlines()[-1:]}")
    return accounts


def _totals(grades_csv: Path, names: list[str]) -> dict[str, float]:
    """Student id → total from grades.csv (the id column: the one holding the names; the total:
    the column named like 'total')."""
    with open(grades_csv, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert rows, f"{grades_csv} has no rows"
    id_col = next(c for c in rows[0] if {r[c] for r in rows} == set(names))
    total_col = next(c for c in rows[0] if "total" in c.lower())
    return {r[id_col]: float(r[total_col]) for r in rows}


def test_three_students_end_to_end(e2e_dir, students):
    course, exchange, grades = e2e_dir / "course", e2e_dir / "exchange", e2e_dir / "grades"
    course.mkdir()
    student_args = _nbgrader_student_args(exchange)
    _course(course, exchange, "release")

    fill = {"good": None, "partial": set(PARTIAL_CELLS), "untouched": set()}
    for role, student in students.items():
        student.nbgrader("fetch_assignment", ASSIGNMENT_ID, *student_args)
        notebook = student.home / ASSIGNMENT_ID / NOTEBOOK
        assert notebook.is_file()
        if fill[role] != set():
            _fill_in(notebook, fill[role])  # as root, then back to the student
            account = pwd.getpwnam(student.name)
            os.chown(notebook, account.pw_uid, account.pw_gid)
        student.nbgrader("submit", ASSIGNMENT_ID, *student_args)

    _course(course, exchange, "collect")
    names = sorted(s.name for s in students.values())
    for name in names:
        assert (course / "submitted" / name / ASSIGNMENT_ID / NOTEBOOK).is_file(), name
    assert sorted(p.name for p in (course / "submitted").iterdir()) == names

    env = dict(os.environ)
    if "DATA_DIR" in env:  # tests run with DATA_DIR relative to the repo root
        env["DATA_DIR"] = str(Path(env["DATA_DIR"]).resolve())
    _run([sys.executable, "-m", "autograder", "grade", str(course / "submitted"),
          "--out", str(grades)], cwd=REPO_ROOT, env=env, timeout=1200)
    with open(grades / "grades.csv", newline="", encoding="utf-8") as f:
        assert sum(1 for _ in csv.DictReader(f)) == 3
    totals = _totals(grades / "grades.csv", names)
    good, partial, untouched = (totals[students[r].name] for r in ("good", "partial", "untouched"))
    assert good > partial > untouched == 0, totals
    for name in names:
        assert (grades / name / "results.json").is_file()

    _course(course, exchange, "feedback", "--grades", str(grades))
    fetched = {}
    for student in students.values():
        student.nbgrader("fetch_feedback", ASSIGNMENT_ID, *student_args)
        htmls = list((student.home / ASSIGNMENT_ID / "feedback").glob("*/autoencoders.html"))
        assert len(htmls) == 1, htmls
        assert htmls[0].read_bytes() == (grades / student.name / "feedback.html").read_bytes()
        fetched[student.name] = htmls[0].read_bytes()
    assert len(set(fetched.values())) == 3, "every student got the same feedback"
