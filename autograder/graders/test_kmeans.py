"""課題 1.1 ``kmeans(x, n_clusters, n_iters=100, seed=0)`` → (labels (N,), centroids (n_clusters, D)).

Compared with scikit-learn's KMeans: the same partition of well-separated blobs (adjusted Rand
index), and an inertia within a few percent on real 2-D latents of a trained autoencoder.
"""
import numpy as np
import pytest
import torch
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score

from autograder import config
from autograder.oracle import expect, items, tensor

pytestmark = pytest.mark.question("kmeans")

INTEGER_DTYPES = ("int64", "int32", "int16", "uint8", "int8")
INERTIA_TOLERANCE = 0.05  # the reference is within 1.5 % of scikit-learn (n_init=10) on these latents
_generator = torch.Generator().manual_seed(3)
CENTERS = torch.tensor([[0.0, 0.0], [8.0, 8.0], [-8.0, 8.0], [8.0, -8.0]])
BLOBS = torch.cat([c + 0.7 * torch.randn(100, 2, generator=_generator) for c in CENTERS])


def run_kmeans(student, x: torch.Tensor, k: int, *, seed: int = 0, torch_seed: int = 0):
    """The student's (labels, centroids) values, after the layered type and shape checks."""
    result = student.request("call", name="kmeans", args=[x, k], kwargs={"seed": seed}, seed=torch_seed)
    labels, centroids = items(result, "kmeans", 2, "labels, centroids")
    labels = tensor(labels, "labels", shape=(len(x),), dtypes=INTEGER_DTYPES).long()
    centroids = tensor(centroids, "centroids", shape=(k, x.shape[1]))
    return labels, centroids


def inertia(x: torch.Tensor, labels: torch.Tensor) -> float:
    """Sum of squared distances of the points to the mean of their cluster."""
    total = 0.0
    for k in labels.unique():
        members = x[labels == k].double()
        total += ((members - members.mean(dim=0)) ** 2).sum().item()
    return total


def test_returns_integer_labels_and_centroids(student):
    """Returns (labels, centroids): integer labels of shape (N,) in [0, k), float centroids of shape (k, D)."""
    labels, centroids = run_kmeans(student, BLOBS, 4)
    expect(int(labels.min()) >= 0 and int(labels.max()) < 4, f"labels must lie in [0, 4), they span "
                                                              f"[{int(labels.min())}, {int(labels.max())}]")
    expect(centroids.is_floating_point(), "centroids must be a floating-point tensor")


def test_agrees_with_sklearn_on_separated_blobs(student):
    """Finds the same 4 clusters as scikit-learn on well-separated blobs (adjusted Rand index ≥ 0.99)."""
    labels, centroids = run_kmeans(student, BLOBS, 4)
    expected = KMeans(n_clusters=4, n_init=10, random_state=0).fit(BLOBS.numpy())
    agreement = adjusted_rand_score(expected.labels_, labels.numpy())
    expect(agreement >= 0.99, f"on 4 well-separated blobs the clusters differ from scikit-learn's "
                              f"(adjusted Rand index {agreement:.3f} < 0.99)")
    means = torch.stack([BLOBS[labels == k].mean(dim=0) for k in range(4)])
    expect(torch.allclose(centroids.float(), means, atol=1e-3),
           "centroids are not the means of their clusters' points (the Lloyd update: centroid = mean of its points)")


def test_inertia_close_to_sklearn_on_latents(student):
    """On 2,000 real AE latents (k = 10), the inertia is within 5 % of scikit-learn's."""
    latents = torch.from_numpy(np.load(config.LATENTS_FILE, allow_pickle=False))
    labels, _ = run_kmeans(student, latents, 10)
    expected = KMeans(n_clusters=10, n_init=10, random_state=0).fit(latents.numpy()).inertia_
    found = inertia(latents, labels)
    expect(found <= expected * (1 + INERTIA_TOLERANCE),
           f"the inertia (sum of squared distances to the cluster means) is {found:.4g}, {found / expected - 1:.1%} "
           f"above scikit-learn's {expected:.4g}: do the assignment and update steps iterate until convergence, "
           f"and does the initialisation spread the centroids (k-means++)?")


def test_deterministic_for_a_seed(student):
    """The same seed gives the same labels, whatever the global random state."""
    first, _ = run_kmeans(student, BLOBS, 4, seed=0, torch_seed=1)
    second, _ = run_kmeans(student, BLOBS, 4, seed=0, torch_seed=2)
    expect(torch.equal(first, second), "two calls with seed=0 gave different labels: draw the initial centroids with "
                                       "generator = torch.Generator().manual_seed(seed), not the global random state")
