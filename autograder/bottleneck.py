"""The training checks' pipeline: the images that get scored provably come out of the 2-D bottleneck.

The student's model class is trained by the grader's loop, and then three different parties see
three different things:

1. **train** — a worker trains ``Model(**kwargs)`` on the *training* split (the only images mounted in
   any sandbox) and returns its weights as plain tensors;
2. **encode** — the ``encoder`` worker, loaded with the same definitions, rebuilds the model from those
   weights and maps the held-out images to latents; only the latents come back (``encoded`` for an AE;
   ``mu`` and ``logvar`` for a VAE). It is never asked to decode;
3. **decode** — the trusted side chooses ``z`` (an AE's ``encoded``; for a VAE
   ``z = mu + exp(½·logvar)·ε`` with its own seeded ε), and the ``student`` worker, which never sees a
   held-out image, rebuilds the model from the weights and returns ``model.decoder(z)``.

The decoded images are scored on the trusted side against the held-out images with the reference
formula (:mod:`autograder.scoring`). A decoder that ignores ``z``, a model that stashes its inputs, or
one that patches the grader's loop gains nothing: the worker that draws the images never saw the targets.

The ``encoder`` worker may also *train* one model, as long as it does so before its first encode
(weights leave a worker before it has seen any held-out image): :class:`TrainingPlan` uses that to train
two models at once, one per worker.
"""
from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import torch

from autograder import config
from autograder.client import Worker
from autograder.failures import GradingFailure
from autograder.oracle import expect, tensor

LATENT_DIM = 2
STEP_TIMEOUT_S = 60.0
MAX_PARAMETERS = 8_000_000  # the reference conv models have about 0.4 M; the frame cap allows 16 M float32


@dataclass
class TrainedModel:
    """What the pipeline measured: the training history, ``forward``'s description on held-out images,
    the latents, and the images decoded from them (shaped like the held-out images)."""

    history: list[float]
    forward_info: dict
    latents: list[torch.Tensor]
    images: torch.Tensor


@lru_cache(maxsize=4)
def held_out_images(dataset: str, n: int) -> torch.Tensor:
    """The first ``n`` images of ``dataset``'s test split (trusted copy; never mounted in a sandbox)."""
    return config.labtools().load_dataset(dataset, train=False, limit=n, device="cpu")[0]


def _common(budget: dict, device: str, seed: int, kwargs: dict | None) -> dict:
    """The arguments every step's probe takes; ``trusted``: the names the grader's own code stands in for."""
    return {"name": budget["model"], "kwargs": dict(kwargs or {}), "seed": seed, "device": device,
            "trusted": list(budget.get("trusted", []))}


def train_step(worker: Worker, budget: dict, device: str, seed: int = config.GRADING_SEED,
               kwargs: dict | None = None) -> dict:
    """Train the budget's model in ``worker``; returns ``{"history", "state"}`` after checking both."""
    model = budget["model"]
    trained = worker.request("train", timeout=budget["timeout_s"], **_common(budget, device, seed, kwargs),
                             **config.train_arguments(budget))
    expect(isinstance(trained, dict) and isinstance(trained.get("state"), dict), f"{model} returned no weights")
    state = trained["state"]
    expect(all(isinstance(v, torch.Tensor) for v in state.values()), f"{model}'s weights are not all tensors")
    count = sum(v.numel() for v in state.values())
    expect(count <= MAX_PARAMETERS, f"{model} has {count:,} weights; at most {MAX_PARAMETERS:,} are allowed here")
    history = trained.get("history")
    expect(isinstance(history, list) and all(isinstance(v, (int, float)) for v in history), "no training history")
    expect(bool(torch.isfinite(torch.tensor(history, dtype=torch.float64)).all()),
           "the training loss became NaN or inf")
    return {"history": [float(v) for v in history], "state": state}


def encode_step(encoder: Worker, budget: dict, device: str, trained: dict, x_eval: torch.Tensor,
                seed: int = config.GRADING_SEED, kwargs: dict | None = None) -> dict:
    """The latents of ``x_eval`` under the trained weights: ``{"info", "latents"}`` (checked)."""
    kind, model, n = budget["kind"], budget["model"], len(x_eval)
    answer = encoder.request("encode", timeout=STEP_TIMEOUT_S, kind=kind, state=trained["state"], x=x_eval,
                             **_common(budget, device, seed, kwargs))
    names = ["encoded"] if kind == "ae" else ["mu", "logvar"]
    parts = answer.get("latents") if isinstance(answer, dict) else None
    expect(isinstance(parts, list) and len(parts) == len(names),
           f"{model}.forward must return ({'encoded, decoded' if kind == 'ae' else 'reconstructed, mu, logvar'})")
    latents = []
    for name, part in zip(names, parts):
        info = {"type": "Tensor", "shape": list(part.shape), "dtype": str(part.dtype).replace("torch.", ""),
                "device": "cpu"} if isinstance(part, torch.Tensor) else {"type": type(part).__name__}
        value = tensor({"info": info, "value": part}, f"{model}'s {name} on held-out images", shape=(n, LATENT_DIM))
        expect(value.is_floating_point() and bool(torch.isfinite(value).all()),
               f"{model}'s {name} on held-out images is not finite floating-point data")
        latents.append(value.float())
    return {"info": answer.get("info", {}), "latents": latents}


def choose_latents(kind: str, latents: list[torch.Tensor], seed: int) -> torch.Tensor:
    """The ``z`` the decoder gets: ``encoded`` for an AE; ``mu + exp(½·logvar)·ε`` (ε seeded here) for a VAE."""
    if kind == "ae":
        return latents[0]
    mu, logvar = latents
    eps = torch.randn(mu.shape, generator=torch.Generator().manual_seed(seed))
    return mu + torch.exp(0.5 * logvar) * eps


def decode_step(student: Worker, budget: dict, device: str, trained: dict, encoded: dict, x_eval: torch.Tensor,
                seed: int = config.GRADING_SEED, kwargs: dict | None = None) -> TrainedModel:
    """``model.decoder(z)`` in ``student`` (never shown a held-out image), checked and shaped like ``x_eval``."""
    model = budget["model"]
    z = choose_latents(budget["kind"], encoded["latents"], seed)
    decoded = student.request("decode", timeout=STEP_TIMEOUT_S, state=trained["state"], z=z,
                              **_common(budget, device, seed, kwargs))
    info = dict(decoded.get("info", {})) if isinstance(decoded, dict) else {}
    images = decoded.get("value") if isinstance(decoded, dict) else None
    expect(info.get("type") == "Tensor" and isinstance(images, torch.Tensor),
           f"{model}.decoder(z) must return a tensor, not {info.get('type')}")
    expect(images.numel() == x_eval.numel(), f"{model}.decoder(z) for z of shape {tuple(z.shape)} returned shape "
                                             f"{tuple(images.shape)}; expected images shaped {tuple(x_eval.shape)}")
    images = images.reshape(x_eval.shape)
    expect(images.is_floating_point() and bool(torch.isfinite(images).all()),
           f"{model}.decoder(z) produced NaN or inf after training")
    return TrainedModel(history=trained["history"], forward_info=encoded["info"], latents=encoded["latents"],
                        images=images)


def train_encode_decode(student: Worker, encoder: Worker, budget: dict, device: str, x_eval: torch.Tensor,
                        seed: int = config.GRADING_SEED, kwargs: dict | None = None) -> TrainedModel:
    """The three steps one after the other (calibration); raises a GradingFailure naming what went wrong."""
    trained = train_step(student, budget, device, seed, kwargs)
    encoded = encode_step(encoder, budget, device, trained, x_eval, seed, kwargs)
    return decode_step(student, budget, device, trained, encoded, x_eval, seed, kwargs)


class TrainingPlan:
    """The selected training questions, two at a time: one worker per CPU-bound training.

    The question with the largest budget trains in the ``encoder`` worker (before that worker's first
    encode), the others in the ``student`` worker; every step for a worker runs in that worker's own
    thread, in the order submitted (all trainings, then encodes, then decodes), so no step waits on one
    queued behind it. :meth:`result` returns a question's :class:`TrainedModel` or raises its failure.
    """

    def __init__(self, student: Worker, encoder: Worker, questions: list[str], device: str) -> None:
        budgets = {q: config.training_budget(q) for q in questions}
        self.lanes = {"student": ThreadPoolExecutor(1, "student"), "encoder": ThreadPoolExecutor(1, "encoder")}
        workers = {"student": student, "encoder": encoder}
        largest = max(questions, key=lambda q: budgets[q]["n_train"] * budgets[q]["epochs"], default=None)
        trained: dict[str, Future] = {}
        for q in questions:
            lane = "encoder" if q == largest and len(questions) > 1 else "student"
            trained[q] = self.lanes[lane].submit(train_step, workers[lane], budgets[q], device)
        encoded = {q: self.lanes["encoder"].submit(self._after, trained[q], encode_step, encoder, budgets[q], device,
                                                   x_eval=held_out_images(budgets[q]["dataset"], budgets[q]["n_eval"]))
                   for q in questions}
        self.results = {q: self.lanes["student"].submit(self._decode, student, budgets[q], device, trained[q],
                                                        encoded[q]) for q in questions}

    @staticmethod
    def _after(dependency: Future, step: Any, worker: Worker, budget: dict, device: str,
               x_eval: torch.Tensor) -> dict:
        return step(worker, budget, device, dependency.result(), x_eval)

    @staticmethod
    def _decode(student: Worker, budget: dict, device: str, trained: Future, encoded: Future) -> TrainedModel:
        x_eval = held_out_images(budget["dataset"], budget["n_eval"])
        return decode_step(student, budget, device, trained.result(), encoded.result(), x_eval)

    def result(self, question: str) -> TrainedModel:
        """The question's trained model, or its failure raised again (the same message for every check)."""
        try:
            return self.results[question].result()
        except GradingFailure as failure:
            raise GradingFailure(str(failure)) from None

    def close(self) -> None:
        for lane in self.lanes.values():
            lane.shutdown(wait=True, cancel_futures=True)
