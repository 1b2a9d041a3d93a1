# cell: vae_loss
# style: the reconstruction brought to x's shape with reshape_as; the KL summed per image first
#        (sum over the latent dimensions), then over the batch.
def vae_loss(reconstructed, x, mu, logvar):
    """reconstructed を x の形にそろえ、KL は 1 枚ごとに計算してからバッチで合計する。"""
    bce = F.binary_cross_entropy(reconstructed.reshape_as(x), x, reduction="sum")
    kl_per_image = -0.5 * (1 + logvar - mu.square() - logvar.exp()).sum(dim=1)
    return bce + kl_per_image.sum()
