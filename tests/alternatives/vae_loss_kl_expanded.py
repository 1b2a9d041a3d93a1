# cell: vae_loss
# style: KL written as 0.5 * sum(mu^2 + sigma^2 - log sigma^2 - 1) with sigma^2 = exp(logvar); the BCE with
#        reduction="none" summed explicitly; the two terms kept in a dict before adding.
def vae_loss(reconstructed, x, mu, logvar):
    """KL = 0.5 * Σ(μ² + σ² − log σ² − 1) の形で書く。"""
    variance = logvar.exp()
    terms = {
        "bce": F.binary_cross_entropy(reconstructed, x.view_as(reconstructed), reduction="none").sum(),
        "kl": 0.5 * torch.sum(mu * mu + variance - logvar - 1),
    }
    return terms["bce"] + terms["kl"]
