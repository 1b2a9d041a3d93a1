"""Per-worker resource limits: cgroups where a writable hierarchy exists, rlimits otherwise.

A student's fork bomb, a memory hog or a file filling ``/dev/shm`` must not exhaust the host: a
host-wide OOM kill could land on another student's worker (or on the grader).  Each worker therefore
runs in its own :class:`WorkerGroup`::

    group = WorkerGroup.create(Limits(memory_bytes=6 << 30), name="student-42")
    try:
        process = subprocess.Popen(command, preexec_fn=group.preexec, ...)
        ...
        process.wait()
        if group.oom_killed(): ...
    finally:
        group.remove()          # SIGKILLs whatever is left in the group, then removes it

What each mechanism enforces (:func:`detect` picks the first that works here, :func:`describe` says so):

``cgroup2`` (a cgroup2 hierarchy with the memory/pids/cpu controllers, as root or in a delegated subtree)
    ``memory.max`` (all the group's pages: anonymous memory, page cache and the tmpfs/shm pages it
    writes), ``memory.swap.max = 0``, ``memory.oom.group = 1`` (an OOM kill takes the whole group),
    ``pids.max`` (processes + threads), ``cpu.max`` (bandwidth for the whole group), and
    ``cgroup.kill`` to end it.
``cgroup1`` (the v1 ``memory``, ``pids`` and ``cpu`` hierarchies, whichever are writable)
    ``memory.limit_in_bytes`` and ``memory.memsw.limit_in_bytes`` (no swap), ``pids.max``,
    ``cpu.cfs_quota_us``/``cpu.cfs_period_us``.
``rlimit`` (no writable cgroup hierarchy)
    ``RLIMIT_AS`` = memory (``RLIMIT_DATA`` with ``cuda=True``: the CUDA driver maps huge virtual ranges),
    ``RLIMIT_NPROC`` = max_pids.  Weaker: tmpfs/shm pages are not bounded (only each file, by
    ``RLIMIT_FSIZE``); ``RLIMIT_NPROC`` counts every process of the *real uid* system-wide (another
    worker of the same uid, the grader itself) and is not enforced at all for root.

In every mode the child also gets ``RLIMIT_CPU`` (a CPU-time backstop per process: ``SIGXCPU``, then
``SIGKILL`` 5 s later), ``RLIMIT_FSIZE`` and ``RLIMIT_CORE = 0``.  In a cgroup mode missing the memory
controller (or the pids one), the rlimit stands in for it; ``RLIMIT_AS`` is never set when the memory
controller is in use (the cgroup counts real memory, which is better).

Layout: one parent group ``autograder-<pid>`` per grader process in each hierarchy used, one child per
worker.  cgroup1 nests the parent under the grader's own cgroup when that is writable (so any limit put
on the grader still covers its workers), else under the hierarchy's root.  cgroup2 puts it under the
root when writable, else under the grader's own (delegated) cgroup; because of cgroup2's "no internal
processes" rule the grader then moves itself into a leaf ``autograder-<pid>-self`` when it is the only
process there.  Parents are removed at interpreter exit (with any worker group still registered: its
processes are killed first); groups left by graders that died (``autograder-<pid>`` of a pid that no
longer exists) are removed by the next grader when they hold no process (best effort; this assumes that
graders sharing a cgroup hierarchy share a pid namespace).

Caveats: a tmpfs/shm page is charged to the group of the process that first writes it (v1 and v2) and
stays charged after that process exits for as long as the file exists; a file left in a *shared* tmpfs
(the host's /dev/shm) keeps the group (or, once removed, a dying copy of it counted in the parent) at
that usage until the file is deleted.  Under bubblewrap the worker's /tmp and /dev are private tmpfs
mounts that vanish with it.  GPU memory is not counted by any of these mechanisms.
"""
from __future__ import annotations

import atexit
import contextlib
import errno
import os
from pathlib import Path
import re
import resource
import signal
import threading
import time
from dataclasses import dataclass

__all__ = ["Limits", "WorkerGroup", "detect", "describe"]

CPU_PERIOD_US = 100_000
CPU_KILL_GRACE_S = 5  # RLIMIT_CPU: SIGXCPU at the soft limit, SIGKILL this much later (hard limit)
_CONTROLLERS = ("memory", "pids", "cpu")
_PARENT_RE = re.compile(r"autograder-(\d+)(-self)?$")


@dataclass(frozen=True)
class Limits:
    """What one worker (with all its processes) may use."""

    memory_bytes: int           # RAM, including the tmpfs/shm pages the worker writes (cgroup modes)
    max_pids: int = 128         # processes + threads in the worker's group
    cpu_cores: float | None = 1.0  # CPU bandwidth for the whole group; None: no quota
    cpu_seconds: int = 1800     # CPU-time backstop per process (RLIMIT_CPU)
    file_bytes: int = 8 << 20   # RLIMIT_FSIZE: largest file the worker may write

    def __post_init__(self) -> None:
        if self.memory_bytes <= 0 or self.max_pids <= 0 or self.cpu_seconds <= 0 or self.file_bytes < 0:
            raise ValueError(f"limits must be positive: {self}")
        if self.cpu_cores is not None and self.cpu_cores <= 0:
            raise ValueError(f"cpu_cores must be positive or None: {self}")


# ---------------------------------------------------------------------------------------------
# small file helpers (never used between fork and exec)

def _read(path: str) -> str | None:
    try:
        with open(path) as file:
            return file.read()
    except OSError:
        return None


def _write(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def _keyed(path: str) -> dict[str, int]:
    """A flat-keyed cgroup file (``memory.events``, ``pids.events``, ``memory.oom_control``) as a dict."""
    values = {}
    for line in (_read(path) or "").splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("-").isdigit():
            values[parts[0]] = int(parts[1])
    return values


def _number(path: str) -> int | None:
    text = (_read(path) or "").strip()
    return int(text) if text.isdigit() else None


def _procs(directory: str) -> list[int]:
    """The processes in ``directory`` and every group below it."""
    pids = []
    for folder, _subdirs, _files in os.walk(directory):
        pids += [int(p) for p in (_read(os.path.join(folder, "cgroup.procs")) or "").split() if p.isdigit()]
    return pids


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _rmdir_tree(directory: str, attempts: int = 50) -> bool:
    """Remove ``directory`` and the groups below it (bottom up); retry briefly while the kernel finishes exits."""
    for attempt in range(attempts):
        try:
            for folder, _subdirs, _files in os.walk(directory, topdown=False):
                os.rmdir(folder)
            return True
        except FileNotFoundError:
            if not os.path.exists(directory):
                return True
        except OSError as error:
            if error.errno != errno.EBUSY:
                return False
        time.sleep(0.02 * min(attempt + 1, 5))
    return False


# ---------------------------------------------------------------------------------------------
# discovery

@dataclass
class _Tree:
    """One cgroup hierarchy in use: where it is mounted and this grader's parent group in it."""

    version: int                   # 1 or 2
    mount: str                     # mount point
    mount_root: str                # the mount's root inside the hierarchy (mountinfo field 4)
    controllers: tuple[str, ...]   # the controllers used in this hierarchy
    parent: str = ""               # this process's autograder-<pid> directory


@dataclass
class _Plan:
    mechanism: str                  # "cgroup2" | "cgroup1" | "rlimit"
    trees: list[_Tree]
    reason: str = ""                # why the better mechanisms were not used

    @property
    def controllers(self) -> tuple[str, ...]:
        return tuple(c for c in _CONTROLLERS if any(c in t.controllers for t in self.trees))


def _mounts() -> list[tuple[str, str, str, set[str]]]:
    """(fstype, mount point, root, options) of every cgroup/cgroup2 mount."""
    found = []
    for line in (_read("/proc/self/mountinfo") or "").splitlines():
        left, _, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if len(fields) < 5 or len(tail) < 3 or tail[0] not in ("cgroup", "cgroup2"):
            continue
        point = fields[4].replace("\\040", " ")
        found.append((tail[0], point, fields[3], set(tail[2].split(",")) | set(fields[5].split(","))))
    return found


def _own_cgroups() -> dict[str, str]:
    """This process's cgroup per v1 controller, and under "" its cgroup2 path."""
    own = {}
    for line in (_read("/proc/self/cgroup") or "").splitlines():
        _hid, _, rest = line.partition(":")
        names, _, path = rest.partition(":")
        for name in (names.split(",") if names else [""]):
            own[name] = path
    return own


def _directory(mount: str, mount_root: str, path: str | None) -> str:
    """Where cgroup ``path`` is under ``mount`` (the mount point itself when it is not visible there)."""
    if path is None:
        return mount
    relative = os.path.relpath(path, mount_root)
    if relative == "." or relative.startswith(".."):
        return mount
    return os.path.join(mount, relative)


def _writable(directory: str) -> bool:
    return (os.access(directory, os.W_OK | os.X_OK)
            and os.access(os.path.join(directory, "cgroup.procs"), os.W_OK))


def _remove_stale(base: str) -> None:
    """Remove ``autograder-<pid>`` groups under ``base`` left by graders that died, if they hold no process."""
    try:
        names = os.listdir(base)
    except OSError:
        return
    for name in names:
        match = _PARENT_RE.match(name)
        if not match or int(match.group(1)) == os.getpid() or _alive(int(match.group(1))):
            continue
        directory = os.path.join(base, name)
        if not _procs(directory):
            _rmdir_tree(directory, attempts=1)


def _make_parent(base: str) -> str:
    """Create (or reuse) this process's ``autograder-<pid>`` directory under ``base``."""
    _remove_stale(base)
    parent = os.path.join(base, f"autograder-{os.getpid()}")
    try:
        os.mkdir(parent)
    except FileExistsError:
        pass
    return parent


def _probe(parent: str, files: tuple[str, ...]) -> bool:
    """Create and remove a probe child of ``parent``; True if the control files ``files`` appear in it."""
    probe = os.path.join(parent, f"probe-{threading.get_ident()}")
    try:
        os.mkdir(probe)
    except FileExistsError:
        pass
    try:
        return all(os.path.exists(os.path.join(probe, f)) for f in files)
    finally:
        _rmdir_tree(probe, attempts=5)


_V2_FILES = {"memory": "memory.max", "pids": "pids.max", "cpu": "cpu.max"}
_V1_FILES = {"memory": "memory.limit_in_bytes", "pids": "pids.max", "cpu": "cpu.cfs_quota_us"}


def _enable(directory: str, wanted: tuple[str, ...]) -> tuple[set[str], OSError | None]:
    """Enable ``wanted`` controllers in ``directory``'s subtree_control, one by one; return those enabled."""
    last_error = None
    for controller in wanted:
        try:
            _write(os.path.join(directory, "cgroup.subtree_control"), f"+{controller}")
        except OSError as error:
            last_error = error
    enabled = set((_read(os.path.join(directory, "cgroup.subtree_control")) or "").split())
    return enabled & set(wanted), last_error


def _setup_v2(mount: str, mount_root: str, own_path: str | None, required: tuple[str, ...] = ("memory", "pids"),
              ) -> tuple[_Tree | None, str]:
    """Set up the parent group in a cgroup2 hierarchy; (tree, "") or (None, why not).

    ``required``: at least one of these controllers must end up usable.  Tests pass ``()`` to exercise
    joining and killing in a cgroup2 hierarchy that has no controllers.
    """
    available = set((_read(os.path.join(mount, "cgroup.controllers")) or "").split())
    current = _directory(mount, mount_root, own_path)
    reasons = []
    for base in dict.fromkeys([mount, current]):
        if not _writable(base):
            reasons.append(f"{base} not writable")
            continue
        base_controllers = set((_read(os.path.join(base, "cgroup.controllers")) or "").split())
        wanted = tuple(c for c in _CONTROLLERS if c in base_controllers)
        if required and not set(required) & set(wanted):
            reasons.append(f"{base} offers none of {'/'.join(required)} (has: {' '.join(sorted(available)) or 'none'})")
            continue
        try:
            enabled, error = _enable(base, wanted)
            if error is not None and error.errno == errno.EBUSY:
                # No internal processes: a non-root group with processes cannot hand controllers to children.
                # If the grader is alone in its (delegated) group, move it into a leaf and try again.
                here = (_read(os.path.join(base, "cgroup.procs")) or "").split()
                if here == [str(os.getpid())]:
                    leaf = os.path.join(base, f"autograder-{os.getpid()}-self")
                    os.makedirs(leaf, exist_ok=True)
                    _write(os.path.join(leaf, "cgroup.procs"), "0")
                    enabled, error = _enable(base, wanted)
            if required and not set(required) & enabled:
                reasons.append(f"cannot enable controllers in {base}: {error}")
                continue
            parent = _make_parent(base)
            enabled, error = _enable(parent, tuple(c for c in wanted if c in enabled))
            if required and not set(required) & enabled:
                _rmdir_tree(parent, attempts=1)
                reasons.append(f"cannot enable controllers in {parent}: {error}")
                continue
            used = tuple(c for c in _CONTROLLERS if c in enabled)
            if not _probe(parent, tuple(_V2_FILES[c] for c in used)):
                _rmdir_tree(parent, attempts=1)
                reasons.append(f"probe group in {parent} lacks the control files")
                continue
            return _Tree(2, mount, mount_root, used, parent), ""
        except OSError as error:
            reasons.append(f"{base}: {error}")
    return None, "; ".join(reasons)


def _setup_v1(mount: str, mount_root: str, own_path: str | None, controllers: tuple[str, ...]) -> _Tree | None:
    """Set up the parent group in one cgroup1 hierarchy holding ``controllers``."""
    current = _directory(mount, mount_root, own_path)
    for base in dict.fromkeys([current, mount]):
        if not _writable(base):
            continue
        try:
            parent = _make_parent(base)
            if _probe(parent, tuple(_V1_FILES[c] for c in controllers)):
                return _Tree(1, mount, mount_root, controllers, parent)
            _rmdir_tree(parent, attempts=1)
        except OSError:
            continue
    return None


def _discover(force: str | None = None) -> _Plan:
    force = force or os.environ.get("AUTOGRADER_LIMITS", "auto").strip().lower() or "auto"
    if force not in ("auto", "cgroup2", "cgroup1", "rlimit"):
        raise ValueError(f"unknown limits mechanism {force!r} (AUTOGRADER_LIMITS: auto, cgroup2, cgroup1, rlimit)")
    if force == "rlimit":
        return _Plan("rlimit", [], "rlimits chosen explicitly")
    mounts, own = _mounts(), _own_cgroups()
    reasons = []
    if force in ("auto", "cgroup2"):
        for fstype, point, root, _options in mounts:
            if fstype != "cgroup2":
                continue
            tree, why = _setup_v2(point, root, own.get(""))
            if tree is not None:
                return _Plan("cgroup2", [tree])
            reasons.append(f"cgroup2 at {point}: {why}")
        if not any(m[0] == "cgroup2" for m in mounts):
            reasons.append("no cgroup2 mount")
    if force in ("auto", "cgroup1"):
        trees, seen = [], set()
        for fstype, point, root, options in mounts:
            wanted = tuple(c for c in _CONTROLLERS if c in options and c not in seen)
            if fstype != "cgroup" or not wanted:
                continue
            tree = _setup_v1(point, root, own.get(wanted[0]), wanted)
            if tree is not None:
                trees.append(tree)
                seen.update(wanted)
            else:
                reasons.append(f"cgroup1 {','.join(wanted)} at {point} not writable")
        if trees:
            return _Plan("cgroup1", trees)
        if not any(m[0] == "cgroup" for m in mounts):
            reasons.append("no cgroup1 mount")
    return _Plan("rlimit", [], "; ".join(reasons) or "no cgroup hierarchy")


_lock = threading.RLock()
_plans: dict[tuple[int, str], _Plan] = {}
_live: dict[int, "WorkerGroup"] = {}


def _plan(force: str | None = None) -> _Plan:
    key = (os.getpid(), force or "")
    with _lock:
        if key not in _plans:
            _plans[key] = _discover(force)
        return _plans[key]


def detect() -> str:
    """``"cgroup2"``, ``"cgroup1"`` or ``"rlimit"``: which mechanism works here (probed once, then cached).

    ``AUTOGRADER_LIMITS=rlimit`` (or ``cgroup1``/``cgroup2``) in the environment restricts the choice.
    """
    return _plan().mechanism


def describe() -> str:
    """One line for the README/CLI, e.g. ``"cgroup v1 (memory, pids, cpu) + rlimits (CPU time, file size, core)"``."""
    plan = _plan()
    backstops = "rlimits (CPU time, file size, core"
    if plan.mechanism == "rlimit":
        return f"rlimits only (address space, processes per uid, CPU time, file size, core; {plan.reason})"
    missing = [c for c in ("memory", "pids") if c not in plan.controllers]
    backstops += "".join({"memory": ", address space", "pids": ", processes per uid"}[c] for c in missing) + ")"
    version = plan.mechanism[-1]
    return f"cgroup v{version} ({', '.join(plan.controllers)}) + {backstops}"


@atexit.register
def _cleanup_at_exit() -> None:
    with _lock:
        for group in list(_live.values()):
            if group._owner == os.getpid():
                group.remove()
        for (pid, _force), plan in list(_plans.items()):
            if pid != os.getpid():
                continue
            for tree in plan.trees:
                if tree.parent and not _procs(tree.parent):
                    _rmdir_tree(tree.parent, attempts=5)
            _plans.pop((pid, _force), None)


# ---------------------------------------------------------------------------------------------
# one worker's group

def process_tree_cpu_seconds(root: int) -> float:
    """User + system CPU seconds of process ``root``, its threads and its live descendants, and of the children
    they have reaped (``/proc/PID/stat`` fields 14-17; descendants from ``/proc/PID/task/TID/children``)."""
    return _process_tree_times(root)[0]


QUEUE_KNOWN = Path("/proc/self/schedstat").exists()  # the kernel reports run-queue time (budget.py relies on it)


def process_tree_queued_seconds(root: int) -> float:
    """Seconds the live threads of process ``root`` and its descendants have spent runnable but waiting for a CPU
    (the run queue: ``/proc/PID/task/TID/schedstat``, second field; 0 where the kernel keeps no schedstat)."""
    return _process_tree_times(root)[1]


def lower_priority(root: int, niceness: int) -> None:
    """Give process ``root``, its threads and its live descendants at least ``niceness`` (``setpriority``; a
    process started by them later inherits it). CPU-second budgets do not change; only who runs first when
    the CPUs are all busy."""
    pending, seen = [root], set()
    while pending:
        pid = pending.pop()
        if pid in seen:
            continue
        seen.add(pid)
        with contextlib.suppress(OSError, ValueError):
            for task in Path(f"/proc/{pid}/task").iterdir():
                tid = int(task.name)
                with contextlib.suppress(OSError):
                    os.setpriority(os.PRIO_PROCESS, tid, max(niceness, os.getpriority(os.PRIO_PROCESS, tid)))
                with contextlib.suppress(OSError):
                    pending += [int(child) for child in (task / "children").read_text().split()]


def _process_tree_times(root: int) -> tuple[float, float]:
    ticks, queued_ns, pending, seen = 0, 0, [root], set()
    while pending:
        pid = pending.pop()
        if pid in seen:
            continue
        seen.add(pid)
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += sum(int(value) for value in fields[11:15])
            for task in Path(f"/proc/{pid}/task").iterdir():
                pending += [int(child) for child in (task / "children").read_text().split()]
                with contextlib.suppress(OSError, ValueError, IndexError):
                    queued_ns += int((task / "schedstat").read_text().split()[1])
        except (OSError, ValueError, IndexError):
            continue  # it ended meanwhile
    return ticks / os.sysconf("SC_CLK_TCK"), queued_ns / 1e9


class WorkerGroup:
    """The limits of one worker process and everything it starts.

    Create it in the parent, pass :meth:`preexec` as ``preexec_fn`` to :class:`subprocess.Popen`, and call
    :meth:`remove` when the worker is done (also after a crash).  One group can hold successive workers
    (a restarted worker joins the same group); its counters (``oom_killed``, ``pids_limited``, peak) then
    cover them all.
    """

    def __init__(self, limits: Limits, name: str, mechanism: str, controllers: tuple[str, ...],
                 paths: dict[str, str], procs_fds: tuple[int, ...],
                 rlimits: tuple[tuple[int, tuple[int, int]], ...]) -> None:
        self.limits, self.name = limits, name
        self.mechanism = mechanism          # "cgroup2" | "cgroup1" | "rlimit"
        self.controllers = controllers      # cgroup controllers enforcing limits, e.g. ("memory", "pids", "cpu")
        self.paths = paths                  # hierarchy key ("memory", "pids", "cpu" or "unified") -> directory
        self._procs_fds = procs_fds         # cgroup.procs of each directory, opened O_WRONLY|O_CLOEXEC
        self._rlimits = rlimits             # (resource, (soft, hard)) set in the child
        self._removed = False
        self._owner = os.getpid()           # a forked copy of the grader must not remove our groups at its exit

    # -- construction ---------------------------------------------------------------------------
    @classmethod
    def create(cls, limits: Limits, name: str, *, cuda: bool = False, mechanism: str | None = None) -> "WorkerGroup":
        """Make the worker's cgroup(s) (nothing in rlimit mode).

        ``cuda``: the worker uses CUDA; if memory must be capped by an rlimit, cap the data segment
        (``RLIMIT_DATA``) rather than the address space.  ``mechanism``: force ``"rlimit"`` (or a cgroup
        version) instead of the detected one.
        """
        plan = _plan(mechanism)
        if mechanism and mechanism != "auto" and plan.mechanism != mechanism:
            raise RuntimeError(f"limits mechanism {mechanism} is not available here: {plan.reason}")
        return cls._build(limits, name, plan.mechanism, plan.trees, cuda)

    @classmethod
    def _build(cls, limits: Limits, name: str, mechanism: str, trees: list[_Tree], cuda: bool) -> "WorkerGroup":
        safe = re.sub(r"[^A-Za-z0-9_-]", "_", name)[:80] or "worker"
        controllers = tuple(c for c in _CONTROLLERS if any(c in t.controllers for t in trees))
        paths: dict[str, str] = {}
        fds: list[int] = []
        try:
            for tree in trees:
                directory = cls._mkdir_unique(tree.parent, safe)
                key = "unified" if tree.version == 2 else ",".join(tree.controllers)
                paths[key] = directory
                for controller in tree.controllers:
                    paths.setdefault(controller, directory)
                cls._configure(tree, directory, limits)
                fds.append(os.open(os.path.join(directory, "cgroup.procs"), os.O_WRONLY | os.O_CLOEXEC))
        except BaseException:
            for fd in fds:
                os.close(fd)
            for directory in set(paths.values()):
                _rmdir_tree(directory, attempts=5)
            raise
        rlimits = [
            (resource.RLIMIT_CPU, (limits.cpu_seconds, limits.cpu_seconds + CPU_KILL_GRACE_S)),
            (resource.RLIMIT_FSIZE, (limits.file_bytes, limits.file_bytes)),
            (resource.RLIMIT_CORE, (0, 0)),
        ]
        if "memory" not in controllers:
            memory = resource.RLIMIT_DATA if cuda else resource.RLIMIT_AS
            rlimits.append((memory, (limits.memory_bytes, limits.memory_bytes)))
        if "pids" not in controllers:
            rlimits.append((resource.RLIMIT_NPROC, (limits.max_pids, limits.max_pids)))
        # Never raise a hard limit the grader itself runs under (that would fail in the child).
        clamped = []
        for which, (soft, hard) in rlimits:
            _cur_soft, cur_hard = resource.getrlimit(which)
            if cur_hard != resource.RLIM_INFINITY:
                hard = min(hard, cur_hard)
                soft = min(soft, hard)
            clamped.append((which, (soft, hard)))
        group = cls(limits, name, mechanism, controllers, paths, tuple(fds), tuple(clamped))
        if trees:
            with _lock:
                _live[id(group)] = group
        return group

    @staticmethod
    def _mkdir_unique(parent: str, name: str) -> str:
        for suffix in range(1000):
            directory = os.path.join(parent, name if suffix == 0 else f"{name}-{suffix}")
            try:
                os.mkdir(directory)
                return directory
            except FileExistsError:
                continue
        raise FileExistsError(f"no free group name for {name!r} under {parent}")

    @staticmethod
    def _configure(tree: _Tree, directory: str, limits: Limits) -> None:
        def put(filename: str, value: object, optional: bool = False) -> None:
            path = os.path.join(directory, filename)
            if optional and not os.path.exists(path):
                return
            try:
                _write(path, str(value))
            except OSError:
                if not optional:
                    raise

        quota = None if limits.cpu_cores is None else max(1000, int(limits.cpu_cores * CPU_PERIOD_US))
        if tree.version == 2:
            if "memory" in tree.controllers:
                put("memory.max", limits.memory_bytes)
                put("memory.swap.max", 0, optional=True)
                put("memory.oom.group", 1, optional=True)
            if "pids" in tree.controllers:
                put("pids.max", limits.max_pids)
            if "cpu" in tree.controllers and quota is not None:
                put("cpu.max", f"{quota} {CPU_PERIOD_US}")
        else:
            if "memory" in tree.controllers:
                put("memory.limit_in_bytes", limits.memory_bytes)
                put("memory.memsw.limit_in_bytes", limits.memory_bytes, optional=True)  # must follow the above
                put("memory.oom_control", 0, optional=True)  # OOM killer on (the default)
            if "pids" in tree.controllers:
                put("pids.max", limits.max_pids)
            if "cpu" in tree.controllers and quota is not None:
                put("cpu.cfs_period_us", CPU_PERIOD_US)
                put("cpu.cfs_quota_us", quota)

    # -- in the child -----------------------------------------------------------------------------
    def preexec(self) -> None:
        """Join the group(s) and set the rlimits; runs in the child between fork and exec.

        Only system calls on file descriptors opened in :meth:`create` (``write("0")`` to ``cgroup.procs``,
        0 meaning "the calling process") and ``setrlimit``: no path look-up, no import, no lock that
        another thread of the parent could have held at fork time.  An error raises, so ``Popen`` fails
        (``SubprocessError``) rather than starting a worker outside its limits.
        """
        if self._removed:
            raise RuntimeError("this worker group was removed")
        for fd in self._procs_fds:
            os.write(fd, b"0")
        for which, values in self._rlimits:
            resource.setrlimit(which, values)

    # -- after the fact ---------------------------------------------------------------------------
    def _file(self, controller: str, filename: str) -> str | None:
        directory = self.paths.get(controller)
        return None if directory is None else os.path.join(directory, filename)

    def oom_killed(self, returncode: int | None = None) -> bool:
        """Whether the kernel's OOM killer killed a process of this group (best effort).

        cgroup2: ``memory.events`` ``oom_kill`` > 0.  cgroup1: ``memory.oom_control`` ``oom_kill`` > 0
        (kernel 4.13+); on older kernels, ``memory.failcnt`` > 0 (the limit was hit) together with
        ``returncode == -SIGKILL``.  rlimit mode: always False (an ``RLIMIT_AS`` overrun is a
        ``MemoryError`` inside the worker, not a kill).
        """
        if "memory" not in self.controllers:
            return False
        if self.mechanism == "cgroup2":
            path = self._file("memory", "memory.events")
            return bool(path and _keyed(path).get("oom_kill", 0) > 0)
        control = _keyed(self._file("memory", "memory.oom_control") or "")
        if "oom_kill" in control:
            return control["oom_kill"] > 0 or control.get("under_oom", 0) > 0
        failcnt = _number(self._file("memory", "memory.failcnt") or "") or 0
        return failcnt > 0 and returncode == -signal.SIGKILL

    def pids_limited(self) -> bool:
        """Whether a fork or thread creation in this group was refused because of ``max_pids``."""
        path = self._file("pids", "pids.events")
        return bool(path and _keyed(path).get("max", 0) > 0)

    def peak_memory(self) -> int | None:
        """Highest memory charge of the group in bytes (tmpfs pages included); None if unknown."""
        if "memory" not in self.controllers:
            return None
        name = "memory.peak" if self.mechanism == "cgroup2" else "memory.max_usage_in_bytes"
        return _number(self._file("memory", name) or "")

    def current_memory(self) -> int | None:
        """Current memory charge of the group in bytes (tmpfs pages still on disk included); None if unknown."""
        if "memory" not in self.controllers:
            return None
        name = "memory.current" if self.mechanism == "cgroup2" else "memory.usage_in_bytes"
        return _number(self._file("memory", name) or "")

    def pids(self) -> list[int]:
        """The processes now in the group (any hierarchy); empty in rlimit mode."""
        found: set[int] = set()
        for directory in set(self.paths.values()):
            found.update(_procs(directory))
        return sorted(found)

    def _signal_all(self) -> None:
        listed = self.pids()
        if not hasattr(os, "pidfd_open"):  # kernel < 5.3 or an old Python: plain kill(2)
            for pid in listed:
                try:
                    os.kill(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            return
        # A pidfd names one process for good.  Open them all, then check the numbers are still in the
        # group: a process that left in between (it died and its number was reused outside the group)
        # is skipped, so the signal cannot reach an unrelated process.
        pidfds = {}
        for pid in listed:
            try:
                pidfds[pid] = os.pidfd_open(pid)
            except OSError:
                pass
        try:
            still = set(self.pids())
            for pid, pidfd in pidfds.items():
                if pid in still:
                    try:
                        signal.pidfd_send_signal(pidfd, signal.SIGKILL)
                    except OSError:
                        pass
        finally:
            for pidfd in pidfds.values():
                os.close(pidfd)

    def kill(self, timeout: float = 5.0) -> bool:
        """SIGKILL every process in the group; True once the group is empty (waits at most ``timeout``).

        Forks are stopped first (``pids.max`` = 0, restored afterwards so the group can hold a new
        worker), then cgroup2's ``cgroup.kill`` is used when present, else the processes listed in
        ``cgroup.procs`` are killed round after round until none is left.  Processes already dead but
        not yet reaped (zombies) do not count.
        """
        if not self.paths:
            return True
        pids_max = self._file("pids", "pids.max")
        try:
            if pids_max:
                try:
                    _write(pids_max, "0")
                except OSError:
                    pass
            kill_file = self._file("unified", "cgroup.kill")
            if kill_file and os.path.exists(kill_file):
                try:
                    _write(kill_file, "1")
                except OSError:
                    pass
            deadline = time.monotonic() + timeout
            delay = 0.001
            while self.pids():
                if time.monotonic() > deadline:
                    return False
                self._signal_all()
                time.sleep(delay)
                delay = min(delay * 2, 0.05)
            return True
        finally:
            if pids_max:
                try:
                    _write(pids_max, str(self.limits.max_pids))
                except OSError:
                    pass

    def remove(self) -> None:
        """Kill what is left, remove the group(s) and close their descriptors; idempotent, never raises."""
        if self._removed:
            return
        self._removed = True
        try:
            with _lock:
                _live.pop(id(self), None)
            self.kill()
        except Exception:
            pass
        fds, self._procs_fds = self._procs_fds, ()
        for fd in fds:
            try:
                os.close(fd)
            except OSError:
                pass
        for directory in set(self.paths.values()):
            try:
                _rmdir_tree(directory)
            except Exception:
                pass

    def __enter__(self) -> "WorkerGroup":
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()

    def __repr__(self) -> str:
        return f"WorkerGroup({self.name!r}, {self.mechanism}, controllers={self.controllers}, limits={self.limits})"
