"""The submission being graded, as the graders' fixtures see it (registered as a pytest plugin)."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from autograder.extract import extract_cells
from autograder.sandbox import SandboxConfig


@dataclass(eq=False)  # hashable: pytest keeps plugins in a set
class Context:
    """What the graders' fixtures need to know about the submission (registered as a pytest plugin)."""

    notebook_path: Path
    runtime: Path
    sandbox: SandboxConfig
    log_path: Path
    notebook: dict | None = None
    notebook_error: str | None = None
    cells: list[tuple[str, str]] = field(default_factory=list)  # (cell label, definitions)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (cell label, reason)
    worker_starts: int = 0
    load_report: dict | None = None


def read_notebook(context: Context) -> None:
    """Parse the notebook as JSON and extract each code cell's definitions; record what fails."""
    try:
        notebook = json.loads(context.notebook_path.read_text(encoding="utf-8"))
        if not isinstance(notebook, dict) or not isinstance(notebook.get("cells"), list):
            raise ValueError("no list of cells")
    except (OSError, UnicodeDecodeError, ValueError) as error:
        context.notebook_error = f"the submitted file is not a readable notebook ({type(error).__name__}: {error})"
        return
    context.notebook = notebook
    extraction = extract_cells(notebook)
    labels = [cell_label(index, cell) for index, cell in enumerate(notebook["cells"])]
    context.cells = [(labels[index], code) for index, code in extraction.cells]
    context.skipped = [(labels[index], reason) for index, reason in extraction.skipped]


def cell_label(index: int, cell: object) -> str:
    """How feedback names a cell: its nbgrader grade_id (the function it holds) or its 1-based position."""
    metadata = cell.get("metadata") if isinstance(cell, dict) else None
    grade_id = metadata.get("nbgrader", {}).get("grade_id") if isinstance(metadata, dict) else None
    return f"`{grade_id}`" if isinstance(grade_id, str) and grade_id.isidentifier() else f"#{index + 1}"
