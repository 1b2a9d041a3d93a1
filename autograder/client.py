"""The trusted side's handle on one student's sandboxed worker.

:class:`Worker` starts the worker (see :mod:`autograder.sandbox`), sends it the student's
definitions, and forwards probe requests with a deadline each. It turns every way the student's
code can fail into a :class:`~autograder.failures.GradingFailure` whose text is the feedback:

* the code raised → :class:`StudentError` (type, message and the student's cell and line);
* no answer in time → :class:`CheckTimeout`; the worker is killed and restarted for the next check;
* the process died → :class:`WorkerCrashed`; restarted for the next check.

If loading the definitions itself kills or hangs the worker, every later request fails at once
with that reason instead of restarting again and again.
"""
from __future__ import annotations

import os
import select
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from autograder.failures import CheckTimeout, StudentError, WorkerCrashed
from autograder.sandbox import SandboxConfig, start_worker
from autograder.sandboxed.protocol import ProtocolError, receive, send


class _DeadlineReader:
    """A file-like reader over a pipe that raises TimeoutError once ``deadline`` has passed."""

    def __init__(self, fd: int, deadline: float) -> None:
        self.fd, self.deadline = fd, deadline

    def read(self, size: int) -> bytes:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0 or not select.select([self.fd], [], [], remaining)[0]:
            raise TimeoutError
        return os.read(self.fd, min(size, 1 << 20))


class Worker:
    """One student's definitions, loaded in a sandboxed process."""

    def __init__(self, cells: list[tuple[int, str]], runtime: Path, config: SandboxConfig, log_path: Path,
                 load_timeout: float = 60.0) -> None:
        self.cells, self.runtime, self.config, self.log_path = cells, runtime, config, log_path
        self.load_timeout = load_timeout
        self.process: subprocess.Popen | None = None
        self.loaded: dict[str, Any] | None = None
        self.broken: str | None = None  # set when loading the definitions itself failed
        self.starts = 0

    # -- process management -------------------------------------------------------------------
    def _start(self) -> None:
        self.starts += 1
        self.process = start_worker(self.runtime, self.config, self.log_path)
        try:
            self.loaded = self._exchange({"op": "load", "cells": [list(c) for c in self.cells]},
                                         self.load_timeout, "loading the notebook's definitions")
        except CheckTimeout:
            self.broken = (f"loading the notebook's definitions took over {self.load_timeout:.0f} s "
                           "(code at the top level of a class or a default argument that never ends?)")
            raise WorkerCrashed(self.broken) from None
        except (WorkerCrashed, StudentError) as error:
            self.broken = f"loading the notebook's definitions failed: {error}"
            raise WorkerCrashed(self.broken) from None

    def close(self) -> None:
        """Kill the worker and its process group."""
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            if stream:
                stream.close()
        self.process = None

    def __enter__(self) -> "Worker":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _log_tail(self) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return lines[-1][:200] if lines else ""

    def _crash_message(self, during: str) -> str:
        code = self.process.wait() if self.process else None
        reason = f"exit code {code}"
        if code is not None and code < 0:
            reason = f"killed by {signal.Signals(-code).name}"
            if -code == signal.SIGKILL:
                reason += " (out of memory?)"
        tail = self._log_tail()
        return f"the worker process died while {during} ({reason})" + (f"; last output: {tail}" if tail else "")

    # -- requests ---------------------------------------------------------------------------
    def _exchange(self, message: dict, timeout: float, during: str) -> Any:
        assert self.process is not None and self.process.stdin and self.process.stdout
        try:
            send(self.process.stdin, message)
            answer = receive(_DeadlineReader(self.process.stdout.fileno(), time.monotonic() + timeout))
        except TimeoutError:
            self.close()
            raise CheckTimeout(f"no answer within {timeout:g} s while {during} (an endless loop?)") from None
        except (ProtocolError, BrokenPipeError, OSError) as error:
            try:  # end of stream: bwrap reports the worker's exit a moment after the pipe closes
                self.process.wait(timeout=2)
            except subprocess.TimeoutExpired:  # alive but talking nonsense: kill it
                self.close()
                raise WorkerCrashed(f"the worker sent an invalid answer while {during} ({error})") from None
            message_text = self._crash_message(during)
            self.close()
            raise WorkerCrashed(message_text) from None
        if not answer.get("ok"):
            raise StudentError(str(message.get("args", {}).get("name", "the code")), str(answer.get("error")),
                               str(answer.get("message", "")), str(answer.get("where", "")))
        return answer.get("value")

    def request(self, op: str, timeout: float = 30.0, **args: Any) -> Any:
        """Run probe ``op`` with ``args`` in the worker and return its plain-data answer."""
        if self.broken:
            raise WorkerCrashed(self.broken)
        if self.process is None or self.process.poll() is not None:
            self.close()
            self._start()
        name = args.get("name", op)
        return self._exchange({"op": op, "args": args}, timeout, f"running {name}")
