#!/usr/bin/env python3
"""Build ``solutions/autoencoders.ipynb`` from its single source ``solutions/autoencoders.py``.

The ``.py`` file is a jupytext *percent* notebook whose cell headers carry the nbgrader metadata
as JSON.  The built notebook is committed, so the build is byte-for-byte deterministic:

* jupytext's ``lines_to_next_cell`` (and its own ``jupytext`` notebook metadata) are dropped;
* every cell id is its nbgrader ``grade_id`` when it has one, else ``cell-NNN`` (NNN = the cell's
  index in the notebook), and ids are checked to be unique and valid nbformat ids;
* notebook metadata is a fixed python3 kernelspec plus ``language_info`` (other metadata from
  the source's YAML header is kept), nbformat 4.5;
* the file is written by nbformat (indent 1, keys sorted, ``ensure_ascii=False``), UTF-8, with a
  trailing newline.

Usage::

    python tools/build_notebook.py            # (re)write solutions/autoencoders.ipynb
    python tools/build_notebook.py --check    # exit 1 if the committed .ipynb is stale
    python tools/build_notebook.py SRC.py [--out DST.ipynb] [--check]
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import jupytext
import nbformat

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SOURCE = REPO_ROOT / "solutions" / "autoencoders.py"

KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
LANGUAGE_INFO = {"name": "python"}
# Cell metadata that jupytext adds to record the text layout; meaningless in the .ipynb.
_JUPYTEXT_CELL_KEYS = ("lines_to_next_cell", "lines_to_end_of_cell_marker")
_CELL_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")  # nbformat 4.5 cell id pattern


class BuildError(Exception):
    """The source cannot be turned into a valid notebook."""


def build_notebook(py_path: str | Path) -> nbformat.NotebookNode:
    """Return the notebook built from the jupytext percent file ``py_path``."""
    py_path = Path(py_path)
    text = py_path.read_text(encoding="utf-8")
    nb = jupytext.reads(text, fmt="py:percent")
    nb.nbformat, nb.nbformat_minor = 4, 5

    metadata = {k: v for k, v in nb.metadata.items() if k != "jupytext"}
    metadata["kernelspec"] = dict(KERNELSPEC)
    metadata["language_info"] = dict(LANGUAGE_INFO)
    nb.metadata = nbformat.from_dict(dict(sorted(metadata.items())))

    grade_ids = [c.metadata.get("nbgrader", {}).get("grade_id") for c in nb.cells]
    seen: dict[str, int] = {}
    for index, (cell, grade_id) in enumerate(zip(nb.cells, grade_ids)):
        for key in _JUPYTEXT_CELL_KEYS:
            cell.metadata.pop(key, None)
        cell_id = grade_id if grade_id else f"cell-{index:03d}"
        if not _CELL_ID.match(cell_id):
            raise BuildError(f"{py_path}: cell {index}: {cell_id!r} is not a valid cell id "
                             "(use 1-64 letters, digits, '-' or '_')")
        if cell_id in seen:
            raise BuildError(f"{py_path}: cells {seen[cell_id]} and {index} share the id {cell_id!r}")
        seen[cell_id] = index
        cell.id = cell_id
        if cell.cell_type == "code":
            cell.execution_count = None
            cell.outputs = []
    nbformat.validate(nb)
    return nb


def notebook_text(nb: nbformat.NotebookNode) -> str:
    """The exact text written for ``nb`` (nbformat JSON, indent 1, unescaped Unicode, final newline)."""
    text = nbformat.writes(nb, version=4, indent=1, ensure_ascii=False, sort_keys=True)
    return text if text.endswith("\n") else text + "\n"


def write_notebook(nb: nbformat.NotebookNode, ipynb_path: str | Path) -> None:
    """Write ``nb`` to ``ipynb_path`` exactly as :func:`notebook_text` renders it."""
    ipynb_path = Path(ipynb_path)
    ipynb_path.parent.mkdir(parents=True, exist_ok=True)
    with open(ipynb_path, "w", encoding="utf-8", newline="\n") as fh:
        fh.write(notebook_text(nb))


def is_stale(py_path: str | Path, ipynb_path: str | Path) -> bool:
    """True when ``ipynb_path`` is missing or differs from what ``py_path`` builds to."""
    ipynb_path = Path(ipynb_path)
    if not ipynb_path.is_file():
        return True
    return ipynb_path.read_text(encoding="utf-8") != notebook_text(build_notebook(py_path))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", nargs="?", type=Path, default=DEFAULT_SOURCE,
                        help="jupytext percent source (default: solutions/autoencoders.py)")
    parser.add_argument("--out", type=Path, default=None,
                        help="notebook to write (default: the source with suffix .ipynb)")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 if the notebook is missing or stale")
    args = parser.parse_args(argv)
    out = args.out if args.out is not None else args.source.with_suffix(".ipynb")
    try:
        nb = build_notebook(args.source)
    except (BuildError, OSError, nbformat.ValidationError) as exc:
        print(f"build_notebook: error: {exc}", file=sys.stderr)
        return 2
    if args.check:
        if not out.is_file() or out.read_text(encoding="utf-8") != notebook_text(nb):
            print(f"{out} is stale: run `make notebook` (python tools/build_notebook.py) and commit it",
                  file=sys.stderr)
            return 1
        return 0
    write_notebook(nb, out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
