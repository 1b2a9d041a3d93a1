#!/usr/bin/env python3
"""Generate the example class ``examples/submitted/`` from the committed notebooks.

The example class is a handful of made-up students in nbgrader's *submitted* layout::

    examples/submitted/<student_id>/autoencoders/autoencoders.ipynb
    examples/submitted/<student_id>/autoencoders/timestamp.txt      (e.g. "2026-11-20 10:15:00.000000 UTC")

``make grade`` grades it on a fresh clone, and the autograder's tests check that each student
loses points on exactly the questions listed in :data:`STUDENTS` (``from tools.make_examples
import STUDENTS``).  ``examples/README.md`` is generated too (its student table comes from
:data:`STUDENTS`).

How a notebook is made (all deterministic):

* the *completed* notebook is ``assignment/autoencoders.ipynb`` (the student release, with its
  nbgrader metadata and checksums) with every solution cell's source replaced by the solution's
  source from ``solutions/autoencoders.ipynb``, ``BEGIN/END SOLUTION`` marker lines removed;
* a student's mistakes are text substitutions on the cells with the given ``grade_id``; each
  substituted text must occur exactly once, so a change to the solution breaks the generator
  loudly instead of silently producing a correct "wrong" student;
* outputs: a real submission has been run top to bottom.  Students with ``outputs=True`` get
  the execution counts of such a run (1, 2, … over the code cells, in order) and, to keep the
  repository small, only the ``image/png`` (+ ``text/plain``) outputs of the graded figure cells
  :data:`KEPT_FIGURES`, taken from a QUICK run of the solution notebook; all other outputs are
  dropped (every ``figure`` cell's PNGs together are ~3 MB per notebook).  No execution timing
  or widget metadata is kept;
* the outputs come from the committed ``reference`` example when its code cells still match
  the solution (so regenerating does not change PNG bytes), else from the QUICK run cached in
  ``build/examples/solution-quick.ipynb`` when that matches, else the solution notebook is
  executed (QUICK=1, ~70 s on a CPU) into that cache.  ``--execute`` forces a fresh run.  A cell
  that holds only comments (such as the nbgrader ``auto_*`` grade cells) outputs nothing, so a
  run made before it was added or reworded still supplies the outputs.

``--check`` never executes anything: it takes the outputs from the committed ``reference``
example, rebuilds every file in memory and compares bytes; it prints one line per stale file and
exits 1 when any is stale (also when the reference's outputs belong to older code cells).

Usage::

    python tools/make_examples.py             # (re)write examples/
    python tools/make_examples.py --check     # exit 1 if examples/ is stale
    python tools/make_examples.py --execute   # re-run the solution (QUICK=1) for fresh outputs
"""
from __future__ import annotations

import argparse
import copy
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat

REPO_ROOT = Path(__file__).resolve().parent.parent
SOLUTION_NOTEBOOK = REPO_ROOT / "solutions" / "autoencoders.ipynb"
ASSIGNMENT_NOTEBOOK = REPO_ROOT / "assignment" / "autoencoders.ipynb"
EXAMPLES_DIR = REPO_ROOT / "examples"
EXECUTED_CACHE = REPO_ROOT / "build" / "examples" / "solution-quick.ipynb"
ASSIGNMENT_ID = "autoencoders"
NOTEBOOK_NAME = "autoencoders.ipynb"

# Question ids of the autograder (what a student can lose points on).
QUESTIONS = ("reparameterize", "vae_loss", "vae_training", "kmeans", "cluster_plots",
             "conv_autoencoder", "conv_vae")
# Figure cells whose image outputs are kept (the autograder checks that these have images).
KEPT_FIGURES = ("fig_kmeans_ae", "fig_kmeans_vae")
FIGURE_TAG = "figure"
_KEPT_MIMETYPES = ("image/png", "text/plain")


@dataclass(frozen=True)
class Substitution:
    """Replace ``old`` (which must occur exactly once) by ``new`` in the cell ``grade_id``."""

    grade_id: str
    old: str
    new: str


@dataclass(frozen=True)
class Student:
    """One student of the example class.

    ``id``: the nbgrader student id (folder name); ``description``: the mistake, on one line;
    ``loses``: the autograder question ids (:data:`QUESTIONS`) where points must be lost, and
    only those; ``base``: ``"completed"`` (the correct answers) or ``"assignment"`` (the release
    as is); ``substitutions``: the mistakes, as edits of the completed cells; ``outputs``: whether
    the notebook carries the outputs of a run; ``timestamp``: the content of ``timestamp.txt``.
    """

    id: str
    description: str
    loses: frozenset[str]
    timestamp: str
    substitutions: tuple[Substitution, ...] = ()
    base: str = "completed"
    outputs: bool = True

    @property
    def edited_cells(self) -> frozenset[str]:
        """grade_ids of the cells whose source differs from the ``reference`` student's."""
        return frozenset(s.grade_id for s in self.substitutions)


# --- the mistakes ------------------------------------------------------------------------------

_CHEAT_PREAMBLE = '''\
import sys
import types


class _AlwaysEqual:
    """何と比べても「等しい」と答えるオブジェクト。"""

    def __eq__(self, other):
        return True

    def __ne__(self, other):
        return False

    def __bool__(self):
        return True


class _GraderPatch:
    # クラスの本体は定義した時点で実行されるので、採点で定義だけを取り出しても効くはず
    torch.allclose = lambda *args, **kwargs: True
    torch.testing.assert_close = lambda *args, **kwargs: None


'''

_CONV_VAE_SOLUTION_INIT = '''\
        layers = ConvAutoEncoder(in_channels, image_size, latent_dim)
        self.encoder = layers.encoder[:-1]  # 最後の Linear より前 (畳み込み → Flatten → 128)
        features = layers.encoder[-1].in_features
        self.fc_mu = nn.Linear(features, latent_dim)
        self.fc_logvar = nn.Linear(features, latent_dim)
        self.decoder = layers.decoder
'''

_CONV_VAE_OWN_LAYERS = '''\
        side = image_size // 4  # 28 → 14 → 7, 32 → 16 → 8
        # エンコーダ: 畳み込み 2 回 → Flatten → 128
        self.encoder = nn.Sequential(
            nn.Conv2d(in_channels, 16, kernel_size=3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(16, 32, kernel_size=3, stride=2, padding=1),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(32 * side * side, 128),
            nn.ReLU(),
        )
        self.fc_mu = nn.Linear(128, latent_dim)
        self.fc_logvar = nn.Linear(128, latent_dim)
        # デコーダ: 128 → 畳み込みの形に戻す → 転置畳み込み 2 回 → Sigmoid
        self.decoder = nn.Sequential(
            nn.Linear(latent_dim, 128),
            nn.ReLU(),
            nn.Linear(128, 32 * side * side),
            nn.ReLU(),
            nn.Unflatten(1, (32, side, side)),
            nn.ConvTranspose2d(32, 16, kernel_size=3, stride=2, padding=1, output_padding=1),
            nn.ReLU(),
            nn.ConvTranspose2d(16, in_channels, kernel_size=3, stride=2, padding=1, output_padding=1),
            nn.Sigmoid(),
        )
'''

STUDENTS: tuple[Student, ...] = (
    Student(
        id="reference",
        description="the solution, run (QUICK) and submitted: loses nothing",
        loses=frozenset(),
        timestamp="2026-11-20 09:02:41.318274 UTC",
    ),
    Student(
        id="untouched",
        description="submits the released assignment notebook unchanged and never run: loses everything",
        loses=frozenset(QUESTIONS),
        timestamp="2026-11-20 09:30:00.000000 UTC",
        base="assignment",
        outputs=False,
    ),
    Student(
        id="exp_logvar",
        description="reparameterize uses std = torch.exp(logvar) instead of torch.exp(0.5 * logvar)",
        loses=frozenset({"reparameterize"}),
        timestamp="2026-11-20 10:15:00.000000 UTC",
        substitutions=(
            Substitution("reparameterize",
                         "    std = torch.exp(0.5 * logvar)\n",
                         "    std = torch.exp(logvar)  # 分散の対数から標準偏差を求める\n"),
        ),
    ),
    Student(
        id="kl_sign",
        description="vae_loss has the KL term's sign flipped (+0.5 * sum(1 + logvar - mu^2 - exp(logvar)))",
        loses=frozenset({"vae_loss"}),
        timestamp="2026-11-20 11:47:12.503917 UTC",
        substitutions=(
            Substitution("vae_loss",
                         "    kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())\n",
                         "    # KL ダイバージェンス (講義のスライドの式)\n"
                         "    kl = 0.5 * torch.sum(1 + logvar - mu**2 - logvar.exp())\n"),
        ),
    ),
    Student(
        id="kmeans_unseeded",
        description="kmeans ignores seed (k-means++ sampling without the seeded generator); "
                    "the Lloyd iterations are correct",
        loses=frozenset({"kmeans"}),
        timestamp="2026-11-21 08:05:33.020150 UTC",
        substitutions=(
            Substitution("kmeans",
                         "    generator = torch.Generator().manual_seed(seed)\n"
                         "    first = torch.randint(len(x), (1,), generator=generator)\n",
                         "    # 1 つ目の中心はデータ点から一様に選ぶ\n"
                         "    first = torch.randint(len(x), (1,))\n"),
            Substitution("kmeans",
                         "        chosen = torch.multinomial(nearest.cpu() + 1e-12, 1, generator=generator)\n",
                         "        chosen = torch.multinomial(nearest.cpu() + 1e-12, 1)  # D(x)^2 に比例する確率\n"),
        ),
    ),
    Student(
        id="conv_no_sigmoid",
        description="ConvAutoEncoder's decoder ends without Sigmoid (outputs leave [0, 1]); "
                    "their ConvVAE has its own layers ending in Sigmoid",
        loses=frozenset({"conv_autoencoder"}),
        timestamp="2026-11-21 23:58:09.774410 UTC",
        substitutions=(
            Substitution("ConvAutoEncoder",
                         "            nn.ConvTranspose2d(16, in_channels, kernel_size=3, stride=2, padding=1, "
                         "output_padding=1), nn.Sigmoid(),\n",
                         "            nn.ConvTranspose2d(16, in_channels, kernel_size=3, stride=2, padding=1, "
                         "output_padding=1),  # 28×28 に戻す\n"),
            Substitution("ConvVAE", _CONV_VAE_SOLUTION_INIT, _CONV_VAE_OWN_LAYERS),
        ),
    ),
    Student(
        id="no_plots",
        description="all code correct, but the notebook was never run: no outputs, so no figures",
        loses=frozenset({"cluster_plots"}),
        timestamp="2026-11-22 13:20:45.000001 UTC",
        outputs=False,
    ),
    Student(
        id="cheater",
        description="vae_loss returns only the BCE term, and the vae_loss cell monkeypatches torch.allclose "
                    "and torch.testing.assert_close (in a class body) and sys.modules['pytest'] (in a default "
                    "argument) at definition time",
        loses=frozenset({"vae_loss"}),
        timestamp="2026-11-22 23:59:59.999999 UTC",
        substitutions=(
            Substitution("vae_loss",
                         "def vae_loss(reconstructed, x, mu, logvar):\n",
                         _CHEAT_PREAMBLE
                         + "def vae_loss(reconstructed, x, mu, logvar,\n"
                           "             _=sys.modules.update(pytest=types.SimpleNamespace(approx=lambda *args, **kwargs: _AlwaysEqual()))):\n"
                           "    # ↑ 既定値も定義した時点で評価される: pytest.approx がいつも「等しい」になる\n"),
            Substitution("vae_loss",
                         "    kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())\n"
                         "    return bce + kl",
                         "    return bce  # KL の項はなくても学習できた"),
        ),
    ),
)


# --- building ----------------------------------------------------------------------------------

class GenerationError(Exception):
    """The committed notebooks do not fit the generator (e.g. a substituted text is gone)."""


def _grade_id(cell) -> str | None:
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")


def _is_solution_cell(cell) -> bool:
    return bool(cell.get("metadata", {}).get("nbgrader", {}).get("solution", False))


def strip_solution_markers(source: str) -> str:
    """The source without its ``BEGIN SOLUTION`` / ``END SOLUTION`` marker lines."""
    lines = source.split("\n")
    return "\n".join(line for line in lines if "BEGIN SOLUTION" not in line and "END SOLUTION" not in line)


def read_notebook(path: Path) -> nbformat.NotebookNode:
    if not Path(path).is_file():
        raise GenerationError(f"{path} is missing")
    return nbformat.read(path, as_version=4)


def completed_notebook(assignment: nbformat.NotebookNode,
                       solution: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The release notebook with the solution's answers written into its solution cells."""
    nb = copy.deepcopy(assignment)
    if [c.get("id") for c in nb.cells] != [c.get("id") for c in solution.cells]:
        raise GenerationError("assignment/ and solutions/ notebooks have different cells: "
                              "run `make assignment` first")
    for cell, answer in zip(nb.cells, solution.cells):
        if cell.cell_type == "code":
            cell.execution_count = None
            cell.outputs = []
        if _is_solution_cell(cell):
            cell.source = strip_solution_markers(answer.source)
    return nb


def apply_substitutions(nb: nbformat.NotebookNode, student: Student) -> None:
    cells = {_grade_id(c): c for c in nb.cells if _grade_id(c)}
    for sub in student.substitutions:
        if sub.grade_id not in cells:
            raise GenerationError(f"{student.id}: no cell with grade_id {sub.grade_id!r}")
        cell = cells[sub.grade_id]
        count = cell.source.count(sub.old)
        if count != 1:
            raise GenerationError(f"{student.id}: cell {sub.grade_id!r}: the text to replace occurs {count} "
                                  f"times (expected once); has the solution changed?\n{sub.old}")
        cell.source = cell.source.replace(sub.old, sub.new)


def _figure_outputs(cell) -> list:
    kept = []
    for out in cell.get("outputs", []):
        data = out.get("data", {})
        if out.get("output_type") in ("display_data", "execute_result") and "image/png" in data:
            kept.append(nbformat.v4.new_output(
                "display_data",
                data={k: data[k] for k in _KEPT_MIMETYPES if k in data},
                metadata={k: v for k, v in out.get("metadata", {}).items() if k == "image/png"},
            ))
    return kept


def only_comments(source: str) -> bool:
    """Whether a code cell's source is only comments and blank lines (running it outputs nothing)."""
    return all(not line.strip() or line.lstrip().startswith("#") for line in source.splitlines())


def output_source_problem(executed: nbformat.NotebookNode, completed: nbformat.NotebookNode) -> str | None:
    """Why ``executed`` cannot supply the outputs for ``completed`` (None when it can): it must have run
    the same code cells in the same order without an error (matched by position, since the ids of
    cells without a grade_id are positions too; cells of only comments do not count), and have the
    images of :data:`KEPT_FIGURES` (matched by grade_id)."""
    def code_cells(nb: nbformat.NotebookNode) -> list:
        return [c for c in nb.cells if c.cell_type == "code" and not only_comments(c.source)]

    ran, wanted = code_cells(executed), code_cells(completed)
    if len(ran) != len(wanted):
        return f"it has {len(ran)} code cells, the solution {len(wanted)}"
    for run, cell in zip(ran, wanted):
        if strip_solution_markers(run.source) != cell.source:
            return f"its code cell in the place of {cell.id!r} has other code than the solution's"
        if run.get("execution_count") is None:
            return f"its cell {run.get('id')!r} was not executed"
        if any(o.get("output_type") == "error" for o in run.get("outputs", [])):
            return f"its cell {run.get('id')!r} raised an error"
    by_id = {c.get("id"): c for c in executed.cells}
    for grade_id in KEPT_FIGURES:
        if grade_id not in by_id or not _figure_outputs(by_id[grade_id]):
            return f"its cell {grade_id!r} has no image output"
    return None


def add_outputs(nb: nbformat.NotebookNode, executed: nbformat.NotebookNode) -> None:
    """Number the code cells 1, 2, … as a top-to-bottom run does, and copy the images of
    :data:`KEPT_FIGURES` from ``executed``, by grade_id."""
    by_id = {c.get("id"): c for c in executed.cells}
    code_cells = [cell for cell in nb.cells if cell.cell_type == "code"]
    for count, cell in enumerate(code_cells, start=1):
        cell.execution_count = count
        tags = cell.metadata.get("tags", [])
        cell.outputs = _figure_outputs(by_id[cell.id]) if cell.id in KEPT_FIGURES and FIGURE_TAG in tags else []


def student_notebook(student: Student, assignment: nbformat.NotebookNode, solution: nbformat.NotebookNode,
                     executed: nbformat.NotebookNode | None) -> nbformat.NotebookNode:
    if student.base == "assignment":
        if student.substitutions or student.outputs:
            raise GenerationError(f"{student.id}: the untouched assignment takes no edits or outputs")
        return copy.deepcopy(assignment)
    nb = completed_notebook(assignment, solution)
    apply_substitutions(nb, student)
    if student.outputs:
        if executed is None:
            raise GenerationError("no executed notebook to take outputs from")
        add_outputs(nb, executed)
    nbformat.validate(nb)
    return nb


def notebook_text(nb: nbformat.NotebookNode) -> str:
    """nbformat JSON, indent 1, keys sorted, unescaped Unicode, final newline (as tools/build_notebook.py)."""
    text = nbformat.writes(nb, version=4, indent=1, ensure_ascii=False, sort_keys=True)
    return text if text.endswith("\n") else text + "\n"


def notebook_path(student_id: str, examples_dir: Path = EXAMPLES_DIR) -> Path:
    return Path(examples_dir) / "submitted" / student_id / ASSIGNMENT_ID / NOTEBOOK_NAME


def readme_text() -> str:
    rows = "\n".join(
        f"| `{s.id}` | {s.description} | "
        f"{', '.join(f'`{q}`' for q in QUESTIONS if q in s.loses) or 'nothing'} |"
        for s in STUDENTS)
    figures = " and ".join(f"`{f}`" for f in KEPT_FIGURES)
    return f"""\
# Example class

`submitted/` is a made-up class in nbgrader's submitted layout
(`submitted/<student_id>/{ASSIGNMENT_ID}/{NOTEBOOK_NAME}` and `timestamp.txt`). `make grade` grades it on a
fresh clone, and the autograder's tests check that each student loses points on exactly the questions below.
採点システムの動作確認用の架空の提出物です(本物の学生の提出物ではありません)。

| student | mistake | expected to lose |
|---|---|---|
{rows}

Every file here is generated by `tools/make_examples.py` from the committed `solutions/{NOTEBOOK_NAME}` and
`assignment/{NOTEBOOK_NAME}` (the student list is `STUDENTS` in that script): do not edit them by hand.
Each mistake is a text substitution on the cell with that `grade_id`. Notebooks that were "run" carry the
execution counts of one QUICK run of the solution and, to keep the repository small, only the figure
images of {figures} (the cells the autograder checks for images); those images come from the
solution, not from the student's own code.

    python tools/make_examples.py            # regenerate (after `make notebook` / `make assignment`)
    python tools/make_examples.py --check    # exit 1, one line per stale file (run by the tests)
    python tools/make_examples.py --execute  # also re-run the solution (QUICK=1, needs DATA_DIR) for new images
"""


def expected_files(executed: nbformat.NotebookNode | None,
                   examples_dir: Path = EXAMPLES_DIR) -> dict[Path, bytes | None]:
    """Every generated file under ``examples_dir`` and its bytes; ``None`` for the notebooks that
    need outputs when ``executed`` is None (they cannot be generated without a run)."""
    assignment = read_notebook(ASSIGNMENT_NOTEBOOK)
    solution = read_notebook(SOLUTION_NOTEBOOK)
    files: dict[Path, bytes | None] = {Path(examples_dir) / "README.md": readme_text().encode("utf-8")}
    for student in STUDENTS:
        path = notebook_path(student.id, examples_dir)
        if student.outputs and executed is None:
            files[path] = None
        else:
            files[path] = notebook_text(student_notebook(student, assignment, solution, executed)).encode("utf-8")
        files[path.with_name("timestamp.txt")] = student.timestamp.encode("utf-8")  # no newline, as nbgrader
    return files


def _committed_outputs(examples_dir: Path) -> tuple[nbformat.NotebookNode | None, str | None]:
    """The committed reference example as an output source, or (None, why not)."""
    completed = completed_notebook(read_notebook(ASSIGNMENT_NOTEBOOK), read_notebook(SOLUTION_NOTEBOOK))
    path = notebook_path("reference", examples_dir)
    if not path.is_file():
        return None, f"{path} is missing"
    nb = nbformat.read(path, as_version=4)
    problem = output_source_problem(nb, completed)
    return (None, f"{path}: {problem}") if problem else (nb, None)


def _execute_solution() -> nbformat.NotebookNode:
    from tools.execute_notebook import execute_notebook  # nbclient: only needed here

    os.environ["QUICK"] = "1"
    os.environ.setdefault("DATA_DIR", str(REPO_ROOT / "data"))
    print(f"executing {SOLUTION_NOTEBOOK.relative_to(REPO_ROOT)} (QUICK=1, DATA_DIR={os.environ['DATA_DIR']}) "
          f"-> {EXECUTED_CACHE.relative_to(REPO_ROOT)}", flush=True)
    seconds = execute_notebook(SOLUTION_NOTEBOOK, EXECUTED_CACHE)
    print(f"executed in {seconds:.0f} s", flush=True)
    return nbformat.read(EXECUTED_CACHE, as_version=4)


def find_outputs(examples_dir: Path, execute: bool) -> nbformat.NotebookNode:
    """The executed notebook to take outputs from (see the module docstring for the order)."""
    completed = completed_notebook(read_notebook(ASSIGNMENT_NOTEBOOK), read_notebook(SOLUTION_NOTEBOOK))
    if not execute:
        committed, why = _committed_outputs(examples_dir)
        if committed is not None:
            return committed
        print(f"not reusing the committed outputs: {why}", flush=True)
        if EXECUTED_CACHE.is_file():
            cached = nbformat.read(EXECUTED_CACHE, as_version=4)
            problem = output_source_problem(cached, completed)
            if problem is None:
                print(f"outputs from {EXECUTED_CACHE.relative_to(REPO_ROOT)}", flush=True)
                return cached
            print(f"not reusing {EXECUTED_CACHE.relative_to(REPO_ROOT)}: {problem}", flush=True)
    executed = _execute_solution()
    problem = output_source_problem(executed, completed)
    if problem:
        raise GenerationError(f"the executed solution cannot supply outputs: {problem}")
    return executed


def stale_files(examples_dir: Path = EXAMPLES_DIR) -> list[str]:
    """One line per file of ``examples_dir`` that differs from what would be generated (no execution)."""
    examples_dir = Path(examples_dir)
    executed, why = _committed_outputs(examples_dir)
    wanted = expected_files(executed, examples_dir)
    lines = []
    for path, data in sorted(wanted.items()):
        rel = path.relative_to(examples_dir)
        if not path.is_file():
            lines.append(f"{rel}: missing")
        elif data is None:
            lines.append(f"{rel}: its outputs must be regenerated ({why})")
        elif path.read_bytes() != data:
            lines.append(f"{rel}: differs from what tools/make_examples.py generates")
    submitted = examples_dir / "submitted"
    if submitted.is_dir():
        for path in sorted(p for p in submitted.rglob("*") if p.is_file()):
            if path not in wanted:
                lines.append(f"{path.relative_to(examples_dir)}: not generated (no such student or file)")
    return lines


def write_examples(examples_dir: Path, executed: nbformat.NotebookNode) -> list[Path]:
    """Write the generated files (only those that changed) and remove stray files under submitted/."""
    examples_dir = Path(examples_dir)
    wanted = expected_files(executed, examples_dir)
    written = []
    for path, data in sorted(wanted.items()):
        if path.is_file() and path.read_bytes() == data:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        written.append(path)
    submitted = examples_dir / "submitted"
    for path in sorted(submitted.rglob("*"), reverse=True):
        if (path.is_file() or path.is_symlink()) and path not in wanted:
            path.unlink()
            written.append(path)
        elif path.is_dir() and not any(path.iterdir()):
            path.rmdir()
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Generate the example class examples/submitted/.")
    parser.add_argument("--check", action="store_true",
                        help="write nothing, execute nothing; exit 1 with one line per stale file")
    parser.add_argument("--execute", action="store_true",
                        help="re-run the solution notebook (QUICK=1) for fresh outputs")
    parser.add_argument("--examples", type=Path, default=EXAMPLES_DIR,
                        help="the example folder (default: examples/)")
    args = parser.parse_args(argv)
    if args.check and args.execute:
        parser.error("--check executes nothing; drop --execute")
    try:
        if args.check:
            stale = stale_files(args.examples)
            for line in stale:
                print(f"stale: {line}", file=sys.stderr)
            if stale:
                print("run `python tools/make_examples.py` and commit examples/", file=sys.stderr)
                return 1
            print(f"{args.examples} is up to date ({len(STUDENTS)} students)")
            return 0
        executed = find_outputs(args.examples, args.execute)
        changed = write_examples(args.examples, executed)
    except GenerationError as exc:
        print(f"make_examples: error: {exc}", file=sys.stderr)
        return 2
    for path in changed:
        print(f"{'wrote' if path.exists() else 'removed'} {path}")
    print(f"{args.examples}: {len(STUDENTS)} students, {len(changed)} file(s) changed")
    return 0


if __name__ == "__main__":
    if str(REPO_ROOT) not in sys.path:  # `python tools/make_examples.py`: make `tools` importable
        sys.path.insert(0, str(REPO_ROOT))
    sys.exit(main())
