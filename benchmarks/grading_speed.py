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
    DATA_DIR=../shared/datasets .venv/bin/python benchmarks/grading_speed.py --mode none --repeats 3  # grading only
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


def machine_busy_seconds() -> float:
    """CPU-seconds the whole machine has been busy since boot (``/proc/stat``: all but idle and iowait)."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def time_grading(out: Path) -> tuple[float, float]:
    """Wall seconds of one ``python -m autograder grade`` of the reference, and the CPU-seconds the machine was
    busy meanwhile (the grader's, every worker's, and anything else running: measure on an idle machine)."""
    busy, started = machine_busy_seconds(), time.perf_counter()
    subprocess.run([sys.executable, "-m", "autograder", "grade", str(SUBMISSION), "--out", str(out), "--jobs", "1"],
                   cwd=ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started, machine_busy_seconds() - busy


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
    parser.add_argument("--mode", choices=("full", "quick", "both", "none"), default="full",
                        help="how the re-execution runs the notebook (default: full, as submitted; none: only grade)")
    parser.add_argument("--repeats", type=int, default=1, help="runs of each (default 1)")
    args = parser.parse_args(argv)
    import torch

    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU, {os.cpu_count()} cores"
    print(f"device: {device}; torch {torch.__version__}; {platform.python_implementation()} "
          f"{platform.python_version()}; DATA_DIR={os.environ.get('DATA_DIR', 'data')}")
    modes = {"full": [False], "quick": [True], "both": [False, True], "none": []}[args.mode]
    figures: dict[str, list[float]] = {"autograder (all checks)": []}
    cpu: list[float] = []
    for quick in modes:
        figures[f"nbclient re-execution ({'QUICK=1' if quick else 'full, 20 epochs'})"] = []
    with tempfile.TemporaryDirectory(prefix="bench-grading-") as tmp:
        for repeat in range(args.repeats):
            wall, busy = time_grading(Path(tmp) / f"grades{repeat}")
            figures["autograder (all checks)"].append(wall)
            cpu.append(busy)
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
    print(f"autograder: {statistics.fmean(cpu):.1f} CPU-seconds machine-wide per grading (min {min(cpu):.1f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
