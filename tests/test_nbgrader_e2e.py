"""The nbgrader exchange workflow of ``tools/course.py``: release, collect, grade, feedback.

* ``test_named_regexp``: which LMS file names ``collect`` (zip_collect) accepts (no nbgrader run);
* ``test_zip_collect_lms_downloads``: files and a .zip from an LMS in ``downloaded/`` land in
  ``submitted/<student>/autoencoders/``; their feedback is placed but not released;
* ``test_exchange_roundtrip``: release, fetch, submit, collect, feedback (a hand-made
  feedback.html), fetch_feedback, all as the current user (a few seconds, no accounts);
* ``test_three_students_end_to_end``: three real accounts (useradd; needs root) fetch, fill in
  (all solutions / the MLP and k-means parts with the KL sign of ``vae_loss`` flipped / none) and
  submit; the instructor collects and grades twice: ``python -m autograder grade`` (``make grade``)
  and nbgrader's own ``nbgrader autograde`` (``--student`` for one, then the rest) with the course's
  ``nbgrader_config.py``; every ``auto_*`` score in the gradebook equals grades.csv's; formgrader's
  Autograde button (``NbGraderAPI.autograde``) regrades a student under a manual override, which
  stays; ``nbgrader generate_feedback`` names the bug, ``release_feedback`` hands it out and every
  student fetches theirs.  Student-side nbgrader runs as the account under /usr/bin/python3 with
  this venv's site-packages on PYTHONPATH (the venv's own interpreter may sit in a folder other
  accounts cannot enter).
* ``test_without_the_course_config_auto_cells_score_0``: in a course without ``nbgrader_config.py``,
  plain ``nbgrader autograde`` runs the notebook with nbgrader's ``Execute`` (QUICK=1): every ``auto_*``
  cell scores 0 with the message that says how to grade the lab, never full points.
"""
from __future__ import annotations

import csv
import json
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

from autograder import config
from tools.course import ASSIGNMENT_ID, NAMED_REGEXP, course_config, register_release
from tools.make_examples import STUDENTS, apply_substitutions

REPO_ROOT = Path(__file__).resolve().parent.parent
COURSE_PY = REPO_ROOT / "tools" / "course.py"
SOLUTION_NB = REPO_ROOT / "solutions" / "autoencoders.ipynb"
NOTEBOOK = "autoencoders.ipynb"
COURSE_ID = "ae-vae-lab-test"
STUDENT_PYTHON = "/usr/bin/python3"
KL_SIGN = next(student for student in STUDENTS if student.id == "kl_sign")  # the buggy student's mistake
# What the buggy student fills in: no conv model, so that the grader trains one model for them, not three.
BUGGY_CELLS = {"reparameterize", "vae_loss", "kmeans", "plot_latent_clusters"}
KL_SIGN_MESSAGE = ("KL 項の符号が逆です", "the KL term has the wrong sign")  # what the feedback names it
QUESTIONS = config.questions()


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


def test_release_installs_or_checks_the_course_config(tmp_path):
    """`release` (and `collect`) write the course's nbgrader_config.py where there is none, keep one that
    grades with the sandboxed grader, and refuse one that would let nbgrader's Execute grade."""
    course = tmp_path / "course"
    course.mkdir()
    written = course_config(course)
    assert written.read_bytes() == (REPO_ROOT / "nbgrader_config.py").read_bytes()
    own = "c = get_config()\nc.Autograde.autograde_preprocessors = ['autograder.nbgrader_autograde.SandboxedGrader']\n"
    written.write_text(own)
    assert course_config(course).read_text() == own, "a course's own configuration was replaced"
    written.write_text("c = get_config()\nc.CourseDirectory.course_id = 'x'\n")
    proc = subprocess.run([sys.executable, str(COURSE_PY), "--course-dir", str(course), "--exchange",
                           str(tmp_path / "exchange"), "release"], capture_output=True, text=True)
    assert proc.returncode == 1 and "does not make `nbgrader autograde` grade with the sandboxed grader" in \
        proc.stderr, proc.stderr
    assert not (tmp_path / "exchange").exists(), "released with a configuration that lets Execute grade"


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
    """Three new accounts good/buggy/untouched (names unique per run; removed afterwards)."""
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
    for role in ("good", "buggy", "untouched"):
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


def _grades_csv(grades_csv: Path) -> dict[str, dict[str, str]]:
    """Student id -> grades.csv's row."""
    with open(grades_csv, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert rows, f"{grades_csv} has no rows"
    return {row["student_id"]: row for row in rows}


def _auto_scores(course: Path, names: list[str]) -> dict[str, dict[str, float | None]]:
    """Student id -> question -> the gradebook's autograded score of its auto_* cell."""
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        return {name: {q: gb.find_grade(f"auto_{q}", "autoencoders", ASSIGNMENT_ID, name).auto_score
                       for q in QUESTIONS} for name in names}


def _instructor_env(config_dir: Path) -> dict[str, str]:
    """The environment of the instructor's commands: this venv's bin first (nbgrader runs `alembic`), an
    absolute DATA_DIR (tests run with DATA_DIR relative to the repo root), and the empty ``config_dir`` as the
    user's Jupyter config folder, so that only the course's nbgrader_config.py counts."""
    config_dir.mkdir(exist_ok=True)
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    if "DATA_DIR" in env:
        env["DATA_DIR"] = str(Path(env["DATA_DIR"]).resolve())
    env["JUPYTER_CONFIG_DIR"] = str(config_dir)
    return env


FORMGRADER_AUTOGRADE = """
import json, sys
from nbgrader.apps import NbGrader
from nbgrader.apps.api import NbGraderAPI
from nbgrader.coursedir import CourseDirectory
app = NbGrader()
app.load_config_file()  # the course's nbgrader_config.py, as formgrader loads it
api = NbGraderAPI(CourseDirectory(parent=app), parent=app)
print(json.dumps(api.autograde(sys.argv[1], sys.argv[2])))  # what formgrader's Autograde button calls
"""


def test_three_students_end_to_end(e2e_dir, students):
    course, exchange, grades = e2e_dir / "course", e2e_dir / "exchange", e2e_dir / "grades"
    course.mkdir()
    student_args = _nbgrader_student_args(exchange)
    _course(course, exchange, "release")
    assert (course / "nbgrader_config.py").read_bytes() == (REPO_ROOT / "nbgrader_config.py").read_bytes(), \
        "release did not install the course's nbgrader_config.py"

    for role, student in students.items():
        student.nbgrader("fetch_assignment", ASSIGNMENT_ID, *student_args)
        notebook = student.home / ASSIGNMENT_ID / NOTEBOOK
        assert notebook.is_file()
        if role != "untouched":
            _fill_in(notebook, None if role == "good" else BUGGY_CELLS)  # as root, then back to the student
            if role == "buggy":
                nb = nbformat.read(notebook, as_version=4)
                apply_substitutions(nb, KL_SIGN)
                nbformat.write(nb, notebook)
            account = pwd.getpwnam(student.name)
            os.chown(notebook, account.pw_uid, account.pw_gid)
        student.nbgrader("submit", ASSIGNMENT_ID, *student_args)

    _course(course, exchange, "collect")
    names = sorted(s.name for s in students.values())
    for name in names:
        assert (course / "submitted" / name / ASSIGNMENT_ID / NOTEBOOK).is_file(), name
    assert sorted(p.name for p in (course / "submitted").iterdir()) == names

    # the batch path: make grade
    env = _instructor_env(e2e_dir / "jupyter-config")
    _run([sys.executable, "-m", "autograder", "grade", str(course / "submitted"), "--out", str(grades)],
         cwd=REPO_ROOT, env=env, timeout=1200)
    batch = _grades_csv(grades / "grades.csv")
    assert sorted(batch) == names, batch
    good, buggy, untouched = (float(batch[students[r].name]["total"]) for r in ("good", "buggy", "untouched"))
    assert good > buggy > untouched == 0, batch
    expected = {name: {q: float(batch[name][q]) for q in QUESTIONS} for name in names}
    assert expected[students["buggy"].name]["vae_loss"] < expected[students["good"].name]["vae_loss"], batch

    # nbgrader's own commands, in the course directory: one student, then the others
    nbgrader = [sys.executable, "-m", "nbgrader"]
    first = students["good"].name
    _run([*nbgrader, "autograde", ASSIGNMENT_ID, "--student", first], cwd=course, env=env, timeout=1200)
    assert _auto_scores(course, [first]) == {first: expected[first]}, "nbgrader autograde --student"
    _run([*nbgrader, "autograde", ASSIGNMENT_ID], cwd=course, env=env, timeout=1800)
    assert _auto_scores(course, names) == expected, \
        f"nbgrader autograde's auto_* scores differ from make grade's grades.csv ({grades / 'grades.csv'})"
    assert _grades_csv(course / "grades" / "grades.csv").keys() == batch.keys()  # its record, as make grade's

    # formgrader's Autograde button regrades a student under a manual override: the override stays
    from nbgrader.api import Gradebook

    name = students["untouched"].name  # the quickest to grade
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        grade = gb.find_grade("auto_vae_loss", "autoencoders", ASSIGNMENT_ID, name)
        grade.manual_score, grade.needs_manual_grade = 17.0, False
        gb.db.commit()
    proc = _run([sys.executable, "-c", FORMGRADER_AUTOGRADE, ASSIGNMENT_ID, name], cwd=course, env=env,
                timeout=1200)
    outcome = json.loads(proc.stdout.strip().splitlines()[-1])
    assert outcome["success"], outcome.get("error") or outcome.get("log")
    assert _auto_scores(course, [name]) == {name: expected[name]}, "formgrader's Autograde button"
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        grade = gb.find_grade("auto_vae_loss", "autoencoders", ASSIGNMENT_ID, name)
        assert (grade.manual_score, grade.score, grade.needs_manual_grade) == (17.0, 17.0, True)

    # feedback: nbgrader's own, with each question's checks beside the 考察 answers
    _run([*nbgrader, "generate_feedback", ASSIGNMENT_ID], cwd=course, env=env, timeout=600)
    htmls = {n: (course / "feedback" / n / ASSIGNMENT_ID / "autoencoders.html").read_text(encoding="utf-8")
             for n in names}
    for message in KL_SIGN_MESSAGE:
        assert message in htmls[students["buggy"].name], f"the buggy student's feedback does not say {message!r}"
        assert message not in htmls[students["good"].name], f"the correct student's feedback says {message!r}"
    untouched_title = f"【自動採点】{QUESTIONS['vae_loss']['title']}: 0 / 20 点"
    assert untouched_title in htmls[students["untouched"].name], "no autograder feedback for the untouched one"
    _run([*nbgrader, "release_feedback", ASSIGNMENT_ID, f"--Exchange.root={exchange}",
          f"--CourseDirectory.course_id={COURSE_ID}"], cwd=course, env=env)
    fetched = {}
    for student in students.values():
        student.nbgrader("fetch_feedback", ASSIGNMENT_ID, *student_args)
        found = list((student.home / ASSIGNMENT_ID / "feedback").glob("*/autoencoders.html"))
        assert len(found) == 1, found
        assert found[0].read_text(encoding="utf-8") == htmls[student.name]
        fetched[student.name] = found[0].read_bytes()
    assert len(set(fetched.values())) == 3, "every student got the same feedback"


def test_without_the_course_config_auto_cells_score_0(tmp_path, assignment_dir, monkeypatch):
    """Plain nbgrader (its Execute runs the notebook) on a course that lacks the course's nbgrader_config.py:
    the untouched release, whose comment-only auto_* cells once got full points, scores 0 on every one."""
    course = tmp_path / "course"
    submitted = course / "submitted" / "plain" / ASSIGNMENT_ID
    submitted.mkdir(parents=True)
    shutil.copyfile(assignment_dir / NOTEBOOK, submitted / NOTEBOOK)
    env = _instructor_env(tmp_path / "jupyter-config")
    monkeypatch.setenv("PATH", env["PATH"])  # a new gradebook runs `alembic`
    register_release(course, COURSE_ID)  # the cells, as `collect` records them; no nbgrader_config.py
    assert not (course / "nbgrader_config.py").exists()
    env["QUICK"] = "1"  # the notebook's short mode: nbgrader's Execute runs all of it
    _run([sys.executable, "-m", "nbgrader", "autograde", ASSIGNMENT_ID], cwd=course, env=env, timeout=900)

    assert _auto_scores(course, ["plain"]) == {"plain": {q: 0.0 for q in QUESTIONS}}
    nb = nbformat.read(course / "autograded" / "plain" / ASSIGNMENT_ID / NOTEBOOK, as_version=4)
    for cell in nb.cells:
        if cell.get("id", "").startswith("auto_"):
            errors = [out for out in cell.outputs if out.output_type == "error"]
            assert len(errors) == 1, f"{cell.id}: {cell.outputs}"
            japanese, english = errors[0].evalue.split("\n")
            assert "nbgrader_config.py" in japanese and "make grade" in japanese, errors[0].evalue
            assert "nbgrader_config.py" in english and "make grade" in english, errors[0].evalue
