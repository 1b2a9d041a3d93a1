"""``autograder/nbgrader_autograde.py``: the preprocessor that takes nbgrader ``Execute``'s place.

Fast: a stand-in for ``python -m autograder grade`` (the ``SandboxedGrader.python`` option) writes a chosen
results.json, so these tests check the plumbing: what the auto_* cells get and how nbgrader's own
``determine_grade`` (what ``SaveAutoGrades`` stores) reads it, what the grader is given, and that every
failure stops the submission instead of scoring it. ``tests/test_nbgrader_e2e.py`` runs the real grader
through ``nbgrader autograde``.
"""
from __future__ import annotations

import json
import os
import stat
import sys
import textwrap
import time
from pathlib import Path

import nbformat
import pytest
from nbgrader import utils
from nbgrader.preprocessors import Execute
from traitlets import TraitError
from traitlets.config import Config
from traitlets.config.loader import PyFileConfigLoader

from autograder import config
from autograder.nbgrader_autograde import GradingFailed, SandboxedGrader, feedback_text, is_configured

QUESTIONS = config.questions()
STUDENT = "s1"
# The stand-in grader: records its argv and environment, then does what FAKE_MODE says.
FAKE_GRADER = f"""#!{sys.executable}
import json, os, sys, time
from pathlib import Path
args = sys.argv[1:]
assert args[:3] == ["-m", "autograder", "grade"], args
out = Path(args[args.index("--out") + 1])
notebook = Path(args[3])
Path(os.environ["FAKE_LOG"]).write_text(json.dumps({{"argv": args, "cwd": os.getcwd(), "env": dict(os.environ),
                                                    "notebook": notebook.read_text()}}))
mode = os.environ["FAKE_MODE"]
if mode == "fail":
    print("error: the sandbox is missing", file=sys.stderr)
    sys.exit(2)
if mode == "sleep":
    time.sleep(600)
if mode != "silent":
    folder = out / notebook.parents[1].name
    folder.mkdir(parents=True, exist_ok=True)
    files = json.loads(os.environ["FAKE_RESULTS"])
    (folder / "results.json").write_text(json.dumps(files["results"]))
    (folder / "scored.json").write_text(json.dumps(files["scored"]))
"""


def _test(question: str, score: float, maximum: float, output: str = "", **extra) -> dict:
    return {"name": f"{question}: チェック {score} / check {score}", "score": score, "max_score": maximum,
            "status": "passed" if score == maximum else "failed", "output": output, "tags": [question],
            "visibility": "visible", "output_format": "text", **extra}


def _results(points: dict[str, float], shares: dict[str, float] | None = None) -> str:
    """What the stand-in grader writes: results.json with two checks per question, ``points[q]`` split between
    them (``shares[q]`` instead, when given: results.json's rounded shares), and scored.json with ``points``."""
    tests, questions = [], {}
    for q, got in points.items():
        maximum = float(QUESTIONS[q]["points"])
        shown = (shares or {}).get(q, got)
        tests += [_test(q, min(shown, maximum / 2), maximum / 2),
                  _test(q, max(0.0, shown - maximum / 2), maximum / 2, "KL 項の符号が逆です\nwrong sign")]
        questions[q] = {"points": got, "max_points": maximum, "checks": [{"passed": got == maximum}]}
    return json.dumps({"results": {"score": sum(points.values()), "tests": tests},
                       "scored": {"questions": questions}})


@pytest.fixture
def course(tmp_path: Path, assignment_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A course directory with one submission (the release) and the stand-in grader."""
    course = tmp_path / "course"
    submitted = course / "submitted" / STUDENT / "autoencoders"
    submitted.mkdir(parents=True)
    (submitted / "autoencoders.ipynb").write_bytes((assignment_dir / "autoencoders.ipynb").read_bytes())
    fake = tmp_path / "fake-python"
    fake.write_text(FAKE_GRADER)
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("FAKE_LOG", str(tmp_path / "fake.json"))
    monkeypatch.setenv("FAKE_MODE", "grade")
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")  # nbgrader sets it while autograding
    monkeypatch.setenv("DATA_DIR", "relative/data")
    return course


def _grader(course: Path, **options) -> SandboxedGrader:
    c = Config()
    c.CourseDirectory.root = str(course)
    c.SandboxedGrader.python = str(course.parent / "fake-python")
    for key, value in options.items():
        c.SandboxedGrader[key] = value
    return SandboxedGrader(config=c)


def _run(course: Path, grader: SandboxedGrader | None = None) -> nbformat.NotebookNode:
    nb = nbformat.read(course / "submitted" / STUDENT / "autoencoders" / "autoencoders.ipynb", as_version=4)
    resources = {"nbgrader": {"student": STUDENT, "assignment": "autoencoders", "notebook": "autoencoders"}}
    nb, _ = (grader or _grader(course)).preprocess(nb, resources)
    return nb


def _auto_cells(nb: nbformat.NotebookNode) -> dict[str, nbformat.NotebookNode]:
    return {c.metadata.nbgrader["grade_id"].removeprefix("auto_"): c for c in nb.cells
            if c.metadata.get("nbgrader", {}).get("grade_id", "").startswith("auto_")}


def test_the_course_config_puts_the_grader_in_executes_place(repo_root: Path):
    """The course's nbgrader_config.py lists nbgrader's own autograde preprocessors with SandboxedGrader in
    Execute's place (late penalties, manual overrides: nbgrader's), and its sanitising ones without ClearOutput."""
    from nbgrader.converters import Autograde
    from nbgrader.preprocessors import ClearOutput
    from traitlets.utils.importstring import import_item

    loaded = PyFileConfigLoader("nbgrader_config.py", path=str(repo_root)).load_config()
    assert is_configured(loaded), "the course's nbgrader_config.py does not configure the sandboxed grader"
    traits = Autograde.class_traits()
    configured = [import_item(name) for name in loaded.Autograde.autograde_preprocessors]
    assert configured == [SandboxedGrader if pp is Execute else pp for pp in traits["autograde_preprocessors"].default()]
    sanitize = [import_item(name) for name in loaded.Autograde.sanitize_preprocessors]
    assert sanitize == [pp for pp in traits["sanitize_preprocessors"].default() if pp is not ClearOutput]

    assert not is_configured(Config())
    other = Config()
    other.Autograde.autograde_preprocessors = ["nbgrader.preprocessors.Execute", *configured[1:]]
    assert not is_configured(other)
    other.Autograde.autograde_preprocessors = ["no_such_module.SandboxedGrader", *configured[1:]]
    assert not is_configured(other)


def test_points_and_feedback_go_into_the_auto_cells(course: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    points = {q: float(spec["points"]) for q, spec in QUESTIONS.items()}
    points.update({"vae_loss": 7.5, "kmeans": 0.0, "conv_vae": 10.714285714})  # partial, 0, and 5/7 of 15
    shares = {"conv_vae": 5 * 2.1429}  # results.json's: 10.7145, which would round to 10.71 or 10.72
    monkeypatch.setenv("FAKE_RESULTS", _results(points, shares))
    nb = _run(course)

    cells = _auto_cells(nb)
    assert sorted(cells) == sorted(QUESTIONS)
    for q, cell in cells.items():
        got, maximum = utils.determine_grade(cell)  # what nbgrader's SaveAutoGrades stores
        assert (got, maximum) == (round(points[q], 2), float(QUESTIONS[q]["points"])), q  # grades.csv's number
        stream, result = cell.outputs
        assert stream.output_type == "stream" and stream.name == "stdout", "feedback must not be stderr (0 points)"
        assert stream.text.startswith(f"【自動採点】{QUESTIONS[q]['title']}"), stream.text
        assert result.output_type == "execute_result"
    assert "KL 項の符号が逆です\n    wrong sign" in cells["vae_loss"].outputs[0].text
    assert "7.5 / 20 点" in cells["vae_loss"].outputs[0].text and "7.5 / 20 points" in cells["vae_loss"].outputs[0].text

    log = json.loads((tmp_path / "fake.json").read_text())
    assert "NBGRADER_EXECUTION" not in log["env"], "the grader must not see nbgrader's execution flag"
    assert log["env"]["DATA_DIR"] == str(Path("relative/data").resolve())
    argv = log["argv"]
    assert argv[argv.index("--out") + 1] == str(course / "grades")
    assert argv[argv.index("--sandbox") + 1] == "bwrap"
    submitted = course / "submitted" / STUDENT / "autoencoders" / "autoencoders.ipynb"
    assert log["notebook"] == submitted.read_text(), "the grader must get the submitted bytes"
    assert Path(argv[3]).parts[-3:-1] == (STUDENT, "autoencoders"), argv[3]


def test_an_earlier_results_json_is_not_reused(course: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("FAKE_RESULTS", _results({q: 0.0 for q in QUESTIONS}))
    _run(course)
    monkeypatch.setenv("FAKE_MODE", "silent")  # exits 0 but writes nothing
    with pytest.raises(GradingFailed, match="wrote no new"):
        _run(course)


def test_a_failed_grader_stops_the_submission(course: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("FAKE_MODE", "fail")
    with pytest.raises(GradingFailed, match="exited 2(.|\n)*the sandbox is missing"):
        _run(course)


def test_a_question_without_a_score_stops_the_submission(course: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("FAKE_RESULTS", _results({q: 1.0 for q in QUESTIONS if q != "conv_vae"}))
    with pytest.raises(GradingFailed, match="no check of conv_vae"):
        _run(course)
    files = json.loads(_results({q: 1.0 for q in QUESTIONS}))
    files["scored"]["questions"]["kmeans"]["checks"] = []  # not graded (a runner that crashed)
    monkeypatch.setenv("FAKE_RESULTS", json.dumps(files))
    with pytest.raises(GradingFailed, match="no check of kmeans"):
        _run(course)
    files = json.loads(_results({q: 1.0 for q in QUESTIONS}))
    files["scored"]["questions"]["kmeans"]["max_points"] = 30.0  # questions.toml changed after the release
    monkeypatch.setenv("FAKE_RESULTS", json.dumps(files))
    with pytest.raises(GradingFailed, match="auto_kmeans is worth 15 points in the release and 30"):
        _run(course)


def test_other_code_grade_cells_are_refused(course: Path):
    path = course / "submitted" / STUDENT / "autoencoders" / "autoencoders.ipynb"
    nb = nbformat.read(path, as_version=4)
    cell = nbformat.v4.new_code_cell("assert True")
    cell.metadata["nbgrader"] = {"grade": True, "grade_id": "tests_extra", "points": 5, "solution": False,
                                 "locked": True, "schema_version": 3}
    nb.cells.append(cell)
    nbformat.write(nb, path)
    with pytest.raises(GradingFailed, match="tests_extra"):
        _run(course)


def test_a_grader_past_its_timeout_is_stopped(course: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("FAKE_MODE", "sleep")
    start = time.monotonic()
    with pytest.raises(GradingFailed, match="more than 1 s"):
        _run(course, _grader(course, timeout=1))
    assert time.monotonic() - start < 30


def test_options_that_would_change_what_is_graded_are_refused(course: Path):
    for args in (["-k", "vae_loss"], ["-kvae_loss"], ["--out=elsewhere"], ["--sandbox", "none"]):
        with pytest.raises(TraitError, match="may not hold"):
            _grader(course, grader_args=args)
    assert _grader(course, grader_args=["--device", "cuda"]).grader_args == ["--device", "cuda"]


def test_feedback_text_is_plain_and_clipped():
    spec = QUESTIONS["vae_loss"]
    tests = [_test("vae_loss", 0.0, 4.0, "\x1b[31mred\x1b[0m\nline two"),
             _test("vae_loss", 0.0, 0.0, "secret", visibility="hidden")]
    text = feedback_text(spec, 0.0, 20.0, tests, 4000)
    assert "\x1b" not in text and "    [31mred[0m\n    line two" in text
    assert "secret" not in text, "a hidden test was shown"
    assert text.splitlines()[0] == f"【自動採点】{spec['title']}: 0 / 20 点"
    long = feedback_text(spec, 0.0, 20.0, [_test("vae_loss", 0.0, 4.0, "x" * 10_000)], 500)
    assert len(long) <= 500 and long.rstrip().endswith("clipped: feedback.html has it all)")


def test_nbgrader_loads_the_course_config_in_a_fresh_process(repo_root: Path, tmp_path: Path):
    """What `nbgrader autograde` run in the course directory ends up with (a separate interpreter, as nbgrader)."""
    code = textwrap.dedent("""
        from nbgrader.apps import NbGrader
        from autograder.nbgrader_autograde import is_configured
        app = NbGrader()
        app.load_config_file()
        print(is_configured(app.config))
    """)
    import subprocess

    proc = subprocess.run([sys.executable, "-c", code], cwd=repo_root, capture_output=True, text=True,
                          env={**os.environ, "JUPYTER_CONFIG_DIR": str(tmp_path)})
    assert proc.returncode == 0 and proc.stdout.strip() == "True", proc.stdout + proc.stderr
