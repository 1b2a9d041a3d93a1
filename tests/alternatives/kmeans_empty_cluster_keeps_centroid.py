# cell: kmeans
# style: explicit empty-cluster handling (a centroid with no points keeps its old position, by boolean mask),
#        the update written as a one-hot matrix product, k-means++ indices kept in a Python list, and the
#        squared distances expanded as |x|^2 - 2 x.c + |c|^2.
def kmeans(x, n_clusters, n_iters=100, seed=0):
    """空になったクラスタの中心は前の位置のままにする k-means。"""
    x = torch.as_tensor(x, dtype=torch.float32)
    generator = torch.Generator().manual_seed(seed)

    def squared_distances(points, centers):
        return ((points ** 2).sum(1, keepdim=True) - 2 * points @ centers.T + (centers ** 2).sum(1)).clamp(min=0)

    picks = [int(torch.randint(len(x), (1,), generator=generator))]
    for _ in range(1, n_clusters):
        d2 = squared_distances(x, x[picks]).min(dim=1).values
        picks.append(int(torch.multinomial(d2.cpu() + 1e-12, 1, generator=generator)))
    centroids = x[picks].clone()

    previous = None
    for _ in range(n_iters):
        labels = squared_distances(x, centroids).argmin(dim=1)
        if previous is not None and torch.equal(labels, previous):
            break
        previous = labels
        one_hot = F.one_hot(labels, n_clusters).to(x.dtype)  # (N, k)
        counts = one_hot.sum(dim=0)
        sums = one_hot.T @ x
        filled = counts > 0  # 空のクラスタは更新しない
        centroids[filled] = sums[filled] / counts[filled].unsqueeze(1)
    return labels, centroids
