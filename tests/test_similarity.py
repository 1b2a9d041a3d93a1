"""autograder.similarity: a renamed copy ranks first, the template and independent code do not look alike.

The class is built in tmp_path from the reference submission and the released template: nothing is graded or run.
"""
from __future__ import annotations

import copy
import json
import random
import re
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest

from autograder import similarity

REFERENCE = Path(__file__).resolve().parent.parent / "examples" / "submitted" / "reference" / "autoencoders" \
    / "autoencoders.ipynb"

#: local names of the reference's solution cells -> what the copier called them
RENAMES = {"std": "sigma", "eps": "noise", "bce": "recon_term", "kl": "divergence", "generator": "rng",
           "first": "start_index", "centroids": "centres", "nearest": "dist2", "chosen": "pick", "labels": "assign",
           "sums": "totals", "counts": "sizes", "new_labels": "fresh", "members": "pts", "clusters": "groups",
           "fig": "figure", "ax": "axes", "side": "s4", "encoded": "code", "layers": "base", "features": "width",
           "h": "hidden", "logvar": "log_var", "mu": "mean", "x": "inputs"}

#: an independent k-means: loops, a Python k-means++ draw, another convergence test
OWN_KMEANS = '''def kmeans(x, n_clusters, n_iters=100, seed=0):
    data = torch.as_tensor(x).float()
    g = torch.Generator().manual_seed(seed)
    picks = [int(torch.randint(0, data.shape[0], (1,), generator=g))]
    while len(picks) < n_clusters:
        d = torch.stack([((data - data[p]) ** 2).sum(1) for p in picks]).min(0).values
        picks.append(int(torch.multinomial(d / d.sum(), 1, generator=g)))
    centers = data[picks].clone()
    for step in range(n_iters):
        assignment = ((data[:, None, :] - centers[None]) ** 2).sum(-1).argmin(1)
        previous = centers.clone()
        for c in range(n_clusters):
            if (assignment == c).any():
                centers[c] = data[assignment == c].mean(0)
        if torch.allclose(previous, centers):
            break
    return assignment, centers
'''


def _regions(notebook: dict) -> dict[str, dict]:
    return {c["metadata"]["nbgrader"]["grade_id"]: c for c in notebook["cells"]
            if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") in similarity.REGIONS}


def _source(cell: dict) -> str:
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def _disguise(source: str) -> str:
    """What a copier does: rename the variables, new comments and docstring, 2-space indents, spacing."""
    for old, new in RENAMES.items():
        source = re.sub(rf"(?<![.\w]){old}\b(?!=)", new, source)  # not attributes nor keywords (generator=)
    source = re.sub(r'""".*?"""', '"""my own work"""', source, flags=re.S)
    lines = []
    for line in source.splitlines():
        indent = len(line) - len(line.lstrip(" "))
        lines.append(" " * (indent // 2) + line.lstrip(" ").replace(", ", " ,  "))
        if line.rstrip().endswith(":"):
            lines += ["", " " * (indent // 2 + 2) + "# <script>alert('copied')</script> 自分で考えた"]
    return "\n".join(lines)


def _write(folder: Path, student: str, notebook: dict) -> None:
    (folder / f"{student}.ipynb").write_text(json.dumps(notebook, ensure_ascii=False), encoding="utf-8")


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory, assignment_dir: Path) -> dict:
    """A class of seven run through the command line: its HTML, stdout and the ranked pairs."""
    folder = tmp_path_factory.mktemp("class")
    reference = json.loads(REFERENCE.read_text(encoding="utf-8"))
    template = json.loads((assignment_dir / "autoencoders.ipynb").read_text(encoding="utf-8"))
    _write(folder, "alice", reference)
    disguised = copy.deepcopy(reference)
    for cell in _regions(disguised).values():
        cell["source"] = _disguise(_source(cell))
    _write(folder, "bob&co", disguised)
    own = copy.deepcopy(reference)
    _regions(own)["kmeans"]["source"] = OWN_KMEANS
    _write(folder, "carol", own)
    _write(folder, "dan", template)
    _write(folder, "erin", template)
    # kmeans copied with a syntax error, ConvVAE pasted into a cell without metadata, reparameterize answered in
    # a new cell below the untouched stub, vae_loss left empty
    broken = copy.deepcopy(reference)
    cells = _regions(broken)
    cells["kmeans"]["source"] = _source(cells["kmeans"]).replace("return labels,", "return labels),")
    del cells["ConvVAE"]["metadata"]["nbgrader"]
    answer = copy.deepcopy(cells["reparameterize"])
    del answer["metadata"]["nbgrader"]
    cells["reparameterize"]["source"] = _source(_regions(template)["reparameterize"])
    broken["cells"].insert(broken["cells"].index(cells["reparameterize"]) + 1, answer)
    cells["vae_loss"]["source"] = ""
    _write(folder, "frank", broken)
    (folder / "gina.ipynb").write_text("{not json", encoding="utf-8")
    out = folder / "report" / "similarity.html"
    stdout = _run([str(folder), "--out", str(out), "--top", "50"])
    template_fp = similarity.load_template(assignment_dir / "autoencoders.ipynb")
    students = similarity.load_students(similarity.engine.discover([folder]), template_fp)
    pairs, _ = similarity.rank_pairs(students, 50, 0.0)
    return {"html": out.read_text(encoding="utf-8"), "stdout": stdout, "pairs": pairs,
            "by_ids": {frozenset((p.a.student_id, p.b.student_id)): p for p in pairs}}


def _run(argv: list[str]) -> str:
    import contextlib
    import io

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        assert similarity.main(argv) == 0
    return buffer.getvalue()


def test_renamed_and_reformatted_copy_ranks_first(report: dict) -> None:
    top = report["pairs"][0]
    assert {top.a.student_id, top.b.student_id} == {"alice", "bob&co"}
    assert top.overall >= 0.95, top
    assert all(score is not None and score >= 0.9 for score in top.by_region.values()), top.by_region
    first_row = report["stdout"].splitlines()[1].split()
    assert first_row[:3] == ["1", "alice", "bob&co"]


def test_independent_kmeans_scores_low(report: dict) -> None:
    pair = report["by_ids"][frozenset(("alice", "carol"))]
    assert pair.by_region["kmeans"] < 0.2, pair.by_region
    assert pair.by_region["reparameterize"] == 1.0  # the rest is the reference's code
    assert pair.overall < report["pairs"][0].overall


def test_untouched_templates_do_not_look_alike(report: dict) -> None:
    ids = {student for pair in report["pairs"] for student in (pair.a.student_id, pair.b.student_id)}
    assert "dan" not in ids and "erin" not in ids  # nothing of their own to compare: no score at all
    stub = similarity.Student("s", {"kmeans": similarity.fingerprint(OWN_KMEANS, similarity.load_template(),
                                                                       "kmeans")})
    assert stub.regions["kmeans"].fingerprints  # an answer keeps its fingerprints once the stub is removed


def test_unparsable_cell_and_lost_metadata_still_compared(report: dict) -> None:
    pair = report["by_ids"][frozenset(("alice", "frank"))]
    frank = pair.a if pair.a.student_id == "frank" else pair.b
    assert not frank.regions["kmeans"].parses
    assert pair.by_region["kmeans"] >= 0.7, pair.by_region  # compared on its tokens
    assert pair.by_region["ConvVAE"] == 1.0  # found by `class ConvVAE`
    assert pair.by_region["reparameterize"] == 1.0  # the cell below the stub that defines it
    assert pair.by_region["vae_loss"] is None  # an empty cell has no score
    assert "frank: the <code>kmeans</code> cell does not parse" in report["html"]
    assert "gina: not a readable notebook" in report["html"]


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.text: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.tags.append(tag)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_html_is_self_contained_and_escaped(report: dict) -> None:
    page = report["html"]
    parser = _Collector()
    parser.feed(page)
    parser.close()
    text = "".join(parser.text)
    assert "evidence to read, not proof" in text
    assert {"alice", "bob&co", "carol", "frank"} <= set(re.findall(r"[\w&]+", text))
    assert "bob&amp;co" in page and "bob&co" not in page  # ids escaped too
    assert "<script>" not in page and "&lt;script&gt;alert(&#x27;copied&#x27;)&lt;/script&gt;" in page
    assert "counts &gt; 0" in page  # the reference's kmeans, escaped, side by side
    assert "script" not in parser.tags and "link" not in parser.tags and "src=" not in page
    assert parser.tags.count("details") == len(report["pairs"]) and "table" in parser.tags
    assert 'class="hit"' in page  # shared lines are highlighted


def test_bad_input_exits_2_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert similarity.main([str(tmp_path / "missing")]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error:") and error.count("\n") == 1
    assert similarity.main([str(REFERENCE), "--template", str(tmp_path / "none.ipynb")]) == 2
    assert capsys.readouterr().err.startswith("error: cannot read the template")
    with pytest.raises(SystemExit) as exit_:
        similarity.main([str(REFERENCE), "--threshold", "1.5"])
    assert exit_.value.code == 2


def _synthetic_region(rng: random.Random, name: str) -> str:
    calls = "exp log sum mean cdist argmin randn_like zeros_like cat stack where clamp bincount sqrt matmul".split()
    keywords = "dim keepdim generator dtype device minlength reduction".split()
    lines = [f"def {name}({', '.join(f'v{i}' for i in range(10))}):"]
    for _ in range(rng.randint(6, 20)):
        a, b, c = (f"v{rng.randint(0, 9)}" for _ in range(3))
        lines.append(f"    {a} = torch.{rng.choice(calls)}({b}, {rng.choice(keywords)}={rng.randint(0, 3)}) "
                     f"{rng.choice('+-*/')} {c}")
    return "\n".join(lines + ["    return v1"])


def test_finds_a_planted_copy_among_500_students() -> None:
    """500 students (124,750 pairs) of independent random code, one of them a renamed copy of another."""
    rng = random.Random(0)
    template = similarity.load_template()
    notebooks = [{"cells": [{"cell_type": "code", "metadata": {"nbgrader": {"grade_id": region}},
                             "source": _synthetic_region(rng, region)} for region in similarity.REGIONS]}
                 for _ in range(499)]
    planted = copy.deepcopy(notebooks[123])
    for cell in planted["cells"]:
        cell["source"] = re.sub(r"\bv(\d)\b", r"renamed_\1", cell["source"])
    notebooks.append(planted)
    students = [similarity.student_from_notebook(f"s{i:03d}", nb, template) for i, nb in enumerate(notebooks)]
    started = time.perf_counter()
    pairs, scores = similarity.rank_pairs(students, 5, 0.0)
    elapsed = time.perf_counter() - started
    assert len(scores) == 500 * 499 // 2
    assert {pairs[0].a.student_id, pairs[0].b.student_id} == {"s123", "s499"} and pairs[0].overall == 1.0
    assert pairs[1].overall < 0.5
    assert elapsed < 60, f"the pairwise step took {elapsed:.1f} s"


def test_a_region_nested_past_the_parsers_limit_is_still_read() -> None:
    """`1+1+…+1` (300,000 terms) makes the parser raise RecursionError: the region is read as tokens only."""
    template = similarity.load_template(similarity.TEMPLATE)
    region = similarity.fingerprint("def kmeans(x):\n    return " + "+".join(["1"] * 300_000) + "\n", template,
                                    "kmeans")
    assert not region.parses and region.fingerprints
