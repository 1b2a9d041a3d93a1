"""The example class ``examples/submitted/`` (see ``tools/make_examples.py``) is in sync and well formed.

Fast: nothing is executed or trained.  The grading outcome of each student (losing points on
exactly ``Student.loses``) is checked by the autograder's own tests.

Fix a failure of ``test_examples_in_sync`` with ``python tools/make_examples.py`` and commit examples/.
"""
from __future__ import annotations

import ast
import re
import shutil
from datetime import datetime
from pathlib import Path

import nbformat
import pytest

from tools.make_examples import (ASSIGNMENT_ID, KEPT_FIGURES, NOTEBOOK_NAME, QUESTIONS, STUDENTS, main,
                                 stale_files)

STUDENT_IDS = [s.id for s in STUDENTS]
BY_ID = {s.id: s for s in STUDENTS}
VARIANTS = [s.id for s in STUDENTS if s.base == "completed" and s.id != "reference"]
MAX_EXAMPLES_BYTES = 4 * 1024 * 1024


@pytest.fixture(scope="module")
def examples_dir(repo_root: Path) -> Path:
    return repo_root / "examples"


@pytest.fixture(scope="module")
def notebooks(examples_dir: Path) -> dict[str, nbformat.NotebookNode]:
    return {sid: nbformat.read(examples_dir / "submitted" / sid / ASSIGNMENT_ID / NOTEBOOK_NAME, as_version=4)
            for sid in STUDENT_IDS}


def _cells_by_id(nb) -> dict[str, nbformat.NotebookNode]:
    return {cell.id: cell for cell in nb.cells}


def _without_outputs(cell) -> dict:
    return {k: v for k, v in cell.items() if k not in ("outputs", "execution_count")}


def _images(cell) -> list[str]:
    return [out["data"]["image/png"] for out in cell.get("outputs", []) if "image/png" in out.get("data", {})]


def test_examples_in_sync(capsys):
    assert main(["--check"]) == 0, capsys.readouterr().err


def test_check_reports_each_stale_file(examples_dir: Path, tmp_path: Path, capsys):
    copy = tmp_path / "examples"
    shutil.copytree(examples_dir, copy)
    submitted = copy / "submitted"
    edited = submitted / "kl_sign" / ASSIGNMENT_ID / NOTEBOOK_NAME
    edited.write_text(edited.read_text(encoding="utf-8").replace("0.5 *", "0.25 *"), encoding="utf-8")
    (submitted / "no_plots" / ASSIGNMENT_ID / "timestamp.txt").unlink()
    (submitted / "mallory" / ASSIGNMENT_ID).mkdir(parents=True)
    (submitted / "mallory" / ASSIGNMENT_ID / NOTEBOOK_NAME).write_text("{}", encoding="utf-8")
    assert main(["--check", "--examples", str(copy)]) == 1
    stale = [line for line in capsys.readouterr().err.splitlines() if line.startswith("stale: ")]
    assert len(stale) == 3, stale
    assert any("kl_sign" in line and "differs" in line for line in stale)
    assert any("no_plots" in line and "missing" in line for line in stale)
    assert any("mallory" in line for line in stale)


def test_check_wants_outputs_of_the_current_solution(examples_dir: Path, tmp_path: Path):
    """If the reference's code cells no longer match the solution, every run notebook is stale."""
    copy = tmp_path / "examples"
    shutil.copytree(examples_dir, copy)
    ref = copy / "submitted" / "reference" / ASSIGNMENT_ID / NOTEBOOK_NAME
    nb = nbformat.read(ref, as_version=4)
    _cells_by_id(nb)["fig_kmeans_ae"].source += "\nplt.close('all')"
    nbformat.write(nb, ref)
    stale = stale_files(copy)
    assert sorted(line.split("/")[1] for line in stale) == sorted(s.id for s in STUDENTS if s.outputs)


def test_students_are_well_defined(notebooks):
    assert len(set(STUDENT_IDS)) == len(STUDENT_IDS)
    assert {"reference", "untouched"} <= set(STUDENT_IDS)
    grade_ids = {cell.id for cell in notebooks["reference"].cells}
    for student in STUDENTS:
        assert re.fullmatch(r"[a-z][a-z0-9_]*", student.id), student.id
        assert student.description and "\n" not in student.description
        assert student.loses <= set(QUESTIONS), student.id
        assert student.edited_cells <= grade_ids, student.id
        if student.base == "completed" and student.outputs and student.id != "reference":
            assert student.loses and student.edited_cells, f"{student.id} must make a mistake"
    assert BY_ID["reference"].loses == frozenset()
    assert BY_ID["untouched"].loses == frozenset(QUESTIONS)


def test_layout(examples_dir: Path):
    """submitted/<id>/autoencoders/ holds exactly one notebook and nbgrader's timestamp.txt."""
    submitted = examples_dir / "submitted"
    assert sorted(p.name for p in submitted.iterdir()) == sorted(STUDENT_IDS)
    for student in STUDENTS:
        folder = submitted / student.id
        assert [p.name for p in folder.iterdir()] == [ASSIGNMENT_ID]
        files = sorted(p.name for p in (folder / ASSIGNMENT_ID).iterdir())
        assert files == sorted([NOTEBOOK_NAME, "timestamp.txt"]), student.id
        stamp = (folder / ASSIGNMENT_ID / "timestamp.txt").read_text(encoding="utf-8")
        assert stamp == student.timestamp
        datetime.strptime(stamp.removesuffix(" UTC"), "%Y-%m-%d %H:%M:%S.%f")


@pytest.mark.parametrize("student_id", STUDENT_IDS)
def test_valid_nbformat(notebooks, student_id):
    nb = notebooks[student_id]
    assert nb.nbformat == 4
    nbformat.validate(nb)
    for cell in nb.cells:
        assert "execution" not in cell.metadata, f"{student_id}: timing metadata in cell {cell.id}"
        if cell.cell_type == "code":
            ast.parse(cell.source)  # a student's syntax error would cost more than the intended mistake
    assert "widgets" not in nb.metadata


def test_untouched_is_the_release(notebooks, repo_root: Path):
    release = nbformat.read(repo_root / "assignment" / NOTEBOOK_NAME, as_version=4)
    assert notebooks["untouched"].cells == release.cells
    assert notebooks["untouched"].metadata == release.metadata


def test_reference_is_the_solution_without_markers(notebooks, repo_root: Path):
    solution = _cells_by_id(nbformat.read(repo_root / "solutions" / NOTEBOOK_NAME, as_version=4))
    release = _cells_by_id(nbformat.read(repo_root / "assignment" / NOTEBOOK_NAME, as_version=4))
    for cell in notebooks["reference"].cells:
        assert cell.metadata == release[cell.id].metadata  # nbgrader metadata (checksums) of the release
        if cell.metadata.get("nbgrader", {}).get("solution"):
            assert "NotImplementedError" not in cell.source and "YOUR ANSWER HERE" not in cell.source, cell.id
            assert "BEGIN SOLUTION" not in cell.source and "END SOLUTION" not in cell.source, cell.id
            assert cell.source != release[cell.id].source, cell.id
        else:
            assert cell.source == solution[cell.id].source == release[cell.id].source, cell.id


@pytest.mark.parametrize("student_id", VARIANTS)
def test_variant_differs_only_in_its_cells(notebooks, student_id):
    student, reference, variant = BY_ID[student_id], notebooks["reference"], notebooks[student_id]
    assert [c.id for c in variant.cells] == [c.id for c in reference.cells]
    assert variant.metadata == reference.metadata
    ref_cells = _cells_by_id(reference)
    differing = {cell.id for cell in variant.cells if _without_outputs(cell) != _without_outputs(ref_cells[cell.id])}
    assert differing == set(student.edited_cells)
    if student.outputs:
        for cell in variant.cells:
            if cell.cell_type == "code":
                assert cell.outputs == ref_cells[cell.id].outputs, cell.id
                assert cell.execution_count == ref_cells[cell.id].execution_count, cell.id


@pytest.mark.parametrize("student_id", [s.id for s in STUDENTS if not s.outputs])
def test_unrun_notebooks_have_no_outputs(notebooks, student_id):
    for cell in notebooks[student_id].cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, cell.id


def test_reference_has_the_graded_figures(notebooks):
    cells = _cells_by_id(notebooks["reference"])
    assert {"fig_kmeans_ae", "fig_kmeans_vae"} <= set(KEPT_FIGURES)
    for grade_id in KEPT_FIGURES:
        assert "figure" in cells[grade_id].metadata.get("tags", [])
        assert _images(cells[grade_id]), f"no image/png output in {grade_id}"
    for cell in notebooks["reference"].cells:
        if cell.cell_type == "code":
            assert cell.execution_count is not None, cell.id
            if cell.id not in KEPT_FIGURES:
                assert cell.outputs == [], cell.id


def test_mistakes_survive_definition_extraction(notebooks):
    """The autograder keeps only definitions; every edited cell must be definitions only, so the
    grader sees each mistake (and the cheater's monkeypatching really runs at definition time)."""
    extract = pytest.importorskip("autograder.extract")
    for student in STUDENTS:
        cells = _cells_by_id(notebooks[student.id])
        for grade_id in student.edited_cells:
            source = cells[grade_id].source
            assert ast.dump(ast.parse(extract.extract_cell(source))) == ast.dump(ast.parse(source)), \
                f"{student.id}: part of cell {grade_id} is not a definition"


def test_examples_are_small(examples_dir: Path):
    size = sum(p.stat().st_size for p in examples_dir.rglob("*") if p.is_file())
    assert size < MAX_EXAMPLES_BYTES, f"examples/ is {size / 1e6:.1f} MB"
