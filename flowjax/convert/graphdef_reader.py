"""Reading binary TensorFlow GraphDefs (``.pb``) into :mod:`flowjax.convert.graphdef` messages.

Fields outside the subset of :mod:`flowjax.convert.graphdef` are skipped (a
GraphDef's ``library`` is kept as raw bytes, so it survives a round trip);
nothing is ever executed.

Reading is made for OpenAI's 700 MB ``graph_unoptimized.pb``: the file is read
once, ``tensor_content`` stays a zero-copy ``memoryview`` into it, and
:meth:`~flowjax.convert.graphdef.Tensor.numpy` decodes it with ``np.frombuffer``.

Malformed input (cut, flipped, fuzzed) is a :class:`~flowjax.convert.graphdef.GraphDefError`
naming the file and the byte offset, never another exception: every field's
wire type is checked against its message's declaration before it is read, and
a tensor read here never allocates more than its file could hold (see
:meth:`~flowjax.convert.graphdef.Tensor.numpy`). ``tests/test_graphdef_fuzz.py`` holds
it to that on seeded mutations of real graphs.
"""

from __future__ import annotations

import dataclasses
import os
import struct
from collections.abc import Collection
from pathlib import Path
from typing import Any, Union

import numpy as np

from flowjax.convert.graphdef import (
    INT64_VAL,
    INT_VAL,
    VALUE_FIELDS,
    WIRE_FIXED32,
    WIRE_FIXED64,
    WIRE_LEN,
    WIRE_VARINT,
    AttrList,
    AttrValue,
    GraphDef,
    GraphDefError,
    NodeDef,
    Tensor,
)

PathLike = Union[str, "os.PathLike[str]"]

_WIRE_NAMES = {WIRE_VARINT: "varint", WIRE_FIXED64: "fixed64", WIRE_LEN: "length-delimited",
               WIRE_FIXED32: "fixed32"}


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    """The varint at ``pos`` (truncated to 64 bits, as protobuf does) and the next pos."""
    start = pos
    byte = buf[pos]
    if byte < 0x80:
        return byte, pos + 1
    result, shift = byte & 0x7F, 7
    pos += 1
    while True:
        byte = buf[pos]
        result |= (byte & 0x7F) << shift
        pos += 1
        if byte < 0x80:
            return result & _UINT64_MASK, pos
        shift += 7
        if shift > 63:
            raise GraphDefError(f"varint at offset {start} is longer than 10 bytes")


_UINT64_MASK = (1 << 64) - 1


def _signed64(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _next_field(buf: bytes, pos: int, end: int) -> tuple[int, int, Any, int]:
    """The field at ``pos``: ``(number, wire type, value, next pos)``; a
    length-delimited value is its ``(start, end)`` range in ``buf``, a
    fixed-width one its offset. One-byte varints are inlined: this is most of
    the time spent reading a large graph."""
    start = pos
    try:
        key = buf[pos]
        if key < 0x80:
            pos += 1
        else:
            key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == WIRE_LEN:
            length = buf[pos]
            if length < 0x80:
                pos += 1
            else:
                length, pos = _varint(buf, pos)
            value = (pos, pos + length)
            pos += length
        elif wire == WIRE_VARINT:
            value, pos = _varint(buf, pos)
        elif wire == WIRE_FIXED32:
            value, pos = pos, pos + 4
        elif wire == WIRE_FIXED64:
            value, pos = pos, pos + 8
        else:
            raise GraphDefError(f"unsupported wire type {wire} (field {number}) at offset {start}")
    except IndexError:  # a key, length or varint cut off by the end of the data
        raise GraphDefError(f"field at offset {start} is cut off by the end of the data "
                            f"({len(buf)} bytes)") from None
    if number == 0:
        raise GraphDefError(f"field number 0 at offset {start} (protobuf field numbers start at 1)")
    if pos > end:
        raise GraphDefError(f"field {number} at offset {start} runs past the end of its message "
                            f"(it ends at {pos}, the message at {end})")
    return number, wire, value, pos


# The wire types each field of a message must have (protobuf's encoding of its
# declared type; numeric repeated fields may be packed); fields not listed are
# skipped whatever their wire type. Reading a field as another type is what
# turned malformed input into TypeErrors before.
_V, _L, _F32, _F64 = (WIRE_VARINT,), (WIRE_LEN,), (WIRE_FIXED32,), (WIRE_FIXED64,)
_GRAPH_WIRES = {1: _L, 2: _L, 4: _L}
_VERSIONS_WIRES = {1: _V, 2: _V}
_NODE_WIRES = {1: _L, 2: _L, 3: _L, 4: _L, 5: _L}
_ATTR_ENTRY_WIRES = {1: _L, 2: _L}
_ATTR_WIRES = {1: _L, 2: _L, 3: _V, 4: _F32, 5: _V, 6: _V, 7: _L, 8: _L, 9: _L, 10: _L}
_LIST_WIRES = {2: _L, 3: _V + _L, 4: _F32 + _L, 5: _V + _L, 6: _V + _L, 7: _L, 8: _L}
_SHAPE_WIRES = {2: _L, 3: _V}
_DIM_WIRES = {1: _V, 2: _L}
_TENSOR_WIRES = {1: _V, 2: _L, 4: _L, **{
    field: {"f4": _F32, "f8": _F64, "varint": _V}[kind] + _L
    for field, kind in VALUE_FIELDS.items()}}


def _fields(buf: bytes, start: int, end: int,
            wires: dict[int, tuple[int, ...]]) -> list[tuple[int, int, Any]]:
    """``(number, wire type, value)`` of every field of a message, in order;
    a field whose wire type is not the one ``wires`` gives for it is an error."""
    out, pos = [], start
    while pos < end:
        field_start = pos
        number, wire, value, pos = _next_field(buf, pos, end)
        allowed = wires.get(number)
        if allowed is not None and wire not in allowed:
            raise _wrong_wire(number, wire, field_start, allowed)
        out.append((number, wire, value))
    return out


def _wrong_wire(number: int, wire: int, offset: int, allowed: tuple[int, ...]) -> GraphDefError:
    return GraphDefError(f"field {number} at offset {offset} is {_WIRE_NAMES[wire]}; its message "
                         f"declares it {' or '.join(_WIRE_NAMES[w] for w in allowed)}")


@dataclasses.dataclass(frozen=True)
class _Source:
    """The bytes being read, a zero-copy view of them and their name (for errors)."""

    buf: bytes
    view: memoryview
    name: str


def _text(buf: bytes, span: tuple[int, int]) -> str:
    try:
        return buf[span[0]:span[1]].decode("utf-8")
    except UnicodeDecodeError as err:
        raise GraphDefError(f"string at offset {span[0]} is not UTF-8 ({err.reason} at its "
                            f"byte {err.start})") from None


def _packed_varints(buf: bytes, start: int, end: int) -> list[int]:
    values, pos = [], start
    try:
        while pos < end:
            value, pos = _varint(buf, pos)
            values.append(value)
    except IndexError:
        raise GraphDefError(f"packed varints at offset {start} are cut off by the end of the "
                            "data") from None
    if pos > end:
        raise GraphDefError(f"packed varints at offset {start} run past their end ({end})")
    return values


def _fixed_width(src: _Source, wire: int, value: Any, dtype: np.dtype) -> np.ndarray:
    """One fixed-width value, or a packed run of them, as a zero-copy array."""
    if wire != WIRE_LEN:
        return np.frombuffer(src.view[value:value + dtype.itemsize], dtype)
    start, end = value
    if (end - start) % dtype.itemsize:
        raise GraphDefError(f"packed {dtype.itemsize}-byte values at offset {start} have "
                            f"{end - start} bytes, not a multiple of {dtype.itemsize}")
    return np.frombuffer(src.view[start:end], dtype)


def _read_values(src: _Source, field: int, wire: int, value: Any,
                 into: dict[int, list]) -> None:
    """Append one occurrence of a repeated numeric field (packed or not)."""
    kind = VALUE_FIELDS[field]
    chunks = into.setdefault(field, [])
    if kind in ("f4", "f8"):
        chunks.append(_fixed_width(src, wire, value, np.dtype("<" + kind)))
        return
    raw = _packed_varints(src.buf, *value) if wire == WIRE_LEN else [value]
    if field in (INT_VAL, INT64_VAL):  # signed: negatives are 10-byte two's complement
        chunks.append(np.array([_signed64(v) for v in raw], np.int64))
    else:  # unsigned, bool and half bit patterns: every 64-bit pattern fits
        chunks.append(np.array(raw, np.uint64))


def _read_shape(buf: bytes, span: tuple[int, int]) -> tuple[int, ...] | None:
    dims: list[int] = []
    unknown_rank = False
    for number, _, value in _fields(buf, *span, _SHAPE_WIRES):
        if number == 2:  # dim
            size = 0
            for dim_number, _, dim_value in _fields(buf, *value, _DIM_WIRES):
                if dim_number == 1:
                    size = _signed64(dim_value)
            dims.append(size)
        elif number == 3:
            unknown_rank = bool(value)
    return None if unknown_rank else tuple(dims)


def _read_tensor(src: _Source, span: tuple[int, int]) -> Tensor:
    buf = src.buf
    dtype, shape, content = 0, (), b""
    chunks: dict[int, list] = {}
    for number, wire, value in _fields(buf, *span, _TENSOR_WIRES):
        if number == 1:
            dtype = value
        elif number == 2:
            shape = _read_shape(buf, value)
        elif number == 4:
            content = src.view[value[0]:value[1]]
        elif number in VALUE_FIELDS:
            _read_values(src, number, wire, value, chunks)
    values = {f: (c[0] if len(c) == 1 else np.concatenate(c)) for f, c in chunks.items()}
    return Tensor(dtype, shape, content, values, origin=f"{src.name}: tensor at offset {span[0]}",
                  file_bytes=len(buf))


def _read_list(src: _Source, span: tuple[int, int]) -> AttrList:
    buf = src.buf
    out = AttrList()
    for number, wire, value in _fields(buf, *span, _LIST_WIRES):
        if number == 2:
            out.s.append(bytes(buf[value[0]:value[1]]))
        elif number in (3, 5, 6):
            ints = _packed_varints(buf, *value) if wire == WIRE_LEN else [value]
            if number == 3:
                out.i.extend(_signed64(v) for v in ints)
            elif number == 5:
                out.b.extend(bool(v) for v in ints)
            else:
                out.type.extend(ints)
        elif number == 4:
            out.f.extend(float(v) for v in _fixed_width(src, wire, value, np.dtype("<f4")))
        elif number == 7:
            out.shape.append(_read_shape(buf, value))
        elif number == 8:
            out.tensor.append(_read_tensor(src, value))
    return out


def _read_attr(src: _Source, span: tuple[int, int]) -> AttrValue | None:
    buf = src.buf
    attr = None
    for number, _, value in _fields(buf, *span, _ATTR_WIRES):
        if number == 1:
            attr = AttrValue("list", _read_list(src, value))
        elif number == 2:
            attr = AttrValue("s", bytes(buf[value[0]:value[1]]))
        elif number == 3:
            attr = AttrValue("i", _signed64(value))
        elif number == 4:
            attr = AttrValue("f", struct.unpack_from("<f", buf, value)[0])
        elif number == 5:
            attr = AttrValue("b", bool(value))
        elif number == 6:
            attr = AttrValue("type", value)
        elif number == 7:
            attr = AttrValue("shape", _read_shape(buf, value))
        elif number == 8:
            attr = AttrValue("tensor", _read_tensor(src, value))
        elif number == 9:
            attr = AttrValue("placeholder", _text(buf, value))
        elif number == 10:
            attr = AttrValue("func", bytes(buf[value[0]:value[1]]))
    return attr


def _read_node(src: _Source, span: tuple[int, int],
               attr_ops: Collection[str] | None) -> NodeDef:
    buf = src.buf
    node = NodeDef(name="", op="")
    entries = []
    for number, _, value in _fields(buf, *span, _NODE_WIRES):
        if number == 1:
            node.name = _text(buf, value)
        elif number == 2:
            node.op = _text(buf, value)
        elif number == 3:
            node.input.append(_text(buf, value))
        elif number == 4:
            node.device = _text(buf, value)
        elif number == 5:  # map<string, AttrValue> entry
            entries.append(value)
    if attr_ops is not None and node.op not in attr_ops:
        return node
    for entry in entries:
        key, attr = "", None
        for entry_number, _, entry_value in _fields(buf, *entry, _ATTR_ENTRY_WIRES):
            if entry_number == 1:
                key = _text(buf, entry_value)
            elif entry_number == 2:
                attr = _read_attr(src, entry_value)
        if attr is not None:
            node.attr[key] = attr
    return node


def parse_graphdef(data: bytes | bytearray | memoryview, source: str = "<bytes>",
                   attr_ops: Collection[str] | None = None) -> GraphDef:
    """Parse a serialized GraphDef; tensors keep zero-copy views into ``data``.

    ``source`` (a file name) is used in error messages. With ``attr_ops``
    (e.g. ``{"Const", "Placeholder"}``) only the attrs of nodes with those ops
    are decoded and every other node gets an empty ``attr``: about twice as
    fast on a large graph when only the constants matter.

    Malformed data of any kind raises :class:`GraphDefError` naming ``source``
    and the byte offset of the problem; so does :meth:`Tensor.numpy` later on
    the tensors read here (see there for the memory it may use).
    """
    buf = bytes(data) if not isinstance(data, bytes) else data
    src = _Source(buf, memoryview(buf), source)
    graph = GraphDef()
    pos = field_start = 0
    try:
        while pos < len(buf):  # field by field, so that an error can name the last node read
            field_start = pos
            number, wire, value, pos = _next_field(buf, pos, len(buf))
            allowed = _GRAPH_WIRES.get(number)
            if allowed is not None and wire not in allowed:
                raise _wrong_wire(number, wire, field_start, allowed)
            if number == 1:
                node = _read_node(src, value, attr_ops)
                graph.node.append(node)
            elif number == 2:
                graph.library = bytes(buf[value[0]:value[1]])
            elif number == 4:
                for v_number, _, v_value in _fields(buf, *value, _VERSIONS_WIRES):
                    if v_number == 1:
                        graph.producer = _signed64(v_value)
                    elif v_number == 2:
                        graph.min_consumer = _signed64(v_value)
    except GraphDefError as err:
        where = f" after node {graph.node[-1].name!r}" if graph.node else ""
        raise GraphDefError(
            f"{source}: not a readable GraphDef (truncated or not a TensorFlow .pb?){where}: "
            f"{err}") from err
    except (ValueError, struct.error) as err:  # a check above missed it: still name the place
        raise GraphDefError(
            f"{source}: not a readable GraphDef: in the field at offset {field_start}: "
            f"{type(err).__name__}: {err}") from err
    return graph


def read_graphdef(path: PathLike, attr_ops: Collection[str] | None = None) -> GraphDef:
    """Read a binary GraphDef (``.pb``) file, once, into memory (see
    :func:`parse_graphdef` for ``attr_ops``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"GraphDef file {path} does not exist")
    return parse_graphdef(path.read_bytes(), source=str(path), attr_ops=attr_ops)
