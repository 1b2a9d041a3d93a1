"""Write what instructors and students read: grades.csv, results.json, feedback.html, the class summary."""
from __future__ import annotations

import csv
import html
import json
import statistics
from pathlib import Path
from typing import Any

CSS = """body{font-family:system-ui,sans-serif;max-width:60em;margin:2em auto;color:#222}
table{border-collapse:collapse;width:100%;margin-bottom:1.5em}td,th{border-bottom:1px solid #ddd;padding:.35em .5em;
text-align:left;vertical-align:top}.pass{color:#1a7f37}.fail{color:#c62828}.pts{white-space:nowrap;text-align:right}
h2{font-size:1.1em;margin-top:1.6em}.note{background:#fff8e1;padding:.6em;border-left:4px solid #f9a825}"""


def _points(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".")


def notes(result: dict[str, Any]) -> list[str]:
    """Problems with the notebook as a whole (unreadable file, cells skipped or failing, grader failure)."""
    lines = []
    if result.get("runner_error"):
        lines.append(result["runner_error"])
    if result.get("notebook_error"):
        lines.append(result["notebook_error"])
    for label, reason in result.get("skipped_cells", []):
        lines.append(f"cell {label} was skipped because it does not parse ({reason}); its definitions are missing")
    for label, reason in result.get("failed_cells", []):
        lines.append(f"cell {label} raised while its definitions were loaded ({reason})")
    return lines


def write_results_json(path: Path, result: dict[str, Any]) -> None:
    """Gradescope's autograder results format; each test's ``tags`` holds its question id."""
    tests = []
    for qid, question in result["questions"].items():
        for check in question["checks"]:
            tests.append({
                "name": f"{qid}: {check['title']}",
                "score": round(check["points"], 4),
                "max_score": round(check["max_points"], 4),
                "status": "passed" if check["passed"] else "failed",
                "output": check["message"],
                "tags": [qid],
                "visibility": "visible",
            })
    document = {
        "score": result["total"],
        "max_score": result["max_total"],
        "execution_time": result.get("seconds", 0),
        "output": "\n".join(notes(result)),
        "visibility": "visible",
        "stdout_visibility": "hidden",
        "tests": tests,
    }
    path.write_text(json.dumps(document, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def write_feedback_html(path: Path, student_id: str, result: dict[str, Any]) -> None:
    """One page per student: each question, each check with its points and the message naming the bug."""
    e = html.escape
    parts = [f"<!doctype html><html lang='ja'><head><meta charset='utf-8'><title>Feedback: {e(student_id)}</title>"
             f"<style>{CSS}</style></head><body>",
             f"<h1>実験3-4 自己符号化器 — feedback for {e(student_id)}</h1>",
             f"<p><b>合計 Total: {_points(result['total'])} / {_points(result['max_total'])}</b> "
             "(自動採点の部分。考察は教員・TA が採点します / autograded part; the written answers are graded by the "
             "teaching staff)</p>"]
    for line in notes(result):
        parts.append(f"<p class='note'>{e(line)}</p>")
    for qid, question in result["questions"].items():
        parts.append(f"<h2>{e(question['title'])} <small>({e(qid)})</small>: "
                     f"{_points(question['points'])} / {_points(question['max_points'])}</h2>")
        if not question["checks"]:
            parts.append("<p class='note'>not graded (see the notes above)</p>")
            continue
        parts.append("<table><tr><th></th><th>確認項目 check</th><th class='pts'>点 points</th>"
                     "<th>詳細 details</th></tr>")
        for check in question["checks"]:
            mark = "<span class='pass'>✔</span>" if check["passed"] else "<span class='fail'>✘</span>"
            parts.append(f"<tr><td>{mark}</td><td>{e(check['title'])}</td><td class='pts'>{_points(check['points'])} / "
                         f"{_points(check['max_points'])}</td><td>{e(check['message'])}</td></tr>")
        parts.append("</table>")
    parts.append("</body></html>\n")
    path.write_text("\n".join(parts), encoding="utf-8")


def write_grades_csv(path: Path, results: dict[str, dict], question_ids: list[str]) -> None:
    """``student_id``, one column per question id, ``total``, ``max_total``."""
    with open(path, "w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(["student_id", *question_ids, "total", "max_total"])
        for student_id, result in results.items():
            writer.writerow([student_id, *(_points(result["questions"][q]["points"]) for q in question_ids),
                             _points(result["total"]), _points(result["max_total"])])


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
