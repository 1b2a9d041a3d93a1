"""Extract a notebook's *definitions* without running the notebook.

A lab notebook mixes definitions (imports, functions, classes, constants) with top-level work
(training loops, plots). Grading and benchmarking need only the definitions, so each code cell is
parsed on its own with :mod:`ast`, and only these top-level statements are kept:

* ``import`` / ``from ... import``;
* ``def`` / ``async def`` / ``class`` (their bodies, defaults and decorators included);
* assignments whose value contains no call, such as ``LATENT_DIM = 2`` or ``SIZES = (784, 128)``.

A cell that does not parse costs only that cell: it is reported in :attr:`Extraction.skipped`.
IPython magics and shell escapes (lines starting with ``%`` or ``!``) are dropped before parsing.

What is parsed is capped, so that a notebook's size cannot buy the trusted side's time (``ast.parse``
of the 64 MB a notebook may hold takes about a minute and gigabytes): a code cell over
:data:`MAX_CELL_CHARS` is skipped, and so is every code cell from the one that takes the notebook's
code past :data:`MAX_CODE_CHARS` (:func:`size_problem`). :mod:`autograder.policy` skips the same cells.
"""
from __future__ import annotations

import ast
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

_DEFINITION_NODES = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
MAX_CELL_CHARS = 100_000  # one code cell: the reference's largest is 3.6 k characters
MAX_CODE_CHARS = 500_000  # all code cells together: the reference's are 20 k characters


@dataclass
class Extraction:
    """The kept source of each code cell, and why any cell was skipped."""

    cells: list[tuple[int, str]] = field(default_factory=list)  # (cell index, kept source)
    skipped: list[tuple[int, str]] = field(default_factory=list)  # (cell index, reason)

    @property
    def source(self) -> str:
        """All kept definitions as one module's source, each cell marked by a comment."""
        return "\n\n".join(f"# --- cell {index} ---\n{code}" for index, code in self.cells)


def _is_definition(node: ast.stmt) -> bool:
    if isinstance(node, _DEFINITION_NODES):
        return True
    if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
        return not any(isinstance(sub, ast.Call) for sub in ast.walk(node.value))
    return False


def size_problem(length: int, before: int) -> str | None:
    """Why a code cell of ``length`` characters, after ``before`` characters of earlier code cells, is not read;
    None when it is."""
    if length > MAX_CELL_CHARS:
        return f"cell too large to read ({length} characters; the limit is {MAX_CELL_CHARS})"
    if before + length > MAX_CODE_CHARS:
        return f"past the notebook's {MAX_CODE_CHARS} characters of code"
    return None


def _without_magics(source: str) -> str:
    return "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines())


def extract_cell(source: str) -> str:
    """Return the definitions of one cell's source; raises SyntaxError if it does not parse."""
    source = _without_magics(source)
    tree = ast.parse(source)
    lines = source.splitlines()
    kept = []
    for node in tree.body:
        if _is_definition(node):
            first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
            kept.append("\n".join(lines[first - 1 : node.end_lineno]))
    return "\n".join(kept)


def extract_notebook(path: str | Path) -> Extraction:
    """Read the notebook at ``path`` as plain JSON and extract each code cell's definitions."""
    return extract_cells(json.loads(Path(path).read_text(encoding="utf-8")))


def extract_cells(notebook: dict) -> Extraction:
    """Extract each code cell's definitions from a notebook already parsed from JSON."""
    result = Extraction()
    before = 0
    for index, cell in enumerate(notebook.get("cells", [])):
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        try:
            if isinstance(source, list):
                source = "".join(source)
            length = len(source) if isinstance(source, str) else 0  # not text: refused by extract_cell
            problem, before = size_problem(length, before), before + length
            if problem is not None:
                result.skipped.append((index, problem))
                continue
            code = extract_cell(source)
        except SyntaxError as error:
            result.skipped.append((index, f"SyntaxError: {error.msg} (line {error.lineno})"))
            continue
        except (ValueError, TypeError, AttributeError) as error:  # null bytes, a source that is not text
            result.skipped.append((index, f"unreadable cell source ({type(error).__name__})"))
            continue
        except (RecursionError, MemoryError):  # e.g. 1+1+…+1 or - - … -1: the parser's own depth limit
            result.skipped.append((index, "too deeply nested to parse"))
            continue
        if code.strip():
            result.cells.append((index, code))
    return result


def load_definitions(path: str | Path, namespace: dict | None = None, names: set[str] | None = None) -> dict:
    """Execute a *trusted* notebook's definitions (e.g. the reference solution) and return them.

    With ``names``, only the top-level definitions of those names run, after just the import
    statements that bind a name they use (the reference's ``vae_loss`` needs ``torch`` and ``F``, not
    torchvision and matplotlib, which take seconds to import).
    The notebook's folder is put on ``sys.path`` first, so helper modules shipped beside it import.
    Never call this on a student's notebook in a process that decides scores.
    """
    folder = str(Path(path).resolve().parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    namespace = {"__name__": "notebook_definitions"} if namespace is None else namespace
    source = extract_notebook(path).source
    if names is not None:
        source = _only(source, names)
    exec(compile(source, str(path), "exec"), namespace)
    return namespace


def _only(source: str, names: set[str]) -> str:
    """The definitions of ``names`` in ``source``, preceded by the imports that bind a name they use."""
    tree = ast.parse(source)
    kept = [node for node in tree.body if getattr(node, "name", None) in names]
    missing = names - {node.name for node in kept}
    if missing:
        raise NameError(f"not defined in the notebook: {', '.join(sorted(missing))}")
    used = {node.id for definition in kept for node in ast.walk(definition) if isinstance(node, ast.Name)}
    imports = [node for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))
               and any((alias.asname or alias.name.split(".")[0]) in used for alias in node.names)]
    return "\n".join(ast.unparse(node) for node in [*imports, *kept])
