"""The class insights page, ``grades/insights.html``: what the class got wrong, for the teaching staff.

``make grade`` writes it beside summary.png, from every student's result in the output folder (``scored.json``,
the class's record; a student with only Gradescope's ``results.json`` is read from that), so a regrade of a
few students rewrites it for the whole class. For each question: the score distribution; the mistakes the
checks named, counted across the class (each student once), most common first, with the students who made
it and one example message; the checks most often failed. Then the crashes grouped by their likely cause,
the students with 0 points and why, and every student's points. Every student name links to that student's
feedback page (``<student>/feedback.html``). One self-contained page (no external assets) in the language of
the feedback (``lang``): sortable tables and collapsible sections keep a class of 500 readable. It names
students: it is for the staff, never released to students.

What a failed check's message is (:func:`diagnose`): the runner records what stopped each check (``failure``:
the :mod:`autograder.failures` class, or ``GraderError``): a named mistake, a limit, a worker that died, the
grader itself, or the student's code raising, whose error type and likely cause are read from the fixed parts of
the English message ("X raised Error ... Likely cause: ...", :mod:`autograder.explain`). Results written before
the runner recorded it are read from the message alone. Messages that differ only in their numbers or quoted
names are one mistake.
"""
from __future__ import annotations

import html
import json
import re
import statistics
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable
from urllib.parse import quote

from autograder.i18n import Message, from_fields, t
from autograder.report import _html, _inline, _points

MISTAKE, CRASH, TEMPLATE, LIMIT, WORKER, GRADER = "mistake", "crash", "template", "limit", "worker", "grader"
SHOWN_STUDENTS = 12  # students listed in a cell before the rest fold into a <details>
# A number or a `quoted name` in a message: what varies between students who made the same mistake.
_VARYING = re.compile(r"(`[^`\n]{0,80}`|(?<![A-Za-z_0-9.])[-−]?[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?(?![A-Za-z_0-9]))")
_RAISED = re.compile(r"\braised ([A-Za-z_][\w.]{0,80})")
_CAUSE_EN, _CAUSE_JA = ". Likely cause: ", "。考えられる原因: "
_LIMIT = re.compile(r"CPU-seconds|did not finish in time|\bwaited [0-9]+ s while")
_WORKER = re.compile(r"worker process died|worker sent an invalid answer|grader could not send the request")
_GRADER = re.compile(r"^internal grader error")
_KINDS = {"CheckFailed": MISTAKE, "GradingFailure": MISTAKE, "CheckTimeout": LIMIT, "CheckBlocked": LIMIT,
          "WorkerCrashed": WORKER, "GraderError": GRADER}  # StudentError: read its error type from the message
KIND_LABELS = {
    TEMPLATE: t("テンプレートのまま（NotImplementedError）", "still the template (NotImplementedError)"),
    LIMIT: t("時間の上限（無限ループや遅すぎる処理）", "a time limit (an endless loop or slow code)"),
    WORKER: t("ワーカーの終了（メモリ不足、強制終了など）", "the worker died (out of memory, killed, ...)"),
    GRADER: t("採点プログラムの内部エラー（学生の誤りではありません）", "an internal grader error (not the student's)"),
}


@dataclass(frozen=True)
class Finding:
    """What one failed check says: its kind, a key shared by the students who made the same mistake, and the
    texts shown for it (``label``: the mistake or the likely cause; ``error``: the exception's type, for a crash)."""

    kind: str
    key: str
    label: Message
    error: str = ""


def _key(text: str) -> str:
    return _VARYING.sub("…", text.strip())


def _cause(message: Message) -> Message | None:
    """The "Likely cause" that :class:`autograder.failures.StudentError` appended, in both languages."""
    if _CAUSE_EN not in message.en:
        return None
    en = message.en.rsplit(_CAUSE_EN, 1)[1]
    ja = message.ja.rsplit(_CAUSE_JA, 1)[1] if _CAUSE_JA in message.ja else en
    return Message(ja, en)


def diagnose(check: dict[str, Any]) -> Finding:
    """The kind of a failed check's message and the key of its mistake (see the module's docstring)."""
    message = from_fields(check, "message")
    english = message.en.strip()
    kind = _KINDS.get(check.get("failure", ""))  # recorded by the runner; older results: read from the message
    if kind in (LIMIT, WORKER):
        return Finding(kind, f"{kind}|{_key(english)}", message)
    if kind == MISTAKE:
        return Finding(MISTAKE, _key(english), message)
    if kind == GRADER or _GRADER.search(english):
        return Finding(GRADER, GRADER, KIND_LABELS[GRADER])
    raised = _RAISED.search(english)
    if raised:
        error = raised.group(1)
        if error == "NotImplementedError":
            return Finding(TEMPLATE, TEMPLATE, KIND_LABELS[TEMPLATE], error)
        cause = _cause(message)
        if cause is None:
            return Finding(CRASH, f"{error}|", t("（既知の原因なし）", "(no known cause)"), error)
        return Finding(CRASH, f"{error}|{_key(cause.en)}", cause, error)
    if _LIMIT.search(english):
        return Finding(LIMIT, f"{LIMIT}|{_key(english)}", message)
    if _WORKER.search(english):
        return Finding(WORKER, f"{WORKER}|{_key(english)}", message)
    return Finding(MISTAKE, _key(english), message)


def _common_form(texts: list[str]) -> str:
    """The texts' shared form: each number or quoted name that differs between them becomes "…"."""
    split = [_VARYING.split(text) for text in texts]
    if len({len(parts) for parts in split}) != 1:
        return texts[0]
    merged = []
    for position, pieces in enumerate(zip(*split)):
        same = len(set(pieces)) == 1
        merged.append(pieces[0] if same or position % 2 == 0 else ("`…`" if pieces[0].startswith("`") else "…"))
    return "".join(merged)


@dataclass
class Group:
    """One mistake (or crash cause) and the students who made it: student id -> the first message of theirs."""

    finding: Finding
    students: dict[str, Message] = field(default_factory=dict)
    questions: Counter = field(default_factory=Counter)  # question id -> students
    pairs: set = field(default_factory=set)  # (student, question id)
    checks: Counter = field(default_factory=Counter)
    labels: list[Message] = field(default_factory=list)

    def add(self, student: str, qid: str, check: dict[str, Any], finding: Finding) -> None:
        if student not in self.students:
            self.students[student] = from_fields(check, "message")
            self.labels.append(finding.label)
        if (student, qid) not in self.pairs:
            self.pairs.add((student, qid))
            self.questions[qid] += 1
        self.checks[from_fields(check, "title")] += 1

    def label(self) -> Message:
        return Message(_common_form([m.ja for m in self.labels]), _common_form([m.en for m in self.labels]))


# -- reading the class --------------------------------------------------------------------------------------------
def from_gradescope(document: dict[str, Any], questions: dict[str, dict]) -> dict[str, Any]:
    """A Gradescope ``results.json`` (:func:`autograder.report.write_results_json`) as a scored result, for a
    student without ``scored.json``: each test is a check of the question in its tag; "both" texts are split into
    the Japanese and the English line."""
    scored = {qid: {"title": spec["title"], "title_en": spec.get("title_en", spec["title"]), "points": 0.0,
                    "max_points": float(spec["points"]), "checks": []} for qid, spec in questions.items()}
    for test in document.get("tests", []):
        qid = (test.get("tags") or [""])[0]
        if qid not in scored:
            continue
        name = str(test.get("name", "")).removeprefix(f"{qid}: ")
        output = str(test.get("output") or "")
        ja, _, en = output.rpartition("\n") if "\n" in output else (output, "", output)
        title_ja, _, title_en = name.partition(" / ") if " / " in name else (name, "", name)
        question = scored[qid]
        question["checks"].append({"question": qid, "title": title_en, "title_ja": title_ja,
                                   "passed": test.get("status") == "passed", "message": output,
                                   "message_ja": ja, "message_en": en, "points": float(test.get("score", 0)),
                                   "max_points": float(test.get("max_score", 0))})
        question["points"] += float(test.get("score", 0))
    return {"questions": scored, "total": float(document.get("score", 0)),
            "max_total": float(document.get("max_score", sum(q["max_points"] for q in scored.values()))),
            "runner_error": str(document.get("output") or "") if not document.get("tests") else None}


def load_class(out: Path, questions: dict[str, dict]) -> dict[str, dict]:
    """Every student in the output folder ``out``: their ``scored.json``, else their ``results.json``."""
    from autograder import gradesheet

    results = gradesheet.load(out)
    for path in sorted(out.glob("*/results.json")):
        if path.parent.name not in results:
            try:
                results[path.parent.name] = from_gradescope(json.loads(path.read_text(encoding="utf-8")), questions)
            except (OSError, ValueError, AttributeError, TypeError):
                continue
    return dict(sorted(results.items()))


# -- the analysis ---------------------------------------------------------------------------------------------------
@dataclass
class QuestionInsight:
    qid: str
    title: Message
    max_points: float
    scores: dict[str, float] = field(default_factory=dict)  # graded students only
    not_graded: list[str] = field(default_factory=list)
    mistakes: dict[str, Group] = field(default_factory=dict)
    failed_checks: dict[str, list[str]] = field(default_factory=dict)  # check title (en) -> students
    check_titles: dict[str, Message] = field(default_factory=dict)
    graded_checks: Counter = field(default_factory=Counter)


@dataclass
class ClassInsight:
    questions: dict[str, QuestionInsight]
    crashes: dict[str, Group]
    totals: dict[str, float]
    max_total: float
    zeros: dict[str, Message]
    failed_counts: dict[str, int]


def analyse(results: dict[str, dict], questions: dict[str, dict]) -> ClassInsight:
    """Count what the class got wrong, per question, from scored results (student id -> result)."""
    insights = {qid: QuestionInsight(qid, Message(spec["title"], spec.get("title_en") or spec["title"]),
                                     float(spec["points"])) for qid, spec in questions.items()}
    crashes: dict[str, Group] = {}
    failed_counts = {}
    for student, result in results.items():
        failed = 0
        for qid, question in result.get("questions", {}).items():
            insight = insights.get(qid)
            if insight is None:
                continue
            if not question.get("checks"):
                insight.not_graded.append(student)
                continue
            insight.scores[student] = float(question.get("points", 0))
            for check in question["checks"]:
                title = from_fields(check, "title")
                insight.check_titles.setdefault(title.en, title)
                insight.graded_checks[title.en] += 1
                if check.get("passed"):
                    continue
                failed += 1
                insight.failed_checks.setdefault(title.en, []).append(student)
                finding = diagnose(check)
                groups = insight.mistakes if finding.kind == MISTAKE else crashes
                groups.setdefault(finding.key, Group(finding)).add(student, qid, check, finding)
        failed_counts[student] = failed
    totals = {s: float(r.get("total", 0)) for s, r in results.items()}
    max_total = max((float(r.get("max_total", 0)) for r in results.values()), default=0.0) or \
        float(sum(spec["points"] for spec in questions.values()))
    zeros = {s: zero_reason(results[s]) for s, total in totals.items() if total == 0}
    return ClassInsight(insights, crashes, totals, max_total, zeros, failed_counts)


def zero_reason(result: dict[str, Any]) -> Message:
    """Why a student has 0 points: grading did not finish, not a notebook, the template unchanged, or the most
    common failure of their checks."""
    if result.get("runner_error"):
        return t("採点が最後まで実行されませんでした: {reason}", "grading did not run to the end: {reason}",
                 reason=from_fields(result, "runner_error"))
    if result.get("notebook_error"):
        return t("ノートブックとして読めません（JSON ではありません）: {reason}", "not a notebook (not JSON): {reason}",
                 reason=from_fields(result, "notebook_error"))
    checks = [c for q in result.get("questions", {}).values() for c in q.get("checks", [])]
    failed = [diagnose(c) for c in checks if not c.get("passed")]
    if not checks:
        return t("採点されていません（チェックが 1 つも実行されていません）", "not graded (no check ran)")
    template = sum(f.kind == TEMPLATE for f in failed)
    if template and 2 * template >= len(failed):
        return t("テンプレートのまま: 不合格の {failed} 件中 {count} 件が NotImplementedError",
                 "the template is unchanged: {count} of the {failed} failed checks raise NotImplementedError",
                 count=template, failed=len(failed))
    if not failed:
        return t("不合格のチェックはありません（配点 0）", "no check failed (the checks are worth 0)")
    finding, count = Counter(failed).most_common(1)[0]
    what = finding.label if finding.kind == MISTAKE else t("{error}（{label}）", "{error} ({label})",
                                                          error=finding.error or "—", label=finding.label)
    return t("{failed} 件のチェックが不合格。最も多いもの（{count} 件）: {what}",
             "{failed} checks failed; the most common ({count}): {what}", failed=len(failed), count=count, what=what)


# -- the page -------------------------------------------------------------------------------------------------------
CSS = """*{box-sizing:border-box}body{font-family:system-ui,sans-serif;max-width:72em;margin:1.5em auto;padding:0 1em;
color:#222;overflow-wrap:anywhere}table{border-collapse:collapse;width:100%;margin:.5em 0 1.2em}
td,th{border-bottom:1px solid #ddd;padding:.3em .45em;text-align:left;vertical-align:top}
th{background:#f4f4f4}th.sort{cursor:pointer}th.sort:after{content:" ⇅";color:#999}.num{text-align:right;
white-space:nowrap}.en{color:#666;font-size:.9em;font-weight:normal}h2{font-size:1.15em;margin:0}
h3{font-size:1em;margin:1em 0 .3em}summary{cursor:pointer}section>details>summary{padding:.4em 0;
border-bottom:2px solid #4c72b0}section{margin:1.2em 0}.staff{background:#fdecea;padding:.5em;
border-left:4px solid #c62828}.scroll{overflow-x:auto;max-width:100%}.bar{background:#4c72b0;height:.9em;
min-width:1px}.bars td{border:0;padding:.1em .4em}.bars td.track{width:70%}
.muted{color:#777;font-size:.9em}a{color:#1a4f9c}.qid{white-space:nowrap}
.ex{margin-top:.3em;padding-left:.6em;border-left:3px solid #ddd}
@media (max-width:40em){body{padding:0 .6em}table.stack,table.stack tbody,table.stack tr,table.stack td{display:block;
width:auto}table.stack tr.head{display:none}table.stack tr{border-bottom:1px solid #ddd;padding:.4em 0}
table.stack td{border:0;padding:.1em 0}table.stack td.num{text-align:left}
table.stack td[data-label]:before{content:attr(data-label) ": ";color:#777;font-size:.85em}.bars td.track{width:50%}}"""
# Click a column's heading to sort a table by it (numbers as numbers), again to reverse.
SCRIPT = """document.querySelectorAll('th.sort').forEach(function(th){th.addEventListener('click',function(){
var table=th.closest('table'),body=table.tBodies[0],i=Array.prototype.indexOf.call(th.parentNode.children,th),
up=th.dataset.up!=='1';th.dataset.up=up?'1':'0';var rows=Array.prototype.slice.call(body.rows).filter(function(r){
return !r.classList.contains('head')});rows.sort(function(a,b){var x=a.cells[i].dataset.v||a.cells[i].textContent,
y=b.cells[i].dataset.v||b.cells[i].textContent,p=parseFloat(x),q=parseFloat(y);var c=(!isNaN(p)&&!isNaN(q))?p-q:
x.localeCompare(y);return up?c:-c});rows.forEach(function(r){body.appendChild(r)})})});"""
BINS = ((0.0, 0.0, "0"), (0.0, 0.25, "< 25%"), (0.25, 0.5, "25–50%"), (0.5, 0.75, "50–75%"), (0.75, 1.0, "75–99%"),
        (1.0, 1.0, "100%"))


def _student_link(student: str) -> str:
    return f"<a href='{html.escape(quote(student))}/feedback.html'>{html.escape(student)}</a>"


def _students(students: Iterable[str]) -> str:
    """Links to the students' feedback; beyond :data:`SHOWN_STUDENTS`, the rest in a <details>."""
    names = list(students)
    shown = ", ".join(_student_link(s) for s in names[:SHOWN_STUDENTS])
    if len(names) <= SHOWN_STUDENTS:
        return shown
    rest = ", ".join(_student_link(s) for s in names[SHOWN_STUDENTS:])
    return f"{shown} <details><summary>+{len(names) - SHOWN_STUDENTS}</summary>{rest}</details>"


def _bin(fraction: float) -> int:
    if fraction <= 0:
        return 0
    if fraction >= 1 - 1e-9:
        return 5
    return 1 + min(3, int(fraction * 4))


def _bars(counts: list[tuple[str, int]], lang: str, total: int) -> str:
    rows = []
    for label, count in counts:
        width = 100 * count / total if total else 0
        rows.append(f"<tr><td class='num'>{html.escape(label)}</td><td class='track'><div class='bar' "
                    f"style='width:{width:.1f}%'></div></td><td class='num'>{count}</td></tr>")
    return f"<table class='bars'>{''.join(rows)}</table>"


Column = tuple  # (heading: Message, numeric: bool[, labelled on a phone: bool, default numeric])


def _head(columns: list[Column], lang: str) -> str:
    cells = "".join(f"<th class='sort{' num' if column[1] else ''}'>{_html(column[0], lang)}</th>"
                    for column in columns)
    return f"<tr class='head'>{cells}</tr>"


def _table(columns: list[Column], rows: list[str], lang: str, css: str = "stack") -> str:
    """A sortable table. A "stack" table becomes one block per row on a phone, where the headings are hidden: its
    labelled columns' cells then show their heading before their value (``data-label``)."""
    if css == "stack":
        labels = [html.escape(_inline(column[0], lang), quote=True) if (column[2] if len(column) > 2 else column[1])
                  else "" for column in columns]
        labelled = []
        for row in rows:  # every "<td" in a row is a cell: the texts inside are escaped
            head, *cells = row.split("<td")
            labelled.append(head + "".join(f"<td data-label='{label}'{cell}" if label else f"<td{cell}"
                                           for label, cell in zip(labels, cells)))
        rows = labelled
    return f"<table class='{css}'><thead>{_head(columns, lang)}</thead><tbody>{''.join(rows)}</tbody></table>"


COUNT = t("人数", "students")
STUDENTS = t("学生（フィードバックへのリンク）", "students (links to their feedback)")


def _groups_table(groups: list[Group], lang: str, crash: bool) -> str:
    """One row per mistake (or crash cause): how many students, what (with the checks that said it and, when the
    students' messages differ from the shared form, one example), and who."""
    rows = []
    for group in groups:
        first, message = next(iter(group.students.items()))
        label = group.label()
        what = _html(label, lang)
        if crash and group.finding.kind == CRASH:
            what = f"<code>{html.escape(group.finding.error)}</code>: {what}"
        if crash or message != label:
            example = _html(t("例（{student}）", "e.g. ({student})", student=first), lang)
            what += f"<div class='ex'>{example}: {_html(message, lang)}</div>"
        where = ", ".join(f"{html.escape(q)} ({n})" for q, n in group.questions.most_common()) if crash else ""
        checks = "; ".join(f"{html.escape(_inline(title, lang))} ({n})" for title, n in group.checks.most_common(3))
        rows.append(f"<tr><td class='num' data-v='{len(group.students)}'>{len(group.students)}</td><td>{what}"
                    f"<div class='muted'>{where + ' — ' if where else ''}{checks}</div></td>"
                    f"<td>{_students(group.students)}</td></tr>")
    heading = t("原因", "likely cause") if crash else t("誤り", "mistake")
    return _table([(COUNT, True), (heading, False), (STUDENTS, False, True)], rows, lang)


def _ordered(groups: dict[str, Group]) -> list[Group]:
    return sorted(groups.values(), key=lambda g: (-len(g.students), g.finding.key))


def _question_section(insight: QuestionInsight, lang: str) -> str:
    e = html.escape
    graded = len(insight.scores)
    mean = statistics.fmean(insight.scores.values()) if graded else 0.0
    counts = [0] * len(BINS)
    for score in insight.scores.values():
        counts[_bin(score / insight.max_points if insight.max_points else 1.0)] += 1
    bars = [(label, count) for (_, _, label), count in zip(BINS, counts)]
    if insight.not_graded:
        bars.append((_inline(t("未採点", "not graded"), lang), len(insight.not_graded)))
    summary = t("{title}（{qid}）: 平均 {mean} / {points}、{graded} 人採点", "{title} ({qid}): mean {mean} / {points}, "
                "{graded} graded", title=insight.title, qid=insight.qid, mean=_points(mean),
                points=_points(insight.max_points), graded=graded)
    parts = [f"<section id='q-{e(insight.qid)}'><details open><summary><h2 style='display:inline'>"
             f"{_html(summary, lang)}</h2></summary>",
             f"<h3>{_html(t('点数の分布（満点に対する割合）', 'score distribution (share of the points)'), lang)}</h3>",
             _bars(bars, lang, max(1, graded + len(insight.not_graded)))]
    mistakes = _ordered(insight.mistakes)
    parts.append(f"<h3>{_html(t('名前のついた誤り（多い順）', 'named mistakes (most common first)'), lang)}</h3>")
    parts.append(_groups_table(mistakes, lang, crash=False) if mistakes else
                 f"<p class='muted'>{_html(t('なし', 'none'), lang)}</p>")
    failed = sorted(insight.failed_checks.items(), key=lambda item: (-len(set(item[1])), item[0]))
    rows = []
    for title_en, students in failed:
        unique = list(dict.fromkeys(students))
        rate = 100 * len(unique) / max(1, graded)
        rows.append(f"<tr><td class='num' data-v='{len(unique)}'>{len(unique)} / {graded}</td>"
                    f"<td class='num' data-v='{rate:.1f}'>{rate:.0f}%</td>"
                    f"<td>{_html(insight.check_titles[title_en], lang)}</td><td>{_students(unique)}</td></tr>")
    parts.append(f"<h3>{_html(t('不合格の多いチェック', 'checks most often failed'), lang)}</h3>")
    parts.append(_table([(t("不合格", "failed"), True), (t("割合", "share"), True), (t("チェック", "check"), False),
                         (STUDENTS, False, True)], rows, lang) if rows else
                 f"<p class='muted'>{_html(t('なし', 'none'), lang)}</p>")
    parts.append("</details></section>")
    return "\n".join(parts)


def render_page(results: dict[str, dict], questions: dict[str, dict], lang: str = "both") -> str:
    """The insights page for these scored results (student id -> result), in ``lang``."""
    e = html.escape
    data = analyse(results, questions)
    n = len(results)
    title = t("クラスの傾向（教員・TA 用）", "Class insights (for the teaching staff)")
    parts = [f"<!doctype html><html lang='{'en' if lang == 'en' else 'ja'}'><head><meta charset='utf-8'>"
             "<meta name='viewport' content='width=device-width, initial-scale=1'>"
             f"<title>{e(_inline(title, lang))}</title><style>{CSS}</style></head><body>",
             f"<h1>{_html(title, lang)}</h1>",
             f"<p class='staff'>{_html(t('学生の名前を含むため、学生には公開しないでください。', 'It names students: do not release it to students.'), lang)}</p>"]
    mean = statistics.fmean(data.totals.values()) if n else 0.0
    overview = t("{count} 人の提出物。合計点の平均 {mean} / {maximum}、中央値 {median}",
                 "{count} submissions; total mean {mean} / {maximum}, median {median}", count=n, mean=_points(mean),
                 maximum=_points(data.max_total), median=_points(statistics.median(data.totals.values()) if n else 0))
    parts.append(f"<p>{_html(overview, lang)}</p>")
    # the questions at a glance
    rows = []
    for qid, insight in data.questions.items():
        graded = len(insight.scores)
        mean_q = statistics.fmean(insight.scores.values()) if graded else 0.0
        share = 100 * mean_q / insight.max_points if insight.max_points and graded else 0.0
        full = sum(score >= insight.max_points - 1e-9 for score in insight.scores.values())
        zero = sum(score <= 0 for score in insight.scores.values())
        top = _ordered(insight.mistakes)[:1]
        common = (f"{_html(top[0].label(), lang)} <span class='muted'>({len(top[0].students)})</span>" if top else "—")
        rows.append(f"<tr><td class='qid'><a href='#q-{e(qid)}'>{e(qid)}</a></td><td class='num' data-v='{share:.1f}'>"
                    f"{share:.0f}%</td><td class='num'>{full}</td><td class='num'>{zero}</td>"
                    f"<td class='num'>{len(insight.not_graded)}</td><td>{common}</td></tr>")
    parts.append(f"<h2>{_html(t('問題ごとの概要', 'the questions at a glance'), lang)}</h2>")
    parts.append(_table([(t("問題", "question"), False), (t("平均（割合）", "mean (share)"), True),
                         (t("満点", "full marks"), True), (t("0 点", "zero"), True), (t("未採点", "not graded"), True),
                         (t("最も多い誤り", "most common mistake"), False, True)], rows, lang))
    counts = Counter(min(int(10 * total / data.max_total), 9) if data.max_total else 0
                     for total in data.totals.values())
    step = data.max_total / 10 if data.max_total else 10
    bars = [(f"{_points(i * step)}–{_points((i + 1) * step)}", counts.get(i, 0)) for i in range(10)]
    parts.append(f"<h3>{_html(t('合計点の分布', 'distribution of the totals'), lang)}</h3>{_bars(bars, lang, max(1, n))}")
    for insight in data.questions.values():
        parts.append(_question_section(insight, lang))
    # crashes, zeros, everyone
    crashes = _ordered(data.crashes)
    parts.append(f"<section id='crashes'><details open><summary><h2 style='display:inline'>"
                 f"{_html(t('実行時エラーと打ち切り（考えられる原因ごと）', 'crashes and stops, by likely cause'), lang)}"
                 f"</h2></summary>")
    parts.append(_groups_table(crashes, lang, crash=True) if crashes else
                 f"<p class='muted'>{_html(t('なし', 'none'), lang)}</p>")
    parts.append("</details></section>")
    rows = [f"<tr><td>{_student_link(s)}</td><td>{_html(reason, lang)}</td></tr>" for s, reason in data.zeros.items()]
    parts.append(f"<section id='zeros'><details open><summary><h2 style='display:inline'>"
                 f"{_html(t('0 点の学生とその理由', 'students with 0 points, and why'), lang)} ({len(rows)})</h2></summary>")
    parts.append(_table([(t("学生", "student"), False), (t("理由", "why"), False)], rows, lang) if rows else
                 f"<p class='muted'>{_html(t('なし', 'none'), lang)}</p>")
    parts.append("</details></section>")
    qids = list(data.questions)
    rows = []
    for student, result in results.items():
        cells = []
        for qid in qids:
            question = result.get("questions", {}).get(qid) or {}
            graded = bool(question.get("checks"))
            value = float(question.get("points", 0)) if graded else -1
            cells.append(f"<td class='num' data-v='{value}'>{_points(value) if graded else '—'}</td>")
        rows.append(f"<tr><td>{_student_link(student)}</td><td class='num' data-v='{data.totals[student]}'>"
                    f"{_points(data.totals[student])}</td>{''.join(cells)}"
                    f"<td class='num'>{data.failed_counts.get(student, 0)}</td></tr>")
    columns = [(t("学生", "student"), False), (t("合計", "total"), True),
               *((Message(q, q), True) for q in qids), (t("不合格のチェック", "failed checks"), True)]
    parts.append(f"<section id='students'><details><summary><h2 style='display:inline'>"
                 f"{_html(t('全員の点数', 'every student'), lang)} ({n})</h2></summary><div class='scroll'>"
                 f"{_table(columns, rows, lang, css='wide')}</div></details></section>")
    parts.append(f"<script>{SCRIPT}</script></body></html>\n")
    return "\n".join(parts)


def write_insights(out: Path, questions: dict[str, dict], lang: str = "both") -> Path:
    """Write ``out/insights.html`` from every student's result in ``out`` (atomically); returns its path."""
    from autograder.gradesheet import write_atomic

    path = out / "insights.html"
    write_atomic(path, render_page(load_class(out, questions), questions, lang))
    return path
