"""Read an ONNX file's structure without its weights, straight from the protobuf wire format.

Why: counting a graph needs every node and every initializer's *shape*, never the weight bytes.
``onnx.load`` reads the whole file and parses it (inswapper_128 is ≈ 554 MB, so about twice that in
memory, for seconds). Here the file is memory-mapped and walked field by field; each initializer is
copied without its data fields (``raw_data``, ``float_data``, …), so the weight pages are never
touched. What comes back is a small, valid ``ModelProto`` whose weight-less initializers keep their
names, dims and types. Small initializers (shape vectors for ``Reshape``) keep their data, because
shape inference needs their values.

Wire-format facts used (protobuf encoding; ``onnx.proto``): ``ModelProto.graph`` is field 7,
``GraphProto.initializer`` field 5, ``TensorProto`` data fields 4–7, 9 (raw_data), 10–11, 13 (external
data) and 14 (data_location).
"""

from __future__ import annotations

import mmap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

#: initializers with at most this many data bytes keep their values (shape vectors, scalars).
SMALL_BYTES = 4096

_MODEL_GRAPH = 7
_GRAPH_INITIALIZER = 5
_TENSOR_DATA_FIELDS = {4, 5, 6, 7, 9, 10, 11}


class WireError(ValueError):
    """The bytes are not a protobuf message of the expected shape."""


def _varint(buf: Any, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise WireError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise WireError("varint too long")


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def fields(buf: Any, start: int, end: int) -> Iterator[tuple[int, int, int, int, int]]:
    """``(field, wire_type, field_start, value_start, value_end)`` of each field in ``buf[start:end]``."""
    pos = start
    while pos < end:
        field_start = pos
        tag, pos = _varint(buf, pos)
        number, wire_type = tag >> 3, tag & 7
        if wire_type == 0:
            _, value_end = _varint(buf, pos)
        elif wire_type == 1:
            value_end = pos + 8
        elif wire_type == 5:
            value_end = pos + 4
        elif wire_type == 2:
            length, pos = _varint(buf, pos)
            value_end = pos + length
        else:
            raise WireError(f"unsupported wire type {wire_type}")
        if value_end > end:
            raise WireError("field runs past the end of its message")
        yield number, wire_type, field_start, pos, value_end
        pos = value_end


def _length_delimited(number: int, payload: bytes) -> bytes:
    return _encode_varint((number << 3) | 2) + _encode_varint(len(payload)) + payload


def _strip_tensor(buf: Any, start: int, end: int) -> bytes:
    data_bytes = sum(e - s for n, _w, _f, s, e in fields(buf, start, end) if n in _TENSOR_DATA_FIELDS)
    if data_bytes <= SMALL_BYTES:
        return bytes(buf[start:end])
    return b"".join(bytes(buf[f:e]) for n, _w, f, _s, e in fields(buf, start, end)
                    if n not in _TENSOR_DATA_FIELDS)


def _strip_graph(buf: Any, start: int, end: int) -> bytes:
    parts = []
    for number, wire_type, field_start, value_start, value_end in fields(buf, start, end):
        if number == _GRAPH_INITIALIZER and wire_type == 2:
            parts.append(_length_delimited(number, _strip_tensor(buf, value_start, value_end)))
        else:
            parts.append(bytes(buf[field_start:value_end]))
    return b"".join(parts)


def _mapped(path: Path) -> tuple[Any, mmap.mmap]:
    handle = path.open("rb")
    try:
        mapped = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
    finally:
        handle.close()
    return memoryview(mapped), mapped


def load_structure(path: Path) -> Any:
    """The ``ModelProto`` of ``path`` with every large initializer's data left out.

    Raises:
        WireError: the file is not an ONNX model (not a parseable protobuf).
    """
    import onnx

    if path.stat().st_size == 0:
        raise WireError("empty file")
    view, mapped = _mapped(path)
    try:
        parts = []
        for number, wire_type, field_start, value_start, value_end in fields(view, 0, len(view)):
            if number == _MODEL_GRAPH and wire_type == 2:
                parts.append(_length_delimited(number, _strip_graph(view, value_start, value_end)))
            else:
                parts.append(bytes(view[field_start:value_end]))
    finally:
        view.release()
        mapped.close()
    model = onnx.ModelProto()
    try:
        model.ParseFromString(b"".join(parts))
    except Exception as exc:  # protobuf's DecodeError; the message is all a user can act on
        raise WireError(str(exc) or type(exc).__name__) from None
    if not model.HasField("graph"):
        raise WireError("no graph in the file")
    return model


def read_initializer(path: Path, *, index: int | None = None, name: str | None = None) -> Any:
    """One initializer of ``path``, with its data, as a ``TensorProto`` (the others are not read).

    ``index`` counts like a Python list (``-1``: the last one, inswapper's ``emap``).

    Raises:
        KeyError: no initializer has that index or name.
    """
    import onnx

    view, mapped = _mapped(path)
    try:
        spans: list[tuple[int, int]] = []
        for number, wire_type, _f, value_start, value_end in fields(view, 0, len(view)):
            if number == _MODEL_GRAPH and wire_type == 2:
                spans += [(s, e) for n, w, _ff, s, e in fields(view, value_start, value_end)
                          if n == _GRAPH_INITIALIZER and w == 2]
        chosen: list[tuple[int, int]] = []
        if index is not None:
            if not -len(spans) <= index < len(spans):
                raise KeyError(f"initializer index {index} (the graph has {len(spans)})")
            chosen = [spans[index]]
        else:
            for start, end in spans:
                tensor = onnx.TensorProto()
                tensor.ParseFromString(_strip_tensor(view, start, end))
                if tensor.name == name:
                    chosen = [(start, end)]
                    break
            if not chosen:
                raise KeyError(f"initializer {name!r}")
        tensor = onnx.TensorProto()
        tensor.ParseFromString(bytes(view[chosen[0][0]:chosen[0][1]]))
        return tensor
    finally:
        view.release()
        mapped.close()
