"""``--sandbox none`` under a root grader (Gradescope's containers refuse bubblewrap): the worker still drops to
uid 65534 before any student code runs, so root-only files stay out of its reach, and grading still works."""
from __future__ import annotations

import os
import shutil
import tempfile

import pytest

from autograder import config
from autograder.client import Worker
from autograder.extract import extract_notebook
from autograder.sandbox import SandboxConfig, prepare_runtime, prepare_training_data, training_data_cache

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the privilege drop is for a root grader")

CELL = '''
import os

import labtools
import torch


def identity():
    return [os.getuid(), os.geteuid(), os.getgid()]


def status(field):
    with open("/proc/self/status") as file:
        return next(line.split(":", 1)[1].strip() for line in file if line.startswith(field + ":"))


def run_as_is(path):
    import subprocess

    return subprocess.run([path, "-u"], capture_output=True, text=True).stdout.strip()


def read(path):
    with open(path) as file:
        return file.read()


def write(path):
    with open(path, "w") as file:
        file.write("forged")
    return "written"
'''


@pytest.fixture(scope="module")
def worker(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("none")
    data = prepare_training_data(training_data_cache(), config.datasets())
    cells = [*extract_notebook(config.REFERENCE_NOTEBOOK).cells, ("cell", CELL)]
    made = Worker(cells, prepare_runtime(folder / "runtime"), SandboxConfig(mode="none", data=data),
                  folder / "worker.log")
    yield made
    made.close()


def _call(worker: Worker, name: str, *args):
    return worker.request("call", name=name, args=list(args), cpu_s=60)["value"]


def test_worker_runs_as_nobody(worker):
    assert _call(worker, "identity") == [65534, 65534, 65534]


def test_no_exec_can_give_root_back(worker):
    """no_new_privs is set before the drop: a set-user-ID-root program run by the worker stays uid 65534."""
    assert _call(worker, "status", "NoNewPrivs") == "1"
    assert _call(worker, "status", "CapEff") == "0000000000000000"
    folder = tempfile.mkdtemp(prefix="setuid-")  # directly in /tmp: the worker can reach it
    try:
        os.chmod(folder, 0o755)
        program = os.path.join(folder, "id")
        shutil.copyfile("/usr/bin/id", program)
        os.chown(program, 0, 0)
        os.chmod(program, 0o4755)  # set-user-ID root, as mount or passwd are
        assert _call(worker, "run_as_is", program) == "65534"
    finally:
        shutil.rmtree(folder)


def test_root_only_files_are_out_of_reach(worker, tmp_path):
    secret = tmp_path / "results.json"
    secret.write_text('{"score": 0}')
    secret.chmod(0o600)
    from autograder.failures import StudentError

    for name in ("read", "write"):
        with pytest.raises(StudentError, match="PermissionError"):
            _call(worker, name, str(secret))
    assert secret.read_text() == '{"score": 0}'


def test_the_worker_still_trains(worker):
    """The training split was read before the drop: the grader's loop trains the reference AutoEncoder as usual."""
    trained = worker.request("train", cpu_s=120, name="AutoEncoder", kind="ae", dataset="mnist", n_train=256,
                             epochs=1, batch_size=128, lr=1e-3, seed=0)
    assert len(trained["history"]) == 1 and trained["history"][0] > 0
    assert any(key.endswith("weight") for key in trained["state"])
