"""Source policies (questions.toml ``[<question>.policy]``): what the notebook asks students to write themselves.

Checked on the notebook's source with :mod:`ast` in this trusted process; nothing is run. A finding
fails this check and voids the whole question (``voids=True``): wrapping a library's k-means is not
an implementation of k-means, however well it clusters. The check itself earns nothing (``weight=0``):
an empty template breaks no policy.
"""
import pytest

from autograder.i18n import join, t
from autograder.oracle import expect
from autograder.policy import policies

POLICIES = policies()


@pytest.mark.parametrize("policy", [
    pytest.param(p, marks=pytest.mark.question(p.question, voids=True, weight=0), id=p.question) for p in POLICIES
])
def test_written_without_forbidden_libraries(policy, submitted_notebook):
    """Written by the student: no ready-made implementation from a forbidden package (this voids the question).

    ja: 学生自身の実装である: 禁止されたパッケージの既成の実装を使っていない（使っていると設問全体が 0 点）
    """
    expect(submitted_notebook is not None, t("提出物が読み込めるノートブックではありません",
                                             "the submission is not a readable notebook"))
    findings = policy.check(submitted_notebook)
    expect(not findings, join(findings[:3]))
