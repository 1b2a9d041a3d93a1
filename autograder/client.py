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
from typing import Any, Callable

from autograder.budget import ARRIVING_GRACE_S, CHECK_CPU_S, IDLE_CPU_S, IDLE_WINDOW_S, POLL_S, CpuAccount, backstop_s
from autograder.failures import CheckBlocked, CheckTimeout, StudentError, StudentText, WorkerCrashed
from autograder.i18n import Message, as_message, t
from autograder.limits import WorkerGroup, lower_priority, process_tree_cpu_seconds, process_tree_queued_seconds
from autograder.sandbox import Runtime, SandboxConfig, start_worker
from autograder.sandboxed.protocol import ProtocolError, receive
from autograder.sandboxed.protocol import send as send_message

TYPE_NAME_CHARS = 40
LOADING = t("ノートブックの定義の読み込み", "loading the notebook's definitions")  # what the worker was doing


class _Stopped(TimeoutError):
    """A limit of :mod:`autograder.budget` passed while the grader waited for an answer."""

    def __init__(self, waited: float, used: float, limit: float) -> None:
        super().__init__()
        self.waited, self.used, self.limit = waited, used, limit


class Blocked(_Stopped):
    """The worker used almost no CPU for :data:`~autograder.budget.IDLE_WINDOW_S`: a sleep, a lock, or input."""


class Backstop(_Stopped):
    """The wall-clock backstop passed (:func:`~autograder.budget.backstop_s` of the CPU budget)."""


class OverBudget(_Stopped):
    """The request used its CPU budget."""


class AccountSpent(_Stopped):
    """The submission's :class:`~autograder.budget.CpuAccount` is empty."""


class IdleSpent(_Stopped):
    """The submission's workers have waited :data:`~autograder.budget.IDLE_ACCOUNT_S` without computing."""


class _BudgetReader:
    """A file-like reader over a worker's answer pipe that stops waiting when a limit of :mod:`autograder.budget`
    passes: the request's CPU budget (``limit``; the worker's CPU-seconds come from ``cpu``, counted from
    ``started``), the submission's account (``account_left``), the blocked window, and the wall-clock backstop.
    A busy machine slows a computing worker but never stops it, so it reaches none of them: in the blocked
    window a second that the worker spent runnable but waiting for a CPU (``queued``: the run queue) counts as a
    second it wanted the CPU, like one it used.

    An answer that has begun to arrive when a limit passes is still read, for at most
    :data:`~autograder.budget.ARRIVING_GRACE_S` more: the worker finished in time and is writing.

    A worker that writes its answer a byte at a time would otherwise wake this process once per byte (1.4 CPU-s
    for 2 MB, measured): after a read that returned less than was asked and under :data:`TRICKLE_BYTES`, the next
    read first waits :data:`TRICKLE_PAUSE_S`, so a trickle costs at most about a thousand reads a second.
    """

    def __init__(self, fd: int, cpu: Callable[[], float], started: float, limit: float,
                 account_left: float = float("inf"), queued: Callable[[], float] = lambda: 0.0,
                 idle_left: float = float("inf")) -> None:
        self.fd, self.cpu, self.started, self.queued = fd, cpu, started, queued
        self.limit, self.account_left, self.idle_left = limit, account_left, idle_left
        self.began = time.monotonic()
        self.wall_deadline = self.began + backstop_s(limit)
        self.window_at, self.window_wanted = self.began, queued()
        self.idle, self.idle_at, self.idle_wanted = 0.0, self.began, self.window_wanted
        self.checked_at, self.received, self.trickling = self.began, 0, False
        self.stop: tuple[float, _Stopped] | None = None
        self.seen = 0.0

    def used(self) -> float:
        """CPU-seconds the worker used since ``started`` (the most seen: a worker that died reads as 0 once reaped)."""
        self.seen = max(self.seen, self.cpu() - self.started)
        return self.seen

    def _over(self, now: float, waiting: bool) -> _Stopped | None:
        used = self.used()
        wanted = used + self.queued()  # seconds it ran or was runnable, waiting for a CPU
        if waiting:  # no answer in the pipe: what of this interval the worker neither ran nor wanted to is idle
            self.idle += max(0.0, (now - self.idle_at) - (wanted - self.idle_wanted))
        self.idle_at, self.idle_wanted = now, wanted
        stopped = (now - self.began, used, self.limit)
        if used > self.account_left:
            return AccountSpent(*stopped)
        if self.idle > self.idle_left:
            return IdleSpent(*stopped)
        if used > self.limit:
            return OverBudget(*stopped)
        if now >= self.wall_deadline:
            return Backstop(*stopped)
        if now - self.window_at >= IDLE_WINDOW_S:
            if wanted - self.window_wanted < IDLE_CPU_S:
                return Blocked(*stopped)
            self.window_at, self.window_wanted = now, wanted
        return None

    def read(self, size: int) -> bytes:
        if self.trickling:
            time.sleep(TRICKLE_PAUSE_S)
        while True:
            ready = bool(select.select([self.fd], [], [], 0)[0])
            now = time.monotonic()
            if self.stop is None and (not ready or now - self.checked_at >= POLL_S):
                self.checked_at = now
                over = self._over(now, waiting=not ready)
                self.stop = (now, over) if over else None
            if self.stop is not None and (now - self.stop[0] > ARRIVING_GRACE_S or not (ready or self.received)):
                raise self.stop[1]
            if ready:
                break
            select.select([self.fd], [], [], POLL_S)
        chunk = os.read(self.fd, min(size, 1 << 20))
        self.received += len(chunk)
        self.trickling = len(chunk) < min(size, TRICKLE_BYTES)
        return chunk


TRICKLE_BYTES = 4096  # a read shorter than this (and than asked) means the worker is writing slowly
TRICKLE_PAUSE_S = 0.001  # then let its bytes gather before the next read
MAX_TIMEOUTS = 2  # a function that timed out in this many checks is not run again in this submission


class _Drain:
    """Reads a worker's stderr pipe until it closes, in a thread of its own: the first :data:`LOG_BYTES` go to the
    worker's own log file (for the instructor), the last :data:`TAIL_BYTES` stay here (for crash messages).

    Draining means the worker never blocks on a full pipe, and no file is shared with another worker."""

    def __init__(self, stream: Any, log_path: Path) -> None:
        self.stream, self.log_path, self.tail = stream, log_path, b""
        self.thread = threading.Thread(target=self._run, name=f"drain-{log_path.stem}", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        written = 0
        with open(self.log_path, "ab") as log:
            while chunk := os.read(self.stream.fileno(), 1 << 16):
                if written < LOG_BYTES:
                    log.write(chunk[: LOG_BYTES - written])
                    log.flush()
                    written += len(chunk)
                self.tail = (self.tail + chunk)[-TAIL_BYTES:]

    def finish(self, timeout: float = 2.0) -> str:
        """What the worker wrote last, once its pipe has closed (or ``timeout`` has passed)."""
        self.thread.join(timeout)
        return self.tail.decode(errors="replace")


LOG_BYTES = 1 << 20  # of a worker's output kept in its log file
# Requests that hand the encoder worker held-out images: from the first on, nothing its code says (an exception's
# message, its printed output) is quoted back to the student, only the exception's type and the student's line, so
# that no test image leaves that way.
HELD_OUT_OPS = ("encode",)
TAIL_BYTES = 4096  # kept in memory for the crash message


class Worker:
    """One student's definitions, loaded in a sandboxed process of one role (see ``sandbox.ROLE_FILES``)."""

    def __init__(self, cells: list[tuple[str, str]], runtime: Runtime, config: SandboxConfig, log_path: Path,
                 load_cpu_s: float = 60.0, text: StudentText | None = None,
                 account: CpuAccount | None = None) -> None:
        self.cells, self.runtime, self.config, self.log_path = cells, runtime, config, log_path
        self.silenced = False  # set by the first request that carries held-out images (HELD_OUT_OPS)
        self.timeouts: dict[str, int] = {}  # function name -> checks it timed out in
        self.load_cpu_s = load_cpu_s
        self.account = account if account is not None else CpuAccount(float("inf"))
        self.cpu_by_request: dict[str, float] = {}  # "op:name" -> CPU-seconds its requests used (for the log)
        self.text = text if text is not None else StudentText()
        self.process: subprocess.Popen | None = None
        self.group: WorkerGroup | None = None
        self._drain: _Drain | None = None
        self.loaded: dict[str, Any] | None = None
        self._broken: Message | None = None  # set when loading the definitions itself failed
        self.starts = 0
        self.niceness = 0  # set by run_behind: how far this worker yields the CPU to the others
        self._load_pending = False  # the load request is sent but its answer not yet read
        self._lock = threading.RLock()  # one request at a time (the training plan sends from other threads)

    @property
    def broken(self) -> str | None:
        """Why every request fails at once (loading the definitions failed), in English; None while usable."""
        return self._broken.en if self._broken else None

    @broken.setter
    def broken(self, reason: Message | str | None) -> None:
        self._broken = as_message(reason) if reason else None

    # -- process management -------------------------------------------------------------------
    def prestart(self, started: tuple[subprocess.Popen, WorkerGroup] | None = None) -> None:
        """Start the process (or take ``started``, one that :func:`autograder.sandbox.start_worker` started for this
        worker's runtime) and send it the definitions without waiting for the answer, so that its start-up
        (imports, definitions) overlaps other work; the next request collects the answer."""
        if self.process is None and not self.broken:
            self.starts += 1
            self.process, self.group = started or start_worker(self.runtime, self.config)
            if self.niceness:
                lower_priority(self.process.pid, self.niceness)
            self._drain = _Drain(self.process.stderr, self.log_path)
            self._load_pending = True
            self._exchange(self._load_message(), self.load_cpu_s, LOADING, answer=False)

    def run_behind(self, niceness: int) -> None:
        """Let this worker yield the CPU to the submission's others when the CPUs are busy (its CPU budgets are
        unchanged; the training plan lets the longest training run first: budget.py's ``BEHIND_NICENESS``)."""
        self.niceness = niceness
        if self.process is not None:
            lower_priority(self.process.pid, niceness)

    def _load_message(self) -> dict:
        return {"op": "load", "cells": [list(c) for c in self.cells]}

    def _start(self) -> None:
        if self.process is None:
            self.prestart()
        # loading is limited in the worker's own CPU-seconds from its start (a prestarted worker's included), and
        # the wall-clock limits start when the grader starts waiting: time the trusted side spent on other work
        # meanwhile is not the notebook's
        self._load_pending = False
        try:
            self.loaded = self._exchange(self._load_message(), self.load_cpu_s, LOADING, send=False)
        except CheckTimeout as error:  # its message says which limit (CPU, blocked, the submission's account)
            self._broken = error.message
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
        self._load_pending = False
        self.process.wait()
        if self._drain is not None:
            self._drain.finish()
            self._drain = None
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            if stream:
                stream.close()
        self.process = None

    def __enter__(self) -> "Worker":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _log_tail(self) -> str:
        lines = self._drain.finish().strip().splitlines() if self._drain is not None else []
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
        tail = "" if self.silenced else self._log_tail()
        text = t("{during}中にワーカープロセスが終了しました（{reason}）", "the worker process died while {during} ({reason})",
                 during=during, reason=reason)
        return t("{text}。最後の出力: {tail}", "{text}; last output: {tail}", text=text,
                 tail=self.text.take(tail)) if tail else text

    # -- requests ---------------------------------------------------------------------------
    def _exchange(self, message: dict, cpu_s: float, during: Message, *, send: bool = True,
                  answer: bool = True) -> Any:
        """Send ``message`` and/or read its answer within ``cpu_s`` of the worker's CPU-seconds (a load's are
        counted from the worker's start) and the other limits of :mod:`autograder.budget`; the CPU it used is
        charged to the submission's account."""
        assert self.process is not None and self.process.stdin and self.process.stdout
        loading = message.get("op") == "load"
        try:
            if send:
                send_message(self.process.stdin, message)
            if not answer:
                return None
            reader = _BudgetReader(self.process.stdout.fileno(), self._cpu_seconds,
                                   0.0 if loading else self._cpu_seconds(), cpu_s, self.account.remaining(),
                                   self._queued_seconds, self.account.idle_remaining())
            try:
                reply = receive(reader)
            finally:
                used = reader.used()
                self.account.charge(used, idle=reader.idle)
                key = f"{message.get('op')}:{message.get('args', {}).get('name', '')}"
                self.cpu_by_request[key] = round(self.cpu_by_request.get(key, 0.0) + used, 2)
        except _Stopped as stopped:
            self.close()
            self._count_timeout(message)
            raise self._stopped_failure(stopped, during, loading) from None
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
            said = "" if self.silenced else self.text.take(reply.get("message", ""))
            raise StudentError(t("コード", "the code") if name is None else name,
                               self.text.take(str(reply.get("error"))[:TYPE_NAME_CHARS]),
                               said, self.text.take(reply.get("where", "")))
        return _clip_type_names(reply.get("value"))

    def _stopped_failure(self, stopped: _Stopped, during: Message, loading: bool) -> CheckTimeout:
        """The feedback for a request stopped by a limit: each limit names its likely cause."""
        if isinstance(stopped, AccountSpent):
            return CheckTimeout(self.account.spent_message())
        if isinstance(stopped, IdleSpent):
            return CheckTimeout(self.account.idle_message())
        if isinstance(stopped, OverBudget) and loading:
            return CheckTimeout(t("ノートブックの定義の読み込みに CPU 時間で {seconds:.0f} 秒以上かかりました（クラス定義の直下の"
                                  "コードや引数の既定値が終わらないのではありませんか？）",
                                  "loading the notebook's definitions took over {seconds:.0f} CPU-seconds "
                                  "(code at the top level of a class or a default argument that never ends?)",
                                  seconds=stopped.limit))
        if isinstance(stopped, OverBudget):
            return CheckTimeout(t("{during}中、CPU 時間で {seconds:.3g} 秒以内に応答がありませんでした（無限ループになって"
                                  "いませんか？）",
                                  "no answer within {seconds:.3g} CPU-seconds while {during} (an endless loop?)",
                                  seconds=stopped.limit, during=during))
        return CheckBlocked(t("{during}中、{waited:.0f} 秒待ちましたが、その間に CPU を {used:.1f} 秒しか使っていません"
                              "（入力待ち、sleep、ロックの待ち合わせではありませんか？）",
                              "waited {waited:.0f} s while {during}, in which the code used only {used:.1f} "
                              "CPU-seconds: blocked on input, a sleep or a lock?",
                              waited=stopped.waited, used=stopped.used, during=during))

    def failed_cells(self) -> list[list[str]]:
        """The cells whose definitions raised while loading: [label, reason] (reason budgeted)."""
        failed = (self.loaded or {}).get("failed", [])
        if not isinstance(failed, list):
            return []
        return [[self.text.take(str(item[0])[:TYPE_NAME_CHARS]), self.text.take(item[1])]
                for item in failed[:50] if isinstance(item, list) and len(item) == 2]

    def request(self, op: str, cpu_s: float = CHECK_CPU_S, **args: Any) -> Any:
        """Run probe ``op`` with ``args`` in the worker, within ``cpu_s`` of its CPU-seconds, and return its
        plain-data answer (thread-safe)."""
        with self._lock:
            return self._request(op, cpu_s, args)

    def _cpu_seconds(self) -> float:
        """The worker's CPU seconds so far (0 once it is gone)."""
        return process_tree_cpu_seconds(self.process.pid) if self.process is not None else 0.0

    def _queued_seconds(self) -> float:
        """Seconds the worker's threads have waited for a CPU so far (0 once it is gone)."""
        return process_tree_queued_seconds(self.process.pid) if self.process is not None else 0.0

    def _count_timeout(self, message: dict) -> None:
        name = message.get("args", {}).get("name")
        if name is not None:
            self.timeouts[name] = self.timeouts.get(name, 0) + 1

    def _request(self, op: str, cpu_s: float, args: dict[str, Any]) -> Any:
        if self._broken:
            raise WorkerCrashed(self._broken)
        if self.account.remaining() <= 0:
            raise CheckTimeout(self.account.spent_message())
        if self.account.idle_remaining() <= 0:
            raise CheckTimeout(self.account.idle_message())
        name = args.get("name")
        if self.timeouts.get(name, 0) >= MAX_TIMEOUTS:  # an endless function costs two deadlines, not one a check
            raise CheckTimeout(t("{name} は前のチェックで {count} 回、時間内に終わりませんでした。残りのチェックでは"
                                 "実行しません",
                                 "{name} did not finish in time in {count} earlier checks; it is not run again",
                                 name=name, count=self.timeouts[name]))
        if not self._load_pending and (self.process is None or self.process.poll() is not None):
            self.close()
            self._start()
        elif self._load_pending:  # prestarted: collect the load answer first
            self._start()
        self.silenced = self.silenced or (op in HELD_OUT_OPS and self.runtime.role == "encoder")
        running = t("{name} の実行", "running {name}", name=args.get("name", op))
        return self._exchange({"op": op, "args": args}, cpu_s, running)


MAX_DIMS = 8  # a described tensor's shape: at most this many dimensions, each under 2**31


def _clip_type_names(value: Any) -> Any:
    """Clip what graders quote of a worker's value descriptions: the ``type``, ``dtype`` and ``device`` names to
    :data:`TYPE_NAME_CHARS`, and a ``shape`` that is not a short list of small integers to ``["?"]`` (a blind
    attacker carried held-out pixels out in a forged shape's numbers)."""
    if isinstance(value, dict):
        return {key: _clip_field(key, item) for key, item in value.items()}
    if isinstance(value, list):
        return [_clip_type_names(item) for item in value]
    return value


def _clip_field(key: str, item: Any) -> Any:
    if key in ("type", "dtype", "device") and isinstance(item, str):
        return item[:TYPE_NAME_CHARS]
    if key == "shape" and isinstance(item, list):
        plain = len(item) <= MAX_DIMS and all(type(n) is int and 0 <= n < 2**31 for n in item)
        return item if plain else ["?"]
    return _clip_type_names(item)
