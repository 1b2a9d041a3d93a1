"""Benchmark: grading one full submission vs re-executing it, the way nbgrader autograde does.

(a) autograder: ``python -m autograder grade <one submission> --out DIR --jobs 1``: every check
    of every question, sandboxed worker start, the grader's own training budgets included;
    wall time of the whole command (Python start-up and imports included).
(b) re-execution: the same notebook run top to bottom with nbclient (tools/execute_notebook.py),
    which is what nbgrader autograde and Otter do before they can run any test. ``--mode full``
    runs the lab as written (20 epochs per model); ``--mode quick`` uses the notebook's QUICK=1
    short mode (3 epochs on 30,000 images), a lower bound that no real grader gets.

Run from the repository root (full re-execution takes about 10 minutes on a 2-core CPU):

    DATA_DIR=../shared/datasets .venv/bin/python benchmarks/grading_speed.py
    DATA_DIR=../shared/datasets .venv/bin/python benchmarks/grading_speed.py --mode quick --repeats 3
"""
from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tools.execute_notebook import execute_notebook  # noqa: E402

SUBMISSION = ROOT / "examples" / "submitted" / "reference"


def time_grading(out: Path) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "autograder", "grade", str(SUBMISSION), "--out", str(out), "--jobs", "1"],
                   cwd=ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def time_execution(folder: Path, quick: bool) -> float:
    notebook = folder / "autoencoders.ipynb"
    shutil.copy2(SUBMISSION / "autoencoders" / "autoencoders.ipynb", notebook)
    shutil.copy2(ROOT / "assignment" / "labtools.py", folder / "labtools.py")
    previous = os.environ.pop("QUICK", None)
    if quick:
        os.environ["QUICK"] = "1"
    try:
        started = time.perf_counter()
        execute_notebook(notebook, folder / "executed.ipynb")
        return time.perf_counter() - started
    finally:
        os.environ.pop("QUICK", None)
        if previous is not None:
            os.environ["QUICK"] = previous


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=("full", "quick", "both"), default="full",
                        help="how the re-execution runs the notebook (default: full, as submitted)")
    parser.add_argument("--repeats", type=int, default=1, help="runs of each (default 1)")
    args = parser.parse_args(argv)
    import torch

    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU, {os.cpu_count()} cores"
    print(f"device: {device}; torch {torch.__version__}; {platform.python_implementation()} "
          f"{platform.python_version()}; DATA_DIR={os.environ.get('DATA_DIR', 'data')}")
    modes = {"full": [False], "quick": [True], "both": [False, True]}[args.mode]
    figures: dict[str, list[float]] = {"autograder (all checks)": []}
    for quick in modes:
        figures[f"nbclient re-execution ({'QUICK=1' if quick else 'full, 20 epochs'})"] = []
    with tempfile.TemporaryDirectory(prefix="bench-grading-") as tmp:
        for repeat in range(args.repeats):
            figures["autograder (all checks)"].append(time_grading(Path(tmp) / f"grades{repeat}"))
            for quick in modes:
                folder = Path(tmp) / f"exec{repeat}{'q' if quick else 'f'}"
                folder.mkdir()
                label = f"nbclient re-execution ({'QUICK=1' if quick else 'full, 20 epochs'})"
                figures[label].append(time_execution(folder, quick))
    base = statistics.fmean(figures["autograder (all checks)"])
    print(f"{'what':42} {'mean s':>9} {'min s':>9}  vs autograder")
    for label, values in figures.items():
        mean = statistics.fmean(values)
        print(f"{label:42} {mean:9.1f} {min(values):9.1f}  {mean / base:6.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
