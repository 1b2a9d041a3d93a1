"""Regrades lose nothing: grades.csv is the class's record, merged and written atomically (autograder/gradesheet.py).

* grading one late student into the class's folder keeps every other row, with the time each was graded;
* a ``-k`` run leaves the other questions' scores as they were, or empty ("not graded"), never 0;
* an interrupted run (Ctrl-C, a failing disk) leaves the previous grades.csv byte for byte.
"""
from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from autograder import config, gradesheet
from autograder.engine import score

REPO_ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = REPO_ROOT / "examples" / "submitted"
QUESTIONS = list(config.questions())


def _result(passed: dict[str, bool]) -> dict:
    """A scored result with one check per question in ``passed`` (the others: not graded)."""
    checks = [{"id": f"test_{q}", "question": q, "title": q, "passed": ok, "message": "" if ok else "wrong"}
              for q, ok in passed.items()]
    return score({"notebook": "x.ipynb", "checks": checks}, config.questions())


def _rows(text: str) -> dict[str, dict[str, str]]:
    return {row["student_id"]: row for row in csv.DictReader(io.StringIO(text))}


def test_a_question_not_graded_is_empty_not_zero():
    merged = gradesheet.merge(_result({"reparameterize": True, "vae_loss": False}), None, "2026-01-01T00:00:00+00:00")
    row = _rows(gradesheet.grades_csv({"amy": merged}, QUESTIONS))["amy"]
    assert row["reparameterize"] == "15" and row["vae_loss"] == "0"  # a real zero
    assert all(row[q] == "" for q in QUESTIONS if q not in ("reparameterize", "vae_loss"))
    assert row["total"] == "15" and row["max_total"] == "100" and row["graded_at"].startswith("2026-01-01")
    assert gradesheet.not_graded({"amy": merged})["amy"] == QUESTIONS[2:]


def test_a_partial_regrade_keeps_the_other_questions():
    first = gradesheet.merge(_result({q: True for q in QUESTIONS}), None, "2026-01-01T00:00:00+00:00")
    second = gradesheet.merge(_result({"reparameterize": False}), first, "2026-01-02T00:00:00+00:00")
    assert second["questions"]["reparameterize"]["points"] == 0
    assert second["questions"]["reparameterize"]["graded_at"].startswith("2026-01-02")
    assert second["questions"]["kmeans"] == first["questions"]["kmeans"]  # checks, points and time kept
    assert second["total"] == 85


def test_update_keeps_other_students_rows(tmp_path):
    gradesheet.update(tmp_path, {"amy": _result({q: True for q in QUESTIONS}),
                                 "bob": _result({q: False for q in QUESTIONS})}, QUESTIONS)
    before = _rows((tmp_path / "grades.csv").read_text())
    everyone = gradesheet.update(tmp_path, {"cal": _result({"vae_loss": True})}, QUESTIONS)
    after = _rows((tmp_path / "grades.csv").read_text())
    assert set(everyone) == set(after) == {"amy", "bob", "cal"}
    assert after["amy"] == before["amy"] and after["bob"] == before["bob"]  # graded_at included
    assert after["cal"]["vae_loss"] == "20" and after["cal"]["kmeans"] == ""


def test_pictures_live_apart_and_a_partial_regrade_keeps_them(tmp_path):
    """scored.json stays small (a regrade reads every student's); pictures.json holds the pictures, and a
    ``-k`` regrade keeps the pictures of the questions it did not grade."""
    def with_pictures(result: dict, questions: list[str]) -> dict:
        return {**result, "pictures": [{"question": q, "caption": q, "uri": "data:image/png;base64," + "A" * 1000}
                                       for q in questions]}
    everything = with_pictures(_result({q: True for q in QUESTIONS}), ["kmeans", "conv_vae"])
    gradesheet.update(tmp_path, {"amy": everything}, QUESTIONS)
    assert "pictures" not in json.loads((tmp_path / "amy" / gradesheet.SCORED).read_text())
    assert len(gradesheet.load_pictures(tmp_path, "amy")) == 2
    assert "pictures" not in gradesheet.load(tmp_path)["amy"]
    everyone = gradesheet.update(tmp_path, {"amy": with_pictures(_result({"kmeans": False}), ["kmeans"])}, QUESTIONS)
    kept = gradesheet.load_pictures(tmp_path, "amy")
    assert sorted(p["question"] for p in kept) == ["conv_vae", "kmeans"]  # conv_vae's from the first run
    assert everyone["amy"]["pictures"] == kept  # the student graded now comes back with them, for the report


def test_a_failed_write_leaves_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "grades.csv"
    path.write_text("old\n")

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(gradesheet.os, "fsync", full_disk)
    with pytest.raises(OSError):
        gradesheet.write_atomic(path, "new\n")
    assert path.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["grades.csv"]  # no temporary file left behind


def _grade(*args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "autograder", "grade", *args, "--jobs", "1"], cwd=REPO_ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kwargs)


def test_late_student_and_partial_run_through_the_cli(tmp_path):
    """As an instructor would: grade two students on one question, then a late one into the same folder, then
    regrade one of the first two on another question; nothing already graded is lost or turned into 0."""
    out = tmp_path / "grades"
    first = _grade(str(EXAMPLES / "reference"), str(EXAMPLES / "exp_logvar"), "--out", str(out), "-k",
                   "reparameterize")
    log = first.communicate(timeout=600)[0]
    assert first.returncode == 0, log[-2000:]
    assert "not graded yet" in log
    rows = _rows((out / "grades.csv").read_text())
    assert rows["reference"]["reparameterize"] == "15" and float(rows["exp_logvar"]["reparameterize"]) < 15
    assert rows["reference"]["vae_loss"] == ""

    late = _grade(str(EXAMPLES / "kl_sign"), "--out", str(out), "-k", "vae_loss")
    assert late.wait(timeout=600) == 0, late.stdout.read()[-2000:]
    again = _grade(str(EXAMPLES / "exp_logvar"), "--out", str(out), "-k", "vae_loss")
    assert again.wait(timeout=600) == 0, again.stdout.read()[-2000:]
    after = _rows((out / "grades.csv").read_text())
    assert set(after) == {"reference", "exp_logvar", "kl_sign"}
    assert after["reference"] == rows["reference"]
    partial = float(rows["exp_logvar"]["reparameterize"])
    assert after["exp_logvar"]["reparameterize"] == rows["exp_logvar"]["reparameterize"]
    assert after["exp_logvar"]["vae_loss"] == "20" and float(after["exp_logvar"]["total"]) == partial + 20
    assert float(after["kl_sign"]["vae_loss"]) < 20 and after["kl_sign"]["reparameterize"] == ""
    results = json.loads((out / "exp_logvar" / "results.json").read_text())
    assert {t["tags"][0] for t in results["tests"]} == {"reparameterize", "vae_loss"}  # both questions' checks kept
    assert results["score"] == pytest.approx(partial + 20)


def _runners_of(pid: int) -> list[int]:
    """The ``autograder.runner`` processes whose parent is ``pid``."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            command = (entry / "cmdline").read_bytes()
        except (OSError, ValueError, IndexError):
            continue
        if parent == pid and b"autograder.runner" in command:
            found.append(int(entry.name))
    return found


def test_ctrl_c_leaves_the_previous_grades(tmp_path):
    out = tmp_path / "grades"
    out.mkdir()
    previous = "student_id,reparameterize\nsomeone,15\n"  # any earlier file: it must survive untouched
    (out / "grades.csv").write_text(previous)
    # As a terminal starts a foreground job: a new process group, SIGINT at its default. A CI runner may start
    # this suite with SIGINT ignored (a shell's background job), and an ignored signal stays ignored across exec.
    process = _grade(str(EXAMPLES / "reference"), "--out", str(out), start_new_session=True,
                     preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while not _runners_of(process.pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _runners_of(process.pid), "grading never started"
    time.sleep(2)  # the submission's runner is at work
    os.killpg(process.pid, signal.SIGINT)  # as Ctrl-C in a terminal: to the whole foreground process group
    log = process.communicate(timeout=120)[0]
    assert process.returncode == 130 and "interrupted: " in log and "left as they were" in log, log[-3000:]
    assert (out / "grades.csv").read_text() == previous, log[-3000:]
