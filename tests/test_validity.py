"""Grader validity: the rubric is complete, a bug costs once, and diagnoses name only what they measured.

* the rubric (``python -m autograder list``) covers every check, and a check without a valid question
  marker stops grading at start-up instead of vanishing from the scores;
* a ``reparameterize`` that raises costs ``reparameterize`` (and ``vae_training``, whose purpose is to
  train the given VAE with it), not ``conv_vae``: the grader's own ``reparameterize`` stands in there;
* ``kmeans`` without its update step is told that the centroids never moved; a ``ConvVAE`` that samples with
  its mu and logvar swapped is told so; a crash is quoted with its line and its likely cause;
* diagnoses are named only when unambiguous (unit tests of :func:`autograder.oracle.diagnosis`).

Run with ``DATA_DIR=../shared/datasets python -m pytest tests/test_validity.py``.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import torch

from autograder import config, rubric
from autograder.oracle import diagnosis
from autograder.sandbox import bwrap_unavailable

REPO_ROOT = Path(__file__).resolve().parent.parent
REFERENCE = REPO_ROOT / "examples" / "submitted" / "reference" / "autoencoders" / "autoencoders.ipynb"
BROKEN_REPARAMETERIZE = '''
def reparameterize(mu, logvar):
    raise NotImplementedError("not done yet")
'''
NO_UPDATE_STEP = ("        centroids = torch.where(counts > 0, sums / counts.clamp(min=1), centroids)\n", "")
# ConvVAE samples with its mu and logvar swapped; kmeans lost the line that assigns new_labels
SWAPPED_SAMPLING = ("self.decoder(reparameterize(mu, logvar)), mu, logvar",
                    "self.decoder(reparameterize(logvar, mu)), mu, logvar")
DELETED_ASSIGNMENT = ("        new_labels = torch.cdist(x, centroids).argmin(dim=1)\n", "")


# -- the rubric ----------------------------------------------------------------------------------------
def test_rubric_lists_every_check_with_its_points():
    """Every question's checks add up to its points; the source-policy check is worth nothing itself, and the
    checks that void a question are the policy and the conv models' convolution check."""
    checks = rubric.collect()
    questions = config.questions()
    assert {c.question for c in checks} == set(questions)
    for qid, spec in questions.items():
        assert sum(c.points for c in checks if c.question == qid) == pytest.approx(spec["points"]), qid
    voiding = {(c.question, c.points == 0) for c in checks if c.voids}
    # the kmeans source policy (worth nothing itself) and the conv models' "the encoder is convolutional"
    assert voiding == {("kmeans", True), ("conv_autoencoder", False), ("conv_vae", False)}, voiding
    listing = subprocess.run([sys.executable, "-m", "autograder", "list"], capture_output=True, text=True,
                             cwd=REPO_ROOT, timeout=300)
    assert listing.returncode == 0, listing.stderr
    assert "total: 100 points" in listing.stdout and "vae_loss" in listing.stdout


def test_a_check_without_a_valid_question_fails_loudly(tmp_path):
    """A grader test with no question marker, or a misspelt question id, is an error naming it."""
    (tmp_path / "conftest.py").write_text(
        "def pytest_configure(config):\n    config.addinivalue_line('markers', 'question(id): q')\n")
    (tmp_path / "test_broken.py").write_text(
        "import pytest\n\n\ndef test_unmarked():\n    pass\n\n\n"
        "@pytest.mark.question('vae_los')\ndef test_misspelt():\n    pass\n\n\n"
        "@pytest.mark.question('vae_loss')\ndef test_fine():\n    pass\n")
    with pytest.raises(rubric.RubricError) as caught:
        rubric.collect(tmp_path)
    text = str(caught.value)
    assert "test_unmarked: no @pytest.mark.question" in text
    assert "test_misspelt: question 'vae_los' is not in questions.toml" in text
    assert "test_fine" not in text


# -- diagnoses ------------------------------------------------------------------------------------------
def test_a_diagnosis_is_named_only_when_unambiguous():
    expected = torch.tensor(100.0)
    mistakes = [(torch.tensor(50.0), "halved"), (torch.tensor(50.5), "almost halved"), (torch.tensor(200.0), "doubled")]
    assert diagnosis(torch.tensor(200.0), expected, mistakes, 1e-4, 0.01) == "doubled"
    assert diagnosis(torch.tensor(50.2), expected, mistakes, 1e-4, 1.0) is None  # two mistakes fit: name neither
    assert diagnosis(torch.tensor(73.0), expected, mistakes, 1e-4, 0.01) is None  # none fits
    assert diagnosis(torch.tensor(100.5), expected, [(torch.tensor(100.4), "tiny")], 1e-4, 1.0) is None


# -- graded by the real engine ------------------------------------------------------------------------------
def _student(folder: Path, student: str, cell_id: str, edit) -> None:
    notebook = nbformat.read(REFERENCE, as_version=4)
    cells = [c for c in notebook.cells if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == cell_id]
    assert len(cells) == 1, cell_id
    cells[0].source = edit(cells[0].source)
    path = folder / student / "autoencoders" / "autoencoders.ipynb"
    path.parent.mkdir(parents=True)
    nbformat.write(notebook, path)


@pytest.fixture(scope="module")
def graded(tmp_path_factory) -> dict[str, dict]:
    reason = bwrap_unavailable()
    if reason:
        pytest.skip(f"bubblewrap unavailable: {reason}")
    folder = tmp_path_factory.mktemp("validity")
    _student(folder / "submitted", "broken_reparameterize", "reparameterize", lambda source: BROKEN_REPARAMETERIZE)

    def edited(change: tuple[str, str]):
        def edit(source: str) -> str:
            assert source.count(change[0]) == 1, change[0]
            return source.replace(*change)
        return edit

    _student(folder / "submitted", "kmeans_no_update", "kmeans", edited(NO_UPDATE_STEP))
    _student(folder / "submitted", "conv_vae_swapped", "ConvVAE", edited(SWAPPED_SAMPLING))
    _student(folder / "submitted", "kmeans_deleted_line", "kmeans", edited(DELETED_ASSIGNMENT))
    out = folder / "grades"
    process = subprocess.run([sys.executable, "-m", "autograder", "grade", str(folder / "submitted"), "--out", str(out),
                              "--jobs", "2", "-k", "reparameterize or conv_vae or kmeans"],
                             capture_output=True, text=True, cwd=REPO_ROOT, timeout=900)
    assert process.returncode == 0, process.stderr[-3000:]
    return {student: json.loads((out / student / "results.json").read_text())
            for student in ("broken_reparameterize", "kmeans_no_update", "conv_vae_swapped", "kmeans_deleted_line")}


def _points(result: dict, question: str) -> float:
    return sum(test["score"] for test in result["tests"] if test["tags"] == [question])


def test_a_bug_costs_once(graded):
    """reparameterize raises: it loses reparameterize, while ConvVAE (graded with the grader's own
    reparameterize) keeps all 15 points."""
    result = graded["broken_reparameterize"]
    assert _points(result, "reparameterize") == 0
    assert _points(result, "conv_vae") == pytest.approx(15, abs=0.01)  # results.json rounds each share to 4 places


def test_kmeans_without_its_update_step_is_named(graded):
    result = graded["kmeans_no_update"]
    failed = [test for test in result["tests"] if test["tags"] == ["kmeans"] and test["status"] == "failed"]
    assert failed, result["tests"]
    assert any("never moved" in test["output"] or "update step" in test["output"] for test in failed), failed


def _failed(result: dict, question: str) -> list[dict]:
    return [test for test in result["tests"] if test["tags"] == [question] and test["status"] == "failed"]


def test_a_conv_vae_that_samples_with_swapped_mu_and_logvar_is_named(graded):
    """reparameterize(logvar, mu) in ConvVAE.forward: named by the check that records the call, not only by a
    training score over the limit."""
    failed = _failed(graded["conv_vae_swapped"], "conv_vae")
    assert any("passes the mu and logvar it returns to reparameterize swapped" in test["output"] for test in failed), \
        failed


def test_a_crash_names_its_likely_cause(graded):
    """A deleted assignment: the NameError is quoted with its line, then explained (autograder/explain.py)."""
    failed = _failed(graded["kmeans_deleted_line"], "kmeans")
    assert failed and all("NameError" in test["output"] for test in failed if "raised" in test["output"])
    assert any("Likely cause: `new_labels` is read before any line assigns it" in test["output"] for test in failed)
    assert any("考えられる原因: `new_labels` を代入する行より前に" in test["output"] for test in failed)
