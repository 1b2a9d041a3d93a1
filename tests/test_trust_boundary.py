"""The trust boundary's rules, each probed from inside a real worker (docs/threat-model.md).

* R2 (capabilities, not detection): in the ``functions`` worker, which runs ``kmeans``, the forbidden k-means
  packages are not there: no import route, thread or file path reaches their code;
* R3 (nothing of the grader in a worker): each role's import path holds only its own files; the reference
  ``reparameterize`` and the VAE objective are not in the ``functions`` worker, the trusted ``reparameterize``
  is in the ``student`` worker only, and no worker can read the course secret;
* R4 (workers share nothing): each worker's stderr is a pipe of its own, so reopening ``/proc/self/fd/2``
  reaches nothing another worker wrote; the decoder's latents come from the course secret (same secret,
  same draws; another secret, other draws) and on a grid, and the decoder must be smooth in them;
* R6 (no markup): results.json declares every output plain text.

Run with ``DATA_DIR=../shared/datasets python -m pytest tests/test_trust_boundary.py``.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from autograder import config, latents, secret
from autograder.client import Worker
from autograder.failures import StudentError
from autograder.report import write_results_json
from autograder.sandbox import ROLES, SandboxConfig, bwrap_unavailable, module_paths, prepare_runtime

BWRAP_REASON = bwrap_unavailable()
needs_bwrap = pytest.mark.skipif(BWRAP_REASON is not None, reason=f"bubblewrap unavailable: {BWRAP_REASON}")

PROBE_CELL = r'''
import importlib
import os
import stat
import sys
import threading
import _thread


def try_import(name):
    try:
        importlib.import_module(name)
        return "imported"
    except ImportError as error:
        return f"ImportError: {error}"


def import_in_thread(name):
    """The same import from a thread started through _thread (no threading hooks)."""
    done = threading.Event()
    box = []

    def run():
        box.append(try_import(name))
        done.set()

    _thread.start_new_thread(run, ())
    done.wait(60)
    return box[0] if box else "no answer"


def files_on_path():
    """Every file under the import path's folders that are not the Python installation's."""
    found = []
    for folder in sys.path:
        if folder and os.path.isdir(folder) and "-packages" not in folder and "python3" not in folder:
            for root, _, names in os.walk(folder):
                found += [os.path.join(root, name) for name in names]
    return sorted(found)


def readable(path):
    try:
        with open(path, "rb") as file:
            return len(file.read(64))
    except OSError as error:
        return type(error).__name__


def listing(path):
    try:
        return sorted(os.listdir(path))
    except OSError as error:
        return type(error).__name__


def stderr_kind():
    return "pipe" if stat.S_ISFIFO(os.fstat(2).st_mode) else "other"


def shout(text):
    sys.stderr.write(text + "\n")
    sys.stderr.flush()
    return True


def reread_stderr():
    """What reopening this worker's own stderr gives back (non-blocking: a pipe may have nothing to read)."""
    try:
        fd = os.open("/proc/self/fd/2", os.O_RDONLY | os.O_NONBLOCK)
    except OSError as error:
        return f"open: {type(error).__name__}"
    try:
        return os.read(fd, 1 << 20).decode(errors="replace")
    except BlockingIOError:
        return ""
    except OSError as error:
        return f"read: {type(error).__name__}"
    finally:
        os.close(fd)


def environment_text():
    return "\n".join(f"{key}={value}" for key, value in os.environ.items())
'''


@pytest.fixture(scope="module")
def workers(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Worker]:
    """One worker of each role, as the runner makes them (the ``functions`` role without the forbidden modules)."""
    if BWRAP_REASON is not None:
        pytest.skip(f"bubblewrap unavailable: {BWRAP_REASON}")
    folder = tmp_path_factory.mktemp("roles")
    made = {}
    for role in ROLES:
        runtime = prepare_runtime(folder / role, role, hide=config.forbidden_modules() if role == "functions" else ())
        made[role] = Worker([("probe", PROBE_CELL)], runtime, SandboxConfig(), folder / f"{role}.log")
    yield made
    for worker in made.values():
        worker.close()


def _call(worker: Worker, name: str, *args):
    return worker.request("call", name=name, args=list(args), cpu_s=90)["value"]


# -- R2 -------------------------------------------------------------------------------------------------
@needs_bwrap
@pytest.mark.parametrize("module", ["sklearn.cluster", "sklearn.cluster._kmeans", "sklearn.mixture", "scipy.cluster.vq"])
def test_forbidden_packages_do_not_exist_in_the_kmeans_worker(workers, module):
    functions = workers["functions"]
    assert _call(functions, "try_import", module).startswith("ImportError"), module
    assert _call(functions, "import_in_thread", module).startswith("ImportError"), module
    for _, path in module_paths([module.rsplit("._", 1)[0]]):  # the real files are covered, not just unimported
        real = path / "_kmeans.py" if path.is_dir() and (path / "_kmeans.py").exists() else path / "vq.py"
        if real.exists():
            assert _call(functions, "readable", str(real)) == "FileNotFoundError", real


@needs_bwrap
def test_no_package_folder_beside_the_import_path_is_reachable(workers):
    """A blind attacker loaded scipy.cluster from the base interpreter's own site-packages (mounted with the
    interpreter, beside the venv's): every package folder the import path does not use is empty in a worker."""
    from autograder.sandbox import unused_package_folders

    for folder in unused_package_folders():
        assert _call(workers["functions"], "listing", str(folder)) == [], folder
        if (folder / "scipy" / "cluster" / "vq.py").exists():
            assert _call(workers["functions"], "readable", str(folder / "scipy" / "cluster" / "vq.py")) == \
                "FileNotFoundError"


@needs_bwrap
def test_the_notebooks_own_imports_still_work_in_the_kmeans_worker(workers):
    for module in ("sklearn.metrics", "scipy.optimize", "torch", "matplotlib.pyplot", "labtools"):
        assert _call(workers["functions"], "try_import", module) == "imported", module
    assert _call(workers["student"], "try_import", "sklearn.cluster") == "imported"  # hidden in one role only


def test_module_paths_finds_installed_packages_without_importing_them():
    import sys

    was_imported = "scipy.cluster" in sys.modules
    found = dict(module_paths(["sklearn.cluster", "scipy.cluster", "not_a_package.at_all", "faiss"]))
    assert found["sklearn.cluster"].name == "cluster" and found["sklearn.cluster"].is_dir()
    assert found["scipy.cluster"].parent.name == "scipy"
    assert "not_a_package.at_all" not in found
    assert ("scipy.cluster" in sys.modules) == was_imported


# -- R3 -------------------------------------------------------------------------------------------------
@needs_bwrap
def test_each_role_holds_only_its_own_grader_files(workers):
    names = {role: {Path(path).name for path in _call(worker, "files_on_path")} for role, worker in workers.items()}
    assert {"trusted.py", "vae_objective.py"}.isdisjoint(names["functions"]), names["functions"]
    assert "trusted.py" not in names["encoder"] and "vae_objective.py" in names["encoder"]
    assert {"trusted.py", "vae_objective.py", "training.py", "models.py"} <= names["student"]
    for role, found in names.items():  # never the graders, the reference, the runner or the calibration
        assert not {"conftest.py", "autoencoders.ipynb", "runner.py", "calibration.json"} & found, (role, found)


@needs_bwrap
def test_the_reference_is_not_importable_where_it_is_probed(workers):
    functions, encoder = workers["functions"], workers["encoder"]
    for module in ("sandboxed.trusted", "sandboxed.vae_objective", "autograder"):
        assert _call(functions, "try_import", module).startswith("ImportError"), module
    assert _call(encoder, "try_import", "sandboxed.trusted").startswith("ImportError")  # it trains vae_training
    with pytest.raises(StudentError, match="import name 'trusted'|No module named 'sandboxed.trusted'"):
        functions.request("call", name="try_import", args=["x"], trusted=["reparameterize"])


@needs_bwrap
def test_no_worker_sees_the_course_secret(workers):
    value = secret.course_secret()
    for role, worker in workers.items():
        assert _call(worker, "readable", str(secret.secret_file())) in ("FileNotFoundError", "PermissionError"), role
        assert value.hex() not in _call(worker, "environment_text"), role


# -- R4 -------------------------------------------------------------------------------------------------
@needs_bwrap
def test_stderr_is_a_private_pipe(workers):
    marker = f"MARK-{os.getpid()}"
    assert _call(workers["encoder"], "shout", marker)
    for role, worker in workers.items():
        assert _call(worker, "stderr_kind") == "pipe", role
        assert marker not in _call(worker, "reread_stderr"), role


def test_same_secret_same_latents_another_secret_others(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    mu, logvar = torch.randn(500, 2), torch.randn(500, 2) - 1
    purpose = ("VAE", "vae", 0)

    def sent(value: str):
        monkeypatch.setenv(secret.VALUE_VARIABLE, value)
        return latents.crossing("vae", [mu, logvar], purpose)

    first, again, other = sent("11" * 32), sent("11" * 32), sent("22" * 32)
    assert torch.equal(first.sent, again.sent) and torch.equal(first.order, again.order)
    assert not torch.allclose(first.sent, other.sent)
    # with σ → 0 the snapped z still lies within one grid step of μ (and of the encoder's exact numbers, nothing more)
    exact = latents.crossing("vae", [mu, torch.full_like(mu, -60.0)], purpose)
    images = torch.arange(len(exact.sent), dtype=torch.float32)[:, None].repeat(1, 3)
    scored, shifted = exact.split(images)
    step = latents.spread(mu) / latents.GRID_STEPS
    z = exact.sent[scored[:, 0].long()]
    assert torch.all((z.double() - mu.double()).abs() <= step + 1e-6)
    assert not torch.equal(z, mu)  # the low bits did not survive
    moved = exact.sent[shifted[:, 0].long()].double() - z.double()
    ratio = (moved / latents.spread(mu)).norm(dim=1)  # δ is SHIFT × the spread, per dimension, in some direction
    assert torch.allclose(ratio, torch.full((500,), latents.SHIFT, dtype=torch.float64), rtol=0.2)


def test_the_secret_file_is_made_once_and_kept(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.delenv(secret.VALUE_VARIABLE, raising=False)
    monkeypatch.setenv(secret.FILE_VARIABLE, str(tmp_path / "course" / "secret"))
    made = secret.course_secret()
    assert len(made) == secret.SECRET_BYTES and secret.course_secret() == made
    assert (tmp_path / "course" / "secret").stat().st_mode & 0o077 == 0  # only the grader's user reads it
    assert secret.generator("eps").initial_seed() == secret.generator("eps").initial_seed()
    assert secret.generator("eps").initial_seed() != secret.generator("grid").initial_seed()


def test_a_decoder_that_reads_a_code_out_of_z_is_not_smooth():
    """A lookup decoder (z's cell on a fine grid → one of many stored images) against a smooth one."""
    torch.manual_seed(0)
    z = torch.randn(2000, 2)
    crossing = latents.crossing("ae", [z], ("ConvAutoEncoder", "ae", 0))
    stored = torch.rand(10_000, 16)
    cells = torch.floor(crossing.sent * 40).long()
    lookup = stored[(cells[:, 0] * 7919 + cells[:, 1]) % len(stored)]
    smooth = torch.sigmoid(crossing.sent @ torch.randn(2, 16))
    assert latents.smoothness(*crossing.split(lookup)) > 0.8
    assert latents.smoothness(*crossing.split(smooth)) < 0.1


# -- R6 -------------------------------------------------------------------------------------------------
def test_results_json_declares_plain_text(tmp_path: Path):
    check = {"id": "c", "question": "q", "title": "t", "title_ja": "t", "title_en": "t", "passed": False,
             "message": "<img src=x onerror=alert(1)>", "message_ja": "<b>x</b>", "message_en": "<b>x</b>",
             "points": 0.0, "max_points": 1.0}
    result = {"questions": {"q": {"checks": [check]}}, "total": 0.0, "max_total": 1.0}
    path = tmp_path / "results.json"
    write_results_json(path, result)
    document = json.loads(path.read_text())
    assert document["output_format"] == document["test_output_format"] == document["test_name_format"] == "text"
    assert all(test["output_format"] == "text" for test in document["tests"])
