# cell: vae_loss
# style: everything computed in float64 for accuracy, the result cast back to the input's dtype
#        (a 0-dim tensor that still carries gradients).
def vae_loss(reconstructed, x, mu, logvar):
    """倍精度で BCE + KL を計算し、入力と同じ dtype に戻して返す。"""
    r = reconstructed.double()
    target = x.double().reshape(r.shape)
    mu64, logvar64 = mu.double(), logvar.double()
    bce = F.binary_cross_entropy(r, target, reduction="sum")
    kl = -0.5 * torch.sum(1 + logvar64 - mu64 ** 2 - torch.exp(logvar64))
    return (bce + kl).to(reconstructed.dtype)
