# cell: plot_latent_clusters
# style: plt.subplots with constrained layout, one scatter coloured through a discrete colormap with
#        vmin/vmax centred on the cluster numbers, a colorbar with one tick per cluster, and a title.
def plot_latent_clusters(latents, cluster_labels, title=""):
    """クラスタ番号を色にして、カラーバーで番号を示す。"""
    z = torch.as_tensor(latents).detach().cpu().numpy()
    labels = torch.as_tensor(cluster_labels).cpu().numpy().astype(int)
    k = int(labels.max()) + 1
    fig, ax = plt.subplots(figsize=(7, 5), constrained_layout=True)
    scatter = ax.scatter(z[:, 0], z[:, 1], c=labels, cmap=plt.get_cmap("viridis", k), vmin=-0.5, vmax=k - 0.5,
                         s=4, alpha=0.8, edgecolors="none")
    colorbar = fig.colorbar(scatter, ax=ax, ticks=range(k))
    colorbar.set_label("cluster")
    ax.set_title(title or "k-means clusters")
    ax.set_xlabel("$z_1$")
    ax.set_ylabel("$z_2$")
    return fig
