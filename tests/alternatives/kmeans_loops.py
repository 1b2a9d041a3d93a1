# cell: kmeans
# style: loop-based, as written from the textbook: k-means++ by walking the cumulative D(x)^2 in Python,
#        distances computed one centroid at a time, each centroid updated from its members in a for loop.
def kmeans(x, n_clusters, n_iters=100, seed=0):
    """for ループで書いた k-means (k-means++ 初期化)。"""
    x = torch.as_tensor(x, dtype=torch.float32)
    n = x.shape[0]
    generator = torch.Generator().manual_seed(seed)

    # k-means++ の初期化
    centroids = [x[torch.randint(n, (1,), generator=generator).item()]]
    for _ in range(1, n_clusters):
        squared = torch.stack([((x - c) ** 2).sum(dim=1) for c in centroids]).min(dim=0).values.tolist()
        target = torch.rand(1, generator=generator).item() * sum(squared)
        running, pick = 0.0, n - 1
        for i, value in enumerate(squared):
            running += value
            if running > target:
                pick = i
                break
        centroids.append(x[pick])
    centroids = torch.stack(centroids).clone()

    # Lloyd 法: 割り当て → 更新 を割り当てが変わらなくなるまで
    labels = None
    for _ in range(n_iters):
        distances = torch.stack([((x - centroids[j]) ** 2).sum(dim=1) for j in range(n_clusters)], dim=1)
        new_labels = distances.argmin(dim=1)
        if labels is not None and torch.equal(new_labels, labels):
            break
        labels = new_labels
        for j in range(n_clusters):
            members = x[labels == j]
            if len(members) > 0:
                centroids[j] = members.mean(dim=0)
    return labels, centroids
