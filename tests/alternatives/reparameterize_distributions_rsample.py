# cell: reparameterize
# style: torch.distributions: Normal(mu, std).rsample() draws the reparameterised sample loc + scale * eps,
#        so gradients reach mu and logvar; the import sits in the answer cell.
from torch.distributions import Normal


def reparameterize(mu, logvar):
    """z = mu + sigma * eps を torch.distributions.Normal の rsample() で作る。"""
    std = torch.exp(0.5 * logvar)
    return Normal(mu, std).rsample()
