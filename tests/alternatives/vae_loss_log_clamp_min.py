# cell: vae_loss
# style: BCE written by hand the way PyTorch defines it: the logs clamped at -100 (not the probabilities),
#        so a perfect reconstruction costs exactly 0; nn.functional not used at all.
def vae_loss(reconstructed, x, mu, logvar):
    """BCE を log ≥ −100 で手書きする (F.binary_cross_entropy と同じ定義)。"""
    x = x.reshape(reconstructed.shape)
    log_p = torch.log(reconstructed).clamp(min=-100)
    log_not_p = torch.log1p(-reconstructed).clamp(min=-100)
    bce = -torch.sum(x * log_p + (1 - x) * log_not_p)
    kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
    return bce + kl
