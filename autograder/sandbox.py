"""How the untrusted worker process is started: bubblewrap, resource limits and a clean environment.

With ``mode="bwrap"`` (the default) the worker runs under `bubblewrap <https://github.com/containers/bubblewrap>`_:

* the whole file system read-only (``--ro-bind / /``), a private empty ``/tmp`` of 256 MiB,
  minimal ``/dev`` and ``/proc``;
* the grader's repository (hidden tests, reference solution), the submissions and the output
  folder hidden under empty read-only tmpfs mounts; only the Python environment, the dataset folder and
  the worker's own files (:mod:`autograder.sandboxed` and the student-facing ``labtools.py``) are
  bound back, read-only;
* no network, its own PID/IPC/UTS namespaces, killed when the grader dies (``--die-with-parent``),
  no controlling terminal (``--new-session``).

In both modes the process gets a memory cap (``RLIMIT_AS`` on the CPU, ``RLIMIT_DATA`` with CUDA),
a cap on the size of any file it writes, no core dumps, one CPU thread, and an environment that
holds nothing of the grader's.
``mode="none"`` skips bubblewrap (for machines without it); it is unsafe with untrusted code.
"""
from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
import sysconfig
from dataclasses import dataclass, field
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parent
RUNTIME_MOUNT = "/tmp/grader-runtime"
LOG_LIMIT_BYTES = 8 * 2**20
TMP_LIMIT_BYTES = 256 * 2**20  # the worker's private /tmp lives in RAM, outside the memory cap: keep it small


class SandboxUnavailable(RuntimeError):
    """bubblewrap is missing or cannot create its namespaces here."""


@dataclass
class SandboxConfig:
    """How to confine one worker."""

    mode: str = "bwrap"  # "bwrap" or "none"
    memory_gb: float = 6.0
    device: str = "cpu"  # "cpu" or "cuda"
    data_dir: Path = field(default_factory=lambda: Path(os.environ.get("DATA_DIR", "data")).resolve())
    hidden: list[Path] = field(default_factory=list)  # extra folders to hide (submissions, output)


def prepare_runtime(folder: Path) -> Path:
    """Copy what the worker may see into ``folder``: the ``sandboxed`` package and ``labtools.py``."""
    shutil.copytree(PACKAGE_DIR / "sandboxed", folder / "sandboxed",
                    ignore=shutil.ignore_patterns("__pycache__"), dirs_exist_ok=True)
    shutil.copy2(REPO_ROOT / "assignment" / "labtools.py", folder / "labtools.py")
    return folder


def check_bwrap() -> None:
    """Raise :class:`SandboxUnavailable` with a one-line reason if bubblewrap cannot run here."""
    if shutil.which("bwrap") is None:
        raise SandboxUnavailable("bubblewrap (bwrap) is not installed: apt-get install bubblewrap, "
                                 "or pass --sandbox none to run student code unconfined (unsafe)")
    probe = subprocess.run(["bwrap", "--ro-bind", "/", "/", "--unshare-all", "--die-with-parent", "true"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        raise SandboxUnavailable(f"bwrap cannot create a sandbox here: {probe.stderr.strip()[:200]}")


def _python_roots() -> list[Path]:
    paths = {sys.prefix, sys.exec_prefix, sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    return sorted({Path(p).resolve() for p in paths})


def _inside(path: Path, folders: list[Path]) -> bool:
    return any(path == f or f in path.parents for f in folders)


def bwrap_arguments(runtime: Path, config: SandboxConfig) -> list[str]:
    """The bubblewrap command line that confines the worker (everything before the program)."""
    hidden = sorted({REPO_ROOT, *(p.resolve() for p in config.hidden)})
    arguments = ["bwrap", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
                 "--size", str(TMP_LIMIT_BYTES), "--tmpfs", "/tmp"]
    if config.device == "cuda":
        for node in sorted(Path("/dev").glob("nvidia*")):
            arguments += ["--dev-bind", str(node), str(node)]
    masked = [folder for folder in hidden if folder.exists() and not _inside(Path("/tmp"), [folder])]
    for folder in masked:
        arguments += ["--tmpfs", str(folder)]
    # Bind back, read-only, what the worker needs from inside the hidden folders.
    for folder in [*_python_roots(), config.data_dir]:
        if folder.exists() and _inside(folder, hidden):
            arguments += ["--ro-bind", str(folder), str(folder)]
    # The empty tmpfs mounts are writable: make them read-only, after the bind-backs created their mount points.
    for folder in masked:
        arguments += ["--remount-ro", str(folder)]
    arguments += ["--ro-bind", str(runtime), RUNTIME_MOUNT, "--chdir", "/tmp",
                  "--unshare-all", "--die-with-parent", "--new-session"]
    return arguments


def worker_environment(config: SandboxConfig, runtime: str) -> dict[str, str]:
    """A clean environment: one thread, a private matplotlib cache, the data folder, nothing else of ours."""
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": "/tmp",
        "MPLCONFIGDIR": "/tmp/matplotlib",
        "MPLBACKEND": "Agg",
        "PYTHONPATH": runtime,
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONHASHSEED": "0",
        "DATA_DIR": str(config.data_dir),
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES", "") if config.device == "cuda" else "",
        "CUBLAS_WORKSPACE_CONFIG": ":4096:8",
    }
    for name in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "LANG", "LC_ALL"):
        if name in os.environ:
            env[name] = os.environ[name]
    return env


def _limits(memory_bytes: int, cuda: bool):
    def apply() -> None:
        # The CUDA driver reserves a huge virtual address space, so with CUDA cap the data segment instead.
        limit = resource.RLIMIT_DATA if cuda else resource.RLIMIT_AS
        resource.setrlimit(limit, (memory_bytes, memory_bytes))
        resource.setrlimit(resource.RLIMIT_FSIZE, (LOG_LIMIT_BYTES, LOG_LIMIT_BYTES))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    return apply


def start_worker(runtime: Path, config: SandboxConfig, log_path: Path) -> subprocess.Popen:
    """Start a worker process; its stdin/stdout are the request/answer pipes, stderr goes to ``log_path``."""
    if config.mode == "bwrap":
        command = [*bwrap_arguments(runtime, config), sys.executable, "-m", "sandboxed.worker"]
        env = worker_environment(config, RUNTIME_MOUNT)
        cwd = None
    elif config.mode == "none":
        command = [sys.executable, "-m", "sandboxed.worker"]
        env = worker_environment(config, str(runtime))
        cwd = str(log_path.parent)
    else:
        raise ValueError(f"unknown sandbox mode {config.mode!r} (use 'bwrap' or 'none')")
    with open(log_path, "ab") as log:
        return subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, env=env,
                                cwd=cwd, start_new_session=True,
                                preexec_fn=_limits(int(config.memory_gb * 2**30), config.device == "cuda"))
