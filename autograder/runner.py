"""Grade one notebook: run the hidden pytest graders against it and write the checks' outcomes as JSON.

Run as ``python -m autograder.runner NOTEBOOK --json OUT`` (the engine starts one per submission).
This process is trusted: it parses the notebook as data, never runs it, and talks to the
student's code only through a sandboxed :class:`~autograder.client.Worker`.

Output: ``{"notebook", "checks": [{"id", "question", "title", "title_ja", "passed", "message", "message_ja",
"message_en", "failure", "seconds"}], "skipped_cells", "failed_cells", "notebook_error" (+ ``_ja``, ``_en``),
"worker_starts"}``. ``message`` is the Japanese text with the English on the next line ("" when the check
passed); ``title`` is the English title. Scores are computed from it by the engine.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from autograder import config, secret
from autograder.rubric import GRADERS_DIR, RUBRIC_EXIT_CODE, RubricError, describe_problems
from autograder.sandbox import ROLES, Runtime, SandboxConfig, prepare_runtime, prepare_training_data, start_worker, \
    training_data_cache

# torch, the graders and the worker handles (autograder.submission, autograder.collector) are imported in
# grade(), after the workers of a full grading have started: their start-up overlaps this process's imports.


def runtimes_in(workdir: Path) -> dict[str, Runtime]:
    """Each role's runtime folder (sandbox.ROLE_FILES; the ``functions`` role without the forbidden modules)."""
    return {role: prepare_runtime(workdir / f"runtime-{role}", role,
                                  hide=config.forbidden_modules() if role == "functions" else ())
            for role in ROLES}


def grade(notebook_path: Path, sandbox: SandboxConfig, workdir: Path, select: str | None = None,
          runtimes: dict[str, Runtime] | None = None, started: dict | None = None) -> dict[str, Any]:
    """Run the graders on one notebook; return the outcome of every check. ``started``: role -> a worker process
    already started in ``runtimes[role]`` (see :func:`main`), which that role's worker takes over."""
    import pytest

    from autograder.collector import Collector
    from autograder.i18n import json_fields
    from autograder.submission import Context, read_notebook

    runtimes = runtimes or runtimes_in(workdir)
    started = dict(started or {})
    context = Context(notebook_path=notebook_path, runtimes=runtimes, sandbox=sandbox, log_dir=workdir)
    read_notebook(context)
    try:  # the graders' probe inputs are drawn for this notebook (autograder/secret.py)
        secret.for_submission(notebook_path.read_bytes())
    except OSError:
        pass  # read_notebook has recorded why the notebook cannot be read
    collector = Collector()
    arguments = [str(GRADERS_DIR), "-q", "-p", "no:cacheprovider", "-p", "no:randomly", "--rootdir", str(GRADERS_DIR),
                 "-o", "addopts=", "-o", "python_files=test_*.py", "--no-header", "--tb=no", "-W", "ignore"]
    if select:
        arguments += ["-k", select]
    else:  # every check runs: start every worker now, while pytest collects the graders
        for role in ROLES:
            if not context.worker(role).broken:
                context.worker(role).prestart(started.pop(role, None))
    for process, group in started.values():  # not taken (an unreadable notebook): stopped, with its group
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        group.remove()
    with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet):
        code = pytest.main(arguments, plugins=[collector, context])
    if context.rubric_problems:
        raise RubricError(describe_problems(context.rubric_problems))
    if code not in (0, 1):
        raise RuntimeError(f"the graders could not run (pytest exit code {code})")
    return {
        "notebook": str(notebook_path),
        "checks": collector.checks,
        "skipped_cells": [list(s) for s in context.skipped],
        "failed_cells": context.failed_cells,
        **(json_fields("notebook_error", context.notebook_error) if context.notebook_error else
           {"notebook_error": None}),
        "worker_starts": context.worker_starts,
        "pictures": context.pictures,
        "training_seconds": context.training_seconds,
        "worker_cpu": context.worker_cpu(),
        "worker_idle_s": round(context.account.idle, 2),  # waited for without computing (budget.IDLE_ACCOUNT_S)
    }


def worker_log_tail(folder: Path, chars: int = 2000) -> str:
    """The end of each worker's log (``worker-<role>.log``), under its role's name, for the instructor's grader.log."""
    parts = []
    for role in ROLES:
        log = folder / f"worker-{role}.log"
        text = log.read_text(errors="replace").strip() if log.exists() else ""
        if text:
            parts.append(f"[{role}]\n{text[-chars // len(ROLES):]}")
    return "\n".join(parts)


def _seconds_since_start() -> float:
    """Seconds since this process started (Linux; 0 elsewhere): the interpreter's start-up and imports included."""
    try:
        ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        return round(time.clock_gettime(time.CLOCK_BOOTTIME) - ticks / os.sysconf("SC_CLK_TCK"), 2)
    except (OSError, ValueError, IndexError, AttributeError):
        return 0.0


def main(argv: list[str] | None = None) -> int:
    import resource

    from autograder.engine import limit_own_cpu

    limit_own_cpu()  # the notebook cannot make this process's own analyses cost more than engine.RUNNER_CPU_S
    parser = argparse.ArgumentParser(prog="python -m autograder.runner", description=__doc__.splitlines()[0])
    parser.add_argument("notebook", type=Path)
    parser.add_argument("--json", type=Path, required=True, help="where to write the checks' outcomes")
    parser.add_argument("--sandbox", choices=("bwrap", "none"), default="bwrap")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--memory-gb", type=float, default=6.0)
    parser.add_argument("--train-data", type=Path, help="the training split from sandbox.prepare_training_data "
                        "(default: the cache in ~/.cache/ae-vae-lab, made when missing)")
    parser.add_argument("-k", dest="select", help="only the checks matching this pytest -k expression")
    args = parser.parse_args(argv)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="autograder-") as workdir:
        data = args.train_data or prepare_training_data(training_data_cache(), config.datasets())
        sandbox = SandboxConfig(mode=args.sandbox, device=args.device, memory_gb=args.memory_gb, data=data.resolve())
        runtimes = runtimes_in(Path(workdir))
        # a full grading uses every role: start the workers first, so that their Python and torch start while
        # this process imports its own (about 1.5 CPU-seconds on each side); they get the definitions later
        early = {} if args.select else {role: start_worker(runtimes[role], sandbox) for role in ROLES}
        import torch

        torch.set_num_threads(1)
        try:
            result = grade(args.notebook, sandbox, Path(workdir), args.select, runtimes, early)
        except RubricError as error:
            print(f"error: {error}", file=sys.stderr)
            return RUBRIC_EXIT_CODE
        result["worker_log_tail"] = worker_log_tail(Path(workdir))
    result["seconds"] = round(time.monotonic() - started, 2)
    result["startup_seconds"] = _seconds_since_start() - result["seconds"]
    own = resource.getrusage(resource.RUSAGE_SELF)
    result["cpu_seconds"] = round(own.ru_utime + own.ru_stime, 2)  # what engine.RUNNER_CPU_S caps
    args.json.write_text(json.dumps(result, indent=1, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
