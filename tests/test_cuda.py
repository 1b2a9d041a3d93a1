"""The CUDA path (run by `make gpu-check` on a machine with a GPU; skipped elsewhere).

* the sandboxed worker sees the GPU (the device nodes are bound in) and trains on it;
* a CUDA out-of-memory error in one student's call costs that check only: the next call works;
* several workers share one GPU at once (the packing that ``--per-gpu`` relies on).
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

from autograder import config
from autograder.client import Worker
from autograder.failures import StudentError
from autograder.sandbox import SandboxConfig, prepare_runtime, prepare_training_data, training_data_cache

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (make gpu-check)")

CELL = '''
import torch


def allocate(gib):
    return torch.empty(int(gib * 2**30), dtype=torch.uint8, device="cuda").numel()


def on_gpu(n):
    x = torch.randn(n, n, device="cuda")
    return float((x @ x).sum().item() * 0)
'''


@pytest.fixture(scope="module")
def workers(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("cuda")
    runtime = prepare_runtime(folder / "runtime")
    data = prepare_training_data(training_data_cache(), config.datasets())
    made = [Worker([("cell", CELL)], runtime, SandboxConfig(device="cuda", data=data), folder / f"w{i}.log")
            for i in range(4)]
    yield made
    for worker in made:
        worker.close()


def _call(worker: Worker, name: str, *args):
    return worker.request("call", name=name, args=list(args), cpu_s=120)["value"]


def test_the_sandbox_sees_the_gpu(workers):
    assert workers[0].request("environment", cpu_s=120)["cuda"] is True, \
        "torch in the sandbox sees no CUDA device: are /dev/nvidia* and the driver's libraries bound in?"
    assert _call(workers[0], "on_gpu", 512) == 0.0


def test_out_of_memory_costs_one_call(workers):
    total_gib = torch.cuda.get_device_properties(0).total_memory / 2**30
    with pytest.raises(StudentError, match="OutOfMemoryError"):
        _call(workers[1], "allocate", 2 * total_gib)
    assert _call(workers[1], "allocate", 0.5) == 2**29  # the same worker goes on


def test_workers_share_one_gpu(workers):
    with ThreadPoolExecutor(len(workers)) as pool:
        values = list(pool.map(lambda w: _call(w, "on_gpu", 2048), workers))
    assert values == [0.0] * len(workers)


def test_reference_trains_on_cuda_and_passes(tmp_path):
    """The reference ConvVAE trained on the GPU by the grader's loop scores within the calibrated limit."""
    from autograder.bottleneck import held_out_images, train_encode_decode
    from autograder.extract import extract_notebook
    from autograder.scoring import held_out_score

    budget = config.training_budget("conv_vae")
    data = prepare_training_data(training_data_cache(), config.datasets())
    runtime = prepare_runtime(tmp_path / "runtime")
    cells = extract_notebook(config.REFERENCE_NOTEBOOK).cells
    pair = [Worker(cells, runtime, SandboxConfig(device="cuda", data=data), tmp_path / f"{r}.log") for r in "te"]
    try:
        x_eval = held_out_images(budget["dataset"], budget["n_eval"])
        trained = train_encode_decode(*pair, budget, "cuda", x_eval, seed=config.GRADING_SEED)
        value = held_out_score(budget["kind"], trained.images, trained.latents, x_eval, budget["model"])
    finally:
        for worker in pair:
            worker.close()
    limit = config.calibration("cuda")["questions"]["conv_vae"]["threshold"]
    assert value <= limit, (value, limit)
