"""Write what instructors and students read: results.json, feedback.html, the class summary (grades.csv: gradesheet.py).

What students read (results.json, feedback.html) comes in ``lang``: "ja", "en", or "both" (the Japanese with
the English beneath it; on one line in results.json's test names). See :mod:`autograder.i18n`.
"""
from __future__ import annotations

import html
import json
import statistics
from pathlib import Path
from typing import Any

from autograder.i18n import Message, from_fields, render, t

# Wide screens (and print): one table row per check. Narrow screens (a phone, 390 px): each check is a block, its
# title and points on top, its details and the question's pictures below at full width; nothing is wider than the
# screen (long words wrap anywhere, pictures scale down).
CSS = """*{box-sizing:border-box}body{font-family:system-ui,sans-serif;max-width:60em;margin:2em auto;padding:0 1em;
color:#222;overflow-wrap:anywhere}
table{border-collapse:collapse;width:100%;margin-bottom:1.5em}td,th{border-bottom:1px solid #ddd;padding:.35em .5em;
text-align:left;vertical-align:top}.pass{color:#1a7f37}.fail{color:#c62828}.pts{white-space:nowrap;text-align:right}
h2{font-size:1.1em;margin-top:1.6em}.note{background:#fff8e1;padding:.6em;border-left:4px solid #f9a825}
.en{color:#666;font-size:.9em;font-weight:normal}.earlier{color:#666;font-size:.9em}
tr.failed td.details{border-left:3px solid #c62828}
.pictures{display:flex;flex-wrap:wrap;gap:1em;margin-bottom:1.5em}figure{margin:0;max-width:100%}
figcaption{font-size:.85em;max-width:32em}img{max-width:100%;height:auto}
@media (max-width:40em){body{margin:1em auto;padding:0 .75em}
table.checks,table.checks tbody,table.checks tr,table.checks td{display:block;width:auto}
table.checks tr.head{display:none}table.checks tr{display:grid;grid-template-columns:auto 1fr;column-gap:.4em;
padding:.5em 0;border-bottom:1px solid #ddd}table.checks td{border:0;padding:.1em 0}
table.checks td.title{font-weight:bold}table.checks tr.failed td.details{padding-left:.5em}
table.checks td.pts,table.checks td.details{grid-column:1/-1;text-align:left}
table.checks td.details:empty{display:none}}
@media print{body{max-width:none;margin:0}tr,figure,.note{break-inside:avoid}}"""
PICTURE_PREFIX = "data:image/png;base64,"
AUTOGRADED_PART = t("自動採点の部分です。考察は教員・TA が採点します。",
                    "The autograded part; the written answers are graded by the teaching staff.")
# Why a question has no checks on the page, in its own words (never "see the notes above" without notes):
NOT_IN_THIS_RUN = t("まだ採点されていません。今回の採点（-k）はこの問題のチェックを選んでいません（点数はまだなく、0 点では"
                    "ありません）",
                    "not graded yet: this run (-k) selected none of this question's checks (no score yet, which is "
                    "not a 0)")
NONE_RAN = t("採点されていません。この問題のチェックは 1 つも実行されませんでした（点数はまだなく、0 点ではありません）",
             "not graded: none of this question's checks ran (no score yet, which is not a 0)")
NOTHING_THIS_RUN = t("今回の採点では、この提出物のチェックを 1 つも採点していません",
                     "This run graded none of this submission's checks")
COLUMNS = (t("確認項目", "check"), t("点数", "points"), t("詳細", "details"))
COLUMN_STYLES = ("", " class='pts'", "")


def _points(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _inline(message: Message, lang: str) -> str:
    """``message`` on one line: for "both", the Japanese, " / ", then the English."""
    if lang == "both" and message.ja != message.en:
        return f"{message.ja} / {message.en}"
    return render(message, lang)


def _html(message: Message, lang: str, tail: str = "") -> str:
    """``message`` as HTML, with ``tail`` (HTML) after its first line; for "both", the English on a grey line
    beneath the Japanese."""
    if lang == "both" and message.ja != message.en:
        return f"{html.escape(message.ja)}{tail}<br><span class='en'>{html.escape(message.en)}</span>"
    return f"{html.escape(render(message, lang))}{tail}"


def notes(result: dict[str, Any]) -> list[Message]:
    """Problems with the notebook as a whole (unreadable file, cells skipped or failing, grader failure)."""
    lines = [from_fields(result, key) for key in ("runner_error", "notebook_error") if result.get(key)]
    for label, reason in result.get("skipped_cells", []):
        lines.append(t("セル {label} は構文解析できないため読み飛ばしました（{reason}）。このセルの定義は使われて"
                       "いません",
                       "cell {label} was skipped because it does not parse ({reason}); its definitions are missing",
                       label=label, reason=reason))
    for label, reason in result.get("failed_cells", []):
        lines.append(t("セル {label} の定義を読み込む際に例外が発生しました（{reason}）",
                       "cell {label} raised while its definitions were loaded ({reason})", label=label, reason=reason))
    return lines


def coverage(result: dict[str, Any]) -> tuple[list[str], list[str], list[str]]:
    """The question ids that this result's run graded, those that keep a score from an earlier run, and those
    not graded at all. A run's own questions carry its ``graded_at`` (:func:`autograder.gradesheet.merge`);
    a result without one (not merged into an output folder) counts every question with checks as graded now."""
    when = result.get("graded_at")
    now, earlier, missing = [], [], []
    for qid, question in result["questions"].items():
        if not question["checks"]:
            missing.append(qid)
        elif when and question.get("graded_at") != when:
            earlier.append(qid)
        else:
            now.append(qid)
    return now, earlier, missing


def _listing(messages: list[Message]) -> Message:
    return Message("、".join(m.ja for m in messages), ", ".join(m.en for m in messages))


def coverage_notes(result: dict[str, Any]) -> list[Message]:
    """What this run graded, when it did not grade every question: which checks it graded, which questions keep
    their earlier scores and which are not graded yet."""
    now, earlier, missing = coverage(result)
    if not earlier and not missing:
        return []
    lines = []
    if not result.get("runner_error"):
        graded = [t("{question}（{count} 件のチェック）", "{question} ({count} checks)", question=qid,
                    count=len(result["questions"][qid]["checks"])) for qid in now]
        lines.append(t("今回の採点は一部のチェックだけです（-k）。採点した問題: {graded}",
                       "This run graded some checks only (-k): {graded}", graded=_listing(graded))
                     if graded else NOTHING_THIS_RUN)
    if earlier:
        lines.append(t("以前の採点の点数のままの問題: {questions}", "These questions keep their earlier scores: {questions}",
                       questions=", ".join(earlier)))
    if missing:
        lines.append(t("まだ採点されていない問題: {questions}（点数はまだなく、0 点ではありません）",
                       "Not graded yet: {questions} (no score yet, which is not a 0)", questions=", ".join(missing)))
    return lines


def not_graded_reason(result: dict[str, Any]) -> Message:
    """Why a question of ``result`` has no checks: the grading stopped (its reason), or this run did not select it."""
    if result.get("runner_error"):
        return t("採点されていません。この提出物の採点は、この問題に進む前に止まりました: {reason}",
                 "not graded: the grading of this submission stopped before this question: {reason}",
                 reason=from_fields(result, "runner_error"))
    return NOT_IN_THIS_RUN if coverage(result)[0] else NONE_RAN


# Gradescope renders outputs as "simple_format" (some HTML) unless told otherwise: every string in results.json can
# hold text that the student's code controls (an exception's message, a cell's name), so all of it is plain text.
TEXT_ONLY = {"output_format": "text", "test_output_format": "text", "test_name_format": "text"}


def write_results_json(path: Path, result: dict[str, Any], lang: str = "both") -> None:
    """Gradescope's autograder results format, in ``lang``; each test's ``tags`` holds its question id. Every
    output is declared plain text (:data:`TEXT_ONLY`), so nothing a student wrote is rendered as markup."""
    tests = []
    for qid, question in result["questions"].items():
        for check in question["checks"]:
            tests.append({
                "name": f"{qid}: {_inline(from_fields(check, 'title'), lang)}",
                "score": round(check["points"], 4),
                "max_score": round(check["max_points"], 4),
                "status": "passed" if check["passed"] else "failed",
                "output": render(from_fields(check, "message"), lang),
                "tags": [qid],
                "visibility": "visible",
                "output_format": "text",
            })
    document = {
        "score": result["total"],
        "max_score": result["max_total"],
        "execution_time": result.get("seconds", 0),
        "output": "\n".join(render(note, lang) for note in notes(result)),
        "visibility": "visible",
        "stdout_visibility": "hidden",
        **TEXT_ONLY,
        "tests": tests,
    }
    path.write_text(json.dumps(document, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def _pictures(result: dict[str, Any], qid: str, lang: str) -> str:
    """The question's pictures (autograder/pictures.py), embedded as data URIs, each with its caption."""
    figures = [f"<figure><img src='{picture['uri']}' alt=''><figcaption>"
               f"{_html(Message(picture['caption_ja'], picture['caption_en']), lang)}</figcaption></figure>"
               for picture in result.get("pictures", [])
               if picture.get("question") == qid and str(picture.get("uri", "")).startswith(PICTURE_PREFIX)
               and str(picture["uri"]).isascii() and "'" not in picture["uri"]]
    return f"<div class='pictures'>{''.join(figures)}</div>" if figures else ""


def write_feedback_html(path: Path, student_id: str, result: dict[str, Any], lang: str = "both") -> None:
    """One page per student, in ``lang``: each question, each check with its points and the message naming the bug."""
    e = html.escape
    total = t("合計: {points} / {maximum}", "Total: {points} / {maximum}", points=_points(result["total"]),
              maximum=_points(result["max_total"]))
    page_title = t("フィードバック: {id}", "Feedback: {id}", id=student_id)
    heading = t("実験3-4 自己符号化器 — {id} さんへのフィードバック", "Lab 3-4 autoencoders — feedback for {id}",
                id=student_id)
    parts = [f"<!doctype html><html lang='{'en' if lang == 'en' else 'ja'}'><head><meta charset='utf-8'>"
             "<meta name='viewport' content='width=device-width, initial-scale=1'>"
             f"<title>{e(_inline(page_title, lang))}</title><style>{CSS}</style></head><body>",
             f"<h1>{_html(heading, lang)}</h1>",
             f"<p><b>{_html(total, lang)}</b><br>{_html(AUTOGRADED_PART, lang)}</p>"]
    for line in [*notes(result), *coverage_notes(result)]:
        parts.append(f"<p class='note'>{_html(line, lang)}</p>")
    _, earlier, _ = coverage(result)
    for qid, question in result["questions"].items():
        title = Message(question["title"], question.get("title_en") or question["title"])
        points = f" <small>({e(qid)})</small>: {_points(question['points'])} / {_points(question['max_points'])}"
        parts.append(f"<h2>{_html(title, lang, tail=points)}</h2>")
        if not question["checks"]:
            parts.append(f"<p class='note'>{_html(not_graded_reason(result), lang)}</p>")
            continue
        if qid in earlier:
            when = t("以前の採点（{when}）の結果です。今回の採点はこの問題を採点していません",
                     "From an earlier grading ({when}); this run did not grade this question",
                     when=question.get("graded_at") or "?")
            parts.append(f"<p class='earlier'>{_html(when, lang)}</p>")
        header = "".join(f"<th{style}>{_html(column, lang)}</th>" for column, style in zip(COLUMNS, COLUMN_STYLES))
        parts.append(f"<table class='checks'><tr class='head'><th></th>{header}</tr>")
        for check in question["checks"]:
            mark = "<span class='pass'>✔</span>" if check["passed"] else "<span class='fail'>✘</span>"
            row = "<tr>" if check["passed"] else "<tr class='failed'>"
            parts.append(f"{row}<td class='mark'>{mark}</td><td class='title'>{_html(from_fields(check, 'title'), lang)}"
                         f"</td><td class='pts'>{_points(check['points'])} / {_points(check['max_points'])}</td>"
                         f"<td class='details'>{_html(from_fields(check, 'message'), lang)}</td></tr>")
        parts.append("</table>")
        parts.append(_pictures(result, qid, lang))
    parts.append("</body></html>\n")
    path.write_text("\n".join(parts), encoding="utf-8")


def summary_table(results: dict[str, dict], questions: dict[str, dict]) -> str:
    """A plain-text class summary: each student's points per question, then the class mean per question."""
    ids = list(questions)
    width = max([10, *(len(s) for s in results)])
    header = f"{'student':{width}} " + " ".join(f"{q[:12]:>12}" for q in ids) + f" {'total':>7}"
    lines = [header, "-" * len(header)]
    for student_id, result in results.items():
        cells = " ".join(f"{_points(result['questions'][q]['points']):>12}" for q in ids)
        lines.append(f"{student_id:{width}} {cells} {_points(result['total']):>7}")
    lines.append("-" * len(header))
    means = " ".join(f"{statistics.fmean(r['questions'][q]['points'] for r in results.values()):>12.1f}" for q in ids)
    totals = [r["total"] for r in results.values()]
    lines.append(f"{'mean':{width}} {means} {statistics.fmean(totals):>7.1f}")
    lines.append(f"{'max points':{width}} " + " ".join(f"{_points(questions[q]['points']):>12}" for q in ids)
                 + f" {_points(sum(questions[q]['points'] for q in ids)):>7}")
    return "\n".join(lines)


def preload() -> None:
    """Import matplotlib for :func:`summary_plot` (about a second, run in a thread while the runners grade)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot  # noqa: F401


def summary_plot(path: Path, results: dict[str, dict], questions: dict[str, dict]) -> None:
    """A PNG: the histogram of totals, and each question's class mean as a percentage of its points."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    totals = [r["total"] for r in results.values()]
    maximum = next(iter(results.values()))["max_total"]
    ids = list(questions)
    percent = [100 * statistics.fmean(r["questions"][q]["points"] for r in results.values()) / questions[q]["points"]
               if questions[q]["points"] else 0 for q in ids]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")
    left.hist(totals, bins=range(0, int(maximum) + 6, 5), color="#4c72b0", edgecolor="white")
    left.set(title=f"Totals ({len(totals)} submissions)", xlabel=f"points (of {_points(maximum)})", ylabel="students",
             xlim=(0, maximum + 5))
    left.yaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    bars = right.barh(ids[::-1], percent[::-1], color="#55a868")
    right.bar_label(bars, fmt="%.0f%%", padding=3)
    right.set(title="Class mean per question", xlabel="% of the question's points", xlim=(0, 110))
    fig.savefig(path, dpi=120)
    plt.close(fig)
