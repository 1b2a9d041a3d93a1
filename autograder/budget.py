"""What a submission's student code may spend, counted in its workers' own CPU-seconds.

Every request to a worker has a CPU budget: the CPU-seconds its process tree may use before the answer
(:data:`CHECK_CPU_S` for a probe, questions.toml's ``cpu_s`` for a training). CPU time, not wall time, so
that a machine running ten other jobs slows a worker without costing it a point: this is how contest
graders stay fair on shared judges (IOI's ``isolate`` limits CPU time, and wall time separately and
more loosely). Two wall-clock limits remain for code that waits instead of computing:

* **blocked**: a worker that used less than :data:`IDLE_CPU_S` in :data:`IDLE_WINDOW_S` of waiting, counting the
  time it was runnable but kept off the CPU by other processes (the kernel's run-queue time) as used, is
  stopped at once (a sleep, input, a lock), however much budget is left: a starved worker is not blocked;
* **backstop**: no request waits longer than :func:`backstop_s`: :data:`WALL_FACTOR` times its CPU budget,
  and at least :data:`MIN_BACKSTOP_S`, which a busy machine does not reach (a looping worker on this 2-core
  machine, beside three busy processes per core, a disk writer and a grading, got 3 CPU-seconds in 15.5 s).

Priorities change the order, never a budget: a submission's trainings run at once, one per worker, and the
worker with the longest of them keeps the normal priority while the others run at :data:`BEHIND_NICENESS`, so on
two cores the longest training is not slowed by the shorter ones (it is what a grading waits for).

The whole submission has one account, :class:`CpuAccount`: its workers together may use
:data:`SUBMISSION_FACTOR` times what the reference solution's workers use (``reference_cpu_s``, measured by
``make calibrate``). A notebook that loops everywhere is stopped there, with a message that costs only that
submission. The factor is 4, not 2, so that one bug never reaches it, even on a busy machine: an endless
``ConvAutoEncoder`` training runs to its whole ``cpu_s``, and an endless function costs two probes
(2 × :data:`CHECK_CPU_S`), on top of the rest (about 3.3 times the reference's 39.5 CPU-seconds, and CPU time
grows by up to half under load).

The account also counts idle time: the submission's workers may wait :data:`IDLE_ACCOUNT_S` in all while the grader
waits for an answer without running and without waiting for a CPU (the kernel's run-queue time; only where the
kernel reports it). Correct code computes while it is waited for (the reference: under a second in all); a
notebook that sleeps a little in every call, to stay above the blocked window's rule, is stopped there.
"""
from __future__ import annotations

import threading

from autograder.i18n import Message, t

CHECK_CPU_S = 15.0  # a probe's CPU budget (the reference's take well under a second; naive Python loops a few)
WALL_FACTOR = 10.0  # a request's wall-clock backstop, in multiples of its CPU budget ...
MIN_BACKSTOP_S = 60.0  # ... and at least this many seconds
IDLE_WINDOW_S = 20.0  # the window in which a waiting worker must use at least ...
IDLE_CPU_S = 1.0  # ... this many CPU-seconds (5 % of a core), or it is blocked, not slow
ARRIVING_GRACE_S = 10.0  # an answer that is arriving when a limit passes is read for at most this much longer
POLL_S = 1.0  # how often a waiting worker's CPU use is read
SUBMISSION_FACTOR = 4.0  # a submission's workers may use this many times the reference's CPU-seconds
IDLE_ACCOUNT_S = 60.0  # a submission's workers may wait this long in all without computing (see below)
BEHIND_NICENESS = 5  # the workers without the submission's longest training run at this niceness (see below)


def backstop_s(cpu_s: float) -> float:
    """The longest a request with a budget of ``cpu_s`` CPU-seconds is waited for, in wall-clock seconds."""
    return max(WALL_FACTOR * cpu_s, MIN_BACKSTOP_S)


class CpuAccount:
    """The CPU-seconds one submission's workers may still use, and the seconds they may still wait without
    computing (thread-safe: the trainings run in threads)."""

    def __init__(self, total: float, idle_total: float = float("inf")) -> None:
        self.total, self.spent = total, 0.0
        self.idle_total, self.idle = idle_total, 0.0
        self._lock = threading.Lock()

    def charge(self, seconds: float, idle: float = 0.0) -> None:
        with self._lock:
            self.spent += max(seconds, 0.0)
            self.idle += max(idle, 0.0)

    def remaining(self) -> float:
        with self._lock:
            return self.total - self.spent

    def idle_remaining(self) -> float:
        with self._lock:
            return self.idle_total - self.idle

    def idle_message(self) -> Message:
        """Why a request was not run, or was stopped, once the workers have waited too long without computing."""
        return t("このノートブックのワーカーは計算せずに合計 {idle:.0f} 秒待ちました（sleep、ロック、入力待ちなど）。"
                 "残りのチェックは実行していません",
                 "this notebook's workers waited {idle:.0f} s in all without computing (sleeps, locks or input?); "
                 "the remaining checks were not run", idle=self.idle_total)

    def spent_message(self) -> Message:
        """Why a request was not run, or was stopped, once the account is empty."""
        return t("このノートブックは採点用の CPU 時間 {total:.0f} 秒（模範解答の {factor:g} 倍）を使い切りました。"
                 "残りのチェックは実行していません（時間のかかりすぎる処理や無限ループはありませんか？）",
                 "this notebook has used up its {total:.0f} CPU-seconds of grading ({factor:g} times the reference "
                 "solution's); the remaining checks were not run (slow code or an endless loop?)",
                 total=self.total, factor=SUBMISSION_FACTOR)
