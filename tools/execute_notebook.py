#!/usr/bin/env python3
"""Execute a notebook with nbclient and write the executed copy.

    python tools/execute_notebook.py SRC.ipynb DST.ipynb [--timeout SECONDS]

* The kernel is ``python3`` run by *this* interpreter (jupyter_client replaces a kernelspec's
  bare ``python`` with ``sys.executable``, and this interpreter's ``bin/`` is put first on the
  kernel's ``PATH``), so ``.venv/bin/python tools/execute_notebook.py`` runs the venv's packages.
* The kernel's working directory is SRC's folder, so ``import labtools`` finds the copy beside
  the notebook; relative paths the notebook writes to land there too.
* The environment is passed through, so ``QUICK=1`` and ``DATA_DIR`` reach the notebook, which
  reads them itself; a relative ``DATA_DIR`` is made absolute first (from the caller's folder).
* Prints the elapsed wall time and the slowest cells.  On failure the partly executed copy is
  still written to DST (to inspect), the failing cell's error is printed, and the exit status is 1.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import datetime
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError

DEFAULT_TIMEOUT = 4 * 3600  # seconds per cell: a full (non-QUICK) training cell on a CPU is slow


class ExecutionFailed(Exception):
    """A cell raised or timed out; the message holds the cell's error."""


def _cell_seconds(cell: nbformat.NotebookNode) -> float | None:
    timing = cell.get("metadata", {}).get("execution", {})
    try:
        start = datetime.fromisoformat(timing["iopub.execute_input"].replace("Z", "+00:00"))
        end = datetime.fromisoformat(timing["shell.execute_reply"].replace("Z", "+00:00"))
    except (KeyError, ValueError):
        return None
    return (end - start).total_seconds()


def slowest_cells(nb: nbformat.NotebookNode, n: int = 5) -> list[tuple[float, int, str]]:
    """``(seconds, index, id)`` of the ``n`` slowest executed cells, slowest first."""
    timed = [(s, i, c.get("id", "")) for i, c in enumerate(nb.cells)
             if c.cell_type == "code" and (s := _cell_seconds(c)) is not None]
    return sorted(timed, reverse=True)[:n]


def _first_error(nb: nbformat.NotebookNode) -> str:
    """``cell N (id X) raised NAME: VALUE`` for the first cell with an error output, on one line."""
    for index, cell in enumerate(nb.cells):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                value = " ".join(str(output.get("evalue", "")).split())
                return f"cell {index} (id {cell.get('id')}) raised {output.get('ename')}: {value}"
    return "a cell timed out"


def execute_notebook(src: str | Path, dst: str | Path, timeout: int = DEFAULT_TIMEOUT,
                     kernel_name: str = "python3") -> float:
    """Execute ``src`` into ``dst``; return the elapsed seconds, raise ExecutionFailed on error."""
    src, dst = Path(src).resolve(), Path(dst)
    nb = nbformat.read(src, as_version=4)
    bin_dir = str(Path(sys.executable).parent)  # not resolved: a venv's python is a symlink
    env = dict(os.environ, PATH=bin_dir + os.pathsep + os.environ.get("PATH", ""))
    if env.get("DATA_DIR"):  # the kernel runs in SRC's folder: keep a relative DATA_DIR meaning what the caller meant
        env["DATA_DIR"] = str(Path(env["DATA_DIR"]).expanduser().resolve())
    env.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")  # silence debugpy's frozen-modules note
    client = NotebookClient(nb, timeout=timeout, kernel_name=kernel_name,
                            resources={"metadata": {"path": str(src.parent)}})
    start = time.perf_counter()
    error: Exception | None = None
    try:
        client.execute(env=env, cwd=str(src.parent))
    except (CellExecutionError, CellTimeoutError) as exc:
        error = exc
    finally:
        dst.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, dst)
    elapsed = time.perf_counter() - start
    if error is not None:
        raise ExecutionFailed(f"{src}: {_first_error(nb)} after {elapsed:.1f} s (full traceback in {dst})")
    return elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Execute a notebook with nbclient.")
    parser.add_argument("src", type=Path, help="notebook to run")
    parser.add_argument("dst", type=Path, help="where to write the executed copy")
    parser.add_argument("--timeout", type=int, default=DEFAULT_TIMEOUT,
                        help=f"seconds allowed per cell (default {DEFAULT_TIMEOUT})")
    args = parser.parse_args(argv)
    quick = os.environ.get("QUICK", "")
    print(f"executing {args.src} -> {args.dst} (QUICK={quick!r})", flush=True)
    try:
        elapsed = execute_notebook(args.src, args.dst, timeout=args.timeout)
    except ExecutionFailed as exc:
        print(exc, file=sys.stderr)
        return 1
    nb = nbformat.read(args.dst, as_version=4)
    slow = ", ".join(f"{cid or i} {s:.1f}s" for s, i, cid in slowest_cells(nb))
    print(f"executed {args.src} in {elapsed:.1f} s wall (slowest cells: {slow or 'n/a'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
