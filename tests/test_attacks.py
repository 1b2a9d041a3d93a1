"""The attack suite: a student who knows how the grader works tries to escape, read, stall, starve or fool it.

Each attack is a student cell (or a whole notebook) with its expected outcome: no file written outside
the sandbox, no host file read, no other student's score changed, the run finishes, and the attacker
gets no points they did not earn. CI runs this as root, which is how most course servers grade.

* ``attacker``: a worker loaded with the reference solution plus :data:`ATTACK_CELL`, whose decorator
  tries the root escape (bind-mount, unmount, remount read-write, new user namespace) while the
  definitions load;
* raw frames, amplification bombs and garbage written straight onto the worker's answer pipe;
* fork bomb, ``/dev/shm`` and ``/tmp`` fills and memory hogs, also graded **concurrently** with a
  correct submission whose score must not change;
* models that peek at the held-out images, a patched training loop, test files read from the model;
* feedback as a side channel, a ``kmeans`` that wraps scikit-learn, and a hand-written empty figure.

Run with ``DATA_DIR=../shared/datasets python -m pytest tests/test_attacks.py``.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import resource
import subprocess
import sys
import time
import uuid
from pathlib import Path

import nbformat
import pytest

from autograder import limits
from autograder.client import Worker
from autograder.extract import extract_notebook
from autograder.failures import CheckTimeout, StudentError, WorkerCrashed
from autograder.sandbox import REPO_ROOT, SandboxConfig, bwrap_unavailable, prepare_runtime, prepare_training_data

REFERENCE = REPO_ROOT / "examples" / "submitted" / "reference" / "autoencoders" / "autoencoders.ipynb"
SOLUTION = REPO_ROOT / "solutions" / "autoencoders.ipynb"
CONFTEST = REPO_ROOT / "autograder" / "graders" / "conftest.py"
TOKEN = uuid.uuid4().hex[:12]
SECRET = f"SECRET-{TOKEN}"
# A memory cap counts real memory under cgroups; under the rlimit fallback it caps the address space, which
# importing torch alone needs about 4 GB of.
MEMORY_GB = 2 if limits.detect() != "rlimit" else 6


BWRAP_REASON = bwrap_unavailable()
pytestmark = pytest.mark.skipif(BWRAP_REASON is not None, reason=f"bubblewrap unavailable: {BWRAP_REASON}")

ATTACK_CELL = r'''
import ctypes
import os
import socket
import struct
import sys
import time

ESCAPE = {}
MS_BIND, MS_REC, MS_REMOUNT = 0x1000, 0x4000, 0x20


def _try(name, action):
    try:
        ESCAPE[name] = ["ok", repr(action())[:200]]
    except BaseException as error:
        ESCAPE[name] = [type(error).__name__, str(error)[:200]]


def _c_call(function, *args):
    libc = ctypes.CDLL(None, use_errno=True)
    result = getattr(libc, function)(*args)
    if result != 0:
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
    return result


def _escape(decorated):
    # runs while the worker loads the definitions, before any check
    os.makedirs("/tmp/host", exist_ok=True)
    _try("bind_root", lambda: _c_call("mount", b"/", b"/tmp/host", None, MS_BIND | MS_REC, None))
    _try("umount_runtime", lambda: _c_call("umount2", b"/opt/grader", 2))
    _try("remount_usr_rw", lambda: _c_call("mount", None, b"/usr", None, MS_REMOUNT | MS_BIND, None))
    _try("unshare_user", lambda: _c_call("unshare", 0x10000000))
    _try("unshare_mount", lambda: _c_call("unshare", 0x00020000))
    _try("setuid_root", lambda: os.setuid(0))
    _try("chroot", lambda: os.chroot("/tmp"))
    _try("pid1_root", lambda: "the sandbox's own root" if sorted(os.listdir("/proc/1/root/")) == sorted(os.listdir("/"))
         else os.listdir("/proc/1/root/"))
    return decorated


@_escape
def escape_report():
    return ESCAPE


def status():
    with open("/proc/self/status") as file:
        fields = dict(line.split(":", 1) for line in file if ":" in line)
    return {name: fields[name].strip() for name in ("Uid", "Gid", "CapPrm", "CapEff", "CapAmb", "NoNewPrivs",
                                                    "Seccomp")}


def visible(paths):
    return [path for path in paths if os.path.exists(path)]


def try_write(path, text):
    with open(path, "w") as file:
        file.write(text)
    return "written"


def fill(folder, total_mib):
    written = 0
    try:
        for index in range(total_mib // 4):
            with open(os.path.join(folder, f"fill-{index}"), "wb") as file:
                file.write(b"x" * (4 << 20))
            written += 4
    except OSError as error:
        return [written, type(error).__name__, error.errno]
    return [written, "", 0]


def squeeze(tmp_mib, allocate_mib):
    """Put tmp_mib in /tmp, then allocate (and touch) allocate_mib."""
    if tmp_mib:
        fill("/tmp", tmp_mib)
    blocks = [bytearray(1 << 20) for _ in range(allocate_mib)]
    for block in blocks:
        block[::4096] = b"y" * len(block[::4096])
    return len(blocks)


def fork_bomb(seconds):
    made, refused = 0, 0
    stop = time.monotonic() + seconds
    while time.monotonic() < stop and refused < 50 and made < 256:
        try:
            pid = os.fork()
        except OSError:
            refused += 1
            continue
        if pid == 0:
            time.sleep(60)
            os._exit(0)
        made += 1
    return [made, refused]


def _answer_pipe():
    frame = sys._getframe()
    while frame is not None:
        if "answers" in frame.f_locals:
            return frame.f_locals["answers"]
        frame = frame.f_back
    raise RuntimeError("answer pipe not found")


def raw_frame(kind):
    pipe = _answer_pipe()
    header = struct.Struct(">4sQQ")
    if kind == "garbage":
        pipe.write(os.urandom(4096))
    elif kind == "huge":
        pipe.write(header.pack(b"AGv2", 1 << 40, 1 << 40))
    elif kind == "deep_json":
        body = b"[" * ((1 << 20) - 16)
        pipe.write(header.pack(b"AGv2", len(body), 0) + body)
    elif kind == "wide_json":
        body = b"[" + b"0," * ((1 << 19) - 8) + b"0]"
        pipe.write(header.pack(b"AGv2", len(body), 0) + body)
    elif kind == "stride_bomb":
        meta = b'{"t0":{"dtype":"F32","shape":[1073741824,1073741824],"data_offsets":[0,4]}}'
        blob = struct.pack("<Q", len(meta)) + meta + b"\0\0\0\0"
        body = b'{"ok": true, "value": {"$tensor": "t0"}}'
        pipe.write(header.pack(b"AGv2", len(body), len(blob)) + body + blob)
    elif kind == "pickle":
        pipe.write(b"\x80\x04" + b"\x8f" * 100000)
    pipe.flush()
    time.sleep(120)
'''


# -- fixtures --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return prepare_runtime(tmp_path_factory.mktemp("runtime"))


@pytest.fixture(scope="module")
def train_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return prepare_training_data(tmp_path_factory.mktemp("train-data"), ["mnist"])


@pytest.fixture(scope="module")
def conftest_digest() -> str:
    return hashlib.sha256(CONFTEST.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def attacker(runtime: Path, train_data: Path, conftest_digest: str,
             tmp_path_factory: pytest.TempPathFactory) -> Worker:
    cells = [*extract_notebook(SOLUTION).cells, ("attack", ATTACK_CELL)]
    log = tmp_path_factory.mktemp("attacker") / "worker.log"
    with Worker(cells, runtime, SandboxConfig(data=train_data, memory_gb=MEMORY_GB), log) as worker:
        worker.request("environment")
        assert worker.loaded["failed"] == [], worker.loaded["failed"]
        yield worker


def _call(worker: Worker, name: str, *args, timeout: float = 60.0):
    return worker.request("call", name=name, args=list(args), cpu_s=timeout)["value"]


# -- notebooks graded by the real engine (started early: they run while the worker tests run) -----------
PEEKING_MODELS = r'''
import torch
from torch import nn


class Peeker(nn.Module):
    """A decoder that ignores z and returns what forward parked on it (else a learnt constant image)."""

    def __init__(self, shape):
        super().__init__()
        self.shape = shape
        self.logits = nn.Parameter(torch.zeros(shape))
        self.parked = None

    def forward(self, z):
        image = torch.sigmoid(self.logits).expand(len(z), *self.shape) + 0 * z.sum()
        if self.parked is not None and len(self.parked) == len(z):
            image = 0.999 * self.parked.clamp(1e-4, 1 - 1e-4) + 0.001 * image
        return image


def _stolen_test_images():
    for path in ("/work/shared/datasets/MNIST/raw/t10k-images-idx3-ubyte", "/srv/data/t10k-images-idx3-ubyte"):
        try:
            with open(path, "rb") as file:
                return file.read()
        except OSError:
            continue
    return None


class ConvAutoEncoder(nn.Module):
    def __init__(self, in_channels=1, image_size=28, latent_dim=2):
        super().__init__()
        self.stolen = _stolen_test_images()
        self.encoder = nn.Sequential(nn.Conv2d(in_channels, 4, 3, 2, 1), nn.ReLU(), nn.Flatten(),
                                     nn.Linear(4 * (image_size // 2) ** 2, latent_dim))
        self.decoder = Peeker((in_channels, image_size, image_size))

    def forward(self, x):
        encoded = self.encoder(x)
        self.decoder.parked = x.detach()
        return encoded, self.decoder(encoded)


class ConvVAE(nn.Module):
    def __init__(self, in_channels=1, image_size=28, latent_dim=2):
        super().__init__()
        self.encoder = nn.Sequential(nn.Conv2d(in_channels, 4, 3, 2, 1), nn.ReLU(), nn.Flatten())
        self.fc_mu = nn.Linear(4 * (image_size // 2) ** 2, latent_dim)
        self.fc_logvar = nn.Linear(4 * (image_size // 2) ** 2, latent_dim)
        self.decoder = Peeker((in_channels, image_size, image_size))

    def forward(self, x):
        h = self.encoder(x)
        mu, logvar = self.fc_mu(h), self.fc_logvar(h)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        self.decoder.parked = x.detach()
        return self.decoder(z), mu, logvar


class VAE(ConvVAE):
    def __init__(self, latent_dim=2):
        super().__init__(1, 28, latent_dim)
'''

PATCHED_LOOP = r'''
import sandboxed.training


def _no_training(model, x, kind, **budget):
    return [100.0] * budget["epochs"]


def _patch(decorated):
    sandboxed.training.fit = _no_training
    return decorated


@_patch
class ConvVAE(ConvVAE):  # the reference's class again: a graded name, so the worker loads this (and the patch)
    pass
'''

LEAKY = r'''
def _leak_path():
    return "/srv/nbgrader/exchange/ae-vae-lab/inbound/alice+autoencoders/autoencoders.ipynb"


def reparameterize(mu, logvar):
    raise ValueError(_leak_path() + " " + "SECRET" * 2000)
'''

WRAPPER_KMEANS = r'''
import torch
from sklearn.cluster import KMeans


def kmeans(x, n_clusters, n_iters=100, seed=0):
    model = KMeans(n_clusters=n_clusters, n_init=10, random_state=seed).fit(x.numpy())
    return torch.as_tensor(model.labels_), torch.as_tensor(model.cluster_centers_, dtype=x.dtype)
'''

# The source policy does not see KMeans reached through scikit-learn's registry of estimators (sklearn.utils is
# allowed); in the worker that runs kmeans, sklearn.cluster is not installed, so the registry cannot load it.
REGISTRY_KMEANS = r'''
import torch
from sklearn.utils import all_estimators


def kmeans(x, n_clusters, n_iters=100, seed=0):
    model = dict(all_estimators())["KMeans"](n_clusters=n_clusters, n_init=10, random_state=seed).fit(x.numpy())
    return torch.as_tensor(model.labels_), torch.as_tensor(model.cluster_centers_, dtype=x.dtype)
'''

# A module written into the sandbox's /tmp at run time, out of the source policy's sight: /tmp (the worker's
# working folder) is not on sys.path, so the import fails.
SMUGGLED_KMEANS = r'''
import torch


def kmeans(x, n_clusters, n_iters=100, seed=0):
    with open("/tmp/smuggled.py", "w") as file:
        file.write("from sklearn.clu" + "ster import KMeans\n")
    import smuggled
    model = smuggled.KMeans(n_clusters=n_clusters, n_init=10, random_state=seed).fit(x.numpy())
    return torch.as_tensor(model.labels_), torch.as_tensor(model.cluster_centers_, dtype=x.dtype)
'''

FORK_BOMB = r'''
import os
import time

import torch


def reparameterize(mu, logvar):
    stop = time.monotonic() + 3
    while time.monotonic() < stop:
        try:
            if os.fork() == 0:
                time.sleep(60)
                os._exit(0)
        except OSError:
            pass
    return mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
'''

MEMORY_HOG = r'''
def reparameterize(mu, logvar):
    blocks = []
    while True:
        blocks.append(bytearray(64 << 20))
'''

DEV_FILL = r'''
import os

import torch


def reparameterize(mu, logvar):
    for folder in ("/dev/shm", "/tmp", "/dev"):
        try:
            for index in range(1000):
                with open(f"{folder}/fill-{index}", "wb") as file:
                    file.write(b"x" * (4 << 20))
        except OSError:
            pass
    return mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
'''


def _student_notebook(folder: Path, student: str, cell: str, empty_figures: bool = False) -> Path:
    """The reference submission with ``cell`` appended (its definitions override the earlier ones)."""
    notebook = nbformat.read(REFERENCE, as_version=4)
    notebook.cells.append(nbformat.v4.new_code_cell(cell))
    if empty_figures:
        for each in notebook.cells:
            if each.get("metadata", {}).get("nbgrader", {}).get("grade_id", "").startswith("fig_kmeans"):
                each.outputs = [nbformat.v4.new_output("display_data", data={"image/png": "", "text/plain": "x"})]
    path = folder / student / "autoencoders" / "autoencoders.ipynb"
    path.parent.mkdir(parents=True)
    nbformat.write(notebook, path)
    return path


CLASSES = {
    # name: (students {id: cell or None}, -k expression, extra options)
    "peeking": ({"peeker": PEEKING_MODELS}, "trains or held_out", []),
    "patched_loop": ({"patcher": PATCHED_LOOP}, "conv_vae and trains", []),
    "concurrent": ({"reference": None, "fork_bomb": FORK_BOMB, "memory_hog": MEMORY_HOG, "dev_fill": DEV_FILL},
                   "reparameterize", ["--jobs", "4", "--memory-gb", str(MEMORY_GB)]),
    # --lang en: one rendering of each message (the default, both, shows the same student text once per language)
    "side_channels": ({"leaky": LEAKY, "wrapper": WRAPPER_KMEANS, "registry": REGISTRY_KMEANS,
                       "smuggler": SMUGGLED_KMEANS}, "reparameterize or kmeans or notebook_shows",
                      ["--jobs", "2", "--lang", "en"]),
}


@pytest.fixture(scope="module")
def graded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[subprocess.Popen, Path]]:
    """Start ``python -m autograder grade`` on each attack class at once; tests wait for the one they need."""
    started = {}
    for name, (students, select, options) in CLASSES.items():
        folder = tmp_path_factory.mktemp(f"class-{name}")
        for student, cell in students.items():
            _student_notebook(folder / "submitted", student, cell or "", empty_figures=student == "wrapper")
        out = folder / "grades"
        process = subprocess.Popen([sys.executable, "-m", "autograder", "grade", str(folder / "submitted"),
                                    "--out", str(out), "-k", select, *options], cwd=REPO_ROOT,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        started[name] = (process, out, time.monotonic())
    yield started
    for process, _, _ in started.values():
        if process.poll() is None:
            process.kill()
            process.communicate()


@pytest.fixture(scope="module", autouse=True)
def _start_classes_early(request: pytest.FixtureRequest) -> None:
    if any("graded" in getattr(item, "fixturenames", ()) for item in request.session.items):
        request.getfixturevalue("graded")


def _results(graded: dict, name: str) -> tuple[dict[str, dict], float]:
    process, out, started = graded[name]
    output, _ = process.communicate(timeout=600)
    seconds = time.monotonic() - started
    assert process.returncode == 0, output[-3000:]
    results = {folder.name: json.loads((folder / "results.json").read_text())
               for folder in out.iterdir() if (folder / "results.json").exists()}
    return results, seconds


def _checks(result: dict) -> dict[str, dict]:
    return {test["name"]: test for test in result["tests"]}


# -- 1. no privilege, no escape ---------------------------------------------------------------------
def test_worker_has_no_privilege(attacker):
    """Inside, the worker is uid/gid 65534 with no capability, no new privileges, and a seccomp filter."""
    status = _call(attacker, "status")
    assert status["Uid"].split() == ["65534"] * 4 and status["Gid"].split() == ["65534"] * 4, status
    for name in ("CapPrm", "CapEff", "CapAmb"):
        assert int(status[name], 16) == 0, status
    assert status["NoNewPrivs"] == "1", status
    assert status["Seccomp"] == "2", status  # filter mode


def test_root_escape_fails_at_load_time(attacker, conftest_digest):
    """Bind-mounting /, unmounting, remounting read-write, new namespaces, setuid(0) and chroot all fail."""
    report = _call(attacker, "escape_report")
    assert set(report) == {"bind_root", "umount_runtime", "remount_usr_rw", "unshare_user", "unshare_mount",
                           "setuid_root", "chroot", "pid1_root"}
    for name, (outcome, detail) in report.items():
        if name == "pid1_root" and outcome == "ok":  # a normal user's grader: pid 1 is bwrap, as the same user
            assert detail == repr("the sandbox's own root"), detail
            continue
        assert outcome in ("OSError", "PermissionError"), f"{name}: {outcome} {detail}"
        # EINVAL: under a normal user's grader, uid 0 does not exist in the sandbox's user namespace
        assert re.search("Operation not permitted|Permission denied|Invalid argument", detail), f"{name}: {detail}"
    assert hashlib.sha256(CONFTEST.read_bytes()).hexdigest() == conftest_digest


def test_host_files_are_not_there(attacker, tmp_path_factory, request):
    """Nothing of the host outside the allowlist exists inside: secrets, homes, exchange, repo, test split."""
    exchange = tmp_path_factory.mktemp("exchange") / "ae-vae-lab" / "inbound" / "alice+autoencoders"
    exchange.mkdir(parents=True)
    (exchange / "autoencoders.ipynb").write_text(SECRET)
    data_dir = Path(os.environ.get("DATA_DIR", "data")).resolve()
    home_secret = Path.home() / f".secret-{TOKEN}"  # the home folder may exist inside only as a mount's parent
    home_secret.write_text(SECRET)
    request.addfinalizer(home_secret.unlink)
    host = [str(exchange), str(exchange / "autoencoders.ipynb"), "/etc/shadow", "/etc/hostname", "/root/.bashrc",
            "/home", "/srv", "/var", str(home_secret), str(REPO_ROOT / "solutions"), str(CONFTEST),
            str(REPO_ROOT / "autograder" / "calibration.json"), str(REPO_ROOT / ".git"), str(data_dir),
            str(data_dir / "MNIST" / "raw" / "t10k-images-idx3-ubyte"), "/sys/fs/cgroup", "/run", "/boot"]
    assert Path("/etc/hostname").exists() and (data_dir / "MNIST" / "raw" / "t10k-images-idx3-ubyte").exists()
    assert _call(attacker, "visible", host) == []
    assert _call(attacker, "visible", ["/opt/grader-data/mnist.safetensors", "/usr/lib", "/tmp"]) == \
        ["/opt/grader-data/mnist.safetensors", "/usr/lib", "/tmp"]


@pytest.mark.parametrize("path", ["/usr/pwned", "/opt/grader/sandboxed/probes.py", "/opt/grader-data/x", "/pwned",
                                  "/dev/pwned", "/etc/passwd"])
def test_read_only_everywhere_but_tmp(attacker, path):
    """Every mounted path is read-only (or not writable by uid 65534); only /tmp and /dev/shm take writes."""
    with pytest.raises(StudentError) as caught:
        _call(attacker, "try_write", path, "pwned")
    assert caught.value.error in ("OSError", "PermissionError", "FileNotFoundError"), str(caught.value)


# -- 2. resources ---------------------------------------------------------------------------------------
def test_fork_bomb_is_held_to_the_process_cap(attacker):
    """A fork bomb gets at most ~128 processes (the worker's group), then EAGAIN; the next call restarts fine.

    The bomb runs until it is refused or has 256 children (forking a process that holds torch is slow on a
    loaded machine: CI once made only 114 forks in 10 s), so it cannot pass by running out of time.
    """
    if MEMORY_GB == 6:
        pytest.skip("rlimit fallback: RLIMIT_NPROC counts all of the grading user's processes (see the README)")
    made, refused = _call(attacker, "fork_bomb", 150, timeout=180.0)
    assert refused > 0 and made < 128, (made, refused)
    attacker.close()  # kills the sleeping children with the worker's group
    assert _call(attacker, "status")["Uid"].startswith("65534")


@pytest.mark.parametrize(("folder", "cap_mib"), [("/dev/shm", 64), ("/tmp", 256)])
def test_tmpfs_fills_stop_at_their_size(attacker, folder, cap_mib):
    """Writing 1 GiB into /dev/shm or /tmp stops at the mount's size with ENOSPC, inside the sandbox only."""
    written, error, code = _call(attacker, "fill", folder, 1024)
    assert error == "OSError" and code == 28 and written <= cap_mib, (written, error, code)  # ENOSPC
    attacker.close()


def test_tmpfs_counts_against_the_memory_cap(attacker):
    """An allocation 128 MiB under the cap survives; after 256 MiB written to /tmp the same one is killed."""
    cap_mib = MEMORY_GB * 1024
    for fill_tmp in (False, True):
        attacker.close()
        _call(attacker, "status")  # a fresh worker
        if "memory" not in attacker.group.controllers:
            pytest.skip("no writable memory cgroup here: rlimits do not count tmpfs")
        used_mib = attacker.group.current_memory() // 2**20
        allocate = cap_mib - used_mib - 128
        if not fill_tmp:
            assert _call(attacker, "squeeze", 0, allocate, timeout=120) == allocate
        else:
            with pytest.raises(WorkerCrashed, match=f"more than its {MEMORY_GB} GB of memory"):
                _call(attacker, "squeeze", 256, allocate, timeout=120)
    attacker.close()


# -- 3. the answer pipe ------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["garbage", "huge", "deep_json", "wide_json", "stride_bomb", "pickle"])
def test_raw_frames_cost_only_the_check(attacker, kind):
    """Whatever the student writes on the answer pipe, that check fails fast and this process stays small."""
    _call(attacker, "status")  # a running worker, so that only the attack is timed
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.monotonic()
    with pytest.raises((WorkerCrashed, CheckTimeout, StudentError)) as caught:
        _call(attacker, "raw_frame", kind, timeout=20)
    assert time.monotonic() - started < 5, f"{kind}: took {time.monotonic() - started:.1f} s"
    assert "invalid answer" in str(caught.value), str(caught.value)
    growth_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
    assert growth_mib < 200, f"{kind}: this process grew by {growth_mib:.0f} MiB"
    assert _call(attacker, "status")["Uid"].startswith("65534")  # a fresh worker answers the next check


# -- 4. the training checks -------------------------------------------------------------------------
def test_models_that_peek_at_the_held_out_images_fail(graded):
    """Decoders that ignore z and replay what forward parked on them fail both conv training questions; the
    peeker's own VAE is never trained (vae_training trains the template's VAE, which passes with the reference's
    reparameterize that this notebook keeps)."""
    results, _ = _results(graded, "peeking")
    checks = _checks(results["peeker"])
    scored = {name: test for name, test in checks.items() if "within" in test["name"] or "score" in test["name"]}
    assert len(scored) == 3, sorted(checks)
    for name, test in scored.items():
        if name.startswith("vae_training"):
            assert test["status"] == "passed", (name, test["output"])
            continue
        assert test["status"] == "failed" and test["score"] == 0, (name, test)
        assert "ignores z" in test["output"], (name, test["output"])


def test_a_patched_training_loop_earns_nothing(graded):
    """Replacing the grader's training loop inside the worker leaves an untrained model that fails. (The patch
    rides on a redefinition of ConvVAE: code that no graded name reaches is never loaded, autograder/needed.py.)"""
    results, _ = _results(graded, "patched_loop")
    checks = _checks(results["patcher"])
    assert len(checks) == 1, sorted(checks)
    (test,) = checks.values()
    assert test["status"] == "failed" and test["score"] == 0, test
    assert any(words in test["output"] for words in ("the limit is", "ignores z", "not smooth in z")), test


# -- 5. concurrent hostile submissions ------------------------------------------------------------------------
def test_hostile_neighbours_change_nothing_for_a_correct_submission(graded):
    """A fork bomb, a memory hog and /dev fills graded at the same time as a correct submission: it keeps
    full marks, every hostile run finishes, and the hog is told it ran out of its own memory."""
    results, seconds = _results(graded, "concurrent")
    assert set(results) == {"reference", "fork_bomb", "memory_hog", "dev_fill"}
    assert results["reference"]["score"] == 15, _checks(results["reference"])
    assert all(test["status"] == "passed" for test in results["reference"]["tests"])
    hog = _checks(results["memory_hog"])
    assert all(test["score"] == 0 for test in hog.values())
    assert any(f"more than its {MEMORY_GB} GB of memory" in test["output"] or "MemoryError" in test["output"]
               for test in hog.values()), hog
    assert seconds < 400, seconds


# -- 6. feedback as a side channel, source policy, figures --------------------------------------------
def test_feedback_carries_little_student_text_and_no_host_path(graded):
    """A 12 KB exception message with a path in it: at most 2 KB of student text per submission, no paths."""
    results, _ = _results(graded, "side_channels")
    process, out, _ = graded["side_channels"]
    leaky = out / "leaky"
    text = (leaky / "results.json").read_text() + (leaky / "feedback.html").read_text()
    assert "SECRET" in text  # the message did get through, clipped
    assert text.count("SECRET") * len("SECRET") <= 2048
    for fragment in ("/srv/nbgrader", "exchange/ae-vae-lab", str(REPO_ROOT), str(out)):
        assert fragment not in text, fragment


def test_kmeans_wrapping_scikit_learn_scores_zero(graded):
    """kmeans that calls sklearn.cluster.KMeans: the source policy names it and voids the question (in the worker
    that runs kmeans, the cell's import fails: sklearn.cluster is not installed there)."""
    results, _ = _results(graded, "side_channels")
    checks = _checks(results["wrapper"])
    kmeans = {name: test for name, test in checks.items() if name.startswith("kmeans:")}
    assert len(kmeans) >= 5 and all(test["score"] == 0 for test in kmeans.values()), kmeans
    policy = [test for test in kmeans.values() if "sklearn.cluster.KMeans" in test["output"]]
    assert len(policy) == 1 and policy[0]["status"] == "failed"
    assert "sklearn.cluster is not available in this grading worker" in results["wrapper"]["output"]


def test_kmeans_reaching_scikit_learn_out_of_the_source_checks_sight_scores_zero(graded):
    """KMeans taken from scikit-learn's estimator registry passes the source policy, but sklearn.cluster is not
    there to load; a module written to /tmp at run time cannot be imported."""
    results, _ = _results(graded, "side_channels")
    for student, words in (("registry", "sklearn.cluster is not available in this grading worker"),
                           ("smuggler", "ModuleNotFoundError")):
        kmeans = {name: test for name, test in _checks(results[student]).items() if name.startswith("kmeans:")}
        policy = [test for test in kmeans.values() if "ready-made implementation" in test["name"]]
        assert len(policy) == 1 and policy[0]["status"] == "passed", policy  # the source check saw nothing
        others = [test for test in kmeans.values() if test not in policy]
        assert len(others) >= 5 and all(test["score"] == 0 and words in test["output"] for test in others), others


def test_an_empty_png_is_not_a_figure(graded):
    """A hand-written {"image/png": ""} output does not count as the cluster figures."""
    results, _ = _results(graded, "side_channels")
    figure = [test for name, test in _checks(results["wrapper"]).items() if "contains the k-means figures" in name]
    assert len(figure) == 1 and figure[0]["status"] == "failed", figure
    assert "not a real plot" in figure[0]["output"]
