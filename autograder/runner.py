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
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

import pytest

from autograder import config, secret
from autograder.failures import GradingFailure
from autograder.i18n import Message, json_fields, t
from autograder.rubric import GRADERS_DIR, RUBRIC_EXIT_CODE, RubricError, check_of, describe_problems
from autograder.sandbox import ROLES, SandboxConfig, prepare_runtime, prepare_training_data, training_data_cache
from autograder.submission import Context, read_notebook

class Collector:
    """A pytest plugin that records each check's outcome, keeping only messages meant for students."""

    def __init__(self) -> None:
        self.checks: list[dict[str, Any]] = []

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo):
        outcome = yield
        report = outcome.get_result()
        if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
            check = check_of(item)
            self.checks.append({
                "id": check.id, "question": check.question, "voids": check.voids, "weight": check.weight,
                "title": check.title, "title_ja": check.title_ja,
                "passed": report.passed,
                **json_fields("message", "" if report.passed else self._message(call)),
                "failure": "" if report.passed else self._kind(call),
                "seconds": round(report.duration, 3),
            })

    @staticmethod
    def _kind(call: pytest.CallInfo) -> str:
        """What stopped the check, for the class insights: the GradingFailure's class (``CheckFailed``: a named
        mistake; ``StudentError``, ``CheckTimeout``, ``CheckBlocked``, ``WorkerCrashed``), ``GraderError``
        for a bug of the grader's own."""
        error = call.excinfo.value if call.excinfo is not None else None
        return type(error).__name__ if isinstance(error, GradingFailure) else "GraderError"

    @staticmethod
    def _message(call: pytest.CallInfo) -> Message:
        if call.excinfo is None:
            return t("不合格です", "failed")
        error = call.excinfo.value
        if isinstance(error, GradingFailure):
            return error.message
        # A bug in the grader, not the student's: log it for the instructor, tell the student little.
        traceback.print_exception(error, file=sys.stderr)
        return t("採点プログラムの内部エラーです（{error}）。担当教員に知らせてください",
                 "internal grader error ({error}); please tell the instructor", error=type(error).__name__)


def grade(notebook_path: Path, sandbox: SandboxConfig, workdir: Path, select: str | None = None) -> dict[str, Any]:
    """Run the graders on one notebook; return the outcome of every check."""
    runtimes = {role: prepare_runtime(workdir / f"runtime-{role}", role,
                                      hide=config.forbidden_modules() if role == "functions" else ())
                for role in ROLES}
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
            context.worker(role).prestart()
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
    import torch

    torch.set_num_threads(1)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="autograder-") as workdir:
        data = args.train_data or prepare_training_data(training_data_cache(), config.datasets())
        sandbox = SandboxConfig(mode=args.sandbox, device=args.device, memory_gb=args.memory_gb, data=data.resolve())
        try:
            result = grade(args.notebook, sandbox, Path(workdir), args.select)
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
