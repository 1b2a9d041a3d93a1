"""Model and training probes: build the student's model classes, probe them, train, encode and decode.

Mounted only in the ``student`` and ``encoder`` workers, never in the ``functions`` worker that answers the
``reparameterize``, ``vae_loss``, ``kmeans`` and plotting probes: it imports the grader's training loop,
whose VAE objective is the reference ``vae_loss``.
"""
from __future__ import annotations

import contextlib
import functools
import os
from typing import Any, Iterator

import torch
from torch import nn

from sandboxed import training
from sandboxed.probes import _device, describe, lookup, plain, probe, replaced


def _build(namespace: dict, name: str, kwargs: dict, seed: int, given: dict | None = None) -> nn.Module:
    """``name(**kwargs)`` under ``seed``: the student's class, or with ``given`` the released template's (see
    :func:`_given_class`)."""
    torch.manual_seed(seed)
    cls = _given_class(namespace, name, **given) if given else lookup(namespace, name)
    model = cls(**kwargs)
    if not isinstance(model, nn.Module):
        raise TypeError(f"{name}(...) made a {type(model).__name__}, not a torch.nn.Module")
    return model


def _given_class(namespace: dict, name: str, source: str, calls: list[str]) -> Any:
    """Class ``name`` as the released template defines it (``source``: the template's definitions), in a scope of
    its own whose ``calls`` (e.g. ``reparameterize``) are the student's functions, looked up at each call.

    ``vae_training`` grades the student's ``reparameterize`` inside the *given* VAE: a VAE that the student
    redefined (to skip the sampling, say) is not the one trained.
    """
    scope: dict = {"__name__": "given"}
    exec(compile(source, "<template>", "exec"), scope)  # noqa: S102 - the template's own code
    for function in calls:
        scope[function] = functools.partial(_forward_to, namespace, function)
    return scope[name]


def _forward_to(namespace: dict, function: str, *args: Any, **kwargs: Any) -> Any:
    return lookup(namespace, function)(*args, **kwargs)


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

    with replaced(namespace, {name: recorded}):
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


def preload() -> None:
    """What a worker that drops its privileges itself (``--sandbox none``) does first, while it still can
    (see :func:`sandboxed.probes.preload`): one optimiser step, and read every training split it was given."""
    layer = nn.Linear(2, 2)  # one optimiser step: the modules that training imports on first use
    optimizer = training._adam(list(layer.parameters()), 1e-3)
    layer(torch.zeros(1, 2)).pow(2).sum().backward()
    optimizer.step()
    folder = os.environ.get("GRADER_DATA")
    for name in sorted(os.listdir(folder)) if folder else []:
        if name.endswith(".safetensors"):
            _training_images(name.removesuffix(".safetensors"))


def _restored(namespace: dict, name: str, kwargs: dict, seed: int, state: dict, where: torch.device,
              given: dict | None = None) -> nn.Module:
    """``name(**kwargs)`` with the trained weights ``state`` (strictly: every key, every shape), in eval mode."""
    net = _build(namespace, name, kwargs, seed, given)
    net.load_state_dict(state, strict=True)
    return net.to(where).eval()


@probe
def train(namespace: dict, name: str, kind: str, dataset: str, n_train: int, epochs: int, batch_size: int,
          lr: float, seed: int, kwargs: dict | None = None, device: str = "cpu", given: dict | None = None) -> dict:
    """Train ``name(**kwargs)`` with the grader's loop (:func:`training.fit`) on the training split.

    Returns the training history and the trained weights (plain tensors); nothing is evaluated here.
    """
    where = _device(device)
    torch.use_deterministic_algorithms(True, warn_only=True)
    x_train = _training_images(dataset)[:n_train].to(where)
    net = _build(namespace, name, kwargs or {}, seed, given).to(where)
    history = training.fit(net, x_train, kind, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed)
    state = {key: value.detach().cpu().clone() for key, value in net.state_dict().items()
             if isinstance(value, torch.Tensor)}
    return {"history": history, "state": state}


def _mean(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """The encoding stand-in for ``reparameterize``: z = μ (nothing of z leaves the encoder)."""
    return mu


# While a model whose question lists ``trusted`` names is *encoded*, those names are these stand-ins: the encoder
# worker holds no trusted implementation (it trains the VAE with the student's own reparameterize), and encoding
# needs none, since only μ and logvar leave it. A stand-in is not the reference: z = μ fails every check of it.
STAND_INS = {"reparameterize": _mean}


@probe
def encode(namespace: dict, name: str, kind: str, kwargs: dict, seed: int, state: dict, x: torch.Tensor,
           device: str = "cpu", stand_in: list[str] | None = None, given: dict | None = None) -> dict:
    """Run the trained model on ``x`` and return only its latents: ``encoded`` (AE) or ``mu``, ``logvar`` (VAE).

    The reconstruction that ``forward`` also computes is described (type, shape) but never returned.
    """
    where = _device(device)
    net = _restored(namespace, name, kwargs, seed, state, where, given)
    torch.manual_seed(seed)
    with torch.no_grad(), replaced(namespace, {key: STAND_INS[key] for key in stand_in or []}):
        outputs = net(x.to(where))
    info = describe(outputs)
    if not isinstance(outputs, (tuple, list)):
        return {"info": info, "latents": []}
    latents = outputs[:1] if kind == "ae" else outputs[1:3]
    return {"info": info, "latents": [plain(part) for part in latents]}


@probe
def decode(namespace: dict, name: str, kwargs: dict, seed: int, state: dict, z: torch.Tensor,
           device: str = "cpu", given: dict | None = None) -> dict:
    """``model.decoder(z)`` of the trained model: the images drawn from the latents the trusted side chose."""
    where = _device(device)
    net = _restored(namespace, name, kwargs, seed, state, where, given)
    decoder = getattr(net, "decoder", None)
    if not callable(decoder):
        raise AttributeError(f"{name} has no self.decoder that maps a latent to an image")
    with torch.no_grad():
        images = decoder(z.to(where))
    return {"value": plain(images), "info": describe(images)}
