# cell: reparameterize
# style: the noise from torch.normal(0, 1, size=...) with dtype and device passed explicitly (instead of
#        randn_like), and sigma written as exp(logvar / 2).
def reparameterize(mu, logvar):
    """eps ~ N(0, 1) を torch.normal で mu と同じ形・dtype・デバイスに作る。"""
    sigma = torch.exp(logvar / 2)
    eps = torch.normal(0.0, 1.0, size=mu.shape, dtype=mu.dtype, device=mu.device)
    return mu + sigma * eps
