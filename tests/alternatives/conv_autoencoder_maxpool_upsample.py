# cell: ConvAutoEncoder
# style: stride-1 convolutions with MaxPool2d to downsample and nn.Upsample + Conv2d (no ConvTranspose2d) to
#        upsample, fewer channels (8, 16), the layer sizes computed from the arguments.
class ConvAutoEncoder(nn.Module):
    """MaxPool で縮小し、Upsample + 畳み込みで拡大する自己符号化器。"""

    def __init__(self, in_channels=1, image_size=28, latent_dim=2):
        super().__init__()
        channels = (8, 16)
        side = image_size // 4
        flat = channels[1] * side * side
        self.encoder = nn.Sequential(
            nn.Conv2d(in_channels, channels[0], kernel_size=3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(channels[0], channels[1], kernel_size=3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(flat, 128), nn.ReLU(),
            nn.Linear(128, latent_dim),
        )
        self.decoder = nn.Sequential(
            nn.Linear(latent_dim, 128), nn.ReLU(),
            nn.Linear(128, flat), nn.ReLU(),
            nn.Unflatten(1, (channels[1], side, side)),
            nn.Upsample(scale_factor=2, mode="nearest"),
            nn.Conv2d(channels[1], channels[0], kernel_size=3, padding=1), nn.ReLU(),
            nn.Upsample(scale_factor=2, mode="nearest"),
            nn.Conv2d(channels[0], in_channels, kernel_size=3, padding=1),
            nn.Sigmoid(),
        )

    def forward(self, x):
        encoded = self.encoder(x)
        decoded = self.decoder(encoded)
        return encoded, decoded
