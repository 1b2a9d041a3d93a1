"""LMS exports (autograder/export.py): grades.csv + the LMS's roster -> a file Canvas or Moodle imports.

Small grades.csv and rosters are written to tmp_path, ``main`` is run, and the output is parsed back with
``csv``: Japanese names survive, a roster student without a submission gets an empty grade (never 0), a
graded student missing from the roster is named on stderr and not written, a not-graded question leaves
the student exported with the graded total and a warning, bad input is one ``error:`` line, exit code 2
and no file, and the file is replaced atomically.
"""
from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest

from autograder import config, export

QUESTIONS = list(config.questions())
POINTS = {q: spec["points"] for q, spec in config.questions().items()}
BOM = b"\xef\xbb\xbf"


def _grade_row(student: str, scores: dict[str, float | None]) -> list[str]:
    cells = ["" if scores.get(q, POINTS[q]) is None else f"{scores.get(q, POINTS[q]):g}" for q in QUESTIONS]
    total = sum(scores.get(q, POINTS[q]) or 0 for q in QUESTIONS)
    return [student, *cells, f"{total:g}", "100", "2025-01-20T03:04:05Z"]


@pytest.fixture
def grades_dir(tmp_path: Path) -> Path:
    """s001 full marks but vae_loss 10/20 (total 90); S002 (upper case here) not graded on vae_training
    (total 75); s003 graded but in no roster; s005 and s006 full marks."""
    folder = tmp_path / "grades"
    folder.mkdir()
    rows = [["student_id", *QUESTIONS, "total", "max_total", "graded_at"],
            _grade_row("s001", {"vae_loss": 10}),
            _grade_row("S002", {"vae_training": None, "kmeans": 0}),
            _grade_row("s003", {}),
            _grade_row("s005", {}),
            _grade_row("s006", {})]
    with open(folder / "grades.csv", "w", newline="", encoding="utf-8") as file:
        csv.writer(file).writerows(rows)
    return folder


def _write(path: Path, rows: list[list[str]], encoding: str = "utf-8-sig") -> Path:
    with open(path, "w", newline="", encoding=encoding) as file:
        csv.writer(file).writerows(rows)
    return path


def _canvas_roster(tmp_path: Path, encoding: str = "utf-8-sig") -> Path:
    """Canvas's gradebook export: the Points Possible row, s002 in lower case, s004 who did not submit,
    s005 with an empty login (matched by SIS User ID), and the Test Student (no SIS ids)."""
    return _write(tmp_path / "canvas_roster.csv", [
        ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", "Quiz 1 (77)", "Current Score"],
        ["    Points Possible", "", "", "", "", "10", "(read only)"],
        ["山田, 太郎", "101", "2025001", "s001", "実験3 A班", "9", "90"],
        ["佐藤, 花子", "102", "2025002", "s002", "実験3 A班", "8", "80"],
        ["鈴木, 一郎", "104", "2025004", "s004", "実験3 B班", "", ""],
        ["高橋, 次郎", "105", "s005", "", "実験3 B班", "7", "70"],
        ["Student, Test", "999", "", "", "実験3 A班", "", ""],
    ], encoding)


def _read(path: Path) -> list[list[str]]:
    assert path.read_bytes().startswith(BOM), "UTF-8 with BOM, so that Excel shows the Japanese names"
    with open(path, newline="", encoding="utf-8-sig") as file:
        return list(csv.reader(file))


def test_canvas_export_follows_every_rule(grades_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code = export.main([str(grades_dir), "--format", "canvas", "--roster", str(_canvas_roster(tmp_path)),
                        "--assignment-name", "実験3-4 自己符号化器", "--assignment-id", "4321"])
    err = capsys.readouterr().err
    assert code == 0
    rows = _read(grades_dir / "canvas.csv")
    assert rows[0] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", "実験3-4 自己符号化器 (4321)"]
    assert rows[1] == ["Points Possible", "", "", "", "", "100"]
    by_name = {row[0]: row for row in rows[2:]}
    assert list(by_name) == ["山田, 太郎", "佐藤, 花子", "鈴木, 一郎", "高橋, 次郎", "Student, Test"]
    assert by_name["山田, 太郎"] == ["山田, 太郎", "101", "2025001", "s001", "実験3 A班", "90"]
    assert by_name["佐藤, 花子"][3:] == ["s002", "実験3 A班", "75"]  # matched without case; roster's spelling
    assert by_name["鈴木, 一郎"][5] == ""  # no submission: empty, never 0
    assert by_name["高橋, 次郎"][5] == "100"  # no login: matched by SIS User ID
    assert by_name["Student, Test"][5] == ""
    assert "s003" not in {cell for row in rows for cell in row}
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert any("s003" in line and "roster" in line for line in warnings)
    assert any("S002" in line and "vae_training" in line and "75" in line for line in warnings)
    assert not any("s001" in line for line in warnings)
    assert sorted(p.name for p in grades_dir.iterdir()) == ["canvas.csv", "grades.csv"]  # no temporary left


def test_canvas_without_id_or_points_possible(grades_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "upload.csv"
    assert export.main([str(grades_dir), "--format", "canvas", "--roster", str(_canvas_roster(tmp_path)),
                        "--out", str(out), "--no-points-possible"]) == 0
    rows = _read(out)
    assert rows[0][5] == "autoencoders"  # Canvas matches the title, or creates the assignment
    assert rows[1][0] == "山田, 太郎"
    assert not (grades_dir / "canvas.csv").exists()


def test_shift_jis_roster_keeps_japanese_names(grades_dir: Path, tmp_path: Path) -> None:
    roster = _canvas_roster(tmp_path, encoding="cp932")  # what Japanese Excel saves as "CSV"
    assert export.main([str(grades_dir), "--format", "canvas", "--roster", str(roster)]) == 0
    assert _read(grades_dir / "canvas.csv")[2][:2] == ["山田, 太郎", "101"]


@pytest.mark.parametrize("id_column, header, ids", [
    ("username", "Username", ["s001", "s002", "s004", "s005"]),
    ("email", "メールアドレス", ["s001", "S002", "s004", "s005"]),
    ("idnumber", "ID number", ["s001", "s002", "s004", "s005"]),
])
def test_moodle_export_follows_every_rule(grades_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture,
                                          id_column: str, header: str, ids: list[str]) -> None:
    roster = _write(tmp_path / "moodle_roster.csv", [
        ["名", "姓", header, "所属組織"],
        ["太郎", "山田", ids[0], "工学部"],
        ["花子", "佐藤", ids[1], "工学部"],
        ["一郎", "鈴木", ids[2], "工学部"],
        ["次郎", "高橋", "", "工学部"],  # no identifier: Moodle would credit the previous row's user
        ["三郎", "田中", ids[3], "工学部"],
    ])
    argv = [str(grades_dir), "--format", "moodle", "--roster", str(roster)]
    code = export.main(argv + (["--id-column", id_column] if id_column != "username" else []))
    err = capsys.readouterr().err
    assert code == 0
    rows = _read(grades_dir / "moodle.csv")
    assert rows[0] == [{"username": "Username", "email": "Email address", "idnumber": "ID number"}[id_column],
                       "autoencoders", "autoencoders feedback"]
    by_id = {row[0]: row[1:] for row in rows[1:]}
    assert list(by_id) == ids  # roster order and spelling; the row without an identifier is not written
    assert by_id[ids[0]][0] == "90"
    assert by_id[ids[0]][1].startswith("reparameterize 15/15; vae_loss 10/20; vae_training 10/10")
    assert by_id[ids[0]][1].endswith("autograded total 90/100")
    assert by_id[ids[1]][0] == "75" and "vae_training not graded" in by_id[ids[1]][1]
    assert by_id[ids[2]] == ["", ""]  # no submission: empty, never 0
    assert by_id[ids[3]][0] == "100"
    assert "s003" not in {cell for row in rows for cell in row}
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert any("s003" in line for line in warnings)
    assert any("S002" in line and "vae_training" in line for line in warnings)
    assert any("line 5" in line and id_column in line for line in warnings)


def _bad_inputs(grades_dir: Path, tmp_path: Path) -> dict[str, list[str]]:
    canvas = str(_canvas_roster(tmp_path))
    no_login = str(_write(tmp_path / "no_login.csv", [["Student", "ID", "SIS User ID", "Section"],
                                                      ["山田, 太郎", "101", "s001", "A"]]))
    moodle = str(_write(tmp_path / "moodle.csv", [["First name", "Email address"], ["太郎", "s001@example.jp"]]))
    strangers = str(_write(tmp_path / "strangers.csv", [["Username"], ["x001"], ["x002"]]))
    twice = str(_write(tmp_path / "twice.csv", [["Username"], ["s001"], ["S001"]]))
    empty_dir = tmp_path / "empty"
    empty_dir.mkdir(exist_ok=True)
    bad_grades = tmp_path / "bad_grades"
    bad_grades.mkdir(exist_ok=True)
    text = (grades_dir / "grades.csv").read_text(encoding="utf-8").replace(",90,100,", ",ninety,100,")
    (bad_grades / "grades.csv").write_text(text, encoding="utf-8")
    grades = str(grades_dir)
    return {
        "missing grades.csv": [str(empty_dir), "--format", "canvas", "--roster", canvas],
        "grades not a number": [str(bad_grades), "--format", "canvas", "--roster", canvas],
        "missing roster": [grades, "--format", "canvas", "--roster", str(tmp_path / "nope.csv")],
        "canvas roster without SIS Login ID": [grades, "--format", "canvas", "--roster", no_login],
        "moodle roster without username": [grades, "--format", "moodle", "--roster", moodle],
        "unknown format": [grades, "--format", "blackboard", "--roster", canvas],
        "no --format": [grades, "--roster", canvas],
        "nobody in the roster": [grades, "--format", "moodle", "--roster", strangers],
        "a student twice in the roster": [grades, "--format", "moodle", "--roster", twice],
        "--id-column with canvas": [grades, "--format", "canvas", "--roster", canvas, "--id-column", "email"],
        "--out in a missing folder": [grades, "--format", "canvas", "--roster", canvas,
                                      "--out", str(tmp_path / "no" / "x.csv")],
    }


def test_bad_input_is_one_error_line_exit_2_and_no_file(grades_dir: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture) -> None:
    cases = _bad_inputs(grades_dir, tmp_path)
    before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")}
    for case, argv in cases.items():
        code = export.main(argv)
        captured = capsys.readouterr()
        lines = captured.err.strip().splitlines()
        assert code == 2, case
        assert len(lines) == 1 and lines[0].startswith("error: "), (case, captured.err)
        assert captured.out == "", case
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")} == before  # nothing written anywhere


def test_error_messages_name_the_problem(grades_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    cases = _bad_inputs(grades_dir, tmp_path)
    expected = {"missing grades.csv": "grades.csv does not exist", "grades not a number": "'ninety'",
                "canvas roster without SIS Login ID": "'SIS Login ID'", "moodle roster without username":
                "no username column", "unknown format": "'blackboard'", "nobody in the roster": "no student",
                "a student twice in the roster": "twice"}
    for case, fragment in expected.items():
        export.main(cases[case])
        assert fragment in capsys.readouterr().err, case


def test_output_is_replaced_atomically(grades_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture) -> None:
    roster = str(_canvas_roster(tmp_path))
    out = grades_dir / "canvas.csv"
    out.write_text("previous export\n", encoding="utf-8")

    def failing_replace(source: str, target: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", failing_replace)  # what the atomic write (gradesheet.write_atomic) renames with
    assert export.main([str(grades_dir), "--format", "canvas", "--roster", roster]) == 2
    assert "disk full" in capsys.readouterr().err
    assert out.read_text(encoding="utf-8") == "previous export\n"
    assert sorted(p.name for p in grades_dir.iterdir()) == ["canvas.csv", "grades.csv"]
    monkeypatch.undo()
    assert export.main([str(grades_dir), "--format", "canvas", "--roster", roster]) == 0
    assert _read(out)[0][0] == "Student"
    mask = os.umask(0)
    os.umask(mask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~mask  # an ordinary file, not mkstemp's 0600


def test_help_explains_the_imports(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_info:
        export.main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for fragment in ("Grades -> Import", "CSV file", "SIS Login ID", "--id-column", "考察"):
        assert fragment in text
