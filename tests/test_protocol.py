"""The grader <-> worker protocol carries plain data only and cannot be used to amplify memory or CPU.

Frames are JSON plus a safetensors blob (see :mod:`autograder.sandboxed.protocol`).  These tests
cover round trips, what the sender refuses, every kind of malformed frame the receiver must refuse
(each with its reason), and "bombs": the worst frames within the caps, decoded in a fresh
subprocess whose time and peak memory are measured.  No GPU; a few seconds in all.
"""
from __future__ import annotations

import io
import json
import math
import os
import pickle
import struct
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load as safetensors_load
from safetensors.torch import save as safetensors_save

from autograder.sandboxed import protocol
from autograder.sandboxed.protocol import ProtocolError

REPO_ROOT = Path(__file__).resolve().parent.parent
MiB = 2**20
ALL_DTYPES = [torch.float64, torch.float32, torch.float16, torch.bfloat16, torch.int64, torch.int32, torch.int16,
              torch.int8, torch.uint8, torch.bool]
SHAPES = [(), (0,), (3, 0, 2), (5,), (2, 3), (2, 1, 4)]


# -- helpers ------------------------------------------------------------------------------------
def round_trip(message: dict) -> dict:
    return protocol.receive(io.BytesIO(protocol.encode(message)))


def frame(json_part: bytes | str | dict, blob: bytes = b"", magic: bytes = b"AGv2") -> bytes:
    if isinstance(json_part, dict):
        json_part = json.dumps(json_part)
    if isinstance(json_part, str):
        json_part = json_part.encode()
    return struct.pack(">4sQQ", magic, len(json_part), len(blob)) + json_part + blob


def sections(data: bytes) -> tuple[bytes, bytes]:
    """The JSON and tensor sections of a frame."""
    magic, json_len, tensor_len = struct.unpack(">4sQQ", data[:20])
    assert magic == b"AGv2" and len(data) == 20 + json_len + tensor_len
    return data[20 : 20 + json_len], data[20 + json_len :]


def blob(header: dict | bytes, data: bytes = b"") -> bytes:
    text = header if isinstance(header, bytes) else json.dumps(header).encode()
    return len(text).to_bytes(8, "little") + text + data


def entry(shape: list, begin: int, end: int, dtype: str = "F32") -> dict:
    return {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}


def refs(names) -> bytes:
    """A JSON section referencing each of ``names`` once."""
    return json.dumps({"ok": True, "value": [{"$tensor": name} for name in names]}).encode()


def decode_blob(header: dict | bytes, data: bytes = b"", **caps) -> dict:
    names = [] if isinstance(header, bytes) else [name for name in header if name != "__metadata__"]
    return protocol.decode(refs(names), blob(header, data), **caps)


def plain_strides(shape) -> tuple:
    strides, step = [], 1
    for size in reversed(shape):
        strides.append(step)
        step *= max(size, 1)
    return tuple(reversed(strides))


def sample(dtype: torch.dtype, shape: tuple) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    if dtype == torch.bool:
        return torch.rand(shape, generator=generator) > 0.5
    if dtype.is_floating_point:
        return (torch.randn(shape, generator=generator, dtype=torch.float64) * 100).to(dtype)
    info = torch.iinfo(dtype)
    values = torch.randint(info.min, info.max, shape, generator=generator, dtype=torch.int64).to(dtype)
    if values.numel() >= 2:
        values.view(-1)[0], values.view(-1)[1] = info.min, info.max
    return values


class HeaderOnly:
    """A stream that hands out the frame header and fails the test if anything more is read."""

    def __init__(self, data: bytes) -> None:
        self.data, self.position = data, 0

    def read(self, size: int) -> bytes:
        if self.position + size > protocol.HEADER_BYTES:
            raise AssertionError("read past the frame header")
        chunk = self.data[self.position : self.position + size]
        self.position += len(chunk)
        return chunk


class Dribble:
    """A stream returning at most ``step`` bytes per read, like a pipe under load."""

    def __init__(self, data: bytes, step: int) -> None:
        self.stream, self.step = io.BytesIO(data), step

    def read(self, size: int) -> bytes:
        return self.stream.read(min(size, self.step))


class Exploit:
    """Unpickling this would create ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


# -- round trips ----------------------------------------------------------------------------------
def test_round_trips_nested_plain_data():
    message = {
        "ok": True, "no": False, "none": None, "int": -7, "big": 2**100, "float": 1.5, "tiny": 5e-324,
        "inf": float("inf"), "-inf": float("-inf"), "text": "é中😀\x00\"\\", "empty": {"list": [], "dict": {}, "str": ""},
        "nested": {"a": [1, [2, [3, {"b": (4, 5, [6])}]]], "t": ("x", None, True)},
        "$tensor": "not a tensor", "$$odd": {"$x": 1, "x": 2}, "": 0,
    }
    decoded = round_trip({**message, "nan": float("nan")})
    assert math.isnan(decoded.pop("nan"))
    expected = json.loads(json.dumps(message))  # tuples become lists, the rest is unchanged
    assert decoded == expected
    assert decoded["nested"]["t"] == ["x", None, True] and type(decoded["nested"]["a"][1][1][1]["b"]) is list
    assert type(decoded["ok"]) is bool and type(decoded["big"]) is int and type(decoded["float"]) is float
    assert decoded["$tensor"] == "not a tensor" and decoded["$$odd"] == {"$x": 1, "x": 2}


def test_round_trips_what_the_old_protocol_test_sent():
    message = {"ok": True, "value": {"z": torch.arange(3.0), "info": ["Tensor", 3, 1.5, None, (1, 2)]}}
    decoded = round_trip(message)
    assert torch.equal(decoded["value"]["z"], torch.arange(3.0))
    assert decoded["value"]["info"] == ["Tensor", 3, 1.5, None, [1, 2]]


@pytest.mark.parametrize("dtype", ALL_DTYPES, ids=str)
def test_round_trips_tensors_of_every_allowed_dtype(dtype):
    tensors = {f"s{i}": sample(dtype, shape) for i, shape in enumerate(SHAPES)}
    decoded = round_trip({"ok": True, "value": {"tensors": tensors, "list": [tensors["s3"], 1]}})
    for name, original in [*tensors.items(), ("list", tensors["s3"])]:
        got = decoded["value"]["list"][0] if name == "list" else decoded["value"]["tensors"][name]
        assert type(got) is torch.Tensor and got.dtype == dtype and got.shape == original.shape
        assert got.device.type == "cpu" and got.is_contiguous() and got.stride() == plain_strides(original.shape)
        assert torch.equal(got, original), name
        if got.numel():  # its own memory: exactly its bytes, not a view into a larger buffer
            assert got.untyped_storage().nbytes() == got.numel() * got.element_size()
    assert decoded["value"]["list"][1] == 1


def test_decoded_tensors_are_fresh_and_writable():
    source = torch.arange(6.0)
    decoded = round_trip({"a": source, "b": source, "c": source[2:4]})
    a, b, c = decoded["a"], decoded["b"], decoded["c"]
    assert len({a.data_ptr(), b.data_ptr(), c.data_ptr(), source.data_ptr()}) == 4
    a.add_(100)
    c.zero_()
    assert torch.equal(b, torch.arange(6.0)) and torch.equal(source, torch.arange(6.0))
    assert torch.equal(a, torch.arange(6.0) + 100) and c.tolist() == [0.0, 0.0]


def test_float_extremes_survive_in_tensors():
    values = torch.tensor([float("nan"), float("inf"), -float("inf"), -0.0, 5e-324, 1.7976931348623157e308],
                          dtype=torch.float64)
    got = round_trip({"v": values})["v"]
    assert torch.equal(got.isnan(), values.isnan())
    assert got[1:].tolist() == values[1:].tolist() and math.copysign(1, got[3].item()) == -1


def test_non_contiguous_and_expanded_tensors_are_sent_as_plain_data():
    transposed = torch.arange(12.0).reshape(3, 4).t()
    expanded = torch.tensor([1.0, 2.0, 3.0]).expand(1000, 3)  # stride 0: 3 values seen 3000 times
    sliced = torch.arange(100_000.0)[10:20:3]  # a view into a large storage
    needs_grad = torch.ones(2, requires_grad=True) * 2
    parameter = torch.nn.Parameter(torch.ones(3))
    message = {"t": transposed, "e": expanded, "s": sliced, "g": needs_grad, "p": parameter}
    data = protocol.encode(message)
    _, tensor_section = sections(data)
    header_size = int.from_bytes(tensor_section[:8], "little")
    data_bytes = sum(t.numel() * t.element_size() for t in message.values())
    assert len(tensor_section) == 8 + header_size + data_bytes  # exactly the elements, nothing of the storages
    assert header_size < 1000
    decoded = protocol.receive(io.BytesIO(data))
    assert decoded["e"].stride() == (3, 1) and torch.equal(decoded["e"], expanded)
    assert decoded["t"].stride() == (3, 1) and torch.equal(decoded["t"], transposed)
    assert torch.equal(decoded["s"], sliced) and decoded["s"].untyped_storage().nbytes() == 4 * 4
    assert type(decoded["p"]) is torch.Tensor and not decoded["p"].requires_grad and not decoded["g"].requires_grad


def test_blob_is_standard_safetensors_both_ways():
    tensors = {"a": torch.randn(3, 4), "b": torch.arange(5, dtype=torch.int16), "c": torch.tensor(True),
               "d": torch.zeros(0, 2, dtype=torch.bfloat16)}
    _, tensor_section = sections(protocol.encode({"value": list(tensors.values())}))
    loaded = safetensors_load(tensor_section)  # what we write, safetensors reads
    assert [loaded[f"t{i}"].dtype for i in range(4)] == [t.dtype for t in tensors.values()]
    assert all(torch.equal(loaded[f"t{i}"], t) for i, t in enumerate(tensors.values()))
    written = safetensors_save(tensors, metadata={"format": "pt"})  # and what safetensors writes, we read
    decoded = protocol.decode(refs(tensors), written)
    assert all(torch.equal(got, want) for got, want in zip(decoded["value"], tensors.values()))


def test_frames_follow_each_other_on_one_stream_even_in_small_reads():
    first = {"n": 1, "t": torch.arange(1000)}
    second = {"n": 2, "s": "x" * 5000, "t": [torch.ones(3, 3), torch.zeros(0)]}
    stream = Dribble(protocol.encode(first) + protocol.encode(second) + protocol.encode({}), step=7)
    got = [protocol.receive(stream) for _ in range(3)]
    assert got[0]["n"] == 1 and torch.equal(got[0]["t"], first["t"])
    assert got[1]["s"] == second["s"] and torch.equal(got[1]["t"][0], torch.ones(3, 3)) and got[1]["t"][1].shape == (0,)
    assert got[2] == {}
    with pytest.raises(ProtocolError, match="closed"):
        protocol.receive(stream)


def test_send_and_receive_over_a_real_pipe():
    read_fd, write_fd = os.pipe()
    message = {"ok": True, "value": {"x": torch.randn(512, 1024), "names": ["a", "b"]}}
    with os.fdopen(read_fd, "rb") as reader, os.fdopen(write_fd, "wb") as writer:
        sender = threading.Thread(target=protocol.send, args=(writer, message))
        sender.start()
        got = protocol.receive(reader)
        sender.join()
    assert got["value"]["names"] == ["a", "b"] and torch.equal(got["value"]["x"], message["value"]["x"])


def test_eight_megabytes_of_tensors_encode_and_decode_fast():
    message = {"ok": True, "value": {"a": torch.randn(1024, 1024), "b": [torch.randn(512, 2048), 3]}}
    encode_times, decode_times = [], []
    for _ in range(5):
        start = time.perf_counter()
        data = protocol.encode(message)
        middle = time.perf_counter()
        decoded = protocol.receive(io.BytesIO(data))
        encode_times.append(middle - start)
        decode_times.append(time.perf_counter() - middle)
    assert len(data) > 8 * MiB and torch.equal(decoded["value"]["b"][0], message["value"]["b"][0])
    assert min(encode_times) < 0.05 and min(decode_times) < 0.05, (encode_times, decode_times)


def test_depth_limit_is_exactly_max_depth():
    def nested(levels: int, leaf: object = 0) -> dict:  # ``levels`` levels of containers, the top one included
        node = leaf
        for level in range(levels - 1):
            node = [node] if level % 2 else {"k": node}
        return {"top": node}

    assert round_trip(nested(protocol.MAX_DEPTH)) == nested(protocol.MAX_DEPTH)
    assert round_trip({"t": torch.ones(1), **nested(protocol.MAX_DEPTH)})["t"].item() == 1.0
    # a tensor's {"$tensor": ...} reference is a level of its own
    deepest = round_trip(nested(protocol.MAX_DEPTH - 1, torch.ones(2)))
    for _ in range(protocol.MAX_DEPTH - 1):
        deepest = deepest["top"] if "top" in deepest else deepest["k"] if isinstance(deepest, dict) else deepest[0]
    assert torch.equal(deepest, torch.ones(2))
    with pytest.raises(ValueError, match="deeper"):
        protocol.encode(nested(protocol.MAX_DEPTH, torch.ones(2)))
    with pytest.raises(ValueError, match="deeper"):
        protocol.encode(nested(protocol.MAX_DEPTH + 1))
    too_deep = json.dumps(nested(protocol.MAX_DEPTH + 1))
    with pytest.raises(ProtocolError, match="nested deeper than 64"):
        protocol.decode(too_deep.encode())
    with pytest.raises(ProtocolError, match="nested deeper than 2"):
        protocol.decode(b'{"a": [[1]]}', max_depth=2)
    assert protocol.decode(b'{"a": [[1]]}', max_depth=3) == {"a": [[1]]}


# -- what the sender refuses ------------------------------------------------------------------------
@pytest.mark.parametrize("value", [
    np.zeros(3), np.int64(3), object(), {1, 2}, b"bytes", 1j, torch.zeros(2, dtype=torch.complex64),
    torch.zeros(2, dtype=torch.uint16), torch.zeros(2).to_sparse(), torch.empty(2, device="meta"), {1: "int key"},
], ids=lambda value: type(value).__name__ + (f"-{value.dtype}" if isinstance(value, torch.Tensor) else ""))
def test_encode_refuses_other_types(value):
    with pytest.raises(TypeError):
        protocol.encode({"value": value})


def test_encode_refuses_what_the_receiver_would_refuse():
    cyclic: list = []
    cyclic.append(cyclic)
    with pytest.raises(ValueError, match="deeper"):
        protocol.encode({"value": cyclic})
    with pytest.raises(ValueError, match="Unicode"):
        protocol.encode({"value": "lone \ud800 surrogate"})
    with pytest.raises(TypeError):
        protocol.encode([1, 2])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="more than 2 tensors"):
        protocol.encode({"v": [torch.ones(1)] * 3}, max_tensors=2)
    with pytest.raises(ValueError, match="tensor data"):
        protocol.encode({"v": torch.ones(100)}, max_tensor_bytes=399)
    with pytest.raises(ValueError, match="tensors, over the 471-byte limit"):  # the blob's own header counts too
        protocol.encode({"v": torch.ones(100)}, max_tensor_bytes=471)
    with pytest.raises(ValueError, match="JSON"):
        protocol.encode({"v": "x" * 100}, max_json_bytes=100)
    with pytest.raises(ValueError, match="shape"):
        protocol.encode({"v": torch.empty(0, 2**20, 2**20)})
    with pytest.raises(ValueError, match="digits"):
        protocol.encode({"v": -(10**4300)})
    assert round_trip({"v": 10**4300 - 1})["v"] == 10**4300 - 1
    stream = io.BytesIO()
    with pytest.raises(TypeError):
        protocol.send(stream, {"ok": [torch.ones(3), np.ones(3)]})
    assert stream.getvalue() == b""  # nothing at all is written for a message that cannot be sent
    assert len(sections(protocol.encode({"v": torch.ones(100)}, max_tensor_bytes=472))[1]) == 472


# -- what the receiver refuses ---------------------------------------------------------------------
@pytest.mark.parametrize("json_len, tensor_len, caps, reason", [
    (protocol.MAX_JSON_BYTES + 1, 0, {}, "JSON section of 1048577 bytes is over"),
    (2**63, 0, {}, "JSON section .* is over"),
    (10, protocol.MAX_TENSOR_BYTES + 1, {}, "tensor section of 67108865 bytes is over"),
    (10, 2**64 - 1, {}, "tensor section .* is over"),
    (101, 0, {"max_json_bytes": 100}, "over the 100-byte limit"),
    (10, 1001, {"max_tensor_bytes": 1000}, "over the 1000-byte limit"),
])
def test_oversized_sections_are_refused_before_the_body_is_read(json_len, tensor_len, caps, reason):
    header = struct.pack(">4sQQ", b"AGv2", json_len, tensor_len)
    with pytest.raises(ProtocolError, match=reason):
        protocol.receive(HeaderOnly(header + b"{}" * 100), **caps)
    with pytest.raises(AssertionError, match="past the frame header"):  # the guard itself works
        HeaderOnly(header).read(protocol.HEADER_BYTES + 1)


def test_decode_refuses_oversized_sections_given_directly():
    with pytest.raises(ProtocolError, match="JSON section over"):
        protocol.decode(b"{}" + b" " * protocol.MAX_JSON_BYTES)
    with pytest.raises(ProtocolError, match="tensor section over"):
        protocol.decode(b"{}", b"\0" * 1001, max_tensor_bytes=1000)


def test_bad_magic_and_pickles_are_refused_and_never_run(tmp_path):
    marker = tmp_path / "ran"
    pickled = pickle.dumps({"ok": True, "value": Exploit(marker)})
    buffer = io.BytesIO()
    torch.save({"ok": True, "value": Exploit(marker)}, buffer)
    for payload in (pickled, buffer.getvalue()):
        old_frame = len(payload).to_bytes(8, "big") + payload  # the previous protocol's framing
        with pytest.raises(ProtocolError, match="magic"):
            protocol.receive(io.BytesIO(old_frame))
        with pytest.raises(ProtocolError, match="invalid message"):
            protocol.receive(io.BytesIO(frame(payload)))
        with pytest.raises(ProtocolError, match="invalid message"):
            protocol.receive(io.BytesIO(frame(refs(["t0"]), payload)))
    with pytest.raises(ProtocolError, match="magic"):
        protocol.receive(io.BytesIO(frame("{}", magic=b"AGv1")))
    assert not marker.exists()


def test_every_truncation_of_a_frame_is_refused():
    data = protocol.encode({"ok": True, "value": [torch.arange(4), "text", {"x": torch.ones(2, 2)}]})
    assert protocol.receive(io.BytesIO(data))["value"][1] == "text"
    for cut in range(len(data)):
        with pytest.raises(ProtocolError, match="closed"):
            protocol.receive(io.BytesIO(data[:cut]))


@pytest.mark.parametrize("text, reason", [
    (b"", "not valid JSON"),
    (b"{", "not valid JSON"),
    (b"{'a': 1}", "not valid JSON"),
    (b'{"a": 1} trailing', "not valid JSON"),
    (b'{"a": 1e}', "not valid JSON"),
    (b'{"a": 1}\xff', "not UTF-8"),
    (b'{"a": "\xed\xa0\x80"}', "not UTF-8"),  # a surrogate encoded in UTF-8
    (b"\xef\xbb\xbf{}", "not valid JSON"),  # a byte-order mark
    ('{"a": "caf\u00e9"}'.encode("utf-16"), "not UTF-8"),
    (b'{"a": "\\ud800"}', "not valid Unicode"),
    (b'{"\\udfff": 1}', "not valid Unicode"),
    (b'{"a": ' + b"9" * 5000 + b"}", "not valid JSON"),  # integers of over 4300 digits
    (b"[" * 100_000, "nested deeper than 64"),
    (b'{"a": ' * 100_000, "nested deeper than 64"),
    (b'{"a": "' + b"[" * 100 + b'"}', None),  # brackets in strings do not count
    (b'{"a": "\\\\\\"' + b"[" * 100 + b'"}', None),  # nor after an escaped quote
    (b'{"a": "\\\\", "b": ' + b"[" * 65 + b"]" * 65 + b"}", "nested deeper than 64"),  # an escaped backslash
    (b'{"a": ' + b"[" * 70 + b"]" * 70 + b"}", "nested deeper than 64"),
    (b"[1, 2, 3]", "a list, not a dict"),
    (b'"text"', "a str, not a dict"),
    (b"null", "a NoneType, not a dict"),
    (b"3", "an? int, not a dict"),
    (b'{"$x": 1}', "reserved"),
    (b'{"\\u0024x": 1}', "reserved"),  # the same key, escaped
    (b'{"a": {"$": 1}}', "reserved"),
    (b'{"a": [{"$tensor": "t0"}]}', "unknown tensor"),
    (b'{"a": {"$tensor": 0}}', "malformed tensor reference"),
])
def test_invalid_json_sections_are_refused(text, reason):
    if reason is None:  # a control case: valid after all
        assert type(protocol.receive(io.BytesIO(frame(text)))["a"]) is str
        return
    with pytest.raises(ProtocolError, match=reason) as caught:
        protocol.receive(io.BytesIO(frame(text)))
    assert str(caught.value).startswith("invalid message") and len(str(caught.value)) < 120


def test_valid_json_corner_cases_are_accepted():
    assert protocol.decode(b' {"a": NaN, "b": [Infinity, -Infinity], "c": "\\ud83d\\ude00"} ')["c"] == "😀"
    assert protocol.decode(b'{"$$x": 1, "x": 2, "$$tensor": {"$$$tensor": 3}}') == {"$x": 1, "x": 2, "$tensor": {"$$tensor": 3}}
    assert protocol.decode(b'{"a": ' + b"9" * 4300 + b"}")["a"] == int("9" * 4300)


def test_tensor_references_must_match_the_blob_one_to_one():
    one = blob({"a": entry([1], 0, 4)}, b"\0" * 4)
    assert protocol.decode(b'{"x": {"$tensor": "a"}}', one)["x"].tolist() == [0.0]
    assert protocol.decode(b'{"x": {"\\u0024tensor": "a"}}', one)["x"].tolist() == [0.0]  # escaped, same JSON
    cases = [
        (b'{"x": {"$tensor": "b"}}', one, "unknown tensor"),
        (b'{"x": {"$tensor": "a"}, "y": [{"$tensor": "a"}]}', one, "referenced twice"),
        (b'{"x": 1}', one, "not referenced"),
        (b'{"x": {"$tensor": "a", "y": 1}}', one, "malformed tensor reference"),
        (b'{"x": {"$tensor": ["a"]}}', one, "malformed tensor reference"),
        (b'{"x": {"$tensor": "a"}}', b"", "unknown tensor"),
        (b'{"$tensor": "a"}', one, "a Tensor, not a dict"),
    ]
    for text, tensor_section, reason in cases:
        with pytest.raises(ProtocolError, match=reason):
            protocol.decode(text, tensor_section)


BAD_BLOBS = {
    "overlapping offsets": ({"a": entry([2], 0, 8), "b": entry([2], 4, 12)}, 12, "overlapping"),
    "one range twice": ({"a": entry([1], 0, 4), "b": entry([1], 0, 4)}, 4, "overlapping"),
    "offsets too short for the shape": ({"a": entry([3], 0, 8)}, 8, "do not match its shape"),
    "offsets too long for the shape": ({"a": entry([1], 0, 8)}, 8, "do not match its shape"),
    "offsets past the end": ({"a": entry([2], 4, 12)}, 8, "outside the data section"),
    "negative offset": ({"a": entry([1], -4, 0)}, 4, "outside the data section"),
    "reversed offsets": ({"a": entry([0], 4, 0)}, 4, "outside the data section"),
    "float offsets": ({"a": entry([1], 0.0, 4.0)}, 4, "outside the data section"),
    "three offsets": ({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 2, 4]}}, 4, "outside"),
    "a gap": ({"a": entry([1], 4, 8)}, 8, "gap"),
    "unused trailing bytes": ({"a": entry([1], 0, 4)}, 8, "not fully used"),
    "huge shape, few bytes": ({"a": entry([2**40], 0, 4)}, 4, "shape too large"),
    "huge shape, no bytes": ({"a": entry([0, 2**62, 2**62], 0, 0)}, 0, "shape too large"),
    "shape over the cap": ({"a": entry([0, 4 * MiB, 5], 0, 0)}, 0, "shape too large"),
    "negative dimension": ({"a": entry([-1], 0, 0)}, 0, "bad tensor shape"),
    "bool dimension": ({"a": entry([True], 0, 4)}, 4, "bad tensor shape"),
    "float dimension": ({"a": entry([1.0], 0, 4)}, 4, "bad tensor shape"),
    "shape not a list": ({"a": entry("1", 0, 4)}, 4, "bad tensor shape"),
    "33 dimensions": ({"a": entry([1] * 33, 0, 4)}, 4, "bad tensor shape"),
    "dtype U16": ({"a": entry([1], 0, 2, "U16")}, 2, "dtype not allowed"),
    "dtype U64": ({"a": entry([1], 0, 8, "U64")}, 8, "dtype not allowed"),
    "dtype C64": ({"a": entry([1], 0, 8, "C64")}, 8, "dtype not allowed"),
    "dtype F8_E4M3": ({"a": entry([1], 0, 1, "F8_E4M3")}, 1, "dtype not allowed"),
    "dtype lower case": ({"a": entry([1], 0, 4, "f32")}, 4, "dtype not allowed"),
    "dtype not a str": ({"a": entry([1], 0, 4, 4)}, 4, "dtype not allowed"),
    "extra field": ({"a": {**entry([1], 0, 4), "x": 1}}, 4, "bad safetensors entry"),
    "missing field": ({"a": {"dtype": "F32", "shape": [1]}}, 4, "bad safetensors entry"),
    "entry not a dict": ({"a": [1]}, 4, "bad safetensors entry"),
    "bool byte 2": ({"a": entry([2], 0, 2, "BOOL")}, b"\x01\x02", "bool tensor"),
    "metadata not str": ({"__metadata__": {"k": 1}, "a": entry([1], 0, 4)}, 4, "bad safetensors metadata"),
    "metadata too large": ({"__metadata__": {"k": "x" * 70_000}, "a": entry([1], 0, 4)}, 4, "metadata too large"),
    "4097 tensors": ({f"n{i}": entry([0], 0, 0) for i in range(4097)}, 0, "more than 4096 tensors"),
    "header a list": (b"[]", 0, "not a dict"),
    "header not JSON": (b"{oops", 0, "not valid JSON"),
    "header not UTF-8": (b'{"\xff": 1}', 0, "not UTF-8"),
    "header with a duplicate name": (b'{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, '
                                     b'"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}', 8, "not valid JSON"),
}


@pytest.mark.parametrize("name", BAD_BLOBS)
def test_malformed_safetensors_blobs_are_refused(name):
    header, data, reason = BAD_BLOBS[name]
    data = data if isinstance(data, bytes) else b"\0" * data
    with pytest.raises(ProtocolError, match=reason):
        decode_blob(header, data)


def test_malformed_blob_framing_is_refused():
    good = blob({"a": entry([1], 0, 4)}, b"\0" * 4)
    assert decode_blob({"a": entry([1], 0, 4)}, b"\0" * 4)["value"][0].tolist() == [0.0]
    cases = [
        (b"\x01\x02", "truncated tensor section"),
        ((10**6).to_bytes(8, "little") + good[8:], "bad safetensors header size"),
        ((2**64 - 1).to_bytes(8, "little") + good[8:], "bad safetensors header size"),
        ((MiB + 8).to_bytes(8, "little") + b" " * (MiB + 16), "bad safetensors header size"),
        ((0).to_bytes(8, "little") + b"\0" * 4, "not valid JSON"),
        (good[:-1], "header size|not fully used|do not match|outside"),
    ]
    for tensor_section, reason in cases:
        with pytest.raises(ProtocolError, match=reason):
            protocol.decode(refs(["a"]), tensor_section)


def test_tensor_count_cap_is_exact_and_adjustable():
    header = {f"n{i}": entry([0], 0, 0) for i in range(protocol.MAX_TENSORS)}
    assert len(decode_blob(header)["value"]) == protocol.MAX_TENSORS
    with pytest.raises(ProtocolError, match="more than 3 tensors"):
        decode_blob({f"n{i}": entry([0], 0, 0) for i in range(4)}, max_tensors=3)
    metadata_only = {"__metadata__": {"format": "pt"}, **{f"n{i}": entry([0], 0, 0) for i in range(3)}}
    assert len(decode_blob(metadata_only, max_tensors=3)["value"]) == 3


# -- amplification bombs --------------------------------------------------------------------------
# Peak memory is read from /proc/self/status (VmHWM, the high-water mark of this process's own address
# space), reset before each bomb through /proc/self/clear_refs where the kernel allows it.  ru_maxrss is
# no use here: a child started with vfork (as subprocess does) inherits the parent's peak across exec.
BOMB_SCRIPT = textwrap.dedent("""
    import ctypes, gc, io, json, sys, time
    from pathlib import Path
    from autograder.sandboxed import protocol
    import torch

    def mib(field):
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) / 1024 for line in status if line.startswith(field + ":"))

    try:
        trim = ctypes.CDLL("libc.so.6").malloc_trim  # hand freed heap back, so that reusing it counts again
    except (OSError, AttributeError):
        trim = lambda pad: 0

    def reset_peak():
        trim(0)
        try:
            with open("/proc/self/clear_refs", "w") as file:
                file.write("5")
            return True
        except OSError:
            return False

    protocol.receive(io.BytesIO(protocol.encode({"warm": [torch.ones(3), 1.5, "x", {"a": None, "$b": 1}]})))
    gc.collect()
    first = mib("VmHWM")
    per_bomb = reset_peak() and mib("VmHWM") < first + 1
    rows = []
    for path in sorted(Path(sys.argv[1]).iterdir()):
        base = mib("VmRSS") if per_bomb and reset_peak() else first
        with open(path, "rb") as stream:
            start = time.perf_counter()
            try:
                message = protocol.receive(stream)
                outcome = "ok"
            except protocol.ProtocolError as error:
                message, outcome = None, str(error)
            seconds = time.perf_counter() - start
        rows.append([path.name, outcome, seconds, mib("VmHWM") - base])
        del message
    print(json.dumps({"per_bomb": per_bomb, "rows": rows}))
""")


def _write_bombs(folder: Path) -> dict[str, str]:
    """Write the worst frames we can build within the caps; return {file name: expected outcome}."""
    J, T = protocol.MAX_JSON_BYTES, protocol.MAX_TENSOR_BYTES
    expected = {}

    def fill(prefix: bytes, unit: bytes, suffix: bytes, last: bytes = b"0") -> bytes:
        """``prefix + unit * n + last + suffix`` as close to the JSON cap as it gets."""
        count = (J - len(prefix) - len(suffix) - len(last)) // len(unit)
        text = prefix + unit * count + last + suffix
        assert J - len(unit) < len(text) <= J
        return text

    def write(name: str, outcome: str, parts: list[bytes], json_len: int | None = None, tensor_len: int | None = None,
              zeros: int = 0, last: bytes = b""):
        """A frame of ``parts`` (the JSON section, then the tensor section's pieces), then ``zeros`` zero
        bytes and ``last`` (written sparsely: quick to write and to read)."""
        text = parts[0]
        tensor_section = b"".join(parts[1:])
        tensor_size = len(tensor_section) + zeros + len(last)
        header = struct.pack(">4sQQ", b"AGv2", len(text) if json_len is None else json_len,
                             tensor_size if tensor_len is None else tensor_len)
        with open(folder / name, "wb") as file:
            file.write(header + text + tensor_section)
            file.truncate(file.tell() + zeros)
            file.seek(0, os.SEEK_END)
            file.write(last)
        expected[name] = outcome

    def st_header(entries: dict) -> bytes:
        text = json.dumps(entries, separators=(",", ":")).encode()
        return len(text).to_bytes(8, "little") + text

    write("j01-open-brackets", "nested deeper than 64", [b"[" * J])
    write("j02-open-objects", "nested deeper than 64", [fill(b"", b'{"a":', b"")])
    write("j03-zeros", "ok", [fill(b'{"a":[', b"0,", b"]}")])
    write("j04-small-ints", "ok", [fill(b'{"a":[', b"10,", b"]}")])
    write("j05-floats", "ok", [fill(b'{"a":[', b"1.5,", b"]}")])
    write("j06-empty-lists", "ok", [fill(b'{"a":[', b"[],", b"]}")])
    write("j07-empty-dicts", "ok", [fill(b'{"a":[', b"{},", b"]}")])
    write("j08-empty-strings", "ok", [fill(b'{"a":[', b'"",', b"]}")])
    write("j09-max-depth-towers", "ok", [fill(b'{"a":[', b"[" * 62 + b"]" * 62 + b",", b"]}")])
    keys = b"".join(b'"k%d":0,' % i for i in range(J // 10))
    write("j10-distinct-keys", "ok", [b'{' + keys[: keys.rfind(b",", 0, J - 10)] + b"}"])
    dollar_keys = keys.replace(b'"k', b'"$$k')
    write("j11-dollar-keys", "ok", [b'{' + dollar_keys[: dollar_keys.rfind(b",", 0, J - 10)] + b"}"])
    write("j12-4300-digit-ints", "ok", [fill(b'{"a":[', b"9" * 4300 + b",", b"]}")])
    write("j13-one-huge-int", "not valid JSON", [fill(b'{"a":', b"9", b"}", b"")])
    write("j14-one-huge-float", "ok", [fill(b'{"a":1.', b"1", b"}", b"e-99")])
    write("j15-escaped-strings", "ok", [fill(b'{"a":"', b"\\u00e9\\ud83d\\ude00", b'"}', b"")])
    write("j16-lone-surrogates", "not valid Unicode", [fill(b'{"a":["', b'\\ud800","', b'"]}', b"")])

    empty_entries = {f"e{i}": entry([0], 0, 0) for i in range(protocol.MAX_TENSORS)}
    refs_all = refs(list(empty_entries))
    write("t01-4096-empty-tensors", "ok", [refs_all, st_header(empty_entries)])
    wide = {f"e{i}": entry([0, MiB, 16], 0, 0) for i in range(protocol.MAX_TENSORS)}  # 0 elements, 64 MiB extent
    write("t02-4096-empty-wide-tensors", "ok", [refs_all, st_header(wide)])
    write("t03-4097-tensors", "more than 4096", [refs(list(range(4097))),
                                                  st_header({f"e{i}": entry([0], 0, 0) for i in range(4097)})])
    write("t04-metadata-1MiB", "metadata too large", [b"{}", st_header({"__metadata__": {"m": "x" * (J - 100)}})])
    write("t05-huge-claimed-shape", "shape too large", [refs(["a"]), st_header({"a": entry([2**40], 0, 4)}), b"\0" * 4])
    write("t06-one-reference-many-times", "referenced twice",
          [fill(b'{"a":[', b'{"$tensor":"a"},', b"]}", b"0"), st_header({"a": entry([1], 0, 4)}), b"\0" * 4])
    big = st_header({"a": entry([T - 1000], 0, T - 1000, "U8")})
    write("t07-one-64MiB-tensor", "ok", [refs(["a"]), big], zeros=T - 1000)
    many = protocol.MAX_TENSORS
    size = (T - 400_000) // many // 8 * 8
    many_header = st_header({f"m{i}": entry([size // 4], i * size, (i + 1) * size) for i in range(many)})
    write("t08-4096-tensors-filling-64MiB", "ok", [refs([f"m{i}" for i in range(many)]), many_header],
          zeros=size * many)
    bool_header = st_header({"a": entry([T - 1000], 0, T - 1000, "BOOL")})
    write("t09-64MiB-bool-with-a-2", "bool tensor", [refs(["a"]), bool_header], zeros=T - 1001, last=b"\2")
    padded = fill(b'{"p":[', b"0,", b'],"v":[{"$tensor":"a"}]}')
    write("t10-both-sections-full", "ok", [padded, big], zeros=T - 1000)
    write("t11-truncated-max-frame", "closed", [b"[[[["], json_len=J, tensor_len=T)
    buffer = io.BytesIO()
    torch.save({"ok": [torch.ones(3)] * 100}, buffer)
    (folder / "t12-old-pickle-frame").write_bytes(len(buffer.getvalue()).to_bytes(8, "big") + buffer.getvalue())
    expected["t12-old-pickle-frame"] = "magic"
    for name in ("t07-one-64MiB-tensor", "t08-4096-tensors-filling-64MiB", "t10-both-sections-full"):
        with open(folder / name, "rb") as file:
            _, json_len, tensor_len = struct.unpack(">4sQQ", file.read(20))
        assert T - 500_000 < tensor_len <= T and json_len <= J, name  # really at the caps
    assert J - 10 < struct.unpack(">4sQQ", (folder / "t10-both-sections-full").open("rb").read(20))[1]
    return expected


def test_amplification_bombs_decode_or_refuse_fast_and_small(tmp_path):
    expected = _write_bombs(tmp_path)
    result = subprocess.run([sys.executable, "-c", BOMB_SCRIPT, str(tmp_path)], cwd=REPO_ROOT, capture_output=True,
                            text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    rows = report["rows"]
    text = "\n".join(f"{name:34s} {seconds * 1000:7.1f} ms  peak +{growth:6.1f} MiB  {outcome[:50]}"
                     for name, outcome, seconds, growth in rows)
    print(("per bomb" if report["per_bomb"] else "cumulative") + " peak growth:\n" + text)
    assert [row[0] for row in rows] == sorted(expected)
    for name, outcome, seconds, _growth in rows:
        want = expected[name]
        assert (outcome == "ok") if want == "ok" else (want in outcome), (name, outcome)
        assert seconds < 1.0, (name, seconds)
    growth = {name: growth for name, _, _, growth in rows}
    assert max(growth.values()) < 300, text
    assert growth["t07-one-64MiB-tensor"] > 60, text  # the measurement sees the tensor itself
    if report["per_bomb"]:
        assert max(growth[name] for name in growth if name.startswith("j")) < 100, text  # 1 MiB of JSON
        assert growth["t07-one-64MiB-tensor"] < 3 * 64 + 20, text  # the frame and about one copy of it


def _random_value(rng, level: int):
    characters = ['"', "\\", "[", "]", "{", "}", "a", "é", "\n", "$"]
    word = "".join(rng.choice(characters) for _ in range(rng.randint(0, 5)))
    roll = rng.random()
    if level > 9 or roll < 0.3:
        return rng.choice([word, 1, -2.5, None, True, float("nan")])
    if roll < 0.65:
        return [_random_value(rng, level + 1) for _ in range(rng.randint(0, 4))]
    return {"k" + word + str(i): _random_value(rng, level + 1) for i in range(rng.randint(0, 4))}


def _levels(value) -> int:
    if isinstance(value, (list, dict)):
        return 1 + max([_levels(item) for item in (value.values() if isinstance(value, dict) else value)], default=0)
    return 0


@pytest.mark.parametrize("chunk, rounds", [(5, 30), (64, 150), (2**18, 300)])
def test_depth_limit_counts_brackets_in_strings_correctly(monkeypatch, chunk, rounds):
    """Random messages full of quotes, backslashes and brackets inside strings: the depth check refuses
    exactly those nested deeper than the limit, whatever the escaping (also across chunk boundaries)."""
    import random

    monkeypatch.setattr(protocol, "_NESTING_CHUNK", chunk)
    rng = random.Random(chunk)
    for _ in range(rounds):
        message = {"m": _random_value(rng, 0)}
        levels = _levels(message)
        for ensure_ascii in (True, False):
            text = json.dumps(message, ensure_ascii=ensure_ascii).encode()
            assert protocol.decode(text, max_depth=levels).keys() == {"m"}
            with pytest.raises(ProtocolError, match=f"nested deeper than {levels - 1} levels"):
                protocol.decode(text, max_depth=levels - 1)
