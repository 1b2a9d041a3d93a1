# cell: vae_loss
# style: BCE written by hand, with the reconstruction clamped to [1e-7, 1 - 1e-7] so that log never sees 0
#        (a common way to avoid log(0) = -inf); KL as in the formula.
def vae_loss(reconstructed, x, mu, logvar):
    """BCE(合計) + KL(合計)。log(0) を避けるため再構成を [1e-7, 1 - 1e-7] に収める。"""
    eps = 1e-7
    p = reconstructed.clamp(eps, 1 - eps)
    target = x.reshape(p.shape)
    bce = -(target * torch.log(p) + (1 - target) * torch.log(1 - p)).sum()
    kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
    return bce + kl
