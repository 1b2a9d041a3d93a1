# cell: vae_loss
# style: both tensors flattened per image with .view(batch, -1) before the BCE (the view idiom; -1 rather
#        than a hard-coded 784 so that the CIFAR-10 part of the notebook, 3x32x32, works too); KL with ** 2.
def vae_loss(reconstructed, x, mu, logvar):
    """画像を (B, 画素数) に view してから BCE を取る。"""
    batch = x.size(0)
    bce = F.binary_cross_entropy(reconstructed.view(batch, -1), x.view(batch, -1), reduction="sum")
    kl = -0.5 * torch.sum(1 + logvar - mu ** 2 - torch.exp(logvar))
    return bce + kl
