"""``autograder/gradebook.py``: the autograded points in nbgrader's gradebook, beside the 考察 answers.

* the release holds one locked autograded grade cell ``auto_<question id>`` per question of
  questions.toml, with its points, after its exercise, that does nothing when a student runs it and scores 0
  (an error that says how to grade the lab) when nbgrader's own ``Execute`` runs it;
* end to end in a temporary course directory, with nbgrader's own API and CLI: sync hand-made
  ``results.json`` files, grade a 考察 answer and override an autograded cell by hand (as formgrader
  does), re-sync changed results, re-collect a newer submission, and ``nbgrader export``: every total is
  the autograded points plus the manual ones;
* bad input is one line and exit status 2.

No real grading runs (results.json files are written from hand-made scored results); nbgrader runs
three times (~10 s in all).
"""
from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from autograder import config, gradebook
from autograder.report import write_results_json

QUESTIONS = config.questions()
ASSIGNMENT = gradebook.ASSIGNMENT
NOTEBOOK = f"{gradebook.NOTEBOOK}.ipynb"
SUBMITTED = ("reference", "kl_sign", "untouched", "no_plots")  # no_plots is never graded here
ANSWERS = ("answer_ae_vs_vae", "answer_kmeans", "answer_conv", "answer_datasets")
# The cell each auto_* cell follows: the exercise's self-check, or what the question grades.
FOLLOWS = {
    "reparameterize": lambda cell: cell.id == "check_reparameterize",
    "vae_loss": lambda cell: cell.id == "check_vae_loss",
    "vae_training": lambda cell: "train(vae, x_train" in cell.source,
    "kmeans": lambda cell: cell.id == "check_kmeans",
    "cluster_plots": lambda cell: cell.id == "fig_kmeans_vae",
    "conv_autoencoder": lambda cell: cell.id == "check_ConvAutoEncoder",
    "conv_vae": lambda cell: cell.id == "check_ConvVAE",
}


def _nbgrader_meta(cell) -> dict:
    return cell.metadata.get("nbgrader", {})


def test_release_has_one_auto_cell_per_question(assignment_dir: Path):
    nb = nbformat.read(assignment_dir / NOTEBOOK, as_version=4)
    auto = [(i, c) for i, c in enumerate(nb.cells) if _nbgrader_meta(c).get("grade_id", "").startswith("auto_")]
    assert [(c.id, _nbgrader_meta(c)["points"]) for _, c in auto] == \
        [(f"auto_{q}", spec["points"]) for q, spec in QUESTIONS.items()]
    assert set(FOLLOWS) == set(QUESTIONS)
    for index, cell in auto:
        meta = _nbgrader_meta(cell)
        assert cell.cell_type == "code" and meta["grade"] and meta["locked"] and not meta["solution"], cell.id
        assert meta.get("checksum") and cell.metadata.get("editable") is False, cell.id
        assert "make grade" in cell.source and "自動採点" in cell.source and "Do not edit" in cell.source
        _check_guard(cell)
        assert FOLLOWS[cell.id.removeprefix("auto_")](nb.cells[index - 1]), f"{cell.id} is not after its exercise"
    manual = [c.id for c in nb.cells if _nbgrader_meta(c).get("grade") and _nbgrader_meta(c).get("solution")]
    assert manual == list(ANSWERS)


def _check_guard(cell) -> None:
    """An auto_* cell does nothing when a student runs it (no output, no definition the grader would keep), and
    raises, Japanese first, how to grade the lab when nbgrader's own Execute runs it (so it scores 0)."""
    from autograder.extract import extract_cell

    assert extract_cell(cell.source) == "", f"{cell.id} defines something: the grader would keep it"
    for flag in (None, "validate", "autograde"):
        env = {} if flag is None else {"NBGRADER_EXECUTION": flag}
        namespace = {"os": type("os", (), {"environ": env})}
        if flag != "autograde":
            exec(compile(cell.source, cell.id, "exec"), namespace)  # a student's run: nothing happens
            continue
        with pytest.raises(RuntimeError) as raised:
            exec(compile(cell.source, cell.id, "exec"), namespace)
        message = str(raised.value)
        japanese, english = message.split("\n")
        assert "採点" in japanese and "nbgrader_config.py" in japanese and "make grade" in japanese, message
        assert english.isascii() and "nbgrader_config.py" in english and "make grade" in english, message


def _scored(points: dict[str, float], checks_per_question: int = 3) -> dict:
    """A scored result as ``engine.score`` makes it, grading only the questions in ``points``, each with
    equal checks (so that results.json holds rounded shares, e.g. 20/3)."""
    questions = {}
    for qid, got in points.items():
        maximum = float(QUESTIONS[qid]["points"])
        checks = [{"title": f"check {n}", "points": got / checks_per_question,
                   "max_points": maximum / checks_per_question, "passed": got == maximum, "message": ""}
                  for n in range(checks_per_question)]
        questions[qid] = {"title": QUESTIONS[qid]["title"], "points": got, "max_points": maximum, "checks": checks}
    return {"questions": questions, "total": round(sum(points.values()), 2),
            "max_total": float(sum(spec["points"] for spec in QUESTIONS.values()))}


def _write_results(grades: Path, points: dict[str, dict[str, float]]) -> None:
    for student, scored in points.items():
        (grades / student).mkdir(parents=True, exist_ok=True)
        write_results_json(grades / student / "results.json", _scored(scored))


def _path_with_venv() -> str:
    return str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", "")


@pytest.fixture
def course(tmp_path: Path, repo_root: Path, assignment_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A course directory: the release, four example submissions, one that is not JSON, and an empty
    gradebook.db (as `nbgrader collect` leaves it)."""
    from nbgrader.api import Gradebook

    course = tmp_path / "course"
    shutil.copytree(assignment_dir, course / "release" / ASSIGNMENT)
    for student in SUBMITTED:
        shutil.copytree(repo_root / "examples" / "submitted" / student, course / "submitted" / student)
    (course / "submitted" / "broken" / ASSIGNMENT).mkdir(parents=True)
    (course / "submitted" / "broken" / ASSIGNMENT / NOTEBOOK).write_text('{"cells": [')
    monkeypatch.setenv("PATH", _path_with_venv())  # a new gradebook runs nbgrader's `alembic`
    Gradebook(f"sqlite:///{course / 'gradebook.db'}").close()
    return course


def _auto_scores(gb, student: str) -> dict[str, float | None]:
    return {q: gb.find_grade(f"auto_{q}", gradebook.NOTEBOOK, ASSIGNMENT, student).auto_score for q in QUESTIONS}


def _export(course: Path, tmp_path: Path) -> dict[str, dict[str, str]]:
    out = tmp_path / "export.csv"
    proc = subprocess.run([sys.executable, "-m", "nbgrader", "export", f"--to={out}",
                           f"--CourseDirectory.root={course}"], cwd=course, capture_output=True, text=True,
                          env={**os.environ, "PATH": _path_with_venv()})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    with open(out, newline="", encoding="utf-8") as file:
        return {row["student_id"]: row for row in csv.DictReader(file)}


def test_sync_manual_grading_resync_and_export(course: Path, tmp_path: Path):
    from nbgrader.api import Gradebook

    full = {q: float(spec["points"]) for q, spec in QUESTIONS.items()}
    first = {
        "reference": {q: p for q, p in full.items() if q != "conv_vae"},  # conv_vae not graded yet
        "kl_sign": {**full, "vae_loss": 0.0},
        "untouched": {q: 0.0 for q in QUESTIONS},
        "loose": {**full, "kmeans": 7.5},  # graded from a notebook outside submitted/
        "broken": {q: 0.0 for q in QUESTIONS},  # nbgrader cannot read it either
    }
    grades = tmp_path / "grades"
    _write_results(grades, first)
    summary = gradebook.sync(course, grades)

    assert summary.autograded == ["kl_sign", "reference", "untouched"]
    assert summary.new_students == ["broken", "kl_sign", "loose", "reference", "untouched"]
    assert sorted(summary.not_shown) == ["broken", "loose"] and summary.failed == ["broken"]
    assert "NotJSONError" in (grades / gradebook.AUTOGRADE_LOG).read_text()
    assert summary.not_graded == {"reference": ["conv_vae"]}
    db_url = f"sqlite:///{course / 'gradebook.db'}"
    with Gradebook(db_url) as gb:
        for student, points in first.items():
            assert _auto_scores(gb, student) == {q: points.get(q) for q in QUESTIONS}, student
        assert "no_plots" not in {s.id for s in gb.students}  # in submitted/, but not graded
    assert not (course / "autograded" / "no_plots").exists()
    # formgrader's copy: the student's own figures are kept and nothing was executed
    shown = {c.id: c for c in nbformat.read(course / "autograded" / "reference" / ASSIGNMENT / NOTEBOOK, 4).cells}
    assert any("image/png" in out.get("data", {}) for out in shown["fig_kmeans_ae"].outputs)
    untouched = nbformat.read(course / "autograded" / "untouched" / ASSIGNMENT / NOTEBOOK, 4)
    assert all(c.get("outputs") == [] for c in untouched.cells if c.cell_type == "code")

    # by hand, as formgrader does: two 考察 answers graded, one autograded score overridden
    with Gradebook(db_url) as gb:
        for student, cell, score in [("reference", "answer_ae_vs_vae", 4.0), ("kl_sign", "answer_kmeans", 3.0),
                                     ("kl_sign", "auto_vae_loss", 12.0)]:
            grade = gb.find_grade(cell, gradebook.NOTEBOOK, ASSIGNMENT, student)
            grade.manual_score, grade.needs_manual_grade = score, False
        gb.db.commit()

    second = {"reference": {"conv_vae": 15.0}, "kl_sign": {**full, "vae_loss": 5.0}}  # a -k run, a regrade
    _write_results(grades, second)
    (course / "submitted" / "untouched" / ASSIGNMENT / "timestamp.txt").write_text("2026-11-23 08:00:00.000000 UTC")
    summary = gradebook.sync(course, grades)

    assert summary.autograded == ["untouched"] and summary.new_students == []  # re-collected: newer timestamp
    assert summary.not_graded == {}
    with Gradebook(db_url) as gb:
        assert _auto_scores(gb, "reference") == full  # conv_vae now graded, the rest kept
        assert _auto_scores(gb, "kl_sign") == {**full, "vae_loss": 5.0}
        assert _auto_scores(gb, "untouched") == {q: 0.0 for q in QUESTIONS}
        override = gb.find_grade("auto_vae_loss", gradebook.NOTEBOOK, ASSIGNMENT, "kl_sign")
        assert (override.manual_score, override.score, override.needs_manual_grade) == (12.0, 12.0, True)
        answer = gb.find_grade("answer_ae_vs_vae", gradebook.NOTEBOOK, ASSIGNMENT, "reference")
        assert answer.manual_score == 4.0
        assert gb.find_grade("answer_kmeans", gradebook.NOTEBOOK, ASSIGNMENT, "kl_sign").manual_score == 3.0
        assert str(gb.find_submission(ASSIGNMENT, "untouched").timestamp).startswith("2026-11-23 08:00:00")

    exported = _export(course, tmp_path)
    expected = {"reference": 100.0 + 4.0, "kl_sign": 100.0 - 20.0 + 12.0 + 3.0, "untouched": 0.0,
                "loose": 100.0 - 15.0 + 7.5, "broken": 0.0}
    assert {s: float(row["score"]) for s, row in exported.items()} == pytest.approx(expected)
    assert {float(row["max_score"]) for row in exported.values()} == {100.0 + 5.0 * len(ANSWERS)}


def test_rounded_shares_add_up(tmp_path: Path):
    """results.json holds each check's share rounded to 4 places (20/3 -> 6.6667); the question's score is
    their sum rounded to 0.01, as grades.csv shows it."""
    _write_results(tmp_path, {"s": {"vae_loss": 20.0, "kmeans": 10.0}})
    assert gradebook.read_scores(tmp_path) == {"s": {"vae_loss": 20.0, "kmeans": 10.0}}


def test_autograde_commands_exclude_the_other_students(tmp_path: Path):
    one = gradebook.autograde_commands(tmp_path, tmp_path / "gradebook.db", ASSIGNMENT, "c", ["a", "b"], ["x", "y"])
    assert len(one) == 1 and "--Execute.enabled=False" in one[0] and "--SandboxedGrader.enabled=False" in one[0]
    assert one[0][-2:] == ["--CourseDirectory.student_id=*", "--CourseDirectory.student_id_exclude=x,y"]
    each = gradebook.autograde_commands(tmp_path, tmp_path / "gradebook.db", ASSIGNMENT, "c", ["a", "Doe, J[r]"],
                                        ["x"])
    assert [command[-1] for command in each] == ["--CourseDirectory.student_id=a",
                                                 "--CourseDirectory.student_id=Doe, J[[]r]"]


def _error_of(capsys, *argv: str) -> str:
    assert gradebook.main(list(argv)) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def test_bad_input_is_one_line_and_exit_2(course: Path, tmp_path: Path, repo_root: Path, capsys):
    grades = tmp_path / "grades"
    args = ("--grades", str(grades))
    assert "does not exist" in _error_of(capsys, "--course-dir", str(tmp_path / "nowhere"), *args)
    assert "no gradebook.db" in _error_of(capsys, "--course-dir", str(course / "submitted"), *args)
    proc = subprocess.run([sys.executable, str(repo_root / "tools" / "course.py"), "--course-dir",
                           str(course / "submitted"), "gradebook", *args], capture_output=True, text=True)
    assert proc.returncode == 2 and "no gradebook.db" in proc.stderr, proc.stderr  # the course.py step
    (tmp_path / "fake.db").write_text("not sqlite")
    shutil.copy(tmp_path / "fake.db", course / "submitted" / "gradebook.db")
    assert "not an nbgrader gradebook" in _error_of(capsys, "--course-dir", str(course / "submitted"), *args)
    assert "does not exist" in _error_of(capsys, "--course-dir", str(course), *args)
    grades.mkdir()
    assert "no <student_id>/results.json" in _error_of(capsys, "--course-dir", str(course), *args)
    (grades / "kl_sign").mkdir()
    (grades / "kl_sign" / "results.json").write_text('{"tests": [{"tags": [], "score": 1}]}')
    assert "not an autograder results.json" in _error_of(capsys, "--course-dir", str(course), *args)
    _write_results(grades, {"kl_sign": {"vae_loss": 5.0}})
    release = course / "release" / ASSIGNMENT / NOTEBOOK
    nb = nbformat.read(release, as_version=4)
    next(c for c in nb.cells if c.id == "auto_kmeans").metadata.nbgrader["points"] = 14
    nbformat.write(nb, release)
    assert "run `make assignment`" in _error_of(capsys, "--course-dir", str(course), *args)
    with open(course / "gradebook.db", "rb") as db:  # nothing was written on the way
        assert b"kl_sign" not in db.read()
