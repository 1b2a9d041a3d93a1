"""課題 1.1 ``kmeans(x, n_clusters, n_iters=100, seed=0)`` → (labels (N,), centroids (n_clusters, D)).

Compared with scikit-learn's KMeans: the same partition of well-separated blobs (adjusted Rand
index), and, for the best of 10 seeds, an inertia within a few percent on real 2-D latents of a
trained autoencoder.
"""
import math

import numpy as np
import pytest
import torch
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score

from autograder import config
from autograder.i18n import Message, t
from autograder.oracle import expect, fail, items, tensor
from autograder.pictures import add, scatter
from autograder.secret import submission_generator

pytestmark = pytest.mark.question("kmeans")

INTEGER_DTYPES = ("int64", "int32", "int16", "uint8", "int8")
INERTIA_TOLERANCE = 0.05  # the reference's best of 10 seeds is within 1 % of scikit-learn (n_init=10) here
INERTIA_SEEDS = 10
_generator = torch.Generator().manual_seed(3)
CENTERS = torch.tensor([[0.0, 0.0], [8.0, 8.0], [-8.0, 8.0], [8.0, -8.0]])
BLOBS = torch.cat([c + 0.7 * torch.randn(100, 2, generator=_generator) for c in CENTERS])
# k-means++'s D² weighting: one wide cluster of 2,000 points and 9 far-away clusters of 6 points each (k = 10).
# Picking each next centroid with probability ∝ D² finds every small cluster (the reference: 50 of 50 seeds);
# centroids drawn uniformly, or the first k points, almost never do (0 of 50), and Lloyd cannot recover.
_SMALL_CENTERS = 400.0 * torch.stack([torch.cos(torch.arange(9) * 2 * torch.pi / 9),
                                      torch.sin(torch.arange(9) * 2 * torch.pi / 9)], dim=1)
FAR_CLUSTERS = torch.cat([torch.randn(2000, 2, generator=_generator),
                          *(c + 0.3 * torch.randn(6, 2, generator=_generator) for c in _SMALL_CENTERS)])
KMEANS_PP_SEEDS = (0, 1, 2)
FEW_LOCATIONS = torch.tensor([[5.0, 5.0], [-5.0, 5.0], [5.0, -5.0]])  # 3 distinct points, k = 4: one cluster stays empty
# Each notebook gets its own inputs: every point set above, and the real latents, moved by an isometry drawn from
# the notebook and the course secret (autograder/secret.py). k-means does not change under an isometry (nor
# does any check here), but a table of stored answers matches none of them. The few points move by sign flips
# and whole-number shifts only, so that their cluster means stay exact.
_moves = submission_generator("kmeans")
_ANGLE = float(torch.rand((), generator=_moves, dtype=torch.float64)) * 2 * math.pi
_ROTATION = torch.tensor([[math.cos(_ANGLE), -math.sin(_ANGLE)], [math.sin(_ANGLE), math.cos(_ANGLE)]],
                         dtype=torch.float64)
_SHIFT = torch.randint(-8, 9, (2,), generator=_moves).double()
_FLIPS = torch.randint(0, 2, (2,), generator=_moves).double() * 2 - 1


def moved(points: torch.Tensor) -> torch.Tensor:
    """``points`` (N, 2) rotated by this notebook's angle and shifted."""
    return (points.double() @ _ROTATION.T + _SHIFT).float()


CENTERS, BLOBS, FAR_CLUSTERS = moved(CENTERS), moved(BLOBS), moved(FAR_CLUSTERS)
FEW_LOCATIONS = (FEW_LOCATIONS.double() * _FLIPS + _SHIFT).float()
FEW_POINTS = FEW_LOCATIONS.repeat_interleave(torch.tensor([15, 15, 10]), dim=0)


def ae_latents() -> torch.Tensor:
    """The 2,000 real AE latents (config.LATENTS_FILE), moved like the other inputs."""
    return moved(torch.from_numpy(np.load(config.LATENTS_FILE, allow_pickle=False)))


def run_kmeans(functions, x: torch.Tensor, k: int, *, seed: int = 0, torch_seed: int = 0):
    """The student's (labels, centroids) values, after the layered type and shape checks.

    ``kmeans`` runs in the ``functions`` worker, where the forbidden packages (questions.toml's
    ``[kmeans.policy] forbid``) are not installed: however it is reached, scikit-learn's KMeans is not there."""
    result = functions.request("call", name="kmeans", args=[x, k], kwargs={"seed": seed}, seed=torch_seed)
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


def likely_cause(x: torch.Tensor, labels: torch.Tensor, centroids: torch.Tensor,
                 empty_expected: bool = False) -> Message | None:
    """Name what the result itself shows is wrong with a k-means run, or None when it shows nothing specific.

    In order: centroids that are data points and not their clusters' means (no update step); labels that are
    not the nearest centroid (assignment step); centroids that are not their clusters' means (update step);
    unused clusters (initialisation; not when ``empty_expected``: fewer distinct points than clusters).
    """
    x, centroids = x.double(), centroids.double()
    k = len(centroids)
    used = [j for j in range(k) if bool((labels == j).any())]
    means = {j: x[labels == j].mean(dim=0) for j in used}
    off_mean = [j for j in used if not torch.allclose(centroids[j], means[j], atol=1e-3)]
    if off_mean and torch.cdist(centroids[off_mean], x).min(dim=1).values.max().item() < 1e-6:
        return t("重心が一度も動いていないデータ点のままです。更新ステップ（重心 = 割り当てられた点の平均）が抜けているか、"
                 "実行されていません",
                 "the centroids are data points that never moved: the update step (centroid = mean of the points "
                 "assigned to it) is missing or never runs")
    distances = torch.cdist(x, centroids)
    if (distances.argmin(dim=1) != labels).double().mean().item() > 0.01:
        if (distances.argmax(dim=1) == labels).double().mean().item() > 0.99:
            return t("各点が最も遠い重心に割り当てられています。割り当てステップでは距離の argmin を使ってください",
                     "each point is given its farthest centroid: the assignment step must use argmin of the distances")
        return t("ラベルが各点に最も近い重心になっていません。最後の更新の後で、すべての点を距離が最小の重心に割り当てて"
                 "ください",
                 "the labels are not each point's nearest centroid: after the last update, assign every point to "
                 "the centroid at the smallest distance")
    if off_mean:
        return t("重心がそのクラスタの点の平均になっていません。更新ステップでは、各重心を割り当てられた点の和 / 個数に"
                 "してください",
                 "the centroids are not the means of their clusters' points: the update step must set each centroid "
                 "to sum / count of the points assigned to it")
    if len(used) < k and not empty_expected:
        return t("{k} 個のクラスタのうち点をもつのは {used} 個だけです。初期重心は互いに異なり、よく散らばった {k} 個の"
                 "データ点である必要があります（k-means++）",
                 "only {used} of the {k} clusters have points: the initial centroids must be {k} distinct, "
                 "spread-out data points (k-means++)", used=len(used), k=k)
    return None


def test_returns_integer_labels_and_centroids(functions):
    """Returns (labels, centroids): integer labels of shape (N,) in [0, k), float centroids of shape (k, D).

    ja: (labels, centroids) を返す: labels は [0, k) の整数で形状 (N,)、centroids は浮動小数点数で形状 (k, D)
    """
    labels, centroids = run_kmeans(functions, BLOBS, 4)
    expect(int(labels.min()) >= 0 and int(labels.max()) < 4, t("labels は [0, 4) の範囲になければなりませんが、"
                                                                "[{low}, {high}] にわたっています",
                                                                "labels must lie in [0, 4), they span [{low}, {high}]",
                                                                low=int(labels.min()), high=int(labels.max())))
    expect(centroids.is_floating_point(), t("centroids は浮動小数点数のテンソルである必要があります",
                                            "centroids must be a floating-point tensor"))
    # the right types holding no clustering (one label for every point) are no answer: no points for them
    expect(len(torch.unique(labels)) > 1, t("4 つの塊のデータで、すべての点に同じラベルがつきました",
                                            "every point of 4 separated blobs got the same label"))


def test_agrees_with_sklearn_on_separated_blobs(functions):
    """Finds the same 4 clusters as scikit-learn on well-separated blobs (adjusted Rand index ≥ 0.99).

    ja: よく分離した塊のデータで scikit-learn と同じ 4 つのクラスタを見つける（調整ランド指数 ≥ 0.99）
    """
    labels, centroids = run_kmeans(functions, BLOBS, 4)
    expected = KMeans(n_clusters=4, n_init=10, random_state=0).fit(BLOBS.numpy())
    agreement = adjusted_rand_score(expected.labels_, labels.numpy())
    cause = likely_cause(BLOBS, labels, centroids)
    if agreement < 0.99:
        differs = t("よく分離した 4 つの塊に対して、クラスタが scikit-learn の結果と異なります（調整ランド指数 "
                    "{agreement:.3f} < 0.99）",
                    "on 4 well-separated blobs the clusters differ from scikit-learn's (adjusted Rand index "
                    "{agreement:.3f} < 0.99)", agreement=agreement)
        fail(t("{differs}：{cause}", "{differs}: {cause}", differs=differs, cause=cause) if cause else differs)
    if cause is not None:
        fail(cause)


def test_inertia_close_to_sklearn_on_latents(functions, pictures):
    """On 2,000 real AE latents (k = 10), the best of 10 seeds has an inertia within 5 % of scikit-learn's.

    ja: 実際の AE の潜在変数 2,000 個（k = 10）で、10 個のシードのうち最良の慣性が scikit-learn の 5 % 以内に入る
    """
    latents = ae_latents()
    # One k-means++ run can land in a poor local optimum by chance (the reference does for 9 of 20 seeds), so
    # like scikit-learn's n_init=10 the best of 10 seeds counts.
    runs = [run_kmeans(functions, latents, 10, seed=seed) for seed in range(INERTIA_SEEDS)]
    labels, centroids = min(runs, key=lambda run: inertia(latents, run[0]))
    add(pictures, "kmeans", t("採点用の AE の潜在変数 2,000 個を、あなたの kmeans（k = 10）でクラスタリングした結果",
                              "the grader's 2,000 AE latents clustered by your kmeans (k = 10)"),
        lambda: scatter(latents, labels, "kmeans (k = 10)", "cluster"))
    expected = KMeans(n_clusters=10, n_init=10, random_state=0).fit(latents.numpy()).inertia_
    found = inertia(latents, labels)
    if found > expected * (1 + INERTIA_TOLERANCE):
        cause = likely_cause(latents, labels, centroids) or t(
            "結果は k-means の分割としては整合しているので、悪い局所最適解で止まっています。割り当てステップと更新"
            "ステップを（n_iters 回、または何も変わらなくなるまで）繰り返していますか？ また、初期化で重心を散らばらせて"
            "いますか（k-means++）？",
            "the result is a consistent k-means partition, so the run stopped in a poor local optimum: do the "
            "assignment and update steps iterate (n_iters times or until nothing changes), and does the "
            "initialisation spread the centroids (k-means++)?")
        fail(t("慣性（各点からクラスタの平均までの距離の 2 乗和）が {found:.4g} で、scikit-learn の {expected:.4g} より "
               "{excess:.1%} 大きくなっています：{cause}",
               "the inertia (sum of squared distances to the cluster means) is {found:.4g}, "
               "{excess:.1%} above scikit-learn's {expected:.4g}: {cause}",
               found=found, excess=found / expected - 1, expected=expected, cause=cause))


def test_deterministic_for_a_seed(functions):
    """The same seed gives the same labels and centroids, whatever the global random state.

    ja: グローバルな乱数の状態によらず、同じシードなら同じ labels と centroids を返す
    """
    latents = ae_latents()
    runs = [run_kmeans(functions, latents, 10, seed=0, torch_seed=torch_seed) for torch_seed in (1, 2, 3)]
    expect(len(torch.unique(runs[0][0])) > 1, t("すべての潜在変数に同じラベルがつきました（クラスタリングになっていません）",
                                                "every latent got the same label (no clustering)"))
    expect(all(torch.equal(runs[0][0], labels) and torch.equal(runs[0][1], centroids) for labels, centroids in runs),
           t("seed=0 で 3 回呼び出したところ、結果が異なりました。初期化のランダムな選択は（最初の重心も含めて）すべて、"
             "グローバルな乱数の状態ではなく generator = torch.Generator().manual_seed(seed) で行ってください",
             "three calls with seed=0 gave different results: draw every random choice of the initialisation (the "
             "first centroid too) with generator = torch.Generator().manual_seed(seed), not the global random "
             "state"))


def test_empty_cluster_keeps_its_centroid(functions):
    """With fewer distinct points than clusters, one cluster stays empty: its centroid keeps its place.

    ja: 異なる点の数がクラスタ数より少なく空のクラスタができるとき、その重心は元の位置にとどまる
    """
    labels, centroids = run_kmeans(functions, FEW_POINTS, 4)
    if bool(torch.isfinite(centroids).all()):  # the clusters that have points come first: name their mistake
        cause = likely_cause(FEW_POINTS, labels, centroids, empty_expected=True)
        expect(cause is None, cause)
    expect(bool(torch.isfinite(centroids).all()), t("重心が NaN または inf になりました。点のないクラスタで 0 による割り算"
                                                    "が起きています（そのクラスタは前の重心を保ってください: "
                                                    "torch.where(counts > 0, ...)）",
                                                    "a centroid became NaN or inf: a cluster with no points divides "
                                                    "by zero (keep its old centroid: torch.where(counts > 0, ...))"))
    away = torch.cdist(centroids.double(), FEW_LOCATIONS.double()).min(dim=1).values
    expect(bool((away < 1e-4).all()), t("点は 3 か所にしかないのに、どの点の位置にもない重心があります。点が割り当て"
                                        "られなかったクラスタは 0 などに動かさず前の重心を保ち（ノートブックで決めた"
                                        "規則: torch.where(counts > 0, ...)）、初期重心はどれもデータ点でなければ"
                                        "なりません（k-means++）",
                                        "a centroid is at none of the 3 places where the points are: a cluster that "
                                        "gets no points must keep its previous centroid (the notebook's rule: "
                                        "torch.where(counts > 0, …)), not move to 0 or anywhere else, and every "
                                        "initial centroid must be a data point (k-means++)"))
    expect(torch.equal(centroids[labels].double(), FEW_POINTS.double()),
           t("各点は最終的に、その点の位置にある重心に割り当てられる必要があります",
             "each point must end at its own location's centroid"))


def test_kmeans_plus_plus_finds_small_far_clusters(functions):
    """k-means++ initialisation: 9 small far-away clusters beside a wide one each get a centroid (2 of 3 seeds).

    The wide cluster has 2,000 points, the small ones 6 points each; D² weighting finds all of them.

    ja: k-means++ 初期化: 広いクラスタから遠く離れた 9 個の小さなクラスタが、それぞれ自分の重心をもつ（3 シード中 2 つ以上）
    """
    found = 0
    for seed in KMEANS_PP_SEEDS:
        labels, _ = run_kmeans(functions, FAR_CLUSTERS, 10, seed=seed)
        small = labels[2000:].reshape(9, 6)
        separate = all(row.unique().numel() == 1 for row in small) and small[:, 0].unique().numel() == 9
        found += separate and not bool(torch.isin(small[:, 0], labels[:2000]).any())
    expect(found >= 2, t("広いクラスタ（2,000 点）から遠く離れた 6 点ずつの 9 個のクラスタが、{seeds} 個のシードのうち "
                         "{found} 個でしか別々のクラスタになりませんでした。初期重心は k-means++ で選んでください: "
                         "最初の重心は一様に、次の重心はそれぞれ、すでに選んだ最も近い重心までの距離の 2 乗 D(x)² に比例する"
                         "確率で選びます（一様な選択や先頭の k 点では小さなクラスタを見落とします）",
                         "9 clusters of 6 points far from a wide cluster of 2,000 came out as clusters of their own for "
                         "only {found} of {seeds} seeds: choose the initial centroids with k-means++: the first "
                         "uniformly, each next one with probability proportional to D(x)², the squared distance to "
                         "the nearest centroid chosen so far (uniform picks or the first k points miss small "
                         "clusters)", found=found, seeds=len(KMEANS_PP_SEEDS)))
