"""Command line: ``python -m autograder grade PATH... --out DIR`` and ``python -m autograder calibrate``."""
from __future__ import annotations

import argparse
import importlib
import os
import sys
import threading
from pathlib import Path

DESCRIPTION = """Autograder for the autoencoder/VAE lab (実験3-4).

grade: grades nbgrader submissions (submitted/<student_id>/autoencoders/*.ipynb) or notebooks.
Student code runs only in a sandboxed worker (bubblewrap); the hidden pytest graders and every
score stay in trusted processes. Writes DIR/grades.csv, DIR/<student_id>/results.json (Gradescope
format), DIR/<student_id>/feedback.html, DIR/summary.txt, DIR/summary.png and DIR/insights.html (what the
class got wrong, for the staff). Grading into a DIR that
holds earlier results updates the students graded now and keeps the others; a question that a run
does not grade (-k) keeps its earlier score, or stays empty ("not graded") in grades.csv.

list: the rubric (every question, its checks and their points), read from the graders.

gradebook, export, gradescope, similarity: the scores into nbgrader's gradebook (formgrader), an LMS
import file from grades.csv, the Gradescope autograder zip, and a code-similarity report of the
solution cells (each has its own --help).

calibrate: retrains the reference solution under each grading budget with many seeds and writes
autograder/calibration.json, or calibration-cuda.json with --device cuda: grading on a device uses
that device's thresholds (see `python -m autograder calibrate --help`)."""


def cuda_devices() -> int:
    """How many CUDA devices torch sees here; 0 at once, without importing torch (2 CPU-seconds), on a machine
    with no GPU device node (NVIDIA's /dev/nvidia*, ROCm's /dev/kfd, WSL's /dev/dxg)."""
    import glob

    if not (glob.glob("/dev/nvidia[0-9]*") or os.path.exists("/dev/kfd") or os.path.exists("/dev/dxg")):
        return 0
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def grade_command(args: argparse.Namespace) -> int:
    from autograder import config, engine, gradesheet, insights, report
    from autograder.ray_backend import ClusterError
    from autograder.rubric import RubricError
    from autograder.sandbox import SandboxUnavailable, check_bwrap, describe, describe_none, prepare_training_data, \
        training_data_cache

    labtools = config.labtools()
    gpus = cuda_devices() if args.device != "cpu" else 0
    device = args.device if args.device != "auto" else ("cuda" if gpus else "cpu")
    try:
        if device == "cuda" and not gpus:
            raise engine.BadInput("--device cuda, but torch sees no CUDA device here")
        config.calibration(device)
        submissions = engine.discover(args.paths)
        if args.sandbox == "bwrap":
            check_bwrap()
        for dataset in config.datasets():  # downloads what is missing when online; the sandboxes have no network
            _, folder, files, _ = labtools._SPECS[dataset]
            if not all((labtools.data_dir() / folder / name).is_file() for name in files):
                labtools.load_dataset(dataset, train=True, limit=1)
    except (engine.BadInput, config.StaleCalibration, SandboxUnavailable, labtools.DatasetUnavailableError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.sandbox == "none":
        print("warning: --sandbox none runs student code unconfined; use it only for trusted notebooks",
              file=sys.stderr)
    warning = config.calibration_warning(device)
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
    jobs = args.jobs or (args.per_gpu * gpus if device == "cuda" else max(1, os.cpu_count() or 1))
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    options = ["--sandbox", args.sandbox, "--device", device, "--memory-gb", str(args.memory_gb)]
    if args.select:
        options += ["-k", args.select]
    where = f"{jobs} at a time" if args.backend == "local" else \
        f"as Ray tasks on {args.address or f'a local Ray with {jobs} CPUs'}"
    print(f"grading {len(submissions)} submission(s) on {device}, {where}")
    print(f"sandbox: {describe() if args.sandbox == 'bwrap' else describe_none()}")
    data = prepare_training_data(training_data_cache(), config.datasets())  # the training split, for the sandboxes
    threading.Thread(target=report.preload, daemon=True).start()  # while the runners grade, not after them
    try:
        results = engine.grade_all(submissions, out, jobs=jobs, options=[*options, "--train-data", str(data)],
                                   backend=args.backend, address=args.address, per_gpu=args.per_gpu)
    except (RubricError, ClusterError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\ninterrupted: {out / 'grades.csv'} and the feedback files were left as they were", file=sys.stderr)
        return 130
    questions = config.questions()
    try:
        everyone = gradesheet.update(out, results, list(questions))
        for student_id in results:
            report.write_results_json(out / student_id / "results.json", everyone[student_id], lang=args.lang)
            report.write_feedback_html(out / student_id / "feedback.html", student_id, everyone[student_id],
                                       lang=args.lang)
        table = report.summary_table(everyone, questions)
        gradesheet.write_atomic(out / "summary.txt", table + "\n")
        report.summary_plot(out / "summary.png", everyone, questions)
        insights.write_insights(out, questions, lang=args.lang)  # the whole folder's class, for the staff
    except OSError as error:
        print(f"error: could not write the results into {out}: {error} (the previous grades.csv is unchanged)",
              file=sys.stderr)
        return 2
    print(table)
    kept = len(everyone) - len(results)
    print(f"wrote {out / 'grades.csv'} ({len(results)} graded now" + (f", {kept} kept from earlier runs" if kept else "")
          + f"), {out / 'summary.png'}, {out / 'insights.html'} and results.json + feedback.html per student")
    for student_id, qids in gradesheet.not_graded({s: everyone[s] for s in results}).items():
        print(f"note: {student_id}: not graded yet: {', '.join(qids)} (empty in grades.csv)")
    return 0


def _at_least_one(text: str) -> int:
    """An argparse type: an integer >= 1."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return int(text)


def list_command() -> int:
    from autograder import rubric

    try:
        print(rubric.table(rubric.collect()))
    except rubric.RubricError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


# Commands whose module has its own ``main(argv)`` and ``--help``: ``python -m autograder NAME --help``.
EXTRA_COMMANDS = {
    "export": "grades.csv -> a Canvas or Moodle gradebook-import CSV (--roster FILE)",
    "gradebook": "put GRADES/<student>/results.json into nbgrader's gradebook.db (--course-dir DIR --grades DIR)",
    "gradescope": "build the Gradescope autograder zip (setup.sh, run_autograder, grader, data)",
    "similarity": "HTML report of the most similar pairs of solutions, for instructors (changes no grade)",
}


def main(argv: list[str] | None = None) -> int:
    from autograder.engine import PER_GPU  # light (no torch), unlike the grading imports

    parser = argparse.ArgumentParser(prog="python -m autograder", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    grade = commands.add_parser("grade", help="grade submissions", description=DESCRIPTION.split("\n\n")[1])
    grade.add_argument("paths", nargs="+", type=Path, metavar="PATH",
                       help="an nbgrader submitted/ folder, a folder of notebooks, or notebooks")
    grade.add_argument("--out", type=Path, required=True, metavar="DIR", help="where to write the results")
    grade.add_argument("--jobs", type=int, default=0, help="submissions graded at once (default: the CPU count; on "
                                                           "CUDA: --per-gpu × the GPU count)")
    grade.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                       help="where student models train (default: cuda when available)")
    grade.add_argument("--sandbox", choices=("bwrap", "none"), default="bwrap",
                       help="bwrap (default) confines student code with bubblewrap; none is unsafe")
    grade.add_argument("--memory-gb", type=float, default=6.0, help="memory cap per worker (default 6)")
    grade.add_argument("--backend", choices=("local", "ray"), default="local",
                       help="local (default): --jobs runner processes on this machine; ray: one Ray task per "
                            "submission, with the same results (pip install -e '.[ray]')")
    grade.add_argument("--address", metavar="ADDR", help="with --backend ray: the Ray cluster to join (auto, or "
                                                         "HEAD_IP:6379); default: a local Ray with --jobs CPUs")
    grade.add_argument("--per-gpu", type=_at_least_one, default=PER_GPU, metavar="N",
                       help="on CUDA: submissions sharing one GPU (default %(default)s); the local backend then runs "
                            "N × GPUs at a time unless --jobs says otherwise, a Ray task asks for 1/N of a GPU")
    grade.add_argument("-k", dest="select", metavar="EXPR", help="only the checks matching this pytest -k expression")
    grade.add_argument("--lang", choices=("ja", "en", "both"), default="both",
                       help="language of the students' feedback (results.json, feedback.html): ja, en, or both "
                            "(default: the Japanese with the English beneath it)")
    commands.add_parser("list", help="the rubric: every question, its checks and their points",
                        description="Collects the hidden graders (nothing runs) and prints each question's checks "
                                    "with their points, as grading will score them.")
    commands.add_parser("calibrate", help="recalibrate the training thresholds", add_help=False)
    commands.add_parser("mutants", help="grade mutants of the reference solution: the graders' kill rate",
                        add_help=False)
    for name, summary in EXTRA_COMMANDS.items():
        commands.add_parser(name, help=summary, add_help=False)
    args, rest = parser.parse_known_args(argv)
    if args.command == "calibrate":
        from autograder import calibrate

        return calibrate.main(rest)
    if args.command == "mutants":
        from autograder import mutants

        return mutants.main(rest)
    if args.command == "list":
        return list_command()
    if args.command in EXTRA_COMMANDS:
        return importlib.import_module(f"autograder.{args.command}").main(rest)
    if rest:
        parser.error(f"unrecognised arguments: {' '.join(rest)}")
    return grade_command(args)


if __name__ == "__main__":
    sys.exit(main())
