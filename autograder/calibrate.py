"""Calibrate the training checks: train the reference solution under each grading budget with many seeds.

For every question with a training budget (questions.toml), the reference solution is trained by
the grader's own loop, in the same sandboxed worker students get, once per seed; its held-out
score is computed as in grading. The limit is set halfway between the worst reference seed and
the trivial baseline (a model that outputs the mean training image):

    threshold = max(reference) + ½·(baseline − max(reference))

so a correct solution passes under any seed, and a model that learnt nothing fails. The figures,
thresholds, budgets and device go to ``calibration.json`` (committed). It also stores 2,000 MNIST
test latents of the reference MLP autoencoder, used by the k-means checks.
"""
from __future__ import annotations

import argparse
import datetime
import json
import platform
import statistics
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from autograder import config
from autograder.bottleneck import TrainedModel, held_out_images, train_encode_decode
from autograder.client import Worker
from autograder.extract import extract_notebook
from autograder.sandbox import SandboxConfig, prepare_runtime, prepare_training_data, training_data_cache
from autograder.scoring import baseline_score, held_out_score


def train_reference(workers: tuple[Worker, Worker], budget: dict, seed: int, device: str) -> tuple[TrainedModel, float]:
    """Train, encode and decode the reference model under ``budget`` with ``seed``, exactly as grading does:
    the model and the CPU-seconds the workers used for it."""
    spent = sum(worker.account.spent for worker in workers)
    slow = {**budget, "cpu_s": budget["cpu_s"] * 3}
    x_eval = held_out_images(budget["dataset"], budget["n_eval"])
    trained = train_encode_decode(*workers, slow, device, x_eval, seed=seed)
    return trained, sum(worker.account.spent for worker in workers) - spent


def summarise(values: list[float], baseline: float, budget: dict, cpu: list[float]) -> dict:
    worst = max(values)
    return {
        "budget": budget,
        "values": [round(v, 6) for v in values],
        "mean": statistics.fmean(values), "std": statistics.stdev(values), "min": min(values), "max": worst,
        "baseline": baseline,
        "threshold": worst + 0.5 * (baseline - worst),
        "cpu_seconds_mean": round(statistics.fmean(cpu), 2),
    }


def calibrate(seeds: int, jobs: int, device: str, sandbox: str, out: Path, latents_out: Path | None) -> dict:
    load_dataset = config.labtools().load_dataset
    cells = extract_notebook(config.REFERENCE_NOTEBOOK).cells
    budgets = config.budgets()
    tasks = [(qid, seed) for seed in range(seeds) for qid in budgets]
    scores: dict[str, list[float]] = {qid: [0.0] * seeds for qid in budgets}
    cpu: dict[str, list[float]] = {qid: [0.0] * seeds for qid in budgets}
    latents_budget = config.questions()["kmeans"]["latents"]
    with tempfile.TemporaryDirectory(prefix="calibrate-") as tmp:
        runtimes = {role: prepare_runtime(Path(tmp) / role, role) for role in ("student", "encoder")}
        data = prepare_training_data(training_data_cache(), sorted({*config.datasets(), latents_budget["dataset"]}))
        settings = SandboxConfig(mode=sandbox, device=device, data=data)
        workers = [tuple(Worker(cells, runtimes[role], settings, Path(tmp) / f"{role}{i}.log")
                         for role in ("student", "encoder")) for i in range(jobs)]

        def run(index: int, task: tuple[str, int]) -> None:
            qid, seed = task
            budget = budgets[qid]
            trained, took = train_reference(workers[index % jobs], config.training_budget(qid), seed, device)
            x_eval = held_out_images(budget["dataset"], budget["n_eval"])
            scores[qid][seed] = held_out_score(budget["kind"], trained.images, trained.latents, x_eval,
                                               budget["model"])
            cpu[qid][seed] = took

        with ThreadPoolExecutor(jobs) as pool, tqdm(total=len(tasks) + 1, desc="calibrate", unit="run") as bar:
            lanes = [tasks[i::jobs] for i in range(jobs)]

            def lane(index: int) -> None:
                for task in lanes[index]:
                    run(index, task)
                    bar.update()

            list(pool.map(lane, range(jobs)))
            reference_ae, _ = train_reference(workers[0], latents_budget, config.GRADING_SEED, device)
            bar.update()
        for pair in workers:
            for worker in pair:
                worker.close()
    if latents_out is not None:
        latents_out.parent.mkdir(parents=True, exist_ok=True)
        np.save(latents_out, reference_ae.latents[0].numpy().astype(np.float32), allow_pickle=False)
    questions = {}
    for qid, budget in budgets.items():
        x_train = load_dataset(budget["dataset"], train=True, limit=budget["n_train"])[0]
        baseline = baseline_score(budget["kind"], x_train, held_out_images(budget["dataset"], budget["n_eval"]))
        questions[qid] = summarise(scores[qid], baseline, budget, cpu[qid])
    report = {
        "created": datetime.date.today().isoformat(),
        "pipeline": config.PIPELINE,
        "device": device if device == "cuda" else f"cpu ({platform.processor() or platform.machine()}), 1 thread",
        "torch": torch.__version__,
        "seeds": seeds,
        "cpu": "CPU-seconds of the workers' process trees (autograder/budget.py)",
        "rule": "threshold = max + 0.5 * (baseline - max); baseline = the mean training image (mu = 0, logvar = 0)",
        "questions": questions,
    }
    out.write_text(json.dumps(report, indent=1) + "\n")  # the grading below scores with these thresholds
    report["reference_cpu_s"] = grading_cpu_seconds(device, sandbox)
    out.write_text(json.dumps(report, indent=1) + "\n")
    return report


def grading_cpu_seconds(device: str, sandbox: str) -> float:
    """The CPU-seconds the reference solution's workers use in one full grading, every check included (the
    base of a submission's CPU account, autograder/budget.py): the reference notebook graded by the runner."""
    from autograder.engine import run_runner

    outcome = run_runner(config.REFERENCE_NOTEBOOK.name, config.REFERENCE_NOTEBOOK.read_bytes(),
                         ["--sandbox", sandbox, "--device", device])
    if outcome.result is None:
        raise RuntimeError(f"grading the reference failed ({outcome.code}):\n{outcome.log[-2000:]}")
    return round(sum(sum(requests.values()) for requests in outcome.result["worker_cpu"].values()), 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autograder calibrate", description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20, help="reference runs per budget (default 20)")
    parser.add_argument("--jobs", type=int, default=2, help="parallel workers (default 2)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--sandbox", choices=("bwrap", "none"), default="bwrap")
    parser.add_argument("--out", type=Path, help="default: autograder/calibration.json on the CPU, "
                                                 "autograder/calibration-cuda.json on CUDA (grading uses the device's)")
    parser.add_argument("--latents", type=Path, help="where the k-means latents go (default: autograder/data/ on "
                                                     "the CPU; on CUDA they are not rewritten)")
    args = parser.parse_args(argv)
    args.out = args.out or config.CALIBRATION_FILES[args.device]
    args.latents = args.latents or (config.LATENTS_FILE if args.device == "cpu" else None)
    if args.seeds < 2:
        parser.error("--seeds must be at least 2")
    torch.set_num_threads(1)
    report = calibrate(args.seeds, args.jobs, args.device, args.sandbox, args.out, args.latents)
    print(f"{'question':18} {'mean':>9} {'std':>8} {'max':>9} {'baseline':>9} {'threshold':>9}  CPU-s/run")
    for qid, q in report["questions"].items():
        print(f"{qid:18} {q['mean']:9.4f} {q['std']:8.4f} {q['max']:9.4f} {q['baseline']:9.4f} {q['threshold']:9.4f}"
              f"  {q['cpu_seconds_mean']:.1f}")
    print(f"a full grading of the reference: {report['reference_cpu_s']} CPU-s in its workers")
    print(f"wrote {args.out}" + (f" and {args.latents}" if args.latents else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
