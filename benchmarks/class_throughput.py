"""Benchmark: how many submissions a minute the grader gets through, and where one submission's time goes.

Grades N copies of the example class's notebooks (examples/submitted/: the reference, the untouched
template and six typical bugs, in turn) with ``python -m autograder grade`` and prints:

* submissions per minute (wall time of the whole command, start-up included) and the projection for
  a class of 300;
* the median seconds of one submission in its runner, and the time before grading starts (Python
  start-up and imports, torch included);
* each training question's train, encode and decode steps (the grader's own loop in the sandbox; the
  two workers train two models at once, so the steps overlap);
* the sandbox start: a worker started, torch imported inside it, first answer (measured apart);
* the CPU-seconds the whole machine spent per submission (``/proc/stat``, Linux; meaningful only on an
  otherwise idle machine), against the reference trainings' calibrated CPU-seconds: the ceiling on
  submissions per minute is the CPU count × 60 over that figure.

Run from the repository root (a class of 16 takes about 6 minutes on a 2-core CPU)::

    DATA_DIR=../shared/datasets .venv/bin/python benchmarks/class_throughput.py --n 16
    .venv/bin/python benchmarks/class_throughput.py --n 48 --device cuda --jobs 12
    .venv/bin/python benchmarks/class_throughput.py --n 16 --backend ray
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

EXAMPLES = ROOT / "examples" / "submitted"


def make_class(folder: Path, n: int, only: str | None = None) -> list[str]:
    """``n`` submissions in nbgrader's layout, copies of the example students in turn (or of ``only``)."""
    students = sorted(p.name for p in EXAMPLES.iterdir() if (p / "autoencoders").is_dir())
    if only is not None:
        if only not in students:
            raise SystemExit(f"error: no example student {only!r}; there are: {', '.join(students)}")
        students = [only]
    names = []
    for index in range(n):
        name = f"{students[index % len(students)]}-{index:03d}"
        shutil.copytree(EXAMPLES / students[index % len(students)], folder / name)
        names.append(name)
    return names


def sandbox_start_seconds(device: str, repeats: int = 3) -> float:
    """Median seconds from starting a sandboxed worker to its first answer (torch imported inside)."""
    from autograder import config
    from autograder.client import Worker
    from autograder.sandbox import SandboxConfig, prepare_runtime, prepare_training_data, training_data_cache

    data = prepare_training_data(training_data_cache(), config.datasets())
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        runtime = prepare_runtime(Path(tmp) / "runtime")
        for _ in range(repeats):
            started = time.perf_counter()
            worker = Worker([], runtime, SandboxConfig(device=device, data=data), Path(tmp) / "worker.log")
            worker.request("environment", cpu_s=120)
            times.append(time.perf_counter() - started)
            worker.close()
    return statistics.median(times)


def busy_cpu_seconds() -> float | None:
    """CPU-seconds the whole machine has spent busy since boot (user, nice, system, irq, softirq, steal), or None
    where there is no /proc/stat."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--n", type=int, default=16, help="submissions to grade (default 16)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--backend", choices=("local", "ray"), default="local")
    parser.add_argument("--jobs", type=int, default=0, help="runners at once (default: the grader's default)")
    parser.add_argument("--per-gpu", type=int, default=0, help="runners per GPU (CUDA; default: the grader's)")
    parser.add_argument("-k", dest="select", help="only the checks matching this pytest -k expression")
    parser.add_argument("--keep", type=Path, help="keep the graded class in this folder")
    parser.add_argument("--student", metavar="NAME", help="copies of this example student only (e.g. reference: "
                                                           "one full submission's cost)")
    args = parser.parse_args(argv)
    if args.n < 1:
        parser.error("--n must be at least 1")

    with tempfile.TemporaryDirectory(prefix="throughput-") as tmp:
        folder = args.keep or Path(tmp)
        names = make_class(folder / "submitted", args.n, args.student)
        command = [sys.executable, "-m", "autograder", "grade", str(folder / "submitted"), "--out",
                   str(folder / "grades"), "--device", args.device]
        command += ["--backend", args.backend] if args.backend != "local" else []
        command += ["--jobs", str(args.jobs)] if args.jobs else []
        command += ["--per-gpu", str(args.per_gpu)] if args.per_gpu else []
        command += ["-k", args.select] if args.select else []
        print("$", " ".join(command[1:]), flush=True)
        started, cpu_before = time.perf_counter(), busy_cpu_seconds()
        process = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
        wall, cpu_after = time.perf_counter() - started, busy_cpu_seconds()
        if process.returncode != 0:
            print(process.stdout[-2000:], process.stderr[-2000:], file=sys.stderr)
            return 1
        runner, startup, checks, steps = [], [], [], defaultdict(list)
        for name in names:
            result = json.loads((folder / "grades" / name / "scored.json").read_text(encoding="utf-8"))
            if "seconds" not in result:
                continue  # the runner failed: no timing
            runner.append(result["seconds"])
            startup.append(result.get("startup_seconds", 0.0))
            checks.append(sum(check.get("seconds", 0.0) for question in result["questions"].values()
                              for check in question["checks"]))
            for qid, seconds in result.get("training_seconds", {}).items():
                for step, value in seconds.items():
                    steps[f"{qid} {step}"].append(value)
    start = sandbox_start_seconds(args.device)

    rate = 60 * args.n / wall
    print(f"\nmachine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; "
          f"device {args.device}; backend {args.backend}; jobs {args.jobs or 'default'}")
    print(f"graded {args.n} submissions in {wall:.1f} s: {rate:.2f} submissions/min "
          f"(a class of 300: {300 / rate:.1f} min)")
    print(f"one submission in its runner: median {statistics.median(runner):.1f} s "
          f"(min {min(runner):.1f}, max {max(runner):.1f}); its checks: median {statistics.median(checks):.1f} s")
    print(f"  before grading (Python start-up, imports incl. torch): median {statistics.median(startup):.1f} s")
    print(f"  sandbox start to first answer (measured apart): median {start:.2f} s")
    if cpu_before is not None and cpu_after is not None:
        from autograder import config

        per = (cpu_after - cpu_before) / args.n
        trainings = sum(q.get("cpu_seconds_mean", 0.0) for q in config.calibration(args.device)["questions"].values())
        print(f"  CPU: {per:.1f} CPU-s per submission, machine-wide (the reference's three trainings alone: "
              f"{trainings:.1f} CPU-s); ceiling on this machine: {60 * (os.cpu_count() or 1) / per:.2f} submissions/min")
    print("  training pipeline (two lanes at once; each step's own seconds):")
    for step, seconds in sorted(steps.items()):
        print(f"    {step:28} median {statistics.median(seconds):6.1f} s   max {max(seconds):6.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
