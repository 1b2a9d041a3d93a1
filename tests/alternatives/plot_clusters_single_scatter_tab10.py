# cell: plot_latent_clusters
# style: a single scatter with c=labels and cmap="tab10", the legend built from the scatter's
#        legend_elements().
def plot_latent_clusters(latents, cluster_labels, title=""):
    """1 回の scatter で c=クラスタ番号、cmap="tab10" にする。"""
    z = torch.as_tensor(latents).detach().cpu().numpy()
    c = torch.as_tensor(cluster_labels).cpu().numpy()
    fig, ax = plt.subplots(figsize=(6, 5))
    points = ax.scatter(z[:, 0], z[:, 1], c=c, cmap="tab10", s=2)
    ax.legend(*points.legend_elements(), title="cluster", fontsize=8)
    ax.set(title=title, xlabel="$z_1$", ylabel="$z_2$")
    return fig
