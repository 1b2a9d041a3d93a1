# cell: kmeans
# style: fully vectorised: k-means++ by inverse-CDF sampling (cumsum + searchsorted on a seeded
#        torch.Generator), assignment with torch.cdist, the update with scatter_add_ (sums and counts), and a
#        convergence check on how far the centroids moved.
def kmeans(x, n_clusters, n_iters=100, seed=0):
    """ベクトル化した k-means。中心の移動量が tol 以下になったら止める。"""
    x = torch.as_tensor(x).float()
    n, d = x.shape
    generator = torch.Generator().manual_seed(seed)
    # k-means++: D(x)^2 に比例する確率で、累積分布の逆関数から選ぶ
    chosen = [int(torch.randint(n, (1,), generator=generator))]
    nearest = ((x - x[chosen[0]]) ** 2).sum(dim=1)
    for _ in range(1, n_clusters):
        cdf = torch.cumsum(nearest.double().cpu(), dim=0)
        u = torch.rand(1, generator=generator, dtype=torch.float64) * cdf[-1]
        index = min(int(torch.searchsorted(cdf, u, right=True)), n - 1)
        chosen.append(index)
        nearest = torch.minimum(nearest, ((x - x[index]) ** 2).sum(dim=1))
    centroids = x[chosen].clone()
    ones = torch.ones(n, dtype=x.dtype, device=x.device)
    for _ in range(n_iters):
        labels = torch.cdist(x, centroids).argmin(dim=1)
        sums = torch.zeros_like(centroids).scatter_add_(0, labels.unsqueeze(1).expand(n, d), x)
        counts = torch.zeros(n_clusters, dtype=x.dtype, device=x.device).scatter_add_(0, labels, ones)
        updated = torch.where(counts.unsqueeze(1) > 0, sums / counts.clamp(min=1).unsqueeze(1), centroids)
        shift = (updated - centroids).norm(dim=1).max()
        centroids = updated
        if shift <= 1e-6:
            break
    return labels, centroids
