# cell: reparameterize
# style: the classic PyTorch-examples idiom with chained and in-place ops:
#        std = logvar.mul(0.5).exp_(), eps = torch.randn_like(std), z = eps.mul(std).add_(mu).
def reparameterize(mu, logvar):
    """z = mu + std * eps (PyTorch の VAE の例と同じ書き方)。"""
    std = logvar.mul(0.5).exp_()
    eps = torch.randn_like(std)
    return eps.mul(std).add_(mu)
