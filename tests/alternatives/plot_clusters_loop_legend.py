# cell: plot_latent_clusters
# style: one ax.scatter per cluster with a label and a legend, the figure made with plt.figure() +
#        fig.add_subplot(), colours from plt.get_cmap("tab10") indexed by the cluster's position.
def plot_latent_clusters(latents, cluster_labels, title=""):
    """クラスタごとに ax.scatter を 1 回ずつ呼び、凡例を付ける。"""
    points = np.asarray(torch.as_tensor(latents).detach().cpu())
    labels = np.asarray(torch.as_tensor(cluster_labels).detach().cpu())
    fig = plt.figure(figsize=(7, 5))
    ax = fig.add_subplot(1, 1, 1)
    palette = plt.get_cmap("tab10")
    for position, cluster in enumerate(sorted(set(labels.tolist()))):
        mask = labels == cluster
        ax.scatter(points[mask, 0], points[mask, 1], s=3, alpha=0.7, color=palette(position % 10),
                   label=f"cluster {cluster} ({mask.sum()})")
    ax.legend(title="k-means", loc="best", markerscale=4, fontsize=8)
    ax.set_title(title)
    ax.set_xlabel("z1")
    ax.set_ylabel("z2")
    return fig
