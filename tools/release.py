#!/usr/bin/env python3
"""Generate the student release ``assignment/`` from ``solutions/`` with nbgrader.

The release is what nbgrader's ``generate_assignment`` makes of the solution files, run in a
throw-away course directory:

* ``source/autoencoders/`` gets a copy of every file in ``solutions/`` except the jupytext source
  of a notebook (``X.py`` beside ``X.ipynb``, i.e. ``autoencoders.py``), hidden files,
  ``__pycache__``, ``*.pyc`` and ``.ipynb_checkpoints``;
* ``nbgrader_config.py`` sets the course root and id and the ``ClearSolutions`` stubs
  (``# YOUR CODE HERE`` / ``raise NotImplementedError()``, ``YOUR ANSWER HERE``);
* nbgrader runs as a subprocess with this interpreter's ``bin/`` first on ``PATH`` (it shells out
  to ``alembic``) and ``JUPYTER_NO_CONFIG=1``, so no user/system Jupyter config can change the
  output; only the course's own ``nbgrader_config.py`` is read;
* ``release/autoencoders/*`` is copied into the output folder, whose other files are removed.

nbgrader 0.9's output needs no normalisation: it is deterministic (its checksums are MD5s of
cell content, it writes no timestamps or random ids into the release, and it keeps the cell ids
of ``tools/build_notebook.py``), so the release is copied byte for byte.

Usage::

    python tools/release.py                 # regenerate assignment/
    python tools/release.py --out DIR       # generate into DIR instead
    python tools/release.py --check         # exit 1, naming the files, if assignment/ is stale
"""
from __future__ import annotations

import argparse
import filecmp
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS_DIR = REPO_ROOT / "solutions"
ASSIGNMENT_DIR = REPO_ROOT / "assignment"
ASSIGNMENT_ID = "autoencoders"
COURSE_ID = "ae-vae-lab"

CODE_STUB = "# YOUR CODE HERE\nraise NotImplementedError()"
TEXT_STUB = "YOUR ANSWER HERE"
_SKIP_NAMES = {"__pycache__", ".ipynb_checkpoints"}
_SKIP_SUFFIXES = {".pyc", ".pyo"}

NBGRADER_CONFIG = """\
c = get_config()  # noqa: F821  (written by tools/release.py)
c.CourseDirectory.root = {root!r}
c.CourseDirectory.course_id = {course_id!r}
c.ClearSolutions.code_stub = {{"python": {code_stub!r}}}
c.ClearSolutions.text_stub = {text_stub!r}
c.ClearSolutions.begin_solution_delimeter = "BEGIN SOLUTION"
c.ClearSolutions.end_solution_delimeter = "END SOLUTION"
"""


class ReleaseError(Exception):
    """nbgrader failed, or the output folder is not safe to overwrite."""


def release_sources(solutions_dir: Path) -> list[Path]:
    """Files of ``solutions_dir`` (relative paths, sorted) that go into the nbgrader source folder."""
    solutions_dir = Path(solutions_dir)
    files = []
    for path in sorted(solutions_dir.rglob("*")):
        rel = path.relative_to(solutions_dir)
        if not path.is_file():
            continue
        if any(part in _SKIP_NAMES or part.startswith(".") for part in rel.parts):
            continue
        if path.suffix in _SKIP_SUFFIXES:
            continue
        if path.suffix == ".py" and path.with_suffix(".ipynb").is_file():
            continue  # the jupytext source of a notebook: instructors only
        files.append(rel)
    return files


def _nbgrader_env() -> dict[str, str]:
    env = dict(os.environ)
    bin_dir = str(Path(sys.executable).parent)  # not resolved: a venv's python is a symlink
    env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
    env["JUPYTER_NO_CONFIG"] = "1"
    env.pop("JUPYTER_CONFIG_DIR", None)
    env.pop("JUPYTER_CONFIG_PATH", None)
    return env


def _check_out_dir(out_dir: Path) -> None:
    """Refuse to sync into a folder that is obviously not a release folder."""
    resolved = out_dir.resolve()
    protected = {REPO_ROOT.resolve(), SOLUTIONS_DIR.resolve(), Path.home().resolve(), Path("/")}
    if resolved in protected or (resolved / ".git").exists():
        raise ReleaseError(f"refusing to overwrite {out_dir}: not a release folder")


def _sync(src_dir: Path, out_dir: Path) -> None:
    """Make ``out_dir`` hold exactly the files of ``src_dir``."""
    _check_out_dir(out_dir)
    wanted = {p.relative_to(src_dir) for p in src_dir.rglob("*") if p.is_file()}
    if out_dir.exists():
        for path in sorted(out_dir.rglob("*"), reverse=True):
            rel = path.relative_to(out_dir)
            if path.is_file() or path.is_symlink():
                if rel not in wanted:
                    path.unlink()
            elif path.is_dir() and not any(path.iterdir()):
                path.rmdir()
    for rel in sorted(wanted):
        dst = out_dir / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src_dir / rel, dst)


def generate_release(out_dir: Path, solutions_dir: Path = SOLUTIONS_DIR,
                     assignment_id: str = ASSIGNMENT_ID) -> None:
    """Generate the student release of ``solutions_dir`` into ``out_dir`` (made to match exactly)."""
    solutions_dir, out_dir = Path(solutions_dir), Path(out_dir)
    files = release_sources(solutions_dir)
    if not any(f.suffix == ".ipynb" for f in files):
        raise ReleaseError(f"no notebook in {solutions_dir}: run tools/build_notebook.py first")
    with tempfile.TemporaryDirectory(prefix="nbgrader-course-") as tmp:
        course = Path(tmp)
        source = course / "source" / assignment_id
        for rel in files:
            (source / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(solutions_dir / rel, source / rel)
        (course / "nbgrader_config.py").write_text(
            NBGRADER_CONFIG.format(root=str(course), course_id=COURSE_ID,
                                   code_stub=CODE_STUB, text_stub=TEXT_STUB),
            encoding="utf-8")
        cmd = [sys.executable, "-m", "nbgrader", "generate_assignment", assignment_id,
               "--force", "--log-level=WARN"]
        proc = subprocess.run(cmd, cwd=course, env=_nbgrader_env(), capture_output=True, text=True)
        release = course / "release" / assignment_id
        if proc.returncode != 0 or not release.is_dir():
            raise ReleaseError(f"nbgrader generate_assignment failed (exit {proc.returncode}):\n"
                               f"{proc.stdout}{proc.stderr}")
        _sync(release, out_dir)


def diff_trees(expected: Path, actual: Path) -> list[str]:
    """Relative paths that differ between two folders (missing on either side, or other bytes)."""
    def files(root: Path) -> set[Path]:
        return {p.relative_to(root) for p in root.rglob("*") if p.is_file()} if root.is_dir() else set()

    exp, act = files(expected), files(actual)
    out = [f"{rel} (missing)" for rel in sorted(exp - act)]
    out += [f"{rel} (not in a fresh release)" for rel in sorted(act - exp)]
    out += [f"{rel} (differs)" for rel in sorted(exp & act)
            if not filecmp.cmp(expected / rel, actual / rel, shallow=False)]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Generate the student release with nbgrader.")
    parser.add_argument("--out", type=Path, default=ASSIGNMENT_DIR,
                        help="folder to write the release into (default: assignment/)")
    parser.add_argument("--solutions", type=Path, default=SOLUTIONS_DIR,
                        help="instructor folder to release (default: solutions/)")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 naming the files if --out is stale")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    try:
        if args.check:
            with tempfile.TemporaryDirectory(prefix="release-check-") as tmp:
                fresh = Path(tmp) / "release"
                generate_release(fresh, args.solutions)
                stale = diff_trees(fresh, args.out)
            if stale:
                print(f"{args.out} is stale ({'; '.join(stale)}): run `make assignment` and commit it",
                      file=sys.stderr)
                return 1
            print(f"{args.out} is up to date ({time.perf_counter() - start:.1f} s)")
            return 0
        generate_release(args.out, args.solutions)
    except ReleaseError as exc:
        print(f"release: error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.out} ({time.perf_counter() - start:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
