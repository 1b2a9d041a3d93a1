# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 実験3-4 自己符号化器による特徴表現の獲得
#
# この実験では、画像を低次元のベクトル(**潜在表現**)に圧縮し、そこから元の画像を復元するように学習する
# **自己符号化器 (autoencoder, AE)** と、その確率モデル版である **変分自己符号化器 (variational autoencoder, VAE)**
# を実装し、学習された潜在空間を観察します。
#
# | 部 | 内容 |
# |---|---|
# | 第1部 | MLP の自己符号化器 (784-128-32-2) を MNIST で学習し、2 次元潜在空間と N(0, I) からの生成を見る |
# | 第2部 | 同じ大きさの VAE を実装し、潜在空間・生成・潜在空間での補間を見る |
# | 課題1 | 潜在表現を k-means でクラスタリングし、数字のラベルとどれだけ一致するかを調べる |
# | 課題2 | 畳み込み自己符号化器 (Conv AE) と畳み込み VAE (Conv VAE) を実装する |
# | 課題3 | Fashion-MNIST と CIFAR-10 の潜在空間を観察する |
#
# ### 進め方と提出
# - `# YOUR CODE HERE` と `raise NotImplementedError()` がある セル を実装してください。関数名・クラス名・引数は
#   **変えないでください**(自動採点はこの名前で行います)。
# - 各実装セルの直後に **自己チェック** のセルがあります。`✔ ... 自己チェックに合格しました` と表示されれば、
#   形や基本的な性質は満たしています(合格しても満点とは限りません。採点では別のテストも行います)。
# - 自動採点では、ノートブックから **import・関数・クラス・定数の定義だけ** を取り出して別のプロセスでテストします。
#   関数やクラスの外に書いた処理(学習ループなど)は採点時には実行されないので、実装は必ず関数・クラスの中に書いてください。
# - 「考察」のセルには自分の言葉で答えてください(教員・TA が採点します)。
# - 「【自動採点】」と書かれた編集できないセルは、自動採点の点数が記録される欄です(中身はコメントだけです)。
# - 最後に **カーネルを再起動して全セルを実行** し、図がすべて表示された状態で保存して提出してください。
#
# 環境変数 `QUICK=1` を設定すると、エポック数とデータ数を減らした短縮モードで全体を数分で実行できます(動作確認用)。

# %%
import os

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from tqdm.auto import tqdm

from labtools import CLASS_NAMES, load_dataset, minibatches, self_check

QUICK = os.environ.get("QUICK") == "1"
EPOCHS = 20  # 講義どおりのエポック数
N_TRAIN = None  # None なら訓練データ全体を使う
BATCH_SIZE = 128
LR = 1e-3
if QUICK:  # 動作確認用の短縮モード
    EPOCHS, N_TRAIN = 3, 30_000

device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
torch.manual_seed(0)
print(f"device={device}, torch={torch.__version__}, QUICK={QUICK}, EPOCHS={EPOCHS}")

# %% [markdown]
# ## 0. データと共通の道具
#
# MNIST は 28×28 の手書き数字画像(訓練 60,000 枚・テスト 10,000 枚)です。`load_dataset` はデータセット全体を
# 1 つのテンソル `x` (形 `(N, 1, 28, 28)`、値は [0, 1]) とラベル `y` として、計算に使うデバイス(GPU があれば GPU)
# に置きます。ミニバッチはこのテンソルから添字で切り出すので、1 枚ずつ変換する `DataLoader` より高速です。
# データの場所は環境変数 `DATA_DIR`(既定は `data/`)です。

# %%
x_train, y_train = load_dataset("mnist", train=True, limit=N_TRAIN, device=device)
x_test, y_test = load_dataset("mnist", train=False, device=device)
print("train:", tuple(x_train.shape), " test:", tuple(x_test.shape))

# %% [markdown]
# 以下は全体で使う学習ループと可視化の関数です(読むだけで構いません)。`train` はどのモデルにも使えるように、
# 損失を `loss_fn(model, xb)`(バッチ平均の損失を返す関数)として受け取ります。


# %%
def train(model, x, loss_fn, epochs, *, batch_size=BATCH_SIZE, lr=LR, desc="train"):
    """Adam (学習率 lr) で model を学習し、エポックごとの 1 サンプルあたりの平均損失のリストを返す。"""
    model.to(x.device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    history = []
    progress = tqdm(range(epochs), desc=desc)
    for _ in progress:
        model.train()
        total = torch.zeros((), device=x.device)
        for xb in minibatches(x, batch_size):
            loss = loss_fn(model, xb)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.detach() * len(xb)
        history.append(total.item() / len(x))
        progress.set_postfix(loss=f"{history[-1]:.4f}")
    return history


@torch.no_grad()
def evaluate(model, x, loss_fn, batch_size=1000):
    """x 全体での 1 サンプルあたりの平均損失。"""
    model.eval()
    return sum(loss_fn(model, xb).item() * len(xb) for xb in minibatches(x, batch_size, shuffle=False)) / len(x)


@torch.no_grad()
def encode(model, x, batch_size=1000):
    """潜在表現を返す: AE の forward は (encoded, decoded) なので encoded、VAE は (reconstructed, mu, logvar) なので mu。"""
    model.eval()
    outputs = [model(xb) for xb in minibatches(x, batch_size, shuffle=False)]
    return torch.cat([out[1] if len(out) == 3 else out[0] for out in outputs])


def ae_objective(model, xb):
    """AE の損失: 再構成の平均二乗誤差 (MSE)。"""
    _, decoded = model(xb)
    return F.mse_loss(decoded, xb)


def vae_objective(model, xb):
    """VAE の損失 (1 サンプルあたり): vae_loss(バッチ合計) をバッチサイズで割ったもの。"""
    reconstructed, mu, logvar = model(xb)
    return vae_loss(reconstructed, xb, mu, logvar) / len(xb)


def plot_latent(latents, labels, title="", class_names=None, ax=None):
    """2 次元の潜在表現を、正解ラベルで色分けした散布図にする。"""
    z, y = latents.detach().cpu().numpy(), labels.cpu().numpy()
    if ax is None:
        _, ax = plt.subplots(figsize=(6.5, 5))
    points = ax.scatter(z[:, 0], z[:, 1], c=y, cmap="tab10", vmin=-0.5, vmax=9.5, s=2, alpha=0.6)
    colorbar = ax.figure.colorbar(points, ax=ax, ticks=range(10))
    colorbar.ax.set_yticklabels(class_names or [str(k) for k in range(10)])
    ax.set(title=title, xlabel="$z_1$", ylabel="$z_2$")
    return ax.figure


def compare_latents(models, x, y, title, class_names=None):
    """複数のモデルの潜在空間を横に並べて描く。models は {名前: モデル}。"""
    fig, axes = plt.subplots(1, len(models), figsize=(6.5 * len(models), 5))
    for ax, (name, model) in zip(np.atleast_1d(axes), models.items()):
        plot_latent(encode(model, x), y, name, class_names, ax=ax)
    fig.suptitle(title)
    return fig


def show_images(images, nrow, title=""):
    """(N, C, H, W) の画像を nrow 列の格子にして表示する。"""
    grid = torchvision.utils.make_grid(images.detach().cpu().clamp(0, 1), nrow=nrow, padding=2, pad_value=1.0)
    rows = (len(images) + nrow - 1) // nrow
    fig, ax = plt.subplots(figsize=(0.7 * nrow, 0.7 * rows + 0.5))
    ax.imshow(grid.permute(1, 2, 0).numpy())
    ax.set_title(title)
    ax.axis("off")
    return fig


@torch.no_grad()
def decode_prior_samples(decoder, n=40, latent_dim=2, seed=1):
    """z ~ N(0, I) を n 個 (seed で固定) 選んでデコードした画像 (n, 1, 28, 28)。AE と VAE で同じ z を使う。"""
    z = torch.randn(n, latent_dim, generator=torch.Generator().manual_seed(seed))
    return decoder(z.to(device)).view(-1, 1, 28, 28)


def plot_history(histories, ylabel):
    """{名前: エポックごとの損失} の学習曲線を描く。"""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for name, history in histories.items():
        ax.plot(range(1, len(history) + 1), history, marker="o", label=name)
    ax.set(xlabel="epoch", ylabel=ylabel, title="training loss")
    ax.legend()
    return fig


# %% [markdown]
# ## 第1部 自己符号化器 (AE)
#
# 自己符号化器は、入力 $x$ を低次元の潜在表現 $z = f_\phi(x)$ に写す **エンコーダ** と、$z$ から入力を復元する
# **デコーダ** $\hat x = g_\theta(z)$ からなり、再構成誤差 $\frac{1}{N}\sum \lVert x - \hat x \rVert^2$ (MSE) を
# 最小にするように学習します。ここでは潜在空間を 2 次元にして、直接散布図で見られるようにします。
#
# | 層 | エンコーダ | デコーダ |
# |---|---|---|
# | 1 | 784 → 128, ReLU | 2 → 32, ReLU |
# | 2 | 128 → 32, ReLU | 32 → 128, ReLU |
# | 3 | 32 → 2 | 128 → 784, **Sigmoid** (画素値を [0, 1] に) |
#
# 最適化は Adam (学習率 $10^{-3}$)、バッチサイズ 128 です。


# %%
def mlp_encoder(out_features):
    """784 → 128 → 32 → out_features の MLP (最後の層は活性化なし)。"""
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(784, 128), nn.ReLU(),
        nn.Linear(128, 32), nn.ReLU(),
        nn.Linear(32, out_features),
    )


def mlp_decoder(latent_dim):
    """latent_dim → 32 → 128 → 784 の MLP。Sigmoid で出力を [0, 1] にする。"""
    return nn.Sequential(
        nn.Linear(latent_dim, 32), nn.ReLU(),
        nn.Linear(32, 128), nn.ReLU(),
        nn.Linear(128, 784), nn.Sigmoid(),
    )


class AutoEncoder(nn.Module):
    """MLP 自己符号化器 784-128-32-2。forward(x) は (encoded, decoded) を返し、decoded は x と同じ形。"""

    def __init__(self, latent_dim=2):
        super().__init__()
        self.encoder = mlp_encoder(latent_dim)
        self.decoder = mlp_decoder(latent_dim)

    def forward(self, x):
        encoded = self.encoder(x)
        decoded = self.decoder(encoded).view_as(x)
        return encoded, decoded


# %%
torch.manual_seed(0)
ae = AutoEncoder().to(device)
ae_history = train(ae, x_train, ae_objective, EPOCHS, desc="AE")
print(f"AE のテスト MSE: {evaluate(ae, x_test, ae_objective):.4f}")

# %% tags=["figure"] nbgrader={"grade": false, "grade_id": "fig_ae_reconstruction", "locked": true, "schema_version": 3, "solution": false}
with torch.no_grad():
    _, reconstructed = ae(x_test[:10])
plot_history({"AE": ae_history}, "MSE")
show_images(torch.cat([x_test[:10], reconstructed]), nrow=10, title="AE: test images (top) and reconstructions (bottom)")
plt.show()

# %% [markdown]
# 2 次元の潜在空間に、テスト画像 10,000 枚がどう配置されたかを見てみましょう(色は正解の数字)。

# %% tags=["figure"] nbgrader={"grade": false, "grade_id": "fig_ae_latent", "locked": true, "schema_version": 3, "solution": false}
ae_latents = encode(ae, x_test)
plot_latent(ae_latents, y_test, "AE latent space (MNIST test)")
plt.show()

# %% [markdown]
# 潜在空間の点を標準正規分布 $\mathcal N(0, I)$ から選んでデコーダに通すと、どのような画像が得られるでしょうか。

# %% tags=["figure"] nbgrader={"grade": false, "grade_id": "fig_ae_samples", "locked": true, "schema_version": 3, "solution": false}
show_images(decode_prior_samples(ae.decoder), nrow=10, title="AE: decoder(z), z ~ N(0, I)")
plt.show()

# %% [markdown]
# ## 第2部 変分自己符号化器 (VAE)
#
# VAE のエンコーダは 1 点 $z$ ではなく、正規分布 $q_\phi(z\mid x) = \mathcal N(\mu, \operatorname{diag}\sigma^2)$
# のパラメータ $\mu$ と $\log\sigma^2$ (`logvar`) を出力します(出力層 `fc_mu` と `fc_logvar`)。
# 損失は、再構成の **2 値交差エントロピー (BCE, 合計)** と、$q_\phi(z\mid x)$ を事前分布 $p(z)=\mathcal N(0, I)$
# に近づける **KL ダイバージェンス** の和です:
#
# $$
# \mathcal L = \underbrace{-\sum_i \bigl[x_i \log \hat x_i + (1-x_i)\log(1-\hat x_i)\bigr]}_{\text{BCE}}
# \; \underbrace{- \frac12 \sum_j \bigl(1 + \log\sigma_j^2 - \mu_j^2 - \sigma_j^2\bigr)}_{\mathrm{KL}(q\,\Vert\,p)} .
# $$
#
# $z$ を $q_\phi$ から直接サンプリングすると $\mu, \sigma$ へ勾配が流れません。そこで **再パラメータ化トリック**
# $z = \mu + \sigma \odot \varepsilon,\ \varepsilon \sim \mathcal N(0, I),\ \sigma = \exp(\tfrac12 \log\sigma^2)$
# を使い、乱数 $\varepsilon$ を外に出します。
#
# ### 課題 2.1 `reparameterize`
# `reparameterize(mu, logvar)` を実装してください。`z` は `mu` と同じ形・dtype・デバイスで、`z` から `mu` と
# `logvar` の両方へ勾配が流れること。$\varepsilon$ は `torch.randn_like` で作ります。


# %% nbgrader={"grade": false, "grade_id": "reparameterize", "locked": false, "schema_version": 3, "solution": true}
def reparameterize(mu, logvar):
    """z = mu + sigma * eps,  sigma = exp(0.5 * logvar),  eps ~ N(0, I)。

    mu, logvar: 形 (B, D) のテンソル。戻り値 z は mu と同じ形・dtype・デバイス。
    """
    ### BEGIN SOLUTION
    std = torch.exp(0.5 * logvar)
    eps = torch.randn_like(std)
    return mu + eps * std
    ### END SOLUTION


# %% nbgrader={"grade": false, "grade_id": "check_reparameterize", "locked": true, "schema_version": 3, "solution": false}
with self_check("reparameterize"):
    mu = torch.zeros(1000, 2, requires_grad=True)
    logvar = torch.zeros(1000, 2, requires_grad=True)
    z = reparameterize(mu, logvar)
    assert isinstance(z, torch.Tensor), f"z は torch.Tensor で返してください ({type(z).__name__} でした)"
    assert z.shape == mu.shape, f"z の形は {tuple(mu.shape)} のはずが {tuple(z.shape)} です"
    assert not torch.allclose(z, mu), "z が mu と同じです: ノイズ eps が加わっていません"
    z.sum().backward()
    assert mu.grad is not None and mu.grad.abs().sum() > 0, "z から mu へ勾配が流れていません"
    assert logvar.grad is not None and logvar.grad.abs().sum() > 0, "z から logvar へ勾配が流れていません"

# %% nbgrader={"grade": true, "grade_id": "auto_reparameterize", "locked": true, "points": 15, "schema_version": 3, "solution": false}
# 【自動採点】課題 2.1 `reparameterize`
# このセルは、課題 2.1 `reparameterize` の自動採点のチェックを表します。採点はこの授業の自動採点システム
# (`make grade`) が行い、点数はこのセルに記録されます。このセルは編集しないでください(実行しても何も起きません)。
# Autograded checks of 課題 2.1 (`reparameterize`), graded by the course's autograder (`make grade`).
# Do not edit this cell.
if os.environ.get("NBGRADER_EXECUTION") == "autograde":  # nbgrader の Execute で実行されたときだけ
    raise RuntimeError("nbgrader の Execute ではこの課題を採点できません。コースの nbgrader_config.py のもとで `nbgrader autograde` を実行するか、`make grade` で採点してください。\n"
                       "nbgrader's Execute cannot grade this lab: run `nbgrader autograde` with the course's nbgrader_config.py, or grade with `make grade`.")

# %% [markdown]
# ### 課題 2.2 `vae_loss`
# `vae_loss(reconstructed, x, mu, logvar)` を実装してください。戻り値はバッチ全体の **合計** の
# BCE + KL で、スカラー (0 次元) のテンソルです。`reconstructed` と `x` は要素数が同じです
# (形が `(B, 1, 28, 28)` と `(B, 784)` のように違っても動くようにしてください)。
# BCE には `F.binary_cross_entropy(..., reduction="sum")` が使えます。


# %% nbgrader={"grade": false, "grade_id": "vae_loss", "locked": false, "schema_version": 3, "solution": true}
def vae_loss(reconstructed, x, mu, logvar):
    """BCE(合計) + KL(合計)。KL = -0.5 * sum(1 + logvar - mu^2 - exp(logvar))。スカラーのテンソルを返す。"""
    ### BEGIN SOLUTION
    bce = F.binary_cross_entropy(reconstructed, x.reshape(reconstructed.shape), reduction="sum")
    kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
    return bce + kl
    ### END SOLUTION


# %% nbgrader={"grade": false, "grade_id": "check_vae_loss", "locked": true, "schema_version": 3, "solution": false}
with self_check("vae_loss"):
    x_binary = (torch.rand(8, 1, 28, 28) > 0.5).float()
    zeros = torch.zeros(8, 2)
    loss = vae_loss(x_binary, x_binary, zeros, zeros)
    assert isinstance(loss, torch.Tensor) and loss.dim() == 0, "戻り値はスカラー (0 次元) のテンソルにしてください"
    assert abs(loss.item()) < 1e-4, f"完全な再構成で mu=0, logvar=0 なら損失は 0 のはずです (KL(0,0)=0) が {loss.item():.4f} でした"
    assert vae_loss(x_binary, x_binary, torch.ones(8, 2), zeros).item() > 0, "mu≠0 のとき KL は正になるはずです"

# %% nbgrader={"grade": true, "grade_id": "auto_vae_loss", "locked": true, "points": 20, "schema_version": 3, "solution": false}
# 【自動採点】課題 2.2 `vae_loss`
# このセルは、課題 2.2 `vae_loss` の自動採点のチェックを表します。採点はこの授業の自動採点システム
# (`make grade`) が行い、点数はこのセルに記録されます。このセルは編集しないでください(実行しても何も起きません)。
# Autograded checks of 課題 2.2 (`vae_loss`), graded by the course's autograder (`make grade`).
# Do not edit this cell.
if os.environ.get("NBGRADER_EXECUTION") == "autograde":  # nbgrader の Execute で実行されたときだけ
    raise RuntimeError("nbgrader の Execute ではこの課題を採点できません。コースの nbgrader_config.py のもとで `nbgrader autograde` を実行するか、`make grade` で採点してください。\n"
                       "nbgrader's Execute cannot grade this lab: run `nbgrader autograde` with the course's nbgrader_config.py, or grade with `make grade`.")

# %% [markdown]
# VAE 本体は与えられています。大きさは AE と同じで、エンコーダの最後の層が `fc_mu` と `fc_logvar` に分かれています。


# %%
class VAE(nn.Module):
    """MLP の VAE。forward(x) は (reconstructed, mu, logvar) を返し、reconstructed は x と同じ形。"""

    def __init__(self, latent_dim=2):
        super().__init__()
        self.encoder = mlp_encoder(32)[:-1]  # 784 → 128 → 32 (ReLU まで)
        self.fc_mu = nn.Linear(32, latent_dim)
        self.fc_logvar = nn.Linear(32, latent_dim)
        self.decoder = mlp_decoder(latent_dim)

    def encode(self, x):
        h = self.encoder(x)
        return self.fc_mu(h), self.fc_logvar(h)

    def reparameterize(self, mu, logvar):
        return reparameterize(mu, logvar)

    def forward(self, x):
        mu, logvar = self.encode(x)
        z = self.reparameterize(mu, logvar)
        return self.decoder(z).view_as(x), mu, logvar


# %%
torch.manual_seed(0)
vae = VAE().to(device)
vae_history = train(vae, x_train, vae_objective, EPOCHS, desc="VAE")
print(f"VAE のテスト損失 (1 サンプルあたりの BCE + KL): {evaluate(vae, x_test, vae_objective):.1f}")

# %% nbgrader={"grade": true, "grade_id": "auto_vae_training", "locked": true, "points": 10, "schema_version": 3, "solution": false}
# 【自動採点】VAE の学習 (課題 2.1 の `reparameterize` を使う `VAE`)
# このセルは、上の `VAE` (課題 2.1 の `reparameterize` を使う) を採点側の学習ループで学習してテスト画像で評価する、
# 自動採点のチェックを表します。採点はこの授業の自動採点システム (`make grade`) が行い、点数はこのセルに記録されます。
# このセルは編集しないでください(実行しても何も起きません)。
# Autograded checks of 課題 2.1 in training (the `VAE` with your `reparameterize`, trained by the grader's loop and
# scored on test images), graded by the course's autograder (`make grade`). Do not edit this cell.
if os.environ.get("NBGRADER_EXECUTION") == "autograde":  # nbgrader の Execute で実行されたときだけ
    raise RuntimeError("nbgrader の Execute ではこの課題を採点できません。コースの nbgrader_config.py のもとで `nbgrader autograde` を実行するか、`make grade` で採点してください。\n"
                       "nbgrader's Execute cannot grade this lab: run `nbgrader autograde` with the course's nbgrader_config.py, or grade with `make grade`.")

# %% tags=["figure"] nbgrader={"grade": false, "grade_id": "fig_vae_latent", "locked": true, "schema_version": 3, "solution": false}
plot_history({"VAE": vae_history}, "BCE + KL per sample")
vae_latents = encode(vae, x_test)
plot_latent(vae_latents, y_test, "VAE latent space: mu (MNIST test)")
plt.show()

# %% tags=["figure"] nbgrader={"grade": false, "grade_id": "fig_vae_samples", "locked": true, "schema_version": 3, "solution": false}
show_images(decode_prior_samples(vae.decoder), nrow=10, title="VAE: decoder(z), z ~ N(0, I)")
plt.show()

# %% [markdown]
# **潜在空間での補間**: 2 枚のテスト画像(数字の 1 と 0)の $\mu$ を結ぶ線分上の点をデコードします。

# %% tags=["figure"] nbgrader={"grade": false, "grade_id": "fig_vae_interpolation", "locked": true, "schema_version": 3, "solution": false}
start, end = encode(vae, x_test[[int((y_test == 1).nonzero()[0]), int((y_test == 0).nonzero()[0])]])
weights = torch.linspace(0, 1, 10, device=device).unsqueeze(1)
with torch.no_grad():
    path = vae.decoder((1 - weights) * start + weights * end).view(-1, 1, 28, 28)
show_images(path, nrow=10, title="VAE: interpolation between the latent means of a 1 and a 0")
plt.show()

# %% [markdown]
# ### 考察 1
# AE と VAE の潜在空間の散布図と、$\mathcal N(0, I)$ からサンプルした $z$ の生成結果を比べてください。
# 何が違い、それは損失関数のどの項によるものだと考えられますか。補間の結果からわかることも述べてください。

# %% [markdown] nbgrader={"grade": true, "grade_id": "answer_ae_vs_vae", "locked": false, "points": 5, "schema_version": 3, "solution": true}
# AE の潜在空間は原点から離れた所まで広がり、数字ごとの領域の間に何もない隙間があります。そのため N(0, I) から
# 選んだ z の多くは学習データが存在しない場所に落ち、ぼやけた・数字に見えない画像になります。VAE では KL 項が
# q(z|x) を N(0, I) に近づけるので、潜在表現が原点付近に詰まって連続的に分布し、N(0, I) からのサンプルがどれも
# 数字らしい画像になります。補間でも VAE は 1 から 0 へ途中の画像が滑らかに変化し、潜在空間が連続であることがわかります。
# 一方で KL 項は表現を重ねる方向に働くため、クラス間の境界は AE より曖昧になります。

# %% [markdown]
# ## 課題1 k-means による潜在表現のクラスタリング
#
# 正解ラベルを使わずに、潜在表現だけから数字のまとまりを見つけられるでしょうか。**k-means** (Lloyd 法) は
# (1) 各点を最も近い中心に割り当て、(2) 各中心を割り当てられた点の平均に更新する、を割り当てが変わらなくなるまで
# (最大 `n_iters` 回) 繰り返します。初期中心は **k-means++** で選びます: 1 つ目は一様に、以降は既に選んだ中心への
# 最短距離の 2 乗 $D(x)^2$ に比例する確率で選びます。
#
# ### 課題 1.1 `kmeans`
# `kmeans(x, n_clusters, n_iters=100, seed=0)` を PyTorch で実装してください(GPU 上のテンソルでもそのまま動くように)。
# - 戻り値は `(labels, centroids)`。`labels` は形 `(N,)` の整数テンソル、`centroids` は形 `(n_clusters, D)`。
# - 同じ `seed` なら同じ結果になること(`torch.Generator().manual_seed(seed)` を使う)。
# - 点が 1 つも割り当てられなかった中心は、前の位置のままにします。
# - 2 点間の距離には `torch.cdist` が使えます。


# %% nbgrader={"grade": false, "grade_id": "kmeans", "locked": false, "schema_version": 3, "solution": true}
def kmeans(x, n_clusters, n_iters=100, seed=0):
    """Lloyd 法の k-means (k-means++ 初期化)。x: (N, D)。戻り値 (labels (N,), centroids (n_clusters, D))。"""
    ### BEGIN SOLUTION
    x = torch.as_tensor(x, dtype=torch.float32)
    generator = torch.Generator().manual_seed(seed)
    first = torch.randint(len(x), (1,), generator=generator)
    centroids = x[first.to(x.device)]
    for _ in range(1, n_clusters):
        nearest = torch.cdist(x, centroids).min(dim=1).values.pow(2)
        chosen = torch.multinomial(nearest.cpu() + 1e-12, 1, generator=generator)
        centroids = torch.cat([centroids, x[chosen.to(x.device)]])
    labels = torch.cdist(x, centroids).argmin(dim=1)
    for _ in range(n_iters):
        sums = torch.zeros_like(centroids).index_add_(0, labels, x)
        counts = torch.bincount(labels, minlength=n_clusters).unsqueeze(1)
        centroids = torch.where(counts > 0, sums / counts.clamp(min=1), centroids)
        new_labels = torch.cdist(x, centroids).argmin(dim=1)
        if torch.equal(new_labels, labels):
            break
        labels = new_labels
    return labels, centroids
    ### END SOLUTION


# %% nbgrader={"grade": false, "grade_id": "check_kmeans", "locked": true, "schema_version": 3, "solution": false}
with self_check("kmeans"):
    generator = torch.Generator().manual_seed(0)
    blob_centers = torch.tensor([[0.0, 0.0], [10.0, 10.0], [-10.0, 10.0]])
    blobs = torch.cat([c + 0.5 * torch.randn(50, 2, generator=generator) for c in blob_centers])
    labels, centroids = kmeans(blobs, 3)
    labels = torch.as_tensor(labels)
    assert labels.shape == (150,), f"labels の形は (150,) のはずが {tuple(labels.shape)} です"
    assert tuple(centroids.shape) == (3, 2), f"centroids の形は (3, 2) のはずが {tuple(centroids.shape)} です"
    assert all(labels[i * 50:(i + 1) * 50].unique().numel() == 1 for i in range(3)), "同じ塊の点が別々のクラスタに分かれています"
    assert labels.unique().numel() == 3, "3 つの塊が 3 つのクラスタになっていません"

# %% nbgrader={"grade": true, "grade_id": "auto_kmeans", "locked": true, "points": 15, "schema_version": 3, "solution": false}
# 【自動採点】課題 1.1 `kmeans`
# このセルは、課題 1.1 `kmeans` の自動採点のチェックを表します。採点はこの授業の自動採点システム
# (`make grade`) が行い、点数はこのセルに記録されます。このセルは編集しないでください(実行しても何も起きません)。
# Autograded checks of 課題 1.1 (`kmeans`), graded by the course's autograder (`make grade`).
# Do not edit this cell.
if os.environ.get("NBGRADER_EXECUTION") == "autograde":  # nbgrader の Execute で実行されたときだけ
    raise RuntimeError("nbgrader の Execute ではこの課題を採点できません。コースの nbgrader_config.py のもとで `nbgrader autograde` を実行するか、`make grade` で採点してください。\n"
                       "nbgrader's Execute cannot grade this lab: run `nbgrader autograde` with the course's nbgrader_config.py, or grade with `make grade`.")

# %% [markdown]
# ### 課題 1.2 `plot_latent_clusters`
# `plot_latent_clusters(latents, cluster_labels, title="")` を実装してください。2 次元の潜在表現 `latents` (形 `(N, 2)`)
# を、`cluster_labels` ごとに色を変えた散布図にして、その `matplotlib.figure.Figure` を返します。
# すべての点を描き、クラスタが区別できる色(例えば `tab10` カラーマップ)と凡例を付けてください。


# %% nbgrader={"grade": false, "grade_id": "plot_latent_clusters", "locked": false, "schema_version": 3, "solution": true}
def plot_latent_clusters(latents, cluster_labels, title=""):
    """潜在表現の散布図をクラスタごとに色分けして描き、Figure を返す。"""
    ### BEGIN SOLUTION
    z = torch.as_tensor(latents).detach().cpu().numpy()
    clusters = torch.as_tensor(cluster_labels).cpu().numpy()
    fig, ax = plt.subplots(figsize=(6.5, 5))
    for k in np.unique(clusters):
        members = z[clusters == k]
        ax.scatter(members[:, 0], members[:, 1], s=2, color=plt.cm.tab10(int(k) % 10), label=f"cluster {k}")
    ax.legend(markerscale=5, fontsize=8)
    ax.set(title=title, xlabel="$z_1$", ylabel="$z_2$")
    return fig
    ### END SOLUTION


# %% nbgrader={"grade": false, "grade_id": "check_plot_latent_clusters", "locked": true, "schema_version": 3, "solution": false}
with self_check("plot_latent_clusters"):
    figure = plot_latent_clusters(blobs, labels, title="self-check")
    assert isinstance(figure, matplotlib.figure.Figure), "matplotlib の Figure を返してください"
    n_points = sum(
        len(collection.get_offsets())
        for ax in figure.axes
        for collection in ax.collections
        if isinstance(collection, matplotlib.collections.PathCollection)
    )
    assert n_points == len(blobs), f"散布図の点が {n_points} 個です ({len(blobs)} 点すべてを描いてください)"
    plt.close(figure)

# %% [markdown]
# AE と VAE のテスト画像の潜在表現を k = 10 でクラスタリングし、色分けして描きます。

# %%
ae_clusters, _ = kmeans(ae_latents, 10)
vae_clusters, _ = kmeans(vae_latents, 10)

# %% tags=["figure"] nbgrader={"grade": false, "grade_id": "fig_kmeans_ae", "locked": true, "schema_version": 3, "solution": false}
plot_latent_clusters(ae_latents, ae_clusters, title="k-means (k=10) on the AE latent space")
plt.show()

# %% tags=["figure"] nbgrader={"grade": false, "grade_id": "fig_kmeans_vae", "locked": true, "schema_version": 3, "solution": false}
plot_latent_clusters(vae_latents, vae_clusters, title="k-means (k=10) on the VAE latent space")
plt.show()

# %% nbgrader={"grade": true, "grade_id": "auto_cluster_plots", "locked": true, "points": 10, "schema_version": 3, "solution": false}
# 【自動採点】課題 1.2 `plot_latent_clusters` と上の 2 つの図
# このセルは、課題 1.2 (`plot_latent_clusters` と、上の 2 つのセル `fig_kmeans_ae`・`fig_kmeans_vae` の図) の
# 自動採点のチェックを表します。採点はこの授業の自動採点システム (`make grade`) が行い、点数はこのセルに記録されます。
# このセルは編集しないでください(実行しても何も起きません)。
# Autograded checks of 課題 1.2 (`plot_latent_clusters` and the two figures above), graded by the course's
# autograder (`make grade`). Do not edit this cell.
if os.environ.get("NBGRADER_EXECUTION") == "autograde":  # nbgrader の Execute で実行されたときだけ
    raise RuntimeError("nbgrader の Execute ではこの課題を採点できません。コースの nbgrader_config.py のもとで `nbgrader autograde` を実行するか、`make grade` で採点してください。\n"
                       "nbgrader's Execute cannot grade this lab: run `nbgrader autograde` with the course's nbgrader_config.py, or grade with `make grade`.")

# %% [markdown]
# クラスタが数字とどれだけ一致しているかを 2 つの指標で測ります。
# - **正解率 (Hungarian matching)**: クラスタと数字を 1 対 1 に対応させる全ての方法のうち、一致する点が最も多い対応
#   (ハンガリー法で求める) での正解率。
# - **NMI** (正規化相互情報量): 0 (無関係) 〜 1 (完全一致)。クラスタ番号の付け方によらない。

# %%
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import normalized_mutual_info_score


def cluster_accuracy(true_labels, cluster_labels):
    """クラスタ番号と正解ラベルを 1 対 1 に最適対応させたときの正解率。"""
    true_labels, cluster_labels = np.asarray(true_labels), np.asarray(cluster_labels)
    size = int(max(true_labels.max(), cluster_labels.max())) + 1
    counts = np.zeros((size, size), dtype=np.int64)
    np.add.at(counts, (cluster_labels, true_labels), 1)
    rows, cols = linear_sum_assignment(counts, maximize=True)
    return counts[rows, cols].sum() / len(true_labels)


for name, clusters in [("AE", ae_clusters), ("VAE", vae_clusters)]:
    truth, found = y_test.cpu().numpy(), torch.as_tensor(clusters).cpu().numpy()
    print(f"{name:>3}: 正解率 {cluster_accuracy(truth, found):.3f}   NMI {normalized_mutual_info_score(truth, found):.3f}")

# %% [markdown]
# ### 考察 2
# どちらの潜在空間のクラスタが数字とよく一致しましたか。散布図のどこでクラスタと数字がずれているかを挙げ、
# 2 次元の潜在空間で k-means を使うことの限界を述べてください。

# %% [markdown] nbgrader={"grade": true, "grade_id": "answer_kmeans", "locked": false, "points": 5, "schema_version": 3, "solution": true}
# 数字 0 や 1 のように形が独特な数字は、どちらの潜在空間でも 1 つのクラスタにほぼまとまります。一方、4・7・9 や
# 3・5・8 は潜在空間で重なっていて、k-means はそれらを混ぜたり 1 つの数字を 2 つに分けたりします。k-means は各
# クラスタを中心からの距離で決まる凸な領域(ボロノイ領域)と仮定し、大きさも同程度を好むので、AE の細長く放射状に
# 伸びた分布には合いません。VAE の潜在空間は原点付近にまとまっていて形が丸く、指標は実行ごとに多少変わります。
# 2 次元に圧縮した時点で失われた情報は取り戻せないので、クラスタリングの性能には上限があります。

# %% [markdown]
# ## 課題2 畳み込み自己符号化器と畳み込み VAE
#
# MLP は画像を 784 次元のベクトルとして扱い、画素の位置関係を使いません。畳み込み層を使うと、局所的な形を
# 位置によらず同じフィルタで捉えられます。
#
# ### 課題 2.3 `ConvAutoEncoder`
# `ConvAutoEncoder(in_channels=1, image_size=28, latent_dim=2)` を実装してください。
# - `self.encoder`: `nn.Conv2d` を含み、`(B, in_channels, image_size, image_size)` を `(B, latent_dim)` に写す。
#   例: `Conv2d(stride=2)` を 2 回 (28 → 14 → 7)、`Flatten`、`Linear` を 2 層 (→ 128 → `latent_dim`)。
# - `self.decoder`: `(B, latent_dim)` を `(B, in_channels, image_size, image_size)` の画像に写す。
#   例: `Linear` を 2 層、`Unflatten`、`ConvTranspose2d(stride=2)` を 2 回、最後に `Sigmoid`。
# - `forward(x)` は `(encoded, decoded)` を返す。`decoded` は `x` と同じ形で、値は [0, 1]。
# - `image_size` は 4 の倍数 (28 や 32) とします。CIFAR-10 では `ConvAutoEncoder(in_channels=3, image_size=32)` として使います。


# %% nbgrader={"grade": false, "grade_id": "ConvAutoEncoder", "locked": false, "schema_version": 3, "solution": true}
class ConvAutoEncoder(nn.Module):
    """畳み込み自己符号化器。forward(x) は (encoded (B, latent_dim), decoded (x と同じ形, [0, 1]))。"""

    def __init__(self, in_channels=1, image_size=28, latent_dim=2):
        super().__init__()
        ### BEGIN SOLUTION
        side = image_size // 4
        self.encoder = nn.Sequential(
            nn.Conv2d(in_channels, 16, kernel_size=3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(16, 32, kernel_size=3, stride=2, padding=1), nn.ReLU(),
            nn.Flatten(),
            nn.Linear(32 * side * side, 128), nn.ReLU(),
            nn.Linear(128, latent_dim),
        )
        self.decoder = nn.Sequential(
            nn.Linear(latent_dim, 128), nn.ReLU(),
            nn.Linear(128, 32 * side * side), nn.ReLU(),
            nn.Unflatten(1, (32, side, side)),
            nn.ConvTranspose2d(32, 16, kernel_size=3, stride=2, padding=1, output_padding=1), nn.ReLU(),
            nn.ConvTranspose2d(16, in_channels, kernel_size=3, stride=2, padding=1, output_padding=1), nn.Sigmoid(),
        )
        ### END SOLUTION

    def forward(self, x):
        ### BEGIN SOLUTION
        encoded = self.encoder(x)
        return encoded, self.decoder(encoded)
        ### END SOLUTION


# %% nbgrader={"grade": false, "grade_id": "check_ConvAutoEncoder", "locked": true, "schema_version": 3, "solution": false}
def check_conv_model(model_class):
    """(1, 28, 28) と (3, 32, 32) の入力で、Conv2d の有無・出力の形と値域・デコーダの形を確かめる。"""
    for channels, size in [(1, 28), (3, 32)]:
        model = model_class(in_channels=channels, image_size=size)
        assert any(isinstance(m, nn.Conv2d) for m in model.encoder.modules()), "encoder に nn.Conv2d を使ってください"
        x = torch.rand(4, channels, size, size)
        outputs = model(x)
        image, latent = (outputs[0], outputs[1]) if len(outputs) == 3 else (outputs[1], outputs[0])
        assert image.shape == x.shape, f"入力 {tuple(x.shape)} に対して出力の画像の形が {tuple(image.shape)} です"
        assert image.min() >= 0 and image.max() <= 1, "出力の画像は [0, 1] の範囲にしてください (最後に Sigmoid)"
        assert latent.shape == (4, 2), f"潜在表現の形は (4, 2) のはずが {tuple(latent.shape)} です"
        assert model.decoder(latent).shape == x.shape, "decoder は (B, latent_dim) を画像 (B, C, H, W) に写してください"
    return outputs


with self_check("ConvAutoEncoder"):
    assert len(check_conv_model(ConvAutoEncoder)) == 2, "forward は (encoded, decoded) の 2 つを返してください"

# %% nbgrader={"grade": true, "grade_id": "auto_conv_autoencoder", "locked": true, "points": 15, "schema_version": 3, "solution": false}
# 【自動採点】課題 2.3 `ConvAutoEncoder`
# このセルは、課題 2.3 `ConvAutoEncoder` の自動採点のチェックを表します。採点はこの授業の自動採点システム
# (`make grade`) が行い、点数はこのセルに記録されます。このセルは編集しないでください(実行しても何も起きません)。
# Autograded checks of 課題 2.3 (`ConvAutoEncoder`), graded by the course's autograder (`make grade`).
# Do not edit this cell.
if os.environ.get("NBGRADER_EXECUTION") == "autograde":  # nbgrader の Execute で実行されたときだけ
    raise RuntimeError("nbgrader の Execute ではこの課題を採点できません。コースの nbgrader_config.py のもとで `nbgrader autograde` を実行するか、`make grade` で採点してください。\n"
                       "nbgrader's Execute cannot grade this lab: run `nbgrader autograde` with the course's nbgrader_config.py, or grade with `make grade`.")

# %% [markdown]
# ### 課題 2.4 `ConvVAE`
# `ConvVAE(in_channels=1, image_size=28, latent_dim=2)` を実装してください。
# - エンコーダは畳み込み層を含み、`self.fc_mu` と `self.fc_logvar` で $\mu$ と $\log\sigma^2$ (各 `(B, latent_dim)`) を出す。
# - `forward(x)` は `(reconstructed, mu, logvar)` を返す。$z$ は課題 2.1 の `reparameterize` で作る。
# - `self.decoder` は潜在ベクトル `(B, latent_dim)` を画像 `(B, in_channels, image_size, image_size)` (値は [0, 1]) に写す。
# - `ConvAutoEncoder` の層をそのまま再利用しても構いません。


# %% nbgrader={"grade": false, "grade_id": "ConvVAE", "locked": false, "schema_version": 3, "solution": true}
class ConvVAE(nn.Module):
    """畳み込み VAE。forward(x) は (reconstructed (x と同じ形, [0, 1]), mu, logvar)。"""

    def __init__(self, in_channels=1, image_size=28, latent_dim=2):
        super().__init__()
        ### BEGIN SOLUTION
        layers = ConvAutoEncoder(in_channels, image_size, latent_dim)
        self.encoder = layers.encoder[:-1]  # 最後の Linear より前 (畳み込み → Flatten → 128)
        features = layers.encoder[-1].in_features
        self.fc_mu = nn.Linear(features, latent_dim)
        self.fc_logvar = nn.Linear(features, latent_dim)
        self.decoder = layers.decoder
        ### END SOLUTION

    def forward(self, x):
        ### BEGIN SOLUTION
        h = self.encoder(x)
        mu, logvar = self.fc_mu(h), self.fc_logvar(h)
        return self.decoder(reparameterize(mu, logvar)), mu, logvar
        ### END SOLUTION


# %% nbgrader={"grade": false, "grade_id": "check_ConvVAE", "locked": true, "schema_version": 3, "solution": false}
with self_check("ConvVAE"):
    outputs = check_conv_model(ConvVAE)
    assert len(outputs) == 3, "forward は (reconstructed, mu, logvar) の 3 つを返してください"
    assert outputs[1].shape == outputs[2].shape == (4, 2), "mu と logvar の形は (B, latent_dim) にしてください"

# %% nbgrader={"grade": true, "grade_id": "auto_conv_vae", "locked": true, "points": 15, "schema_version": 3, "solution": false}
# 【自動採点】課題 2.4 `ConvVAE`
# このセルは、課題 2.4 `ConvVAE` の自動採点のチェックを表します。採点はこの授業の自動採点システム
# (`make grade`) が行い、点数はこのセルに記録されます。このセルは編集しないでください(実行しても何も起きません)。
# Autograded checks of 課題 2.4 (`ConvVAE`), graded by the course's autograder (`make grade`).
# Do not edit this cell.
if os.environ.get("NBGRADER_EXECUTION") == "autograde":  # nbgrader の Execute で実行されたときだけ
    raise RuntimeError("nbgrader の Execute ではこの課題を採点できません。コースの nbgrader_config.py のもとで `nbgrader autograde` を実行するか、`make grade` で採点してください。\n"
                       "nbgrader's Execute cannot grade this lab: run `nbgrader autograde` with the course's nbgrader_config.py, or grade with `make grade`.")

# %% [markdown]
# 畳み込みモデルを MNIST で学習し、潜在空間を第1部・第2部の MLP モデルと比べます。`fit_conv_models` は
# 課題3 でも使う共通の関数です。


# %%
def fit_conv_models(name):
    """データセット name で ConvAutoEncoder と ConvVAE を学習し、(モデルの辞書, テスト画像, テストラベル) を返す。"""
    x, _ = load_dataset(name, train=True, limit=N_TRAIN, device=device)
    x_eval, y_eval = load_dataset(name, train=False, device=device)
    channels, size = x.shape[1], x.shape[-1]
    torch.manual_seed(0)
    models = {"Conv AE": ConvAutoEncoder(channels, size), "Conv VAE": ConvVAE(channels, size)}
    train(models["Conv AE"], x, ae_objective, EPOCHS, desc=f"{name} Conv AE")
    train(models["Conv VAE"], x, vae_objective, EPOCHS, desc=f"{name} Conv VAE")
    print(f"{name}: Conv AE のテスト MSE {evaluate(models['Conv AE'], x_eval, ae_objective):.4f}, "
          f"Conv VAE のテスト損失 {evaluate(models['Conv VAE'], x_eval, vae_objective):.1f}")
    return models, x_eval, y_eval


mnist_conv_models, _, _ = fit_conv_models("mnist")

# %% tags=["figure"] nbgrader={"grade": false, "grade_id": "fig_conv_latent", "locked": true, "schema_version": 3, "solution": false}
compare_latents({"MLP AE": ae, **mnist_conv_models, "MLP VAE": vae}, x_test, y_test, "MNIST latent spaces: MLP vs convolutional")
plt.show()

# %% [markdown]
# ### 考察 3
# 畳み込みモデルと MLP モデルの潜在空間・損失を比べ、違いとその理由を述べてください。

# %% [markdown] nbgrader={"grade": true, "grade_id": "answer_conv", "locked": false, "points": 5, "schema_version": 3, "solution": true}
# 同じエポック数では、畳み込みモデルの再構成誤差は MLP のモデルよりやや小さくなります。畳み込みは近くの画素どうしの
# 関係を位置によらず同じフィルタで捉えるので、筆跡の局所的な形(線の向きや曲がり)を特徴にしやすいためです。ただし
# 2 次元の潜在空間というボトルネックは同じなので差は小さく、4・9 や 3・5・8 のように似た数字の重なりは潜在空間でも
# 解消されません。VAE では KL 項のために潜在表現が原点付近にまとまる点も、MLP の VAE と同じです。

# %% [markdown]
# ## 課題3 Fashion-MNIST と CIFAR-10 の潜在空間
#
# 同じ畳み込みモデルを、衣類の画像 **Fashion-MNIST** (28×28 白黒、10 クラス) と、自然画像 **CIFAR-10**
# (32×32 カラー、10 クラス; `in_channels=3, image_size=32`) で学習し、潜在空間を比べます。

# %% tags=["figure"] nbgrader={"grade": false, "grade_id": "fig_fashion_latent", "locked": true, "schema_version": 3, "solution": false}
fashion_models, x_fashion, y_fashion = fit_conv_models("fashion_mnist")
compare_latents(fashion_models, x_fashion, y_fashion, "Fashion-MNIST latent spaces", CLASS_NAMES["fashion_mnist"])
plt.show()

# %% tags=["figure"] nbgrader={"grade": false, "grade_id": "fig_cifar_latent", "locked": true, "schema_version": 3, "solution": false}
cifar_models, x_cifar, y_cifar = fit_conv_models("cifar10")
compare_latents(cifar_models, x_cifar, y_cifar, "CIFAR-10 latent spaces", CLASS_NAMES["cifar10"])
with torch.no_grad():
    _, cifar_reconstructed = cifar_models["Conv AE"](x_cifar[:10])
show_images(torch.cat([x_cifar[:10], cifar_reconstructed]), nrow=10, title="CIFAR-10: test images (top) and Conv AE reconstructions (bottom)")
plt.show()

# %% [markdown]
# ### 考察 4
# MNIST・Fashion-MNIST・CIFAR-10 でクラスの分かれ方はどう違いましたか。CIFAR-10 の再構成画像も見て、
# 2 次元の潜在表現がどのような情報を捉え、何を捉えられていないかを述べてください。

# %% [markdown] nbgrader={"grade": true, "grade_id": "answer_datasets", "locked": false, "points": 5, "schema_version": 3, "solution": true}
# Fashion-MNIST では、ズボン・バッグ・靴類(サンダル・スニーカー・ブーツ)は分かれますが、Tシャツ・シャツ・プルオーバー・
# コートは重なります。形の輪郭は捉えられても、細部の違いは 2 次元には入りきらないためです。CIFAR-10 ではクラスが
# ほとんど分かれず、再構成画像は全体の明るさや色の配置だけを残したぼやけた画像になります。2 次元の潜在表現が捉えるのは
# 画素の誤差を最も減らす大まかな明るさ・色の分布であり、物体の種類のような意味的な情報は捉えられません。自然画像では
# 背景や姿勢の変化が大きく、画素単位の再構成誤差はクラスの違いとあまり関係しないためです。
