"""The mutation report's parts that need no grading (autograder/mutants.py): the mutator, the mutant ids, the
notebook builder, the feedback classifier, reading results.json. Fast: nothing is graded or trained here."""
from __future__ import annotations

import ast
import io
import json
import re

import pytest

from autograder import mutants as M

TINY = '''\
import torch


def f(mu, logvar, x):
    """A docstring outside the solution."""
    ### BEGIN SOLUTION
    std = torch.exp(0.5 * logvar)
    eps = torch.randn_like(std)
    total = torch.sum(x) + x.mean()
    for _ in range(3):
        total = total + 1
        x = x * 2
    if total > 0:
        total = -total
    return mu + eps * std
    ### END SOLUTION


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        ### BEGIN SOLUTION
        self.decoder = nn.Sequential(
            nn.Linear(2, 4), nn.ReLU(),
            nn.Linear(4, 8), nn.Sigmoid(),
        )
        ### END SOLUTION
'''


@pytest.fixture(scope="module")
def tiny():
    source, regions = M.solution_regions(TINY)
    return source, regions, M.candidates(source, regions)


def sources(found) -> list[str]:
    return [c.source for c in found]


def statement_sets(source: str) -> set[str]:
    """Every statement of ``source`` as normalised text (to find what a mutant changed)."""
    return {ast.unparse(node) for node in ast.walk(ast.parse(source)) if isinstance(node, ast.stmt)
            and not isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.For, ast.If))}


def changed(original: str, mutated: str) -> tuple[set[str], set[str]]:
    before, after = statement_sets(original), statement_sets(mutated)
    return before - after, after - before


def test_solution_regions_strip_the_markers_and_locate_the_code(tiny):
    source, regions, _ = tiny
    assert "SOLUTION" not in source
    lines = source.split("\n")
    assert len(regions) == 2
    first, second = ([lines[i - 1] for i in range(a, b + 1)] for a, b in regions)
    assert first[0].strip() == "std = torch.exp(0.5 * logvar)" and first[-1].strip() == "return mu + eps * std"
    assert second[0].strip() == "self.decoder = nn.Sequential(" and second[-1].strip() == ")"


def test_every_mutant_parses_differs_and_is_unique(tiny):
    source, _, found = tiny
    dumps = [ast.dump(ast.parse(s)) for s in sources(found)]  # raises if one does not parse
    assert ast.dump(ast.parse(source)) not in dumps
    assert len(set(dumps)) == len(dumps)
    assert len(found) > 25


def test_mutants_only_touch_the_solution_regions(tiny):
    source, regions, found = tiny
    inside = {i for a, b in regions for i in range(a, b + 1)}
    original = source.split("\n")
    protected = [line for i, line in enumerate(original, 1) if i not in inside]
    for candidate in found:
        # lines outside the regions all survive, in order (a region may shrink or grow)
        remaining = iter(candidate.source.split("\n"))
        assert all(any(line == other for other in remaining) for line in protected), candidate.description
        assert "A docstring outside the solution." in candidate.source


def test_sum_and_mean_are_swapped(tiny):
    source, _, found = tiny
    reduce = [c for c in found if c.operator == "reduce"]
    removed_added = [changed(source, c.source) for c in reduce]
    assert ({"total = torch.sum(x) + x.mean()"}, {"total = torch.mean(x) + x.mean()"}) in removed_added
    assert ({"total = torch.sum(x) + x.mean()"}, {"total = torch.sum(x) + x.sum()"}) in removed_added


def test_arithmetic_operators_are_swapped(tiny):
    source, _, found = tiny
    binop = {frozenset(changed(source, c.source)[1]) for c in found if c.operator == "binop"}
    assert frozenset({"return mu - eps * std"}) in binop
    assert frozenset({"return mu + eps / std"}) in binop
    assert frozenset({"std = torch.exp(0.5 / logvar)"}) in binop
    assert frozenset({"x = x / 2"}) in binop


def test_constants_exp_noise_and_dropped_terms(tiny):
    source, _, found = tiny
    added = {c.operator: set() for c in found}
    for c in found:
        added[c.operator] |= changed(source, c.source)[1]
    assert {"std = torch.exp(1.0 * logvar)", "std = torch.exp(-0.5 * logvar)"} <= added["const"]
    assert {"std = 0.5 * logvar", "std = torch.exp(logvar)"} <= added["exp"]
    assert {"eps = torch.rand_like(std)", "eps = torch.zeros_like(std)"} <= added["noise"]
    assert {"return mu", "return eps * std"} <= added["drop_term"]
    assert {"return mu + eps", "return mu + std"} <= added["drop_factor"]


def test_detach_is_inserted_on_returned_and_assigned_tensors(tiny):
    source, _, found = tiny
    detached = [c for c in found if c.operator == "detach"]
    texts = "\n".join(c.source for c in detached)
    assert "return (mu + eps * std).detach()" in texts
    assert "std = torch.exp(0.5 * logvar).detach()" in texts
    class Undetach(ast.NodeTransformer):
        def visit_Call(self, node):
            self.generic_visit(node)
            if isinstance(node.func, ast.Attribute) and node.func.attr == "detach" and not node.args:
                return node.func.value
            return node

    for candidate in detached:  # exactly one .detach() added, nothing else changed
        assert candidate.source.count(".detach()") == 1
        assert ast.dump(Undetach().visit(ast.parse(candidate.source))) == ast.dump(ast.parse(source))


def test_last_layer_of_sequential_is_removed(tiny):
    source, _, found = tiny
    seq = [c for c in found if c.operator == "seq_last"]
    assert len(seq) == 1
    mutated = seq[0].source
    assert "nn.Sigmoid()" not in mutated and "nn.Linear(4, 8)" in mutated
    call = next(n for n in ast.walk(ast.parse(mutated)) if isinstance(n, ast.Call) and ast.unparse(n.func) ==
                "nn.Sequential")
    assert [ast.unparse(a) for a in call.args] == ["nn.Linear(2, 4)", "nn.ReLU()", "nn.Linear(4, 8)"]
    # a small text edit: only that line of the diff changes
    assert [line for line in seq[0].diff.splitlines() if line[:1] in "+-" and line[:3] not in ("+++", "---")] == [
        "-            nn.Linear(4, 8), nn.Sigmoid(),", "+            nn.Linear(4, 8),"]


def test_loop_statements_are_deleted_one_at_a_time(tiny):
    source, _, found = tiny
    deleted = [changed(source, c.source) for c in found if c.operator == "del_loop_stmt"]
    assert ({"total = total + 1"}, set()) in deleted
    assert ({"x = x * 2"}, set()) in deleted
    assert len(deleted) == 2  # statements outside loops are never deleted


def test_comparisons_unary_and_swapped_arguments():
    source = "def g(a, b):\n    if a > b:\n        a = -a\n    return torch.cdist(a, b)\n"
    found = M.candidates(source)
    added = set()
    for c in found:
        added |= {ast.unparse(n.test) for n in ast.walk(ast.parse(c.source)) if isinstance(n, ast.If)}
    assert {"a >= b", "a < b"} <= added
    texts = sources(found)
    assert any("    a = a\n" in t for t in texts)  # unary minus removed
    assert any("torch.cdist(b, a)" in t for t in texts)


def test_dropping_a_keyword_and_argmin_argmax():
    source = "def h(x, c, g):\n    first = torch.randint(5, (1,), generator=g)\n    return torch.cdist(x, c).argmin(dim=1)\n"
    texts = sources(M.candidates(source))
    assert "    first = torch.randint(5, (1,))\n" in "\n".join(texts) + "\n"
    assert any("argmax(dim=1)" in t for t in texts)
    assert any(".argmin()" in t for t in texts)


def test_ids_are_deterministic_and_independent_of_the_cap(tiny):
    source, regions, found = tiny
    again = M.candidates(source, regions)
    assert [(c.operator, c.source) for c in again] == [(c.operator, c.source) for c in found]
    everything = M.select("tiny", found)
    assert [m.id for m in everything] == [f"tiny-{i:03d}" for i in range(1, len(found) + 1)]
    capped = M.select("tiny", list(reversed(found)), cap=7)  # the input order does not matter either
    assert [(m.id, m.source) for m in capped] == [(m.id, m.source) for m in everything[:7]]
    assert all(m.diff.startswith("--- solution\n+++ " + m.id + "\n") for m in everything)
    # round robin: the first mutants use as many different operators as there are
    operators = {c.operator for c in found}
    assert len({m.operator for m in everything[:len(operators)]}) == len(operators)


def test_the_reference_cells_give_capped_parsable_mutants():
    made = M.make_mutants(M.GROUPS)
    solution = M.read_json(M.SOLUTION_NOTEBOOK)
    cells = M.solution_cells(solution, M.read_json(M.REFERENCE_EXAMPLE), [g.cell for g in M.GROUPS])
    ids = [m.id for mutants in made.values() for m in mutants]
    assert len(ids) == len(set(ids))
    for group in M.GROUPS:
        mutants = made[group.question]
        assert 5 <= len(mutants) <= group.cap, group.question
        original = ast.dump(ast.parse(cells[group.cell][0]))
        for mutant in mutants:
            assert re.fullmatch(rf"{group.cell}-\d{{3}}", mutant.id)
            assert ast.dump(ast.parse(mutant.source)) != original
    assert len(made["conv_autoencoder"]) <= 12 and len(made["conv_vae"]) <= 12
    assert M.make_mutants([M.GROUPS[1]], limit=3)["vae_loss"] == made["vae_loss"][:3]


def test_notebook_builder_replaces_exactly_one_cell():
    reference = M.read_json(M.REFERENCE_EXAMPLE)
    mutant = M.make_mutants([M.GROUPS[1]], limit=1)["vae_loss"][0]
    notebook = M.build_notebook(reference, "vae_loss", mutant.source)
    assert len(notebook["cells"]) == len(reference["cells"])
    differing = [i for i, (a, b) in enumerate(zip(reference["cells"], notebook["cells"])) if a != b]
    assert len(differing) == 1
    cell = notebook["cells"][differing[0]]
    assert M.grade_id(cell) == "vae_loss" and M.cell_source(cell) == mutant.source
    assert {k: v for k, v in cell.items() if k != "source"} == \
        {k: v for k, v in reference["cells"][differing[0]].items() if k != "source"}
    assert {k: v for k, v in notebook.items() if k != "cells"} == {k: v for k, v in reference.items() if k != "cells"}
    assert M.cell_source(reference["cells"][differing[0]]) != mutant.source  # the reference itself is untouched
    # written in nbformat's layout: the unmutated notebook is written back byte for byte
    assert M.notebook_text(reference) == M.REFERENCE_EXAMPLE.read_text(encoding="utf-8")
    with pytest.raises(ValueError):
        M.build_notebook(reference, "no_such_cell", "x = 1")


def test_write_submission_uses_the_nbgrader_layout(tmp_path):
    path = M.write_submission(tmp_path, "vae_loss-001", {"cells": [], "metadata": {}, "nbformat": 4,
                                                          "nbformat_minor": 5})
    assert path == tmp_path / "vae_loss-001" / "autoencoders" / "autoencoders.ipynb"
    assert json.loads(path.read_text())["nbformat"] == 4


@pytest.mark.parametrize("message, expected", [
    ("vae_loss differs from the reference solution (12.5 instead of 13.1)", "generic"),
    ("∂z/∂logvar differs from the reference solution (max |error| 0.31)", "generic"),
    ("std(z) is (1.000, 0.500), expected exp(0.5·logvar) = (2.000, 0.607)", "generic"),
    ("mean(z) is (0.100, -2.000), expected mu = (1.0, -2.0): the noise must have mean 0 (z = mu + std * eps)",
     "generic"),
    ("after the grader's training budget (2 epochs on 30000 images) the held-out MSE of the images decoded from the "
     "model's latents is 0.07; the limit is 0.0587 (the reference solution reaches 0.0516 ± 0.0009 over 20 seeds; "
     "predicting the mean image gives 0.064)", "generic"),
    ("the noise is not normally distributed (KS distance 0.061 > 0.02).", "generic"),
    ("the inertia (sum of squared distances to the cluster means) is 210, 8.0% above scikit-learn's 194: do the "
     "assignment and update steps iterate", "generic"),
    ("the inertia (sum of squared distances to the cluster means) is 5357, 6.3% above scikit-learn's 5041: the result "
     "is a consistent k-means partition, so the run stopped in a poor local optimum: do the assignment and update "
     "steps iterate (n_iters times or until nothing changes), and does the initialisation spread the centroids "
     "(k-means++)?", "generic"),
    ("on 4 well-separated blobs the clusters differ from scikit-learn's (adjusted Rand index 0.629 < 0.99)", "generic"),
    ("the KL term is 1.5× the expected value (3.2 instead of 2.1)", "generic"),
    ("the KL term is 0.0625× the expected value (0.2 instead of 3.2): it is averaged; it must be summed over every "
     "latent dimension and every image of the batch", "named"),
    # a fallback that goes on to name the cause is named
    ("on 4 well-separated blobs the clusters differ from scikit-learn's (adjusted Rand index 0.332 < 0.99): only 2 of "
     "the 4 clusters have points: the initial centroids must be 4 distinct, spread-out data points", "named"),
    ("the KL term has the wrong sign: KL = −0.5·Σ(1 + logvar − μ² − exp(logvar))", "named"),
    ("the spread of z is exp(logvar), it must be exp(0.5·logvar) (that is, sqrt(exp(logvar)))", "named"),
    ("the noise is not normally distributed (KS distance 0.061 > 0.02). It looks uniform: use torch.randn_like, "
     "not torch.rand_like.", "named"),
    ("the output images span [-0.213, 0.268], not [0, 1]: end the decoder with nn.Sigmoid()", "named"),
    ("two calls with seed=0 gave different labels: draw the initial centroids with generator = ...", "named"),
    ("z has dtype float64, expected float32", "named"),
    ("reparameterize raised AttributeError: 'float' object has no attribute 'exp' (at cell `reparameterize`, "
     "line 7)", "crash"),
    ("kmeans raised NameError: name 'counts' is not defined (at cell `kmeans`, line 14: …). Likely cause: `counts` "
     "is read before any line assigns it: was the line that computes `counts` deleted, misspelt or placed after its "
     "first use?", "explained"),
    ("no answer within 30 CPU-seconds while running kmeans (an endless loop?)", "crash"),
    ("the worker process died while running kmeans (killed by SIGKILL (out of memory?))", "crash"),
    ("internal grader error (KeyError); please tell the instructor", "internal"),
])
def test_feedback_classifier(message, expected):
    assert M.classify(message) == expected


def test_best_class_prefers_a_named_diagnosis():
    generic, named = "kl differs from the reference solution (1 instead of 2)", "the KL term lacks the factor 0.5"
    assert M.best_class([generic, named]) == "named"
    explained = "kmeans raised NameError: name 'c' is not defined (at cell `kmeans`, line 3). Likely cause: `c` is read"
    assert M.best_class([generic, explained]) == "explained" and M.best_class([explained, named]) == "named"
    assert M.best_class([generic]) == "generic"
    assert M.best_class([]) is None


def test_read_outcome_and_the_control_check():
    results = {"output": "", "execution_time": 12.5, "tests": [
        {"name": "vae_loss: a scalar", "score": 4.0, "max_score": 4.0, "status": "passed", "output": "",
         "tags": ["vae_loss"]},
        {"name": "vae_loss: equal to the reference", "score": 0.0, "max_score": 4.0, "status": "failed",
         "output": "the KL term is missing: the loss must be BCE + KL", "tags": ["vae_loss"]},
        {"name": "kmeans: something else", "score": 0.0, "max_score": 5.0, "status": "failed", "output": "x",
         "tags": ["kmeans"]},
    ]}
    outcome = M.read_outcome(results, ["vae_loss"])
    assert outcome.points == {"vae_loss": (4.0, 8.0)} and outcome.lost == ["vae_loss"]
    assert outcome.failed == [{"question": "vae_loss", "check": "equal to the reference",
                               "message": "the KL term is missing: the loss must be BCE + KL", "class": "named"}]
    group, stage = M.GROUPS[1], M.GROUPS[1].stages[0]
    with pytest.raises(M.GradingError, match="lost points"):
        M.check_control(group, stage, outcome)
    with pytest.raises(M.GradingError, match="selected no check"):
        M.check_control(group, stage, M.read_outcome({"tests": []}, ["vae_loss"]))
    full = M.read_outcome({"tests": [results["tests"][0]]}, ["vae_loss"])
    M.check_control(group, stage, full)  # full marks: no error


def test_progress_follows_the_grade_commands_tqdm_line():
    class Bar:
        n = 0

        def update(self, k):
            self.n += k

    stream = io.BytesIO("grading:   0%|          | 0/3 [00:00<?]\rgrading:  33%|###   | 1/3 [00:05<00:10]\r"
                        "grading: 100%|######| 3/3 [00:12<00:00]\nsummary\n".encode())
    log, bar = io.StringIO(), Bar()
    M._follow_progress(stream, log, bar, 3)
    assert bar.n == 3 and "summary" in log.getvalue()
    bar = Bar()
    M._follow_progress(io.BytesIO(b"no progress line at all\n"), io.StringIO(), bar, 4)
    assert bar.n == 4  # the bar still ends at the stage's count


def test_cli_lists_mutants_and_rejects_unknown_questions(capsys):
    assert M.main(["--list", "--only", "vae_loss", "--limit", "3"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split()[0] for line in lines] == ["vae_loss-001", "vae_loss-002", "vae_loss-003"]
    assert M.main(["--list", "--only", "plot_latent_clusters", "--limit", "1"]) == 0  # a cell name works too
    assert capsys.readouterr().out.startswith("plot_latent_clusters-001")
    with pytest.raises(SystemExit):
        M.main(["--only", "no_such_question"])


def test_markdown_report_lists_summary_survivors_and_killed():
    mutant = {"id": "vae_loss-001", "operator": "detach", "description": "`.detach()` on `bce + kl`", "line": 5,
              "diff": "--- solution\n+++ vae_loss-001\n@@ -1 +1 @@\n-a\n+b\n", "status": "survived", "lost": [],
              "failed": [], "diagnosis": None, "first_message": "", "best_message": "",
              "behaviour": {"same": False, "differences": ["gradients: grads[0]: 1 vs 0"], "probes": ["gradients"]}}
    killed = {**mutant, "id": "vae_loss-002", "status": "killed", "lost": ["vae_loss"], "diagnosis": "named",
              "first_message": "the KL term has the wrong sign", "best_message": "the KL term has the wrong sign"}
    group = M.GROUPS[1]
    data = {"date": "2026-01-01T00:00:00", "machine": {"cpus": 2, "platform": "linux", "python": "3.11",
                                                        "processor": "x86_64"},
            "git": "abc", "graders": "123", "jobs": 2, "limit": None, "exhaustive": False, "wall_seconds": 75.0,
            "generic_messages": [{"name": n, "pattern": p} for n, p in M.GENERIC_MESSAGES],
            "operators": M.OPERATOR_HELP,
            "questions": [{"question": "vae_loss", "cell": "vae_loss", "stages": [],
                           "summary": M._summary(group, [mutant, killed], 70.0), "mutants": [mutant, killed]}]}
    text = M.markdown(data, "python -m autograder mutants")
    assert "| `vae_loss` | vae_loss | 2 | 1 | 1 | 50 % | 100 % (1) |" in text
    assert "1 min 15 s" in text and "2 CPUs" in text
    assert "### `vae_loss-001`" in text and "```diff\n--- solution" in text and "behaves differently" in text
    assert "| `vae_loss-002` | `detach` |" in text and "the KL term has the wrong sign" in text
