"""Fair under load: the same notebook gets the same grade however busy the machine or the grader is.

Student code is limited by the CPU-seconds its worker uses (autograder/budget.py), not by wall time:

* ``test_an_answer_in_the_pipe_is_read_after_a_limit``: a limit that passes while the answer is already in
  the pipe does not lose it (no worker; a pipe and a fake CPU clock);
* ``test_a_slow_trusted_side_costs_a_prestarted_worker_nothing``: the grader is busy elsewhere for longer than
  the load's wall-clock backstop while a worker is prestarted; the reference's functions still answer right;
* ``test_under_load``: with three busy processes per core, a disk writer and a grading of the reference running,
  a correct function that needs most of its CPU budget finishes, an endless loop costs its CPU budget and is
  named, a sleep is stopped as blocked, the worker works again afterwards, and the reference scores 100;
* ``test_submission_account``: a submission's workers together stop at the account's CPU-seconds, with the
  message that names it, and nothing more runs;
* ``test_budgets_follow_the_reference_cpu_time``: the training budgets and the account against the calibration.
"""
from __future__ import annotations

import contextlib
import csv
import io
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest
import torch

from autograder import client, config
from autograder.budget import CHECK_CPU_S, IDLE_WINDOW_S, POLL_S, SUBMISSION_FACTOR, CpuAccount, backstop_s
from autograder.client import OverBudget, Worker, _BudgetReader
from autograder.extract import extract_notebook
from autograder.failures import CheckBlocked, CheckTimeout
from autograder.limits import QUEUE_KNOWN
from autograder.sandbox import SandboxConfig, bwrap_unavailable, prepare_runtime
from autograder.sandboxed import protocol

REPO_ROOT = Path(__file__).resolve().parent.parent
REFERENCE = REPO_ROOT / "examples" / "submitted" / "reference"  # run, with its figures
BWRAP_REASON = bwrap_unavailable()
needs_bwrap = pytest.mark.skipif(BWRAP_REASON is not None, reason=f"bubblewrap unavailable: {BWRAP_REASON}")
BUSY_PER_CORE = 3

CELLS = [("load", '''
import time


def work(n):
    total = 0
    for i in range(n):
        total += i
    return total


def spin():
    while True:
        pass


def nap():
    time.sleep(10**6)


def plus_one(x):
    return x + 1


def sip():
    """Sleeps most of the time but uses a little CPU each second: above the blocked window's rule."""
    while True:
        end = time.process_time() + 0.08
        while time.process_time() < end:
            pass
        time.sleep(0.9)
''')]


@contextlib.contextmanager
def machine_load(folder: Path, per_core: int = BUSY_PER_CORE) -> Iterator[int]:
    """``per_core`` busy processes per core and a disk writer (256 MB files, fsync'd, again and again), stopped
    on exit; yields how many processes it started."""
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"], start_new_session=True)
            for _ in range(per_core * (os.cpu_count() or 1))]
    writer = subprocess.Popen(["sh", "-c", f"while :; do dd if=/dev/zero of={folder}/load bs=1M count=256 "
                                           "conv=fsync status=none; done"], start_new_session=True)
    try:
        time.sleep(1)
        yield len(busy) + 1
    finally:
        for process in [*busy, writer]:
            os.killpg(process.pid, 9)
            process.wait()
        (folder / "load").unlink(missing_ok=True)


def _frame(message: dict) -> bytes:
    buffer = io.BytesIO()
    protocol.send(buffer, message)
    return buffer.getvalue()


def test_an_answer_in_the_pipe_is_read_after_a_limit():
    """The worker's CPU clock is past the budget, but its whole answer is already in the pipe: it is read. With an
    empty pipe the same clock stops the wait at once, as over budget."""
    read_end, write_end = os.pipe()
    os.write(write_end, _frame({"ok": True, "value": 42}))
    os.close(write_end)
    over = _BudgetReader(read_end, lambda: 100.0, 0.0, limit=1.0)
    assert protocol.receive(over) == {"ok": True, "value": 42}
    os.close(read_end)

    read_end, write_end = os.pipe()
    started = time.monotonic()
    with pytest.raises(OverBudget):
        protocol.receive(_BudgetReader(read_end, lambda: 100.0, 0.0, limit=1.0))
    assert time.monotonic() - started < 1.0
    os.close(read_end)
    os.close(write_end)


def test_a_worker_kept_off_the_cpu_is_not_blocked(monkeypatch):
    """The blocked window counts run-queue time as wanted CPU: a worker that used no CPU because other processes
    held both cores is waited for; one that used none and did not wait for a CPU either is blocked."""
    monkeypatch.setattr(client, "IDLE_WINDOW_S", 0.3)
    monkeypatch.setattr(client, "IDLE_CPU_S", 0.1)
    monkeypatch.setattr(client, "POLL_S", 0.05)
    read_end, write_end = os.pipe()
    started = time.monotonic()
    starved = _BudgetReader(read_end, lambda: 0.0, 0.0, limit=100.0, queued=lambda: time.monotonic() - started)
    with pytest.raises(client.Backstop):  # never Blocked: it stops only at the wall-clock backstop, set to 1 s
        starved.wall_deadline = time.monotonic() + 1.0
        protocol.receive(starved)
    assert time.monotonic() - started >= 0.9
    with pytest.raises(client.Blocked):
        protocol.receive(_BudgetReader(read_end, lambda: 0.0, 0.0, limit=100.0, queued=lambda: 5.0))
    os.close(read_end)
    os.close(write_end)


def test_run_queue_time_and_priority_of_a_process_tree(tmp_path):
    """limits.process_tree_queued_seconds grows for a process that two busy processes per core keep waiting, and
    limits.lower_priority reaches its threads and its children."""
    from autograder.limits import lower_priority, process_tree_queued_seconds

    if not Path("/proc/self/schedstat").exists():
        pytest.skip("this kernel keeps no schedstat")
    child = subprocess.Popen([sys.executable, "-c", "import subprocess, sys\n"
                              "p = subprocess.Popen([sys.executable, '-c', 'while True: pass'])\nwhile True: pass"],
                             start_new_session=True)
    try:
        lower_priority(child.pid, 7)
        time.sleep(0.5)
        with machine_load(tmp_path, per_core=2):
            before = process_tree_queued_seconds(child.pid)
            time.sleep(2.0)
            queued = process_tree_queued_seconds(child.pid) - before
        tree = [child.pid, *map(int, Path(f"/proc/{child.pid}/task/{child.pid}/children").read_text().split())]
        assert len(tree) == 2 and all(os.getpriority(os.PRIO_PROCESS, pid) == 7 for pid in tree)
        assert queued > 1.0, f"two niced busy processes beside {2 * (os.cpu_count() or 1)} others waited {queued:.2f} s"
    finally:
        os.killpg(child.pid, 9)
        child.wait()


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return prepare_runtime(tmp_path_factory.mktemp("runtime"), "functions")


@needs_bwrap
def test_a_slow_trusted_side_costs_a_prestarted_worker_nothing(runtime, tmp_path, monkeypatch):
    """The wall-clock limits start when the grader starts waiting: a trusted side busy for longer than the load's
    whole wall-clock backstop (here made 10 s) while the worker is prestarted costs the notebook nothing."""
    monkeypatch.setattr(client, "backstop_s", lambda cpu_s: cpu_s)
    load_cpu_s = 10.0
    cells = extract_notebook(config.REFERENCE_NOTEBOOK).cells
    with Worker(cells, runtime, SandboxConfig(), tmp_path / "worker.log", load_cpu_s=load_cpu_s) as worker:
        worker.prestart()
        time.sleep(load_cpu_s + 2)  # the grader is busy elsewhere (a slow figure check, say)
        mu, logvar = torch.zeros(4096, 2), torch.zeros(4096, 2)
        z = worker.request("call", name="reparameterize", args=[mu, logvar])["value"]
        assert z.shape == (4096, 2) and 0.9 < float(z.std()) < 1.1
        x = torch.full((3, 784), 0.5)
        loss = worker.request("call", name="vae_loss", args=[x, x, torch.zeros(3, 2), torch.zeros(3, 2)])["value"]
        expected = torch.nn.functional.binary_cross_entropy(x, x, reduction="sum")
        assert abs(float(loss) - float(expected)) < 1e-3 * float(expected)
        assert worker.starts == 1


@needs_bwrap
@pytest.mark.skipif(not os.environ.get("DATA_DIR"), reason="needs DATA_DIR (the datasets)")
def test_under_load(runtime, tmp_path):
    """Three busy processes per core and a disk writer, and meanwhile ``python -m autograder grade`` of the example
    reference (a second grading load): the reference scores every point; correct code that needs most of its CPU
    budget still answers (though it takes longer in wall time than its budget), an endless loop costs exactly its
    CPU budget, a sleep is stopped as blocked, and each names its cause."""
    out = tmp_path / "grades"
    with Worker(CELLS, runtime, SandboxConfig(), tmp_path / "worker.log") as worker:
        worker.request("environment")
        n, quiet = 1 << 16, 0.0
        while quiet < 1.0:  # the work takes one to two seconds on the quiet machine
            n *= 2
            began = time.monotonic()
            worker.request("call", name="work", args=[n])
            quiet = time.monotonic() - began
        with machine_load(tmp_path) as started_processes:
            assert started_processes > BUSY_PER_CORE
            grading = subprocess.Popen([sys.executable, "-m", "autograder", "grade", str(REFERENCE), "--out", str(out)],
                                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO_ROOT)
            began = time.monotonic()
            assert worker.request("call", name="work", args=[n], cpu_s=3 * quiet)["value"] == n * (n - 1) // 2
            slowed = time.monotonic() - began
            assert slowed > 1.5 * quiet, (slowed, quiet)  # the load is real: a wall-clock budget would have failed

            began = time.monotonic()
            with pytest.raises(CheckTimeout, match=r"no answer within 3 CPU-seconds while running spin \(an endless"):
                worker.request("call", name="spin", args=[], cpu_s=3.0)
            spun = time.monotonic() - began
            assert 3.0 <= spun < backstop_s(3.0) + 2 * POLL_S, spun

            assert worker.request("call", name="plus_one", args=[1])["value"] == 2  # restarted after the loop
            began = time.monotonic()
            with pytest.raises(CheckBlocked, match="blocked on input, a sleep or a lock"):
                worker.request("call", name="nap", args=[])
            napped = time.monotonic() - began
            assert IDLE_WINDOW_S <= napped < IDLE_WINDOW_S + 3 * POLL_S, napped
            assert worker.request("call", name="plus_one", args=[2])["value"] == 3
            output, _ = grading.communicate(timeout=1800)
            graded = time.monotonic() - began
    assert grading.returncode == 0, output[-3000:]
    with open(out / "grades.csv", newline="") as file:
        row = next(csv.DictReader(file))
    assert float(row["total"]) == float(row["max_total"]) == 100.0, {k: v for k, v in row.items() if k != "graded_at"}
    print(f"a {n:,}-step loop took {quiet:.1f} s quiet and {slowed:.1f} s under load; the endless loop was "
          f"stopped after {spun:.1f} s, the sleep after {napped:.1f} s; the reference was graded (100) in about "
          f"{graded:.0f} s more")


@needs_bwrap
def test_submission_account(runtime, tmp_path):
    """The account is shared by the submission's workers (their loads included): an endless loop with a 60
    CPU-second budget stops at the account's 12, the message says why, and later requests fail at once without
    starting anything."""
    account = CpuAccount(12.0)
    logs = tmp_path
    with Worker(CELLS, runtime, SandboxConfig(), logs / "a.log", account=account) as first, \
            Worker(CELLS, runtime, SandboxConfig(), logs / "b.log", account=account) as second:
        assert first.request("call", name="plus_one", args=[1])["value"] == 2
        with pytest.raises(CheckTimeout, match="used up its 12 CPU-seconds of grading"):
            second.request("call", name="spin", args=[], cpu_s=60.0)
        assert account.remaining() < 0
        starts = first.starts
        began = time.monotonic()
        with pytest.raises(CheckTimeout, match="used up its 12 CPU-seconds of grading"):
            first.request("call", name="plus_one", args=[1])
        assert time.monotonic() - began < 0.5 and first.starts == starts


@needs_bwrap
@pytest.mark.skipif(not QUEUE_KNOWN, reason="the kernel reports no run-queue time")
def test_a_notebook_that_sleeps_a_little_in_every_call_is_stopped_by_its_idle_account(runtime, tmp_path):
    """A blind attacker's stall used 0.07 CPU-seconds a second: never "blocked", every check ran to its wall-clock
    backstop, and one notebook held a grading slot for over 20 minutes. Its workers' idle time (waited for,
    neither running nor waiting for a CPU) is one account per submission: the sipper stops there, with the message
    that says why, and the next request fails at once; the CPU it used is small."""
    account = CpuAccount(1000.0, idle_total=8.0)
    with Worker(CELLS, runtime, SandboxConfig(), tmp_path / "a.log", account=account) as worker:
        assert worker.request("call", name="work", args=[10**6])["value"] == sum(range(10**6))
        assert account.idle < 1.0, f"computing code waited {account.idle:.2f} s idle"
        began = time.monotonic()
        with pytest.raises(CheckTimeout, match="waited 8 s in all without computing"):
            worker.request("call", name="sip", args=[], cpu_s=60.0)
        assert 7.0 < time.monotonic() - began < 16.0
        began = time.monotonic()
        with pytest.raises(CheckTimeout, match="waited 8 s in all without computing"):
            worker.request("call", name="plus_one", args=[1])
        assert time.monotonic() - began < 0.5


def test_budgets_follow_the_reference_cpu_time():
    """Each training may use at least four times the reference's calibrated CPU-seconds (questions.toml's promise),
    and one bug never empties a submission's account: the reference's CPU, plus an endless function's two probes,
    plus the longest training run to its whole budget, stays within it."""
    calibration = config.calibration()
    reference = calibration["reference_cpu_s"]
    trainings = {q: calibration["questions"][q]["cpu_seconds_mean"] for q in config.budgets()}
    assert reference > sum(trainings.values()) > 0
    for qid, budget in config.budgets().items():
        assert budget["cpu_s"] >= 4 * trainings[qid], (qid, budget["cpu_s"], trainings[qid])
    worst_single_bug = reference + 2 * CHECK_CPU_S + max(config.budgets()[q]["cpu_s"] - trainings[q]
                                                         for q in trainings)
    assert worst_single_bug <= SUBMISSION_FACTOR * reference, (worst_single_bug, SUBMISSION_FACTOR * reference)
