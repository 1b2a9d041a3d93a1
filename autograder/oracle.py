"""The checks' vocabulary: layered type → shape → dtype → value comparisons with messages that name the bug.

:func:`compare` is the whole "compare to the reference" oracle. Given what the student's code
returned (its description and value, as the worker reports them) and the reference value, it
fails with the first thing that is wrong, in this order: not a tensor, wrong shape, wrong dtype,
wrong device, wrong values. For wrong values, ``diagnoses`` maps the value a *known* mistake would
produce to a message naming that mistake, so the feedback says which bug it is.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable, NoReturn

import torch

from autograder.failures import CheckFailed, GradingFailure


def expect(condition: bool, message: str) -> None:
    """Fail the check with ``message`` unless ``condition`` holds."""
    if not condition:
        raise CheckFailed(message)


def fail(message: str) -> NoReturn:
    """Fail the check with ``message``."""
    raise CheckFailed(message)


def result_of(value: torch.Tensor) -> dict:
    """Wrap a tensor the trusted side already holds (e.g. a gradient) as a ``{"info", "value"}`` pair."""
    return {"info": {"type": "Tensor", "shape": list(value.shape), "dtype": str(value.dtype).replace("torch.", ""),
                     "device": value.device.type}, "value": value}


def _shape(info: dict) -> tuple[int, ...]:
    return tuple(info.get("shape", ()))


def tensor(result: dict, what: str, *, shape: tuple[int, ...] | None = None, dtype: str | None = None,
           device: str | None = None, dtypes: Iterable[str] | None = None) -> torch.Tensor:
    """Check the layers of one returned tensor (a ``{"info", "value"}`` pair) and return its value."""
    info, value = result["info"], result["value"]
    expect(info.get("type") in ("Tensor", "ndarray"), f"{what} must be a torch.Tensor, not {info.get('type')}")
    expect(info.get("type") == "Tensor", f"{what} must be a torch.Tensor, not a numpy array")
    if shape is not None:
        expect(_shape(info) == tuple(shape), f"{what} has shape {_shape(info)}, expected {tuple(shape)}")
    if dtype is not None:
        expect(info["dtype"] == dtype, f"{what} has dtype {info['dtype']}, expected {dtype}")
    if dtypes is not None:
        allowed = tuple(dtypes)
        expect(info["dtype"] in allowed, f"{what} has dtype {info['dtype']}, expected one of {', '.join(allowed)}")
    if device is not None:
        expect(info["device"] == device, f"{what} is on {info['device']}, expected {device} (the input's device)")
    return value


def describe_only(part: dict, what: str, shape: tuple[int, ...]) -> None:
    """The type and shape layers of :func:`tensor` for a value the worker only described (no data sent)."""
    info = part["info"]
    expect(info.get("type") == "Tensor", f"{what} must be a torch.Tensor, not {info.get('type')}")
    expect(_shape(info) == tuple(shape), f"{what} has shape {_shape(info)}, expected {tuple(shape)}")


def items(result: dict, what: str, count: int, names: str) -> list[dict]:
    """Split a returned tuple/list into ``count`` ``{"info", "value"}`` pairs, checking its length first."""
    info = result["info"]
    expect(info.get("type") in ("tuple", "list"), f"{what} must return a tuple ({names}), not {info.get('type')}")
    expect(len(info["items"]) == count,
           f"{what} must return {count} values ({names}), it returned {len(info['items'])}")
    return [{"info": i, "value": v} for i, v in zip(info["items"], result["value"])]


def close(actual: torch.Tensor, expected: torch.Tensor, rtol: float, atol: float) -> bool:
    """Whether two tensors agree elementwise within ``atol + rtol·|expected|`` (shapes must match)."""
    actual, expected = actual.double().cpu(), expected.double().cpu()
    return actual.shape == expected.shape and bool(torch.allclose(actual, expected, rtol=rtol, atol=atol))


def diagnosis(value: torch.Tensor, expected: torch.Tensor, diagnoses: Iterable[tuple[torch.Tensor, str]],
              rtol: float, atol: float) -> str | None:
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


def compare(result: dict, expected: torch.Tensor, what: str, *, rtol: float = 1e-4, atol: float = 1e-5,
            dtype: str | None = None, diagnoses: Iterable[tuple[torch.Tensor, str]] = (),
            measured: Callable[[torch.Tensor], str] | None = None) -> torch.Tensor:
    """Check ``result`` against the reference ``expected``: type, shape, dtype, then values.

    Values agree when ``|value − expected| ≤ atol + rtol·|expected|`` elementwise. ``diagnoses`` lists
    ``(value a known mistake gives, message naming it)``; a mismatch is explained by :func:`diagnosis`,
    else by ``measured(value)`` (what was measured, e.g. a ratio), else by the size of the error.
    Returns the student's value.
    """
    value = tensor(result, what, shape=tuple(expected.shape), dtype=dtype)
    expect(bool(torch.isfinite(value).all()), f"{what} contains NaN or inf")
    if close(value, expected, rtol, atol):
        return value
    named = diagnosis(value, expected, diagnoses, rtol, atol)
    if named:
        raise CheckFailed(named)
    if measured is not None:
        raise CheckFailed(measured(value))
    error = (value.double() - expected.double()).abs().max().item()
    shown = f"{value.item():.6g} instead of {expected.item():.6g}" if value.numel() == 1 else f"max |error| {error:.3g}"
    raise CheckFailed(f"{what} differs from the reference solution ({shown})")


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
            raise GradingFailure(str(self.failure))
        return self.value
