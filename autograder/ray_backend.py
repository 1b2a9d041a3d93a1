"""Grade a class with Ray: each submission is one Ray task, on whichever node of a cluster has room.

A task gets the notebook's *bytes* and the runner's options, runs the same runner as the local backend
(:func:`autograder.engine.run_runner`: the sandboxed worker, the hidden graders) on its node and returns
plain data: the exit code, the checks' outcomes and the runner's log. The driver writes ``grader.log``
and scores, so ``grades.csv`` and ``results.json`` are those of the local backend. Nothing in a task
reads the driver's files; each node needs:

* this repository installed at the same commit, in a venv whose Python runs ``ray start`` (every task
  checks :func:`grader_fingerprint` against the driver's and the run stops on a mismatch);
* bubblewrap (unless ``--sandbox none``) and the datasets under the node's ``DATA_DIR`` (an absolute path,
  set when ``ray start`` runs); a task writes the training split it mounts in the sandbox from there, once
  per node (:func:`autograder.sandbox.prepare_training_data`, cached in ``~/.cache/ae-vae-lab``).

Resources: one CPU per task; with ``--device cuda`` also ``1/per_gpu`` of a GPU, so that ``per_gpu``
submissions share one GPU. A worker or node that dies is retried by Ray (``max_retries``; an ``OSError``
in a task, e.g. a full disk, too); a submission whose retries are spent gets a ``runner_error`` result
saying so: it stays in grades.csv, with no points, and can be graded again.
"""
from __future__ import annotations

import hashlib
import logging
from functools import lru_cache
from pathlib import Path
from typing import Any

from tqdm import tqdm

from autograder import config, engine
from autograder.engine import RunnerOutcome, Submission
from autograder.i18n import t
from autograder.secret import course_secret

RETRIES = 3  # Ray's retries of a task whose worker or node died (so up to 4 attempts)
FINGERPRINTED = ("autograder/**/*.py", "autograder/*.toml", "autograder/*.json", "autograder/data/*",
                 "solutions/autoencoders.ipynb", "solutions/labtools.py", "assignment/labtools.py",
                 "assignment/autoencoders.ipynb")


class ClusterError(RuntimeError):
    """Ray is not installed, the cluster cannot be reached, or a node grades with other code."""


class OtherGraderVersion(RuntimeError):
    """Raised in a task whose node has other grader code than the driver (not retried)."""


def grader_fingerprint() -> str:
    """A hash of everything that decides a grade (graders, runner, sandbox, points, calibration, reference),
    so that a node with another commit is refused instead of grading differently. Computed afresh on every
    call (a few milliseconds): a long-lived process must not vouch for files changed since."""
    root = config.PACKAGE_DIR.parent
    digest = hashlib.sha256()
    files = sorted({path for pattern in FINGERPRINTED for path in root.glob(pattern) if path.is_file()})
    for path in files:
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


@lru_cache(maxsize=1)
def _node_training_data() -> Path:
    """This node's training split for the sandboxes, written from its ``DATA_DIR`` once and then reused."""
    from autograder.sandbox import prepare_training_data, training_data_cache

    return prepare_training_data(training_data_cache(), config.datasets())


def grade_on_node(name: str, notebook: bytes, options: list[str], fingerprint: str,
                  runner: list[str] | None = None, secret: str | None = None) -> RunnerOutcome:
    """The Ray task: grade one notebook on this node with its own training data (``--train-data`` is added
    here, since the driver's path means nothing on another machine) and the driver's course secret (so every
    node draws the same ε, autograder/secret.py)."""
    mine = grader_fingerprint()
    if fingerprint != mine:
        import socket

        raise OtherGraderVersion(f"node {socket.gethostname()} has other grader code ({mine}, the driver has "
                                 f"{fingerprint}): install the same commit on every node")
    return engine.run_runner(name, notebook, [*options, "--train-data", str(_node_training_data())], runner=runner,
                             secret=secret)


def node_options(options: list[str]) -> list[str]:
    """The runner's options without the driver's ``--train-data PATH`` (each node uses its own)."""
    kept, skip = [], False
    for option in options:
        if not skip and option != "--train-data":
            kept.append(option)
        skip = option == "--train-data"
    return kept


def task_resources(options: list[str], per_gpu: int) -> dict[str, float]:
    """One CPU per task; on CUDA also a ``1/per_gpu`` share of a GPU."""
    if per_gpu < 1:
        raise ValueError(f"per_gpu must be at least 1 (got {per_gpu})")
    cuda = "--device" in options and options[options.index("--device") + 1] == "cuda"
    return {"num_cpus": 1, "num_gpus": 1 / per_gpu if cuda else 0}


def connect(address: str | None, jobs: int) -> bool:
    """Join the cluster at ``address`` or start a local Ray with ``jobs`` CPUs, unless this process is already
    connected; True when this call started the connection (the caller shuts it down)."""
    try:
        import ray
    except ImportError:
        raise ClusterError("the Ray backend needs Ray: pip install -e '.[ray]'") from None
    if ray.is_initialized():
        return False
    quiet: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.ERROR}
    try:
        if address:
            ray.init(address=address, **quiet)
        else:
            ray.init(address="local", num_cpus=jobs, include_dashboard=False, **quiet)  # new, even beside another
    except (ConnectionError, RuntimeError, ValueError) as error:
        raise ClusterError(f"could not start or join Ray ({address or 'local'}): {error}") from None
    return True


def _collect(ref: Any, submission: Submission, out: Path, attempts: int) -> dict[str, Any]:
    """The unscored result of one finished task; a task that failed for good becomes a ``runner_error``
    result (the details go to grader.log; students see no node names or paths)."""
    import ray

    try:
        return engine.finish(submission, out, ray.get(ref))
    except ray.exceptions.RayTaskError as error:
        if isinstance(error.cause, OtherGraderVersion):
            raise ClusterError(str(error.cause)) from None
        message = t("この提出物の採点中に採点プログラム自体が失敗しました（Ray ノード上の {error}）",
                    "the grader itself failed on this submission ({error} on its Ray node)",
                    error=type(error.cause).__name__)
        details = str(error)
    except ray.exceptions.RayError as error:
        message = t("この提出物の採点は {attempts} 回試みましたが、Ray のワーカーまたはノードが毎回停止したため失われました"
                    "（{error}）。もう一度採点してください",
                    "the grading of this submission was lost after {attempts} attempts ({error}: its Ray worker or "
                    "node died each time); grade it again", attempts=attempts, error=type(error).__name__)
        details = str(error)
    folder = out / submission.student_id
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "grader.log").write_text(f"{message.en}\n\n{details}\n")
    return engine.runner_error(submission, t("{message}。担当教員は出力フォルダの grader.log で原因を確認できます",
                                             "{message}; the instructor can read grader.log in its output folder",
                                             message=message))


def grade_all(submissions: list[Submission], out: Path, *, jobs: int, options: list[str], address: str | None = None,
              per_gpu: int = engine.PER_GPU, retries: int = RETRIES, runner: list[str] | None = None) -> dict[str, dict]:
    """Grade every submission as a Ray task and return student id -> scored result, as
    :func:`autograder.engine.grade_all` does. ``runner`` replaces the runner command on the nodes (tests)."""
    resources = task_resources(options, per_gpu)
    questions = config.questions()
    fingerprint = grader_fingerprint()
    connected = connect(address, jobs)
    import ray

    results: dict[str, dict] = {}
    pending: dict[Any, Submission] = {}
    try:
        if resources["num_gpus"] and not ray.cluster_resources().get("GPU"):
            raise ClusterError("--device cuda, but the Ray cluster has no GPU (grade with --device cpu)")
        secret = course_secret().hex()
        task = ray.remote(grade_on_node).options(max_retries=retries, retry_exceptions=[OSError], **resources)
        for submission in submissions:
            try:
                notebook = engine.read_notebook(submission)
            except OSError as error:
                results[submission.student_id] = engine.score(engine.unreadable(submission, error), questions)
                continue
            ref = task.remote(submission.notebook.name, notebook, node_options(options), fingerprint, runner, secret)
            pending[ref] = submission
        with tqdm(total=len(submissions), initial=len(results), desc="grading", unit="notebook") as bar:
            while pending:
                [ref], _ = ray.wait(list(pending), num_returns=1)
                submission = pending.pop(ref)
                results[submission.student_id] = engine.score(_collect(ref, submission, out, retries + 1), questions)
                bar.set_postfix(last=submission.student_id)
                bar.update()
    finally:
        for ref in pending:  # a broken rubric or another grader version stops the run: stop its tasks too
            ray.cancel(ref, force=True)
        if connected:
            ray.shutdown()
    return dict(sorted(results.items()))
