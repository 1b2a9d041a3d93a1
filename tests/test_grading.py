"""The autograder on the example class, its outputs, its determinism, its CLI and its calibration.

* every example student (tools/make_examples.STUDENTS) loses points on exactly the questions
  listed for them; the reference scores 100/100 and the untouched template 0;
* grades.csv, results.json (Gradescope's schema), feedback.html and the class summary;
* grading the same submissions again gives the same results;
* the reference solution passes every training check under 10 seeds it was not calibrated on.

The example class is graded once per session (about 1.5 minutes on 2 cores).
"""
from __future__ import annotations

import csv
import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from autograder import config
from autograder.bottleneck import held_out_images, pins, split_lanes, train_encode_decode, training_costs
from autograder.client import Worker
from autograder.extract import extract_notebook
from autograder.graders.trained import SMOOTHNESS_LIMIT
from autograder.latents import smoothness
from autograder.sandbox import ROLE_FILES, SandboxConfig, prepare_runtime, prepare_training_data, training_data_cache
from autograder.scoring import held_out_score
from tools.make_examples import QUESTIONS, STUDENTS

REPO_ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = REPO_ROOT / "examples" / "submitted"
GRADER_SOURCE_MARKERS = ("def test_", "expect(", "pytest", "assert ", "autograder/graders")


def grade(paths: list[Path], out: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "autograder", "grade", *map(str, paths), "--out", str(out), *extra],
                          capture_output=True, text=True, cwd=REPO_ROOT, timeout=1800)


@pytest.fixture(scope="session")
def class_results(tmp_path_factory) -> Path:
    """The example class graded into a temporary folder."""
    out = tmp_path_factory.mktemp("grades")
    process = grade([EXAMPLES], out)
    assert process.returncode == 0, process.stderr[-3000:]
    return out


def read_csv(path: Path) -> dict[str, dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as file:
        return {row["student_id"]: row for row in csv.DictReader(file)}


def test_question_ids_agree_everywhere():
    """questions.toml, the graders' markers and the example class name the same questions, worth 100 in all."""
    questions = config.questions()
    assert tuple(questions) == QUESTIONS
    assert sum(q["points"] for q in questions.values()) == 100
    markers = set()
    for path in (REPO_ROOT / "autograder" / "graders").glob("test_*.py"):
        text = path.read_text()
        markers |= {q for q in questions if f'"{q}"' in text}
    assert markers == set(questions), f"questions without graders: {set(questions) - markers}"


def test_every_student_loses_points_exactly_where_expected(class_results):
    rows = read_csv(class_results / "grades.csv")
    assert set(rows) == {s.id for s in STUDENTS}
    questions = config.questions()
    for student in STUDENTS:
        row = rows[student.id]
        lost = {q for q in questions if float(row[q]) < questions[q]["points"]}
        assert lost == set(student.loses), f"{student.id} ({student.description}): lost {sorted(lost)}, " \
                                           f"expected {sorted(student.loses)}"
    assert float(rows["reference"]["total"]) == 100
    assert float(rows["untouched"]["total"]) == 0


def test_feedback_names_the_bug(class_results):
    """The messages of the example students name their mistakes."""
    expected = {
        "exp_logvar": "exp(0.5·logvar)",
        "kl_sign": "wrong sign",
        "conv_no_sigmoid": "Sigmoid",
        "kmeans_unseeded": "torch.Generator().manual_seed(seed)",
        "no_plots": "fig_kmeans_ae has no figure",
        "untouched": "NotImplementedError",
        "cheater": "the KL term is missing",
    }
    for student_id, phrase in expected.items():
        page = (class_results / student_id / "feedback.html").read_text(encoding="utf-8")
        assert phrase in page, f"{student_id}'s feedback does not mention {phrase!r}"


def test_outputs_follow_their_schemas(class_results):
    rows = read_csv(class_results / "grades.csv")
    header = next(csv.reader(open(class_results / "grades.csv", encoding="utf-8")))
    assert header == ["student_id", *QUESTIONS, "total", "max_total", "graded_at"]
    for student_id, row in rows.items():
        results = json.loads((class_results / student_id / "results.json").read_text(encoding="utf-8"))
        assert set(results) >= {"score", "tests"}
        assert results["score"] == pytest.approx(float(row["total"]), abs=0.01)
        assert sum(t["score"] for t in results["tests"]) == pytest.approx(results["score"], abs=0.01)
        for test in results["tests"]:
            assert set(test) >= {"name", "score", "max_score", "status", "output", "tags"}
            assert len(test["tags"]) == 1 and test["tags"][0] in QUESTIONS
            assert test["status"] in ("passed", "failed")
            assert (test["status"] == "passed") == (test["score"] == test["max_score"])
        page = (class_results / student_id / "feedback.html").read_text(encoding="utf-8")
        assert page.startswith("<!doctype html>") and student_id in page
        for marker in GRADER_SOURCE_MARKERS:
            assert marker not in page, f"{student_id}'s feedback shows grader source ({marker!r})"
    summary = (class_results / "summary.txt").read_text()
    assert "mean" in summary and all(s.id in summary for s in STUDENTS)
    assert (class_results / "summary.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_feedback_shows_the_grader_s_pictures(class_results):
    """The reference's page embeds its pictures: 3 per trained model (reconstructions, latents by digit, prior
    samples) and the k-means clusters; the page stays well under 1 MB and needs no other file."""
    page = (class_results / "reference" / "feedback.html").read_text(encoding="utf-8")
    assert page.count("<img src='data:image/png;base64,") == 10
    assert len(page.encode()) < 1_000_000
    assert "src='http" not in page and "src=\"" not in page


def test_insights_name_each_student_s_mistake_under_its_question(class_results):
    """grades/insights.html (autograder/insights.py): each example student who loses points on a question is
    named there under that question, with a mistake (kl_sign: the KL sign under vae_loss) or, for the untouched
    template, a NotImplementedError crash and a 0 that says so."""
    from autograder import insights

    questions = config.questions()
    data = insights.analyse(insights.load_class(class_results, questions), questions)
    for student in STUDENTS:
        for qid in student.loses:
            named = any(student.id in g.students for g in data.questions[qid].mistakes.values())
            crashed = any(student.id in g.students and qid in g.questions for g in data.crashes.values())
            assert named or crashed, f"{student.id} is not named under {qid}"
    kl = [g for g in data.questions["vae_loss"].mistakes.values() if "kl_sign" in g.students]
    assert any("the KL term has the wrong sign" in g.label().en for g in kl)
    assert set(data.zeros) == {"untouched"} and "template is unchanged" in data.zeros["untouched"].en
    page = (class_results / "insights.html").read_text(encoding="utf-8")
    section = page.split("id='q-vae_loss'")[1].split("<section")[0]
    assert "<a href='kl_sign/feedback.html'>kl_sign</a>" in section and "wrong sign" in section


def test_grading_again_gives_the_same_results(class_results, tmp_path):
    students = ["exp_logvar", "conv_no_sigmoid"]
    process = grade([EXAMPLES / s for s in students], tmp_path)
    assert process.returncode == 0, process.stderr[-3000:]
    for student_id in students:
        first = json.loads((class_results / student_id / "results.json").read_text())
        second = json.loads((tmp_path / student_id / "results.json").read_text())
        assert first["tests"] == second["tests"], f"{student_id}: a second grading run differs"
        assert first["score"] == second["score"]


@pytest.fixture(scope="module")
def train_data() -> Path:
    return prepare_training_data(training_data_cache(), config.datasets())


def test_training_is_bitwise_reproducible(tmp_path, train_data):
    """The grader's training loop gives identical weights for the same seed in two fresh workers."""
    cells = extract_notebook(config.REFERENCE_NOTEBOOK).cells
    runtime = prepare_runtime(tmp_path / "runtime")
    states = []
    for attempt in range(2):
        with Worker(cells, runtime, SandboxConfig(data=train_data), tmp_path / f"log{attempt}") as worker:
            answer = worker.request("train", cpu_s=120, name="VAE", kind="vae", dataset="mnist", n_train=4000,
                                    epochs=1, batch_size=128, lr=1e-3, seed=7)
            states.append(answer["state"])
    assert states[0].keys() == states[1].keys() and len(states[0]) >= 6
    assert all(states[0][key].equal(states[1][key]) for key in states[0])


def test_cli_rejects_bad_input_in_one_line(tmp_path):
    missing = grade([tmp_path / "nothing-here"], tmp_path / "out")
    assert missing.returncode == 2
    assert missing.stderr.strip().count("\n") == 0 and "does not exist" in missing.stderr
    (tmp_path / "empty").mkdir()
    empty = grade([tmp_path / "empty"], tmp_path / "out")
    assert empty.returncode == 2 and "no notebooks found" in empty.stderr
    helped = subprocess.run([sys.executable, "-m", "autograder", "grade", "--help"], capture_output=True, text=True,
                            cwd=REPO_ROOT)
    assert helped.returncode == 0 and "results.json" in helped.stdout and "--sandbox" in helped.stdout


def test_reference_passes_training_checks_under_unseen_seeds(tmp_path, train_data):
    """A correct solution passes the calibrated limits, and the decoder smoothness limit, under 10 seeds that
    calibration did not use."""
    calibration = config.calibration()
    budgets = config.budgets()
    cells = extract_notebook(config.REFERENCE_NOTEBOOK).cells
    runtime = prepare_runtime(tmp_path / "runtime")
    settings = SandboxConfig(data=train_data)
    seeds = range(1000, 1010)
    failures = []

    def lane(index: int) -> None:
        workers = [Worker(cells, runtime, settings, tmp_path / f"{role}{index}.log") for role in ("train", "encode")]
        try:
            for seed in seeds[index::2]:
                for qid, budget in budgets.items():
                    slow = {**budget, "cpu_s": 600}
                    x_eval = held_out_images(budget["dataset"], budget["n_eval"])
                    trained = train_encode_decode(*workers, slow, "cpu", x_eval, seed=seed)
                    value = held_out_score(budget["kind"], trained.images, trained.latents, x_eval, budget["model"])
                    if value > calibration["questions"][qid]["threshold"]:
                        failures.append((qid, seed, value))
                    change = smoothness(trained.images, trained.shifted_images)
                    if change > SMOOTHNESS_LIMIT:
                        failures.append((qid, seed, f"smoothness {change:.3f}"))
        finally:
            for worker in workers:
                worker.close()

    with ThreadPoolExecutor(2) as pool:
        list(pool.map(lane, range(2)))
    assert not failures, f"the reference fails a calibrated limit: {failures}"


def test_discover_accepts_the_documented_paths(tmp_path):
    from autograder.engine import BadInput, discover

    for student in ("amy", "bob"):
        folder = tmp_path / "submitted" / student / "autoencoders"
        folder.mkdir(parents=True)
        (folder / "autoencoders.ipynb").write_text("{}")
    (tmp_path / "submitted" / "amy" / "autoencoders" / "notes.txt").write_text("")
    (tmp_path / "loose").mkdir()
    (tmp_path / "loose" / "carol.ipynb").write_text("{}")
    assert [s.student_id for s in discover([tmp_path / "submitted"])] == ["amy", "bob"]
    assert [s.student_id for s in discover([tmp_path / "submitted" / "bob"])] == ["bob"]
    assert [s.student_id for s in discover([tmp_path / "loose"])] == ["carol"]
    one = discover([tmp_path / "submitted" / "amy" / "autoencoders" / "autoencoders.ipynb"])
    assert [s.student_id for s in one] == ["amy"]
    assert [s.student_id for s in discover([tmp_path / "submitted" / "amy" / "autoencoders"])] == ["amy"]
    with pytest.raises(BadInput, match="not a notebook"):
        discover([tmp_path / "submitted" / "amy" / "autoencoders" / "notes.txt"])


def test_a_file_name_cannot_make_the_grader_write_outside_its_output_folder(tmp_path):
    """A student id names the folder under --out that gets grader.log, results.json and feedback.html, so a
    notebook called "...ipynb" (stem "..") must not become student "..": hidden notebooks are skipped in a
    folder, and named on their own they are refused in one line; so is a name a spreadsheet would run."""
    from autograder.engine import BadInput, discover

    (tmp_path / "loose").mkdir()
    for name in ("carol.ipynb", "...ipynb", "..ipynb", ".hidden.ipynb"):
        (tmp_path / "loose" / name).write_text("{}")
    assert [s.student_id for s in discover([tmp_path / "loose"])] == ["carol"]
    with pytest.raises(BadInput, match="cannot be a student id"):
        discover([tmp_path / "loose" / "...ipynb"])
    (tmp_path / "loose" / "=HYPERLINK(0).ipynb").write_text("{}")  # the first cell of its grades.csv row
    with pytest.raises(BadInput, match="spreadsheet formula"):
        discover([tmp_path / "loose"])
    hidden = tmp_path / "submitted" / ".x" / "autoencoders"
    hidden.mkdir(parents=True)
    (hidden / "autoencoders.ipynb").write_text("{}")
    with pytest.raises(BadInput, match="cannot be a student id"):
        discover([tmp_path / "submitted"])


def test_a_failed_runner_scores_zero_with_its_reason(tmp_path):
    """If grading one submission fails outright, that student gets 0 and the reason; nothing else is affected."""
    from autograder.engine import score
    from autograder.report import write_feedback_html, write_results_json

    result = score({"notebook": "x.ipynb", "checks": [], "runner_error": "the grader itself failed (timeout)"},
                   config.questions())
    assert result["total"] == 0 and result["max_total"] == 100
    write_results_json(tmp_path / "results.json", result)
    write_feedback_html(tmp_path / "feedback.html", "amy", result)
    assert "the grader itself failed" in json.loads((tmp_path / "results.json").read_text())["output"]
    assert "the grader itself failed" in (tmp_path / "feedback.html").read_text()


def test_each_device_uses_its_own_calibration(tmp_path, monkeypatch):
    """CUDA grading reads calibration-cuda.json when `make calibrate DEVICE=cuda` made one, else the CPU's with a
    warning; a stale CUDA file names the command that remakes it."""
    cuda_file = tmp_path / "calibration-cuda.json"
    monkeypatch.setitem(config.CALIBRATION_FILES, "cuda", cuda_file)
    assert config.calibration_file("cuda") == config.CALIBRATION_FILE
    assert "make calibrate DEVICE=cuda" in config.calibration_warning("cuda")
    assert config.calibration_warning("cpu") is None
    cpu = config.calibration("cpu")
    cuda_file.write_text(json.dumps({**cpu, "device": "cuda", "questions": {
        **cpu["questions"], "conv_vae": {**cpu["questions"]["conv_vae"], "threshold": 123.0}}}))
    assert config.calibration_file("cuda") == cuda_file and config.calibration_warning("cuda") is None
    assert config.calibration("cuda")["questions"]["conv_vae"]["threshold"] == 123.0
    assert config.calibration("cpu")["questions"]["conv_vae"]["threshold"] != 123.0
    cuda_file.write_text(json.dumps({**cpu, "pipeline": "older"}))
    with pytest.raises(config.StaleCalibration, match="DEVICE=cuda"):
        config.calibration("cuda")


def test_trainings_are_split_so_both_workers_stay_busy():
    """Longest first, each to the less loaded worker; the same split every run (a reproducible grade)."""
    costs = training_costs(["vae_training", "conv_autoencoder", "conv_vae"], "cpu")
    assert costs == {q: config.calibration()["questions"][q]["cpu_seconds_mean"] for q in costs}
    lanes = split_lanes(costs)
    load = {lane: sum(c for q, c in costs.items() if lanes[q] == lane) for lane in ("encoder", "student")}
    assert max(load.values()) <= 0.6 * sum(costs.values())  # the reference's 9.1 s | 11.0 s, not 4.6 s | 15.5 s
    assert lanes == split_lanes(dict(reversed(list(costs.items()))))  # order of the questions does not matter
    assert split_lanes({"conv_vae": 3.0}) == {"conv_vae": "student"}  # one training: the student's worker
    assert split_lanes({"a": 1.0, "b": 1.0, "c": 1.0, "d": 1.0}) == {"a": "encoder", "b": "student", "c": "encoder",
                                                                     "d": "student"}


def test_trainings_go_where_no_trusted_version_of_what_they_call_is_mounted():
    """conv_vae (trusted reparameterize) trains in the student worker, the only one holding trusted.py;
    vae_training (the student's own reparameterize) in the encoder worker, which has none; the rest by load."""
    questions = ["vae_training", "conv_autoencoder", "conv_vae"]
    pinned = pins(questions)
    assert pinned == {"conv_vae": "student", "vae_training": "encoder"}
    lanes = split_lanes({"vae_training": 9.0, "conv_autoencoder": 1.0, "conv_vae": 1.0}, pinned)
    assert lanes == {"vae_training": "encoder", "conv_vae": "student", "conv_autoencoder": "student"}
    assert "trusted.py" not in ROLE_FILES["encoder"] and "trusted.py" in ROLE_FILES["student"]


def test_a_huge_or_deeply_nested_file_scores_zero_with_its_reason(tmp_path):
    """A file over the size limit is not even read (a sparse 1 GB file here); JSON nested past Python's
    recursion limit is "not a readable notebook", like any other broken file."""
    from autograder import engine
    from autograder.submission import Context, read_notebook

    huge = tmp_path / "huge.ipynb"
    with open(huge, "wb") as file:
        file.truncate(2**30)
    result = engine.run_one(engine.Submission("huge", huge), tmp_path / "out", [])
    assert result["checks"] == [] and "too large (1024 MB; the limit is 64 MB)" in result["runner_error_en"], result
    deep = tmp_path / "deep.ipynb"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    context = Context(deep, tmp_path, None, tmp_path / "log")
    read_notebook(context)
    assert context.notebook is None and "RecursionError" in context.notebook_error.en


def test_workers_started_before_an_unreadable_notebook_is_read_are_stopped(tmp_path):
    """A full grading starts its three workers before the runner reads the notebook (runner.main): a file that is
    not JSON still scores 0 with its reason, no worker takes the definitions, and the runner does not wait for them."""
    from autograder import engine

    broken = tmp_path / "broken.ipynb"
    broken.write_text("not json {")
    result = engine.run_one(engine.Submission("broken", broken), tmp_path / "out", [])
    assert "not a readable notebook" in result["notebook_error_en"] and result["worker_starts"] == 0, result
    assert result["checks"] and not any(check["passed"] for check in result["checks"])
    assert result["seconds"] < 30, result["seconds"]
