"""The Ray backend (autograder/ray_backend.py): the same grades as the local backend, and no lost submission.

* three example students graded through the CLI with the local backend and with a local Ray give the
  same results.json (timing aside) and the same grades.csv rows;
* a Ray worker killed while grading a submission is replaced and the task retried: the grade arrives;
  one killed on every attempt leaves a ``runner_error`` result for that student, not a missing student;
* a node with other grader code is refused, and so is --device cuda on a cluster without a GPU;
  GPU tasks ask for a 1/per_gpu share of a GPU.

One local Ray (2 CPUs) serves the whole module. About a minute and a half on 2 busy cores.
"""
from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import pytest

ray = pytest.importorskip("ray", reason="the Ray backend needs Ray: pip install -e '.[ray]'")

from autograder import __main__ as cli, engine, ray_backend  # noqa: E402
from autograder.sandbox import bwrap_unavailable  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = REPO_ROOT / "examples" / "submitted"
STUDENTS = ("exp_logvar", "reference", "untouched")
SELECT = "reparameterize or vae_loss"
SANDBOX = "bwrap" if bwrap_unavailable() is None else "none"
TIMING = ("execution_time",)  # results.json fields that measure the run, not the grade
# A runner command that kills its parent, the Ray worker running the task (as a lost worker or node
# would), on its first attempt or on every attempt; otherwise it is the real runner. Attempts are
# counted in a marker file.
DYING_RUNNER = """
import os, runpy, signal, sys
from pathlib import Path
marker, always = Path(sys.argv.pop(1)), sys.argv.pop(1) == "always"
attempts = marker.read_text() if marker.exists() else ""
marker.write_text(attempts + "x")
if always or not attempts:
    os.kill(os.getppid(), signal.SIGKILL)
    sys.exit(1)
sys.argv[0] = "autograder.runner"
runpy.run_module("autograder.runner", run_name="__main__")
"""


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray for the module; the backend joins it instead of starting its own."""
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield
    ray.shutdown()


def grade_cli(out: Path, backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """``python -m autograder grade`` (in this process) with the given backend.

    Until the CLI has ``--backend``, the ray run goes through the same command with engine.grade_all
    forced to backend="ray"; once wired, pass ``--backend ray`` instead."""
    if backend == "ray":
        local_grade_all = engine.grade_all
        monkeypatch.setattr(engine, "grade_all", lambda *args, **kwargs: local_grade_all(
            *args, **{**kwargs, "backend": "ray"}))
    code = cli.main(["grade", *(str(EXAMPLES / s) for s in STUDENTS), "--out", str(out), "--jobs", "2",
                     "--sandbox", SANDBOX, "--device", "cpu", "-k", SELECT])
    assert code == 0


def results_json(out: Path, student: str) -> dict:
    document = json.loads((out / student / "results.json").read_text(encoding="utf-8"))
    return {key: value for key, value in document.items() if key not in TIMING}


def grades_rows(out: Path) -> dict[str, dict[str, str]]:
    with open(out / "grades.csv", newline="", encoding="utf-8") as file:
        return {row["student_id"]: {k: v for k, v in row.items() if k != "graded_at"} for row in csv.DictReader(file)}


def test_ray_gives_the_local_backends_results(local_ray, tmp_path, monkeypatch):
    calls = []
    ray_grade_all = ray_backend.grade_all
    monkeypatch.setattr(ray_backend, "grade_all", lambda *args, **kwargs: calls.append(kwargs) or ray_grade_all(
        *args, **kwargs))
    grade_cli(tmp_path / "local", "local", monkeypatch)
    assert calls == []
    grade_cli(tmp_path / "ray", "ray", monkeypatch)
    assert len(calls) == 1, "the ray run did not go through the Ray backend"
    for student in STUDENTS:
        assert results_json(tmp_path / "ray", student) == results_json(tmp_path / "local", student), student
    assert grades_rows(tmp_path / "ray") == grades_rows(tmp_path / "local")
    scores = {s: results_json(tmp_path / "ray", s)["score"] for s in STUDENTS}  # not an empty comparison
    assert scores["reference"] == 35 and 0 < scores["exp_logvar"] < 35 and scores["untouched"] == 0, scores


def grade_with_dying_runner(tmp_path: Path, mode: str, retries: int) -> tuple[dict, int]:
    script, marker = tmp_path / "dying_runner.py", tmp_path / "attempts"
    script.write_text(DYING_RUNNER)
    submissions = engine.discover([EXAMPLES / "reference"])
    results = ray_backend.grade_all(
        submissions, tmp_path / "out", jobs=1, retries=retries, runner=[sys.executable, str(script), str(marker), mode],
        options=["--sandbox", SANDBOX, "--device", "cpu", "-k", "test_keeps_shape_dtype_and_device"])
    return results, len(marker.read_text())


def test_a_task_whose_worker_dies_is_retried(local_ray, tmp_path):
    results, attempts = grade_with_dying_runner(tmp_path, "once", retries=2)
    assert attempts == 2
    result = results["reference"]
    assert "runner_error" not in result
    assert [c["passed"] for c in result["questions"]["reparameterize"]["checks"]] == [True]
    assert result["total"] == 15


def test_a_task_that_always_dies_leaves_a_runner_error(local_ray, tmp_path):
    results, attempts = grade_with_dying_runner(tmp_path, "always", retries=1)
    assert attempts == 2
    result = results["reference"]
    assert "lost after 2 attempts" in result["runner_error"] and result["total"] == 0
    assert "WorkerCrashedError" in (tmp_path / "out" / "reference" / "grader.log").read_text()


def test_a_node_with_other_grader_code_is_refused(local_ray, tmp_path, monkeypatch):
    monkeypatch.setattr(ray_backend, "grader_fingerprint", lambda: "another-commit")  # on the driver only
    with pytest.raises(ray_backend.ClusterError, match="other grader code"):
        ray_backend.grade_all(engine.discover([EXAMPLES / "reference"]), tmp_path, jobs=1, options=[])


def test_cuda_without_a_gpu_in_the_cluster_is_refused(local_ray, tmp_path):
    with pytest.raises(ray_backend.ClusterError, match="no GPU"):
        ray_backend.grade_all(engine.discover([EXAMPLES / "reference"]), tmp_path, jobs=1,
                              options=["--device", "cuda"])


def test_gpu_share_and_node_options():
    assert ray_backend.task_resources(["--device", "cuda"], per_gpu=4) == {"num_cpus": 1, "num_gpus": 0.25}
    assert ray_backend.task_resources(["--device", "cpu"], per_gpu=4) == {"num_cpus": 1, "num_gpus": 0}
    with pytest.raises(ValueError):
        ray_backend.task_resources(["--device", "cuda"], per_gpu=0)
    assert ray_backend.node_options(["--device", "cpu", "--train-data", "/driver/data", "-k", "x"]) == \
        ["--device", "cpu", "-k", "x"]
