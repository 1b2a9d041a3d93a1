"""Bounded cost: no notebook, and no answer of its worker, can make the trusted side spend minutes.

Each attack is built as a student would build it: the untouched template (``assignment/autoencoders.ipynb``)
plus the attack. Each test measures what the trusted side spends on it (CPU of this process, or of the runner)
and checks that the attack earns nothing. The costs before these bounds, measured on this project's 2-core
machine, are in each test's docstring.

* (a) huge PNGs in the k-means figure cells (:mod:`autograder.figures`);
* (b) tens of thousands of import lines, helpers, forbidden aliases or nodes for the source policy
  (:mod:`autograder.policy`), oversized cells (:mod:`autograder.extract`), a region of many keyword arguments
  (:mod:`autograder.similarity`);
* (c) answer frames whose tensors take minutes to print, and answers written a byte at a time
  (:mod:`autograder.sandboxed.protocol`, :mod:`autograder.client`);
* (d) the runner's own CPU cap (:func:`autograder.engine.limit_own_cpu`), and one end-to-end grade of a notebook
  carrying the attacks of (a), (b) and (c), with ``-k`` selecting one check of each.
"""
from __future__ import annotations

import base64
import io
import json
import os
import re
import signal
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import nbformat
import pytest
import torch
from PIL import Image
from safetensors.torch import save

from autograder import engine, figures, policy, similarity
from autograder.client import _BudgetReader, _clip_type_names
from autograder.extract import MAX_CELL_CHARS, MAX_CODE_CHARS, extract_cells
from autograder.failures import CheckFailed, StudentText
from autograder.graders import test_cluster_plots as cluster_grader
from autograder.i18n import t
from autograder.sandbox import bwrap_unavailable
from autograder.sandboxed import protocol
from autograder.sandboxed.protocol import ProtocolError

REPO_ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = REPO_ROOT / "assignment" / "autoencoders.ipynb"
REFERENCE = REPO_ROOT / "examples" / "submitted" / "reference" / "autoencoders" / "autoencoders.ipynb"
FIGURE_CELLS = ("fig_kmeans_ae", "fig_kmeans_vae")
KMEANS_POLICY = next(p for p in policy.policies() if p.question == "kmeans")


def cpu_seconds(action) -> tuple[float, object]:
    """The CPU time this process spends on ``action()``, and what it returned (or the exception it raised)."""
    started = time.process_time()
    try:
        outcome = action()
    except Exception as error:  # noqa: BLE001 - the caller asserts on it
        outcome = error
    return time.process_time() - started, outcome


def template() -> nbformat.NotebookNode:
    return nbformat.read(TEMPLATE, as_version=4)


def as_submitted(notebook: nbformat.NotebookNode) -> dict:
    """The notebook as the runner reads it: the saved file's JSON."""
    return json.loads(nbformat.writes(notebook))


def one_bit_png(width: int, height: int, *, blank: bool = False) -> str:
    """A 1-bit PNG (a few kB however large), half black unless ``blank``, as an output's base64 payload."""
    image = Image.new("1", (width, height), 0)
    if not blank:
        image.paste(1, (0, 0, width // 2, height))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def with_figures(notebook: nbformat.NotebookNode, payload: str, count: int) -> nbformat.NotebookNode:
    """The k-means figure cells showing ``count`` copies of ``payload`` each."""
    for cell in notebook.cells:
        if cell.get("id") in FIGURE_CELLS:
            cell.outputs = [nbformat.v4.new_output("display_data", data={"image/png": payload})
                            for _ in range(count)]
    return notebook


def count_decodes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """A list that grows by one each time figures decodes an image."""
    calls: list[int] = []
    decode = figures._decode

    def counted(raw: bytes):
        calls.append(len(raw))
        return decode(raw)

    monkeypatch.setattr(figures, "_decode", counted)
    return calls


# -- (a) the figure check ---------------------------------------------------------------------------------------
def test_huge_one_bit_pngs_are_refused_from_their_header(monkeypatch):
    """40 PNGs of 8000 x 5000 pixels (14 kB each) in each figure cell: 2.5 s of decoding each, 200 s in all before.
    Now their headers refuse them (over MAX_PIXELS) before any decoder runs, and the check fails."""
    decodes = count_decodes(monkeypatch)
    notebook = as_submitted(with_figures(template(), one_bit_png(8000, 5000), 40))
    seconds, outcome = cpu_seconds(lambda: cluster_grader.test_notebook_shows_cluster_figures(notebook))
    assert seconds < 2, f"the figure check took {seconds:.1f} CPU-s"
    assert isinstance(outcome, CheckFailed), outcome
    assert "8000x5000 pixels" in outcome.message.en and "pixels in all" in outcome.message.en, outcome.message.en
    assert decodes == []


def test_decodable_huge_pngs_are_decoded_once_per_cell(monkeypatch):
    """40 blank 4000 x 4000 PNGs per cell (at MAX_PIXELS, so decodable): the cell's pixel budget lets one through,
    whose decoding and colour count take well under a second; it is blank, so the check fails."""
    decodes = count_decodes(monkeypatch)
    notebook = as_submitted(with_figures(template(), one_bit_png(4000, 4000, blank=True), 40))
    seconds, outcome = cpu_seconds(lambda: cluster_grader.test_notebook_shows_cluster_figures(notebook))
    assert seconds < 5, f"the figure check took {seconds:.1f} CPU-s"
    assert isinstance(outcome, CheckFailed) and "blank" in outcome.message.en, outcome
    assert len(decodes) == 1  # the first cell fails the check: the second is never looked at


def test_a_cell_of_thousands_of_payloads_is_looked_at_up_to_its_caps():
    """10,000 junk payloads: MAX_FIGURES are looked at; one image at the pixel cap uses up a cell's pixel budget,
    so a second one after it is not decoded; nothing here costs more than a fraction of a second."""
    junk = {"outputs": [{"output_type": "display_data", "data": {"image/png": "AAAA"}}] * 10_000}
    seconds, chosen = cpu_seconds(lambda: figures.figure_outputs(junk))
    assert chosen == ["AAAA"] * figures.MAX_FIGURES and seconds < 1
    large = one_bit_png(4000, 4000)
    cell = {"outputs": [{"output_type": "display_data", "data": {"image/png": payload}}
                        for payload in (large, large, "AAAA")]}
    assert figures.figure_outputs(cell) == [large]


def test_a_real_notebook_still_passes_the_figure_check():
    """The reference's figures pass as before: the bounds change nothing for a normal notebook."""
    notebook = json.loads(REFERENCE.read_text(encoding="utf-8"))
    seconds, outcome = cpu_seconds(lambda: cluster_grader.test_notebook_shows_cluster_figures(notebook))
    assert outcome is None and seconds < 2


# -- (b) the source policy, the extraction, the similarity report ------------------------------------------------
def with_cells(notebook: nbformat.NotebookNode, lines: list[str], last: str) -> nbformat.NotebookNode:
    """``lines`` in cells of 2,000 lines each, then the cell ``last``."""
    for start in range(0, len(lines), 2000):
        notebook.cells.append(nbformat.v4.new_code_cell("\n".join(lines[start:start + 2000])))
    notebook.cells.append(nbformat.v4.new_code_cell(last))
    return notebook


def kmeans_using(name: str, uses: int) -> str:
    """A kmeans that wraps scikit-learn's KMeans and mentions ``name`` ``uses`` times."""
    return ("from sklearn.cluster import KMeans\n\n\ndef kmeans(x, n_clusters, n_iters=100, seed=0):\n"
            + "".join(f"    {name}.a{i}\n" for i in range(uses))
            + "    return KMeans(n_clusters).fit_predict(x)\n")


def policy_findings(notebook: nbformat.NotebookNode) -> tuple[float, list[str]]:
    seconds, findings = cpu_seconds(lambda: KMEANS_POLICY.check(as_submitted(notebook)))
    return seconds, [finding.en for finding in findings]


def test_thousands_of_imports_keep_the_policy_linear():
    """20,000 `import torch` lines and a kmeans that uses torch 5,000 times: 50 CPU-s before (each use was checked
    against each binding), a fraction of a second now; the KMeans it wraps is still found (the question is void)."""
    seconds, findings = policy_findings(with_cells(template(), ["import torch"] * 20_000, kmeans_using("torch", 5000)))
    assert seconds < 5, f"the policy took {seconds:.1f} CPU-s"
    assert any("kmeans uses sklearn.cluster.KMeans" in finding for finding in findings), findings


def test_thousands_of_forbidden_aliases_stop_at_the_findings_cap():
    """3,000 forbidden targets bound to one name, used 3,000 times: 9 million findings to make before; now the check
    stops at MAX_FINDINGS."""
    aliases = [f"from sklearn.cluster import Kind{i} as K" for i in range(3000)]
    seconds, findings = policy_findings(with_cells(template(), aliases, kmeans_using("K", 3000)))
    assert seconds < 5, f"the policy took {seconds:.1f} CPU-s"
    assert len(findings) == policy.MAX_FINDINGS and "uses sklearn.cluster.Kind0" in findings[0], findings[:3]


def test_a_long_chain_of_helpers_is_checked_and_named_by_its_ends():
    """kmeans calls h0, which calls h1, ... h4999, which uses KMeans: found, and named by the chain's ends."""
    helpers = [f"def h{i}(x):\n    return h{i + 1}(x)\n" for i in range(4999)]
    last = "from sklearn.cluster import KMeans\n\n\ndef h4999(x):\n    return KMeans(5).fit_predict(x)\n\n\n" \
           "def kmeans(x, n_clusters, n_iters=100, seed=0):\n    return h0(x)\n"
    seconds, findings = policy_findings(with_cells(template(), helpers, last))
    assert seconds < 5, f"the policy took {seconds:.1f} CPU-s"
    assert findings and findings[0].startswith("kmeans (through `h0` → `h1` → `h2` → … → `h4997` → `h4998` → "
                                               "`h4999`) uses sklearn.cluster.KMeans"), findings[:1]


def test_a_notebook_over_the_node_cap_gets_one_finding():
    """Dense code (an item per two characters) past MAX_NODES is not analysed: one finding says why."""
    dense = ["X = [" + "1," * 45_000 + "]"] * 3
    notebook = template()
    notebook.cells += [nbformat.v4.new_code_cell(source) for source in dense]
    seconds, findings = policy_findings(notebook)
    assert seconds < 5 and findings == [policy.TOO_LARGE.en], (seconds, findings)


def test_oversized_cells_are_not_parsed_by_the_extraction_nor_the_policy():
    """A cell over MAX_CELL_CHARS, and every cell once the notebook is past MAX_CODE_CHARS, costs only itself: the
    extraction skips it (its kmeans is never defined), and the policy skips the same cells."""
    notebook = template()
    big = "def kmeans(x, n_clusters, n_iters=100, seed=0):\n" + "    x = x + 1\n" * (MAX_CELL_CHARS // 14 + 1) \
          + "    from sklearn.cluster import KMeans\n    return KMeans(n_clusters).fit_predict(x)\n"
    filler = ["# " + "x" * 98] * 2000  # 200 kB of comment lines
    notebook.cells.append(nbformat.v4.new_code_cell(big))
    notebook = with_cells(notebook, filler * 3, "from sklearn.cluster import KMeans\n\n\ndef kmeans(x, k):\n"
                                                "    return KMeans(k).fit_predict(x)\n")
    submitted = as_submitted(notebook)
    seconds, extraction = cpu_seconds(lambda: extract_cells(submitted))
    reasons = [reason for _, reason in extraction.skipped]
    assert seconds < 5 and any("too large" in reason for reason in reasons), reasons
    assert any(f"past the notebook's {MAX_CODE_CHARS}" in reason for reason in reasons), reasons
    assert "KMeans" not in extraction.source and "x = x + 1" not in extraction.source  # the template's stub stays
    assert KMEANS_POLICY.check(submitted) == []  # nothing it skips can run, so nothing there is a finding


def test_a_region_of_many_keyword_arguments_fingerprints_in_linear_time():
    """One line of 30,000 keyword arguments after an "é": 9.5 s before (each keyword's column was converted from
    UTF-8 bytes on its own, the cost of the line each time); a huge cell is read up to MAX_REGION_CHARS."""
    known = similarity.load_template()
    line = "def kmeans(x):\n    return f('é', " + ", ".join("a=1" for _ in range(30_000)) + ")\n"
    seconds, region = cpu_seconds(lambda: similarity.fingerprint(line, known, "kmeans"))
    assert seconds < 5 and region.parses and region.fingerprints, seconds
    notebook = template()
    for cell in notebook.cells:
        if cell.get("id") == "kmeans":
            cell.source = "def kmeans(x):\n" + "    y = x + 1\n" * 200_000
    seconds, student = cpu_seconds(lambda: similarity.student_from_notebook("s", as_submitted(notebook), known))
    assert seconds < 5, f"a 2.8 MB region took {seconds:.1f} CPU-s"
    assert len(student.regions["kmeans"].source) <= similarity.MAX_REGION_CHARS


# -- (c) answer frames ---------------------------------------------------------------------------------------------
def raw_frame(body: dict, tensors: dict[str, torch.Tensor]) -> bytes:
    """A frame as a hostile worker writes it on the answer pipe, without going through protocol.encode's checks."""
    text = json.dumps(body).encode()
    blob = save(tensors) if tensors else b""
    return struct.pack(">4sQQ", protocol.MAGIC, len(text), len(blob)) + text + blob


def receive_through_a_pipe(frame: bytes, chunk: int = 1 << 16) -> tuple[float, object, int]:
    """Decode ``frame`` written onto a pipe by another thread, as the client reads a worker's answer: the CPU of the
    reading side, the message (or the error), and how many reads it took."""
    read_end, write_end = os.pipe()

    def write() -> None:
        with os.fdopen(write_end, "wb", buffering=0) as pipe:
            for start in range(0, len(frame), chunk):
                pipe.write(frame[start:start + chunk])

    writer = threading.Thread(target=write)
    writer.start()
    reader = _BudgetReader(read_end, lambda: 0.0, 0.0, 60.0)  # no worker: only the wall-clock limits apply
    reads = 0
    original = reader.read

    def counted(size: int) -> bytes:
        nonlocal reads
        reads += 1
        return original(size)

    reader.read = counted
    try:
        seconds, outcome = cpu_seconds(lambda: protocol.receive(reader))
    finally:
        writer.join()
        os.close(read_end)
    return seconds, outcome, reads


@pytest.mark.parametrize("shape", [(999,), (1001,), (6,) * 6, (7,) * 6, (2,) * 16, (3, 400), (5, 1, 7, 7), (0, 5), ()])
def test_printed_elements_counts_what_torch_writes(shape):
    """The cap counts exactly the elements str() writes: all of a small tensor, up to 6 a dimension of a large one."""
    written = len(re.findall(r"\b1\b", str(torch.ones(shape, dtype=torch.uint8))))
    assert protocol.printed_elements(shape) == written


@pytest.mark.parametrize("field", ["error", "message", "where"])
def test_a_frame_whose_tensors_print_slowly_is_refused(field):
    """A 10 MB tensor of shape (6,) * 9 in the error answer: str() writes all its 10 million elements, which took
    the trusted side 86 CPU-s (a 16 MB frame: 148 s). Now the frame is refused as it is decoded: the check fails
    with "invalid answer", at once."""
    body = {"ok": False, "error": "E", "message": "m", "where": "w", field: {"$tensor": "t0"}}
    frame = raw_frame(body, {"t0": torch.zeros((6,) * 9, dtype=torch.uint8)})
    seconds, outcome, _ = receive_through_a_pipe(frame)
    assert isinstance(outcome, ProtocolError) and "elements" in str(outcome), outcome
    assert seconds < 2, f"refusing the frame took {seconds:.1f} CPU-s"
    with pytest.raises(ValueError, match="elements"):  # and the trusted side never sends one
        protocol.encode({field: torch.zeros((6,) * 7, dtype=torch.uint8)})


def test_the_costliest_frame_under_the_caps_is_quoted_in_seconds():
    """Under the caps, the most str() can be made to write: 100 tensors of 999 elements in the error, a 'type' and
    strings of hundreds of kB; everything the client and a grader do with it costs a few seconds at most."""
    tensors = {f"t{i}": torch.rand(999) for i in range(100)}
    body = {"ok": False, "error": [{"$tensor": name} for name in tensors], "message": " /a" * 100_000,
            "where": "(/" * 100_000}
    seconds, reply, _ = receive_through_a_pipe(raw_frame(body, tensors))
    assert isinstance(reply, dict), reply
    text = StudentText()
    quoted, results = cpu_seconds(lambda: [text.take(str(reply["error"])[:40]), text.take(reply["message"]),
                                           text.take(reply["where"])])
    assert seconds + quoted < 5, (seconds, quoted)
    assert sum(len(part) for part in results) <= 3 * 240
    value = {"type": [{"$tensor": name} for name in tensors]}
    seconds, answer, _ = receive_through_a_pipe(raw_frame({"ok": True, "value": value}, dict(tensors)))
    quoted, message = cpu_seconds(lambda: t("{type}", "not {type}", type=_clip_type_names(answer["value"])["type"]))
    assert seconds + quoted < 5 and message.en.startswith("not [tensor("), (seconds, quoted)


def test_a_forged_shape_cannot_carry_data_into_the_feedback():
    """A blind attacker packed 15 held-out pixels into each number of a forged ``shape`` (8.8 KB quoted back in
    "reconstructed has shape (…)"): a shape that is not at most 8 integers under 2**31 is quoted as ["?"], and
    the names in a description are clipped."""
    forged = {"info": {"type": "Tensor", "shape": [2**60 + 12345] * 40, "dtype": "x" * 500, "device": "d" * 500},
              "nested": [{"shape": [2, "3"]}, {"shape": [2000, 1, 28, 28]}]}
    clipped = _clip_type_names(forged)
    assert clipped["info"]["shape"] == ["?"] and clipped["nested"][0]["shape"] == ["?"]
    assert clipped["nested"][1]["shape"] == [2000, 1, 28, 28], "a real shape is kept"
    assert len(clipped["info"]["dtype"]) == len(clipped["info"]["device"]) == 40
    assert len(str(clipped)) < 400


def test_an_answer_written_a_byte_at_a_time_costs_few_reads():
    """A worker that writes its answer in 1-byte writes woke the client once per byte (1.4 CPU-s for 2 MB); now a
    short read makes the next one wait a millisecond, so the reads are about a thousand a second at most."""
    frame = protocol.encode({"ok": True, "value": torch.zeros(50_000, dtype=torch.uint8)})
    started = time.monotonic()
    _, reply, reads = receive_through_a_pipe(frame, chunk=1)
    elapsed = time.monotonic() - started
    assert isinstance(reply, dict) and torch.equal(reply["value"], torch.zeros(50_000, dtype=torch.uint8))
    assert reads <= 1100 * elapsed + 20, f"{reads} reads in {elapsed:.2f} s for {len(frame)} bytes"


# -- (d) the runner's CPU cap, and one end-to-end grade ---------------------------------------------------------
FAKE_RUNNER = """
import json, resource, sys
notebook, result = sys.argv[1], sys.argv[3]
if "hog" in notebook:  # the runner's own analyses of this notebook never end
    from autograder import engine
    used = resource.getrusage(resource.RUSAGE_SELF)
    engine.RUNNER_CPU_S = int(used.ru_utime + used.ru_stime) + 1  # its start-up, and a CPU-second more, not 30
    engine.limit_own_cpu()
    while True:
        pass
with open(result, "w") as file:
    json.dump({"notebook": notebook, "checks": []}, file)
"""


def test_a_runner_over_its_cpu_cap_costs_only_its_submission(tmp_path, monkeypatch):
    """A runner whose own CPU passes the cap dies of SIGXCPU; its student gets 0 and a bilingual message saying the
    notebook made the analysis too expensive; the other submission of the class run is graded as usual."""
    submissions = []
    for name in ("hog", "honest"):
        path = tmp_path / f"{name}.ipynb"
        path.write_text("{}")
        submissions.append(engine.Submission(name, path))
    monkeypatch.setattr(engine, "RUNNER", (sys.executable, "-c", FAKE_RUNNER))
    started = time.monotonic()
    results = engine.grade_all(submissions, tmp_path / "out", jobs=2, options=[])
    assert time.monotonic() - started < 30
    hog, honest = results["hog"], results["honest"]
    assert hog["total"] == 0 and hog["checks"] == []
    assert hog["runner_error_en"] == engine.TOO_EXPENSIVE.en and "too expensive" in hog["runner_error_en"]
    assert "採点プログラムの解析" in hog["runner_error_ja"]
    assert "runner_error" not in honest
    assert (tmp_path / "out" / "hog" / "grader.log").exists()


def test_the_runner_caps_its_own_cpu_and_not_its_workers(tmp_path):
    """limit_own_cpu sets the soft RLIMIT_CPU only (and no core dumps): the hard limit stays, so a child that drops
    its privileges, as the sandboxed workers do, can still be given the workers' own 30-minute limit."""
    script = """
import json, os, resource, subprocess, sys
from autograder import engine
before = resource.getrlimit(resource.RLIMIT_CPU)
engine.limit_own_cpu()

def as_a_worker():
    if os.geteuid() == 0:
        os.setgid(65534)
        os.setuid(65534)
    resource.setrlimit(resource.RLIMIT_CPU, (1800, 1805))  # autograder.limits' worker limit

child = subprocess.run(["cat", "/proc/self/limits"], preexec_fn=as_a_worker, capture_output=True, text=True)
cpu = next(line.split()[3:5] for line in child.stdout.splitlines() if line.startswith("Max cpu time"))
print(json.dumps({"before": before, "after": resource.getrlimit(resource.RLIMIT_CPU),
                  "core": resource.getrlimit(resource.RLIMIT_CORE)[0], "child": cpu}))
"""
    process = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO_ROOT,
                             timeout=60, check=False)
    assert process.returncode == 0, process.stderr[-2000:]
    limits = json.loads(process.stdout)
    assert limits["after"] == [engine.RUNNER_CPU_S, limits["before"][1]] and limits["core"] == 0, limits
    assert limits["child"] == ["1800", "1805"], limits


def test_sigxcpu_is_what_the_cap_sends():
    """The engine recognises the cap by the runner's exit status: killed by SIGXCPU."""
    burn = ("import resource\nresource.setrlimit(resource.RLIMIT_CPU, (1, resource.getrlimit(resource.RLIMIT_CPU)[1]))"
            "\nwhile True: pass")
    process = subprocess.run([sys.executable, "-c", burn], timeout=60, check=False)
    assert process.returncode == -signal.SIGXCPU


HOSTILE_REPARAMETERIZE = r'''
import json
import struct
import sys
import time

import torch
from safetensors.torch import save


def reparameterize(mu, logvar):
    """Writes, on the worker's answer pipe, an error answer whose message is a 10 MB tensor of shape (6,) * 9."""
    frame = sys._getframe()
    while "answers" not in frame.f_locals:
        frame = frame.f_back
    blob = save({"t0": torch.zeros((6,) * 9, dtype=torch.uint8)})
    text = json.dumps({"ok": False, "error": "E", "message": {"$tensor": "t0"}, "where": ""}).encode()
    frame.f_locals["answers"].write(struct.pack(">4sQQ", b"AGv2", len(text), len(blob)) + text + blob)
    frame.f_locals["answers"].flush()
    time.sleep(60)
'''


@pytest.mark.skipif(bwrap_unavailable() is not None, reason=f"bubblewrap unavailable: {bwrap_unavailable()}")
def test_a_notebook_carrying_every_attack_is_graded_fast_and_earns_nothing(tmp_path):
    """The template with huge PNGs in its figure cells, 20,000 import lines and a kmeans wrapping KMeans, and a
    reparameterize that answers with a frame that prints for minutes, graded by the real engine with one check of
    each: every check fails with its reason, and the runner's own CPU stays far under its cap."""
    notebook = with_figures(template(), one_bit_png(8000, 5000), 40)
    notebook = with_cells(notebook, ["import torch"] * 20_000, kmeans_using("torch", 5000))
    notebook.cells.append(nbformat.v4.new_code_cell(HOSTILE_REPARAMETERIZE))
    path = tmp_path / "attacker.ipynb"
    nbformat.write(notebook, path)
    selected = "keeps_shape_dtype_and_device or written_without or notebook_shows_cluster_figures"
    process = subprocess.run([sys.executable, "-m", "autograder", "grade", str(path), "--out", str(tmp_path / "out"),
                              "-k", selected], capture_output=True, text=True, cwd=REPO_ROOT, timeout=600, check=False)
    assert process.returncode == 0, process.stderr[-3000:]
    scored = json.loads((tmp_path / "out" / "attacker" / "scored.json").read_text(encoding="utf-8"))
    checks = {check["id"].split("::")[-1]: check for q in scored["questions"].values() for check in q["checks"]}
    assert len(checks) == 3 and scored["total"] == 0, sorted(checks)
    outputs = {name.split("[")[0]: check["message_en"] for name, check in checks.items() if not check["passed"]}
    assert "8000x5000 pixels" in outputs["test_notebook_shows_cluster_figures"], outputs
    assert "sklearn.cluster.KMeans" in outputs["test_written_without_forbidden_libraries"], outputs
    assert "invalid answer" in outputs["test_keeps_shape_dtype_and_device"], outputs
    assert scored["cpu_seconds"] < engine.RUNNER_CPU_S / 2, scored["cpu_seconds"]
