# cell: vae_loss
# style: the KL term from torch.distributions.kl_divergence(Normal(mu, std), Normal(0, 1)).sum(); the BCE on
#        flattened tensors.
from torch.distributions import Normal, kl_divergence


def vae_loss(reconstructed, x, mu, logvar):
    """BCE(合計) + KL(q(z|x) || N(0, I)) を torch.distributions で。"""
    bce = F.binary_cross_entropy(reconstructed.flatten(), x.flatten(), reduction="sum")
    q = Normal(mu, torch.exp(0.5 * logvar))
    prior = Normal(0.0, 1.0)
    return bce + kl_divergence(q, prior).sum()
