"""autograder.explain: each rule matches the error that this torch really raises, and names its cause.

The errors are raised here by the same mistakes a student makes (not typed in), so a torch release
that rewords a message fails these tests instead of silently dropping the explanation.
"""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from autograder.explain import RULES, likely_cause
from autograder.failures import StudentError


def raised(action) -> tuple[str, str]:
    try:
        action()
    except Exception as error:  # noqa: BLE001 - the point is to catch what torch raises
        return type(error).__name__, str(error)
    raise AssertionError("the mistake did not raise")


def _undefined_name():
    return new_labels  # noqa: F821 - the deleted line


MISTAKES = [
    # (the mistake, what the cause must say)
    (_undefined_name, ["`new_labels`", "deleted"]),
    (lambda: nn.Linear(2, 128)(torch.rand(4, 128)), ["expects 2 input features but receives 128", "in_features"]),
    (lambda: nn.Unflatten(1, (32, 7, 7))(torch.rand(4, 49)), ["(32, 7, 7) = 1568", "receives 49"]),
    (lambda: nn.Conv2d(28, 16, 3)(torch.rand(4, 1, 28, 28)), ["in_channels=28 receives 1 channels"]),
    (lambda: nn.Linear(3, 32 / 7 * 7), ["a layer size is a float", "//"]),
    (lambda: nn.Linear(32 * 7 / 2, 3), ["a layer size is a float", "//"]),
    (lambda: torch.exp(0.5), ["torch.exp received a plain Python number as `input`"]),
    (lambda: torch.zeros(3, 2).index_add_(torch.tensor([0, 1]), 0, torch.rand(2, 2)),
     ["index_add_'s arguments are in the wrong order", "argument 1 (`dim`) must be int"]),
    (lambda: torch.zeros(3, 2).index_add_(0, torch.tensor([1]), torch.rand(400, 2)),
     ["it got 1 for 400 rows", "argmin(dim=1)"]),
    (lambda: torch.zeros(3, 2).index_add_(0, torch.rand(400, 2), torch.tensor([1])),
     ["must be a 1-D vector of integer labels", "swapped"]),
    (lambda: torch.multinomial(torch.tensor([0.5, -1.0]), 1), ["negative, inf or NaN", "D(x)²"]),
    (lambda: torch.multinomial(torch.zeros(3), 1), ["every torch.multinomial weight is 0"]),
    (lambda: torch.multinomial(torch.ones(3), 0), ["asked for 0 samples"]),
    (lambda: torch.ones(3).clamp(), ["clamp() needs a bound"]),
    (lambda: torch.ones(4, 2) / torch.ones(3, 1), ["(4 and 3)", "wrong length"]),
    (lambda: torch.where(torch.ones(3), torch.ones(3) > 0, torch.ones(3)), ["first argument must be the boolean"]),
    (lambda: nn.Sequential(nn.Linear(2, 3), nn.ReLU())[1].in_features, ["a ReLU has no attribute `in_features`"]),
    (lambda: (0.5).exp(), ["plain Python number (float)", "tensor method"]),
    (lambda: None.shape, ["a value is None", "`return`"]),
    (lambda: (torch.ones(1), torch.ones(1)).view(1), ["a tuple is used where a tensor is needed"]),
    (lambda: F.binary_cross_entropy(torch.tensor([-0.5, 0.5, 1.5]), torch.rand(3)), ["nn.Sigmoid()"]),
    (lambda: torch.ones(2, requires_grad=False).sum().backward(), ["cut off from the graph"]),
]


@pytest.mark.parametrize("mistake, says", MISTAKES, ids=[str(i) for i in range(len(MISTAKES))])
def test_each_mistake_gets_its_cause(mistake, says):
    error, message = raised(mistake)
    cause = likely_cause(error, message)
    assert cause is not None, f"no rule for {error}: {message}"
    for words in says:
        assert words in cause.en, (words, cause.en)
    assert cause.ja and cause.ja != cause.en


def test_every_rule_is_exercised():
    used = {id(pattern) for error, pattern, _ in RULES
            for mistake, _ in MISTAKES for kind, text in [raised(mistake)] if kind == error and pattern.search(text)}
    unused = [pattern.pattern for _, pattern, _ in RULES if id(pattern) not in used]
    # the device rule needs two devices; every other rule must be raised by a mistake above
    assert unused == [r"Expected all tensors to be on the same device"], unused


def test_no_cause_for_an_unknown_error_or_another_type():
    assert likely_cause("RuntimeError", "something nobody has seen") is None
    assert likely_cause("ValueError", "name 'x' is not defined") is None  # the rule is for NameError only


def test_the_crash_message_carries_the_cause_in_both_languages():
    failure = StudentError("kmeans", "NameError", "name 'counts' is not defined", "cell `kmeans`, line 14")
    assert failure.message.en.endswith("Likely cause: `counts` is read before any line assigns it: was the line "
                                       "that computes `counts` deleted, misspelt or placed after its first use?")
    assert "考えられる原因: `counts` を代入する行より前に" in failure.message.ja


def test_a_size_mismatch_mentions_bincount_only_on_a_line_that_counts():
    error, message = raised(lambda: torch.ones(4, 2) / torch.ones(3, 1))
    on_counts = likely_cause(error, message, "cell `kmeans`, line 15: centroids = sums / counts.clamp(min=1)")
    elsewhere = likely_cause(error, message, "cell `ConvAutoEncoder`, line 23: return self.decoder(z)")
    assert "minlength=" in on_counts.en and "minlength=" in on_counts.ja
    assert "minlength=" not in elsewhere.en and "bincount" not in elsewhere.ja


def test_a_long_identifier_is_clipped():
    cause = likely_cause("NameError", f"name '{'x' * 500}' is not defined")
    assert "x" * 41 not in cause.en and "x" * 40 in cause.en
