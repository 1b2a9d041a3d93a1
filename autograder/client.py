"""The trusted side's handle on one student's sandboxed worker.

:class:`Worker` starts the worker (see :mod:`autograder.sandbox`), sends it the student's
definitions, and forwards probe requests with a deadline each. It turns every way the student's
code can fail into a :class:`~autograder.failures.GradingFailure` whose text is the feedback:

* the code raised → :class:`StudentError` (type, message and the student's cell and line);
* no answer in time → :class:`CheckTimeout`; the worker is killed and restarted for the next check;
* the process died → :class:`WorkerCrashed` (saying so when its memory or process limit was hit);
  restarted for the next check;
* it answered something that is not a valid message → :class:`WorkerCrashed`; restarted.

Every failure's message is bilingual (:mod:`autograder.i18n`); every piece of text in it that the
student's code controls goes through the submission's
:class:`~autograder.failures.StudentText` budget. Answers are decoded under the request's deadline,
with the protocol's caps on size, so a hostile worker costs only the check it answers.

If loading the definitions itself kills or hangs the worker, every later request fails at once
with that reason instead of restarting again and again.
"""
from __future__ import annotations

import os
import select
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from autograder.failures import CheckTimeout, StudentError, StudentText, WorkerCrashed
from autograder.i18n import Message, as_message, t
from autograder.limits import WorkerGroup
from autograder.sandbox import SandboxConfig, start_worker
from autograder.sandboxed.protocol import ProtocolError, receive
from autograder.sandboxed.protocol import send as send_message

TYPE_NAME_CHARS = 40
LOADING = t("ノートブックの定義の読み込み", "loading the notebook's definitions")  # what the worker was doing


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

    def __init__(self, cells: list[tuple[str, str]], runtime: Path, config: SandboxConfig, log_path: Path,
                 load_timeout: float = 60.0, text: StudentText | None = None) -> None:
        self.cells, self.runtime, self.config, self.log_path = cells, runtime, config, log_path
        self.load_timeout = load_timeout
        self.text = text if text is not None else StudentText()
        self.process: subprocess.Popen | None = None
        self.group: WorkerGroup | None = None
        self.loaded: dict[str, Any] | None = None
        self._broken: Message | None = None  # set when loading the definitions itself failed
        self.starts = 0
        self._load_deadline: float | None = None  # set while the load request is sent but not yet answered
        self._lock = threading.RLock()  # one request at a time (the training plan sends from other threads)

    @property
    def broken(self) -> str | None:
        """Why every request fails at once (loading the definitions failed), in English; None while usable."""
        return self._broken.en if self._broken else None

    @broken.setter
    def broken(self, reason: Message | str | None) -> None:
        self._broken = as_message(reason) if reason else None

    # -- process management -------------------------------------------------------------------
    def prestart(self) -> None:
        """Start the process and send it the definitions without waiting for the answer, so that its
        start-up (imports, definitions) overlaps other work; the next request collects the answer."""
        if self.process is None and not self.broken:
            self.starts += 1
            self.process, self.group = start_worker(self.runtime, self.config, self.log_path)
            self._load_deadline = time.monotonic() + self.load_timeout
            self._exchange(self._load_message(), self._load_deadline, LOADING, answer=False)

    def _load_message(self) -> dict:
        return {"op": "load", "cells": [list(c) for c in self.cells]}

    def _start(self) -> None:
        if self.process is None:
            self.prestart()
        deadline, self._load_deadline = self._load_deadline, None
        try:
            self.loaded = self._exchange(self._load_message(), deadline, LOADING, send=False)
        except CheckTimeout:
            self._broken = t("ノートブックの定義の読み込みに {seconds:.0f} 秒以上かかりました（クラス定義の直下のコードや"
                             "引数の既定値が終わらないのではありませんか？）",
                             "loading the notebook's definitions took over {seconds:.0f} s "
                             "(code at the top level of a class or a default argument that never ends?)",
                             seconds=self.load_timeout)
            raise WorkerCrashed(self._broken) from None
        except (WorkerCrashed, StudentError) as error:
            self._broken = t("ノートブックの定義の読み込みに失敗しました：{error}",
                             "loading the notebook's definitions failed: {error}", error=error.message)
            raise WorkerCrashed(self._broken) from None

    def close(self) -> None:
        """Kill the worker, everything it started, and remove its resource group."""
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if self.group is not None:
            self.group.remove()
            self.group = None
        self._load_deadline = None
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

    def _crash_message(self, during: Message) -> Message:
        code = self.process.wait() if self.process else None
        reason = t("終了コード {code}", "exit code {code}", code=code)
        if code is not None and code < 0:
            reason = t("{signal} により強制終了", "killed by {signal}", signal=signal.Signals(-code).name)
            if -code == signal.SIGKILL:
                reason = t("{reason}。メモリ不足かもしれません", "{reason} (out of memory?)", reason=reason)
        if self.group is not None and self.group.oom_killed():
            reason = t("メモリの上限 {gb:g} GB を超えたため強制終了", "killed for using more than its {gb:g} GB of memory",
                       gb=self.config.memory_gb)
        elif code is not None and code < 0 and self.group is not None and self.group.pids_limited():
            reason = t("{reason}。{limit} 個を超えるプロセスまたはスレッドを起動しようとしました",
                       "{reason}; it tried to start more than {limit} processes or threads",
                       reason=reason, limit=self.config.max_pids)
        tail = self._log_tail()
        text = t("{during}中にワーカープロセスが終了しました（{reason}）", "the worker process died while {during} ({reason})",
                 during=during, reason=reason)
        return t("{text}。最後の出力: {tail}", "{text}; last output: {tail}", text=text,
                 tail=self.text.take(tail)) if tail else text

    # -- requests ---------------------------------------------------------------------------
    def _exchange(self, message: dict, deadline: float, during: Message, *, send: bool = True,
                  answer: bool = True) -> Any:
        """Send ``message`` and/or read its answer before ``deadline`` (time.monotonic())."""
        allowed = self.load_timeout if message.get("op") == "load" else deadline - time.monotonic()
        assert self.process is not None and self.process.stdin and self.process.stdout
        try:
            if send:
                send_message(self.process.stdin, message)
            if not answer:
                return None
            reply = receive(_DeadlineReader(self.process.stdout.fileno(), deadline))
            if time.monotonic() > deadline:  # decoding is bounded by the protocol's caps; still, no free time
                raise TimeoutError
        except TimeoutError:
            self.close()
            raise CheckTimeout(t("{during}中、{seconds:.3g} 秒以内に応答がありませんでした（無限ループになっていませんか？）",
                                 "no answer within {seconds:.3g} s while {during} (an endless loop?)",
                                 seconds=allowed, during=during)) from None
        except (TypeError, ValueError) as error:  # the request itself is over the protocol's caps
            self.close()
            raise WorkerCrashed(t("採点側が{during}の要求を送れませんでした（{error}）",
                                  "the grader could not send the request for {during} ({error})",
                                  during=during, error=error)) from None
        except (ProtocolError, BrokenPipeError, OSError) as error:
            try:  # end of stream: bwrap reports the worker's exit a moment after the pipe closes
                self.process.wait(timeout=2)
            except subprocess.TimeoutExpired:  # alive but talking nonsense: kill it
                self.close()
                raise WorkerCrashed(t("{during}中にワーカーが不正な応答を返しました（{error}）",
                                      "the worker sent an invalid answer while {during} ({error})",
                                      during=during, error=error)) from None
            message_text = self._crash_message(during)
            self.close()
            raise WorkerCrashed(message_text) from None
        if not isinstance(reply, dict) or "ok" not in reply:
            self.close()
            raise WorkerCrashed(t("{during}中にワーカーが不正な応答を返しました",
                                  "the worker sent an invalid answer while {during}", during=during))
        if not reply.get("ok"):
            name = message.get("args", {}).get("name")
            raise StudentError(t("コード", "the code") if name is None else name,
                               self.text.take(str(reply.get("error"))[:TYPE_NAME_CHARS]),
                               self.text.take(reply.get("message", "")), self.text.take(reply.get("where", "")))
        return _clip_type_names(reply.get("value"))

    def failed_cells(self) -> list[list[str]]:
        """The cells whose definitions raised while loading: [label, reason] (reason budgeted)."""
        failed = (self.loaded or {}).get("failed", [])
        if not isinstance(failed, list):
            return []
        return [[self.text.take(str(item[0])[:TYPE_NAME_CHARS]), self.text.take(item[1])]
                for item in failed[:50] if isinstance(item, list) and len(item) == 2]

    def request(self, op: str, timeout: float = 30.0, **args: Any) -> Any:
        """Run probe ``op`` with ``args`` in the worker and return its plain-data answer (thread-safe)."""
        with self._lock:
            return self._request(op, timeout, args)

    def _request(self, op: str, timeout: float, args: dict[str, Any]) -> Any:
        if self._broken:
            raise WorkerCrashed(self._broken)
        if self._load_deadline is None and (self.process is None or self.process.poll() is not None):
            self.close()
            self._start()
        elif self._load_deadline is not None:  # prestarted: collect the load answer first
            self._start()
        running = t("{name} の実行", "running {name}", name=args.get("name", op))
        return self._exchange({"op": op, "args": args}, time.monotonic() + timeout, running)


def _clip_type_names(value: Any) -> Any:
    """Clip the ``type`` names in a worker's value descriptions: graders quote them in feedback."""
    if isinstance(value, dict):
        return {key: (item[:TYPE_NAME_CHARS] if key == "type" and isinstance(item, str) else _clip_type_names(item))
                for key, item in value.items()}
    if isinstance(value, list):
        return [_clip_type_names(item) for item in value]
    return value
