# cell: ConvAutoEncoder
# style: BatchNorm after each convolution and LeakyReLU(0.2) activations; stride-2 Conv2d down and
#        ConvTranspose2d up, as one nn.Sequential each (so the given ConvVAE can reuse the layers).
class ConvAutoEncoder(nn.Module):
    """BatchNorm と LeakyReLU を使った畳み込み自己符号化器。"""

    def __init__(self, in_channels=1, image_size=28, latent_dim=2):
        super().__init__()
        side = image_size // 4
        self.encoder = nn.Sequential(
            nn.Conv2d(in_channels, 16, 3, stride=2, padding=1),
            nn.BatchNorm2d(16),
            nn.LeakyReLU(0.2),
            nn.Conv2d(16, 32, 3, stride=2, padding=1),
            nn.BatchNorm2d(32),
            nn.LeakyReLU(0.2),
            nn.Flatten(),
            nn.Linear(32 * side * side, 128),
            nn.LeakyReLU(0.2),
            nn.Linear(128, latent_dim),
        )
        self.decoder = nn.Sequential(
            nn.Linear(latent_dim, 128),
            nn.LeakyReLU(0.2),
            nn.Linear(128, 32 * side * side),
            nn.LeakyReLU(0.2),
            nn.Unflatten(1, (32, side, side)),
            nn.ConvTranspose2d(32, 16, 3, stride=2, padding=1, output_padding=1),
            nn.BatchNorm2d(16),
            nn.LeakyReLU(0.2),
            nn.ConvTranspose2d(16, in_channels, 3, stride=2, padding=1, output_padding=1),
            nn.Sigmoid(),
        )

    def forward(self, x):
        z = self.encoder(x)
        x_hat = self.decoder(z)
        return z, x_hat
