"""The Gradescope package (autograder/gradescope.py): the zip's layout, and its run_autograder at work.

As Gradescope does, the zip is unpacked into ROOT/source and run_autograder is copied to ROOT (setup.sh
installs packages: it is only parsed with ``bash -n``). run_autograder then runs with this venv's python3
first on PATH, DATA_DIR pointing at an empty folder, HOME elsewhere and no AUTOGRADER_CACHE, so the MNIST
files in the zip are the only data it can grade with. The reference scores 100 (under bubblewrap where it
works here), the untouched template 0 under a ``bwrap`` that fails as in a Docker container (the fallback),
and an upload that is not exactly one notebook 0 with a message. About 2 minutes, most of it the
reference's full grading.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from autograder import config, gradescope, secret
from autograder.sandbox import bwrap_unavailable

REPO_ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = REPO_ROOT / "examples" / "submitted"
DATA_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
              "t10k-labels-idx1-ubyte")
FAILING_BWRAP = "#!/bin/sh\necho 'bwrap: Creating new namespace failed: Operation not permitted' >&2\nexit 1\n"


@pytest.fixture(scope="module")
def package(tmp_path_factory) -> Path:
    """The zip, built by the command (from DATA_DIR's MNIST files)."""
    out = tmp_path_factory.mktemp("build") / "gradescope.zip"
    assert gradescope.main(["--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def root(package: Path, tmp_path_factory) -> Path:
    """A folder laid out like Gradescope's /autograder after the image build."""
    root = tmp_path_factory.mktemp("autograder")
    with zipfile.ZipFile(package) as archive:
        for info in archive.infolist():
            Path(archive.extract(info, root / "source")).chmod(info.external_attr >> 16 & 0o777)
    shutil.copy2(root / "source" / "run_autograder", root / "run_autograder")
    return root


def run_autograder(root: Path, uploads: dict[str, Path], failing_bwrap: bool = False) -> tuple[str, dict]:
    """Run ROOT/run_autograder on ``uploads`` (name in submission/ -> file); its stdout and results.json."""
    for folder in ("submission", "results"):
        shutil.rmtree(root / folder, ignore_errors=True)
        (root / folder).mkdir()
    for name, path in uploads.items():
        shutil.copyfile(path, root / "submission" / name)
    scratch = root.parent / f"{root.name}-scratch"
    (scratch / "empty-data").mkdir(parents=True, exist_ok=True)
    (scratch / "home").mkdir(exist_ok=True)
    path = [str(Path(sys.executable).parent), os.environ["PATH"]]
    if failing_bwrap:  # what a Docker container without CAP_SYS_ADMIN answers
        (scratch / "bin").mkdir(exist_ok=True)
        (scratch / "bin" / "bwrap").write_text(FAILING_BWRAP)
        (scratch / "bin" / "bwrap").chmod(0o755)
        path.insert(0, str(scratch / "bin"))
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "AUTOGRADER_CACHE")}
    env.update(PATH=os.pathsep.join(path), AUTOGRADER_ROOT=str(root), DATA_DIR=str(scratch / "empty-data"),
               HOME=str(scratch / "home"))
    process = subprocess.run([str(root / "run_autograder")], cwd=root, env=env, capture_output=True, text=True,
                             timeout=1200)
    assert process.returncode == 0, process.stdout[-2000:] + process.stderr[-3000:]
    return process.stdout, json.loads((root / "results" / "results.json").read_text(encoding="utf-8"))


def scored_tests(document: dict) -> list[dict]:
    return [test for test in document["tests"] if test.get("visibility") != "hidden"]


def isolation_note(document: dict) -> str:
    [note] = [test for test in document["tests"] if test["name"] == gradescope.ISOLATION_TEST]
    assert note["visibility"] == "hidden" and note["max_score"] == 0
    return note["output"]


def archive_bytes(package: Path, name: str) -> bytes:
    with zipfile.ZipFile(package) as archive:
        return archive.read(name)


def test_zip_layout(package: Path):
    """setup.sh and run_autograder (executable) at the root, the grader, the reference, the calibration, the
    course secret and the MNIST files; nothing else of the repository, no byte code, and about 11 MiB."""
    with zipfile.ZipFile(package) as archive:
        modes = {info.filename: info.external_attr >> 16 & 0o777 for info in archive.infolist()}
    names = set(modes)
    assert modes["setup.sh"] == modes["run_autograder"] == 0o755
    expected = {"autograder/questions.toml", "autograder/calibration.json", "autograder/data/mnist_ae_latents.npy",
                "autograder/gradescope.py", "autograder/graders/conftest.py", "autograder/sandboxed/worker.py",
                "solutions/autoencoders.ipynb", "solutions/labtools.py", "assignment/labtools.py",
                "assignment/autoencoders.ipynb", "pyproject.toml",
                *(f"data/MNIST/raw/{name}" for name in DATA_FILES)}
    assert expected <= names
    assert config.datasets() == ["mnist"]
    assert {name.split("/")[0] for name in names} == {"setup.sh", "run_autograder", "README.md", "pyproject.toml",
                                                      "autograder", "solutions", "assignment", "data",
                                                      "grading-secret"}  # the course secret: the same draws as make grade
    assert modes["grading-secret"] == 0o644 and archive_bytes(package, "grading-secret") == secret.course_secret()
    assert {name for name in names if name.startswith(("data/", "solutions/", "assignment/"))} == \
        {"solutions/autoencoders.ipynb", "solutions/labtools.py", "assignment/labtools.py",
         "assignment/autoencoders.ipynb", *(f"data/MNIST/raw/{name}" for name in DATA_FILES)}
    assert not [name for name in names if "__pycache__" in name or name.endswith(".pyc") or "/." in name
                or "gradescope_files" in name]
    assert package.stat().st_size < 16 * 2**20


def test_scripts_are_valid_bash(root: Path):
    for script in ("setup.sh", "run_autograder"):
        check = subprocess.run(["bash", "-n", str(root / "source" / script)], capture_output=True, text=True)
        assert check.returncode == 0, check.stderr


def test_reference_scores_full_marks(root: Path):
    """The reference, uploaded under another name, scores 100/100 with the grader and data from the zip."""
    stdout, document = run_autograder(root, {"My notebook (1).ipynb":
                                             EXAMPLES / "reference" / "autoencoders" / "autoencoders.ipynb"})
    tests = scored_tests(document)
    assert (document["score"], document["max_score"]) == (100, 100), [(test["name"], test["output"][:300]) for test in
                                                                      tests if test["status"] != "passed"]
    assert {tag for test in tests for tag in test["tags"]} == set(config.questions())
    assert all(test["status"] == "passed" and test["score"] == test["max_score"] for test in tests)
    assert document["stdout_visibility"] == "hidden" and document["execution_time"] > 0
    assert f"autograder package: {root / 'source' / 'autograder'}" in stdout  # not the repository's copy
    assert (root / "source" / "cache" / "train-data" / "mnist.safetensors").is_file()
    assert sorted(p.name for p in (root / "source" / "data").rglob("*") if p.is_file()) == sorted(DATA_FILES)
    problem = bwrap_unavailable()
    assert isolation_note(document).startswith("Isolation: student code ran under bubblewrap" if problem is None
                                               else "Isolation: bubblewrap is refused")


def test_untouched_template_without_bwrap(root: Path):
    """Where bubblewrap is refused the grader falls back to --sandbox none, scores the template 0 with a
    message per check, and tells the instructor (not the student) what isolation remains."""
    stdout, document = run_autograder(root, {"autoencoders.ipynb":
                                             EXAMPLES / "untouched" / "autoencoders" / "autoencoders.ipynb"},
                                      failing_bwrap=True)
    assert (document["score"], document["max_score"]) == (0, 100)
    tests = [test for test in scored_tests(document) if test["max_score"] > 0]
    assert len(tests) > 20 and all(test["status"] == "failed" and test["output"] for test in tests)
    note = isolation_note(document)
    assert "bubblewrap is refused in this container (bwrap cannot create a sandbox here: bwrap: Creating new " \
           "namespace failed: Operation not permitted)" in note
    assert "separate worker processes" in note and "drop to uid 65534" in note and "could not read or alter" in note
    assert note in stdout and document["stdout_visibility"] == "hidden"
    assert "bubblewrap" not in document["output"]


@pytest.mark.parametrize("uploads", [{}, {"notes.py": Path(__file__)},
                                     {"a.ipynb": config.REFERENCE_NOTEBOOK, "b.ipynb": config.REFERENCE_NOTEBOOK}],
                         ids=["nothing", "no-notebook", "two-notebooks"])
def test_upload_that_is_not_one_notebook_scores_zero(root: Path, uploads: dict[str, Path]):
    _, document = run_autograder(root, uploads)
    assert (document["score"], document["max_score"], document["tests"]) == (0, 100, [])
    expected = "2 notebooks were submitted (a.ipynb, b.ipynb)" if len(uploads) == 2 else "No notebook (.ipynb)"
    assert expected in document["output"]


def test_grade_needs_a_gradescope_layout(tmp_path, capsys):
    assert gradescope.main(["grade", str(tmp_path)]) == 2
    assert "has no source/ folder" in capsys.readouterr().err
