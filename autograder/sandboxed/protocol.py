"""Length-prefixed messages between the trusted grader and the sandboxed worker.

A message is a ``dict`` of plain data (str, int, float, bool, None, lists, tuples, dicts and
``torch.Tensor``), written with :func:`torch.save` and read back with
``torch.load(weights_only=True)``, which refuses arbitrary pickled objects. So whatever the
student's code does inside the worker, the trusted side only ever receives data.

Frame: 8-byte big-endian length, then the payload.
"""
from __future__ import annotations

import io
import struct
from typing import Any, BinaryIO

import torch

_HEADER = struct.Struct(">Q")
MAX_MESSAGE_BYTES = 512 * 2**20


class ProtocolError(RuntimeError):
    """The other side closed the pipe or sent something that is not a valid message."""


def encode(message: dict[str, Any]) -> bytes:
    """Serialise ``message`` into one frame."""
    buffer = io.BytesIO()
    torch.save(message, buffer)
    payload = buffer.getvalue()
    return _HEADER.pack(len(payload)) + payload


def decode(payload: bytes) -> dict[str, Any]:
    """Deserialise a payload (without its header), allowing plain data only."""
    try:
        message = torch.load(io.BytesIO(payload), weights_only=True, map_location="cpu")
    except Exception as error:  # noqa: BLE001 - any failure means "not a valid message"
        raise ProtocolError(f"invalid message: {type(error).__name__}") from None
    if not isinstance(message, dict):
        raise ProtocolError(f"invalid message: a {type(message).__name__}, not a dict")
    return message


def read_exactly(stream: BinaryIO, size: int) -> bytes:
    """Read ``size`` bytes or raise :class:`ProtocolError` when the stream ends first."""
    chunks, remaining = [], size
    while remaining:
        chunk = stream.read(remaining)
        if not chunk:
            raise ProtocolError("the other side closed the connection")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def send(stream: BinaryIO, message: dict[str, Any]) -> None:
    """Write one message and flush."""
    stream.write(encode(message))
    stream.flush()


def receive(stream: BinaryIO) -> dict[str, Any]:
    """Read one message (blocking)."""
    (size,) = _HEADER.unpack(read_exactly(stream, _HEADER.size))
    if size > MAX_MESSAGE_BYTES:
        raise ProtocolError(f"message of {size} bytes is over the {MAX_MESSAGE_BYTES}-byte limit")
    return decode(read_exactly(stream, size))
