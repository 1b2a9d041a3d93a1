"""Alternative correct answers keep full marks: a corpus of other ways to write each student cell.

``tests/alternatives/<name>.py`` is the complete source of one student cell, written in another
style than the reference (``torch.distributions``, in-place ops, float64, loops, other conv
architectures, ...). Its first line names the cell, ``# cell: <grade_id>``, and the ``# style:``
comment under it says what it demonstrates. Each alternative becomes one student of a made-up class:
the reference submission (``examples/submitted/reference``) with that one cell's source replaced.
The class is graded with the real CLI (``python -m autograder grade ... -k EXPR``), a few runs in all,
and every alternative must get every point of the questions its cell can change (:data:`AFFECTS`).
A failure prints the failing checks' feedback: a correct answer losing points is a grader bug.

About three minutes on two idle cores (three grading runs; the conv and VAE alternatives train).
"""
from __future__ import annotations

import ast
import csv
import json
import re
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from autograder import config

REPO_ROOT = Path(__file__).resolve().parent.parent
ALTERNATIVES_DIR = Path(__file__).resolve().parent / "alternatives"
REFERENCE_STUDENT = REPO_ROOT / "examples" / "submitted" / "reference"
ASSIGNMENT_ID = "autoencoders"
NOTEBOOK_NAME = "autoencoders.ipynb"
GRADERS_DIR = REPO_ROOT / "autograder" / "graders"

#: The questions whose checks a cell's code can change; the rest of the notebook is the reference.
AFFECTS: dict[str, tuple[str, ...]] = {
    # VAE.reparameterize and the reference ConvVAE.forward call the module-level reparameterize.
    "reparameterize": ("reparameterize", "vae_training", "conv_vae"),
    # The training checks train with the grader's own loss, never the student's vae_loss.
    "vae_loss": ("vae_loss",),
    "kmeans": ("kmeans",),  # includes the source policy check (test_source_policies.py[kmeans])
    "plot_latent_clusters": ("cluster_plots",),
    # The reference ConvVAE is built from ConvAutoEncoder's layers (encoder[:-1], encoder[-1], decoder).
    "ConvAutoEncoder": ("conv_autoencoder", "conv_vae"),
    "ConvVAE": ("conv_vae",),
}

#: A pytest -k expression selecting every check of a question in autograder/graders/.
SELECT: dict[str, str] = {
    "reparameterize": "test_reparameterize",
    "vae_loss": "test_vae_loss",
    "vae_training": "test_vae_training",
    "kmeans": "test_kmeans or (test_source_policies and kmeans)",
    "cluster_plots": "test_cluster_plots",
    "conv_autoencoder": "(test_conv_models and conv_autoencoder)",
    "conv_vae": "(test_conv_models and conv_vae)",
}

#: The grading runs: the cells graded together, under the -k of the union of their questions. The cheap
#: definition checks share one run; the ConvVAE alternatives join the reparameterize ones (both need the
#: conv_vae training; they pay for an MLP VAE training, cheaper than a run of their own); the
#: ConvAutoEncoder ones train both conv models.
RUNS: tuple[tuple[str, ...], ...] = (
    ("vae_loss", "kmeans", "plot_latent_clusters"),
    ("reparameterize", "ConvVAE"),
    ("ConvAutoEncoder",),
)
JOBS = 2
MIN_ALTERNATIVES = 18
CELL_HEADER = re.compile(r"# cell: (\S+)\n")


@dataclass(frozen=True)
class Alternative:
    name: str  # the file's stem, used as the student id
    cell: str  # the grade_id of the cell it replaces
    style: str  # what it demonstrates (the "# style:" comment)
    source: str  # the cell's complete source

    @property
    def questions(self) -> tuple[str, ...]:
        return AFFECTS[self.cell]


def load_alternatives() -> list[Alternative]:
    alternatives = []
    for path in sorted(ALTERNATIVES_DIR.glob("*.py")):
        source = path.read_text(encoding="utf-8")
        header = CELL_HEADER.match(source)
        if header is None:
            raise ValueError(f"{path.name}: the first line must be `# cell: <grade_id>`")
        style_lines, started = [], False
        for line in source.splitlines()[1:]:
            if line.startswith("# style:"):
                started = True
                style_lines.append(line[len("# style:"):].strip())
            elif started and line.startswith("#  "):
                style_lines.append(line[1:].strip())
            elif started or not line.startswith("#"):
                break
        alternatives.append(Alternative(path.stem, header.group(1), " ".join(style_lines), source))
    return alternatives


ALTERNATIVES = load_alternatives()


def run_of(cell: str) -> int:
    matches = [index for index, cells in enumerate(RUNS) if cell in cells]
    assert len(matches) == 1, f"the cell {cell!r} must be in exactly one of RUNS"
    return matches[0]


def selection(cells: tuple[str, ...]) -> str:
    questions = dict.fromkeys(q for cell in cells for q in AFFECTS[cell])
    return " or ".join(f"({SELECT[q]})" for q in questions)


def _grade_id(cell: dict) -> str | None:
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")


def notebook_with(reference: dict, alternative: Alternative) -> dict:
    """The reference notebook with the source of the cell ``alternative.cell`` replaced (a deep copy)."""
    notebook = json.loads(json.dumps(reference))
    matches = [cell for cell in notebook["cells"] if _grade_id(cell) == alternative.cell]
    if len(matches) != 1:
        pytest.fail(f"{alternative.name}.py: `# cell: {alternative.cell}` must name exactly one cell of "
                    f"{REFERENCE_STUDENT.name}'s notebook, it matches {len(matches)}", pytrace=False)
    if matches[0].get("cell_type") != "code" or not matches[0]["metadata"]["nbgrader"].get("solution"):
        pytest.fail(f"{alternative.name}.py: the cell {alternative.cell} is not a student (solution) code cell",
                    pytrace=False)
    matches[0]["source"] = alternative.source.splitlines(keepends=True)
    return notebook


# The checks of each question, as the runner names them (question, title), collected without running any.
_COLLECT = r'''
import json, sys
import pytest

class Checks:
    def __init__(self):
        self.found = []

    def pytest_collection_finish(self, session):
        for item in session.items:
            marker = item.get_closest_marker("question")
            doc = (getattr(item, "obj", None).__doc__ or "").strip().splitlines()
            self.found.append([marker.args[0] if marker else None, doc[0] if doc else item.name])

checks = Checks()
graders = sys.argv[1]
code = pytest.main([graders, "--collect-only", "-q", "-p", "no:cacheprovider", "-p", "no:randomly", "--rootdir",
                    graders, "-o", "addopts=", "-o", "python_files=test_*.py", "-W", "ignore"], plugins=[checks])
with open(sys.argv[2], "w") as out:
    json.dump({"code": int(code), "checks": checks.found}, out)
'''


def grade_runs(root: Path, students: dict[int, list[Path]]) -> tuple[dict, dict, dict]:
    """Grade each run's students with the CLI: (name -> results.json, name -> grades.csv row, run -> seconds)."""
    results, grades, seconds = {}, {}, {}
    for index, cells in enumerate(RUNS):
        if not students[index]:
            continue
        out = root / f"grades-{index}"
        command = [sys.executable, "-m", "autograder", "grade", *map(str, students[index]), "--out", str(out),
                   "--jobs", str(JOBS), "--lang", "en", "-k", selection(cells)]
        started = time.monotonic()
        process = subprocess.run(command, capture_output=True, text=True, cwd=REPO_ROOT, timeout=1800)
        seconds[" + ".join(cells)] = round(time.monotonic() - started, 1)
        assert process.returncode == 0, f"grading {cells} failed:\n{process.stdout[-2000:]}\n{process.stderr[-3000:]}"
        with open(out / "grades.csv", newline="", encoding="utf-8") as file:
            grades.update({row["student_id"]: row for row in csv.DictReader(file)})
        for student in students[index]:
            results[student.name] = json.loads((out / student.name / "results.json").read_text(encoding="utf-8"))
    return results, grades, seconds


@pytest.fixture(scope="module")
def graded(tmp_path_factory) -> dict:
    """Every alternative graded: {"results": name -> results.json, "grades": name -> grades.csv row,
    "checks": question -> Counter of the titles of all its checks, "seconds": run -> wall seconds}."""
    root = tmp_path_factory.mktemp("alternatives")
    reference = json.loads((REFERENCE_STUDENT / ASSIGNMENT_ID / NOTEBOOK_NAME).read_text(encoding="utf-8"))
    timestamp = (REFERENCE_STUDENT / ASSIGNMENT_ID / "timestamp.txt").read_bytes()
    students: dict[int, list[Path]] = {index: [] for index in range(len(RUNS))}
    for alternative in ALTERNATIVES:
        folder = root / "submitted" / alternative.name / ASSIGNMENT_ID
        folder.mkdir(parents=True)
        notebook = notebook_with(reference, alternative)
        (folder / NOTEBOOK_NAME).write_text(json.dumps(notebook, indent=1, ensure_ascii=False) + "\n",
                                            encoding="utf-8")
        (folder / "timestamp.txt").write_bytes(timestamp)
        students[run_of(alternative.cell)].append(folder.parent)

    collected = root / "checks.json"
    collector = subprocess.Popen([sys.executable, "-c", _COLLECT, str(GRADERS_DIR), str(collected)], cwd=REPO_ROOT,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        results, grades, seconds = grade_runs(root, students)
        _, errors = collector.communicate(timeout=600)
    finally:
        if collector.poll() is None:
            collector.kill()
            collector.wait()
    assert collector.returncode == 0 and collected.exists(), f"collecting the graders failed:\n{errors[-3000:]}"
    listing = json.loads(collected.read_text())
    assert listing["code"] == 0, f"collecting the graders failed (pytest exit code {listing['code']})"
    checks: dict[str, Counter] = {}
    for question, title in listing["checks"]:
        checks.setdefault(question, Counter())[title] += 1
    print(f"\nalternatives graded in {sum(seconds.values()):.0f} s: {seconds}")
    return {"results": results, "grades": grades, "checks": checks, "seconds": seconds}


def test_corpus_is_well_formed():
    """Enough alternatives, each naming a student cell, saying its style, and parsing; every cell covered."""
    assert len(ALTERNATIVES) >= MIN_ALTERNATIVES, f"only {len(ALTERNATIVES)} alternatives"
    reference = json.loads((REFERENCE_STUDENT / ASSIGNMENT_ID / NOTEBOOK_NAME).read_text(encoding="utf-8"))
    per_cell = Counter(alternative.cell for alternative in ALTERNATIVES)
    for alternative in ALTERNATIVES:
        assert alternative.cell in AFFECTS, f"{alternative.name}.py: unknown cell {alternative.cell!r} " \
                                            f"(known: {', '.join(AFFECTS)})"
        assert alternative.style, f"{alternative.name}.py: a `# style: ...` comment must follow the cell line"
        ast.parse(alternative.source, filename=f"{alternative.name}.py")
        notebook_with(reference, alternative)  # the cell exists exactly once and is a student cell
        run_of(alternative.cell)
    assert set(per_cell) == set(AFFECTS), f"cells without an alternative: {set(AFFECTS) - set(per_cell)}"
    assert all(count >= 2 for count in per_cell.values()), f"fewer than 2 alternatives for a cell: {per_cell}"
    graded_questions = {q for qs in AFFECTS.values() for q in qs}
    assert set(SELECT) == graded_questions <= set(config.questions())


@pytest.mark.parametrize("alternative", ALTERNATIVES, ids=[a.name for a in ALTERNATIVES])
def test_alternative_keeps_full_marks(alternative: Alternative, graded: dict):
    """Every check of the questions the cell affects is selected, passes, and the questions get full points."""
    result = graded["results"].get(alternative.name)
    assert result is not None, f"{alternative.name} was not graded"
    row = graded["grades"][alternative.name]
    problems = []
    if result.get("output"):
        problems.append(f"notes: {result['output']}")
    for question in alternative.questions:
        tests = [t for t in result["tests"] if t["tags"] == [question]]
        graded_titles = Counter(t["name"].split(": ", 1)[1] for t in tests)
        missing = graded["checks"].get(question, Counter()) - graded_titles
        if not tests or missing:
            problems.append(f"[{question}] the -k of its run did not select every check; missing: "
                            f"{sorted(missing) or 'all'}")
        lost = [t for t in tests if t["status"] != "passed" or t["score"] < t["max_score"]]
        if lost or float(row[question]) < config.questions()[question]["points"] - 1e-6:
            problems.append(f"[{question}] {row[question]} points:")
            problems += [f"    - {t['name']}\n      feedback: {t['output']}" for t in lost]
    assert not problems, (f"{alternative.name} ({alternative.cell}: {alternative.style}) loses points:\n"
                          + "\n".join(problems))
