"""Feedback in the students' language: every message, heading and hint in Japanese, with the English below it.

* static (``ast``, nothing runs): every message passed to a failure (``expect``, ``fail``, ``CheckFailed``, ...)
  anywhere under ``autograder/`` is a bilingual ``t(...)``; the modules whose text reaches students hold no
  English sentence outside ``t(...)``; every ``t(ja, en)`` has a Japanese template, an English one, the same
  fields in both and exactly those fields filled; every grader check has a Japanese title; every question a
  Japanese and an English title;
* :mod:`autograder.i18n` and the reports' ``lang`` (ja / en / both), on made-up results;
* one example submission graded for real (reparameterize and vae_loss only, ~15 s): each failed check's
  ``message_ja`` is Japanese, ``message_en`` is English, and feedback.html in "ja" shows no English message
  line, in "en" no Japanese one.
"""
from __future__ import annotations

import ast
import html
import json
import os
import re
import string
import subprocess
import sys
from pathlib import Path

import pytest

from autograder import config, engine, report, rubric
from autograder.failures import CheckFailed, GradingFailure, StudentError
from autograder.i18n import LANGS, Message, as_message, from_fields, is_japanese, join, json_fields, render, t, \
    verbatim
from autograder.sandbox import bwrap_unavailable

REPO_ROOT = Path(__file__).resolve().parent.parent
PACKAGE = REPO_ROOT / "autograder"
# Calls whose argument is what the student reads: name -> (position, keyword) of that argument.
SINKS = {"expect": (1, "message"), "fail": (0, "message"), "CheckFailed": (0, "message"),
         "GradingFailure": (0, "message"), "WorkerCrashed": (0, "message"), "CheckTimeout": (0, "message"),
         "StudentError": (0, "name")}
# Modules whose string literals can reach a student (results.json, feedback.html).
STUDENT_FACING = ["oracle.py", "failures.py", "client.py", "bottleneck.py", "policy.py", "figures.py", "runner.py",
                  "report.py", "scoring.py", "engine.py", "submission.py",
                  *sorted(p.relative_to(PACKAGE).as_posix() for p in (PACKAGE / "graders").glob("*.py"))]
# Text for instructors only, in those modules: these functions, and the arguments of these calls.
INSTRUCTOR_FUNCTIONS = {"summary_table", "summary_plot", "main", "discover", "grade_all"}
INSTRUCTOR_CALLS = {"print", "add_argument", "ArgumentParser", "add_parser", "addinivalue_line", "RuntimeError",
                    "ValueError", "TypeError", "KeyError", "RubricError", "BadInput", "AssertionError"}
ENGLISH_PROSE = re.compile(r"[A-Za-z]{2,}(?: [A-Za-z'’]{2,}){2,}")  # three words or more


def _trees(relative: list[str] | None = None) -> dict[str, ast.AST]:
    paths = [PACKAGE / r for r in relative] if relative else sorted(PACKAGE.rglob("*.py"))
    return {p.relative_to(REPO_ROOT).as_posix(): ast.parse(p.read_text(encoding="utf-8")) for p in paths}


def _name(call: ast.Call) -> str:
    func = call.func
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""


def _plain_text(node: ast.AST) -> bool:
    """Whether ``node`` evidently builds a plain string (one language) rather than a Message."""
    if isinstance(node, (ast.Constant, ast.JoinedStr)):
        return isinstance(node, ast.JoinedStr) or isinstance(node.value, str)
    if isinstance(node, ast.BinOp):
        return _plain_text(node.left) or _plain_text(node.right)
    if isinstance(node, ast.IfExp):
        return _plain_text(node.body) or _plain_text(node.orelse)
    if isinstance(node, ast.BoolOp):
        return any(_plain_text(value) for value in node.values)
    if isinstance(node, ast.Call):  # str(x), repr(x), "...".format(...), "; ".join(...); not i18n's join(...)
        if isinstance(node.func, ast.Attribute):
            return node.func.attr in ("format", "join")
        return _name(node) in ("str", "repr")
    return False


def _argument(call: ast.Call, position: int, keyword: str) -> ast.AST | None:
    if len(call.args) > position:
        return call.args[position]
    return next((k.value for k in call.keywords if k.arg == keyword), None)


def _where(path: str, node: ast.AST) -> str:
    return f"{path}:{node.lineno}: {ast.unparse(node)[:110]}"


# -- (a) static ----------------------------------------------------------------------------------------
def test_every_failure_message_is_bilingual():
    """No expect/fail/CheckFailed/... anywhere under autograder/ is given a plain string: each gets a t(...)."""
    found = []
    for path, tree in _trees().items():
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and _name(node) in SINKS:
                argument = _argument(node, *SINKS[_name(node)])
                if argument is not None and _plain_text(argument):
                    found.append(_where(path, node))
    assert not found, "messages without their Japanese text (use autograder.i18n.t):\n  " + "\n  ".join(found)


def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def _exempt(tree: ast.AST) -> set[int]:
    """ids of the nodes inside t(...)/verbatim-free zones: t() calls, instructor-only functions and calls."""
    exempt: set[int] = set()
    for node in ast.walk(tree):
        inside = (isinstance(node, ast.Call) and _name(node) in ({"t"} | INSTRUCTOR_CALLS)) or (
            isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name in INSTRUCTOR_FUNCTIONS)
        if inside:
            exempt |= {id(child) for child in ast.walk(node)}
    return exempt


def test_no_english_sentence_outside_t_where_students_read():
    """The modules whose text reaches students hold no English phrase (3+ words) outside t(...), docstrings and
    instructor-only output (argparse, print, errors that stop the run, the class summary)."""
    found = []
    for path, tree in _trees(STUDENT_FACING).items():
        skip = _docstrings(tree) | _exempt(tree)
        for node in ast.walk(tree):
            if (isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip
                    and ENGLISH_PROSE.search(node.value)):
                found.append(f"{path}:{node.lineno}: {node.value[:100]!r}")
    assert not found, "English text outside t(...) in student-facing modules:\n  " + "\n  ".join(found)


def _fields(template: str) -> set[str]:
    return {name.split(".")[0].split("[")[0] for _, name, _, _ in string.Formatter().parse(template) if name}


def test_every_t_call_has_japanese_and_english_templates_with_the_same_fields():
    """t("…Japanese…", "…English…", **fields): literal templates, Japanese and English, same fields, all filled."""
    problems, calls = [], 0
    for path, tree in _trees().items():
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and _name(node) == "t" and isinstance(node.func, ast.Name)):
                continue
            calls += 1
            where = _where(path, node)
            if len(node.args) != 2 or not all(isinstance(a, ast.Constant) and isinstance(a.value, str)
                                              for a in node.args):
                problems.append(f"{where}: the two templates must be string literals")
                continue
            ja, en = (a.value for a in node.args)
            if not is_japanese(ja):
                problems.append(f"{where}: the first template is not Japanese")
            if is_japanese(en):
                problems.append(f"{where}: the second template is not English")
            if _fields(ja) != _fields(en):
                problems.append(f"{where}: fields differ: {sorted(_fields(ja))} vs {sorted(_fields(en))}")
            given = {k.arg for k in node.keywords}
            if None not in given and given != _fields(en):
                problems.append(f"{where}: fields filled {sorted(given)}, templates use {sorted(_fields(en))}")
    assert calls > 150, f"only {calls} t(...) calls found: is the scan looking at the right files?"
    assert not problems, "\n  ".join(["bad t(...) calls:", *problems])


def test_every_check_has_a_japanese_title():
    """Each grader check's docstring has its English title (first line) and a Japanese one (a line "ja: ...")."""
    checks = rubric.collect()
    missing = [c.id for c in checks if not is_japanese(c.title_ja)]
    english = [c.id for c in checks if is_japanese(c.title)]
    assert len(checks) >= 30 and not missing and not english, (missing, english)


def test_every_question_has_a_japanese_and_an_english_title():
    """questions.toml: ``title`` (the Japanese heading) and ``title_en`` (the English one) for each question."""
    questions = config.questions()
    missing = {qid: (spec.get("title"), spec.get("title_en")) for qid, spec in questions.items()
               if not is_japanese(spec.get("title", "")) or not spec.get("title_en") or is_japanese(spec["title_en"])}
    assert not missing, f"questions.toml needs a Japanese title and an English title_en: {missing}"


# -- (b) t(), render and the reports' languages ------------------------------------------------------------
def test_t_fills_each_language_and_keeps_data_verbatim():
    what = t("KL 項", "the KL term")
    message = t("{what}が {ratio:.3g} 倍です（{where}）", "{what} is {ratio:.3g}× ({where})", what=what, ratio=2 / 3,
                where="cell `vae_loss`, line 3: {raw}")
    assert message == Message("KL 項が 0.667 倍です（cell `vae_loss`, line 3: {raw}）",
                              "the KL term is 0.667× (cell `vae_loss`, line 3: {raw})")
    assert t("括弧 {{x}}", "braces {{x}}") == Message("括弧 {x}", "braces {x}")  # always formatted
    assert render(message, "ja") == message.ja and render(message, "en") == message.en
    assert render(message, "both") == f"{message.ja}\n{message.en}"
    assert render(verbatim("z"), "both") == "z" and as_message("z") == verbatim("z")
    assert join([t("あ", "a"), t("い", "b")]) == Message("あ。い", "a; b")
    with pytest.raises(ValueError, match="unknown language"):
        render(message, "fr")


def test_messages_cross_as_json_and_fall_back_to_one_language():
    message = t("勾配が届きません", "no gradient reaches mu")
    fields = json_fields("message", message)
    assert fields == {"message": "勾配が届きません\nno gradient reaches mu", "message_ja": "勾配が届きません",
                      "message_en": "no gradient reaches mu"}
    assert from_fields(json.loads(json.dumps(fields)), "message") == message
    assert from_fields({"runner_error": "the grader failed"}, "runner_error") == verbatim("the grader failed")
    assert from_fields({"title": "z has the shape", "title_ja": "z は形状をもつ"}, "title") == \
        Message("z は形状をもつ", "z has the shape")


def test_failures_carry_both_languages_and_str_is_english():
    failure = CheckFailed(t("KL 項の符号が逆です", "the KL term has the wrong sign"))
    assert str(failure) == "the KL term has the wrong sign" and failure.message.ja == "KL 項の符号が逆です"
    assert GradingFailure(failure.message).message == failure.message
    error = StudentError("kmeans", "NotImplementedError", "まだ実装されていません {x}", "cell `kmeans`, line 7")
    assert str(error) == ("kmeans raised NotImplementedError: まだ実装されていません {x} (at cell `kmeans`, line 7). "
                          "Is this part still the unfilled template?")
    assert error.message.ja == ("kmeans で NotImplementedError が発生しました：まだ実装されていません {x}（発生箇所: "
                                "cell `kmeans`, line 7）。この部分はまだ未記入のテンプレートのままではありませんか？")


def _scored(check_messages: dict[str, Message | None], notebook_error: Message | None = None) -> dict:
    """A scored result whose first question's checks fail with the given messages (None: passed)."""
    checks = [{"id": f"test_{i}", "question": "reparameterize", "title": f"check {name} holds",
               "title_ja": f"{name} が成り立つ", "passed": message is None, **json_fields("message", message or "")}
              for i, (name, message) in enumerate(check_messages.items())]
    result = {"notebook": "x.ipynb", "checks": checks, "skipped_cells": [["`kmeans`", "SyntaxError: invalid syntax"]],
              "failed_cells": []}
    if notebook_error:
        result.update(json_fields("notebook_error", notebook_error))
    return engine.score(result, config.questions())


def test_reports_render_each_language(tmp_path):
    """results.json and feedback.html in ja, en and both: each shows exactly its languages' texts."""
    wrong = t("z の広がりが exp(logvar) になっています", "the spread of z is exp(logvar)")
    result = _scored({"a": wrong, "b": None})
    pages, documents = {}, {}
    for lang in LANGS:
        report.write_feedback_html(tmp_path / f"{lang}.html", "amy<b>", result, lang=lang)
        report.write_results_json(tmp_path / f"{lang}.json", result, lang=lang)
        pages[lang] = (tmp_path / f"{lang}.html").read_text(encoding="utf-8")
        documents[lang] = json.loads((tmp_path / f"{lang}.json").read_text(encoding="utf-8"))
    failed = {lang: documents[lang]["tests"][0] for lang in LANGS}
    assert failed["ja"]["output"] == wrong.ja and failed["en"]["output"] == wrong.en
    assert failed["both"]["output"] == f"{wrong.ja}\n{wrong.en}"
    assert failed["ja"]["name"] == "reparameterize: a が成り立つ" and failed["en"]["name"] == "reparameterize: check a holds"
    assert failed["both"]["name"] == "reparameterize: a が成り立つ / check a holds"
    assert "構文解析できない" in documents["ja"]["output"] and "does not parse" not in documents["ja"]["output"]
    assert "does not parse" in documents["en"]["output"] and not is_japanese(documents["en"]["output"])
    assert wrong.ja in pages["ja"] and wrong.en not in pages["ja"] and "<span class='en'>" not in pages["ja"]
    assert wrong.en in pages["en"] and wrong.ja not in pages["en"] and "<html lang='en'>" in pages["en"]
    assert f"{wrong.ja}<br><span class='en'>{wrong.en}</span>" in pages["both"]
    assert "amy&lt;b&gt;" in pages["both"] and "amy<b>" not in pages["both"]
    for heading in ("確認項目", "詳細", "合計"):
        assert heading in pages["ja"] and heading in pages["both"] and heading not in pages["en"]
    for heading in ("check", "details", "Total"):
        assert heading in pages["en"] and f"<span class='en'>{heading}" in pages["both"]


# -- (c) one real submission ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def graded(tmp_path_factory) -> dict:
    """exp_logvar's reparameterize and vae_loss checks, run by the runner (a few seconds)."""
    out = tmp_path_factory.mktemp("i18n") / "checks.json"
    notebook = REPO_ROOT / "examples" / "submitted" / "exp_logvar" / "autoencoders" / "autoencoders.ipynb"
    sandbox = "bwrap" if bwrap_unavailable() is None else "none"  # an example notebook of ours: trusted
    process = subprocess.run([sys.executable, "-m", "autograder.runner", str(notebook), "--json", str(out),
                              "--sandbox", sandbox, "-k", "reparameterize or vae_loss"], cwd=REPO_ROOT,
                             capture_output=True, text=True, timeout=600, env={**os.environ})
    assert process.returncode == 0, process.stderr[-3000:]
    return json.loads(out.read_text(encoding="utf-8"))


def test_a_graded_submission_has_every_message_in_both_languages(graded, tmp_path):
    checks = graded["checks"]
    failed = [c for c in checks if not c["passed"]]
    assert len(checks) >= 9 and {c["question"] for c in failed} == {"reparameterize"}, checks
    for check in checks:
        assert is_japanese(check["title_ja"]) and not is_japanese(check["title"]), check
    for check in failed:
        assert is_japanese(check["message_ja"]), check
        assert check["message_en"] and not is_japanese(check["message_en"]), check
        assert check["message"] == f"{check['message_ja']}\n{check['message_en']}"
    assert any("exp(0.5·logvar)" in c["message_en"] for c in failed)
    result = engine.score(graded, config.questions())
    for lang, other in (("ja", "en"), ("en", "ja")):
        report.write_feedback_html(tmp_path / f"{lang}.html", "exp_logvar", result, lang=lang)
        page = (tmp_path / f"{lang}.html").read_text(encoding="utf-8")
        for check in checks:
            shown, hidden = (check["title_ja"], check["title"]) if lang == "ja" else (check["title"], check["title_ja"])
            assert html.escape(shown) in page and html.escape(hidden) not in page, (lang, check["id"])
        for check in failed:
            assert html.escape(check[f"message_{lang}"]) in page, (lang, check["id"])
            assert html.escape(check[f"message_{other}"]) not in page, (lang, check["id"])
