"""Helpers for 実験3-4「自己符号化器による特徴表現の獲得」 (autoencoders and VAEs).

演習で使う補助関数: データセットの読み込み、ミニバッチの生成、自己チェック。

* :func:`load_dataset` loads MNIST, Fashion-MNIST or CIFAR-10 as whole tensors in [0, 1]
  (データセット全体を一つのテンソルとして読み込む).
* :func:`minibatches` cuts such a tensor into (shuffled) mini-batches by indexing
  (インデックスでミニバッチに分ける; DataLoader より速い).
* :func:`self_check` wraps the notebook's self-check cells (自己チェック用).

The data folder is ``$DATA_DIR`` (default ``./data``), laid out the way torchvision reads it::

    <DATA_DIR>/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte
    <DATA_DIR>/FashionMNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte
    <DATA_DIR>/cifar-10-batches-py/{data_batch_1..5,test_batch,batches.meta}

Only torch, torchvision, numpy and the standard library are needed.
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator
from typing import TYPE_CHECKING
from urllib.error import URLError

if TYPE_CHECKING:  # torch is imported where a function needs it: the grader reads _SPECS without it
    import torch

__all__ = [
    "CLASS_NAMES",
    "DATASET_NAMES",
    "DatasetUnavailableError",
    "data_dir",
    "load_dataset",
    "minibatches",
    "self_check",
]

DATASET_NAMES: tuple[str, ...] = ("mnist", "fashion_mnist", "cifar10")

CLASS_NAMES: dict[str, list[str]] = {
    "mnist": [str(digit) for digit in range(10)],
    "fashion_mnist": [
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
        "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
    ],
    "cifar10": [
        "airplane", "automobile", "bird", "cat", "deer",
        "dog", "frog", "horse", "ship", "truck",
    ],
}


class DatasetUnavailableError(RuntimeError):
    """The dataset is not on disk and could not be downloaded (データセットが見つからない)."""


_MNIST_FILES = tuple(
    f"{split}-{kind}-ubyte" for split in ("train", "t10k") for kind in ("images-idx3", "labels-idx1")
)
_CIFAR10_FILES = tuple([f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"])

# name -> (torchvision class name, folder under the root, files that must exist, layout for messages)
_SPECS = {
    "mnist": ("MNIST", "MNIST/raw", _MNIST_FILES, "MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte"),
    "fashion_mnist": ("FashionMNIST", "FashionMNIST/raw", _MNIST_FILES,
                      "FashionMNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte"),
    "cifar10": ("CIFAR10", "cifar-10-batches-py", _CIFAR10_FILES,
                "cifar-10-batches-py/{data_batch_1..5,test_batch,batches.meta}"),
}


def _torchvision_class(name: str) -> type:
    """The torchvision dataset class (imported on first use: importing torchvision takes about a second).

    CIFAR-10 checks only that the files exist (ファイルの有無だけを確認する): offline copies may be
    rebuilt pickles whose bytes (not pixels) differ from the originals, so torchvision's md5 check is
    replaced by an existence check. When a file is missing it still fails, so ``download=True`` really
    downloads.
    """
    from torchvision import datasets

    if name != "CIFAR10":
        return getattr(datasets, name)

    class _CIFAR10(datasets.CIFAR10):
        def _check_integrity(self) -> bool:
            return all((Path(self.root) / self.base_folder / file).is_file() for file in _CIFAR10_FILES)

    return _CIFAR10


def data_dir() -> Path:
    """The data folder: ``$DATA_DIR`` or ``./data``, read at call time (データの置き場所)."""
    return Path(os.environ.get("DATA_DIR", "data")).expanduser().resolve()


def _one_line(error: BaseException, limit: int = 240) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _open_torchvision(name: str, train: bool, root: Path):
    class_name, folder, files, layout = _SPECS[name]
    cls = _torchvision_class(class_name)
    present = all((root / folder / file).is_file() for file in files)
    if present:
        return cls(str(root), train=train, download=False)
    target = root / folder
    created = [p for p in (target, *target.parents) if not p.exists()]  # deepest first
    try:
        return cls(str(root), train=train, download=True)
    except (URLError, OSError, RuntimeError) as error:
        for path in created:  # leave no empty folders behind after a failed download
            with contextlib.suppress(OSError):
                path.rmdir()
        expected = f"{root}{os.sep}{layout}"
        raise DatasetUnavailableError(
            f"データセット '{name}' が {root} に見つからず、ダウンロードもできませんでした"
            f"（期待する配置: {expected}。環境変数 DATA_DIR で別のフォルダを指定できます）。 / "
            f"Dataset '{name}' was not found in {root} and could not be downloaded "
            f"({_one_line(error)}); expected layout: {expected}; "
            f"set the DATA_DIR environment variable to point elsewhere."
        ) from error


def load_dataset(
    name: str,
    train: bool = True,
    *,
    limit: int | None = None,
    device: str | torch.device = "cpu",
    root: str | Path | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Load a whole dataset as tensors (データセット全体をテンソルとして読み込む).

    Args:
        name: one of :data:`DATASET_NAMES` (``"mnist"``, ``"fashion_mnist"``, ``"cifar10"``).
        train: training split if True, else test split (訓練データ / テストデータ).
        limit: keep only the first ``limit`` samples (先頭から ``limit`` 件だけ使う).
        device: where the returned tensors live (``"cpu"``, ``"cuda"``, ...).
        root: data folder; defaults to :func:`data_dir` (``$DATA_DIR`` or ``./data``).

    Returns:
        ``(x, y)``: ``x`` float32 of shape (N, C, H, W) in [0, 1] ((N, 1, 28, 28) for
        MNIST / Fashion-MNIST, (N, 3, 32, 32) for CIFAR-10); ``y`` int64 labels of shape (N,).

    Raises:
        ValueError: unknown ``name`` or negative ``limit``.
        DatasetUnavailableError: files missing and the download failed (e.g. offline).
    """
    key = str(name).lower().replace("-", "_")
    if key not in _SPECS:
        raise ValueError(
            f"不明なデータセット名です: {name!r}（使えるのは {', '.join(DATASET_NAMES)}）。 / "
            f"Unknown dataset {name!r}; valid names: {', '.join(DATASET_NAMES)}."
        )
    if limit is not None and (isinstance(limit, bool) or int(limit) != limit or limit < 0):
        raise ValueError(
            f"limit は 0 以上の整数か None にしてください（{limit!r}）。 / "
            f"limit must be a non-negative integer or None, got {limit!r}."
        )
    import torch

    folder = data_dir() if root is None else Path(root).expanduser().resolve()
    dataset = _open_torchvision(key, train, folder)
    end = None if limit is None else int(limit)

    if key == "cifar10":
        # numpy uint8 (N, 32, 32, 3) HWC -> (N, 3, 32, 32)
        images = torch.from_numpy(dataset.data[:end]).to(device).permute(0, 3, 1, 2)
        labels = torch.as_tensor(dataset.targets[:end], dtype=torch.int64)
    else:
        # uint8 (N, 28, 28) -> (N, 1, 28, 28)
        images = dataset.data[:end].to(device).unsqueeze(1)
        labels = dataset.targets[:end]
    # Move uint8 first (4x less to copy), convert once on the target device.
    x = images.to(torch.float32, memory_format=torch.contiguous_format).div_(255.0)
    y = labels.to(device=device, dtype=torch.int64)
    return x, y


def minibatches(
    x: torch.Tensor,
    batch_size: int = 128,
    *,
    shuffle: bool = True,
    generator: torch.Generator | None = None,
) -> Iterator[torch.Tensor]:
    """Yield mini-batches of ``x`` along its first axis (ミニバッチを順に返す).

    ``x`` is a whole dataset already on its device (e.g. from :func:`load_dataset`). With
    ``shuffle`` a random permutation is drawn on ``x.device`` (or on ``generator``'s device) and
    each batch is gathered by indexing; without it the batches are slices in order. The last
    batch may be smaller than ``batch_size`` (最後のバッチは小さくなることがある).
    Pass a seeded ``torch.Generator`` for a reproducible order (再現性のため).
    """
    if isinstance(batch_size, bool) or int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(
            f"batch_size は 1 以上の整数にしてください（{batch_size!r}）。 / "
            f"batch_size must be a positive integer, got {batch_size!r}."
        )
    import torch

    batch_size = int(batch_size)
    n = x.shape[0]
    if not shuffle:
        for start in range(0, n, batch_size):
            yield x[start : start + batch_size]
        return
    if generator is None:
        order = torch.randperm(n, device=x.device)
    else:
        order = torch.randperm(n, device=generator.device, generator=generator).to(x.device)
    for start in range(0, n, batch_size):
        yield x[order[start : start + batch_size]]


@contextlib.contextmanager
def self_check(name: str) -> Iterator[None]:
    """Run a notebook self-check and explain failures (自己チェック).

    Usage::

        with self_check("reparameterize"):
            assert ...

    * ``NotImplementedError`` in the body: the student has not filled in ``# YOUR CODE HERE``
      yet; a short message saying so replaces the traceback.
    * ``AssertionError``: re-raised with ``"<name>: 自己チェックに失敗しました"`` in front of the
      original message.
    * Success: prints ``✔ <name>: 自己チェックに合格しました``.
    """
    try:
        yield
    except NotImplementedError:
        raise NotImplementedError(
            f"{name} はまだ実装されていません。上のセルの `# YOUR CODE HERE` の部分を実装し、"
            f"そのセルを実行してから、このセルをもう一度実行してください。 / "
            f"{name} is not implemented yet: fill in `# YOUR CODE HERE` in the cell above, "
            f"run it, then rerun this cell."
        ) from None
    except AssertionError as error:
        detail = str(error)
        prefix = f"{name}: 自己チェックに失敗しました / self-check failed"
        # Same exception object, so the traceback still points at the failing assert.
        error.args = (f"{prefix}: {detail}" if detail else prefix,)
        raise
    print(f"✔ {name}: 自己チェックに合格しました")
