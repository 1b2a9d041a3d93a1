"""The committed notebook and student release match their sources and leak no solutions.

(a) ``solutions/autoencoders.ipynb`` is exactly what ``tools/build_notebook.py`` builds from
    ``solutions/autoencoders.py``;
(b) ``tools/release.py`` (nbgrader ``generate_assignment``) run afresh gives exactly ``assignment/``;
(c) no solution line appears in any file of ``assignment/`` (see ``_is_secret`` for the rule);
(d) every contract stub cell holds ``raise NotImplementedError()`` and is followed by its
    ``check_<name>`` self-check cell;
(e) the release ships ``labtools.py`` but not the jupytext source ``autoencoders.py``.

Fix (a) with ``make notebook``, (b) with ``make assignment``, then commit the results.
"""
from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

from tools.build_notebook import build_notebook, main as build_main, notebook_text
from tools.release import diff_trees, generate_release

NOTEBOOK = "autoencoders"
CONTRACT_STUBS = ("reparameterize", "vae_loss", "kmeans", "plot_latent_clusters",
                  "ConvAutoEncoder", "ConvVAE")
STUB = "raise NotImplementedError()"
BEGIN, END = "BEGIN SOLUTION", "END SOLUTION"
# A solution line shorter than this (not counting spaces) is too generic to count as a leak:
# `return x`, `else:`, `)`, `pass`, `z = self.fc(h)` are 12 characters or fewer.
MIN_SECRET_CHARS = 13


def _read_nb(path: Path) -> nbformat.NotebookNode:
    assert path.is_file(), f"{path} is missing"
    return nbformat.read(path, as_version=4)


def _grade_id(cell) -> str | None:
    return cell.metadata.get("nbgrader", {}).get("grade_id")


def _split_solution(cell) -> tuple[list[str], list[str]]:
    """(solution lines, other lines) of a cell, as nbgrader's ClearSolutions sees them:
    an nbgrader solution cell with BEGIN/END SOLUTION markers has its solution between them; one
    without markers is replaced entirely; any other cell has no solution."""
    lines = cell.source.splitlines()
    if not cell.metadata.get("nbgrader", {}).get("solution", False):
        return [], lines
    if not any(BEGIN in line for line in lines):
        return lines, []
    secret, public, inside = [], [], False
    for line in lines:
        if BEGIN in line:
            inside = True
        elif END in line:
            inside = False
        else:
            (secret if inside else public).append(line)
    return secret, public


def _is_secret(line: str, public: set[str]) -> bool:
    """The leak rule: a stripped solution line counts when it has at least MIN_SECRET_CHARS
    non-space characters, at least one letter or digit (so rules of punctuation don't count),
    and does not also appear, stripped, outside the solution regions of the solution notebook
    (lines given to students anyway, such as the same call in a provided class, are not secret)."""
    return (len(re.sub(r"\s", "", line)) >= MIN_SECRET_CHARS
            and re.search(r"\w", line) is not None
            and line not in public)


def _text_of(path: Path) -> str | None:
    """What a student sees in a release file: a notebook's cell sources and outputs, or the text."""
    if path.suffix == ".ipynb":
        nb = nbformat.read(path, as_version=4)
        parts = []
        for cell in nb.cells:
            parts.append(cell.source)
            for out in cell.get("outputs", []):
                parts.append(str(out.get("text", "")))
                parts.extend(str(v) for v in out.get("data", {}).values())
        return "\n".join(parts)
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return None  # binary file: nothing to search


# (a) -------------------------------------------------------------------------------------------

def test_notebook_is_built_from_source(solutions_dir):
    source, built = solutions_dir / f"{NOTEBOOK}.py", solutions_dir / f"{NOTEBOOK}.ipynb"
    assert source.is_file(), f"{source} is missing"
    assert built.is_file(), f"{built} is missing: run `make notebook`"
    assert built.read_text(encoding="utf-8") == notebook_text(build_notebook(source)), \
        f"{built} is stale: run `make notebook` and commit it"


# (b) -------------------------------------------------------------------------------------------

def test_release_is_regenerated_exactly(solutions_dir, assignment_dir, tmp_path):
    fresh = tmp_path / "release"
    generate_release(fresh, solutions_dir)
    stale = diff_trees(fresh, assignment_dir)
    assert not stale, f"assignment/ is stale ({'; '.join(stale)}): run `make assignment` and commit it"


# (c) -------------------------------------------------------------------------------------------

def test_no_solution_line_in_release(solutions_dir, assignment_dir):
    nb = _read_nb(solutions_dir / f"{NOTEBOOK}.ipynb")
    secrets: list[tuple[str, str]] = []  # (grade_id, line)
    public: set[str] = set()
    for cell in nb.cells:
        secret, other = _split_solution(cell)
        public.update(line.strip() for line in other)
        secrets.extend((_grade_id(cell) or cell.id, line.strip()) for line in secret)
    checked = [(gid, line) for gid, line in secrets if _is_secret(line, public)]
    assert checked, "found no solution lines to check: are the BEGIN/END SOLUTION markers there?"

    files = sorted(p for p in assignment_dir.rglob("*") if p.is_file())
    assert files, f"{assignment_dir} is empty: run `make assignment`"
    leaks = []
    for path in files:
        text = _text_of(path)
        if text is None:
            continue
        rel = path.relative_to(assignment_dir)
        if BEGIN in text or END in text:
            leaks.append(f"{rel}: contains a solution marker")
        leaks += [f"{rel}: [{gid}] {line}" for gid, line in checked if line in text]
    assert not leaks, "solution text in the student release:\n" + "\n".join(leaks)


# (d) -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", CONTRACT_STUBS)
def test_release_stub_and_self_check(assignment_dir, name):
    nb = _read_nb(assignment_dir / f"{NOTEBOOK}.ipynb")
    ids = [_grade_id(cell) for cell in nb.cells]
    assert name in ids, f"no cell with grade_id {name!r} in the release notebook"
    stub_at = ids.index(name)
    stub = nb.cells[stub_at]
    assert stub.cell_type == "code" and stub.metadata["nbgrader"].get("solution"), \
        f"{name!r} must be a code solution cell"
    assert STUB in stub.source, f"the {name!r} cell has no `{STUB}` stub:\n{stub.source}"
    check = f"check_{name}"
    assert check in ids[stub_at + 1:], f"no {check!r} cell after the {name!r} cell"
    check_cell = nb.cells[ids.index(check, stub_at + 1)]
    assert "self_check(" in check_cell.source, f"the {check!r} cell does not call self_check("


# (e) -------------------------------------------------------------------------------------------

def test_release_files(assignment_dir):
    names = {p.relative_to(assignment_dir).as_posix()
             for p in assignment_dir.rglob("*") if p.is_file()}
    assert f"{NOTEBOOK}.ipynb" in names
    assert "labtools.py" in names
    assert f"{NOTEBOOK}.py" not in names, "the jupytext source (full solutions) is in the release"


# the build tool itself, on a small notebook ----------------------------------------------------

FIXTURE = '''\
# %% [markdown]
# # タイトル

# %%
import os

# %% nbgrader={"grade": false, "grade_id": "f", "locked": false, "schema_version": 3, "solution": true}
def f(x):
    ### BEGIN SOLUTION
    return x + 1
    ### END SOLUTION


# %% tags=["figure"] nbgrader={"grade": false, "grade_id": "fig_f", "locked": true, "schema_version": 3, "solution": false}
print(f(1))

# %% [markdown] nbgrader={"grade": true, "grade_id": "answer_f", "locked": false, "points": 1, "schema_version": 3, "solution": true}
# 答え
'''


def test_build_tool_on_fixture(tmp_path, capsys):
    source = tmp_path / "nb.py"
    source.write_text(FIXTURE, encoding="utf-8")
    nb = build_notebook(source)
    assert [c.id for c in nb.cells] == ["cell-000", "cell-001", "f", "fig_f", "answer_f"]
    assert (nb.nbformat, nb.nbformat_minor) == (4, 5)
    assert nb.metadata.kernelspec.name == "python3"
    assert all("lines_to_next_cell" not in c.metadata for c in nb.cells)
    assert nb.cells[3].metadata.tags == ["figure"]
    assert nb.cells[4].metadata.nbgrader["points"] == 1
    text = notebook_text(nb)
    assert text == notebook_text(build_notebook(source)) and text.endswith("}\n")
    assert "タイトル" in text  # ensure_ascii=False

    out = tmp_path / "nb.ipynb"
    assert build_main([str(source), "--check"]) == 1  # missing
    assert build_main([str(source)]) == 0 and out.read_text(encoding="utf-8") == text
    assert build_main([str(source), "--check"]) == 0
    source.write_text(FIXTURE.replace("x + 1", "x + 2"), encoding="utf-8")
    assert build_main([str(source), "--check"]) == 1
    assert "stale" in capsys.readouterr().err
