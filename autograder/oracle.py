"""The checks' vocabulary: layered type → shape → dtype → value comparisons with messages that name the bug.

:func:`compare` is the whole "compare to the reference" oracle. Given what the student's code
returned (its description and value, as the worker reports them) and the reference value, it
fails with the first thing that is wrong, in this order: not a tensor, wrong shape, wrong dtype,
wrong device, wrong values. For wrong values, ``diagnoses`` maps the value a *known* mistake would
produce to a message naming that mistake, so the feedback says which bug it is.

Every message is bilingual (:func:`autograder.i18n.t`). ``what`` names the value checked: a code name
(``"z"``, ``"vae_loss"``) as a plain string, or a :class:`~autograder.i18n.Message` when it is a phrase.
"""
from __future__ import annotations

from typing import Any, Callable, Hashable, Iterable, NoReturn, TypeVar

import torch

from autograder.failures import CheckFailed, GradingFailure
from autograder.i18n import Message, t

Name = Message | str  # what a message calls the checked value: a code name, or a phrase in both languages
Named = TypeVar("Named", bound=Hashable)


def expect(condition: bool, message: Message) -> None:
    """Fail the check with ``message`` unless ``condition`` holds."""
    if not condition:
        raise CheckFailed(message)


def fail(message: Message) -> NoReturn:
    """Fail the check with ``message``."""
    raise CheckFailed(message)


def result_of(value: torch.Tensor) -> dict:
    """Wrap a tensor the trusted side already holds (e.g. a gradient) as a ``{"info", "value"}`` pair."""
    return {"info": {"type": "Tensor", "shape": list(value.shape), "dtype": str(value.dtype).replace("torch.", ""),
                     "device": value.device.type}, "value": value}


def _shape(info: dict) -> tuple[int, ...]:
    return tuple(info.get("shape", ()))


def tensor(result: dict, what: Name, *, shape: tuple[int, ...] | None = None, dtype: str | None = None,
           device: str | None = None, dtypes: Iterable[str] | None = None) -> torch.Tensor:
    """Check the layers of one returned tensor (a ``{"info", "value"}`` pair) and return its value."""
    info, value = result["info"], result["value"]
    expect(info.get("type") in ("Tensor", "ndarray"), _not_a_tensor(what, info))
    expect(info.get("type") == "Tensor", t("{what} は torch.Tensor でなければなりませんが、numpy 配列になっています",
                                           "{what} must be a torch.Tensor, not a numpy array", what=what))
    if shape is not None:
        expect(_shape(info) == tuple(shape), _wrong_shape(what, info, shape))
    if dtype is not None:
        expect(info["dtype"] == dtype, t("{what} の dtype が {got} です。{expected} である必要があります",
                                         "{what} has dtype {got}, expected {expected}",
                                         what=what, got=info["dtype"], expected=dtype))
    if dtypes is not None:
        allowed = tuple(dtypes)
        expect(info["dtype"] in allowed, t("{what} の dtype が {got} です。{allowed} のいずれかである必要があります",
                                           "{what} has dtype {got}, expected one of {allowed}",
                                           what=what, got=info["dtype"], allowed=", ".join(allowed)))
    if device is not None:
        expect(info["device"] == device, t("{what} がデバイス {got} 上にあります。入力と同じデバイス {expected} 上に"
                                           "ある必要があります",
                                           "{what} is on {got}, expected {expected} (the input's device)",
                                           what=what, got=info["device"], expected=device))
    return value


def _not_a_tensor(what: Name, info: dict) -> Message:
    return t("{what} は torch.Tensor でなければなりませんが、{type} になっています",
             "{what} must be a torch.Tensor, not {type}", what=what, type=info.get("type"))


def _wrong_shape(what: Name, info: dict, shape: tuple[int, ...]) -> Message:
    return t("{what} の形状が {got} です。{expected} である必要があります", "{what} has shape {got}, expected {expected}",
             what=what, got=_shape(info), expected=tuple(shape))


def describe_only(part: dict, what: Name, shape: tuple[int, ...]) -> None:
    """The type and shape layers of :func:`tensor` for a value the worker only described (no data sent)."""
    info = part["info"]
    expect(info.get("type") == "Tensor", _not_a_tensor(what, info))
    expect(_shape(info) == tuple(shape), _wrong_shape(what, info, shape))


def items(result: dict, what: Name, count: int, names: str) -> list[dict]:
    """Split a returned tuple/list into ``count`` ``{"info", "value"}`` pairs, checking its length first."""
    info = result["info"]
    expect(info.get("type") in ("tuple", "list"), t("{what} はタプル ({names}) を返す必要がありますが、{type} を返しました",
                                                    "{what} must return a tuple ({names}), not {type}",
                                                    what=what, names=names, type=info.get("type")))
    expect(len(info["items"]) == count,
           t("{what} は {count} 個の値 ({names}) を返す必要がありますが、{returned} 個を返しました",
             "{what} must return {count} values ({names}), it returned {returned}",
             what=what, count=count, names=names, returned=len(info["items"])))
    return [{"info": i, "value": v} for i, v in zip(info["items"], result["value"])]


def close(actual: torch.Tensor, expected: torch.Tensor, rtol: float, atol: float) -> bool:
    """Whether two tensors agree elementwise within ``atol + rtol·|expected|`` (shapes must match)."""
    actual, expected = actual.double().cpu(), expected.double().cpu()
    return actual.shape == expected.shape and bool(torch.allclose(actual, expected, rtol=rtol, atol=atol))


def diagnosis(value: torch.Tensor, expected: torch.Tensor, diagnoses: Iterable[tuple[torch.Tensor, Named]],
              rtol: float, atol: float) -> Named | None:
    """The message of the known mistake that ``value`` matches, only when the evidence is unambiguous.

    A mistake is named when the value agrees with what that mistake gives (within the check's own
    tolerance) and neither the correct value nor another mistake's value is that close to it;
    otherwise None, and the caller says what it measured instead of guessing a name.
    """
    candidates = list(diagnoses)
    matches = [(wrong, message) for wrong, message in candidates if close(value, wrong, rtol, atol)]
    if len({message for _, message in matches}) != 1:
        return None
    wrong, message = matches[0]
    rivals = [other for other, text in candidates if text != message and close(other, wrong, rtol, atol)]
    if rivals or close(wrong, expected, rtol, atol):
        return None
    return message


def compare(result: dict, expected: torch.Tensor, what: Name, *, rtol: float = 1e-4, atol: float = 1e-5,
            dtype: str | None = None, diagnoses: Iterable[tuple[torch.Tensor, Message]] = (),
            measured: Callable[[torch.Tensor], Message] | None = None) -> torch.Tensor:
    """Check ``result`` against the reference ``expected``: type, shape, dtype, then values.

    Values agree when ``|value − expected| ≤ atol + rtol·|expected|`` elementwise. ``diagnoses`` lists
    ``(value a known mistake gives, message naming it)``; a mismatch is explained by :func:`diagnosis`,
    else by ``measured(value)`` (what was measured, e.g. a ratio), else by the size of the error.
    Returns the student's value.
    """
    value = tensor(result, what, shape=tuple(expected.shape), dtype=dtype)
    expect(bool(torch.isfinite(value).all()), t("{what} に NaN または inf が含まれています", "{what} contains NaN or inf",
                                                what=what))
    if close(value, expected, rtol, atol):
        return value
    named = diagnosis(value, expected, diagnoses, rtol, atol)
    if named:
        raise CheckFailed(named)
    if measured is not None:
        raise CheckFailed(measured(value))
    error = (value.double() - expected.double()).abs().max().item()
    if value.numel() == 1:
        shown = t("{expected:.6g} であるべきところが {value:.6g}", "{value:.6g} instead of {expected:.6g}",
                  value=value.item(), expected=expected.item())
    else:
        shown = t("誤差の最大値 {error:.3g}", "max |error| {error:.3g}", error=error)
    raise CheckFailed(t("{what} が模範解答と一致しません（{shown}）", "{what} differs from the reference solution ({shown})",
                        what=what, shown=shown))


class Attempt:
    """The outcome of an expensive step shared by several checks (e.g. training once).

    A failure is kept and raised again by every check that needs the result, each time with
    the same message, and the step is not repeated.
    """

    def __init__(self, step: Callable[[], Any]) -> None:
        self.value: Any = None
        self.failure: GradingFailure | None = None
        try:
            self.value = step()
        except GradingFailure as failure:
            self.failure = failure

    def get(self) -> Any:
        """The step's result, or its failure raised again."""
        if self.failure is not None:
            raise GradingFailure(self.failure.message)
        return self.value
