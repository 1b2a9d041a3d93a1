# cell: ConvVAE
# style: its own layers (not reusing ConvAutoEncoder), BatchNorm + LeakyReLU, ConvTranspose2d with kernel 4,
#        stride 2, padding 1 (no output_padding), and encode()/decode() methods used by forward.
class ConvVAE(nn.Module):
    """encode / decode メソッドを持つ畳み込み VAE。"""

    def __init__(self, in_channels=1, image_size=28, latent_dim=2):
        super().__init__()
        side = image_size // 4
        self.encoder = nn.Sequential(
            nn.Conv2d(in_channels, 16, kernel_size=4, stride=2, padding=1),
            nn.BatchNorm2d(16),
            nn.LeakyReLU(0.1),
            nn.Conv2d(16, 32, kernel_size=4, stride=2, padding=1),
            nn.BatchNorm2d(32),
            nn.LeakyReLU(0.1),
            nn.Flatten(),
            nn.Linear(32 * side * side, 128),
            nn.LeakyReLU(0.1),
        )
        self.fc_mu = nn.Linear(128, latent_dim)
        self.fc_logvar = nn.Linear(128, latent_dim)
        self.decoder = nn.Sequential(
            nn.Linear(latent_dim, 128),
            nn.LeakyReLU(0.1),
            nn.Linear(128, 32 * side * side),
            nn.LeakyReLU(0.1),
            nn.Unflatten(1, (32, side, side)),
            nn.ConvTranspose2d(32, 16, kernel_size=4, stride=2, padding=1),
            nn.BatchNorm2d(16),
            nn.LeakyReLU(0.1),
            nn.ConvTranspose2d(16, in_channels, kernel_size=4, stride=2, padding=1),
            nn.Sigmoid(),
        )

    def encode(self, x):
        h = self.encoder(x)
        return self.fc_mu(h), self.fc_logvar(h)

    def decode(self, z):
        return self.decoder(z)

    def forward(self, x):
        mu, logvar = self.encode(x)
        z = reparameterize(mu, logvar)
        return self.decode(z), mu, logvar
