"""How the untrusted worker process is started: bubblewrap, an allowlist of read-only mounts, no
privilege, per-worker resource limits and a clean environment.

With ``mode="bwrap"`` (the default) the worker runs under `bubblewrap <https://github.com/containers/bubblewrap>`_
in a new, empty root file system that holds only what the worker needs, read-only:

* the Python runtime (the interpreter's prefix and the venv's site-packages) and the system libraries
  (``/usr``, with ``/lib``, ``/bin`` … as on the host);
* ``/etc/ld.so.cache`` and a two-line ``/etc/passwd`` / ``/etc/group`` naming the sandbox user;
* the worker role's own runtime (its files of :mod:`autograder.sandboxed`, :data:`ROLE_FILES`, and the
  student-facing ``labtools.py``) at :data:`RUNTIME_MOUNT`, and the **training**
  split of the datasets at :data:`DATA_MOUNT`, written there by the trusted side (:func:`prepare_training_data`).
  No held-out image, no home folder, no exchange, no repository, no other submission is mounted; in the
  ``functions`` role the forbidden k-means packages (``sklearn.cluster``, …) are covered by stand-ins that
  raise ImportError, so their code is not there to run;
* a private ``/tmp`` (256 MiB) and ``/dev/shm`` (64 MiB), new ``/proc`` and a minimal ``/dev``.

No privilege inside: when the grader is root, bubblewrap sets up the mounts and the worker then drops to
uid/gid 65534 (``nobody``) before any student code runs, keeping no capability (``CapEff = 0``, checked by
the worker, which refuses to run otherwise); when the grader is a normal user, bubblewrap maps it to
65534 in a new user namespace with every capability dropped and further user namespaces disabled.
A seccomp filter (when libseccomp is available) refuses ``mount``, ``unshare``, ``setns``, new
namespaces through ``clone``, ``clone3`` (so that glibc falls back to ``clone``), ``ptrace``, ``bpf``,
``io_uring``, ``userfaultfd``, ``perf_event_open`` and the key-ring calls. The worker has no network
(its own, empty network namespace), its own PID, IPC, UTS and cgroup namespaces, and dies with the grader.

Resource limits come from :mod:`autograder.limits`: a cgroup per worker (memory including tmpfs,
processes, CPU bandwidth) where the machine allows it, rlimits otherwise.

``mode="none"`` skips bubblewrap (for machines without it, e.g. Gradescope's containers); it is unsafe with
untrusted code: the worker sees the host's files and network and shares the grader's namespaces. Under
a root grader the worker still drops to uid/gid 65534 with no capability before any student code runs
(after importing what it needs and reading the training split, :func:`sandboxed.probes.preload`), so
files that only root may read or write stay out of its reach; the resource limits apply as in bwrap mode.
"""
from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from autograder import limits
from autograder.limits import Limits, WorkerGroup

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parent
RUNTIME_MOUNT = "/opt/grader"
DATA_MOUNT = "/opt/grader-data"
SANDBOX_UID = SANDBOX_GID = 65534
TMP_LIMIT_BYTES = 256 * 2**20
SHM_LIMIT_BYTES = 64 * 2**20
SYSTEM_LINKS = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
ETC_FILES = ("/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d")


class SandboxUnavailable(RuntimeError):
    """bubblewrap is missing or cannot create its namespaces here."""


@dataclass
class SandboxConfig:
    """How to confine one worker."""

    mode: str = "bwrap"  # "bwrap" or "none"
    memory_gb: float = 6.0
    device: str = "cpu"  # "cpu" or "cuda"
    data: Path | None = None  # the training split, from prepare_training_data()
    max_pids: int = 128
    cpu_cores: float = 1.0

    def limits(self) -> Limits:
        return Limits(memory_bytes=int(self.memory_gb * 2**30), max_pids=self.max_pids, cpu_cores=self.cpu_cores)


# Which of the ``sandboxed`` package's files each worker role mounts (see docs/threat-model.md):
# * ``functions`` answers the probes of the functions (reparameterize, vae_loss, kmeans, plot_latent_clusters) and
#   may train an autoencoder: no VAE objective (it is the reference vae_loss), no trusted implementation;
# * ``encoder`` trains models that call the student's own functions (vae_training) and maps held-out images to
#   latents: the training loop with the VAE objective, no trusted implementation;
# * ``student`` probes and trains the model classes with the trusted implementations (conv_vae) and decodes the
#   latents the trusted side chose: it never sees a held-out image.
FUNCTION_FILES = ("__init__.py", "worker.py", "protocol.py", "probes.py")
TRAINING_FILES = (*FUNCTION_FILES, "models.py", "training.py")
ROLE_FILES = {
    "functions": TRAINING_FILES,
    "encoder": (*TRAINING_FILES, "vae_objective.py"),
    "student": (*TRAINING_FILES, "vae_objective.py", "trusted.py"),
}
ROLES = tuple(ROLE_FILES)
HIDDEN_SOURCE = "raise ImportError({message!r})\n"


@dataclass(frozen=True)
class Runtime:
    """What one worker role sees: ``folder`` (mounted at :data:`RUNTIME_MOUNT`) and ``hidden``: (host path,
    replacement) pairs, a package folder or module file of the Python environment covered by a stand-in that
    raises ImportError, so that its code is not there to run."""

    folder: Path
    role: str
    hidden: tuple[tuple[str, str], ...] = ()


def prepare_runtime(folder: Path, role: str = "student", hide: list[str] | tuple[str, ...] = ()) -> Runtime:
    """Copy what worker ``role`` may see into ``folder``: its files of the ``sandboxed`` package (:data:`ROLE_FILES`),
    ``labtools.py``, passwd/group, and the stand-ins for the modules in ``hide`` (dotted names; the installed ones
    are hidden, see :func:`module_paths`)."""
    if role not in ROLE_FILES:
        raise ValueError(f"unknown worker role {role!r} (one of {', '.join(ROLES)})")
    (folder / "sandboxed").mkdir(parents=True, exist_ok=True)
    for name in ROLE_FILES[role]:
        shutil.copy2(PACKAGE_DIR / "sandboxed" / name, folder / "sandboxed" / name)
    shutil.copy2(REPO_ROOT / "assignment" / "labtools.py", folder / "labtools.py")
    (folder / "etc").mkdir(exist_ok=True)
    (folder / "empty").mkdir(exist_ok=True)  # what covers the package folders the worker does not use
    (folder / "etc" / "passwd").write_text(f"nobody:x:{SANDBOX_UID}:{SANDBOX_GID}:nobody:/tmp:/usr/sbin/nologin\n")
    (folder / "etc" / "group").write_text(f"nogroup:x:{SANDBOX_GID}:\n")
    hidden = []
    for dotted, path in module_paths(hide):
        stand_in = folder / "hidden" / dotted
        source = HIDDEN_SOURCE.format(message=f"{dotted} is not available in this grading worker")
        if path.is_dir():
            stand_in.mkdir(parents=True, exist_ok=True)
            (stand_in / "__init__.py").write_text(source)
        else:
            stand_in.parent.mkdir(parents=True, exist_ok=True)
            stand_in.write_text(source)
        hidden.append((str(path), str(stand_in)))
    _readable(folder)
    return Runtime(folder=folder, role=role, hidden=tuple(hidden))


def module_paths(modules: list[str] | tuple[str, ...]) -> list[tuple[str, Path]]:
    """``(dotted name, path)`` for each installed module in ``modules``, found without importing any of it: a
    package's folder, or a module's file (``x.py``, ``x.cpython-….so``)."""
    import importlib.util

    found = []
    for dotted in modules:
        top, *rest = dotted.split(".")
        try:
            spec = importlib.util.find_spec(top)
        except (ImportError, ValueError):
            continue
        if spec is None:
            continue
        if not spec.submodule_search_locations:  # a top-level module file
            if not rest and spec.origin and Path(spec.origin).is_file():
                found.append((dotted, Path(spec.origin).resolve()))
            continue
        for root in spec.submodule_search_locations:
            parent = Path(root, *rest[:-1]) if rest else Path(root).parent
            name = rest[-1] if rest else top
            candidates = [parent / name] if (parent / name).is_dir() else \
                [parent / f"{name}.py", *sorted(parent.glob(f"{name}.*.so")), parent / f"{name}.so"]
            found += [(dotted, path.resolve()) for path in candidates if path.exists()]
    return found


def prepare_training_data(folder: Path, datasets: list[str]) -> Path:
    """Write the *training* split of each dataset to ``folder/<name>.safetensors`` (uint8 images, key ``images``).

    Only these files are mounted in the sandbox: the held-out split never is. A file already there is
    reused when it was made from the same source files (their sizes and times are in its metadata).
    """
    folder.mkdir(parents=True, exist_ok=True)
    for name in datasets:
        cache_split(folder / f"{name}.safetensors", name, train=True, labels=False)
    _readable(folder)
    return folder


def cache_split(path: Path, name: str, *, train: bool, labels: bool) -> None:
    """Make ``path`` a uint8 copy of dataset ``name``'s split (key ``images``, and ``labels`` when asked), unless
    it already is one made from the current source files (:func:`source_fingerprint`, kept in its metadata).

    The file is written under a temporary name and renamed, so a reader never sees half of it.
    """
    from safetensors import safe_open

    from autograder import config

    fingerprint = source_fingerprint(name)
    if path.exists():
        with safe_open(str(path), "numpy") as existing:  # the metadata only: no torch to import
            if (existing.metadata() or {}).get("source") == fingerprint:
                return
    import torch
    from safetensors.torch import save_file

    images, targets = config.labtools().load_dataset(name, train=train, device="cpu")
    tensors = {"images": (images * 255).round_().to(torch.uint8).contiguous()}
    if labels:
        tensors["labels"] = targets.contiguous()
    partial = path.with_name(f".{path.stem}.{os.getpid()}.{threading.get_ident()}.partial")
    save_file(tensors, str(partial), metadata={"source": fingerprint})
    partial.replace(path)


def source_fingerprint(name: str) -> str:
    """The names, sizes and times of dataset ``name``'s files under DATA_DIR: a cache made from them is current."""
    from autograder import config

    labtools = config.labtools()
    source = labtools.data_dir() / labtools._SPECS[name][1]
    return ";".join(f"{p.name}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in sorted(source.glob("*"))
                    if p.is_file())


def training_data_cache() -> Path:
    """Where the training split is kept between runs: ``$AUTOGRADER_CACHE`` or ``~/.cache/ae-vae-lab``."""
    root = os.environ.get("AUTOGRADER_CACHE") or Path.home() / ".cache" / "ae-vae-lab"
    return Path(root) / "train-data"


def _readable(folder: Path) -> None:
    """Let the sandbox user (uid 65534) read ``folder``'s files; it is mounted on its own, so its parents on
    the host (a private temporary folder, a home folder) may stay closed."""
    for path in [folder, *folder.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)


def _traversable(folder: Path) -> None:
    """Let uid 65534 reach ``folder`` through the private temporary folders above it (search, not list)."""
    temporary = Path(tempfile.gettempdir()).resolve()
    for parent in folder.resolve().parents:
        if parent == temporary or temporary not in parent.parents:
            break
        parent.chmod(parent.stat().st_mode | 0o111)


def check_bwrap() -> None:
    """Raise :class:`SandboxUnavailable` with a one-line reason if bubblewrap cannot run here."""
    if shutil.which("bwrap") is None:
        raise SandboxUnavailable("bubblewrap (bwrap) is not installed: apt-get install bubblewrap, "
                                 "or pass --sandbox none to run student code unconfined (unsafe)")
    probe = subprocess.run(["bwrap", *_namespace_arguments(), "--ro-bind", "/", "/", "true"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        raise SandboxUnavailable(f"bwrap cannot create a sandbox here: {probe.stderr.strip()[:200]}")


def bwrap_unavailable() -> str | None:
    """Why bubblewrap cannot run here, or None when it can (for skipping sandbox tests)."""
    try:
        check_bwrap()
    except SandboxUnavailable as error:
        return str(error)
    return None


def _package_folders() -> list[str]:
    """``site-packages`` / ``dist-packages`` folders on this process's path (a venv's, or ones on PYTHONPATH)."""
    return [p for p in sys.path if Path(p).name in ("site-packages", "dist-packages") and Path(p).is_dir()]


def _extra_package_folders() -> list[str]:
    """Package folders on this process's path that the interpreter would not add by itself (PYTHONPATH)."""
    own = {Path(sysconfig.get_paths()[key]).resolve() for key in ("purelib", "platlib")}
    return [p for p in _package_folders() if Path(p).resolve() not in own]


def unused_package_folders() -> list[Path]:
    """The Python package folders on the worker's file system that its import path does not use: the base
    interpreter's own ``site-packages`` beside a venv, the system Python's ``dist-packages`` under ``/usr``.
    Each is covered by an empty folder in the sandbox, so that no package in it (a second SciPy with its
    ``scipy.cluster``) can be reached by a path around the import system (R2)."""
    used = {Path(p).resolve() for p in _package_folders()}
    found = set()
    for root in {*_python_roots(), Path("/usr"), Path("/usr/local")}:
        for pattern in ("lib/python3*/site-packages", "lib/python3*/dist-packages", "lib/python3/dist-packages",
                        "local/lib/python3*/site-packages", "local/lib/python3*/dist-packages"):
            found.update(path.resolve() for path in root.glob(pattern) if path.is_dir())
    return sorted(folder for folder in found
                  if folder not in used and not any(folder in u.parents or u in folder.parents for u in used))


def _python_roots() -> list[Path]:
    """The interpreter's installation and the environment's packages, without folders inside others."""
    paths = {sys.base_prefix, sys.base_exec_prefix, sys.prefix, sys.exec_prefix,
             sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"], *_package_folders()}
    resolved = sorted({Path(p).resolve() for p in paths if Path(p).exists()})
    return [p for p in resolved if not any(other in p.parents for other in resolved)]


def _namespace_arguments() -> list[str]:
    """Namespaces and privileges: bwrap as root sets up the mounts and the worker drops to 65534 itself;
    as a normal user, bwrap maps that user to 65534 in a new user namespace and disables further ones."""
    common = ["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try",
              "--die-with-parent", "--new-session"]
    if os.geteuid() == 0:
        return [*common, "--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    return [*common, "--unshare-user", "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_GID), "--disable-userns",
            "--cap-drop", "ALL"]


def _directories_above(path: Path) -> list[str]:
    """``--dir`` arguments that create ``path``'s parents traversable (bwrap would make them 0700)."""
    arguments = []
    for parent in reversed(path.parents):
        if str(parent) != "/":
            arguments += ["--perms", "0755", "--dir", str(parent)]
    return arguments


def bwrap_arguments(runtime: Runtime, config: SandboxConfig) -> list[str]:
    """The bubblewrap command line that confines the worker (everything before the program)."""
    own = runtime.folder
    arguments = ["bwrap", *_namespace_arguments(), "--proc", "/proc", "--dev", "/dev",
                 "--perms", "1777", "--size", str(SHM_LIMIT_BYTES), "--tmpfs", "/dev/shm",
                 "--remount-ro", "/dev",  # its tmpfs is unsized, and the sandbox user owns it in a user namespace
                 "--perms", "1777", "--size", str(TMP_LIMIT_BYTES), "--tmpfs", "/tmp",
                 "--ro-bind", "/usr", "/usr"]
    for link in SYSTEM_LINKS:
        if os.path.islink(link):
            arguments += ["--symlink", os.readlink(link), link]
        elif os.path.isdir(link):
            arguments += ["--ro-bind", link, link]
    for name in ETC_FILES:
        if os.path.exists(name):
            arguments += ["--ro-bind", name, name]
    arguments += ["--ro-bind", str(own / "etc" / "passwd"), "/etc/passwd",
                  "--ro-bind", str(own / "etc" / "group"), "/etc/group"]
    for folder in _python_roots():
        if not _inside(folder, [Path("/usr")]):
            arguments += [*_directories_above(folder), "--ro-bind", str(folder), str(folder)]
    for path, stand_in in runtime.hidden:  # over the environment's binds: the real code is not there to run
        arguments += ["--ro-bind", stand_in, path]
    for folder in unused_package_folders():
        arguments += ["--ro-bind", str(own / "empty"), str(folder)]
    arguments += [*_directories_above(Path(RUNTIME_MOUNT)), "--ro-bind", str(own), RUNTIME_MOUNT]
    if config.data is not None:
        arguments += ["--ro-bind", str(config.data), DATA_MOUNT]
    if config.device == "cuda":
        for node in sorted(Path("/dev").glob("nvidia*")):
            arguments += ["--dev-bind", str(node), str(node)]
        for folder in (Path("/usr/local/nvidia"), Path("/usr/local/cuda")):
            if folder.is_dir() and not _inside(folder.resolve(), [Path("/usr")]):
                arguments += [*_directories_above(folder), "--ro-bind", str(folder), str(folder)]
    arguments += ["--remount-ro", "/", "--chdir", "/tmp"]
    return arguments


def _inside(path: Path, folders: list[Path]) -> bool:
    return any(path == f or f in path.parents for f in folders)


def worker_environment(config: SandboxConfig, runtime: str, data: str | None) -> dict[str, str]:
    """A clean environment: one thread, a private matplotlib cache, nothing else of ours."""
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": "/tmp",
        "USER": "nobody",
        "MPLCONFIGDIR": "/tmp/matplotlib",
        "MPLBACKEND": "Agg",
        "PYTHONPATH": os.pathsep.join([runtime, *_extra_package_folders()]),
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONNOUSERSITE": "1",
        "PYTHONHASHSEED": "0",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES", "") if config.device == "cuda" else "",
        "CUBLAS_WORKSPACE_CONFIG": ":4096:8",
    }
    if data is not None:
        env["GRADER_DATA"] = data
    names = ["OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "LANG", "LC_ALL"]
    if config.device == "cuda":
        names.append("LD_LIBRARY_PATH")
    for name in names:
        if name in os.environ:
            env[name] = os.environ[name]
    return env


@lru_cache(maxsize=1)
def seccomp_program() -> bytes | None:
    """The compiled seccomp filter (BPF) handed to bubblewrap, or None where libseccomp is unavailable."""
    try:
        import pyseccomp as seccomp
    except (ImportError, OSError):
        return None
    refused = seccomp.ERRNO(errno.EPERM)
    syscall_filter = seccomp.SyscallFilter(defaction=seccomp.ALLOW)
    for name in ("mount", "umount2", "pivot_root", "unshare", "setns", "ptrace", "bpf", "perf_event_open",
                 "userfaultfd", "io_uring_setup", "io_uring_enter", "io_uring_register", "keyctl", "add_key",
                 "request_key", "open_tree", "move_mount", "fsopen", "fsmount", "fsconfig", "fspick",
                 "kexec_load", "init_module", "finit_module", "delete_module", "reboot", "swapon", "swapoff"):
        try:
            syscall_filter.add_rule(refused, name)
        except (RuntimeError, ValueError, OSError):  # a call this kernel or architecture does not have
            continue
    syscall_filter.add_rule(seccomp.ERRNO(errno.ENOSYS), "clone3")  # glibc then falls back to clone
    # clone() with any CLONE_NEW* flag: NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET
    for flag in (0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000, 0x40000000):
        syscall_filter.add_rule(refused, "clone", seccomp.Arg(0, seccomp.MASKED_EQ, flag, flag))
    with tempfile.TemporaryFile() as file:
        syscall_filter.export_bpf(file)
        file.seek(0)
        return file.read()


def describe() -> str:
    """One line for the CLI and the README: what confines the workers on this machine."""
    privilege = "root grader: bwrap sets up, the worker drops to uid 65534" if os.geteuid() == 0 else \
        "user namespace, uid 65534, no capabilities"
    syscalls = "seccomp filter" if seccomp_program() else "no seccomp filter (libseccomp missing)"
    return f"bubblewrap ({privilege}; {syscalls}); limits: {limits.describe()}"


def describe_none() -> str:
    """One line: what is left of the confinement with ``--sandbox none``."""
    if os.geteuid() == 0:
        return ("none (unsafe: no bubblewrap; the worker drops to uid 65534 before student code runs, but sees the "
                f"host's world-readable files and network); limits: {limits.describe()}")
    return "none (unsafe: student code runs unconfined, as this user)"


def start_worker(runtime: Runtime, config: SandboxConfig) -> tuple[subprocess.Popen, WorkerGroup]:
    """Start a worker process of ``runtime.role`` in its own resource group.

    Its stdin/stdout are the request/answer pipes and its stderr a third pipe of its own, which the trusted
    side drains (:class:`autograder.client.Worker`): no file is shared between workers, so nothing one writes
    can be read back by another (a log file could be reopened through ``/proc/self/fd``).
    """
    group = WorkerGroup.create(config.limits(), name=f"w{os.getpid()}-{runtime.role}-{id(runtime) & 0xFFFFFF:x}",
                               cuda=config.device == "cuda")
    pass_fds: list[int] = []
    seccomp_file = None
    data = config.data
    try:
        if config.mode == "bwrap":
            command = bwrap_arguments(runtime, config)
            program = seccomp_program()
            if program is not None:
                seccomp_file = tempfile.TemporaryFile()
                seccomp_file.write(program)
                seccomp_file.seek(0)
                pass_fds.append(seccomp_file.fileno())
                command += ["--seccomp", str(seccomp_file.fileno())]
            command += [sys.executable, "-m", "sandboxed.worker", "--sandboxed"]
            env = worker_environment(config, RUNTIME_MOUNT, DATA_MOUNT if data else None)
            cwd = None
        elif config.mode == "none":
            command = [sys.executable, "-m", "sandboxed.worker"]
            if os.geteuid() == 0:  # still no student code as root: the worker drops to 65534 (see mode "none")
                command.append("--drop-privileges")
                _traversable(runtime.folder)
            env = worker_environment(config, str(runtime.folder), str(data) if data else None)
            cwd = str(runtime.folder)
        else:
            raise ValueError(f"unknown sandbox mode {config.mode!r} (use 'bwrap' or 'none')")
        process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   env=env, cwd=cwd, start_new_session=True, pass_fds=pass_fds,
                                   preexec_fn=group.preexec)
    except BaseException:
        group.remove()
        raise
    finally:
        if seccomp_file is not None:
            seccomp_file.close()
    return process, group
