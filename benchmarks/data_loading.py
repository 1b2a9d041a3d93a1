"""Benchmark: epoch time of the lab's MLP autoencoder on MNIST, fed two ways.

(a) classic:  torchvision.datasets.MNIST(root, transform=ToTensor())
              + torch.utils.data.DataLoader(batch_size=128, shuffle=True)
              (one PIL image and one ToTensor call per sample, collated every batch);
(b) labtools: load_dataset("mnist") once (whole dataset as one float tensor on the device)
              + minibatches(x, 128) (a random permutation, one indexing op per batch).

Both train the same model (AutoEncoder from the reference notebook) with MSE and Adam (lr 1e-3)
and the same training step. Setup (building the dataset) and a warm-up are timed separately and
are not part of the epoch times. The ways alternate within each repeat.

Run from the repository root:

    .venv/bin/python benchmarks/data_loading.py                # 2 epochs per way, 1 repeat
    .venv/bin/python benchmarks/data_loading.py --epochs 3 --repeats 3 --device cuda
"""
from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for _path in (ROOT, ROOT / "solutions"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import torch  # noqa: E402
import torchvision  # noqa: E402
from torch import nn  # noqa: E402
from torchvision import datasets, transforms  # noqa: E402

from autograder.extract import load_definitions  # noqa: E402
from labtools import data_dir, load_dataset, minibatches  # noqa: E402

DEFAULT_NOTEBOOK = ROOT / "solutions" / "autoencoders.ipynb"
WAYS = {
    "a": "(a) MNIST(ToTensor) + DataLoader",
    "b": "(b) load_dataset + minibatches",
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=(
            "Time one training epoch of the lab's MLP autoencoder on MNIST, fed (a) by "
            "torchvision.datasets.MNIST(transform=ToTensor()) + DataLoader(batch_size, shuffle=True) "
            "and (b) by labtools.load_dataset + labtools.minibatches (whole dataset tensor, index "
            "batching). Same model, MSE loss, Adam; prints every epoch's time, the median per way "
            "and the speed-up (a)/(b). Dataset setup and warm-up are reported separately."
        ),
        epilog="Data are read from --data-dir (default: $DATA_DIR, else ./data).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs per way and repeat")
    parser.add_argument("--repeats", type=int, default=1,
                        help="how many times to train a fresh model each way (ways alternate)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                        help="torch device to train on, e.g. cpu, cuda, cuda:1")
    parser.add_argument("--batch-size", type=int, default=128, help="mini-batch size for both ways")
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate")
    parser.add_argument("--limit", type=int, default=None,
                        help="use only the first LIMIT training images (quick smoke runs)")
    parser.add_argument("--warmup-batches", type=int, default=20,
                        help="untimed training steps per way before timing (0 to skip)")
    parser.add_argument("--num-workers", type=int, default=0,
                        help="DataLoader worker processes for way (a)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch.set_num_threads(THREADS) before running (default: leave as is)")
    parser.add_argument("--seed", type=int, default=0, help="seed for model initialisation and shuffling")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="folder holding MNIST/raw/... (default: $DATA_DIR, else ./data)")
    parser.add_argument("--notebook", type=Path, default=DEFAULT_NOTEBOOK,
                        help="notebook whose AutoEncoder class is benchmarked (read with "
                             "autograder.extract.load_definitions)")
    args = parser.parse_args(argv)
    for name in ("epochs", "repeats", "batch_size"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    return args


def load_model_class(notebook: Path) -> type[nn.Module]:
    if not notebook.is_file():
        sys.exit(f"error: notebook not found: {notebook} (build it first, or pass --notebook PATH)")
    namespace = load_definitions(notebook)
    if "AutoEncoder" not in namespace:
        sys.exit(f"error: {notebook} defines no AutoEncoder class")
    return namespace["AutoEncoder"]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Trainer:
    """One model, its optimizer, and the training step shared by both ways."""

    def __init__(self, model_class: type[nn.Module], device: torch.device, lr: float, seed: int) -> None:
        torch.manual_seed(seed)
        self.device = device
        self.model = model_class().to(device)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=lr)
        self.loss_fn = nn.MSELoss()

    def step(self, xb: torch.Tensor) -> torch.Tensor:
        _, decoded = self.model(xb)
        loss = self.loss_fn(decoded, xb)
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return loss.detach() * len(xb)


def batches_a(loader: torch.utils.data.DataLoader, device: torch.device):
    for xb, _ in loader:
        yield xb.to(device)


def batches_b(x: torch.Tensor, batch_size: int, generator: torch.Generator):
    yield from minibatches(x, batch_size, generator=generator)


def run_epoch(trainer: Trainer, batches, n: int) -> tuple[float, float]:
    """Train one epoch; return (seconds, mean loss per sample)."""
    trainer.model.train()
    sync(trainer.device)
    start = time.perf_counter()
    total = torch.zeros((), device=trainer.device)
    for xb in batches:
        total += trainer.step(xb)
    sync(trainer.device)
    seconds = time.perf_counter() - start
    return seconds, total.item() / n


def warm_up(trainer: Trainer, batches, count: int) -> float:
    sync(trainer.device)
    start = time.perf_counter()
    for index, xb in enumerate(batches):
        if index >= count:
            break
        trainer.step(xb)
    sync(trainer.device)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    root = (args.data_dir.expanduser().resolve() if args.data_dir is not None else data_dir())
    model_class = load_model_class(args.notebook)

    # --- setup, timed once and reported separately ---
    start = time.perf_counter()
    mnist = datasets.MNIST(str(root), train=True, transform=transforms.ToTensor(), download=False)
    if args.limit is not None:
        mnist = torch.utils.data.Subset(mnist, range(min(args.limit, len(mnist))))
    loader_gen = torch.Generator().manual_seed(args.seed)
    loader = torch.utils.data.DataLoader(
        mnist, batch_size=args.batch_size, shuffle=True, num_workers=args.num_workers,
        generator=loader_gen,
    )
    setup_a = time.perf_counter() - start

    sync(device)
    start = time.perf_counter()
    x, _ = load_dataset("mnist", train=True, limit=args.limit, device=device, root=root)
    sync(device)
    setup_b = time.perf_counter() - start
    batch_gen = torch.Generator(device=device).manual_seed(args.seed)
    n = len(x)
    assert len(mnist) == n, (len(mnist), n)

    def make_batches(way: str):
        return batches_a(loader, device) if way == "a" else batches_b(x, args.batch_size, batch_gen)

    params = sum(p.numel() for p in Trainer(model_class, device, args.lr, args.seed).model.parameters())
    print(f"torch {torch.__version__}, torchvision {torchvision.__version__}, python {platform.python_version()}")
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    print(f"device {device} ({device_name}), torch threads {torch.get_num_threads()}, "
          f"DataLoader workers {args.num_workers}")
    print(f"model AutoEncoder from {args.notebook} ({params:,} parameters); MSE, Adam lr {args.lr:g}, "
          f"batch {args.batch_size}")
    print(f"data MNIST train, {n} images from {root}")
    print(f"setup (not in epoch times): {WAYS['a']}: {setup_a:.2f} s | {WAYS['b']}: {setup_b:.2f} s")

    if args.warmup_batches > 0:
        times = {}
        for way in WAYS:
            trainer = Trainer(model_class, device, args.lr, args.seed)
            times[way] = warm_up(trainer, make_batches(way), args.warmup_batches)
        print(f"warm-up, {args.warmup_batches} batches (not in epoch times): "
              f"{WAYS['a']}: {times['a']:.2f} s | {WAYS['b']}: {times['b']:.2f} s")

    epoch_times: dict[str, list[float]] = {way: [] for way in WAYS}
    for repeat in range(1, args.repeats + 1):
        print(f"repeat {repeat}/{args.repeats}")
        for way in WAYS:
            trainer = Trainer(model_class, device, args.lr, args.seed + repeat)
            for epoch in range(1, args.epochs + 1):
                seconds, loss = run_epoch(trainer, make_batches(way), n)
                epoch_times[way].append(seconds)
                print(f"  {WAYS[way]:<34} epoch {epoch}: {seconds:7.2f} s   loss {loss:.4f}", flush=True)

    medians = {way: statistics.median(values) for way, values in epoch_times.items()}
    print(f"median epoch time over {args.epochs * args.repeats} epochs:")
    for way in WAYS:
        print(f"  {WAYS[way]:<34} {medians[way]:7.2f} s")
    print(f"speed-up of (b) over (a): {medians['a'] / medians['b']:.2f}x")


if __name__ == "__main__":
    main()
