"""Framed messages between the trusted grader and the untrusted sandboxed worker.

No pickle is involved: the structure is JSON and the tensors are raw little-endian bytes in a
`safetensors <https://github.com/huggingface/safetensors>`_ blob, so a message can never run
code, and every section is capped and validated before anything is built from it, so a frame
cannot make the receiver spend much more memory or time than its own size.

Frame
-----
``struct ">4sQQ"`` header (20 bytes): the magic ``b"AGv2"``, ``json_len`` and ``tensor_len``
(big-endian u64); then ``json_len`` bytes of UTF-8 JSON; then ``tensor_len`` bytes of a
safetensors blob (0 bytes when the message holds no tensors).

* The JSON is the message: a dict at the top level, holding dicts (str keys only), lists, str,
  int, float (``NaN``/``Infinity``/``-Infinity`` allowed, as Python's :mod:`json` writes them),
  bool and None.  Tuples are sent as lists.
* A :class:`torch.Tensor` anywhere in the structure is replaced by ``{"$tensor": NAME}`` and its
  data goes into the blob under ``NAME`` (``t0``, ``t1``, ...).  Each name is referenced exactly
  once and every tensor in the blob is referenced.  Tensors are sent detached and as plain
  contiguous CPU data: each gets its own byte range holding exactly its elements (a
  non-contiguous, expanded or sliced tensor sends its elements, never its storage).  Allowed
  dtypes: float64, float32, float16, bfloat16, int64, int32, int16, int8, uint8, bool.
* A dict key that starts with ``$`` is sent with one more ``$`` in front (``"$x"`` -> ``"$$x"``)
  so that it can never be taken for a tensor reference; on receipt any other key starting with a
  single ``$`` is refused.

Caps (keyword arguments of :func:`receive`, :func:`decode` and :func:`encode`)
-----------------------------------------------------------------------------
* ``max_json_bytes`` = ``MAX_JSON_BYTES`` = 1 MiB of JSON;
* ``max_tensor_bytes`` = ``MAX_TENSOR_BYTES`` = 64 MiB of safetensors blob (header included);
* ``max_tensors`` = ``MAX_TENSORS`` = 4096 tensors;
* ``max_depth`` = ``MAX_DEPTH`` = 64 levels of JSON nesting: arrays and objects as they appear in
  the JSON text, the top-level dict being level 1 and a ``{"$tensor": ...}`` reference a level
  of its own.
* Fixed: a safetensors header of at most 1 MiB (``MAX_SAFETENSORS_HEADER_BYTES``), an optional
  ``__metadata__`` of str -> str of at most 64 Ki characters, at most ``MAX_NDIM`` = 32
  dimensions per tensor, the product of a tensor's non-zero dimensions times its item size at
  most ``max_tensor_bytes`` (an empty tensor cannot claim an absurd shape), integers of at
  most 4300 digits (``MAX_INT_DIGITS``), and at most ``MAX_PRINTED_ELEMENTS`` = 100,000 elements
  that ``str()`` of all the message's tensors would write (see :func:`printed_elements`).
  ``MAX_MESSAGE_BYTES`` is the largest frame under the default caps.

Why the last cap: the receiver quotes what it receives (an exception message in feedback, a
"type" in a grader's message, pytest describing a failed check's arguments), and torch writes
every element of a tensor of at most 1,000 elements, and up to 6 per dimension of a larger one,
at about 10 µs each. A 10 MB tensor of shape ``(6,) * 9`` was a valid frame that took the
trusted side 86 s to quote; 4,096 tensors of 999 elements would take 40 s. The reference's
largest answer (two conv models' weights) writes under 6,000 elements.

:func:`receive` checks the header's lengths against the caps before it reads the body.

Receiving
---------
Anything invalid raises :class:`ProtocolError` with a short reason (``invalid message: ...``,
``... over the N-byte limit`` or ``the other side closed the connection``): bad magic, a section
over its cap, a truncated frame, JSON that is not UTF-8 or not valid, nesting deeper than
``max_depth`` (measured on the raw text by numpy before parsing, so no recursion), a top level
that is not a dict, a reserved ``$`` key, a ``$tensor`` reference that is malformed, names a
tensor not in the blob or one already used, a tensor left unreferenced, a lone surrogate in a
string, or a malformed blob.  The blob is validated here first -- header size, a dict header
without duplicate names, the dtype allow-list, shapes of non-negative ints, ``data_offsets``
inside the data section matching ``prod(shape) * itemsize`` and tiling it exactly without
overlaps -- then parsed by ``safetensors.deserialize`` (which validates it again), and bool
tensors must hold only bytes 0 and 1.  Decoded tensors are ordinary contiguous CPU tensors, each
owning exactly its own writable memory.  Decoding a frame costs about twice the tensor section
plus a few tens of bytes per byte of JSON in the worst case (a JSON of many empty lists), and
well under a second at the caps.

Sending
-------
:func:`encode` and :func:`send` raise :class:`TypeError` for anything else (numpy arrays and
numpy integer scalars included: convert them first; float subclasses such as ``np.float64``
are sent as floats), for tensors of another dtype, sparse, quantized, meta or nested tensors,
for non-str dict keys and a top level that is not a dict; and :class:`ValueError` for a message
over a cap, nested too deep (or cyclic), or holding a string with a lone surrogate.

API
---
``encode(message, **caps) -> bytes``: a whole frame, header included.
``decode(json_bytes, tensor_bytes=b"", **caps) -> dict``: a frame's two sections, without its header.
``send(stream, message, **caps)``: write one frame (header, JSON, then the tensors' bytes
straight from memory) and flush.
``receive(stream, **caps) -> dict``: read one frame (blocking; ``stream`` needs only ``.read(n)``).
``read_exactly(stream, size) -> bytes``; ``ProtocolError`` (a ``RuntimeError``).
"""
from __future__ import annotations

import gc
import json
import math
import re
import struct
import sys
from typing import Any, BinaryIO

import numpy as np
import torch
from safetensors import deserialize as _safetensors_deserialize

MAGIC = b"AGv2"
_HEADER = struct.Struct(">4sQQ")
HEADER_BYTES = _HEADER.size

MAX_JSON_BYTES = 2**20
MAX_TENSOR_BYTES = 64 * 2**20
MAX_TENSORS = 4096
MAX_DEPTH = 64
MAX_NDIM = 32
MAX_SAFETENSORS_HEADER_BYTES = 2**20
MAX_METADATA_CHARS = 64 * 2**10
MAX_INT_DIGITS = 4300
MAX_PRINTED_ELEMENTS = 100_000  # about 1 s of str() of every tensor of a message; see the module docstring
_PRINT_THRESHOLD, _PRINT_EDGE_ITEMS = 1000, 3  # torch's print options (defaults; nothing here changes them)
MAX_MESSAGE_BYTES = HEADER_BYTES + MAX_JSON_BYTES + MAX_TENSOR_BYTES  # the largest frame under the default caps

TENSOR_KEY = "$tensor"
_INT_LIMIT = 10**MAX_INT_DIGITS
_INT_BITS = _INT_LIMIT.bit_length() - 1

# safetensors dtype code <-> torch dtype, and the item size in bytes
_DTYPES: dict[str, tuple[torch.dtype, int]] = {
    "F64": (torch.float64, 8), "F32": (torch.float32, 4), "F16": (torch.float16, 2), "BF16": (torch.bfloat16, 2),
    "I64": (torch.int64, 8), "I32": (torch.int32, 4), "I16": (torch.int16, 2), "I8": (torch.int8, 1),
    "U8": (torch.uint8, 1), "BOOL": (torch.bool, 1),
}
_CODES = {dtype: code for code, (dtype, _) in _DTYPES.items()}
_ENTRY_KEYS = {"dtype", "shape", "data_offsets"}


class ProtocolError(RuntimeError):
    """The other side closed the pipe or sent something that is not a valid message."""


def printed_elements(shape: list[int] | tuple[int, ...] | torch.Size) -> int:
    """How many elements ``str()`` writes for a tensor of ``shape``: all of them up to torch's threshold,
    else at most ``2 * edgeitems`` per dimension (torch summarizes the rest as "...")."""
    count = math.prod(shape)
    if count <= _PRINT_THRESHOLD:
        return count
    return math.prod(min(size, 2 * _PRINT_EDGE_ITEMS) for size in shape)


# -- sending ------------------------------------------------------------------------------------
class _Encoder:
    def __init__(self, max_tensors: int, max_tensor_bytes: int, max_depth: int) -> None:
        self.max_tensors, self.max_tensor_bytes, self.max_depth = max_tensors, max_tensor_bytes, max_depth
        self.tensors: dict[str, torch.Tensor] = {}
        self.nbytes = self.printed = 0

    def tensor(self, value: torch.Tensor) -> dict:
        if value.layout != torch.strided or value.is_quantized or value.is_meta or value.is_nested:
            raise TypeError(f"cannot send a {value.layout} / quantized / meta / nested tensor")
        if value.dtype not in _CODES:
            raise TypeError(f"cannot send a tensor of dtype {value.dtype}")
        if len(self.tensors) >= self.max_tensors:
            raise ValueError(f"more than {self.max_tensors} tensors in one message")
        self.nbytes += value.numel() * value.element_size()
        if self.nbytes > self.max_tensor_bytes:
            raise ValueError(f"over {self.max_tensor_bytes} bytes of tensor data in one message")
        if value.dim() > MAX_NDIM:
            raise ValueError(f"a tensor with over {MAX_NDIM} dimensions")
        if value.element_size() * math.prod(max(d, 1) for d in value.shape) > self.max_tensor_bytes:
            raise ValueError("a tensor whose shape is over the size limit")
        self.printed += printed_elements(value.shape)
        if self.printed > MAX_PRINTED_ELEMENTS:
            raise ValueError(f"tensors whose text would show over {MAX_PRINTED_ELEMENTS} elements in one message")
        # a plain contiguous CPU tensor; its bytes are copied into a range of the blob of its own
        data = value.detach().resolve_conj().resolve_neg().to("cpu").contiguous()
        name = f"t{len(self.tensors)}"
        self.tensors[name] = data
        return {TENSOR_KEY: name}

    def walk(self, value: Any, depth: int) -> Any:
        if value is None or isinstance(value, bool):
            return value
        if isinstance(value, int):
            value = int(value)
            if value.bit_length() > _INT_BITS and abs(value) >= _INT_LIMIT:
                raise ValueError(f"an integer of over {MAX_INT_DIGITS} digits")
            return value
        if isinstance(value, float):
            return float(value)
        if isinstance(value, str):
            return str(value)
        if isinstance(value, (dict, list, tuple, torch.Tensor)):
            if depth >= self.max_depth:  # ``depth`` containers hold this one (or this tensor's reference)
                raise ValueError(f"message nested deeper than {self.max_depth} levels (or cyclic)")
            if isinstance(value, torch.Tensor):
                return self.tensor(value)
            if isinstance(value, dict):
                out = {}
                for key, item in value.items():
                    if not isinstance(key, str):
                        raise TypeError(f"dict keys must be str, not {type(key).__name__}")
                    key = str(key)
                    out["$" + key if key.startswith("$") else key] = self.walk(item, depth + 1)
                return out
            return [self.walk(item, depth + 1) for item in value]
        raise TypeError(f"cannot send a {type(value).__name__}")


def _encode_parts(message: dict[str, Any], *, max_json_bytes: int = MAX_JSON_BYTES,
                  max_tensor_bytes: int = MAX_TENSOR_BYTES, max_tensors: int = MAX_TENSORS,
                  max_depth: int = MAX_DEPTH) -> list:
    if not isinstance(message, dict):
        raise TypeError(f"a message must be a dict, not a {type(message).__name__}")
    encoder = _Encoder(max_tensors, max_tensor_bytes, max_depth)
    structure = encoder.walk(message, 0)
    try:
        text = json.dumps(structure, ensure_ascii=False, allow_nan=True, check_circular=False,
                          separators=(",", ":")).encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("the message holds a string that is not valid Unicode (a lone surrogate)") from None
    if len(text) > max_json_bytes:
        raise ValueError(f"{len(text)} bytes of JSON, over the {max_json_bytes}-byte limit")
    blob = _safetensors_parts(encoder.tensors) if encoder.tensors else []
    blob_len = sum(len(part) for part in blob)
    if blob_len > max_tensor_bytes:
        raise ValueError(f"{blob_len} bytes of tensors, over the {max_tensor_bytes}-byte limit")
    return [_HEADER.pack(MAGIC, len(text), blob_len), text, *blob]


def _safetensors_parts(tensors: dict[str, torch.Tensor]) -> list:
    """A safetensors blob as a list of buffers: the length-prefixed header, then each tensor's bytes."""
    header, buffers, offset = {}, [], 0
    for name, tensor in tensors.items():
        nbytes = tensor.numel() * tensor.element_size()
        header[name] = {"dtype": _CODES[tensor.dtype], "shape": list(tensor.shape),
                        "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
        if nbytes:
            raw = tensor.reshape(-1).view(torch.uint8)
            if sys.byteorder == "big" and tensor.element_size() > 1:  # safetensors is little-endian
                raw = raw.view(-1, tensor.element_size()).flip(1).reshape(-1)
            buffers.append(memoryview(raw.numpy()))
    text = json.dumps(header, separators=(",", ":")).encode("ascii")
    if len(text) > MAX_SAFETENSORS_HEADER_BYTES:
        raise ValueError("the tensors' safetensors header is over its size limit")
    text += b" " * (-len(text) % 8)  # pad as safetensors does, so the data section starts 8-byte aligned
    return [len(text).to_bytes(8, "little") + text, *buffers]


def encode(message: dict[str, Any], **caps: int) -> bytes:
    """One whole frame (header included) holding ``message``; see the module docstring."""
    return b"".join(_encode_parts(message, **caps))


def send(stream: BinaryIO, message: dict[str, Any], **caps: int) -> None:
    """Write one message and flush."""
    for part in _encode_parts(message, **caps):
        if part:
            stream.write(part)
    stream.flush()


# -- receiving ----------------------------------------------------------------------------------
def read_exactly(stream: BinaryIO, size: int) -> bytes:
    """Read ``size`` bytes or raise :class:`ProtocolError` when the stream ends first."""
    chunks, remaining = [], size
    while remaining:
        chunk = stream.read(remaining)
        if not chunk:
            raise ProtocolError("the other side closed the connection")
        if len(chunk) > remaining:
            raise ProtocolError("the stream returned more bytes than asked for")
        chunks.append(chunk)
        remaining -= len(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)  # b"" for size 0


def _bounded_int(text: str) -> int:
    if len(text) > MAX_INT_DIGITS:
        raise ValueError("integer too long")
    return int(text)


def _parse_int_hook():
    """None (the fast C path) when Python itself already refuses over-long integers."""
    limit = getattr(sys, "get_int_max_str_digits", lambda: 0)()
    return None if 0 < limit <= MAX_INT_DIGITS else _bounded_int


def _unique_pairs(pairs: list) -> dict:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise ValueError("duplicate key")
    return result


def _load_json(text: bytes | str, what: str, unique_keys: bool = False, object_hook: Any = None) -> Any:
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise ProtocolError(f"invalid message: the {what} is not UTF-8") from None
    try:
        return json.loads(text, parse_int=_parse_int_hook(), object_hook=object_hook,
                          object_pairs_hook=_unique_pairs if unique_keys else None)
    except RecursionError:
        raise ProtocolError(f"invalid message: the {what} is nested too deep") from None
    except ValueError:  # JSONDecodeError, an over-long integer, a duplicate key
        raise ProtocolError(f"invalid message: the {what} is not valid JSON") from None


def _check_str(text: str) -> None:
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise ProtocolError("invalid message: a string is not valid Unicode") from None


def _parse_safetensors_header(blob: bytes, max_tensors: int, max_tensor_bytes: int) -> dict[str, tuple]:
    """Validate the blob's header; return {name: (dtype code, shape)}."""
    if not blob:
        return {}
    if len(blob) < 8:
        raise ProtocolError("invalid message: truncated tensor section")
    size = int.from_bytes(blob[:8], "little")
    if size > min(len(blob) - 8, MAX_SAFETENSORS_HEADER_BYTES):
        raise ProtocolError("invalid message: bad safetensors header size")
    header = _load_json(blob[8 : 8 + size], "safetensors header", unique_keys=True)
    if type(header) is not dict:
        raise ProtocolError("invalid message: the safetensors header is not a dict")
    metadata = header.pop("__metadata__", None)
    if metadata is not None:
        if type(metadata) is not dict or not all(type(k) is str and type(v) is str for k, v in metadata.items()):
            raise ProtocolError("invalid message: bad safetensors metadata")
        if sum(len(k) + len(v) for k, v in metadata.items()) > MAX_METADATA_CHARS:
            raise ProtocolError("invalid message: safetensors metadata too large")
    if len(header) > max_tensors:
        raise ProtocolError(f"invalid message: more than {max_tensors} tensors")
    data_size = len(blob) - 8 - size
    entries, ranges, printed = {}, [], 0
    for name, entry in header.items():
        _check_str(name)
        if type(entry) is not dict or entry.keys() != _ENTRY_KEYS:
            raise ProtocolError("invalid message: bad safetensors entry")
        dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
        if type(dtype) is not str or dtype not in _DTYPES:
            raise ProtocolError("invalid message: tensor dtype not allowed")
        itemsize = _DTYPES[dtype][1]
        if (type(shape) is not list or len(shape) > MAX_NDIM
                or not all(type(d) is int and d >= 0 for d in shape)):
            raise ProtocolError("invalid message: bad tensor shape")
        extent = itemsize
        for d in shape:
            extent *= max(d, 1)
            if extent > max_tensor_bytes:
                raise ProtocolError("invalid message: tensor shape too large")
        nbytes = itemsize * math.prod(shape)
        if (type(offsets) is not list or len(offsets) != 2 or not all(type(o) is int for o in offsets)
                or not 0 <= offsets[0] <= offsets[1] <= data_size):
            raise ProtocolError("invalid message: tensor data offsets outside the data section")
        if offsets[1] - offsets[0] != nbytes:
            raise ProtocolError("invalid message: tensor data offsets do not match its shape")
        printed += printed_elements(shape)
        if printed > MAX_PRINTED_ELEMENTS:
            raise ProtocolError(f"invalid message: tensors whose text would show over {MAX_PRINTED_ELEMENTS} elements")
        entries[name] = (dtype, shape)
        ranges.append((offsets[0], offsets[1]))
    ranges.sort()
    covered = 0
    for begin, end in ranges:
        if begin < covered:
            raise ProtocolError("invalid message: overlapping tensor data")
        if begin > covered:
            raise ProtocolError("invalid message: gap in the tensor data")
        covered = end
    if covered != data_size:
        raise ProtocolError("invalid message: tensor data section not fully used")
    return entries


def _load_tensors(blob: bytes, entries: dict[str, tuple]) -> dict[str, torch.Tensor]:
    try:
        loaded = _safetensors_deserialize(blob)
    except Exception:  # noqa: BLE001 - SafetensorError and whatever else it may raise
        raise ProtocolError("invalid message: safetensors refused the tensor section") from None
    tensors = {}
    for name, view in loaded:
        expected = entries.get(name)
        if expected is None or view["dtype"] != expected[0] or list(view["shape"]) != expected[1]:
            raise ProtocolError("invalid message: safetensors disagrees with the header")
        dtype, itemsize = _DTYPES[expected[0]]
        data = view["data"]
        if not data:
            tensor = torch.empty(expected[1], dtype=dtype)
        else:
            if not isinstance(data, bytearray):  # older safetensors returns bytes: copy to get writable memory
                data = bytearray(data)
            tensor = torch.frombuffer(data, dtype=torch.uint8)
            if sys.byteorder == "big" and itemsize > 1:
                tensor = tensor.view(-1, itemsize).flip(1).contiguous().view(-1)
            if dtype == torch.bool and int(tensor.max()) > 1:
                raise ProtocolError("invalid message: a bool tensor holds bytes other than 0 and 1")
            tensor = tensor.view(dtype).reshape(expected[1])
        tensors[name] = tensor
    if tensors.keys() != entries.keys():
        raise ProtocolError("invalid message: safetensors disagrees with the header")
    return tensors


class _References:
    """``json.loads``'s ``object_hook``: turns tensor references into the tensors (each used once) and
    strips the escaping ``$`` from keys."""

    def __init__(self, tensors: dict[str, torch.Tensor]) -> None:
        self.tensors, self.used = tensors, set()

    def __call__(self, node: dict) -> Any:
        if TENSOR_KEY in node:
            name = node[TENSOR_KEY]
            if len(node) != 1 or type(name) is not str:
                raise ProtocolError("invalid message: malformed tensor reference")
            tensor = self.tensors.pop(name, None)
            if tensor is None:
                if name in self.used:
                    raise ProtocolError("invalid message: a tensor referenced twice")
                raise ProtocolError("invalid message: reference to an unknown tensor")
            self.used.add(name)
            return tensor
        for key in node:
            if key[:1] == "$":
                break
        else:
            return node
        renamed = {}
        for key, item in node.items():
            if key[:1] == "$":
                if key[:2] != "$$":
                    raise ProtocolError("invalid message: a reserved '$' key")
                key = key[1:]
            renamed[key] = item
        return renamed


_NESTING_CHUNK = 2**18
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def _json_depth(data: bytes) -> int:
    """The nesting depth of arrays and objects in ``data`` (exact for valid JSON), in a few linear passes
    of C and numpy code over at most 2**18 bytes at a time: no recursion, no per-token objects."""
    if data.count(b"[") + data.count(b"{") == 0:
        return 0
    data = data.replace(b"\\\\", b"").replace(b'\\"', b"")  # escaped backslashes, then escaped quotes
    depth = deepest = 0
    in_string = False
    for start in range(0, len(data), _NESTING_CHUNK):
        codes = np.frombuffer(data, dtype=np.uint8, count=min(_NESTING_CHUNK, len(data) - start), offset=start)
        inside = np.logical_xor.accumulate(codes == ord('"'))  # True inside a string (and on its opening quote)
        if in_string:
            np.logical_not(inside, out=inside)
        in_string = bool(inside[-1])
        steps = ((codes == ord("[")) | (codes == ord("{"))).view(np.int8)
        steps -= ((codes == ord("]")) | (codes == ord("}"))).view(np.int8)
        steps[inside] = 0
        levels = np.cumsum(steps, dtype=np.int32)
        deepest = max(deepest, depth + int(levels.max()))
        depth += int(levels[-1])
    return deepest


def _tensor_as_null(value: Any) -> None:
    if isinstance(value, torch.Tensor):
        return None
    raise TypeError(type(value).__name__)


def decode(json_bytes: bytes, tensor_bytes: bytes = b"", *, max_json_bytes: int = MAX_JSON_BYTES,
           max_tensor_bytes: int = MAX_TENSOR_BYTES, max_tensors: int = MAX_TENSORS,
           max_depth: int = MAX_DEPTH) -> dict[str, Any]:
    """The message held by a frame's JSON and tensor sections (without the frame header)."""
    if len(json_bytes) > max_json_bytes:
        raise ProtocolError(f"invalid message: JSON section over the {max_json_bytes}-byte limit")
    if len(tensor_bytes) > max_tensor_bytes:
        raise ProtocolError(f"invalid message: tensor section over the {max_tensor_bytes}-byte limit")
    try:
        json_bytes = bytes(json_bytes)
        try:
            text = json_bytes.decode("utf-8")
        except UnicodeDecodeError:
            raise ProtocolError("invalid message: the JSON section is not UTF-8") from None
        if _json_depth(json_bytes) > max_depth:
            raise ProtocolError(f"invalid message: nested deeper than {max_depth} levels")
        tensor_bytes = bytes(tensor_bytes)
        entries = _parse_safetensors_header(tensor_bytes, max_tensors, max_tensor_bytes)
        tensors = _load_tensors(tensor_bytes, entries) if entries else {}
        # without a "$" (written plainly or escaped) there are no references nor "$" keys to handle
        hook = _References(tensors) if b"$" in json_bytes or b"\\u0024" in json_bytes else None
        collecting = gc.isenabled()
        gc.disable()  # JSON makes no cycles; without this, a frame of many small containers costs 10x the time
        try:
            structure = _load_json(text, "JSON section", object_hook=hook)
        finally:
            if collecting:
                gc.enable()
        if _SURROGATE_ESCAPE.search(json_bytes):  # only escapes can make lone surrogates
            try:
                json.dumps(structure, ensure_ascii=False, default=_tensor_as_null).encode("utf-8")
            except UnicodeEncodeError:
                raise ProtocolError("invalid message: a string is not valid Unicode") from None
        if type(structure) is not dict:
            raise ProtocolError(f"invalid message: a {type(structure).__name__}, not a dict")
        if tensors:
            raise ProtocolError("invalid message: a tensor in the blob is not referenced")
        return structure
    except ProtocolError:
        raise
    except RecursionError:
        raise ProtocolError("invalid message: nested too deep") from None
    except Exception as error:  # noqa: BLE001 - any other failure still means "not a valid message"
        raise ProtocolError(f"invalid message: {type(error).__name__}") from None


def receive(stream: BinaryIO, *, max_json_bytes: int = MAX_JSON_BYTES, max_tensor_bytes: int = MAX_TENSOR_BYTES,
            max_tensors: int = MAX_TENSORS, max_depth: int = MAX_DEPTH) -> dict[str, Any]:
    """Read one message (blocking); the lengths are checked against the caps before the body is read."""
    magic, json_len, tensor_len = _HEADER.unpack(read_exactly(stream, HEADER_BYTES))
    if magic != MAGIC:
        raise ProtocolError("invalid message: bad magic (not a protocol v2 frame)")
    if json_len > max_json_bytes:
        raise ProtocolError(f"JSON section of {json_len} bytes is over the {max_json_bytes}-byte limit")
    if tensor_len > max_tensor_bytes:
        raise ProtocolError(f"tensor section of {tensor_len} bytes is over the {max_tensor_bytes}-byte limit")
    json_bytes = read_exactly(stream, json_len)
    tensor_bytes = read_exactly(stream, tensor_len) if tensor_len else b""
    return decode(json_bytes, tensor_bytes, max_json_bytes=max_json_bytes, max_tensor_bytes=max_tensor_bytes,
                  max_tensors=max_tensors, max_depth=max_depth)
