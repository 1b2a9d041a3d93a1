"""Probes: the only things the trusted grader can ask the worker to do.

Each probe takes the student's namespace and plain-data arguments, calls the student's code in
a fixed, seeded way, and returns plain data (tensors on the CPU, numbers, strings, lists, dicts).
:func:`describe` reports what a value *is* (type, shape, dtype, device) so the trusted side can
give layered feedback (type, then shape, then value) without ever receiving a Python object.
"""
from __future__ import annotations

import contextlib
import functools
import os
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch import nn

from sandboxed import trusted, training, watch

PROBES: dict[str, Callable[..., Any]] = {}


def probe(function: Callable[..., Any]) -> Callable[..., Any]:
    """Register ``function`` as the probe of the same name."""
    PROBES[function.__name__] = function
    return function


def run(op: str, namespace: dict, args: dict) -> Any:
    """Run the probe ``op``; the names in ``args["trusted"]`` use the grader's implementations meanwhile."""
    if op not in PROBES:
        raise KeyError(f"unknown probe {op!r}")
    args = dict(args)
    with trusted.substituted(namespace, args.pop("trusted", None)):
        return PROBES[op](namespace, **args)


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
         device: str = "cpu", forbid: list[str] | None = None) -> dict:
    """``name(*args, **kwargs)`` after ``torch.manual_seed(seed)``: the result and its description; with
    ``forbid``, also ``"forbidden"``: the first code of those packages that the call ran (:mod:`sandboxed.watch`)."""
    function = lookup(namespace, name)
    torch.manual_seed(seed)
    with watch.watching(forbid or []) as forbidden:  # what reading the result runs is watched too (lazy values)
        result = function(*_moved(args, _device(device)), **(kwargs or {}))
        value, info = plain(result), describe(result)
    return {"value": value, "info": info, "forbidden": forbidden[0] if forbidden else None}


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


def _build(namespace: dict, name: str, kwargs: dict, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    model = lookup(namespace, name)(**kwargs)
    if not isinstance(model, nn.Module):
        raise TypeError(f"{name}(...) made a {type(model).__name__}, not a torch.nn.Module")
    return model


def _layer_types(module: Any) -> list[str] | None:
    return [type(m).__name__ for m in module.modules()] if isinstance(module, nn.Module) else None


@probe
def model(namespace: dict, name: str, kwargs: dict, inputs: list, latent_dim: int = 2, seed: int = 0) -> dict:
    """Build ``name(**kwargs)`` and run it in eval mode on each input.

    For each input it reports the forward outputs, the first output of two forwards in training mode
    under two seeds (a VAE samples its latent: they differ), what went into and came out of
    ``model.decoder`` during the first forward (a forward hook), and ``model.decoder`` applied to
    standard-normal latents of size ``latent_dim``.
    """
    net = _build(namespace, name, kwargs, seed)
    net.eval()
    report = {
        "children": sorted(name for name, _ in net.named_children()),
        "encoder_layers": _layer_types(getattr(net, "encoder", None)),
        "decoder_layers": _layer_types(getattr(net, "decoder", None)),
        "runs": [],
    }
    decoder = getattr(net, "decoder", None)
    for x in inputs:
        seen: dict = {}
        hook = None
        if isinstance(decoder, nn.Module):
            hook = decoder.register_forward_hook(
                lambda module, args, output, seen=seen: seen.update(input=plain(args[0] if args else None),
                                                                    output=plain(output)))
        torch.manual_seed(seed)
        with torch.no_grad():
            outputs = net(x)
        if hook is not None:
            hook.remove()
        run = {"outputs": plain(outputs), "info": describe(outputs), **_resampled(namespace, net, x, seed),
               "decoder_input": seen.get("input"), "decoder_output": seen.get("output")}
        if callable(decoder):
            with torch.no_grad():
                z = torch.randn(len(x), latent_dim, generator=torch.Generator().manual_seed(seed))
                decoded = decoder(z)
            run["decoded_prior"], run["decoded_prior_info"] = plain(decoded), describe(decoded)
        report["runs"].append(run)
    return report


@probe
def parameter_gradients(namespace: dict, name: str, kind: str, kwargs: dict, x: torch.Tensor, seed: int = 0) -> dict:
    """One step of the grader's training objective on ``x`` (training mode): for every parameter of
    ``name(**kwargs)``, the sum of its gradient's absolute values (None: no gradient reached it)."""
    net = _build(namespace, name, kwargs, seed)
    net.train()
    torch.manual_seed(seed)
    training.objective(kind, net, x).backward()
    return {key: None if value.grad is None else float(value.grad.abs().sum())
            for key, value in net.named_parameters()}


def _resampled(namespace: dict, net: nn.Module, x: torch.Tensor, seed: int) -> dict:
    """Two forwards of ``net(x)`` in training mode, under ``seed`` and ``seed + 1`` (then back to eval).

    ``resampled``: the first output of each; ``train_outputs``: all outputs of the first; ``sampled_with``:
    the (mu, logvar) of the first call to the namespace's ``reparameterize`` during the first, or None.
    """
    firsts, calls, first_outputs = [], [], None
    net.train()
    for offset in (0, 1):
        torch.manual_seed(seed + offset)
        with torch.no_grad(), _recording(namespace, "reparameterize", calls if offset == 0 else []):
            outputs = net(x)
        first_outputs = outputs if offset == 0 else first_outputs
        firsts.append(plain(outputs[0] if isinstance(outputs, (tuple, list)) and outputs else outputs))
    net.eval()
    sampled_with = None
    if calls:
        args, kwargs = calls[0]
        sampled_with = [plain(args[0] if len(args) > 0 else kwargs.get("mu")),
                        plain(args[1] if len(args) > 1 else kwargs.get("logvar"))]
    return {"resampled": firsts, "train_outputs": plain(first_outputs), "sampled_with": sampled_with}


@contextlib.contextmanager
def _recording(namespace: dict, name: str, calls: list) -> Iterator[None]:
    """Append ``(args, kwargs)`` of every call to the function ``namespace[name]`` to ``calls`` during the block."""
    original = namespace.get(name)
    if not callable(original):
        yield
        return

    def recorded(*args: Any, **kwargs: Any) -> Any:
        calls.append((args, kwargs))
        return original(*args, **kwargs)

    with trusted.replaced(namespace, {name: recorded}):
        yield


@functools.lru_cache(maxsize=2)
def _training_images(name: str) -> torch.Tensor:
    """The training split written by the trusted side (uint8), as floats in [0, 1] like ``labtools.load_dataset``.

    Only the training split is mounted in the sandbox; the held-out images reach a worker only as the
    argument of :func:`encode`, in a worker that is never asked to decode.
    """
    from safetensors.torch import load_file

    folder = os.environ.get("GRADER_DATA")
    if not folder:
        raise RuntimeError("no training data was given to the worker")
    images = load_file(os.path.join(folder, f"{name}.safetensors"))["images"]
    return images.to(torch.float32, memory_format=torch.contiguous_format).div_(255.0)


# What a worker that drops its privileges itself (``--sandbox none`` under a root grader) imports and reads
# first, while it still can: afterwards, as uid 65534, it may not be able to open the runtime's, the
# Python prefix's or the training data's folders.
PRELOADED_MODULES = ("math", "random", "itertools", "collections", "functools", "typing", "dataclasses",
                     "numpy", "torch.nn.functional", "torch.distributions", "matplotlib.pyplot", "safetensors.torch",
                     "labtools")


def preload() -> None:
    """Import :data:`PRELOADED_MODULES` and read every training split given to the worker."""
    import importlib

    for module in PRELOADED_MODULES:
        importlib.import_module(module)
    layer = nn.Linear(2, 2)  # one optimiser step: the modules that training imports on first use
    optimizer = training._adam(list(layer.parameters()), 1e-3)
    layer(torch.zeros(1, 2)).pow(2).sum().backward()
    optimizer.step()
    folder = os.environ.get("GRADER_DATA")
    for name in sorted(os.listdir(folder)) if folder else []:
        if name.endswith(".safetensors"):
            _training_images(name.removesuffix(".safetensors"))


def _restored(namespace: dict, name: str, kwargs: dict, seed: int, state: dict, where: torch.device) -> nn.Module:
    """``name(**kwargs)`` with the trained weights ``state`` (strictly: every key, every shape), in eval mode."""
    net = _build(namespace, name, kwargs, seed)
    net.load_state_dict(state, strict=True)
    return net.to(where).eval()


@probe
def train(namespace: dict, name: str, kind: str, dataset: str, n_train: int, epochs: int, batch_size: int,
          lr: float, seed: int, kwargs: dict | None = None, device: str = "cpu") -> dict:
    """Train ``name(**kwargs)`` with the grader's loop (:func:`training.fit`) on the training split.

    Returns the training history and the trained weights (plain tensors); nothing is evaluated here.
    """
    where = _device(device)
    torch.use_deterministic_algorithms(True, warn_only=True)
    x_train = _training_images(dataset)[:n_train].to(where)
    net = _build(namespace, name, kwargs or {}, seed).to(where)
    history = training.fit(net, x_train, kind, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed)
    state = {key: value.detach().cpu().clone() for key, value in net.state_dict().items()
             if isinstance(value, torch.Tensor)}
    return {"history": history, "state": state}


@probe
def encode(namespace: dict, name: str, kind: str, kwargs: dict, seed: int, state: dict, x: torch.Tensor,
           device: str = "cpu") -> dict:
    """Run the trained model on ``x`` and return only its latents: ``encoded`` (AE) or ``mu``, ``logvar`` (VAE).

    The reconstruction that ``forward`` also computes is described (type, shape) but never returned.
    """
    where = _device(device)
    net = _restored(namespace, name, kwargs, seed, state, where)
    torch.manual_seed(seed)
    with torch.no_grad():
        outputs = net(x.to(where))
    info = describe(outputs)
    if not isinstance(outputs, (tuple, list)):
        return {"info": info, "latents": []}
    latents = outputs[:1] if kind == "ae" else outputs[1:3]
    return {"info": info, "latents": [plain(part) for part in latents]}


@probe
def decode(namespace: dict, name: str, kwargs: dict, seed: int, state: dict, z: torch.Tensor,
           device: str = "cpu") -> dict:
    """``model.decoder(z)`` of the trained model: the images drawn from the latents the trusted side chose."""
    where = _device(device)
    net = _restored(namespace, name, kwargs, seed, state, where)
    decoder = getattr(net, "decoder", None)
    if not callable(decoder):
        raise AttributeError(f"{name} has no self.decoder that maps a latent to an image")
    with torch.no_grad():
        images = decoder(z.to(where))
    return {"value": plain(images), "info": describe(images)}
