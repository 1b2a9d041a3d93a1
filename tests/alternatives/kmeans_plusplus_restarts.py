# cell: kmeans
# style: split into helpers (k-means++ with torch.multinomial on one seeded torch.Generator, a Lloyd loop with
#        index_add_), plus n_init restarts drawn from the same generator keeping the lowest inertia; an extra
#        keyword argument with a default.
def kmeans_plus_plus(x, n_clusters, generator):
    """k-means++: 1 つ目は一様に、以降は最も近い中心までの距離の 2 乗に比例して選ぶ。"""
    first = torch.randint(len(x), (1,), generator=generator).to(x.device)
    centroids = x[first]
    closest = torch.cdist(x, centroids).squeeze(1).pow(2)
    for _ in range(1, n_clusters):
        weights = closest.double().cpu()
        if float(weights.sum()) <= 0:
            weights = torch.ones_like(weights)
        index = torch.multinomial(weights, 1, generator=generator).to(x.device)
        centroids = torch.cat([centroids, x[index]])
        closest = torch.minimum(closest, torch.cdist(x, x[index]).squeeze(1).pow(2))
    return centroids


def lloyd(x, centroids, n_iters):
    """割り当てと更新を繰り返す。戻り値 (labels, centroids, inertia)。"""
    n_clusters = len(centroids)
    labels = torch.cdist(x, centroids).argmin(dim=1)
    for _ in range(n_iters):
        sums = torch.zeros_like(centroids).index_add_(0, labels, x)
        counts = torch.bincount(labels, minlength=n_clusters).to(x.dtype).unsqueeze(1)
        centroids = torch.where(counts > 0, sums / counts.clamp(min=1), centroids)
        new_labels = torch.cdist(x, centroids).argmin(dim=1)
        if torch.equal(new_labels, labels):
            break
        labels = new_labels
    inertia = ((x - centroids[labels]) ** 2).sum()
    return labels, centroids, float(inertia)


def kmeans(x, n_clusters, n_iters=100, seed=0, n_init=3):
    """n_init 回の k-means++ 初期化から、慣性 (inertia) が最小の結果を返す。"""
    x = torch.as_tensor(x, dtype=torch.float32)
    generator = torch.Generator().manual_seed(seed)
    best = None
    for _ in range(n_init):
        result = lloyd(x, kmeans_plus_plus(x, n_clusters, generator), n_iters)
        if best is None or result[2] < best[2]:
            best = result
    return best[0], best[1]
