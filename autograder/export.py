"""LMS gradebook exports: ``GRADES_DIR/grades.csv`` -> a CSV that Canvas or Moodle imports.

``python -m autograder export GRADES_DIR --format canvas|moodle --roster FILE`` joins the autograder's
grades with the LMS's own class list (the roster, exported from the LMS), so that the file names every
student the way the LMS knows them and nobody the LMS does not know:

* **Canvas** (Grades -> Import): Canvas's gradebook format, ``Student, ID, SIS User ID, SIS Login ID,
  Section, <assignment name> (<assignment id>)``, then a ``Points Possible`` row. The roster is Canvas's
  gradebook export (Grades -> Export); a student is matched by ``SIS Login ID`` (the nbgrader student id),
  or by ``SIS User ID`` where the login is empty. Canvas finds the student by the roster's ``ID``.
* **Moodle** (Grades -> Import -> CSV file): an identifier column (``--id-column`` username, email or
  idnumber, mapped in Moodle's "Map from" / "Map to"), a grade column and a feedback column (points per
  question). The roster is a Moodle grades or participants export holding that identifier column.

Ids are compared without case or surrounding spaces (JupyterHub and Moodle lower-case usernames, Canvas
logins are case-insensitive); the file carries the roster's own spelling. Rules: a roster student with no
row in grades.csv gets an EMPTY grade, never 0 (in both LMSs an empty cell also clears a grade already
entered in that column, so import into a column that holds only these points); a grades.csv student not
in the roster is named in a warning and not written (Moodle aborts a whole import on an unknown user);
a row with a not-graded (empty) question is exported with the total of what was graded, with a warning.
Files are UTF-8 with a byte-order mark, so that Excel shows Japanese names: Canvas's own exports carry one
when that user option is on and its importer accepts it, and Moodle's CSV reader strips it. A roster that
is not UTF-8 is read as Shift_JIS (cp932, what Japanese Excel saves).

The grade is the autograded total (grades.csv's ``total``) out of ``max_total`` (100). The hand-graded
考察 answers (4 x 5 points) are not in grades.csv: they live in nbgrader's gradebook (formgrader).
"""
from __future__ import annotations

import argparse
import csv
import io
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from autograder import config
from autograder.gradesheet import write_atomic

FORMATS = ("canvas", "moodle")
DEFAULT_ASSIGNMENT = "autoencoders"
CANVAS_COLUMNS = ("Student", "ID", "SIS User ID", "SIS Login ID", "Section")
CANVAS_REQUIRED = ("Student", "ID", "SIS Login ID")
# Moodle's roster header for each --id-column, in English and in Moodle's Japanese language pack
# (compared case-insensitively); the first is the header written to the import file.
MOODLE_ID_HEADERS = {
    "username": ("Username", "ユーザ名", "user name"),
    "email": ("Email address", "メールアドレス", "email", "e-mail"),
    "idnumber": ("ID number", "IDナンバー", "idnumber"),
}


class BadInput(Exception):
    """Input that cannot be exported (the CLI prints it as one ``error:`` line and exits with 2)."""


@dataclass(frozen=True)
class Grade:
    """One grades.csv row: points per question (None: not graded), the total and its maximum."""

    student_id: str
    questions: dict[str, float | None]
    total: float | None
    max_total: float | None

    @property
    def not_graded(self) -> list[str]:
        return [qid for qid, points in self.questions.items() if points is None]


@dataclass
class Export:
    """The rows to write, and what the instructor must be told about them."""

    rows: list[list[str]] = field(default_factory=list)
    graded: int = 0
    without_submission: int = 0
    not_in_roster: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _key(student_id: str) -> str:
    return student_id.strip().casefold()


def _number(text: str, what: str) -> float | None:
    text = text.strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise BadInput(f"{what} is {text!r}, not a number")
    return value


def _fmt(value: float) -> str:
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def _read_text(path: Path, what: str) -> str:
    """The file's text: UTF-8 (with or without BOM), else Shift_JIS as saved by Japanese Excel."""
    if not path.is_file():
        raise BadInput(f"{what} {path} does not exist")
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            text = data.decode("cp932")
        except UnicodeDecodeError:
            raise BadInput(f"{what} {path} is neither UTF-8 nor Shift_JIS: save it as CSV UTF-8") from None
        print(f"note: {path.name} is not UTF-8; read it as Shift_JIS (cp932)", file=sys.stderr)
        return text


def _rows(path: Path, what: str) -> tuple[list[str], list[list[str]]]:
    rows = [row for row in csv.reader(io.StringIO(_read_text(path, what), newline="")) if any(c.strip() for c in row)]
    if not rows:
        raise BadInput(f"{what} {path} is empty")
    return [cell.strip() for cell in rows[0]], rows[1:]


def read_grades(path: Path) -> tuple[list[str], dict[str, Grade]]:
    """grades.csv's question ids (in its column order) and its rows by student id (as compared: ``_key``)."""
    header, rows = _rows(path, "grades file")
    missing = [name for name in ("student_id", "total", "max_total") if name not in header]
    if missing:
        raise BadInput(f"{path} has no {', '.join(missing)} column: not a grades.csv written by `grade`")
    known = config.questions()
    qids = [name for name in header if name in known]
    column = {name: header.index(name) for name in header}
    grades: dict[str, Grade] = {}
    for row in rows:
        row = row + [""] * (len(header) - len(row))
        student = row[column["student_id"]].strip()
        if not student:
            raise BadInput(f"{path} has a row without a student_id")
        if _key(student) in grades:
            raise BadInput(f"{path} has two rows for student {student}")
        grades[_key(student)] = Grade(
            student,
            {q: _number(row[column[q]], f"{student}'s {q}") for q in qids},
            _number(row[column["total"]], f"{student}'s total"),
            _number(row[column["max_total"]], f"{student}'s max_total"))
    return qids, grades


def points_possible(qids: list[str], grades: dict[str, Grade]) -> float:
    """The class's ``max_total`` (one value for every row), or the questions' points when no row has one."""
    maxima = {g.max_total for g in grades.values() if g.max_total is not None}
    if len(maxima) > 1:
        raise BadInput(f"grades.csv has different max_total values ({', '.join(map(_fmt, sorted(maxima)))})")
    return maxima.pop() if maxima else float(sum(config.questions()[q]["points"] for q in qids))


def feedback(grade: Grade) -> str:
    """A short text for the LMS: ``reparameterize 15/15; vae_loss 10/20; ...; autograded total 85/100``."""
    known = config.questions()
    parts = [f"{qid} {'not graded' if points is None else _fmt(points)}"
             + ("" if points is None else f"/{_fmt(known[qid]['points'])}") for qid, points in grade.questions.items()]
    if grade.total is not None:
        parts.append(f"autograded total {_fmt(grade.total)}"
                     + ("" if grade.max_total is None else f"/{_fmt(grade.max_total)}"))
    return "; ".join(parts)


def _join(roster: list[tuple[str, list[str]]], grades: dict[str, Grade],
          make_row: Callable[[list[str], Grade | None], list[str]]) -> Export:
    """The rules both formats share: one row per roster student (``make_row(roster_row, grade or None)``,
    ``roster`` holding (id as the roster spells it, row) pairs), and the warnings."""
    export = Export()
    seen: dict[str, str] = {}
    for student_id, roster_row in roster:
        key = _key(student_id)
        if key and key in seen:
            raise BadInput(f"the roster lists {seen[key]} twice")
        seen[key] = student_id
        grade = grades.get(key) if key else None
        export.rows.append(make_row(roster_row, grade))
        if grade is None or grade.total is None:
            export.without_submission += 1
            if grade is not None:
                export.warnings.append(f"{grade.student_id} has no total in grades.csv: exported with an empty grade")
            continue
        export.graded += 1
        if grade.not_graded:
            export.warnings.append(f"{grade.student_id}: {', '.join(grade.not_graded)} not graded; exported with "
                                   f"the total of what was graded ({_fmt(grade.total)})")
    export.not_in_roster = [g.student_id for key, g in grades.items() if key not in seen]
    if grades and len(export.not_in_roster) == len(grades):
        raise BadInput("no student of grades.csv is in the roster (wrong roster, or wrong --id-column?)")
    return export


def canvas_export(roster: Path, qids: list[str], grades: dict[str, Grade], name: str,
                  assignment_id: int | None, with_points_possible: bool) -> Export:
    """Canvas's gradebook-import rows: the roster's five student columns, then the assignment's column."""
    header, rows = _rows(roster, "roster")
    missing = [column for column in CANVAS_REQUIRED if column not in header]
    if missing:
        raise BadInput(f"roster {roster} has no {', '.join(repr(c) for c in missing)} column: "
                       "use Canvas's gradebook export (Grades -> Export)")
    index = {column: header.index(column) for column in CANVAS_COLUMNS if column in header}

    def cell(row: list[str], column: str) -> str:
        return row[index[column]].strip() if column in index and index[column] < len(row) else ""

    students = [row for row in rows  # the Points Possible and "Muted"/"Manual Posting" rows are not students
                if "Points Possible" not in (row[0] if row else "") and cell(row, "ID")]
    pairs = [(cell(row, "SIS Login ID") or cell(row, "SIS User ID"), row) for row in students]
    export = _join(pairs, grades, lambda row, grade: [cell(row, c) for c in CANVAS_COLUMNS]
                   + ["" if grade is None or grade.total is None else _fmt(grade.total)])
    title = name if assignment_id is None else f"{name} ({assignment_id})"
    head = [list(CANVAS_COLUMNS) + [title]]
    if with_points_possible:
        head.append(["Points Possible", "", "", "", "", _fmt(points_possible(qids, grades))])
    export.rows[:0] = head
    return export


def moodle_export(roster: Path, grades: dict[str, Grade], name: str, id_column: str) -> Export:
    """Moodle's CSV grade-import rows: the identifier, the grade and the feedback."""
    header, rows = _rows(roster, "roster")
    aliases = [a.casefold() for a in MOODLE_ID_HEADERS[id_column]]
    found = [i for i, column in enumerate(header) if column.casefold() in aliases]
    if not found:
        raise BadInput(f"roster {roster} has no {id_column} column "
                       f"(looked for {', '.join(MOODLE_ID_HEADERS[id_column])})")
    column = found[0]
    pairs, blank = [], []
    for number, row in enumerate(rows, start=2):
        value = row[column].strip() if column < len(row) else ""
        if value:
            pairs.append((value, [value]))
        else:  # Moodle would give this row's grade to the previous row's user
            blank.append(f"roster line {number} has an empty {id_column}: not written")
    export = _join(pairs, grades, lambda row, grade: [
        row[0], "" if grade is None or grade.total is None else _fmt(grade.total),
        "" if grade is None else feedback(grade)])
    export.warnings[:0] = blank
    export.rows.insert(0, [MOODLE_ID_HEADERS[id_column][0], name, f"{name} feedback"])
    return export


def csv_text(rows: list[list[str]]) -> str:
    """``rows`` as CSV text, starting with a byte-order mark (UTF-8 with BOM: Excel then shows Japanese names)."""
    buffer = io.StringIO()
    buffer.write("\ufeff")
    csv.writer(buffer).writerows(rows)
    return buffer.getvalue()


class _Parser(argparse.ArgumentParser):
    """argparse that raises BadInput instead of printing usage, so every bad input is one ``error:`` line."""

    def error(self, message: str):  # type: ignore[override]
        raise BadInput(message)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m autograder export", formatter_class=argparse.RawDescriptionHelpFormatter,
                     description=__doc__,
                     epilog="Canvas: import the file with Grades -> Import. Moodle: Grades -> Import -> CSV file, "
                            "then map the identifier column (Map from) to the user field (Map to), the grade "
                            "column to the grade item and the feedback column to its feedback. The 考察 points "
                            "are not in grades.csv (nbgrader's formgrader holds them).")
    parser.add_argument("grades_dir", type=Path, metavar="GRADES_DIR", help="the folder holding grades.csv")
    parser.add_argument("--format", required=True, metavar="{canvas,moodle}", help="the LMS the file is for")
    parser.add_argument("--roster", required=True, type=Path, metavar="FILE",
                        help="the LMS's class list: Canvas's gradebook export, or a Moodle grades/participants "
                             "export holding the --id-column")
    parser.add_argument("--out", type=Path, metavar="FILE",
                        help="default: GRADES_DIR/canvas.csv or GRADES_DIR/moodle.csv")
    parser.add_argument("--assignment-name", default=DEFAULT_ASSIGNMENT, metavar="NAME",
                        help=f"the grade column's title (default: {DEFAULT_ASSIGNMENT})")
    parser.add_argument("--assignment-id", type=int, metavar="ID",
                        help="Canvas: the assignment's id (its URL's last number), so that Canvas updates that "
                             "assignment; without it Canvas matches by name or creates a new assignment")
    parser.add_argument("--no-points-possible", dest="points_possible", action="store_false",
                        help="Canvas: leave out the Points Possible row (which sets the assignment to max_total "
                             "points), e.g. when the Canvas assignment also counts the 考察 points")
    parser.add_argument("--id-column", choices=tuple(MOODLE_ID_HEADERS), metavar="{username,email,idnumber}",
                        help="Moodle: the user field that identifies students (default: username)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """``python -m autograder export``: 0 when the file is written (warnings on stderr), 2 on bad input."""
    try:
        args = _parser().parse_args(argv)
        if args.format not in FORMATS:
            raise BadInput(f"unknown format {args.format!r} (choose canvas or moodle)")
        if args.format == "canvas" and args.id_column:
            raise BadInput("--id-column is for --format moodle (Canvas matches SIS Login ID)")
        if args.format == "moodle" and (args.assignment_id is not None or not args.points_possible):
            raise BadInput("--assignment-id and --no-points-possible are for --format canvas")
        if args.assignment_id is not None and args.assignment_id <= 0:
            raise BadInput("--assignment-id must be a positive number")
        out = args.out or args.grades_dir / f"{args.format}.csv"
        if not out.parent.is_dir():
            raise BadInput(f"folder {out.parent} does not exist")
        qids, grades = read_grades(args.grades_dir / "grades.csv")
        if args.format == "canvas":
            export = canvas_export(args.roster, qids, grades, args.assignment_name, args.assignment_id,
                                   args.points_possible)
        else:
            export = moodle_export(args.roster, grades, args.assignment_name, args.id_column or "username")
        write_atomic(out, csv_text(export.rows))
    except (BadInput, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if export.not_in_roster:
        print(f"warning: {len(export.not_in_roster)} student(s) of grades.csv not in the roster, not written: "
              f"{', '.join(export.not_in_roster)}", file=sys.stderr)
    for line in export.warnings:
        print(f"warning: {line}", file=sys.stderr)
    print(f"wrote {out}: {export.graded} graded, {export.without_submission} without a grade (left empty), "
          f"{len(export.not_in_roster)} not in the roster")
    return 0


if __name__ == "__main__":
    sys.exit(main())
