# cell: reparameterize
# style: sigma = sqrt(exp(logvar)) (the variance first, then its square root), the noise drawn in place
#        with torch.empty_like(mu).normal_().
def reparameterize(mu, logvar):
    """分散 exp(logvar) の平方根を標準偏差にする。"""
    variance = torch.exp(logvar)
    sigma = torch.sqrt(variance)
    noise = torch.empty_like(mu).normal_()
    return mu + noise * sigma
