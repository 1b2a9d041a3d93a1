"""The sandbox around student code holds: no writes or reads outside it, no network, crashes,
endless loops and memory hogs contained, monkeypatching confined to the worker, and only plain
data crossing the pipe.

Nothing is trained.  Workers are started a handful of times (each start imports torch, ~2-3 s):

* ``worker``: the reference solution's definitions plus an ``evil`` cell of hostile functions;
* ``fragile``: a worker with a 4 GB address-space cap for the crash / timeout / memory checks;
* two workers whose definitions never finish loading (class body, default argument);
* three ``python -m autograder.runner`` subprocesses (started early, run concurrently).

The bubblewrap-specific tests are skipped when ``bwrap`` cannot run here (the protocol has its own
tests in ``test_protocol.py``, the attacks in ``test_attacks.py``).  Run with ``DATA_DIR=../shared/datasets python -m pytest tests/test_sandbox.py``.
"""
from __future__ import annotations

import json
import os
import re
import resource
import socket
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
import pytest
import torch

from autograder.budget import backstop_s
from autograder.client import Worker
from autograder.extract import extract_notebook
from autograder.failures import CheckTimeout, GradingFailure, StudentError, WorkerCrashed
from autograder.sandbox import (DATA_MOUNT, REPO_ROOT, SandboxConfig, bwrap_unavailable, prepare_runtime,
                                prepare_training_data)

SOLUTION = REPO_ROOT / "solutions" / "autoencoders.ipynb"
GRADERS = REPO_ROOT / "autograder" / "graders"
CHEATER = REPO_ROOT / "examples" / "submitted" / "cheater" / "autoencoders" / "autoencoders.ipynb"
WRITE_ERROR = re.compile(r"Read-only file system|Permission denied|No such file or directory")
TOKEN = uuid.uuid4().hex[:12]  # makes every path this module creates or probes unique
FRAGILE_MEMORY_GB = 4.0  # the smallest whole cap under which the worker still imports torch (3 GB fails)
LOAD_TIMEOUT = 6.0  # covers importing torch in the worker on a busy machine, yet keeps the hang tests short
GRADER_SOURCE_MARKERS = ("def test_", "expect(", "compare(", "student.request", "Traceback", "assert ")

EVIL_CELL = '''
import os
import socket
import sys
import types

import torch


def try_write(path, text):
    with open(path, "w") as file:
        file.write(text)
    with open(path) as file:
        return file.read()


def write_bytes(path, size):
    with open(path, "wb") as file:
        file.write(b"x" * size)
    return os.path.getsize(path)


def exists(path):
    return os.path.exists(path)


def listdir(path):
    return sorted(os.listdir(path))


def read_text(path):
    with open(path) as file:
        return file.read()


def head_hex(path, n):
    with open(path, "rb") as file:
        return file.read(n).hex()


def connect(host, port):
    with socket.create_connection((host, port), timeout=3) as connection:
        connection.sendall(b"stolen")
    return "connected"


def interfaces():
    return sorted(name for _, name in socket.if_nameindex())


class _Patch:
    # runs when the class is defined, i.e. while the worker loads the definitions
    torch.allclose = lambda *args, **kwargs: True
    sys.modules["pytest"] = types.SimpleNamespace(approx=lambda *args, **kwargs: True)


def patched():
    return [torch.allclose(torch.zeros(1), torch.ones(1)), type(sys.modules["pytest"]).__name__]
'''

FRAGILE_CELL = '''
import os

import torch


def exit_now():
    os._exit(3)


def spin():
    while True:
        pass


def plus_one(x):
    return x + 1


def tensor_hog(n_bytes):
    return float(torch.empty(n_bytes, dtype=torch.uint8).fill_(1).sum())


def list_hog():
    blocks = []
    while True:
        blocks.append(bytearray(2**26))
'''

HANGING_CELLS = {
    "class_body": "class Forever:\n    while True:\n        pass\n",
    "default_argument": "import itertools\n\n\ndef forever(x=[i for i in itertools.count() if i < 0]):\n    return x\n",
}


# -- helpers ---------------------------------------------------------------------------------------
BWRAP_REASON = bwrap_unavailable()
needs_bwrap = pytest.mark.skipif(BWRAP_REASON is not None, reason=f"bubblewrap unavailable: {BWRAP_REASON}")


def _descendants(pid: int) -> set[int]:
    """The ids of all processes below ``pid`` (from /proc/*/stat)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _call(worker: Worker, name: str, *args, timeout: float = 30.0):
    return worker.request("call", name=name, args=list(args), cpu_s=timeout)["value"]


def _student_error(worker: Worker, name: str, *args, timeout: float = 30.0) -> StudentError:
    with pytest.raises(StudentError) as caught:
        _call(worker, name, *args, timeout=timeout)
    return caught.value


# -- fixtures --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return prepare_runtime(tmp_path_factory.mktemp("runtime"))


@pytest.fixture(scope="module")
def output_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A stand-in for the grading output folder, with an existing report in it."""
    folder = tmp_path_factory.mktemp("grading-out")
    (folder / "report.json").write_text('{"score": 1}')
    (folder / "secret.json").write_text('{"answers": []}')  # only ever read, never written, by the tests
    return folder


@pytest.fixture(scope="module")
def host_targets(output_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Paths on the host that student code tries to write: existing files and new names."""
    host_tmp = tmp_path_factory.mktemp("host-tmp") / "host.txt"
    host_tmp.write_text("original")
    targets = {
        "repo_root_existing": REPO_ROOT / "README.md",
        "repo_root_new": REPO_ROOT / f"pwned-{TOKEN}.txt",
        "output_dir_existing": output_dir / "report.json",
        "output_dir_new": output_dir / f"pwned-{TOKEN}.json",
        "home_new": Path.home() / f"pwned-{TOKEN}.txt",
        "host_tmp_existing": host_tmp,
    }
    yield targets
    for name, path in targets.items():  # never leave a stray file behind, whatever happened
        if name.endswith("_new") and path.exists():
            path.unlink()


@pytest.fixture(scope="module")
def host_snapshot(host_targets: dict[str, Path]) -> dict[str, bytes | None]:
    return {name: (path.read_bytes() if path.exists() else None) for name, path in host_targets.items()}


@pytest.fixture(scope="module")
def runner_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    """Three ``python -m autograder.runner`` runs, started at once so they overlap the worker tests."""
    if BWRAP_REASON is not None:
        yield {}
        return
    not_json = tmp_path_factory.mktemp("not-json") / "autoencoders.ipynb"
    not_json.write_text("this is not a notebook {", encoding="utf-8")
    notebook = nbformat.read(SOLUTION, as_version=4)
    kmeans_cells = [c for c in notebook.cells if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == "kmeans"]
    assert len(kmeans_cells) == 1
    kmeans_cells[0].source = kmeans_cells[0].source.replace("def kmeans(x, n_clusters, n_iters=100, seed=0):",
                                                            "def kmeans(x, n_clusters, n_iters=100, seed=0)", 1)
    syntax_error = tmp_path_factory.mktemp("syntax-error") / "autoencoders.ipynb"
    nbformat.write(notebook, syntax_error)
    runs = {"cheater": (CHEATER, "vae_loss"), "not_json": (not_json, "reparameterize"),
            "syntax_error": (syntax_error, "reparameterize")}
    env = dict(os.environ)
    started = {}
    for name, (path, select) in runs.items():
        out = tmp_path_factory.mktemp(f"runner-{name}") / "outcome.json"
        process = subprocess.Popen([sys.executable, "-m", "autograder.runner", str(path), "--json", str(out),
                                    "-k", select], cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True)
        started[name] = (process, out)
    yield started
    for process, _ in started.values():  # only if a test stopped before waiting for it
        if process.poll() is None:
            process.kill()
            process.communicate()


@pytest.fixture(scope="module", autouse=True)
def _start_runners_early(request: pytest.FixtureRequest) -> None:
    """Start the runner subprocesses before the module's first test when any selected test needs them."""
    if BWRAP_REASON is None and any("runner_runs" in getattr(item, "fixturenames", ())
                                    for item in request.session.items):
        request.getfixturevalue("runner_runs")


def _finished(runner_runs: dict, name: str) -> tuple[int, dict]:
    process, out = runner_runs[name]
    output, _ = process.communicate(timeout=240)
    assert out.exists(), f"the runner wrote no JSON (exit code {process.returncode}):\n{output[-3000:]}"
    return process.returncode, json.loads(out.read_text())


@pytest.fixture(scope="module")
def train_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return prepare_training_data(tmp_path_factory.mktemp("train-data"), ["mnist"])


@pytest.fixture(scope="module")
def worker(runtime: Path, train_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Worker:
    """The reference solution's definitions plus the hostile ``evil`` cell, in a sandboxed worker."""
    if BWRAP_REASON is not None:
        pytest.skip(f"bubblewrap unavailable: {BWRAP_REASON}")
    cells = [*extract_notebook(SOLUTION).cells, ("evil", EVIL_CELL)]
    log = tmp_path_factory.mktemp("worker-log") / "worker.log"
    with Worker(cells, runtime, SandboxConfig(data=train_data), log) as handle:
        handle.request("environment")
        assert handle.loaded["failed"] == [], handle.loaded["failed"]
        yield handle


@pytest.fixture(scope="module")
def fragile(runtime: Path, tmp_path_factory: pytest.TempPathFactory) -> Worker:
    """A worker with a small memory cap, for the crash, endless-loop and memory checks."""
    if BWRAP_REASON is not None:
        pytest.skip(f"bubblewrap unavailable: {BWRAP_REASON}")
    log = tmp_path_factory.mktemp("fragile-log") / "worker.log"
    with Worker([("fragile", FRAGILE_CELL)], runtime, SandboxConfig(memory_gb=FRAGILE_MEMORY_GB), log) as handle:
        yield handle


@pytest.fixture(scope="module")
def hanging(runtime: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Worker, float, str]]:
    """Workers whose definitions never finish loading; both first requests run concurrently."""
    if BWRAP_REASON is not None:
        pytest.skip(f"bubblewrap unavailable: {BWRAP_REASON}")
    folder = tmp_path_factory.mktemp("hanging")
    workers = {name: Worker([(name, source)], runtime, SandboxConfig(), folder / f"{name}.log",
                            load_cpu_s=LOAD_TIMEOUT) for name, source in HANGING_CELLS.items()}

    def first_request(handle: Worker) -> tuple[float, str]:
        started = time.monotonic()
        try:
            handle.request("environment")
        except GradingFailure as error:
            return time.monotonic() - started, f"{type(error).__name__}: {error}"
        return time.monotonic() - started, "no failure"

    with ThreadPoolExecutor(len(workers)) as pool:
        firsts = dict(zip(workers, pool.map(first_request, workers.values())))
    yield {name: (workers[name], *firsts[name]) for name in workers}
    for handle in workers.values():
        handle.close()


# -- 1. no writes outside the sandbox ---------------------------------------------------------------
@needs_bwrap
@pytest.mark.parametrize("target", ["repo_root_existing", "repo_root_new", "output_dir_existing", "output_dir_new",
                                    "home_new", "host_tmp_existing"])
def test_writing_outside_the_sandbox_fails(worker, host_targets, host_snapshot, target):
    """Student code gets an OS error when it writes to the repo, the output folder, $HOME or the host's /tmp."""
    path = host_targets[target]
    error = _student_error(worker, "try_write", str(path), "pwned")
    assert error.error in ("OSError", "PermissionError", "FileNotFoundError"), str(error)
    assert WRITE_ERROR.search(str(error)), str(error)


@needs_bwrap
def test_host_files_untouched(worker, host_targets, host_snapshot):
    """Whatever the writes did inside the worker, the host files are unchanged and no new file appeared."""
    for path in host_targets.values():
        try:
            _call(worker, "try_write", str(path), "pwned")
        except StudentError:
            pass
    for target, path in host_targets.items():
        before = host_snapshot[target]
        after = path.read_bytes() if path.exists() else None
        assert after == before, f"{target}: {path} changed on the host"
    assert host_snapshot["repo_root_existing"] and host_snapshot["output_dir_existing"] == b'{"score": 1}'
    assert host_snapshot["host_tmp_existing"] == b"original"


@needs_bwrap
def test_private_tmp_is_writable_but_stays_inside(worker):
    """The worker's own /tmp works, and what it writes there never shows up in the host's /tmp."""
    path = f"/tmp/inside-{TOKEN}.txt"
    assert _call(worker, "try_write", path, "scratch") == "scratch"
    assert _call(worker, "exists", path) is True
    assert not Path(path).exists()


@needs_bwrap
def test_file_size_is_capped(worker):
    """A file over the 8 MiB cap cannot be written, even in the private /tmp."""
    error = _student_error(worker, "write_bytes", f"/tmp/big-{TOKEN}.bin", 9 * 2**20)
    assert "File too large" in str(error), str(error)
    assert _call(worker, "write_bytes", f"/tmp/small-{TOKEN}.bin", 2**20) == 2**20


# -- 2. hidden files -----------------------------------------------------------------------------------
@needs_bwrap
def test_solution_and_graders_are_invisible(worker, output_dir):
    """The reference solution, the graders, the calibration, .git and the output folder's files cannot be seen."""
    graders = sorted(GRADERS.glob("*.py"))
    assert len(graders) >= 5 and SOLUTION.exists()
    secret = [SOLUTION, *graders, REPO_ROOT / "autograder" / "calibration.json", REPO_ROOT / ".git",
              REPO_ROOT / "autograder" / "sandbox.py", output_dir / "secret.json"]
    for path in secret:
        assert path.exists(), path  # on the host
        assert _call(worker, "exists", str(path)) is False, f"{path} is visible inside the worker"
    error = _student_error(worker, "read_text", str(SOLUTION))
    assert error.error == "FileNotFoundError", str(error)


@needs_bwrap
def test_repo_root_shows_only_the_python_environment(worker):
    """Listing the repository root from inside shows nothing but the bound-back virtual environment."""
    listing = _call(worker, "listdir", str(REPO_ROOT))
    prefix = Path(sys.prefix).resolve()
    allowed = {prefix.relative_to(REPO_ROOT).parts[0]} if REPO_ROOT in prefix.parents else set()
    # A name that test_writing_outside_the_sandbox_fails wrote (into a writable tmpfs) is the worker's own
    # file, not the host's: its content is the payload written.
    leaked = [name for name in set(listing) - allowed
              if not (name in ("README.md", f"pwned-{TOKEN}.txt")
                      and _call(worker, "read_text", str(REPO_ROOT / name)) == "pwned")]
    assert not leaked, f"visible inside the worker: {sorted(leaked)}"


@needs_bwrap
def test_training_split_is_readable_and_read_only(worker, train_data):
    """The training split is bound read-only at /opt/grader-data: the worker reads the host's bytes."""
    sample = train_data / "mnist.safetensors"
    inside = f"{DATA_MOUNT}/mnist.safetensors"
    assert _call(worker, "head_hex", inside, 64) == sample.read_bytes()[:64].hex()
    error = _student_error(worker, "try_write", inside, "x")
    assert WRITE_ERROR.search(str(error)), str(error)
    assert sample.read_bytes()[:8] != b"x"


# -- 3. no network ---------------------------------------------------------------------------------
@needs_bwrap
def test_cannot_reach_a_host_listener(worker):
    """Connecting to a port the test listens on (127.0.0.1) fails inside the worker; nothing arrives."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        error = _student_error(worker, "connect", "127.0.0.1", port)
        assert error.error in ("ConnectionRefusedError", "OSError", "TimeoutError"), str(error)
        listener.settimeout(0.5)
        with pytest.raises(socket.timeout):
            listener.accept()


@needs_bwrap
def test_network_namespace_has_only_loopback(worker):
    """The worker's network namespace has a loopback interface only, and outside addresses are unreachable."""
    assert _call(worker, "interfaces") == ["lo"]
    error = _student_error(worker, "connect", "1.1.1.1", 53)
    assert error.error in ("OSError", "ConnectionRefusedError", "TimeoutError"), str(error)


# -- 4. monkeypatching stays in the worker ------------------------------------------------------------
@needs_bwrap
def test_monkeypatch_applies_in_worker_only(worker):
    """The class body patched torch.allclose and sys.modules['pytest'] in the worker, not here."""
    assert _call(worker, "patched") == [True, "SimpleNamespace"]  # the patch really ran, inside
    assert torch.allclose(torch.zeros(1), torch.ones(1)) is False
    assert torch.allclose(torch.ones(3), torch.ones(3)) is True
    assert sys.modules["pytest"] is pytest and hasattr(pytest, "approx")
    assert 1.0 != pytest.approx(2.0)


@needs_bwrap
def test_runner_fails_cheater_despite_monkeypatching(runner_runs):
    """The cheater's vae_loss (no KL, patches torch.allclose and pytest.approx) still fails its checks."""
    source = CHEATER.read_text(encoding="utf-8")
    assert "torch.allclose = lambda" in source and "sys.modules.update(pytest=" in source
    code, result = _finished(runner_runs, "cheater")
    assert code == 0
    checks = {c["id"]: c for c in result["checks"]}
    assert checks, result
    assert all(c["question"] == "vae_loss" for c in checks.values())
    match = checks["test_matches_reference_on_fixed_inputs"]
    assert not match["passed"] and "KL term is missing" in match["message"]
    assert sum(not c["passed"] for c in checks.values()) >= 3
    assert result["failed_cells"] == [] and result["worker_starts"] == 1


# -- 5. crashes, endless loops and memory hogs --------------------------------------------------------
@needs_bwrap
def test_os_exit_crashes_only_that_call(fragile):
    """os._exit gives WorkerCrashed for that call; the next call restarts the worker and works."""
    assert _call(fragile, "plus_one", 1) == 2
    starts = fragile.starts
    with pytest.raises(WorkerCrashed, match="while running exit_now"):
        _call(fragile, "exit_now")
    assert fragile.process is None  # the dead worker was cleaned up
    assert _call(fragile, "plus_one", 41) == 42
    assert fragile.starts == starts + 1 and fragile.broken is None


@needs_bwrap
def test_crash_feedback_names_the_exit_code(fragile):
    """The feedback for a crash says the process died and how (exit code 3), not 'an invalid answer'."""
    assert _call(fragile, "plus_one", 1) == 2
    with pytest.raises(WorkerCrashed) as caught:
        _call(fragile, "exit_now")
    assert str(caught.value).startswith("the worker process died while running exit_now (exit code 3)"), \
        str(caught.value)


@needs_bwrap
def test_endless_loop_times_out_and_is_killed(fragile):
    """An endless loop gives CheckTimeout on time; every process of that worker is gone; the next call works."""
    assert _call(fragile, "plus_one", 1) == 2
    processes = _descendants(fragile.process.pid) | {fragile.process.pid}
    assert len(processes) >= 2  # bwrap and the worker below it
    starts, timeout = fragile.starts, 2.0
    started = time.monotonic()
    with pytest.raises(CheckTimeout, match="no answer within 2 CPU-seconds while running spin"):
        _call(fragile, "spin", timeout=timeout)
    assert time.monotonic() - started < backstop_s(timeout) + 3  # CPU-seconds: a busy machine takes longer
    deadline = time.monotonic() + 5
    while any(_alive(pid) for pid in processes) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in processes if _alive(pid)], "a process of the timed-out worker is still running"
    assert _call(fragile, "plus_one", 2) == 3
    assert fragile.starts == starts + 1


@needs_bwrap
@pytest.mark.parametrize("hog", ["tensor_hog", "list_hog"])
def test_memory_hog_is_contained(fragile, hog):
    """Allocating 20 GB (one tensor) or growing a list fails inside the capped worker, not here."""
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    args = [20 * 2**30] if hog == "tensor_hog" else []
    started = time.monotonic()
    with pytest.raises((StudentError, WorkerCrashed)) as caught:
        _call(fragile, hog, *args, timeout=60)
    assert time.monotonic() - started < 30
    if isinstance(caught.value, StudentError):
        assert caught.value.error in ("MemoryError", "RuntimeError"), str(caught.value)
        assert re.search(r"MemoryError|allocate", str(caught.value)), str(caught.value)
    growth_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before
    assert growth_kib < 200 * 1024, f"the test process grew by {growth_kib} KiB"
    assert float(torch.ones(1000).sum()) == 1000.0
    assert _call(fragile, "plus_one", 5) == 6


# -- 6. definitions that never finish loading --------------------------------------------------------
@needs_bwrap
@pytest.mark.parametrize("name", sorted(HANGING_CELLS))
def test_hanging_definitions_fail_fast_without_restarts(hanging, name):
    """The load runs out of its CPU budget once; every later request fails at once with that reason and starts
    nothing."""
    handle, seconds, first = hanging[name]
    assert first.startswith("WorkerCrashed: loading the notebook's definitions took over"), first
    # the budget is the worker's CPU-seconds: on a busy machine the wall clock runs up to the backstop
    assert LOAD_TIMEOUT - 0.5 <= seconds < backstop_s(LOAD_TIMEOUT) + 5, seconds
    assert handle.broken and "definitions" in handle.broken
    assert handle.process is None  # killed, not left looping
    for _ in range(3):
        started = time.monotonic()
        with pytest.raises(WorkerCrashed, match="loading the notebook's definitions took over"):
            handle.request("call", name="forever", args=[], cpu_s=30)
        assert time.monotonic() - started < 0.5
    assert handle.starts == 1


# -- 7. the runner on broken notebooks -------------------------------------------------------------------
@needs_bwrap
def test_runner_on_a_file_that_is_not_json(runner_runs):
    """Every selected check fails with 'not a readable notebook'; no worker starts; the runner exits 0."""
    code, result = _finished(runner_runs, "not_json")
    assert code == 0
    assert result["checks"], result
    for check in result["checks"]:
        assert check["question"] == "reparameterize"
        assert not check["passed"] and "not a readable notebook" in check["message"], check
    assert "not a readable notebook" in result["notebook_error"]
    assert result["worker_starts"] == 0


@needs_bwrap
def test_runner_skips_only_the_cell_with_a_syntax_error(runner_runs):
    """A syntax error in the kmeans cell costs only that cell: reparameterize still passes."""
    code, result = _finished(runner_runs, "syntax_error")
    assert code == 0
    assert len(result["checks"]) >= 3
    assert all(c["passed"] for c in result["checks"]), [c for c in result["checks"] if not c["passed"]]
    assert [label for label, _ in result["skipped_cells"]] == ["`kmeans`"]
    assert result["skipped_cells"][0][1].startswith("SyntaxError")
    assert result["failed_cells"] == [] and result["notebook_error"] is None


@needs_bwrap
def test_runner_messages_never_show_grader_source(runner_runs):
    """No outcome message of any run quotes the graders' code."""
    messages = []
    for name in runner_runs:
        _, result = _finished(runner_runs, name)
        messages += [c["message"] for c in result["checks"]]
    assert any(messages)  # some checks did fail, so there is text to inspect
    for message in messages:
        for marker in GRADER_SOURCE_MARKERS:
            assert marker not in message, message
        assert str(GRADERS) not in message and "test_" not in message, message


def test_the_split_caches_hold_the_loaders_values_and_are_reused(tmp_path, monkeypatch):
    """autograder.sandbox.cache_split: the held-out copy (trusted side) and the training copy (mounted in the
    sandbox) give labtools' own values, are written once, and the training copy holds no labels."""
    import torch
    from safetensors import safe_open

    from autograder import bottleneck, config

    monkeypatch.setenv("AUTOGRADER_CACHE", str(tmp_path))
    bottleneck.held_out.cache_clear()
    try:
        images, labels = bottleneck.held_out("mnist", 50)
        expected_images, expected_labels = config.labtools().load_dataset("mnist", train=False, limit=50, device="cpu")
        assert torch.equal(images, expected_images) and torch.equal(labels, expected_labels)
        cached = tmp_path / "held-out" / "mnist-test.safetensors"
        written = cached.stat().st_mtime_ns
        bottleneck.held_out.cache_clear()
        assert torch.equal(bottleneck.held_out("mnist", 50)[0], expected_images)
        assert cached.stat().st_mtime_ns == written  # current: read, not written again
        assert oct(cached.parent.stat().st_mode & 0o777) == "0o700"
    finally:
        bottleneck.held_out.cache_clear()
    train = prepare_training_data(tmp_path / "train-data", ["mnist"]) / "mnist.safetensors"
    with safe_open(str(train), "pt") as file:
        assert list(file.keys()) == ["images"] and file.get_tensor("images").dtype == torch.uint8
    assert not [p for p in tmp_path.rglob("*.partial")]
