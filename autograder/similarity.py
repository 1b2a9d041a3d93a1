"""Code similarity between students' solutions: an HTML report for instructors. It never changes a grade.

``python -m autograder similarity PATH... --out FILE.html`` reads each submission as JSON (nothing runs), takes
its six solution regions (the code cells whose nbgrader ``grade_id`` is in :data:`REGIONS`, or rather the last
cell that defines that function or class, since that is the definition grading keeps) and compares every pair
of students, per region and overall.

How a region becomes comparable, so that renaming, comments and formatting do not matter:

1. ``tokenize``: comments, blank lines, indentation and bare string statements (docstrings) are dropped; string
   and number literals are written in one canonical form (``'sum'`` = ``"sum"``, ``1e-3`` = ``0.001``).
2. Every name the region *binds* (parameters, assigned and loop variables, its own functions and classes,
   attributes assigned on ``self``) becomes one placeholder ``_``; names it only *uses* (``torch``, ``F``,
   builtins, keyword arguments such as ``dim=``) and attributes it only reads (``.cdist``, ``.shape``) are kept,
   since they say what the code does. The binders come from :mod:`ast`. A cell that does not parse is reported
   and compared on its tokens (those read before a tokenizer error), its binders read from the cell with each
   syntax error's line blanked, or, if it still does not parse, taken as every name that neither the template
   notebook imports or defines at top level nor is a builtin. One placeholder for all names, rather than
   numbering them in order of appearance, keeps a reordered or inserted variable from renaming every later one.
3. k-grams of :data:`K` tokens are hashed (blake2b, stable across runs) and winnowed (Schleimer, Wilkerson and
   Aiken 2003, the algorithm of MOSS): the smallest hash of each window of :data:`W` consecutive k-grams is kept,
   so any common run of K + W - 1 = 10 tokens is found, with about 2/(W + 1) of the hashes to store and intersect.
   K = 7 was measured on ``tests/alternatives/`` (23 other correct answers to the six cells): against the
   reference they score 0.06-0.59 per region, median 0.18 (K = 5: up to 0.64; K = 9: up to 0.50, but each
   edit of a copy then hides more), while a renamed, re-commented and re-indented copy scores 1.0.
4. Every k-gram of the same region of the released template (``assignment/autoencoders.ipynb``: signature,
   ``raise NotImplementedError()``) is removed, so two untouched stubs share nothing.

Score: the Jaccard index |A ∩ B| / |A ∪ B| of two students' fingerprints, per region where both wrote code, and
overall over those regions together (a long region weighs more than a three-line one). Each student's
fingerprints form one set, so a pair costs one set intersection: 500 students (124,750 pairs) take about 5 s on
this project's 2-core machine, 19 s end to end with reading 500 notebooks.

Cost: linear in a notebook's size. A region is read up to :data:`MAX_REGION_CHARS` (the cell size beyond which
grading's extraction does not read a cell at all), cut at a line break, so that a huge cell costs a bounded time.

Why not copydetect: it fingerprints files, and its filter replaces every name, ``torch.cdist`` and ``dim=``
included, by the same letter; in this lab, where solutions are mostly library calls, that makes independent
answers look alike. It would also need one file per student and region, and its template removal works on whole
boilerplate files, not per region. The few functions below do what this notebook needs.
"""
from __future__ import annotations

import argparse
import ast
import builtins
import hashlib
import html
import io
import json
import keyword
import re
import statistics
import sys
import tokenize
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from autograder import config, engine
from autograder.extract import MAX_CELL_CHARS

#: grade_id of each solution cell -> its short label in tables.
REGIONS: dict[str, str] = {"reparameterize": "repar", "vae_loss": "loss", "kmeans": "kmeans",
                           "plot_latent_clusters": "plot", "ConvAutoEncoder": "convAE", "ConvVAE": "convVAE"}
K = 7  # tokens per k-gram
W = 4  # k-grams per winnowing window
TEMPLATE = config.PACKAGE_DIR.parent / "assignment" / "autoencoders.ipynb"
REPAIRS = 10  # error lines blanked to read the binders of a cell that does not parse
SHOWN_REGION_SCORE = 0.5  # a pair's details show the regions scoring at least this, and always its best one
MAX_REGION_CHARS = MAX_CELL_CHARS  # of a region's source read; about 0.7 s to fingerprint

_SKIPPED = {tokenize.COMMENT, tokenize.NL, tokenize.INDENT, tokenize.DEDENT, tokenize.ENCODING, tokenize.ENDMARKER}
_ASSIGN_OPS = {"=", ":=", "+=", "-=", "*=", "/=", "//=", "%=", "**=", "@=", "&=", "|=", "^=", ">>=", "<<="}


class InputError(ValueError):
    """A template or a PATH that cannot be used; the message is one line."""


@dataclass(frozen=True)
class Template:
    """What every notebook shares: the stubs' k-grams per region, and the names the notebook provides."""

    grams: dict[str, frozenset[int]]
    known: frozenset[str]


@dataclass
class Region:
    """One solution cell: its code as submitted and its fingerprints (hash -> the lines of its k-grams' tokens)."""

    source: str
    fingerprints: dict[int, set[int]]
    parses: bool
    hashes: frozenset[int] = field(init=False)

    def __post_init__(self) -> None:
        self.hashes = frozenset(self.fingerprints)


@dataclass
class Student:
    """A submission's regions that hold code of the student's own; ``problem`` says why it could not be read."""

    student_id: str
    regions: dict[str, Region] = field(default_factory=dict)
    problem: str | None = None


@dataclass(frozen=True)
class Pair:
    """Two students' similarity: overall and per region (None where one of them wrote nothing)."""

    a: Student
    b: Student
    overall: float
    shared: int
    by_region: dict[str, float | None]


def _hash(tokens: list[str]) -> int:
    return int.from_bytes(hashlib.blake2b("\x1f".join(tokens).encode(), digest_size=8).digest(), "big")


def _tokens(source: str) -> list[tokenize.TokenInfo]:
    """The cell's tokens; for a cell that does not tokenize, the tokens read before the error."""
    tokens: list[tokenize.TokenInfo] = []
    try:
        for token in tokenize.generate_tokens(io.StringIO(source).readline):
            tokens.append(token)
    except (tokenize.TokenError, SyntaxError):
        pass
    return [t for t in tokens if t.type not in _SKIPPED]


def _binders(source: str) -> tuple[set[str], set[str], set[tuple[int, int]], bool] | None:
    """The names and ``self.`` attributes that ``source`` binds, from its ast, the (line, column) of each keyword
    argument's name (``generator=`` stays even where a local is also called ``generator``), and whether the
    cell parsed as it is.

    A cell that does not parse is parsed again with the line of each syntax error blanked (up to
    :data:`REPAIRS` lines), so that a typo costs only its own line's binders; None if that fails too."""
    lines = source.split("\n")
    columns: dict[int, dict[int, int] | None] = {}  # line number -> _char_columns of that line
    for attempt in range(REPAIRS + 1):
        try:
            tree = ast.parse("\n".join(lines))
            break
        except SyntaxError as error:
            if attempt == REPAIRS or not error.lineno or not 0 < error.lineno <= len(lines) \
                    or not lines[error.lineno - 1].strip():
                return None
            lines[error.lineno - 1] = ""
        except (ValueError, RecursionError, MemoryError):  # null bytes; nesting deeper than the parser's limit
            return None
    names: set[str] = set()
    attributes: set[str] = set()
    keywords: set[tuple[int, int]] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg is not None:  # ast counts columns in UTF-8 bytes
            if node.lineno not in columns:
                columns[node.lineno] = _char_columns(lines[node.lineno - 1])
            line_columns = columns[node.lineno]
            keywords.add((node.lineno, node.col_offset if line_columns is None else line_columns[node.col_offset]))
        elif isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
            names.add(node.id)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Attribute) and not isinstance(node.ctx, ast.Load):
            attributes.add(node.attr)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            names.add(node.name)
    return names, attributes, keywords, attempt == 0


def _char_columns(line: str) -> dict[int, int] | None:
    """Byte offset in UTF-8 -> character offset, for each character of ``line``; None for an ASCII line, where the
    two are equal. Built once per line: converting each keyword's column on its own cost the line's length each
    time, quadratic for a line of many keyword arguments (100,000 on one line with an "é": 58 s)."""
    if line.isascii():
        return None
    columns, offset = {}, 0
    for index, character in enumerate(line):
        columns[offset] = index
        offset += len(character.encode())
    return columns


def _canonical(literal: str) -> str:
    try:
        return repr(ast.literal_eval(literal))
    except (ValueError, SyntaxError, MemoryError, RecursionError):  # f-strings, huge or odd literals
        return literal


def normalise(source: str, known: frozenset[str]) -> tuple[list[str], list[int], bool]:
    """The region's normalised tokens, the source line of each, and whether the cell parses.

    ``known`` (the template's top-level names and the builtins) is used only for a cell that does not parse even
    with its error lines blanked: every other name in it is taken as bound."""
    binders = _binders(source)
    tokens = _tokens(source)
    if binders is None:
        names = {t.string for t in tokens if t.type == tokenize.NAME} - known
        attributes = {t.string for i, t in enumerate(tokens[1:-1], 1)
                      if tokens[i - 1].string == "." and tokens[i + 1].string in _ASSIGN_OPS}
        keywords: set[tuple[int, int]] = set()
    else:
        names, attributes, keywords, _ = binders
    out: list[str] = []
    lines: list[int] = []
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token.type == tokenize.STRING and (not out or out[-1] == ";"):  # a bare string statement?
            end = i
            while end < len(tokens) and tokens[end].type == tokenize.STRING:
                end += 1
            if end == len(tokens) or tokens[end].type == tokenize.NEWLINE or tokens[end].string == ";":
                i = end
                continue
        text = token.string
        if token.type == tokenize.NEWLINE or text == ";":
            text = ";"
            if not out or out[-1] == ";":
                i += 1
                continue
        elif token.type == tokenize.NAME and not keyword.iskeyword(text):
            after_dot = i > 0 and tokens[i - 1].string == "."
            dunder = text.startswith("__") and text.endswith("__")
            bound = text in names and not dunder and token.start not in keywords
            if (text in attributes) if after_dot else bound:
                text = "_"
        elif token.type in (tokenize.NUMBER, tokenize.STRING):
            text = _canonical(text)
        out.append(text)
        lines.append(token.start[0])
        i += 1
    return out, lines, binders is not None and binders[3]


def _kgrams(tokens: list[str], region: str) -> list[int]:
    """The hash of each k-gram, salted with the region so that the regions' fingerprints never collide."""
    return [_hash([region, *tokens[i:i + K]]) for i in range(max(1, len(tokens) - K + 1))] if tokens else []


def _winnow(hashes: list[int]) -> list[int]:
    """Indices of the k-grams robust winnowing selects: each window's smallest hash, the rightmost on a tie."""
    selected = set()
    for start in range(max(1, len(hashes) - W + 1) if hashes else 0):
        window = hashes[start:start + W]
        selected.add(start + len(window) - 1 - window[::-1].index(min(window)))
    return sorted(selected)


def _plain(source: str) -> str:
    """The source with IPython magics and shell escapes blanked, as :mod:`autograder.extract` does."""
    return "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in source.split("\n"))


def fingerprint(source: str, template: Template, region: str) -> Region:
    """The region's winnowed fingerprints, less every k-gram of the released stub of that region."""
    tokens, lines, parses = normalise(_plain(source), template.known)
    hashes = _kgrams(tokens, region)
    stub = template.grams.get(region, frozenset())
    fingerprints: dict[int, set[int]] = {}
    for i in _winnow(hashes):
        if hashes[i] not in stub:
            fingerprints.setdefault(hashes[i], set()).update(lines[i:i + K])
    return Region(source, fingerprints, parses)


def _cell_source(cell: dict) -> str:
    """The cell's source with one line ending, so that ast, tokenize and the report number its lines alike."""
    source = cell.get("source", "")
    source = "".join(map(str, source)) if isinstance(source, list) else str(source)
    return source.replace("\r\n", "\n").replace("\r", "\n")


def _code_cells(notebook: object) -> list[dict]:
    cells = notebook.get("cells") if isinstance(notebook, dict) else None
    return [c for c in cells if isinstance(c, dict) and c.get("cell_type") == "code"] if isinstance(cells, list) else []


def region_sources(notebook: dict) -> dict[str, str]:
    """Region -> the source of the last code cell that defines its name at top level: the definition that
    grading keeps, usually the cell with that grade_id, but also an answer written in another cell below the
    stub or pasted into a cell without metadata. Without any, the cell(s) with that grade_id (e.g. emptied)."""
    cells = [(_cell_source(c), _grade_id(c)) for c in _code_cells(notebook)]
    sources: dict[str, str] = {}
    for region in REGIONS:
        defines = re.compile(rf"^(?:async\s+def|def|class)\s+{region}\b", re.MULTILINE).search
        defining = [source for source, _ in cells if defines(source)]
        tagged = [source for source, grade_id in cells if grade_id == region]
        if defining or tagged:
            sources[region] = _clipped(defining[-1] if defining else "\n".join(tagged))
    return sources


def _clipped(source: str) -> str:
    """The source up to :data:`MAX_REGION_CHARS`, cut after the last whole line that fits."""
    if len(source) <= MAX_REGION_CHARS:
        return source
    return source[:source.rfind("\n", 0, MAX_REGION_CHARS) + 1]


def _grade_id(cell: dict) -> object:
    metadata = cell.get("metadata")
    nbgrader = metadata.get("nbgrader") if isinstance(metadata, dict) else None
    return nbgrader.get("grade_id") if isinstance(nbgrader, dict) else None


def load_template(path: Path = TEMPLATE) -> Template:
    """The released notebook's stubs (every k-gram of each region) and its top-level imported/defined names."""
    try:
        notebook = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise InputError(f"cannot read the template notebook {path}: {error}") from None
    stubs = region_sources(notebook)
    missing = [region for region in REGIONS if region not in stubs]
    if missing:
        raise InputError(f"the template {path} has no solution cell for {', '.join(missing)}")
    known = set(dir(builtins))
    for cell in _code_cells(notebook):
        try:
            tree = ast.parse(_plain(_cell_source(cell)))
        except (SyntaxError, ValueError):
            continue
        for node in tree.body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                known.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                known.add(node.name)
    return Template({region: frozenset(_kgrams(normalise(_plain(source), frozenset(known))[0], region))
                     for region, source in stubs.items()}, frozenset(known))


def student_from_notebook(student_id: str, notebook: dict, template: Template) -> Student:
    """The student's regions that keep fingerprints once the stub is removed (untouched ones are left out)."""
    student = Student(student_id)
    for region, source in region_sources(notebook).items():
        fingerprinted = fingerprint(source, template, region)
        if fingerprinted.fingerprints or not fingerprinted.parses:
            student.regions[region] = fingerprinted
    return student


def load_students(submissions: list[engine.Submission], template: Template) -> list[Student]:
    """Read and fingerprint each submission; one that is not a JSON notebook is kept with its ``problem``."""
    students = []
    for submission in tqdm(submissions, desc="reading", unit="notebook", file=sys.stderr,
                           disable=len(submissions) < 50):
        try:
            notebook = json.loads(engine.read_notebook(submission).decode("utf-8"))
        except (OSError, ValueError, RecursionError) as error:
            students.append(Student(submission.student_id, problem=f"not a readable notebook ({error})"))
            continue
        students.append(student_from_notebook(submission.student_id, notebook, template))
    return students


def compare(a: Student, b: Student) -> Pair | None:
    """Per-region and overall Jaccard scores of two students; None when they have no region in common."""
    by_region: dict[str, float | None] = {}
    shared = union = 0
    for region in REGIONS:
        x, y = a.regions.get(region), b.regions.get(region)
        if x is None or y is None or not x.hashes or not y.hashes:
            by_region[region] = None
            continue
        common = len(x.hashes & y.hashes)
        by_region[region] = common / (len(x.hashes) + len(y.hashes) - common)
        shared += common
        union += len(x.hashes) + len(y.hashes) - common
    return Pair(a, b, shared / union, shared, by_region) if union else None


def rank_pairs(students: list[Student], top: int, threshold: float) -> tuple[list[Pair], list[float]]:
    """The ``top`` most similar pairs scoring at least ``threshold`` (by overall score, then shared
    fingerprints), and the overall score of every pair that has a region in common.

    Each student's fingerprints form one set (hashes are salted per region), so a pair costs one set
    intersection; the union counts only the regions both wrote, from per-region sizes (``mask``: one bit each)."""
    sets, masks, sizes = [], [], []
    for student in students:
        own = {bit: student.regions[r].hashes for bit, r in enumerate(REGIONS)
               if r in student.regions and student.regions[r].hashes}
        sets.append(frozenset().union(*own.values()))
        masks.append(sum(1 << bit for bit in own))
        sizes.append({bit: len(hashes) for bit, hashes in own.items()})

    def size(i: int, mask: int) -> int:
        return len(sets[i]) if mask == masks[i] else sum(n for bit, n in sizes[i].items() if mask >> bit & 1)

    def order(candidate: tuple[float, int, int, int]) -> tuple:
        score, shared, i, j = candidate
        return -score, -shared, students[i].student_id, students[j].student_id

    scores: list[float] = []
    candidates: list[tuple[float, int, int, int]] = []  # trimmed to the top now and then: memory stays small
    n = len(students)
    with tqdm(total=n * (n - 1) // 2, desc="comparing", unit="pair", file=sys.stderr, disable=n < 50) as progress:
        for i in range(n):
            mine, my_mask = sets[i], masks[i]
            for j in range(i + 1, n):
                both = my_mask & masks[j]
                if not both:
                    continue
                shared = len(mine & sets[j])
                score = shared / (size(i, both) + size(j, both) - shared)
                scores.append(score)
                if score >= threshold:
                    candidates.append((score, shared, i, j))
            if len(candidates) > 10 * top + 10_000:
                candidates = sorted(candidates, key=order)[:top]
            progress.update(n - 1 - i)
    candidates.sort(key=order)
    pairs = [compare(students[i], students[j]) for _, _, i, j in candidates[:top]]
    return [p for p in pairs if p is not None], scores


def _fmt(score: float | None) -> str:
    return "—" if score is None else f"{score:.2f}"


def text_table(pairs: list[Pair]) -> str:
    """The pairs as a fixed-width table for the terminal."""
    header = ["#", "student_a", "student_b", "overall", "shared", *REGIONS.values()]
    rows = [[str(rank), p.a.student_id, p.b.student_id, f"{p.overall:.2f}", str(p.shared),
             *(_fmt(p.by_region[r]).replace("—", "-") for r in REGIONS)] for rank, p in enumerate(pairs, 1)]
    widths = [max(len(row[c]) for row in [header, *rows]) for c in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) if c in (1, 2) else cell.rjust(w)
                               for c, (cell, w) in enumerate(zip(row, widths))) for row in [header, *rows])


_CSS = """body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}table{border-collapse:collapse}
td,th{border:1px solid #ccc;padding:.25em .5em;text-align:right}td.id{text-align:left}
.headline{max-width:60em;background:#fff8e1;border-left:4px solid #f0a500;padding:.6em 1em}
details{margin:.5em 0;border:1px solid #ddd;padding:.3em .6em}summary{cursor:pointer;font-weight:600}
.side{display:grid;grid-template-columns:1fr 1fr;gap:1em}pre{background:#f7f7f7;padding:.5em;overflow-x:auto;
font-size:12px;margin:0}pre span.hit{background:#ffe08a}.ln{color:#999}
.note{color:#a33}"""


def _cell_colour(score: float | None) -> str:
    return "" if score is None else f' style="background:rgba(230,80,40,{score * 0.6:.2f})"'


def _code(region: Region, hits: set[int]) -> str:
    """The region's code, escaped, with line numbers; lines covered by a shared fingerprint are highlighted."""
    covered = set().union(*(region.fingerprints[h] for h in hits))
    lines = []
    for number, line in enumerate(region.source.split("\n"), 1):
        text = f'<span class="ln">{number:3d}</span> {html.escape(line)}'
        lines.append(f'<span class="hit">{text}</span>' if number in covered else text)
    return "<pre>" + "\n".join(lines) + "</pre>"


def _pair_details(rank: int, pair: Pair) -> str:
    scored = sorted(((s, r) for r, s in pair.by_region.items() if s is not None), key=lambda sr: -sr[0])
    shown = [r for s, r in scored if s >= SHOWN_REGION_SCORE] or [scored[0][1]]
    a, b = html.escape(pair.a.student_id), html.escape(pair.b.student_id)
    parts = [f'<details id="pair-{rank}"{" open" if rank == 1 else ""}><summary>#{rank} {a} ↔ {b}: overall '
             f'{pair.overall:.2f} ({pair.shared} shared fingerprints)</summary>']
    for region in shown:
        x, y = pair.a.regions[region], pair.b.regions[region]
        common = x.hashes & y.hashes
        notes = [f"{html.escape(s.student_id)}'s cell does not parse (compared on its tokens)"
                 for s, r in ((pair.a, x), (pair.b, y)) if not r.parses]
        note = f' <span class="note">{"; ".join(notes)}</span>' if notes else ""
        parts.append(f"<h3>{html.escape(region)}: {_fmt(pair.by_region[region])}{note}</h3>"
                     f'<div class="side"><div><h4>{a}</h4>{_code(x, common)}</div>'
                     f"<div><h4>{b}</h4>{_code(y, common)}</div></div>")
    return "".join(parts) + "</details>"


def render_html(students: list[Student], pairs: list[Pair], scores: list[float], threshold: float) -> str:
    """The self-contained report: headline, class figures, the table of pairs and each pair's code side by side."""
    n = len(students)
    figures = (f"{n} submissions, {n * (n - 1) // 2:,} pairs, {len(scores):,} with a solution in common"
               + (f"; overall score median {statistics.median(scores):.2f}, 95th percentile "
                  f"{statistics.quantiles(scores, n=20)[-1] if len(scores) > 1 else scores[0]:.2f}" if scores else "")
               + f". Shown: the {len(pairs)} most similar pairs"
               + (f" scoring ≥ {threshold:.2f}" if threshold else ""))
    head = "".join(f"<th>{html.escape(r)}</th>" for r in REGIONS)
    rows = "".join(
        f'<tr><td><a href="#pair-{rank}">{rank}</a></td><td class="id">{html.escape(p.a.student_id)}</td>'
        f'<td class="id">{html.escape(p.b.student_id)}</td><td{_cell_colour(p.overall)}>{p.overall:.2f}</td>'
        f"<td>{p.shared}</td>" + "".join(f"<td{_cell_colour(p.by_region[r])}>{_fmt(p.by_region[r])}</td>"
                                         for r in REGIONS) + "</tr>" for rank, p in enumerate(pairs, 1))
    problems = [f"<li>{html.escape(s.student_id)}: {html.escape(s.problem)}</li>" for s in students if s.problem]
    problems += [f"<li>{html.escape(s.student_id)}: the <code>{html.escape(r)}</code> cell does not parse "
                 "(compared on its tokens)</li>" for s in students for r, region in s.regions.items()
                 if not region.parses]
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Code similarity</title>'
        f"<style>{_CSS}</style></head><body><h1>Code similarity between submissions</h1>"
        '<p class="headline">The score is the share of code fingerprints two students have in common (Jaccard, '
        "0 to 1), after removing the released template and ignoring comments, docstrings, formatting and the "
        "names of variables: 1 means the same code up to renaming and layout. It is <b>evidence to read, not "
        "proof</b>: short functions written the standard way can coincide, so read the code below (shared "
        "lines highlighted) before drawing any conclusion. This report changes no grade.</p>"
        f"<p>{figures}. Per region, — means that one of the two wrote no code there. A pair's details show its "
        f"regions scoring ≥ {SHOWN_REGION_SCORE}, or its best one.</p>"
        f"<table><tr><th>#</th><th>student A</th><th>student B</th><th>overall</th><th>shared</th>{head}</tr>"
        f"{rows}</table><h2>Pairs</h2>{''.join(_pair_details(rank, p) for rank, p in enumerate(pairs, 1))}"
        + (f"<h2>Not compared in full</h2><ul>{''.join(problems)}</ul>" if problems else "")
        + "</body></html>\n")


def _fraction(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{text} is not between 0 and 1")
    return value


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive integer")
    return value


def main(argv: list[str] | None = None) -> int:
    """``python -m autograder similarity``: write the HTML report and print the top pairs."""
    parser = argparse.ArgumentParser(
        prog="python -m autograder similarity",
        description="Compare the students' solution cells (reparameterize, vae_loss, kmeans, plot_latent_clusters, "
                    "ConvAutoEncoder, ConvVAE) pairwise and write an HTML report of the most similar pairs, with "
                    "their code side by side. Comments, docstrings, formatting, variable names and the released "
                    "template are ignored. Notebooks are read, never run; no grade changes. A high score is "
                    "evidence to read, not proof.")
    parser.add_argument("paths", nargs="+", type=Path, metavar="PATH",
                        help="an nbgrader submitted/ folder, a student's folder, a folder of notebooks, or notebooks "
                             "(add solutions/autoencoders.ipynb to see who is close to the reference)")
    parser.add_argument("--out", type=Path, default=Path("similarity.html"), metavar="FILE.html",
                        help="the report to write (default: similarity.html)")
    parser.add_argument("--top", type=_positive, default=20, metavar="N", help="pairs to report (default: 20)")
    parser.add_argument("--threshold", type=_fraction, default=0.0, metavar="X",
                        help="report only pairs whose overall score is at least X, in [0, 1] (default: 0)")
    parser.add_argument("--template", type=Path, default=TEMPLATE, metavar="NOTEBOOK",
                        help="the released notebook whose stubs are ignored (default: assignment/autoencoders.ipynb)")
    args = parser.parse_args(argv)
    try:
        submissions = engine.discover(args.paths)
        template = load_template(args.template)
    except (engine.BadInput, InputError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    students = load_students(submissions, template)
    pairs, scores = rank_pairs(students, args.top, args.threshold)
    try:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(render_html(students, pairs, scores, args.threshold), encoding="utf-8")
    except OSError as error:
        print(f"error: cannot write {args.out}: {error.strerror or error}", file=sys.stderr)
        return 2
    if pairs:
        print(text_table(pairs))
    else:
        print("no pair of submissions has a solution region in common"
              + (f" scoring ≥ {args.threshold}" if args.threshold else ""))
    for student in students:
        if student.problem:
            print(f"warning: {student.student_id}: {student.problem}", file=sys.stderr)
    print(f"wrote {args.out} ({len(students)} submissions, {len(scores):,} pairs compared)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
