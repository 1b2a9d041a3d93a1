"""Probes: the only things the trusted grader can ask a worker to do (this module: calling functions).

Every worker role has this module; the model and training probes are in :mod:`sandboxed.models`, which only
the ``student`` and ``encoder`` roles mount (see ``autograder/sandbox.py``'s ``ROLE_FILES``). Each probe
takes the student's namespace and plain-data arguments, calls the student's code in a fixed, seeded way, and returns plain data (tensors on the CPU, numbers, strings, lists, dicts).
:func:`describe` reports what a value *is* (type, shape, dtype, device) so the trusted side can
give layered feedback (type, then shape, then value) without ever receiving a Python object.

A probe returns observations, never a verdict: the student's code shares this process and could replace
any function here, so the trusted side believes only what it can check on plain data.
"""
from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterator

import numpy as np
import torch

PROBES: dict[str, Callable[..., Any]] = {}


def probe(function: Callable[..., Any]) -> Callable[..., Any]:
    """Register ``function`` as the probe of the same name."""
    PROBES[function.__name__] = function
    return function


def run(op: str, namespace: dict, args: dict) -> Any:
    """Run the probe ``op``; the names in ``args["trusted"]`` use the grader's implementations meanwhile.

    Those implementations exist only in the worker whose runtime holds ``sandboxed/trusted.py`` (the
    ``student`` role): elsewhere a request that names one fails, it never falls back to the student's code.
    """
    if op not in PROBES:
        raise KeyError(f"unknown probe {op!r}")
    args = dict(args)
    names = args.pop("trusted", None)
    if not names:
        return PROBES[op](namespace, **args)
    from sandboxed import trusted  # noqa: PLC0415 - mounted in one role only

    with replaced(namespace, trusted.implementations(names)):
        return PROBES[op](namespace, **args)


@contextlib.contextmanager
def replaced(namespace: dict, values: dict) -> Iterator[None]:
    """``namespace`` with ``values`` in place during the block; afterwards each of those names is as it was
    before (or absent, if it was)."""
    saved = {name: namespace[name] for name in values if name in namespace}
    namespace.update(values)
    try:
        yield
    finally:
        for name in values:
            namespace.pop(name, None)
        namespace.update(saved)


def lookup(namespace: dict, name: str) -> Any:
    """The student's object called ``name``, or a NameError that says why it is missing."""
    if name not in namespace:
        raise NameError(f"{name} is not defined (its cell is missing or failed to run)")
    return namespace[name]


def describe(value: Any) -> dict:
    """What ``value`` is: type, and for tensors and arrays shape, dtype and device; recursive for sequences."""
    if isinstance(value, torch.Tensor):
        return {"type": "Tensor", "shape": list(value.shape), "dtype": str(value.dtype).replace("torch.", ""),
                "device": value.device.type, "requires_grad": bool(value.requires_grad)}
    if isinstance(value, np.ndarray):
        return {"type": "ndarray", "shape": list(value.shape), "dtype": str(value.dtype), "device": "cpu",
                "requires_grad": False}
    if isinstance(value, (tuple, list)):
        return {"type": type(value).__name__, "items": [describe(item) for item in value]}
    return {"type": type(value).__name__}


def plain(value: Any) -> Any:
    """``value`` as plain data: tensors detached on the CPU, arrays as tensors, dicts with str keys,
    tuples as lists, other objects as None."""
    if isinstance(value, torch.Tensor):
        with torch._C.DisableTorchFunctionSubclass():  # a Tensor subclass's __torch_function__ is not run: what
            return _sendable(value.detach().cpu().clone())  # comes out is a plain torch.Tensor
    if isinstance(value, np.ndarray) and value.dtype != object:
        return _sendable(torch.from_numpy(np.array(value)))
    if isinstance(value, (tuple, list)):
        return [plain(item) for item in value]
    if isinstance(value, dict):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, bool) or value is None:
        return value
    for kind in (int, float, str):  # also str and int subclasses such as torch.__version__
        if isinstance(value, kind):
            return kind(value)
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    return None


_SENDABLE = {torch.float64, torch.float32, torch.float16, torch.bfloat16, torch.int64, torch.int32, torch.int16,
             torch.int8, torch.uint8, torch.bool}


def _sendable(value: torch.Tensor) -> torch.Tensor | None:
    """A tensor in a dtype the protocol carries: other integers as int64, other floats as float32; complex: None."""
    if value.dtype in _SENDABLE:
        return value
    if value.is_complex():
        return None
    return value.to(torch.float32 if value.is_floating_point() else torch.int64)


def _device(name: str) -> torch.device:
    return torch.device(name if name != "cuda" or torch.cuda.is_available() else "cpu")


def _moved(values: list, device: torch.device) -> list:
    return [v.to(device) if isinstance(v, torch.Tensor) else v for v in values]


@probe
def environment(namespace: dict) -> dict:
    """The worker's torch version, device and thread count."""
    return {"torch": torch.__version__, "cuda": torch.cuda.is_available(), "threads": torch.get_num_threads()}


@probe
def call(namespace: dict, name: str, args: list, kwargs: dict | None = None, seed: int = 0,
         device: str = "cpu") -> dict:
    """``name(*args, **kwargs)`` after ``torch.manual_seed(seed)``: the result and its description."""
    function = lookup(namespace, name)
    torch.manual_seed(seed)
    result = function(*_moved(args, _device(device)), **(kwargs or {}))
    return {"value": plain(result), "info": describe(result)}


@probe
def gradients(namespace: dict, name: str, args: list, weight: torch.Tensor, seed: int = 0,
              differentiate: list[bool] | None = None) -> dict:
    """Call ``name(*args)`` with the tensor arguments requiring grad (all, or those flagged in
    ``differentiate``), back-propagate ``sum(out * weight)``.

    Returns the output, whether it is attached to the graph, and each argument's gradient (None if
    no gradient reached it).
    """
    function = lookup(namespace, name)
    flags = differentiate or [True] * len(args)
    inputs = [a.clone().requires_grad_(True) if isinstance(a, torch.Tensor) and flag else a
              for a, flag in zip(args, flags)]
    torch.manual_seed(seed)
    out = function(*inputs)
    attached = isinstance(out, torch.Tensor) and out.requires_grad
    if attached:
        (out * weight).sum().backward()
    grads = [a.grad.clone() if isinstance(a, torch.Tensor) and a.grad is not None else None for a in inputs]
    return {"value": plain(out), "info": describe(out), "attached": attached, "grads": grads}


@probe
def figure(namespace: dict, name: str, args: list, kwargs: dict | None = None) -> dict:
    """Call the plotting function ``name`` and report the scatter plots in the figure it returns."""
    import matplotlib.collections
    import matplotlib.figure
    import matplotlib.pyplot as plt

    plt.close("all")
    result = lookup(namespace, name)(*args, **(kwargs or {}))
    if not isinstance(result, matplotlib.figure.Figure):
        return {"is_figure": False, "type": type(result).__name__}
    result.canvas.draw()
    scatters = []
    for ax in result.axes:
        for collection in ax.collections:
            if isinstance(collection, matplotlib.collections.PathCollection):
                scatters.append({
                    "offsets": torch.as_tensor(np.asarray(collection.get_offsets(), dtype=np.float64)),
                    "facecolors": torch.as_tensor(np.asarray(collection.get_facecolors(), dtype=np.float64)),
                })
    legends = [ax.get_legend() for ax in result.axes if ax.get_legend() is not None] + list(result.legends)
    legend = bool(legends)
    legend_entries = sum(1 for box in legends for text in box.get_texts() if text.get_text().strip())
    colorbar = any(getattr(ax, "_colorbar", None) is not None for ax in result.axes)
    titles = [ax.get_title(loc) for ax in result.axes for loc in ("center", "left", "right")]
    titles.append(result._suptitle.get_text() if result._suptitle is not None else "")
    plt.close("all")
    return {"is_figure": True, "type": type(result).__name__, "scatters": scatters, "legend": legend,
            "legend_entries": legend_entries, "colorbar": colorbar, "titles": [title for title in titles if title]}


# What a worker that drops its privileges itself (``--sandbox none`` under a root grader) imports first, while
# it still can: afterwards, as uid 65534, it may not be able to open the runtime's or the Python prefix's folders.
PRELOADED_MODULES = ("math", "random", "itertools", "collections", "functools", "typing", "dataclasses",
                     "numpy", "torch.nn.functional", "torch.distributions", "matplotlib.pyplot", "safetensors.torch",
                     "labtools")


def preload() -> None:
    """Import :data:`PRELOADED_MODULES`."""
    import importlib

    for module in PRELOADED_MODULES:
        importlib.import_module(module)
