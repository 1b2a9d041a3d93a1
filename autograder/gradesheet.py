"""The output folder as the class's record: a regrade updates the students it graded and loses nothing.

An output folder holds, per student, ``<student>/scored.json`` (the scored result that every other file
is made from) and ``<student>/pictures.json`` (its feedback pictures, about 0.5 MB, kept apart so that a
regrade reads only the small scored results of the whole class), and for the class ``grades.csv``. Grading into a folder that already holds results:

* the students graded now replace their own rows; every other student's row is kept as it was,
  with the time it was graded (``graded_at``, ISO 8601 UTC);
* a question that this run did not grade for a student (a ``-k`` run selects some checks only; a
  runner that crashed grades nothing) keeps that student's previous score and checks; without a
  previous score its ``grades.csv`` cell is **empty** ("not graded"), never a 0 that reads like a real one;
* every file is written to a temporary file in the same folder and renamed over the old one, so a
  run that is interrupted (Ctrl-C, a crash, a full disk) leaves the previous ``grades.csv`` whole.

``grades.csv``: ``student_id``, one column per question id (points, or empty when not graded),
``total`` (the sum of the graded questions), ``max_total``, ``graded_at``.
"""
from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

SCORED = "scored.json"
PICTURES = "pictures.json"


def now() -> str:
    """The current time, as ``graded_at`` records it (ISO 8601, UTC, seconds)."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def write_atomic(path: Path, data: str | bytes) -> None:
    """Write ``data`` (text as UTF-8, as it is) to ``path`` through a temporary file in the same folder and a
    rename: readers see the old file or the new one, never a part of one. The file gets the usual mode
    (0o666 less the umask), not mkstemp's 0o600."""
    mode = "wb" if isinstance(data, bytes) else "w"
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(descriptor, mode, **({} if mode == "wb" else {"encoding": "utf-8", "newline": ""})) as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def graded(question: dict[str, Any]) -> bool:
    """Whether a scored question was graded: it has checks (a ``-k`` run or a failed runner leaves none)."""
    return bool(question["checks"])


def merge(new: dict[str, Any], previous: dict[str, Any] | None, graded_at: str) -> dict[str, Any]:
    """``new`` (a scored result), with each question it did not grade taken from ``previous``.

    Each question records when it was graded (``graded_at``); the total is recomputed over the
    questions that are graded.
    """
    questions, kept = {}, set()
    for qid, question in new["questions"].items():
        old = (previous or {}).get("questions", {}).get(qid)
        if graded(question) or old is None or not graded(old):
            question = {**question, "graded_at": graded_at if graded(question) else None}
        else:
            question = old
            kept.add(qid)
        questions[qid] = question
    total = round(sum(q["points"] for q in questions.values() if graded(q)), 2)
    pictures = [*(p for p in new.get("pictures", []) if p.get("question") not in kept),
                *(p for p in (previous or {}).get("pictures", []) if p.get("question") in kept)]
    return {**new, "questions": questions, "total": total, "graded_at": graded_at, "pictures": pictures}


def load(out: Path) -> dict[str, dict]:
    """Every student's scored result in the output folder ``out`` (student id -> result), without pictures."""
    results = {}
    for path in sorted(out.glob(f"*/{SCORED}")):
        try:
            results[path.parent.name] = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # a result damaged by hand: that student is graded again next time
    return results


def load_pictures(out: Path, student_id: str, default: list[dict] | None = None) -> list[dict]:
    """One student's feedback pictures (``default`` when there is no readable pictures.json)."""
    try:
        pictures = json.loads((out / student_id / PICTURES).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return list(default or [])
    return pictures if isinstance(pictures, list) else list(default or [])


def save(out: Path, student_id: str, result: dict[str, Any]) -> None:
    """Keep one student's scored result (the source of their other files and of their grades.csv row);
    its pictures go to their own file."""
    folder = out / student_id
    folder.mkdir(parents=True, exist_ok=True)
    write_atomic(folder / PICTURES, json.dumps(result.get("pictures", []), ensure_ascii=False) + "\n")
    scored = {key: value for key, value in result.items() if key != "pictures"}
    write_atomic(folder / SCORED, json.dumps(scored, ensure_ascii=False, indent=1) + "\n")


def _points(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".")


def grades_csv(results: dict[str, dict], question_ids: list[str]) -> str:
    """The text of grades.csv for these scored results (an empty cell: that question was not graded)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["student_id", *question_ids, "total", "max_total", "graded_at"])
    for student_id, result in sorted(results.items()):
        cells = [_points(result["questions"][q]["points"]) if q in result["questions"]
                 and graded(result["questions"][q]) else "" for q in question_ids]
        writer.writerow([student_id, *cells, _points(result["total"]), _points(result["max_total"]),
                         result.get("graded_at", "")])
    return buffer.getvalue()


def not_graded(results: dict[str, dict]) -> dict[str, list[str]]:
    """Student id -> the questions with no score (yet) in these results."""
    missing = {s: [q for q, question in r["questions"].items() if not graded(question)] for s, r in results.items()}
    return {s: qids for s, qids in missing.items() if qids}


def update(out: Path, new: dict[str, dict], question_ids: list[str]) -> dict[str, dict]:
    """Merge this run's scored results into the output folder's record and rewrite grades.csv.

    Returns the whole class as it now stands (every student in ``out``, graded now or before); only
    the students graded now come with their pictures.
    """
    graded_at = now()
    previous = load(out)
    for student_id, result in new.items():
        old = previous.get(student_id)
        if old is not None:  # a scored.json from before pictures.json existed may still hold them
            old = {**old, "pictures": load_pictures(out, student_id, default=old.get("pictures"))}
        merged = merge(result, old, graded_at)
        save(out, student_id, merged)
        previous[student_id] = merged
    write_atomic(out / "grades.csv", grades_csv(previous, question_ids))
    return dict(sorted(previous.items()))
