# cell: vae_loss
# style: the BCE rewritten as binary_cross_entropy_with_logits on torch.logit(reconstructed, eps=1e-6)
#        (logit clamps its input to [eps, 1 - eps]); x reshaped like the logits.
def vae_loss(reconstructed, x, mu, logvar):
    """BCE を logit に戻して binary_cross_entropy_with_logits で計算する。"""
    logits = torch.logit(reconstructed, eps=1e-6)
    bce = F.binary_cross_entropy_with_logits(logits, x.reshape(logits.shape), reduction="sum")
    kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
    return bce + kl
