# cell: ConvVAE
# style: a custom decoder module (defined in the same cell) that upsamples with F.interpolate(bilinear) +
#        Conv2d instead of ConvTranspose2d; SiLU activations; channel counts kept in a tuple.
class InterpolatingDecoder(nn.Module):
    """(B, latent_dim) → (B, C, H, W)。全結合で小さな特徴マップにし、補間 + 畳み込みで 2 倍ずつ拡大する。"""

    def __init__(self, out_channels, image_size, latent_dim, channels=(32, 16, 8)):
        super().__init__()
        self.side = image_size // 4
        self.channels = channels
        self.fc = nn.Sequential(
            nn.Linear(latent_dim, 128), nn.SiLU(),
            nn.Linear(128, channels[0] * self.side * self.side), nn.SiLU(),
        )
        self.conv0 = nn.Conv2d(channels[0], channels[1], kernel_size=3, padding=1)
        self.conv1 = nn.Conv2d(channels[1], channels[2], kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(channels[2], out_channels, kernel_size=3, padding=1)

    def forward(self, z):
        h = self.fc(z).view(-1, self.channels[0], self.side, self.side)
        h = F.silu(self.conv0(h))
        h = F.interpolate(h, scale_factor=2, mode="bilinear", align_corners=False)
        h = F.silu(self.conv1(h))
        h = F.interpolate(h, scale_factor=2, mode="bilinear", align_corners=False)
        return torch.sigmoid(self.conv2(h))


class ConvVAE(nn.Module):
    """畳み込みエンコーダと、補間で拡大するデコーダの VAE。"""

    def __init__(self, in_channels=1, image_size=28, latent_dim=2):
        super().__init__()
        side = image_size // 4
        self.encoder = nn.Sequential(
            nn.Conv2d(in_channels, 16, kernel_size=3, stride=2, padding=1), nn.SiLU(),
            nn.Conv2d(16, 32, kernel_size=3, stride=2, padding=1), nn.SiLU(),
            nn.Flatten(),
            nn.Linear(32 * side * side, 128), nn.SiLU(),
        )
        self.fc_mu = nn.Linear(128, latent_dim)
        self.fc_logvar = nn.Linear(128, latent_dim)
        self.decoder = InterpolatingDecoder(in_channels, image_size, latent_dim)

    def forward(self, x):
        h = self.encoder(x)
        mu = self.fc_mu(h)
        logvar = self.fc_logvar(h)
        reconstructed = self.decoder(reparameterize(mu, logvar))
        return reconstructed, mu, logvar
