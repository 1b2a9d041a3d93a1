"""The GPU check for a short loan of a CUDA machine (`make gpu-check`): one script, under 5 minutes.

1. the CUDA-only tests (tests/test_cuda.py: the sandbox sees the GPU, an out-of-memory error costs one
   call, workers share the GPU, the reference trains on CUDA within the calibrated limit);
2. calibration on CUDA with a few seeds (writes autograder/calibration-cuda.json, which grading on
   CUDA then uses);
3. the example class graded with ``--device cuda`` and several runners per GPU; each example student must
   lose points exactly where examples/README.md says;
4. throughput: N copies of the example class, submissions per minute, projection for 300.

Each step has a time limit; the figures are printed at the end. Needs bubblewrap, the datasets under
DATA_DIR and this package's dependencies (see the README's "GPU" section)::

    DATA_DIR=/data .venv/bin/python benchmarks/gpu_check.py [--seeds 4] [--n 48] [--jobs 12]
"""
from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def step(title: str, command: list[str], timeout: int, figures: list[str]) -> subprocess.CompletedProcess | None:
    print(f"\n== {title}\n$ {' '.join(command)}", flush=True)
    started = time.perf_counter()
    try:
        done = subprocess.run(command, cwd=ROOT, timeout=timeout, text=True, capture_output=True)
    except subprocess.TimeoutExpired:
        figures.append(f"{title}: TIMED OUT after {timeout} s")
        return None
    seconds = time.perf_counter() - started
    print(done.stdout[-4000:], done.stderr[-2000:] if done.returncode else "", sep="\n")
    figures.append(f"{title}: {'ok' if done.returncode == 0 else f'FAILED (exit {done.returncode})'} in {seconds:.0f} s")
    return done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=4, help="calibration seeds per budget (default 4)")
    parser.add_argument("--n", type=int, default=48, help="submissions in the throughput run (default 48)")
    parser.add_argument("--jobs", type=int, default=12, help="runners at once (default 12)")
    args = parser.parse_args(argv)
    import torch

    if not torch.cuda.is_available():
        print("error: torch sees no CUDA device here; gpu-check is for a machine with a GPU", file=sys.stderr)
        return 2
    python = sys.executable
    figures = [f"device: {torch.cuda.get_device_name(0)}, torch {torch.__version__}, CUDA {torch.version.cuda}"]
    step("CUDA tests", [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_cuda.py"], 150, figures)
    step("calibrate on CUDA", [python, "-m", "autograder", "calibrate", "--device", "cuda", "--seeds", str(args.seeds),
                               "--jobs", "4"], 240, figures)
    with tempfile.TemporaryDirectory() as tmp:
        graded = step("example class on CUDA", [python, "-m", "autograder", "grade", "examples/submitted", "--out",
                                                tmp, "--device", "cuda", "--jobs", "8"], 180, figures)
        if graded is not None and graded.returncode == 0:
            from autograder import config
            from tools.make_examples import STUDENTS

            questions = config.questions()
            with open(Path(tmp) / "grades.csv", encoding="utf-8") as file:
                rows = {row["student_id"]: row for row in csv.DictReader(file)}
            wrong = [s.id for s in STUDENTS if {q for q in questions if float(rows[s.id][q] or 0)
                                                < questions[q]["points"]} != set(s.loses)]
            figures.append("example class: " + ("every student loses exactly the expected questions" if not wrong
                                                else f"UNEXPECTED scores for {', '.join(wrong)}"))
    throughput = step("throughput", [python, "benchmarks/class_throughput.py", "--n", str(args.n), "--device", "cuda",
                                     "--jobs", str(args.jobs)], 300, figures)
    if throughput is not None:
        figures += [line for line in throughput.stdout.splitlines() if line.startswith(("graded", "one submission"))]
    print("\n== figures\n" + "\n".join(figures))
    return 0 if all("FAILED" not in f and "TIMED OUT" not in f and "UNEXPECTED" not in f for f in figures) else 1


if __name__ == "__main__":
    sys.exit(main())
