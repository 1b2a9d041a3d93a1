"""The worker's run-time watch (autograder/sandboxed/watch.py): it names the forbidden code a function ran.

Run here in-process, as the worker runs it; tests/test_attacks.py grades such notebooks in the sandbox.
"""
from __future__ import annotations

import sys
from pathlib import Path
import threading

import numpy as np
import pytest

from autograder.sandboxed.watch import package_files, watching

FORBID = ["sklearn.cluster", "sklearn.mixture", "scipy.cluster", "faiss", "not_a_package.at_all"]
POINTS = np.random.default_rng(0).normal(size=(60, 2))


def test_only_installed_packages_are_watched_and_none_is_imported():
    was_imported = "scipy.cluster" in sys.modules
    found: dict[str, list[str]] = {}
    for name, prefix in package_files(FORBID):
        found.setdefault(name, []).append(prefix)
    assert any(prefix.endswith("/sklearn/cluster/") for prefix in found["sklearn.cluster"])
    assert any(prefix.endswith("/sklearn/cluster.py") for prefix in found["sklearn.cluster"])  # were it a module
    assert any(prefix.endswith("/scipy/cluster/") for prefix in found["scipy.cluster"])
    assert "not_a_package.at_all" not in found
    assert ("scipy.cluster" in sys.modules) == was_imported


def test_a_wrapped_kmeans_is_named():
    from sklearn.cluster import KMeans

    with watching(FORBID) as seen:
        KMeans(3, n_init=1, random_state=0).fit(POINTS)
    assert seen and seen[0].startswith("sklearn.cluster (_kmeans.py: "), seen
    assert sys.getprofile() is None and threading.getprofile() is None  # the hook is gone afterwards


@pytest.mark.filterwarnings("ignore")  # one EM step does not converge
def test_a_gaussian_mixture_and_scipy_kmeans2_are_named():
    from scipy.cluster.vq import kmeans2
    from sklearn.mixture import GaussianMixture

    with watching(FORBID) as seen:
        GaussianMixture(3, max_iter=1, random_state=0).fit(POINTS)
    assert seen and seen[0].startswith("sklearn.mixture"), seen
    with watching(FORBID) as seen:
        kmeans2(POINTS, 3, seed=0)
    assert seen and seen[0].startswith("scipy.cluster (vq.py: "), seen


def test_a_call_in_a_thread_it_starts_is_named():
    from sklearn.cluster import KMeans

    with watching(FORBID) as seen:
        thread = threading.Thread(target=lambda: KMeans(2, n_init=1).fit(POINTS))
        thread.start()
        thread.join()
    assert seen and seen[0].startswith("sklearn.cluster"), seen


@pytest.mark.filterwarnings("ignore")
def test_allowed_code_is_not_named():
    import torch
    from sklearn.metrics import adjusted_rand_score  # sklearn/metrics/cluster/ is not sklearn/cluster/

    with watching(FORBID) as seen:
        x = torch.as_tensor(POINTS)
        torch.cdist(x, x[:3]).argmin(dim=1)
        adjusted_rand_score([0, 0, 1], [1, 1, 0])
    assert seen == []


def test_a_function_that_unhooks_the_watch_is_reported():
    with watching(FORBID) as seen:
        sys.setprofile(None)
    assert seen == ["unhooked"]


def test_a_result_that_runs_kmeans_when_it_is_read_is_named_and_sent_as_a_plain_tensor():
    """A Tensor subclass whose __torch_function__ runs KMeans only when the worker reads the result: reading
    happens inside the watch, and what is sent back is a plain tensor that runs no student code later."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "autograder"))  # as the worker imports it
    try:
        from sandboxed import probes
    finally:
        sys.path.pop(0)
    import torch
    from sklearn.cluster import KMeans

    class Lazy(torch.Tensor):
        @classmethod
        def __torch_function__(cls, func, types, args=(), kwargs=None):
            KMeans(2, n_init=1).fit(POINTS)
            return super().__torch_function__(func, types, args, kwargs or {})

    def kmeans(x, n_clusters, n_iters=100, seed=0):
        with torch._C.DisableTorchFunctionSubclass():
            labels = torch.zeros(len(x), dtype=torch.long).as_subclass(Lazy)
        return labels, torch.zeros(n_clusters, 2)

    answer = probes.call({"kmeans": kmeans}, "kmeans", [torch.as_tensor(POINTS), 2], forbid=FORBID)
    assert answer["forbidden"] and answer["forbidden"].startswith("sklearn.cluster"), answer["forbidden"]
    assert type(answer["value"][0]) is torch.Tensor
