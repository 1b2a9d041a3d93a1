"""Attacks on the trust boundary, each written as a student would: the untouched template plus cells.

An attacker found six ways for the *untouched template* (every stub still raising NotImplementedError) plus
some added code to earn points under the earlier design (one worker role, one log file, a public ε, latents
passed on bit-exact, a run-time watch for kmeans, probes that decided). Each attack below is that template with
the attack's cells appended, graded by the real engine (``python -m autograder grade … -k …``) together with
the unmodified reference submission, which must keep full points on the same checks. Each test asserts that
the attacker earns nothing it did not earn, and why (docs/threat-model.md: R1 probes observe, R2 rules by
capability, R3 nothing of the grader in a worker, R4 workers share nothing but sanitised latents).

Every attack was first run against the earlier design (commit eff3d07) to make sure it was real; the points
it earned there are in each test's docstring. One variant (6c: the forged ``model`` probe plus an unused 4-D
tensor under ``encoder.``) got through a first version of the new design; the conv check now zeroes the kernels.

Run with ``DATA_DIR=../shared/datasets python -m pytest tests/test_trust_attacks.py``.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from autograder.sandbox import REPO_ROOT, bwrap_unavailable

TEMPLATE = REPO_ROOT / "assignment" / "autoencoders.ipynb"
REFERENCE = REPO_ROOT / "examples" / "submitted" / "reference" / "autoencoders" / "autoencoders.ipynb"

BWRAP_REASON = bwrap_unavailable()
pytestmark = pytest.mark.skipif(BWRAP_REASON is not None, reason=f"bubblewrap unavailable: {BWRAP_REASON}")

# -- 1. the grader's own code, imported in the worker ---------------------------------------------------------
# The earlier worker mounted the whole ``sandboxed`` package at /opt/grader (on the import path): trusted.py held
# the reference reparameterize and training.py the reference VAE loss.
GRADER_IMPORTS = r'''
import torch


def _grader_function(candidates):
    """The first of (module, name) that this worker's import path holds; else the first candidate's ImportError."""
    failures = []
    for module, name in candidates:
        try:
            return getattr(__import__(module, fromlist=[name]), name)
        except (ImportError, AttributeError) as error:
            failures.append(error if isinstance(error, ImportError) else ImportError(str(error)))
    raise failures[0]


def reparameterize(mu, logvar):
    return _grader_function([("sandboxed.trusted", "reparameterize"),
                             ("sandboxed.probes", "reparameterize")])(mu, logvar)


def vae_loss(reconstructed, x, mu, logvar):
    return _grader_function([("sandboxed.vae_objective", "vae_loss_sum"), ("sandboxed.training", "vae_loss_sum"),
                             ("sandboxed.models", "vae_loss_sum")])(reconstructed, x, mu, logvar)
'''

# Shared by the model attacks below: small models that train in seconds, and that behave as the checks expect
# everywhere except on the grader's held-out batch (2,000 images, in eval mode; training batches are 128 and the
# structural probes use 4).
MODEL_COMMON = r'''
import os

import torch
import torch.nn.functional as F
from torch import nn

HELD_OUT = 1000  # an eval-mode batch at least this big is the grader's held-out batch


def _held_out(module, batch):
    return not module.training and len(batch) >= HELD_OUT


def _sample(mu, logvar):
    return mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)


class _Encoder(nn.Module):
    """A small convolutional encoder: (B, C, S, S) -> (B, features)."""

    def __init__(self, in_channels, image_size, features):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(in_channels, 4, 3, 2, 1), nn.ReLU(), nn.Flatten(),
                                 nn.Linear(4 * ((image_size + 1) // 2) ** 2, features))

    def forward(self, x):
        return self.net(x)
'''

# -- 2. held-out images through the shared log file ----------------------------------------------------------
# The earlier workers of a submission wrote their stderr to one host file; a worker reopens its own stderr
# through /proc/self/fd/2. The encoding worker writes the held-out images there; the decoding worker reads them
# back and replays them, a quarter of the image blended with the batch's mean (so that the score is plausible).
STDERR_SMUGGLER = MODEL_COMMON + r'''
MAGIC = b"\x00held-out images follow\x00"


def _write_out(x):
    data = (x.detach().cpu().clamp(0, 1) * 255).round().to(torch.uint8).contiguous().numpy().tobytes()
    view = memoryview(MAGIC + len(x).to_bytes(8, "little") + data)
    while len(view):
        view = view[os.write(2, view):]


def _read_back(shape):
    """The last complete batch of images written to stderr's file by any worker, or None."""
    try:
        fd = os.open("/proc/self/fd/2", os.O_RDONLY | os.O_NONBLOCK)  # non-blocking: a pipe cannot hang us
    except OSError:
        return None
    chunks = []
    try:
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
    except OSError:  # BlockingIOError: an empty pipe
        pass
    finally:
        os.close(fd)
    data = b"".join(chunks)
    size = shape[0] * shape[1] * shape[2]
    at = data.rfind(MAGIC)
    while at >= 0:
        start = at + len(MAGIC) + 8
        count = int.from_bytes(data[at + len(MAGIC):start], "little")
        body = data[start:start + count * size]
        if count and len(body) == count * size:
            return torch.frombuffer(bytearray(body), dtype=torch.uint8).float().div(255).view(count, *shape)
        at = data.rfind(MAGIC, 0, at)
    return None


class _Replayer(nn.Module):
    """A decoder that ignores z: on the held-out batch it replays the images read back from stderr, in order
    (as many times as needed: the latents may come twice), else a learnt constant image."""

    def __init__(self, channels, size, latent_dim):
        super().__init__()
        self.shape = (channels, size, size)
        self.logits = nn.Parameter(torch.zeros(self.shape))
        self.mix = nn.Linear(latent_dim, 1)

    def forward(self, z):
        image = torch.sigmoid(self.logits + 0 * self.mix(z).view(-1, 1, 1, 1))
        if _held_out(self, z):
            stolen = _read_back(self.shape)
            if stolen is not None:
                stolen = stolen.repeat((len(z) + len(stolen) - 1) // len(stolen), 1, 1, 1)[:len(z)]
                return (0.25 * stolen + 0.75 * stolen.mean(dim=0)).clamp(1e-4, 1 - 1e-4)
        return image


class ConvAutoEncoder(nn.Module):
    def __init__(self, in_channels=1, image_size=28, latent_dim=2):
        super().__init__()
        self.encoder = _Encoder(in_channels, image_size, latent_dim)
        self.decoder = _Replayer(in_channels, image_size, latent_dim)

    def forward(self, x):
        if _held_out(self, x):
            _write_out(x)
        encoded = self.encoder(x)
        return encoded, self.decoder(encoded)


class ConvVAE(nn.Module):
    def __init__(self, in_channels=1, image_size=28, latent_dim=2):
        super().__init__()
        self.encoder = _Encoder(in_channels, image_size, 16)
        self.fc_mu = nn.Linear(16, latent_dim)
        self.fc_logvar = nn.Linear(16, latent_dim)
        self.decoder = _Replayer(in_channels, image_size, latent_dim)

    def forward(self, x):
        if _held_out(self, x):
            _write_out(x)
        h = self.encoder(x)
        mu, logvar = self.fc_mu(h), self.fc_logvar(h)
        z = _sample(mu, logvar) if self.training else mu
        return self.decoder(z), mu, logvar


class VAE(ConvVAE):
    def __init__(self, latent_dim=2):
        super().__init__(1, 28, latent_dim)
'''

# -- 3 and 4. a thumbnail of the held-out image inside the two float32 latents ------------------------------
# 46 one-bit pixels of a 7 x 7 thumbnail (the three corners left out are dark in MNIST) in the 23-bit mantissas
# of two float32 numbers in [1, 2). The decoder reads them back on the held-out batch and draws the thumbnail.
THUMBNAIL_CODE = MODEL_COMMON + r'''
KEPT = [1, 2, 3, 4, 5, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27,
        28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 43, 44, 45, 46, 47, 48]  # 7 x 7 without 0, 6, 42


def _thumbnail_code(x):
    """(N, 2) float32 in [1, 2) whose mantissas hold a 7 x 7 one-bit thumbnail of each image."""
    bits = (F.adaptive_avg_pool2d(x[:, :1].detach().cpu().float(), 7).flatten(1)[:, KEPT] > 0.3).to(torch.int32)
    shifts = torch.arange(23, dtype=torch.int32)
    mantissas = torch.stack([(bits[:, :23] << shifts).sum(1), (bits[:, 23:] << shifts).sum(1)], dim=1)
    return (mantissas | 0x3F800000).to(torch.int32).view(torch.float32)


def _thumbnail_images(z, shape):
    """The thumbnails held in z's mantissas, drawn at the image size."""
    mantissas = z.detach().cpu().float().contiguous().view(torch.int32) & 0x7FFFFF
    bits = ((mantissas.unsqueeze(-1) >> torch.arange(23, dtype=torch.int32)) & 1).flatten(1).float()
    grid = torch.zeros(len(z), 49)
    grid[:, KEPT] = bits
    images = F.interpolate(grid.view(-1, 1, 7, 7), size=shape[-1], mode="bilinear", align_corners=False)
    return (0.7 * images + 0.01).clamp(0, 1).expand(-1, shape[0], -1, -1).to(z.device)


class _Decoder(nn.Module):
    """Linear + Sigmoid; on the held-out batch it draws the thumbnails read out of z's low bits instead."""

    def __init__(self, channels, size, latent_dim):
        super().__init__()
        self.shape = (channels, size, size)
        self.net = nn.Sequential(nn.Linear(latent_dim, channels * size * size), nn.Sigmoid())

    def forward(self, z):
        if _held_out(self, z) and z.shape[1] == 2:
            return _thumbnail_images(z, self.shape)
        return self.net(z).view(len(z), *self.shape)
'''

# 4: the autoencoder's latents reached the earlier decoder bit-exact.
LOW_BITS = THUMBNAIL_CODE + r'''

class ConvAutoEncoder(nn.Module):
    def __init__(self, in_channels=1, image_size=28, latent_dim=2):
        super().__init__()
        self.encoder = _Encoder(in_channels, image_size, latent_dim)
        self.decoder = _Decoder(in_channels, image_size, latent_dim)

    def forward(self, x):
        encoded = self.encoder(x)
        if _held_out(self, x):
            encoded = _thumbnail_code(x).to(x.device)
        return encoded, self.decoder(encoded)
'''

# 3: the earlier grader drew the VAE's ε with torch.Generator().manual_seed(0) for shape (n_eval, 2): an encoder
# that knows it returns logvar = 0 and the μ for which z = μ + exp(½·0)·ε (in float32) is exactly the code
# (KL about 3 per image).
KNOWN_EPSILON = THUMBNAIL_CODE + r'''
PUBLIC_SEED = 0


def _mu_for(code):
    """mu such that the grader's float32 z = mu + exp(0.5 * 0) * eps is exactly ±code, eps its seeded draw."""
    eps = torch.randn(code.shape, generator=torch.Generator().manual_seed(PUBLIC_SEED))
    code = torch.where(eps < 0, -code, code)  # the mantissa is the same; |mu| < 2 keeps mu's grid as fine as z's
    mu = code - eps
    up, down = torch.full_like(mu, float("inf")), torch.full_like(mu, float("-inf"))
    for _ in range(16):
        z = mu + torch.exp(0.5 * torch.zeros_like(mu)) * eps
        if torch.equal(z, code):
            break
        mu = torch.where(z == code, mu, torch.nextafter(mu, torch.where(z < code, up, down)))
    return mu


class ConvVAE(nn.Module):
    def __init__(self, in_channels=1, image_size=28, latent_dim=2):
        super().__init__()
        self.encoder = _Encoder(in_channels, image_size, 16)
        self.fc_mu = nn.Linear(16, latent_dim)
        self.fc_logvar = nn.Linear(16, latent_dim)
        self.decoder = _Decoder(in_channels, image_size, latent_dim)

    def forward(self, x):
        h = self.encoder(x)
        mu, logvar = self.fc_mu(h), self.fc_logvar(h)
        if _held_out(self, x):
            mu = _mu_for(_thumbnail_code(x)).to(x.device)
            logvar = torch.zeros_like(mu)
        z = _sample(mu, logvar) if self.training else mu
        return self.decoder(z), mu, logvar


class VAE(ConvVAE):
    def __init__(self, latent_dim=2):
        super().__init__(1, 28, latent_dim)
'''

# -- 5. scikit-learn's KMeans in a thread the run-time watch did not see -------------------------------------
# The earlier watch hooked sys.setprofile and threading.setprofile: a thread started through _thread ran
# unwatched. KMeans is reached through scikit-learn's registry of estimators, which the source policy allows.
UNWATCHED_KMEANS = r'''
import _thread

import torch
from sklearn.utils import all_estimators


def _in_a_bare_thread(work):
    """work() in a thread started by _thread; its result, or its error raised here."""
    done = _thread.allocate_lock()
    done.acquire()
    box = {}

    def body():
        try:
            box["value"] = work()
        except BaseException as error:
            box["error"] = error
        finally:
            done.release()

    _thread.start_new_thread(body, ())
    done.acquire()
    if "error" in box:
        raise box["error"]
    return box["value"]


def kmeans(x, n_clusters, n_iters=100, seed=0):
    def work():
        estimator = dict(all_estimators())["KMeans"]
        model = estimator(n_clusters=n_clusters, n_init=10, random_state=seed).fit(x.numpy())
        return torch.as_tensor(model.labels_), torch.as_tensor(model.cluster_centers_, dtype=x.dtype)

    return _in_a_bare_thread(work)
'''

# -- 6. probes replaced at load time ---------------------------------------------------------------------------
# The probes run in the student's process: a decorator that runs while the definitions load replaces the `model`
# probe (so that an MLP encoder is reported to hold Conv2d) and the `figure` probe (so that the template's
# plot_latent_clusters, which still raises NotImplementedError, is reported as the ideal figure).
FORGED_PROBES = r'''
import sys

import torch
from torch import nn


def _forged_model(original):
    def model(namespace, **arguments):
        report = original(namespace, **arguments)
        if isinstance(report.get("encoder_layers"), list) and "Conv2d" not in report["encoder_layers"]:
            report["encoder_layers"] = report["encoder_layers"] + ["Conv2d"]
        return report
    return model


def _forged_figure(namespace, name, args, kwargs=None):
    latents, labels = args[0], args[1].long()
    k = int(labels.max()) + 1
    palette = torch.tensor([[i / k, 1 - i / k, (2 * i % k) / k, 1.0] for i in range(k)], dtype=torch.float64)
    return {"is_figure": True, "type": "Figure", "legend": True, "legend_entries": k, "colorbar": False,
            "titles": [str((kwargs or {}).get("title", ""))],
            "scatters": [{"offsets": latents.double(), "facecolors": palette[labels]}]}


def _forge(decorated):
    probes = sys.modules.get("sandboxed.probes")
    if probes is not None:
        if "model" in probes.PROBES:
            probes.PROBES["model"] = _forged_model(probes.PROBES["model"])
        probes.PROBES["figure"] = _forged_figure
    return decorated


@_forge
class ConvAutoEncoder(nn.Module):
    """An MLP autoencoder: not one Conv2d anywhere."""

    def __init__(self, in_channels=1, image_size=28, latent_dim=2):
        super().__init__()
        self.shape = (in_channels, image_size, image_size)
        pixels = in_channels * image_size * image_size
        self.encoder = nn.Sequential(nn.Flatten(), nn.Linear(pixels, 32), nn.ReLU(), nn.Linear(32, latent_dim))
        self.decoder = nn.Sequential(nn.Linear(latent_dim, pixels), nn.Sigmoid(), nn.Unflatten(1, self.shape))

    def forward(self, x):
        encoded = self.encoder(x)
        return encoded, self.decoder(encoded)
'''

# 6, again: the same forgery, and a 4-D tensor that no computation uses kept under `encoder.`, so that the trained
# weights hold the "kernel" that the new cross-check looks for.
FORGED_PROBES_AND_A_KERNEL = FORGED_PROBES + r'''

class _MLPWithAKernel(ConvAutoEncoder):
    """The same MLP autoencoder, with a 4-D buffer under encoder. (never used)."""

    def __init__(self, in_channels=1, image_size=28, latent_dim=2):
        super().__init__(in_channels, image_size, latent_dim)
        self.encoder.register_buffer("kernel", torch.zeros(4, in_channels, 3, 3))


ConvAutoEncoder = _MLPWithAKernel
'''

# -- 7. a second blind attacker's pass (helper, 2026-12-03; the untouched template earned 80.5 of 100 points) -------
# 7a. kmeans from the base interpreter's own site-packages, where a second SciPy (with scipy.cluster) was mounted
# beside the venv's: the covered venv copy never mattered. 15 of 15 points before.
BASE_SCIPY_KMEANS = r'''
import importlib
import os
import sys
import types

import torch


def _base_vq():
    version = f"python{sys.version_info[0]}.{sys.version_info[1]}"
    package = types.ModuleType("scipy.cluster")
    package.__path__ = [os.path.join(sys.base_prefix, "lib", version, "site-packages", "scipy", "cluster")]
    sys.modules["scipy.cluster"] = package
    return importlib.import_module("scipy.cluster.vq")


def kmeans(x, n_clusters, n_iters=100, seed=0):
    centroids, labels = _base_vq().kmeans2(x.double().numpy(), n_clusters, minit="++", seed=seed)
    return torch.as_tensor(labels), torch.as_tensor(centroids, dtype=x.dtype)
'''

# 7b. vae_training without a sampling formula: in the worker that trains the given VAE, the student's
# reparameterize becomes the grader's own stand-in (z = mu: a deterministic autoencoder), and the encode probe
# reports logvar = -12 so that the trusted side's samples sit on mu at a small KL. 10 of 10 points before; the load-time
# code rides on a redefinition of a graded name (ConvVAE), the only code of a notebook a worker loads.
STAND_IN_VAE = r'''
import sys

import torch
from torch import nn


def _boot(decorated):
    models, probes = sys.modules.get("sandboxed.models"), sys.modules.get("sandboxed.probes")
    if models is not None and probes is not None:  # every worker that trains
        globals()["reparameterize"] = models.STAND_INS["reparameterize"]
        original = probes.PROBES["encode"]

        def encode(namespace, **arguments):
            answer = original(namespace, **arguments)
            if len(answer.get("latents", [])) == 2:
                answer["latents"][1] = torch.full_like(answer["latents"][1], -12.0)
            return answer
        probes.PROBES["encode"] = encode
    return decorated


@_boot
class ConvVAE(nn.Module):
    pass
'''

ATTACKS = {
    "base_scipy_kmeans": BASE_SCIPY_KMEANS,
    "stand_in_vae": STAND_IN_VAE,
    "grader_imports": GRADER_IMPORTS,
    "stderr_smuggler": STDERR_SMUGGLER,
    "known_epsilon": KNOWN_EPSILON,
    "low_bits": LOW_BITS,
    "unwatched_kmeans": UNWATCHED_KMEANS,
    "forged_probes": FORGED_PROBES,
    "forged_probes_and_a_kernel": FORGED_PROBES_AND_A_KERNEL,
}
# Every attack's checks, for every student (the untouched template's checks fail at once, so the union costs
# little more than each attacker's own): the reference is graded once.
SELECT = ("reparameterize or vae_loss or vae_training or kmeans or cluster_plots or conv2d "
          "or trains_to_calibrated")


def write_class(folder: Path) -> Path:
    """``folder/submitted``: the unmodified reference, and each attack as the untouched template plus its cell."""
    submitted = folder / "submitted"
    for student, cell in {"reference": None, **ATTACKS}.items():
        notebook = nbformat.read(REFERENCE if cell is None else TEMPLATE, as_version=4)
        if cell is not None:
            notebook.cells.append(nbformat.v4.new_code_cell(cell))
        path = submitted / student / "autoencoders" / "autoencoders.ipynb"
        path.parent.mkdir(parents=True)
        nbformat.write(notebook, path)
    return submitted


@pytest.fixture(scope="module")
def graded(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Start ``python -m autograder grade`` on the attack class; tests wait for it."""
    folder = tmp_path_factory.mktemp("class-trust")
    out = folder / "grades"
    process = subprocess.Popen([sys.executable, "-m", "autograder", "grade", str(write_class(folder)),
                                "--out", str(out), "-k", SELECT, "--jobs", "2", "--lang", "en"], cwd=REPO_ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    yield {"process": process, "out": out}
    if process.poll() is None:
        process.kill()
        process.communicate()


@pytest.fixture(scope="module", autouse=True)
def _start_class_early(request: pytest.FixtureRequest) -> None:
    if any("graded" in getattr(item, "fixturenames", ()) for item in request.session.items):
        request.getfixturevalue("graded")


def _results(graded: dict) -> dict[str, dict]:
    process, out = graded["process"], graded["out"]
    output, _ = process.communicate(timeout=900)
    assert process.returncode == 0, output[-3000:]
    return {folder.name: json.loads((folder / "results.json").read_text())
            for folder in out.iterdir() if (folder / "results.json").exists()}


def _checks(graded: dict, student: str, question: str) -> list[dict]:
    """The student's results.json tests of ``question`` (its tag)."""
    return [test for test in _results(graded)[student]["tests"] if question in test.get("tags", [])]


def _check(graded: dict, student: str, question: str, words: str) -> dict:
    """The one check of ``question`` whose name contains ``words``."""
    found = [test for test in _checks(graded, student, question) if words in test["name"]]
    assert len(found) == 1, (question, words, [test["name"] for test in _checks(graded, student, question)])
    return found[0]


# vae_training trains the released template's VAE (questions.toml ``given``), not a VAE the student redefined: the
# attackers' own VAEs are never trained there, and the template's VAE calls the template's reparameterize stub.
# (Were the student's VAE trained, it would fail as their conv models do: the second reason given in each test.)
GIVEN_VAE = ("raised NotImplementedError (at cell `reparameterize`",)


def _earns_nothing(tests: list[dict], *reasons: str) -> None:
    """Every check scores 0 and fails, each with one of ``reasons`` in its output."""
    assert tests
    for test in tests:
        assert test["status"] == "failed" and test["score"] == 0, (test["name"], test["score"], test["output"])
        assert any(reason in test["output"] for reason in reasons), (test["name"], test["output"])


# -- the reference ----------------------------------------------------------------------------------------------
def test_reference_keeps_full_points(graded):
    """The unmodified reference, graded in the same class, keeps full points on every selected check."""
    tests = _results(graded)["reference"]["tests"]
    questions = {tag for test in tests for tag in test.get("tags", [])}
    assert {"reparameterize", "vae_loss", "vae_training", "kmeans", "cluster_plots", "conv_autoencoder",
            "conv_vae"} <= questions, questions
    for test in tests:
        if test["max_score"] > 0:
            assert test["status"] == "passed" and test["score"] == test["max_score"], (test["name"], test["output"])


# -- the attacks ------------------------------------------------------------------------------------------------
def test_importing_the_graders_code_earns_nothing(graded):
    """1. Importing the grader's reference code from the worker's import path.

    Before: ``sandboxed.trusted.reparameterize`` and ``sandboxed.training.vae_loss_sum`` gave the template full
    marks on reparameterize (15), vae_loss (20) and vae_training (10): 45 points. Now (R3) the ``functions``
    worker that probes reparameterize and vae_loss mounts neither trusted.py nor the VAE objective, and the ``encoder`` worker that trains
    the VAE with the student's reparameterize has no trusted.py: every import fails.
    """
    trusted, training = "No module named 'sandboxed.trusted'", "No module named 'sandboxed.vae_objective'"
    _earns_nothing(_checks(graded, "grader_imports", "reparameterize"), trusted)
    _earns_nothing(_checks(graded, "grader_imports", "vae_loss"), training)
    _earns_nothing(_checks(graded, "grader_imports", "vae_training"), trusted)


def test_held_out_images_through_stderr_earn_nothing(graded):
    """2. The held-out images written to stderr by the encoding worker, read back by the decoding worker.

    Before: both workers' stderr was one host file, which /proc/self/fd/2 reopens: the decoder replayed the
    held-out images (a quarter of each, over their mean) and the three scored training checks passed
    (vae_training 5, conv_autoencoder 2.5, conv_vae 2.14 points; with the model's structural checks, which it
    passes honestly, all 40 points of the three questions). Now (R4) each worker's stderr is a pipe of its own,
    drained by the trusted side: the decoder reads back nothing, draws its constant image, and ignores z
    (vae_training: see GIVEN_VAE).
    """
    for question, words in (("conv_autoencoder", "Trained by"), ("conv_vae", "Trained by")):
        _earns_nothing([_check(graded, "stderr_smuggler", question, words)], "ignores z")
    _earns_nothing([_check(graded, "stderr_smuggler", "vae_training", "held-out loss")], *GIVEN_VAE, "ignores z")


def test_latents_built_on_the_public_epsilon_earn_nothing(graded):
    """3. A VAE encoder that knows the grader's ε and makes z = μ + σ·ε exactly the code it wants.

    Before: ε was torch.Generator().manual_seed(0)'s draw for shape (2000, 2), so μ = ±code − ε with logvar = 0
    made z exactly the 46-bit thumbnail code of attack 4 (all but 0.03 % of the numbers), at a KL of 0.7 per image:
    vae_training's held-out check (5 points) and conv_vae's training check (2.14) passed, 25 points with the
    structural checks. Now ε comes from the course secret and z is snapped to a grid and jittered: the bits
    the decoder reads are noise, and its images of z and z + δ differ, so it is not smooth in z (vae_training:
    see GIVEN_VAE).
    """
    _earns_nothing([_check(graded, "known_epsilon", "conv_vae", "Trained by")], "not smooth in z")
    _earns_nothing([_check(graded, "known_epsilon", "vae_training", "held-out loss")], *GIVEN_VAE, "not smooth in z")


def test_a_thumbnail_in_the_low_bits_earns_nothing(graded):
    """4. An autoencoder whose two float32 latents carry a 46-bit thumbnail in their mantissas.

    Before: the encoder's latents reached the decoder bit-exact, and the thumbnails (upsampled, MSE 0.042)
    passed conv_autoencoder's training check (2.5 points; 15 with the structural checks). Now the latents are
    snapped to a grid of 1/200 of their spread (the low bits are noise) and sent twice, moved by δ, shuffled:
    the decoder is not smooth in z.
    """
    _earns_nothing([_check(graded, "low_bits", "conv_autoencoder", "Trained by")], "not smooth in z")


def test_kmeans_in_an_unwatched_thread_earns_nothing(graded):
    """5. scikit-learn's KMeans run in a thread started through ``_thread``, reached through all_estimators.

    Before: the source policy saw nothing (sklearn.utils is allowed) and the run-time watch did not follow
    the thread: 12.5 of 15 points (all but the empty-cluster check). Now (R2) the ``functions`` worker has no
    sklearn.cluster to run: its folder is covered by a stand-in that raises ImportError, whatever thread or
    route imports it.
    """
    tests = _checks(graded, "unwatched_kmeans", "kmeans")
    policy = [test for test in tests if test["max_score"] == 0]
    assert len(policy) == 1 and policy[0]["status"] == "passed", policy  # the source check saw nothing
    _earns_nothing([test for test in tests if test["max_score"] > 0],
                   "sklearn.cluster is not available in this grading worker")


def test_a_forged_model_probe_does_not_make_an_mlp_convolutional(graded):
    """6. An MLP ConvAutoEncoder whose load-time code makes the ``model`` probe report a Conv2d in the encoder.

    Before: the probe's layer list was the verdict: test_encoder_has_conv2d passed (2.5 points). Now (R1) the
    check also reads the trained weights, plain data from the grader's own training, and they hold no 4-D
    kernel under ``encoder.``.
    """
    test = _check(graded, "forged_probes", "conv_autoencoder", "nn.Conv2d")
    _earns_nothing([test], "hold no convolution kernel under encoder.")


def test_a_forged_figure_probe_earns_at_most_the_uncheckable_part(graded):
    """6b. The ``figure`` probe replaced at load time, reporting the ideal scatter plot for the template's stub.

    A known limit (R1: what cannot be cross-checked is worth little). Before and now: the three checks that read
    the figure probe's report pass, 7.5 of 10 points; nothing on the trusted side can verify them. The notebook's
    own figures (PNGs in the cells fig_kmeans_ae and fig_kmeans_vae) are plain data, and the untouched template has
    none, so that check fails. This test holds the forgery to those 7.5 points.
    """
    tests = _checks(graded, "forged_probes", "cluster_plots")
    shown = [test for test in tests if "contains the k-means figures" in test["name"]]
    assert len(shown) == 1 and shown[0]["status"] == "failed" and shown[0]["score"] == 0, shown
    assert sum(test["score"] for test in tests) <= 7.5, [(test["name"], test["score"]) for test in tests]


def test_a_forged_model_probe_and_an_unused_kernel_earn_nothing(graded):
    """6c. The forged ``model`` probe of 6, and a 4-D buffer (never used) under ``encoder.`` in the MLP.

    Before: test_encoder_has_conv2d passed (2.5 points), as for 6, and it still did once the trained weights
    only had to hold a 4-D tensor under ``encoder.``. Now the trusted side zeroes those kernels in the weights
    it holds and has the encoder run again: latents that do not move mean the kernels do no work, whatever the
    probe reports (and the failed check voids the question).
    """
    test = _check(graded, "forged_probes_and_a_kernel", "conv_autoencoder", "nn.Conv2d")
    assert test["status"] == "failed" and test["score"] == 0, (test["name"], test["score"], test["output"])


def test_kmeans_from_a_second_scipy_earns_nothing(graded):
    """7a. scipy.cluster.vq loaded by path from the base interpreter's site-packages (mounted with the interpreter).

    Before: 15 of 15 points (the source policy sees no forbidden import; only the venv's scipy.cluster was
    covered). Now (R2) every package folder that the worker's import path does not use is an empty folder in the
    sandbox: there is nothing to load.
    """
    _earns_nothing([test for test in _checks(graded, "base_scipy_kmeans", "kmeans") if test["max_score"] > 0],
                   "No module named 'scipy.cluster.vq'")


def test_the_given_vae_is_encoded_and_decoded_on_the_trusted_side(graded):
    """7b. The grader's stand-in reparameterize (z = mu) in the training worker, and a forged encode probe.

    Before: 10 of 10 points with no sampling formula anywhere. Now the given VAE (the released template's class,
    the grader's own code) is encoded and decoded on the trusted side from the trained weights (bottleneck.given_step):
    the forged encode probe is never asked, and the deterministic autoencoder's own logvar makes its samples
    blurry. It keeps what a student who wrote ``return mu`` keeps: the training ran (the first check).
    """
    _earns_nothing([_check(graded, "stand_in_vae", "vae_training", "held-out loss")], "the limit is")
