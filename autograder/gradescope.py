"""The Gradescope autograder: ``python -m autograder gradescope [--out build/gradescope.zip]`` builds the zip.

Gradescope unpacks the zip into ``/autograder/source`` while it builds an image (running ``setup.sh``
there, once), copies ``run_autograder`` to ``/autograder/run_autograder``, and runs it for every submission
in a fresh container of that image, with the student's upload in ``/autograder/submission``; it reads
``/autograder/results/results.json``. The zip therefore holds, at its root:

* ``setup.sh`` (apt-get: python3, python3-venv, bubblewrap; a venv with PyTorch's CPU wheels and the
  grader, installed editable from ``/autograder/source``; then the training split, see ``prepare``) and
  ``run_autograder`` (executable; runs ``python -m autograder.gradescope grade /autograder``);
* what grading reads: the ``autograder`` package (hidden graders, questions.toml, calibration.json,
  data/*.npy), the reference ``solutions/autoencoders.ipynb`` and ``solutions/labtools.py``, the worker's
  ``assignment/labtools.py``, ``pyproject.toml`` (and the README it names), and the raw files of the datasets
  that the training budgets use (MNIST) under ``data/``. Both MNIST splits are shipped: the trusted side
  scores the training checks on the first test images (``bottleneck.held_out_images``) and ``grade`` checks
  that every raw file is there; the workers still see only the training split. Nothing is downloaded.

``grade ROOT`` grades the one ``.ipynb`` under ``ROOT/submission`` (any name; none or several give a score
of 0 and a message saying so) with ``python -m autograder grade NOTEBOOK --jobs 1``, using the shipped
data (``DATA_DIR`` and ``AUTOGRADER_CACHE`` point into ``ROOT/source``), and writes the student's
``results.json`` to ``ROOT/results/``.

Isolation. bubblewrap needs namespaces that a Docker container usually refuses (Docker's default seccomp
profile and dropped CAP_SYS_ADMIN), so ``grade`` probes it and uses ``--sandbox bwrap`` only when it works.
Otherwise it grades with ``--sandbox none``, and what remains is: Gradescope's container, thrown away after
this one submission; the student's code running only in separate worker processes, never in the process
that scores, which talks to them only through the data-only channel (JSON and safetensors, sizes checked
before anything is read); a deadline per check; and the per-worker limits of :mod:`autograder.limits`
(in a container, usually rlimits only: address space, CPU time, file size, processes, no core dumps). Under Gradescope's root, the workers also drop to uid 65534 before any
student code runs (:mod:`autograder.sandbox`, mode ``none``) and ``grade`` closes ``/autograder/source``
(hidden graders, reference solution, MNIST test split) and ``/autograder/results`` to that user (mode
0700), so the student's code can neither read nor alter them. What is lost: the container's
world-readable files and its network are open to the workers. Run by another user, the workers keep that
user and nothing is closed: the student's code could then read the graders and forge a score.
That sentence is printed to the instructor-only log (``stdout_visibility`` stays ``hidden``) and added to results.json as a hidden test,
which instructors see and students never do: telling students would advertise the gap.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

from autograder import config
from autograder.report import TEXT_ONLY
from autograder.secret import FILE_VARIABLE, course_secret, secret_file

REPO_ROOT = config.PACKAGE_DIR.parent
TEMPLATES = config.PACKAGE_DIR / "gradescope_files"
SCRIPTS = ("setup.sh", "run_autograder")
DEFAULT_OUT = Path("build") / "gradescope.zip"
ZIP_DATE = (2020, 1, 1, 0, 0, 0)  # fixed, so that the same files give the same zip
SKIPPED_PARTS = {"__pycache__", ".ipynb_checkpoints", "gradescope_files"}
SECRET_NAME = "grading-secret"  # the course secret, in /autograder/source (closed to the workers' user)
ISOLATION_TEST = "isolation of student code (instructors only)"


def shipped_files(data_dir: Path) -> dict[str, Path]:
    """Archive name -> file for everything under ``/autograder/source`` but the two scripts."""
    labtools = config.labtools()
    files = {path.relative_to(REPO_ROOT).as_posix(): path for path in sorted(config.PACKAGE_DIR.rglob("*"))
             if path.is_file() and not path.name.startswith(".") and path.suffix != ".pyc"
             and not SKIPPED_PARTS & set(path.relative_to(config.PACKAGE_DIR).parts)}
    for name in ("pyproject.toml", "README.md", "solutions/labtools.py", "assignment/labtools.py",
                 "assignment/autoencoders.ipynb"):  # the template: vae_training trains its given VAE
        files[name] = REPO_ROOT / name
    files["solutions/autoencoders.ipynb"] = config.REFERENCE_NOTEBOOK
    for dataset in config.datasets():
        _, folder, names, _ = labtools._SPECS[dataset]
        for name in names:
            files[f"data/{folder}/{name}"] = data_dir / folder / name
    files[SECRET_NAME] = secret_file()
    return files


def _zip_info(name: str, mode: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
    info.create_system = 3  # Unix, so that unzip applies the mode below
    info.external_attr = (0o100000 | mode) << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    return info


def build(out: Path) -> Path:
    """Write the autograder zip to ``out``; raises ``FileNotFoundError`` or ``config.StaleCalibration``."""
    labtools = config.labtools()
    config.calibration()  # a zip whose grader refuses to start would fail every submission
    course_secret()  # made now if the course has none yet: every Gradescope run draws what `make grade` draws
    for dataset in config.datasets():  # as `grade` does: downloads what is missing when online
        _, folder, names, _ = labtools._SPECS[dataset]
        if not all((labtools.data_dir() / folder / name).is_file() for name in names):
            labtools.load_dataset(dataset, train=True, limit=1)
    files = shipped_files(labtools.data_dir())
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.partial")
    with zipfile.ZipFile(partial, "w") as archive:
        for script in SCRIPTS:
            archive.writestr(_zip_info(script, 0o755), (TEMPLATES / script).read_bytes())
        for name, path in sorted(files.items()):
            with open(path, "rb") as source, archive.open(_zip_info(name, 0o644), "w") as target:
                shutil.copyfileobj(source, target, 2**20)
    partial.replace(out)
    return out


def data_environment(root: Path) -> dict[str, str]:
    """The shipped datasets (``DATA_DIR``), the training split's cache (``AUTOGRADER_CACHE``) and the course
    secret (``AUTOGRADER_SECRET_FILE``) under ``root``."""
    return {"DATA_DIR": str(root / "source" / "data"), "AUTOGRADER_CACHE": str(root / "source" / "cache"),
            FILE_VARIABLE: str(root / "source" / SECRET_NAME)}


def prepare(root: Path) -> Path:
    """Write the training split that the workers read (setup.sh runs this once, at image build time)."""
    from autograder.sandbox import prepare_training_data, training_data_cache

    os.environ.update(data_environment(root))
    return prepare_training_data(training_data_cache(), config.datasets())


def submitted_notebooks(folder: Path) -> list[Path]:
    """The notebooks a student uploaded (any name, any depth), without editor and archive leftovers."""
    return sorted(path for path in folder.rglob("*.ipynb") if path.is_file() and not any(
        part.startswith(".") or part == "__MACOSX" for part in path.relative_to(folder).parts))


def refusal(notebooks: list[Path], folder: Path) -> dict[str, Any]:
    """results.json for an upload that is not exactly one notebook: a score of 0 and why."""
    if notebooks:
        names = ", ".join(path.relative_to(folder).as_posix() for path in notebooks[:5])
        output = (f"ノートブックが {len(notebooks)} 個提出されました（{names}）。autoencoders.ipynb を 1 つだけ提出して"
                  f"ください。 / {len(notebooks)} notebooks were submitted ({names}): submit only your "
                  "autoencoders.ipynb.")
    else:
        output = ("ノートブック (.ipynb) が提出されていません。autoencoders.ipynb を提出してください。 / No notebook "
                  "(.ipynb) was submitted: submit your autoencoders.ipynb.")
    return {"score": 0.0, "max_score": float(sum(q["points"] for q in config.questions().values())),
            "output": output, "visibility": "visible", "stdout_visibility": "hidden", **TEXT_ONLY, "tests": []}


def isolation_sentence(bwrap_problem: str | None) -> str:
    """What confines the student's code in this container, in one sentence for the instructor."""
    from autograder import limits, sandbox

    if bwrap_problem is None:
        return f"Isolation: student code ran under {sandbox.describe()}."
    rlimits = limits.describe()
    common = (f"Isolation: bubblewrap is refused in this container ({bwrap_problem}), so student code ran without "
              "its sandbox; what remains is Gradescope's container, thrown away after this submission, the "
              "student's code running only in separate worker processes (never in the process that scores) that "
              "reach it only through the data-only channel (JSON and safetensors, sizes checked), a deadline per "
              f"check, and per worker {rlimits}")
    if os.geteuid() == 0:
        return (common + "; the workers drop to uid 65534 before any student code runs, and the autograder's source "
                "folder (hidden graders, reference solution, MNIST test split) and the results folder are closed "
                "to that user (mode 0700), so the student's code could not read or alter them; what is lost is the "
                "rest: the container's world-readable files and its network are open to the workers.")
    return (common + f"; what is lost is everything else: the workers run as uid {os.geteuid()}, the grader's own "
            "user, with the container's files and network, so the student's code could read the hidden graders, "
            "the reference solution and the MNIST test split in the autograder's source folder, and could alter "
            "any file in the container, including the grader's output (a determined student could forge a score).")


def close_to_workers(root: Path) -> None:
    """Without bubblewrap, as root: leave the source (hidden graders, reference, test split) and the results to
    root alone (mode 0700); the workers, uid 65534, read only what they loaded before dropping to it."""
    for folder in (root / "source", root / "results"):
        folder.chmod(0o700)


def grade(root: Path) -> int:
    """Grade ``root/submission``'s notebook into ``root/results/results.json`` (what run_autograder runs)."""
    from autograder.sandbox import bwrap_unavailable

    started = time.monotonic()
    results = root / "results" / "results.json"
    results.parent.mkdir(parents=True, exist_ok=True)
    print(f"autograder package: {config.PACKAGE_DIR}")
    notebooks = submitted_notebooks(root / "submission")
    if len(notebooks) != 1:
        document = refusal(notebooks, root / "submission")
        print(document["output"])
        results.write_text(json.dumps(document, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        return 0
    problem = bwrap_unavailable()
    if problem is not None and os.geteuid() == 0:
        close_to_workers(root)
    sentence = isolation_sentence(problem)
    print(sentence, flush=True)
    with tempfile.TemporaryDirectory(prefix="gradescope-") as folder:
        notebook, out = Path(folder) / "submission.ipynb", Path(folder) / "out"
        shutil.copyfile(notebooks[0], notebook)  # a fixed name: the student id, whatever the upload was called
        command = [sys.executable, "-m", "autograder", "grade", str(notebook), "--out", str(out), "--jobs", "1",
                   "--sandbox", "bwrap" if problem is None else "none"]
        code = subprocess.run(command, env={**os.environ, **data_environment(root)}).returncode
        produced = out / notebook.stem / "results.json"
        if code != 0 or not produced.is_file():
            print(f"error: `{' '.join(command[1:])}` failed (exit code {code}); no results.json written, so "
                  "Gradescope reports the autograder as failed", file=sys.stderr)
            return 1
        document = json.loads(produced.read_text(encoding="utf-8"))
    document["tests"].append({"name": ISOLATION_TEST, "score": 0.0, "max_score": 0.0, "output": sentence,
                              "visibility": "hidden", "output_format": "text"})
    document["execution_time"] = round(time.monotonic() - started, 1)
    results.write_text(json.dumps(document, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"score {document['score']} / {document['max_score']}; wrote {results}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m autograder gradescope",
        description="Build the Gradescope autograder zip (setup.sh, run_autograder, the grader, the reference "
                    "solution, the calibration and the MNIST files from DATA_DIR): upload it in Gradescope under "
                    "the assignment's Configure Autograder, Zip file upload, Ubuntu 22.04 base image. "
                    "`grade` and `prepare` are what the zip's run_autograder and setup.sh run inside Gradescope.")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, metavar="ZIP",
                        help=f"where to write the zip (default: {DEFAULT_OUT})")
    steps = parser.add_subparsers(dest="step", metavar="{grade,prepare}")
    for step, text in (("grade", "grade ROOT/submission/*.ipynb into ROOT/results/results.json (run_autograder)"),
                       ("prepare", "write the training split under ROOT/source/cache (setup.sh)")):
        steps.add_parser(step, help=text, description=text).add_argument(
            "root", type=Path, metavar="ROOT", help="the folder laid out like Gradescope's /autograder")
    args = parser.parse_args(argv)
    if args.step in ("grade", "prepare") and not (args.root / "source").is_dir():
        print(f"error: {args.root} has no source/ folder (expected Gradescope's /autograder layout)", file=sys.stderr)
        return 2
    if args.step == "grade":
        return grade(args.root.resolve())
    labtools = config.labtools()
    try:
        if args.step == "prepare":
            print(f"wrote the training split to {prepare(args.root.resolve())}")
            return 0
        out = build(args.out)
    except (FileNotFoundError, config.StaleCalibration, labtools.DatasetUnavailableError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    with zipfile.ZipFile(out) as archive:
        count = len(archive.infolist())
    print(f"wrote {out} ({out.stat().st_size / 2**20:.1f} MiB, {count} files); upload it in Gradescope: "
          "the assignment's Configure Autograder, Zip file upload (Ubuntu 22.04 base image)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
