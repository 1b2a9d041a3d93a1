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

A model class that is the released template's (questions.toml's ``given``: ``vae_training``'s VAE) is the
grader's own code: its encode and decode run on the trusted side (:func:`given_step`), from the trained weights.

The ``encoder`` worker may also *train* one model, as long as it does so before its first encode
(weights leave a worker before it has seen any held-out image): :class:`TrainingPlan` uses that to train
two models at once, one per worker.
"""
from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import torch

from autograder import config
from autograder.budget import BEHIND_NICENESS
from autograder.client import Worker
from autograder.failures import GradingFailure
from autograder.i18n import t
from autograder.latents import crossing
from autograder.oracle import expect, tensor

LATENT_DIM = 2
STEP_CPU_S = 60.0  # CPU-seconds for encoding or decoding 2,000 images
MAX_PARAMETERS = 8_000_000  # the reference conv models have about 0.4 M; the frame cap allows 16 M float32


@dataclass
class TrainedModel:
    """What the pipeline measured: the training history, ``forward``'s description on held-out images,
    the latents, and the images decoded from them (shaped like the held-out images)."""

    history: list[float]
    forward_info: dict
    latents: list[torch.Tensor]
    images: torch.Tensor
    shifted_images: torch.Tensor | None = None  # decoded from z + δ (latents.crossing), for the smoothness check
    prior_images: torch.Tensor | None = None  # model.decoder(z) for z ~ N(0, I), for the feedback page only


@lru_cache(maxsize=4)
def held_out(dataset: str, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n`` images of ``dataset``'s test split and their labels (trusted copy; never mounted in a
    sandbox), the same values as ``labtools.load_dataset(dataset, train=False, limit=n)``.

    Read from a uint8 copy of the test split kept beside the training data's cache, in a folder no sandbox
    mounts: about 10 ms, where torchvision's loader costs each runner about 1 s (mostly importing it).
    """
    from safetensors.torch import load_file

    from autograder.sandbox import cache_split, training_data_cache

    folder = training_data_cache().parent / "held-out"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = folder / f"{dataset}-test.safetensors"
    cache_split(path, dataset, train=False, labels=True)
    tensors = load_file(str(path))
    return tensors["images"][:n].to(torch.float32).div_(255.0), tensors["labels"][:n].clone()


def held_out_images(dataset: str, n: int) -> torch.Tensor:
    """The first ``n`` images of ``dataset``'s test split."""
    return held_out(dataset, n)[0]


PRIOR_SAMPLES = 16


def decode_prior(student: Worker, budget: dict, device: str, trained: dict, seed: int = config.GRADING_SEED,
                 kwargs: dict | None = None) -> torch.Tensor | None:
    """``model.decoder(z)`` for ``PRIOR_SAMPLES`` draws z ~ N(0, I) (pictures for the feedback page; scores
    nothing, so any failure gives None)."""
    z = torch.randn(PRIOR_SAMPLES, LATENT_DIM, generator=torch.Generator().manual_seed(seed + 1))
    try:
        _, images = _decode(student, budget, device, trained, z, seed, kwargs)
    except GradingFailure:
        return None
    if not isinstance(images, torch.Tensor) or not images.is_floating_point() or images.numel() % PRIOR_SAMPLES:
        return None
    return images.reshape(PRIOR_SAMPLES, -1)


def _decode(student: Worker, budget: dict, device: str, trained: dict, z: torch.Tensor, seed: int,
            kwargs: dict | None) -> tuple[dict, Any]:
    """``model.decoder(z)`` of the trained weights in ``student``: (the worker's description, the value)."""
    decoded = student.request("decode", cpu_s=STEP_CPU_S, state=trained["state"], z=z,
                              **_common(budget, device, seed, kwargs))
    if not isinstance(decoded, dict):
        return {}, None
    return dict(decoded.get("info", {})), decoded.get("value")


def _common(budget: dict, device: str, seed: int, kwargs: dict | None) -> dict:
    """The arguments every step's probe takes; ``given``: the released template's class replaces the student's
    (questions.toml's ``given``), calling the student's ``calls``."""
    common = {"name": budget["model"], "kwargs": dict(kwargs or {}), "seed": seed, "device": device}
    if budget.get("given"):
        common["given"] = {"source": config.template_source(budget["model"]), "calls": list(budget.get("calls", []))}
    return common


def train_step(worker: Worker, budget: dict, device: str, seed: int = config.GRADING_SEED,
               kwargs: dict | None = None) -> dict:
    """Train the budget's model in ``worker``; returns ``{"history", "state"}`` after checking both."""
    model = budget["model"]
    trained = worker.request("train", cpu_s=budget["cpu_s"], **_common(budget, device, seed, kwargs),
                             trusted=list(budget.get("trusted", [])), **config.train_arguments(budget))
    expect(isinstance(trained, dict) and isinstance(trained.get("state"), dict),
           t("{model} の学習後に重みが返されませんでした", "{model} returned no weights", model=model))
    state = trained["state"]
    expect(all(isinstance(v, torch.Tensor) for v in state.values()),
           t("{model} の重みにテンソルでないものが含まれています", "{model}'s weights are not all tensors", model=model))
    count = sum(v.numel() for v in state.values())
    expect(count <= MAX_PARAMETERS, t("{model} の重みは {count:,} 個です。ここで許されるのは最大 {limit:,} 個です",
                                      "{model} has {count:,} weights; at most {limit:,} are allowed here",
                                      model=model, count=count, limit=MAX_PARAMETERS))
    history = trained.get("history")
    expect(isinstance(history, list) and all(isinstance(v, (int, float)) for v in history),
           t("学習の履歴（損失の記録）が返されませんでした", "no training history"))
    expect(bool(torch.isfinite(torch.tensor(history, dtype=torch.float64)).all()),
           t("学習中に損失が NaN または inf になりました", "the training loss became NaN or inf"))
    return {"history": [float(v) for v in history], "state": state}


def encode_step(encoder: Worker, budget: dict, device: str, trained: dict, x_eval: torch.Tensor,
                seed: int = config.GRADING_SEED, kwargs: dict | None = None) -> dict:
    """The latents of ``x_eval`` under the trained weights: ``{"info", "latents"}`` (checked)."""
    kind, model, n = budget["kind"], budget["model"], len(x_eval)
    answer = encoder.request("encode", cpu_s=STEP_CPU_S, kind=kind, state=trained["state"], x=x_eval,
                             stand_in=list(budget.get("trusted", [])), **_common(budget, device, seed, kwargs))
    names = ["encoded"] if kind == "ae" else ["mu", "logvar"]
    parts = answer.get("latents") if isinstance(answer, dict) else None
    expect(isinstance(parts, list) and len(parts) == len(names),
           t("{model}.forward は ({outputs}) を返す必要があります", "{model}.forward must return ({outputs})",
             model=model, outputs="encoded, decoded" if kind == "ae" else "reconstructed, mu, logvar"))
    latents = []
    for name, part in zip(names, parts):
        info = {"type": "Tensor", "shape": list(part.shape), "dtype": str(part.dtype).replace("torch.", ""),
                "device": "cpu"} if isinstance(part, torch.Tensor) else {"type": type(part).__name__}
        what = t("評価用画像に対する {model} の {name}", "{model}'s {name} on held-out images", model=model, name=name)
        value = tensor({"info": info, "value": part}, what, shape=(n, LATENT_DIM))
        expect(value.is_floating_point() and bool(torch.isfinite(value).all()),
               t("{what}が有限の浮動小数点数になっていません", "{what} is not finite floating-point data", what=what))
        latents.append(value.float())
    return {"info": answer.get("info", {}), "latents": latents}


def decode_step(student: Worker, budget: dict, device: str, trained: dict, encoded: dict, x_eval: torch.Tensor,
                seed: int = config.GRADING_SEED, kwargs: dict | None = None) -> TrainedModel:
    """``model.decoder(z)`` in ``student`` (never shown a held-out image), checked and shaped like ``x_eval``.

    ``z`` is what :func:`autograder.latents.crossing` makes of the encoder's latents (secret ε, snapped to a grid,
    each also moved by a small δ, shuffled): the images of ``z`` are scored, those of ``z + δ`` test smoothness.
    """
    model = budget["model"]
    sent = crossing(budget["kind"], encoded["latents"], (model, budget["kind"], seed))
    info, images = _decode(student, budget, device, trained, sent.sent, seed, kwargs)
    expect(info.get("type") == "Tensor" and isinstance(images, torch.Tensor),
           t("{model}.decoder(z) はテンソルを返す必要がありますが、{type} を返しました",
             "{model}.decoder(z) must return a tensor, not {type}", model=model, type=info.get("type")))
    expected = (len(sent.sent), *x_eval.shape[1:])
    expect(images.numel() == 2 * x_eval.numel(), t("形状 {z} の z に対して {model}.decoder(z) が形状 {got} を返しました。"
                                                   "形状 {expected} の画像が必要です",
                                                   "{model}.decoder(z) for z of shape {z} returned shape {got}; "
                                                   "expected images shaped {expected}", model=model,
                                                   z=tuple(sent.sent.shape), got=tuple(images.shape), expected=expected))
    images = images.reshape(expected)
    _expect_finite(images, model)
    scored, shifted = sent.split(images)
    return TrainedModel(history=trained["history"], forward_info=encoded["info"], latents=encoded["latents"],
                        images=scored, shifted_images=shifted)


def given_step(budget: dict, trained: dict, x_eval: torch.Tensor, seed: int = config.GRADING_SEED) -> TrainedModel:
    """Encode and decode on the trusted side, for a question whose model class is the released template's
    (questions.toml's ``given``): the template is the grader's own code, so the trained weights (plain tensors)
    go into it here, and no worker's word enters the scored latents or images. The student's code acted only in
    the training (``vae_training``: their ``reparameterize``, called by the grader's loop).

    ``forward_info`` describes ``(decoder(μ) shaped like x, μ, logvar)``: the template's ``forward`` with z = μ,
    whose shapes are those of any ``reparameterize`` the training could run with."""
    from autograder.sandboxed.probes import describe

    kind, name = budget["kind"], budget["model"]
    scope: dict = {"__name__": "given"}
    exec(compile(config.template_source(name), "<template>", "exec"), scope)  # noqa: S102 - our own code
    torch.manual_seed(seed)
    model = scope[name]()
    try:
        model.load_state_dict(trained["state"], strict=True)
    except (RuntimeError, ValueError, TypeError) as error:
        raise GradingFailure(t("学習後の重みがテンプレートの {model} に合いません（{error}）",
                               "the trained weights do not fit the template's {model} ({error})",
                               model=name, error=str(error).splitlines()[0][:200])) from None
    model.eval()
    with torch.no_grad():
        latents = list(model.encode(x_eval)) if kind == "vae" else [model.encoder(x_eval)]
        sent = crossing(kind, latents, (name, kind, seed))
        images = model.decoder(sent.sent).reshape(len(sent.sent), *x_eval.shape[1:])
        forward = (model.decoder(latents[0]).view_as(x_eval), *latents) if kind == "vae" else \
            (latents[0], model.decoder(latents[0]).view_as(x_eval))
        prior = model.decoder(torch.randn(PRIOR_SAMPLES, LATENT_DIM, generator=torch.Generator().manual_seed(seed + 1)))
    _expect_finite(images, name)
    scored, shifted = sent.split(images)
    return TrainedModel(history=trained["history"], forward_info=describe(forward), latents=latents,
                        images=scored, shifted_images=shifted, prior_images=prior.reshape(PRIOR_SAMPLES, -1))


def _expect_finite(images: torch.Tensor, model: str) -> None:
    expect(images.is_floating_point() and bool(torch.isfinite(images).all()),
           t("学習後の {model}.decoder(z) が NaN または inf を出力しました",
             "{model}.decoder(z) produced NaN or inf after training", model=model))


def train_encode_decode(student: Worker, encoder: Worker, budget: dict, device: str, x_eval: torch.Tensor,
                        seed: int = config.GRADING_SEED, kwargs: dict | None = None) -> TrainedModel:
    """The three steps one after the other (calibration); raises a GradingFailure naming what went wrong."""
    trained = train_step(student, budget, device, seed, kwargs)
    encoded = encode_step(encoder, budget, device, trained, x_eval, seed, kwargs)
    return decode_step(student, budget, device, trained, encoded, x_eval, seed, kwargs)


LANES = ("encoder", "student")


def split_lanes(costs: dict[str, float], pinned: dict[str, str] | None = None, lanes: tuple[str, ...] = LANES,
                barred: dict[str, set[str]] | None = None) -> dict[str, str]:
    """Question -> lane: the ``pinned`` ones where they must train (:func:`pins`), then the others longest first,
    each to the lane with less work so far among those not ``barred`` to it (ties: in ``lanes``' order).

    The assignment depends on the costs alone, so every run of a submission trains each model in the same
    worker (reproducible), and trainings of unequal cost end close together.
    """
    pinned = {q: lane for q, lane in (pinned or {}).items() if q in costs}
    free = [q for q in costs if q not in pinned]
    if not pinned and len(free) < 2:
        return {q: "student" for q in costs}
    load = dict.fromkeys(lanes, 0.0)
    assigned = dict(pinned)
    for question, lane in pinned.items():
        load[lane] += costs[question]
    for question in sorted(free, key=lambda q: (-costs[q], q)):
        allowed = [lane for lane in lanes if lane not in (barred or {}).get(question, set())]
        lane = min(allowed, key=lambda name: (load[name], lanes.index(name)))
        assigned[question] = lane
        load[lane] += costs[question]
    return assigned


def pins(questions: list[str]) -> dict[str, str]:
    """The lane a question's training must use: a question with ``trusted`` names trains in the ``student``
    worker, the only one that mounts the trusted implementations; a question whose model ``calls`` a student
    function that has a trusted implementation trains in the ``encoder`` worker, which has none to reach for."""
    pinned = {}
    for question in questions:
        if config.trusted(question):
            pinned[question] = "student"
        elif config.calls(question):
            pinned[question] = "encoder"
    return pinned


def training_costs(questions: list[str], device: str) -> dict[str, float]:
    """The expected cost of each question's training: the reference's calibrated CPU-seconds on ``device``, or
    (without them for every question) the number of images the budget trains on."""
    budgets = {q: config.training_budget(q) for q in questions}
    try:
        recorded = {q: config.calibration(device)["questions"][q].get("cpu_seconds_mean") for q in questions}
    except (config.StaleCalibration, KeyError):
        recorded = {}
    if recorded and all(isinstance(v, (int, float)) and v > 0 for v in recorded.values()):
        return {q: float(v) for q, v in recorded.items()}
    return {q: float(budgets[q]["n_train"] * budgets[q]["epochs"]) for q in questions}


class TrainingPlan:
    """The selected training questions, each in one worker's lane, all at once.

    :func:`split_lanes` gives each training to the ``student``, ``encoder`` or ``functions`` worker (the last
    trains autoencoders only, between its function probes) so that the lanes end close together. The ``encoder`` worker trains only before its first encode: every step for a worker runs in
    that worker's own thread, in the order submitted (all its trainings, then encodes, then decodes), so
    no step waits on one queued behind it. :meth:`result` returns a question's :class:`TrainedModel` or
    raises its failure.
    """

    def __init__(self, student: Worker, encoder: Worker, questions: list[str], device: str,
                 functions: Worker | None = None) -> None:
        budgets = {q: config.training_budget(q) for q in questions}
        workers = {"student": student, "encoder": encoder, **({"functions": functions} if functions else {})}
        self.lanes = {lane: ThreadPoolExecutor(1, lane) for lane in workers}
        self.seconds: dict[str, dict[str, float]] = {q: {} for q in questions}  # question -> step -> seconds
        # the functions worker has no VAE objective (it answers vae_loss's probes): it may train autoencoders only
        barred = {q: {"functions"} for q in questions if budgets[q]["kind"] != "ae"}
        costs = training_costs(questions, device)
        self.trained_in = split_lanes(costs, pins(questions), tuple(workers), barred)  # question -> lane
        if self.trained_in:  # the lane with the longest training runs first (budget.BEHIND_NICENESS)
            longest = self.trained_in[max(self.trained_in, key=lambda q: (costs[q], q))]
            for lane, worker in workers.items():
                if lane != longest:
                    worker.run_behind(BEHIND_NICENESS)
        trained = {q: self.lanes[lane].submit(self._timed, q, "train", train_step, workers[lane], budgets[q], device)
                   for q, lane in sorted(self.trained_in.items(), key=lambda item: questions.index(item[0]))}
        given = [q for q in questions if budgets[q]["given"]]  # encoded and decoded here (given_step)
        encoded = {q: self.lanes["encoder"].submit(self._timed, q, "encode", self._after, trained[q], encode_step,
                                                   encoder, budgets[q], device,
                                                   x_eval=held_out_images(budgets[q]["dataset"], budgets[q]["n_eval"]))
                   for q in questions if q not in given}
        self.trained = trained
        self.results = {q: self.lanes["student"].submit(self._timed, q, "decode", self._decode, student, budgets[q],
                                                        device, trained[q], encoded[q]) for q in encoded}
        self.results.update({q: self.lanes[self.trained_in[q]].submit(self._timed, q, "encode", self._given,
                                                                      budgets[q], trained[q]) for q in given})

    def _timed(self, question: str, step: str, function: Any, *args: Any, **kwargs: Any) -> Any:
        """``function(*args, **kwargs)``, its seconds recorded in :attr:`seconds` (for the throughput benchmark)."""
        started = time.monotonic()
        try:
            return function(*args, **kwargs)
        finally:
            self.seconds[question][step] = round(time.monotonic() - started, 2)

    @staticmethod
    def _after(dependency: Future, step: Any, worker: Worker, budget: dict, device: str,
               x_eval: torch.Tensor) -> dict:
        return step(worker, budget, device, dependency.result(), x_eval)

    @staticmethod
    def _decode(student: Worker, budget: dict, device: str, trained: Future, encoded: Future) -> TrainedModel:
        x_eval = held_out_images(budget["dataset"], budget["n_eval"])
        model = decode_step(student, budget, device, trained.result(), encoded.result(), x_eval)
        model.prior_images = decode_prior(student, budget, device, trained.result())
        return model

    @staticmethod
    def _given(budget: dict, trained: Future) -> TrainedModel:
        return given_step(budget, trained.result(), held_out_images(budget["dataset"], budget["n_eval"]))

    def weights(self, question: str) -> dict[str, torch.Tensor] | None:
        """The question's trained weights (checked by :func:`train_step`), or None when its training failed."""
        try:
            return self.trained[question].result()["state"]
        except GradingFailure:
            return None

    def result(self, question: str) -> TrainedModel:
        """The question's trained model, or its failure raised again (the same message for every check)."""
        try:
            return self.results[question].result()
        except GradingFailure as failure:
            raise GradingFailure(failure.message) from None

    def close(self) -> None:
        for lane in self.lanes.values():
            lane.shutdown(wait=True, cancel_futures=True)
