"""Per-worker resource limits (:mod:`autograder.limits`) hold against real hostile child processes.

Every test starts real processes with ``preexec_fn=group.preexec``.  The cgroup tests are skipped
(with the reason) where :func:`autograder.limits.detect` finds no writable cgroup hierarchy; the
rlimit tests always run.  Every group and process made here is removed even when a test fails.
"""
from __future__ import annotations

import errno
import os
import resource
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid

import pytest

from autograder import limits as limits_module
from autograder.limits import Limits, WorkerGroup, describe, detect

TOKEN = uuid.uuid4().hex[:8]
MiB = 1 << 20


# ---------------------------------------------------------------------------------------------
# fixtures and helpers

@pytest.fixture
def make_group():
    """``make_group(limits, name, **kw)``: a WorkerGroup removed at the end of the test, whatever happens."""
    made: list[WorkerGroup] = []

    def make(limits: Limits, name: str, **kwargs) -> WorkerGroup:
        group = WorkerGroup.create(limits, f"test-{name}-{TOKEN}", **kwargs)
        made.append(group)
        return group

    yield make
    for group in made:
        group.remove()


@pytest.fixture
def spawn():
    """``spawn(code, group, *args, **popen_kw)``: ``python -c code`` in ``group``; killed and reaped at the end."""
    started: list[subprocess.Popen] = []

    def start(code: str, group: WorkerGroup, *args: str, executable: str = sys.executable, **kwargs):
        kwargs.setdefault("preexec_fn", group.preexec)
        process = subprocess.Popen([executable, "-c", code, *args], stdout=subprocess.PIPE, text=True,
                                   start_new_session=True, **kwargs)
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        process.wait()
        if process.stdout:
            process.stdout.close()


def require(*controllers: str) -> None:
    """Skip unless a cgroup mechanism with ``controllers`` works here."""
    mechanism = detect()
    if mechanism == "rlimit":
        pytest.skip(f"no writable cgroup hierarchy here: {describe()}")
    missing = [c for c in controllers if c not in limits_module._plan().controllers]
    if missing:
        pytest.skip(f"cgroup controller(s) {', '.join(missing)} not usable here: {describe()}")


def read_line(process: subprocess.Popen, timeout: float) -> str:
    """One line of the child's stdout, or "" at end of stream; fails the test after ``timeout``."""
    ready, _, _ = select.select([process.stdout], [], [], timeout)
    assert ready, f"no output from the child within {timeout} s"
    return process.stdout.readline()


def alive_pids(pids: list[int]) -> list[int]:
    """The pids that name a live (not zombie) process, from a /proc scan."""
    alive = []
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as file:
                state = file.read().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        if state not in ("Z", "X"):
            alive.append(pid)
    return alive


def processes_in(directory: str) -> list[int]:
    """A /proc scan: every process whose /proc/<pid>/cgroup names ``directory`` (a cgroup1/2 path)."""
    relative = "/" + os.path.relpath(directory, "/sys/fs/cgroup").split("/", 1)[1]
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/cgroup") as file:
                text = file.read()
        except OSError:
            continue
        if any(line.endswith(relative) or (relative + "/") in line for line in text.splitlines()):
            found.append(int(name))
    return alive_pids(found)


def cgroup_file(group: WorkerGroup, controller: str, name: str) -> str:
    with open(os.path.join(group.paths[controller], name)) as file:
        return file.read()


# ---------------------------------------------------------------------------------------------
# the module itself

def test_detect_and_describe_agree():
    mechanism = detect()
    assert mechanism in ("cgroup2", "cgroup1", "rlimit")
    assert detect() == mechanism  # cached
    text = describe()
    if mechanism == "rlimit":
        assert text.startswith("rlimits only")
    else:
        assert text.startswith(f"cgroup v{mechanism[-1]} (")
        for controller in limits_module._plan().controllers:
            assert controller in text


def test_limits_are_validated():
    with pytest.raises(ValueError):
        Limits(memory_bytes=0)
    with pytest.raises(ValueError):
        Limits(memory_bytes=MiB, max_pids=0)
    with pytest.raises(ValueError):
        Limits(memory_bytes=MiB, cpu_cores=0)


# ---------------------------------------------------------------------------------------------
# (1) memory hog

HOG = """
import sys, time
chunks = []
for i in range(32):                       # 32 x 64 MiB = 2 GiB, every page written
    chunk = bytearray(64 << 20)
    chunk[::4096] = b"\\x01" * len(range(0, 64 << 20, 4096))
    chunks.append(chunk)
    print((i + 1) * 64, time.monotonic(), flush=True)
print("survived", flush=True)
"""
SLEEPER = "import time; print('up', flush=True); time.sleep(60)"


def test_memory_hog_is_oom_killed_and_others_are_unharmed(make_group, spawn):
    require("memory")
    limit = 300 * MiB
    hog_group = make_group(Limits(memory_bytes=limit), "hog")
    bystander_group = make_group(Limits(memory_bytes=limit), "bystander")
    bystander = spawn(SLEEPER, bystander_group)
    assert read_line(bystander, 10) == "up\n"

    hog = spawn(HOG, hog_group)
    reports = []
    while (line := read_line(hog, 30)):
        reports.append(line.split())
    returncode = hog.wait(timeout=30)
    died = time.monotonic()

    assert ["survived"] not in reports, "the 2 GiB allocation went through a 300 MiB limit"
    assert returncode == -signal.SIGKILL
    assert hog_group.oom_killed()
    assert not bystander_group.oom_killed()
    reached = int(reports[-1][0]) if reports else 0
    assert 128 <= reached < 300  # allocated up to the limit, not beyond
    peak = hog_group.peak_memory()
    assert peak is not None and 200 * MiB < peak <= limit
    assert bystander.poll() is None, "the OOM kill hit a process outside the hog's group"
    print(f"\nOOM kill: reached {reached} MiB, peak {peak / MiB:.0f} MiB, "
          f"death {1000 * (died - float(reports[-1][1])):.0f} ms after the last report")


# ---------------------------------------------------------------------------------------------
# (2) tmpfs (/dev/shm) pages are charged to the writer's group

SHM_WRITER = """
import sys
chunk = b"x" * (1 << 20)
written = 0
try:
    with open(sys.argv[1], "wb", buffering=0) as file:
        for _ in range(400):
            file.write(chunk)
            written += 1
            print("written", written, flush=True)
except OSError as error:
    print("error", error.errno, written, flush=True)
    sys.exit(3)
print("done", written, flush=True)
"""


def test_tmpfs_writes_count_against_the_memory_limit(make_group, spawn):
    require("memory")
    if not os.path.isdir("/dev/shm"):
        pytest.skip("no /dev/shm here")
    path = f"/dev/shm/autograder-test-{TOKEN}"
    limit = 200 * MiB
    group = make_group(Limits(memory_bytes=limit, file_bytes=1 << 30), "shm")
    try:
        writer = spawn(SHM_WRITER, group, path)
        lines = []
        while (line := read_line(writer, 30)):
            lines.append(line.split())
        returncode = writer.wait(timeout=30)
        assert lines and lines[-1][0] != "done", "400 MiB went into /dev/shm past a 200 MiB limit"
        if lines[-1][0] == "error":  # refused with an error rather than killed
            assert int(lines[-1][1]) in (errno.ENOSPC, errno.ENOMEM)
            assert returncode == 3
        else:
            assert returncode == -signal.SIGKILL and group.oom_killed()
        size = os.stat(path).st_size
        assert 100 * MiB < size <= limit
        # The file outlives its writer and its pages stay charged to the writer's group ...
        charged = group.current_memory()
        assert charged is not None and charged >= 0.9 * size
        assert group.peak_memory() >= size
        os.unlink(path)
        # ... until the file is deleted.
        assert group.current_memory() < charged - 0.9 * size
        print(f"\n/dev/shm: {'killed' if returncode < 0 else 'refused'} after {size / MiB:.0f} MiB, "
              f"charged {charged / MiB:.0f} MiB while the file existed, {group.current_memory() / MiB:.0f} MiB after")
    finally:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


# ---------------------------------------------------------------------------------------------
# (3) fork bomb

# Every process forks in a loop until the deadline (at most 4 children each, 4 generations deep: at
# most 341 processes even without any limit), reports its EAGAIN count, then sleeps to be killed.
FORK_BOMB = """
import errno, os, sys, time
deadline = time.monotonic() + float(sys.argv[1])
depth, children, eagain, original = 0, 0, 0, True
while time.monotonic() < deadline:
    if children >= 4 or depth >= 4:
        time.sleep(0.01)
        continue
    try:
        pid = os.fork()
    except OSError as error:
        if error.errno != errno.EAGAIN:
            raise
        eagain += 1
        time.sleep(0.005)
        continue
    if pid == 0:
        depth, children, eagain, original = depth + 1, 0, 0, False
    else:
        children += 1
if eagain:
    os.write(1, b"eagain %d\\n" % eagain)
if original:
    time.sleep(0.5)
    os.write(1, b"done\\n")
time.sleep(30)
"""


def test_fork_bomb_is_held_to_max_pids_and_killed(make_group, spawn):
    require("pids")
    max_pids = 24
    group = make_group(Limits(memory_bytes=2 << 30, max_pids=max_pids), "forkbomb")
    bomb = spawn(FORK_BOMB, group, "2.0")
    eagain = 0
    while (line := read_line(bomb, 20)) != "done\n":
        assert line, "the fork bomb's original process died"
        eagain += int(line.split()[1])
    members = group.pids()
    current = int(cgroup_file(group, "pids", "pids.current"))
    assert max_pids - 2 <= len(members) <= max_pids
    assert current <= max_pids
    assert group.pids_limited()
    assert eagain > 0, "no fork was refused"
    assert sorted(processes_in(group.paths["pids"])) == members  # the /proc view agrees with cgroup.procs

    assert group.kill()
    assert group.pids() == []
    assert bomb.wait(timeout=5) == -signal.SIGKILL
    group.remove()
    assert not any(os.path.exists(p) for p in group.paths.values())
    deadline = time.monotonic() + 5  # orphans are reaped by init a moment later
    while alive_pids(members) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert alive_pids(members) == [], "processes of the fork bomb survived kill() + remove()"
    print(f"\nfork bomb: {len(members)} processes (max {max_pids}), {eagain} forks refused")


# ---------------------------------------------------------------------------------------------
# (4) CPU bandwidth

CPU_BURNER = """
import os, time
start = time.monotonic()
pid = os.fork()                            # two busy processes
while time.monotonic() - start < float(__import__("sys").argv[1]):
    pass
if pid == 0:
    os._exit(0)
os.waitpid(pid, 0)
times = os.times()
print(times.user + times.system + times.children_user + times.children_system, time.monotonic() - start)
"""


def test_cpu_quota_holds_two_busy_processes_to_half_a_core(make_group, spawn):
    require("cpu")
    group = make_group(Limits(memory_bytes=1 << 30, cpu_cores=0.5), "cpu")
    burner = spawn(CPU_BURNER, group, "2.0")
    cpu, wall = map(float, read_line(burner, 20).split())
    assert burner.wait(timeout=10) == 0
    ratio = cpu / wall
    stat = limits_module._keyed(os.path.join(group.paths["cpu"], "cpu.stat"))
    print(f"\nCPU quota 0.5 core: {cpu:.2f} s CPU in {wall:.2f} s wall ({ratio:.2f} cores), "
          f"throttled {stat.get('nr_throttled')} of {stat.get('nr_periods')} periods")
    assert 0.2 < ratio < 0.8
    assert stat.get("nr_throttled", 0) > 0


# ---------------------------------------------------------------------------------------------
# (5) rlimit fallback, and the rlimits every mode sets

RLIMITS_REPORT = """
import resource
for name in ("RLIMIT_AS", "RLIMIT_DATA", "RLIMIT_NPROC", "RLIMIT_CPU", "RLIMIT_FSIZE", "RLIMIT_CORE"):
    print(name, *resource.getrlimit(getattr(resource, name)))
"""


def child_rlimits(spawn, group) -> dict[str, tuple[int, int]]:
    process = spawn(RLIMITS_REPORT, group)
    out, _ = process.communicate(timeout=20)
    return {name: (int(soft), int(hard)) for name, soft, hard in (line.split() for line in out.splitlines())}


def test_rlimits_set_in_each_mode(make_group, spawn):
    limits = Limits(memory_bytes=512 * MiB, max_pids=64, cpu_seconds=100, file_bytes=3 * MiB)
    forced = make_group(limits, "rl", mechanism="rlimit")
    assert forced.mechanism == "rlimit" and forced.paths == {} and forced.controllers == ()
    got = child_rlimits(spawn, forced)
    assert got["RLIMIT_AS"] == (512 * MiB, 512 * MiB)
    assert got["RLIMIT_NPROC"][0] == min(64, resource.getrlimit(resource.RLIMIT_NPROC)[1])
    assert got["RLIMIT_CPU"] == (100, 100 + limits_module.CPU_KILL_GRACE_S)
    assert got["RLIMIT_FSIZE"] == (3 * MiB, 3 * MiB)
    assert got["RLIMIT_CORE"] == (0, 0)

    cuda = make_group(limits, "rl-cuda", mechanism="rlimit", cuda=True)
    got = child_rlimits(spawn, cuda)
    assert got["RLIMIT_DATA"] == (512 * MiB, 512 * MiB)
    assert got["RLIMIT_AS"] == resource.getrlimit(resource.RLIMIT_AS)  # untouched with CUDA

    if detect() != "rlimit":
        group = make_group(limits, "cg", cuda=True)
        got = child_rlimits(spawn, group)
        if "memory" in group.controllers:  # the cgroup counts real memory: no address-space cap
            assert got["RLIMIT_AS"] == resource.getrlimit(resource.RLIMIT_AS)
            assert got["RLIMIT_DATA"] == resource.getrlimit(resource.RLIMIT_DATA)
        assert got["RLIMIT_CPU"] == (100, 100 + limits_module.CPU_KILL_GRACE_S)
        assert got["RLIMIT_FSIZE"] == (3 * MiB, 3 * MiB)
        assert got["RLIMIT_CORE"] == (0, 0)
        if "pids" not in group.controllers:  # the rlimit stands in for a missing pids controller
            assert got["RLIMIT_NPROC"][0] == min(64, resource.getrlimit(resource.RLIMIT_NPROC)[1])


ALLOCATE = """
small = bytearray(50 << 20)                # fits
try:
    big = bytearray(2 << 30)
    print("allocated", len(big))
except MemoryError:
    print("MemoryError")
"""
BIG_WRITE = """
import sys
with open(sys.argv[1], "wb", buffering=0) as file:
    try:
        for _ in range(32):                # 32 x 64 KiB = 2 MiB
            file.write(b"x" * (64 << 10))
        print("wrote")
    except OSError as error:               # Python ignores SIGXFSZ: the write fails with EFBIG instead
        print("error", error.errno)
"""


def test_rlimit_fallback_stops_memory_and_file_size(make_group, spawn, tmp_path):
    group = make_group(Limits(memory_bytes=300 * MiB, file_bytes=MiB), "fallback", mechanism="rlimit")
    out, _ = spawn(ALLOCATE, group).communicate(timeout=20)
    assert out.strip() == "MemoryError"

    target = tmp_path / "big"
    out, _ = spawn(BIG_WRITE, group, str(target)).communicate(timeout=20)
    assert out.split() == ["error", str(errno.EFBIG)]
    assert target.stat().st_size == MiB

    # Without the limits the same allocation goes through (so the test above can fail).
    plain = subprocess.run([sys.executable, "-c", ALLOCATE], capture_output=True, text=True, timeout=30)
    assert plain.stdout.startswith("allocated")

    # cgroup group removal helpers are no-ops here and never fail.
    assert group.pids() == [] and group.kill() and not group.oom_killed() and not group.pids_limited()
    assert group.peak_memory() is None
    group.remove()
    group.remove()


def test_rlimit_cpu_seconds_stop_a_busy_loop(make_group, spawn):
    group = make_group(Limits(memory_bytes=1 << 30, cpu_seconds=1), "cpu-seconds", mechanism="rlimit")
    busy = spawn("while True: pass", group)
    assert busy.wait(timeout=15) == -signal.SIGXCPU


NPROC_BOMB = """
import errno, os, time
made, eagain = 0, 0
for _ in range(40):
    try:
        pid = os.fork()
    except OSError as error:
        assert error.errno == errno.EAGAIN, error
        eagain += 1
        continue
    if pid == 0:
        time.sleep(3)
        os._exit(0)
    made += 1
print(made, eagain, flush=True)
"""


def test_rlimit_nproc_bounds_a_non_root_uid(make_group, spawn):
    """RLIMIT_NPROC counts the real uid's processes system-wide and does not bind root: run as a spare uid."""
    if os.geteuid() != 0:
        pytest.skip("needs root to switch to a spare uid")
    python = shutil.which("python3", path="/usr/bin:/bin")
    if python is None:
        pytest.skip("no system python3 that another uid can run")
    uid = 54321 + os.getpid() % 1000
    if processes_of_uid(uid):
        pytest.skip(f"uid {uid} already runs processes here")
    group = make_group(Limits(memory_bytes=1 << 30, max_pids=6), "nproc", mechanism="rlimit")

    def preexec() -> None:
        group.preexec()
        os.setgid(uid)
        os.setuid(uid)

    bomb = spawn(NPROC_BOMB, group, executable=python, preexec_fn=preexec, cwd="/")
    made, eagain = map(int, read_line(bomb, 20).split())
    assert bomb.wait(timeout=10) == 0
    try:
        assert made <= 5 and eagain >= 35  # the bomb itself is one of the 6
    finally:
        for pid in processes_of_uid(uid):  # its sleeping children, orphaned: no group to kill them by
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def processes_of_uid(uid: int) -> list[int]:
    """A /proc scan: the live processes whose real uid is ``uid``."""
    found = []
    for name in os.listdir("/proc"):
        try:
            if name.isdigit() and os.stat(f"/proc/{name}").st_uid == uid:
                found.append(int(name))
        except FileNotFoundError:
            continue
    return alive_pids(found)


# ---------------------------------------------------------------------------------------------
# (6) life cycle

def test_remove_is_idempotent_and_leaves_the_parent_clean(make_group, spawn):
    require()
    limits = Limits(memory_bytes=256 * MiB, max_pids=16)
    groups = [make_group(limits, f"many-{i}") for i in range(20)]
    parents = {os.path.dirname(d) for g in groups for d in g.paths.values()}
    assert all(len(g.paths) >= 1 for g in groups)
    sleepers = [spawn(SLEEPER, g) for g in groups[:5]]
    for sleeper in sleepers:
        assert read_line(sleeper, 10) == "up\n"
    assert all(len(g.pids()) == 1 for g in groups[:5])
    for group in groups:
        group.remove()
        group.remove()  # idempotent
    for sleeper in sleepers:
        assert sleeper.wait(timeout=5) == -signal.SIGKILL
    for parent in parents:
        leftovers = [n for n in os.listdir(parent) if os.path.isdir(os.path.join(parent, n))]
        assert leftovers == [], f"groups left in {parent}: {leftovers}"
    with pytest.raises(subprocess.SubprocessError):  # a removed group cannot start a worker unconfined
        subprocess.Popen([sys.executable, "-c", "pass"], preexec_fn=groups[0].preexec).wait()


def test_restarted_worker_joins_the_same_group(make_group, spawn):
    require("pids")
    group = make_group(Limits(memory_bytes=256 * MiB, max_pids=16), "restart")
    first = spawn(SLEEPER, group)
    assert read_line(first, 10) == "up\n"
    assert group.kill() and first.wait(timeout=5) == -signal.SIGKILL
    assert cgroup_file(group, "pids", "pids.max").strip() == "16"  # restored after kill()
    second = spawn("import os, time; os.wait() if os.fork() else None; print('forked', flush=True)", group)
    assert read_line(second, 10) == "forked\n"
    assert second.wait(timeout=10) == 0


def test_preexec_from_many_threads_at_once(make_group, spawn):
    require()
    group = make_group(Limits(memory_bytes=512 * MiB, max_pids=64), "threads")
    processes, errors = [], []

    def start() -> None:
        try:
            processes.append(spawn(SLEEPER, group))
        except Exception as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=start) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    for process in processes:
        assert read_line(process, 10) == "up\n"
    assert sorted(group.pids()) == sorted(p.pid for p in processes)
    group.remove()
    assert all(p.wait(timeout=5) == -signal.SIGKILL for p in processes)


def test_cgroup2_join_and_kill_without_controllers(spawn):
    """Where cgroup2 is not the mechanism but a writable cgroup2 hierarchy is mounted (hybrid hosts),
    exercise the cgroup2 code paths that need no controller: joining, ``cgroup.kill``, removal."""
    if detect() == "cgroup2":
        pytest.skip("cgroup2 is the detected mechanism: the other tests cover it")
    mounts = [m for m in limits_module._mounts() if m[0] == "cgroup2"]
    if not mounts:
        pytest.skip("no cgroup2 hierarchy mounted")
    _fstype, point, root, _options = mounts[0]
    tree, why = limits_module._setup_v2(point, root, limits_module._own_cgroups().get(""), required=())
    if tree is None:
        pytest.skip(f"cgroup2 hierarchy at {point} not writable: {why}")
    group = None
    try:
        group = WorkerGroup._build(Limits(memory_bytes=4 << 30), f"v2-{TOKEN}", "cgroup2", [tree], False)
        assert os.path.exists(os.path.join(group.paths["unified"], "cgroup.kill"))
        code = "import os, time\nfor _ in range(2):\n    os.fork() or time.sleep(60)\nprint('up', flush=True); time.sleep(60)"
        process = spawn(code, group)
        assert read_line(process, 10) == "up\n"
        time.sleep(0.2)
        members = group.pids()
        assert process.pid in members and len(members) == 3
        assert group.kill()
        assert process.wait(timeout=5) == -signal.SIGKILL
        group.remove()
        assert not os.path.exists(group.paths["unified"])
        deadline = time.monotonic() + 5
        while alive_pids(members) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert alive_pids(members) == []
    finally:
        if group is not None:
            group.remove()
        limits_module._rmdir_tree(tree.parent, attempts=5)
