"""The class insights page (autograder/insights.py) and the feedback page's notes on what a run graded.

* every failed check's message is read as a named mistake, a crash (with its likely cause), the unchanged
  template, a time limit, a dead worker or the grader's own error; messages that differ only in numbers are one
  mistake;
* the page counts each mistake once per student, most common first, under its question, with the students (links to
  their feedback) and an example; crashes by cause; the students with 0 and why; no external asset;
* it is built from every result in the folder (scored.json, else Gradescope's results.json), so a regrade of some
  students rewrites it for the whole class; a class of 500 gives one page in well under a second or two;
* a feedback page of a ``-k`` run says what this run graded and what keeps its earlier score or is not graded
  yet; a question stopped by a failed grading says why; never "see the notes above" without notes.

All from small hand-made results (no grading); tests/test_grading.py checks the page of the graded example class.
"""
from __future__ import annotations

import json
import time

from autograder import config, gradesheet, insights, report
from autograder.engine import score
from autograder.i18n import Message, is_japanese, json_fields, t

QUESTIONS = config.questions()
KL_SIGN = t("KL 項の符号が逆です。KL = −0.5·Σ(1 + logvar − μ² − exp(logvar)) ≥ 0 です",
            "the KL term has the wrong sign: KL = −0.5·Σ(1 + logvar − μ² − exp(logvar)) ≥ 0")
STD = t("z の広がり（標準偏差）が exp(logvar) になっています", "the spread of z is exp(logvar), it must be exp(0.5·logvar)")


def ratio(value: float) -> Message:
    return t("KL 項が期待値の {ratio:.4g} 倍です", "the KL term is {ratio:.4g}× the expected value", ratio=value)


def crash(name: str, error: str, cause: Message | None = None) -> Message:
    text = t("{name} で {error} が発生しました：boom（発生箇所: cell `x`, line 3）",
             "{name} raised {error}: boom (at cell `x`, line 3)", name=name, error=error)
    if error == "NotImplementedError":
        text = t("{text}。この部分はまだ未記入のテンプレートのままではありませんか？",
                 "{text}. Is this part still the unfilled template?", text=text)
    if cause is not None:
        text = t("{text}。考えられる原因: {cause}", "{text}. Likely cause: {cause}", text=text, cause=cause)
    return text


def in_features(expected: int, got: int) -> Message:
    return t("行列積が {expected} 個の入力特徴を期待していますが、{got} 個が届いています",
             "a matrix product expects {expected} input features but receives {got}", expected=expected, got=got)


def check(qid: str, name: str, message: Message | None) -> dict:
    return {"id": f"test_{name}", "question": qid, "title": f"{name} holds", "title_ja": f"{name} が成り立つ",
            "passed": message is None, **json_fields("message", message or "")}


def scored(*checks: dict, **extra) -> dict:
    return score({"notebook": "x.ipynb", "checks": list(checks), **extra}, QUESTIONS)


def full(**failures: tuple[str, str, Message]) -> dict:
    """Every question with one passing check, plus the failing ``(question, check, message)`` checks given."""
    return scored(*(check(qid, "basics", None) for qid in QUESTIONS),
                  *(check(qid, name, message) for qid, name, message in failures.values()))


def a_class() -> dict[str, dict]:
    return {
        "kl_sign": full(a=("vae_loss", "kl_alone", KL_SIGN), b=("vae_loss", "matches", KL_SIGN)),
        "kl_sign2": full(a=("vae_loss", "kl_alone", KL_SIGN)),
        "exp_logvar": full(a=("reparameterize", "std", STD)),
        "half_kl": full(a=("vae_loss", "kl_alone", ratio(0.5))),
        "third_kl": full(a=("vae_loss", "kl_alone", ratio(0.3333))),
        "shapes": full(a=("conv_autoencoder", "shapes", crash("ConvAutoEncoder", "RuntimeError", in_features(64, 32)))),
        "shapes2": full(a=("conv_vae", "shapes", crash("ConvVAE", "RuntimeError", in_features(128, 16)))),
        "odd": full(a=("kmeans", "blobs", crash("kmeans", "ValueError"))),
        "<b>x": full(),
        "untouched": scored(*(check(qid, f"c{i}", crash(qid, "NotImplementedError")) for i, qid in
                              enumerate(QUESTIONS))),
        "broken": scored(**json_fields("runner_error", t("採点プログラム自体が失敗しました（{code}）",
                                                         "the grader itself failed on this submission ({code})",
                                                         code=-9))),
        "not_json": scored(*(check(qid, "basics", t("ノートブックとして読めません", "the file cannot be read as a notebook"))
                             for qid in QUESTIONS), **json_fields("notebook_error", t(
                                 "ノートブックとして読み込めません（JSONDecodeError）",
                                 "the file cannot be read as a notebook (JSONDecodeError)"))),
    }


# -- reading a message -------------------------------------------------------------------------------------------
def test_each_kind_of_failure_is_told_apart():
    def kind(message: Message) -> str:
        return insights.diagnose(check("vae_loss", "x", message)).kind

    assert kind(KL_SIGN) == insights.MISTAKE and kind(ratio(0.5)) == insights.MISTAKE
    assert kind(crash("kmeans", "IndexError", in_features(1, 2))) == insights.CRASH
    assert kind(crash("kmeans", "NotImplementedError")) == insights.TEMPLATE
    assert kind(t("読み込みに失敗しました：{e}", "loading the notebook's definitions failed: {e}",
                  e=crash("the code", "NameError"))) == insights.CRASH
    assert kind(t("応答がありませんでした", "no answer within 20 CPU-seconds while training (an endless loop?)")) == \
        insights.LIMIT
    assert kind(t("終了しました", "the worker process died while training (killed by SIGKILL)")) == insights.WORKER
    assert kind(t("内部エラーです", "internal grader error (KeyError); please tell the instructor")) == insights.GRADER
    # one mistake whatever its numbers; a crash is keyed by its error and cause, not by the student's own words
    assert insights.diagnose(check("q", "x", ratio(0.5))).key == insights.diagnose(check("q", "x", ratio(2))).key
    first = insights.diagnose(check("q", "x", crash("f", "RuntimeError", in_features(64, 32))))
    assert first.key == insights.diagnose(check("q", "y", crash("g", "RuntimeError", in_features(9, 3)))).key
    assert first.error == "RuntimeError" and first.label.en.startswith("a matrix product expects")
    assert first.label.ja.startswith("行列積が")


def test_the_runners_record_of_what_stopped_a_check_comes_first():
    """A check that records ``failure`` (the runner's Collector) is classified by it, not by its wording: a named
    mistake that mentions "raised" stays a mistake, a limit in words the patterns do not know is a limit."""
    def kind(message: Message, failure: str) -> str:
        return insights.diagnose({**check("vae_loss", "x", message), "failure": failure}).kind

    assert kind(t("raised", "the loss raised the KL term instead of lowering it"), "CheckFailed") == insights.MISTAKE
    assert kind(t("止まりました", "stopped after a long wait"), "CheckBlocked") == insights.LIMIT
    assert kind(t("止まりました", "gone"), "WorkerCrashed") == insights.WORKER
    assert kind(t("エラー", "oops"), "GraderError") == insights.GRADER
    assert kind(crash("kmeans", "IndexError", in_features(1, 2)), "StudentError") == insights.CRASH


# -- the analysis ------------------------------------------------------------------------------------------------
def test_mistakes_are_counted_once_per_student_under_their_question():
    data = insights.analyse(a_class(), QUESTIONS)
    vae_loss = insights._ordered(data.questions["vae_loss"].mistakes)
    assert [list(g.students) for g in vae_loss] == [["kl_sign", "kl_sign2"], ["half_kl", "third_kl"], ["not_json"]]
    assert vae_loss[0].label() == KL_SIGN
    assert {title.en: n for title, n in vae_loss[0].checks.items()} == {"kl_alone holds": 2, "matches holds": 1}
    assert vae_loss[1].label().en == "the KL term is …× the expected value"  # the numbers differ: "…"
    assert vae_loss[1].students["third_kl"].en == "the KL term is 0.3333× the expected value"
    assert [list(g.students) for g in data.questions["reparameterize"].mistakes.values()] == [["exp_logvar"],
                                                                                                ["not_json"]]
    assert data.questions["vae_loss"].failed_checks["kl_alone holds"] == ["kl_sign", "kl_sign2", "half_kl", "third_kl"]
    assert data.questions["vae_loss"].not_graded == ["broken"]


def test_crashes_are_grouped_by_their_likely_cause_and_zeros_say_why():
    data = insights.analyse(a_class(), QUESTIONS)
    groups = {(g.finding.kind, g.finding.error): g for g in data.crashes.values()}
    shapes = groups[(insights.CRASH, "RuntimeError")]
    assert list(shapes.students) == ["shapes", "shapes2"]
    assert shapes.label().en == "a matrix product expects … input features but receives …"
    assert dict(shapes.questions) == {"conv_autoencoder": 1, "conv_vae": 1}
    assert list(groups[(insights.CRASH, "ValueError")].students) == ["odd"]
    template = groups[(insights.TEMPLATE, "NotImplementedError")]
    assert list(template.students) == ["untouched"] and len(template.questions) == len(QUESTIONS)
    assert set(data.zeros) == {"untouched", "broken", "not_json"}
    assert data.zeros["untouched"].en.startswith("the template is unchanged: 7 of the 7 failed checks")
    assert data.zeros["broken"].en.startswith("grading did not run to the end: the grader itself failed")
    assert data.zeros["not_json"].en.startswith("not a notebook (not JSON)")
    assert is_japanese(data.zeros["not_json"].ja)


# -- the page ----------------------------------------------------------------------------------------------------
def test_the_page_names_each_mistake_with_its_students_in_each_language():
    results = a_class()
    page = insights.render_page(results, QUESTIONS, lang="both")
    section = page.split("id='q-vae_loss'")[1].split("<section")[0]
    assert "the KL term has the wrong sign" in section and "KL 項の符号が逆です" in section
    assert "<a href='kl_sign/feedback.html'>kl_sign</a>" in section
    assert section.index("kl_sign") < section.index("half_kl")  # most common first
    assert "href='%3Cb%3Ex/feedback.html'>&lt;b&gt;x</a>" in page and "<b>x" not in page
    assert "<details" in page and "<script>" in page
    assert "http" not in page and " src=" not in page and "<link" not in page  # no external asset
    english = insights.render_page(results, QUESTIONS, lang="en")
    assert "the KL term has the wrong sign" in english and "KL 項の符号" not in english
    japanese = insights.render_page(results, QUESTIONS, lang="ja")
    assert "KL 項の符号が逆です" in japanese and "the KL term has the wrong sign" not in japanese


def test_the_page_is_built_from_the_whole_folder_and_again_after_a_regrade(tmp_path):
    results = a_class()
    gradesheet.update(tmp_path, {s: results[s] for s in ("kl_sign", "exp_logvar")}, list(QUESTIONS))
    # a student graded elsewhere, with Gradescope's results.json only
    (tmp_path / "gs").mkdir()
    report.write_results_json(tmp_path / "gs" / "results.json", results["kl_sign2"], lang="both")
    page = insights.write_insights(tmp_path, QUESTIONS).read_text(encoding="utf-8")
    section = page.split("id='q-vae_loss'")[1].split("<section")[0]
    assert "kl_sign/feedback.html" in section and "gs/feedback.html" in section and "exp_logvar" not in section
    loaded = insights.load_class(tmp_path, QUESTIONS)["gs"]
    assert loaded["questions"]["vae_loss"]["checks"][1]["message_en"] == KL_SIGN.en
    assert loaded["questions"]["vae_loss"]["checks"][1]["message_ja"] == KL_SIGN.ja
    # kl_sign regraded, fixed; half_kl graded for the first time: the page follows the folder, not the run
    gradesheet.update(tmp_path, {"kl_sign": full(), "half_kl": results["half_kl"]}, list(QUESTIONS))
    page = insights.write_insights(tmp_path, QUESTIONS).read_text(encoding="utf-8")
    section = page.split("id='q-vae_loss'")[1].split("<section")[0]
    assert "kl_sign/feedback.html" not in section and "half_kl/feedback.html" in section
    assert "gs/feedback.html" in section and "exp_logvar/feedback.html" in page


def test_a_class_of_500_gives_one_page_quickly(tmp_path):
    base = a_class()
    names = list(base)
    results = {f"student{i:03d}": json.loads(json.dumps(base[names[i % len(names)]])) for i in range(500)}
    start = time.perf_counter()
    page = insights.render_page(results, QUESTIONS)
    seconds = time.perf_counter() - start
    assert seconds < 5, seconds
    assert len(page.encode()) < 3_000_000 and page.count("<section") == len(QUESTIONS) + 3
    # a mistake of many students lists the first ones and folds the others away
    assert f"<summary>+{2 * 42 - insights.SHOWN_STUDENTS}</summary>" in page  # kl_sign + kl_sign2: 42 each


# -- the feedback page's notes -----------------------------------------------------------------------------------
def test_a_k_run_says_what_it_graded_and_what_keeps_its_earlier_score(tmp_path):
    first = gradesheet.merge(full(a=("vae_loss", "kl_alone", KL_SIGN)), None, "2026-01-01T00:00:00+00:00")
    rerun = scored(check("vae_loss", "kl_alone", None), check("vae_loss", "matches", None))  # -k vae_loss
    merged = {"amy": gradesheet.merge(rerun, first, "2026-01-02T00:00:00+00:00"),
              "ben": gradesheet.merge(rerun, None, "2026-01-02T00:00:00+00:00")}
    report.write_feedback_html(tmp_path / "amy.html", "amy", merged["amy"], lang="en")
    report.write_feedback_html(tmp_path / "ben.html", "ben", merged["ben"], lang="both")
    amy = (tmp_path / "amy.html").read_text(encoding="utf-8")
    ben = (tmp_path / "ben.html").read_text(encoding="utf-8")
    assert "This run graded some checks only (-k): vae_loss (2 checks)" in amy
    assert "These questions keep their earlier scores: reparameterize, vae_training, kmeans" in amy
    assert amy.count("From an earlier grading (") == len(QUESTIONS) - 1 and "Not graded yet" not in amy
    assert "Not graded yet: reparameterize, vae_training" in ben and "今回の採点は一部のチェックだけです" in ben
    assert ben.count("this run (-k) selected none of this question&#x27;s checks") == len(QUESTIONS) - 1
    for page in (amy, ben):
        assert "see the notes above" not in page and "上の注意" not in page


def test_a_question_stopped_by_a_failed_grading_says_why(tmp_path):
    lost = t("この提出物の採点は失われました", "the grading of this submission was lost after 4 attempts; grade it again")
    result = scored(**json_fields("runner_error", lost))
    report.write_feedback_html(tmp_path / "f.html", "amy", result, lang="en")
    page = (tmp_path / "f.html").read_text(encoding="utf-8")
    assert page.count("not graded: the grading of this submission stopped before this question: the grading of "
                      "this submission was lost") == len(QUESTIONS)
    assert "see the notes above" not in page and "This run graded" not in page
    # a result that no run merged (no graded_at), every question graded: no note about the run
    report.write_feedback_html(tmp_path / "g.html", "amy", full(), lang="en")
    assert "This run" not in (tmp_path / "g.html").read_text(encoding="utf-8")
