"""Tests for solutions/labtools.py against the real datasets at $DATA_DIR.

Run: DATA_DIR=/path/to/datasets python -m pytest tests/test_labtools.py -q
Without the data the loading tests fail with labtools' DatasetUnavailableError (never skip).
No test touches the network: a failing socket.getaddrinfo stands in for an offline machine.
"""
from __future__ import annotations

import ast
import pickle
import socket
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "solutions"))

import labtools  # noqa: E402
from labtools import (  # noqa: E402
    CLASS_NAMES,
    DATASET_NAMES,
    DatasetUnavailableError,
    data_dir,
    load_dataset,
    minibatches,
    self_check,
)

REAL_DATA_DIR = data_dir()  # $DATA_DIR as given to pytest

# (name, train) -> (size, image shape, first labels, published mean per channel)
EXPECTED = {
    ("mnist", True): (60000, (1, 28, 28), [5], (0.13066,)),
    ("mnist", False): (10000, (1, 28, 28), [7], None),
    ("fashion_mnist", True): (60000, (1, 28, 28), [9], (0.28604,)),
    ("fashion_mnist", False): (10000, (1, 28, 28), [9], None),
    ("cifar10", True): (50000, (3, 32, 32), [6, 9, 9, 4, 1, 1, 2, 7, 8, 3], (0.49140, 0.48216, 0.44653)),
    ("cifar10", False): (10000, (3, 32, 32), [3, 8, 8, 0, 6, 6, 1, 6, 3, 1], None),
}


class _Offline:
    """Replaces socket.getaddrinfo: every lookup fails at once and is counted."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def __call__(self, host, *args, **kwargs):
        self.calls.append(str(host))
        raise socket.gaierror(socket.EAI_NONAME, "offline (test)")


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> _Offline:
    fake = _Offline()
    monkeypatch.setattr(socket, "getaddrinfo", fake)
    return fake


# --- data_dir -----------------------------------------------------------------------------


def test_data_dir_reads_environment_at_call_time(monkeypatch, tmp_path):
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "x" / ".." / "somewhere"))
    assert data_dir() == (tmp_path / "somewhere").resolve()
    monkeypatch.setenv("DATA_DIR", "~/labdata")
    assert data_dir() == (Path.home() / "labdata").resolve()
    monkeypatch.delenv("DATA_DIR")
    monkeypatch.chdir(tmp_path)
    assert data_dir() == (tmp_path / "data").resolve()
    assert data_dir().is_absolute()


# --- load_dataset: real data ------------------------------------------------------------


@pytest.mark.parametrize(("name", "train"), list(EXPECTED), ids=[f"{n}-{'train' if t else 'test'}" for n, t in EXPECTED])
def test_full_dataset_shape_dtype_range_labels(name, train):
    size, shape, first, mean = EXPECTED[(name, train)]
    x, y = load_dataset(name, train)
    assert x.shape == (size, *shape)
    assert y.shape == (size,)
    assert x.dtype == torch.float32 and y.dtype == torch.int64
    assert x.device.type == "cpu" and y.device.type == "cpu"
    assert x.is_contiguous()
    assert float(x.min()) == 0.0 and float(x.max()) == 1.0
    assert y[: len(first)].tolist() == first
    counts = torch.bincount(y, minlength=10)
    assert counts.numel() == 10 and bool((counts > 0).all())
    if mean is not None:  # also checks that CIFAR channels are in RGB, CHW order
        got = x.mean(dim=(0, 2, 3))
        assert torch.allclose(got, torch.tensor(mean), atol=2e-4), got
    # pixel values are k/255 exactly
    sample = x[:50] * 255
    assert torch.equal(sample, sample.round())


def test_mnist_pixels_match_torchvision_raw_data():
    from torchvision import datasets

    raw = datasets.MNIST(str(REAL_DATA_DIR), train=False, download=False)
    x, y = load_dataset("mnist", train=False, limit=100)
    assert torch.equal((x[:, 0] * 255).round().to(torch.uint8), raw.data[:100])
    assert torch.equal(y, raw.targets[:100])


def test_limit_keeps_first_samples_deterministically():
    x_all, y_all = load_dataset("mnist", train=False)
    x, y = load_dataset("mnist", train=False, limit=300)
    assert x.shape == (300, 1, 28, 28) and y.shape == (300,)
    assert torch.equal(x, x_all[:300]) and torch.equal(y, y_all[:300])
    x2, y2 = load_dataset("mnist", train=False, limit=300)
    assert torch.equal(x, x2) and torch.equal(y, y2)


@pytest.mark.parametrize("name", DATASET_NAMES)
def test_limit_small_and_zero(name):
    x, y = load_dataset(name, train=False, limit=7)
    assert x.shape[0] == 7 and y.shape == (7,)
    assert x.dtype == torch.float32 and y.dtype == torch.int64
    x0, y0 = load_dataset(name, train=False, limit=0)
    assert x0.shape == (0, *x.shape[1:]) and y0.shape == (0,)


def test_limit_larger_than_dataset_gives_whole_split():
    x, y = load_dataset("fashion_mnist", train=False, limit=10**6)
    assert x.shape[0] == 10000 and y.shape[0] == 10000


@pytest.mark.parametrize("bad", [-1, 2.5, True])
def test_limit_must_be_non_negative_int(bad):
    with pytest.raises(ValueError, match="limit"):
        load_dataset("mnist", limit=bad)


@pytest.mark.parametrize("device", ["cpu", torch.device("cpu")])
def test_device_cpu(device):
    x, y = load_dataset("mnist", train=False, limit=10, device=device)
    assert x.device == torch.device("cpu") and y.device == torch.device("cpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_device_cuda():
    x, y = load_dataset("cifar10", train=False, limit=10, device="cuda")
    assert x.is_cuda and y.is_cuda
    x_cpu, y_cpu = load_dataset("cifar10", train=False, limit=10)
    assert torch.equal(x.cpu(), x_cpu) and torch.equal(y.cpu(), y_cpu)


def test_root_argument_overrides_data_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "nothing-here"))
    x, y = load_dataset("mnist", train=False, limit=3, root=REAL_DATA_DIR)
    assert y.tolist() == [7, 2, 1]
    x, y = load_dataset("mnist", train=False, limit=3, root=str(REAL_DATA_DIR))
    assert y.tolist() == [7, 2, 1]


def test_present_files_are_read_without_network(offline):
    for name in DATASET_NAMES:
        load_dataset(name, train=False, limit=2)
    assert offline.calls == []


def test_name_is_case_and_dash_insensitive():
    _, y = load_dataset("Fashion-MNIST", train=False, limit=1)
    assert y.tolist() == [9]


def test_unknown_name_raises_value_error_listing_names():
    with pytest.raises(ValueError) as info:
        load_dataset("svhn")
    message = str(info.value)
    assert "svhn" in message
    for name in DATASET_NAMES:
        assert name in message


# --- load_dataset: data missing -----------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "layout"),
    [
        ("mnist", "MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte"),
        ("fashion_mnist", "FashionMNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte"),
        ("cifar10", "cifar-10-batches-py/{data_batch_1..5,test_batch,batches.meta}"),
    ],
)
def test_missing_data_tries_download_then_raises_clear_error(name, layout, offline, monkeypatch, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("DATA_DIR", str(empty))
    with pytest.raises(DatasetUnavailableError) as info:
        load_dataset(name)
    assert isinstance(info.value, RuntimeError)
    message = str(info.value)
    assert "\n" not in message
    assert str(empty.resolve()) in message
    assert str(empty.resolve() / layout) in message
    assert "DATA_DIR" in message
    assert offline.calls, "a download should have been attempted"
    assert list(empty.iterdir()) == []  # no empty folders left behind


def test_missing_data_dir_itself_is_not_created(offline, monkeypatch, tmp_path):
    missing = tmp_path / "typo" / "datasets"
    monkeypatch.setenv("DATA_DIR", str(missing))
    with pytest.raises(DatasetUnavailableError, match="typo"):
        load_dataset("mnist", train=False)
    assert not (tmp_path / "typo").exists()


def test_incomplete_cifar10_folder_is_not_accepted(offline, tmp_path):
    """The CIFAR-10 integrity check skips md5 but still needs every file (so download happens)."""
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for file in ("batches.meta", "data_batch_1", "test_batch"):
        (folder / file).symlink_to(REAL_DATA_DIR / "cifar-10-batches-py" / file)
    with pytest.raises(DatasetUnavailableError, match="cifar-10-batches-py"):
        load_dataset("cifar10", train=False, root=tmp_path)
    assert offline.calls


def test_without_network_urlerror_from_torchvision_is_converted(monkeypatch, tmp_path):
    """Even if torchvision's downloader itself raises URLError, students see the clear error."""
    from urllib.error import URLError

    import torchvision.datasets.cifar as tv_cifar
    import torchvision.datasets.mnist as tv_mnist

    def refuse(*args, **kwargs):
        raise URLError("offline (test)")

    monkeypatch.setattr(tv_mnist, "download_and_extract_archive", refuse)
    monkeypatch.setattr(tv_cifar, "download_and_extract_archive", refuse)
    for name in DATASET_NAMES:
        with pytest.raises(DatasetUnavailableError, match="offline"):
            load_dataset(name, root=tmp_path)


# --- names ----------------------------------------------------------------------------------


def test_dataset_and_class_names():
    assert DATASET_NAMES == ("mnist", "fashion_mnist", "cifar10")
    assert set(CLASS_NAMES) == set(DATASET_NAMES)
    assert CLASS_NAMES["mnist"] == [str(d) for d in range(10)]
    assert CLASS_NAMES["fashion_mnist"][0] == "T-shirt/top" and CLASS_NAMES["fashion_mnist"][9] == "Ankle boot"
    with open(REAL_DATA_DIR / "cifar-10-batches-py" / "batches.meta", "rb") as f:
        meta = pickle.load(f, encoding="latin1")
    assert CLASS_NAMES["cifar10"] == meta["label_names"]
    for names in CLASS_NAMES.values():
        assert len(names) == 10 and len(set(names)) == 10


# --- minibatches ---------------------------------------------------------------------------


def test_minibatches_shuffled_covers_every_index_once():
    n, batch = 1000, 128
    x = torch.arange(n)
    batches = list(minibatches(x, batch, generator=torch.Generator().manual_seed(0)))
    assert [len(b) for b in batches] == [128] * 7 + [104]
    seen = torch.cat(batches)
    assert torch.equal(seen.sort().values, x)
    assert not torch.equal(seen, x)  # actually shuffled


def test_minibatches_default_batch_size_and_exact_multiple():
    x = torch.arange(512)
    sizes = [len(b) for b in minibatches(x)]
    assert sizes == [128] * 4  # no empty trailing batch
    assert [len(b) for b in minibatches(torch.arange(5), 2, shuffle=False)] == [2, 2, 1]
    assert [len(b) for b in minibatches(torch.arange(3), 10)] == [3]
    assert list(minibatches(torch.arange(0), 4)) == []


def test_minibatches_seeded_generator_is_deterministic():
    x = torch.arange(300)
    first = list(minibatches(x, 64, generator=torch.Generator().manual_seed(123)))
    again = list(minibatches(x, 64, generator=torch.Generator().manual_seed(123)))
    other = list(minibatches(x, 64, generator=torch.Generator().manual_seed(124)))
    assert all(torch.equal(a, b) for a, b in zip(first, again)) and len(first) == len(again)
    assert not torch.equal(torch.cat(first), torch.cat(other))


def test_minibatches_global_seed_is_reproducible():
    x = torch.arange(100)
    torch.manual_seed(7)
    first = torch.cat(list(minibatches(x, 32)))
    torch.manual_seed(7)
    assert torch.equal(first, torch.cat(list(minibatches(x, 32))))


def test_minibatches_without_shuffle_keeps_order():
    x = torch.arange(10)
    batches = list(minibatches(x, 4, shuffle=False))
    assert [b.tolist() for b in batches] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


def test_minibatches_keeps_sample_shape_device_and_rows():
    x, y = load_dataset("mnist", train=False, limit=250)
    order = []
    for batch in minibatches(x, 100, generator=torch.Generator().manual_seed(1)):
        assert batch.shape[1:] == (1, 28, 28) and batch.dtype == torch.float32
        assert batch.device == x.device
        order.append(batch)
    got = torch.cat(order)
    # the same seed permutes an index tensor the same way: batches are rows x[perm]
    perm = torch.cat(list(minibatches(torch.arange(250), 100, generator=torch.Generator().manual_seed(1))))
    assert torch.equal(perm.sort().values, torch.arange(250))
    assert torch.equal(got, x[perm])


@pytest.mark.parametrize("bad", [0, -3, 2.5])
def test_minibatches_rejects_bad_batch_size(bad):
    with pytest.raises(ValueError, match="batch_size"):
        list(minibatches(torch.arange(10), bad))


# --- self_check -------------------------------------------------------------------------------


def test_self_check_success_prints_one_line(capsys):
    with self_check("reparameterize"):
        assert 1 + 1 == 2
    out = capsys.readouterr().out
    assert out == "✔ reparameterize: 自己チェックに合格しました\n"


def test_self_check_not_implemented(capsys):
    def reparameterize(mu, logvar):
        # YOUR CODE HERE
        raise NotImplementedError()

    with pytest.raises(NotImplementedError) as info:
        with self_check("reparameterize"):
            reparameterize(0, 0)
    message = str(info.value)
    assert "reparameterize" in message
    assert "YOUR CODE HERE" in message
    assert "実装" in message
    assert "\n" not in message
    assert info.value.__cause__ is None and info.value.__suppress_context__
    assert "合格" not in capsys.readouterr().out


def test_self_check_assertion_keeps_message(capsys):
    with pytest.raises(AssertionError) as info:
        with self_check("loss_function"):
            assert False, "loss must be a scalar"  # noqa: B011 - what a student writes
    message = str(info.value)
    assert message.startswith("loss_function")
    assert "自己チェックに失敗しました" in message
    assert "self-check failed: loss must be a scalar" in message
    # the traceback still reaches the failing assert in the body
    assert any(entry.name == "test_self_check_assertion_keeps_message" for entry in info.traceback)
    assert "合格" not in capsys.readouterr().out


def test_self_check_bare_assertion():
    with pytest.raises(AssertionError, match="^encode: 自己チェックに失敗しました"):
        with self_check("encode"):
            assert 1 == 2


def test_self_check_other_errors_pass_through(capsys):
    with pytest.raises(ZeroDivisionError):
        with self_check("decode"):
            1 / 0  # noqa: B018 - the error under test
    assert capsys.readouterr().out == ""


# --- module hygiene ---------------------------------------------------------------------------


def test_labtools_imports_only_torch_torchvision_numpy_and_stdlib():
    tree = ast.parse(Path(labtools.__file__).read_text(encoding="utf-8"))
    allowed = {"torch", "torchvision", "numpy"} | set(sys.stdlib_module_names) | {"__future__"}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots = [alias.name.split(".")[0] for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            roots = [(node.module or "").split(".")[0]]
        else:
            continue
        assert set(roots) <= allowed, roots
