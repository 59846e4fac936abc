"""A minimal protobuf reader and writer for TensorFlow GraphDefs (no TensorFlow).

Covers the subset a frozen graph needs (``GLOW_SPEC.md`` §4.5): ``GraphDef``
(nodes, versions), ``NodeDef`` (name, op, inputs, device, attrs),
``AttrValue`` (s, i, f, b, type, shape, tensor, list, placeholder; ``func``
is kept as raw bytes), ``TensorProto`` and ``TensorShapeProto``. Fields
outside the subset are skipped when reading (a GraphDef's ``library`` is kept
as raw bytes, so it survives a round trip); nothing is ever executed.

Tensor values follow TensorFlow's rules (``Tensor::FromProto``):

* ``tensor_content`` holds the raw little-endian bytes of all elements;
* otherwise the typed ``*_val`` field (``float_val`` for DT_FLOAT, ``int_val``
  for DT_INT32/UINT8/INT16/INT8/UINT16, ...) holds the values; fewer values
  than elements means "repeat the last value" (one value fills the whole
  shape), none means zeros.

Reading is made for OpenAI's 700 MB ``graph_unoptimized.pb``: the file is read
once, ``tensor_content`` stays a zero-copy ``memoryview`` into it, and
:meth:`Tensor.numpy` decodes it with ``np.frombuffer``. Writing computes each
message's size before emitting it, so big tensors are copied once, not once
per nesting level; :meth:`Tensor.filled` writes a constant tensor of any size
as a single ``*_val`` value (the real-size test fixtures rely on it).

Malformed input (cut, flipped, fuzzed) is a :class:`GraphDefError` naming
the file and the byte offset, never another exception: every field's wire
type is checked against its message's declaration before it is read, and a
tensor never allocates more than its file could hold (fills of one value or
none are broadcast views; only "repeat the last of several values" allocates,
and only up to the file's size). ``tests/test_graphdef_fuzz.py`` holds it to
that on seeded mutations of real graphs.

Field numbers and DataType codes were checked against tensorboard's compiled
protos (``tests/test_graphdef.py`` cross-checks both directions).
"""

from __future__ import annotations

import dataclasses
import math
import os
import struct
from collections.abc import Collection, Iterable, Sequence
from pathlib import Path
from typing import Any, Union

import numpy as np

PathLike = Union[str, "os.PathLike[str]"]

# DataType codes (tensorflow/core/framework/types.proto).
DT_FLOAT = 1
DT_DOUBLE = 2
DT_INT32 = 3
DT_UINT8 = 4
DT_INT16 = 5
DT_INT8 = 6
DT_STRING = 7
DT_INT64 = 9
DT_BOOL = 10
DT_UINT16 = 17
DT_HALF = 19
DT_UINT32 = 22
DT_UINT64 = 23

NUMPY_DTYPES: dict[int, np.dtype] = {
    DT_FLOAT: np.dtype("<f4"),
    DT_DOUBLE: np.dtype("<f8"),
    DT_INT32: np.dtype("<i4"),
    DT_UINT8: np.dtype("u1"),
    DT_INT16: np.dtype("<i2"),
    DT_INT8: np.dtype("i1"),
    DT_INT64: np.dtype("<i8"),
    DT_BOOL: np.dtype("?"),
    DT_UINT16: np.dtype("<u2"),
    DT_HALF: np.dtype("<f2"),
    DT_UINT32: np.dtype("<u4"),
    DT_UINT64: np.dtype("<u8"),
}
DTYPE_NAMES = {
    DT_FLOAT: "DT_FLOAT", DT_DOUBLE: "DT_DOUBLE", DT_INT32: "DT_INT32", DT_UINT8: "DT_UINT8",
    DT_INT16: "DT_INT16", DT_INT8: "DT_INT8", DT_STRING: "DT_STRING", DT_INT64: "DT_INT64",
    DT_BOOL: "DT_BOOL", DT_UINT16: "DT_UINT16", DT_HALF: "DT_HALF", DT_UINT32: "DT_UINT32",
    DT_UINT64: "DT_UINT64",
}

# TensorProto field numbers of the typed value lists, and how each is encoded:
# "f4"/"f8" are fixed-width little-endian floats, "varint" signed integers.
_FLOAT_VAL, _DOUBLE_VAL, _INT_VAL, _INT64_VAL, _BOOL_VAL, _HALF_VAL = 5, 6, 7, 10, 11, 13
_UINT32_VAL, _UINT64_VAL = 16, 17
_VALUE_FIELDS = {
    _FLOAT_VAL: "f4", _DOUBLE_VAL: "f8", _INT_VAL: "varint", _INT64_VAL: "varint",
    _BOOL_VAL: "varint", _HALF_VAL: "varint", _UINT32_VAL: "varint", _UINT64_VAL: "varint",
}
# Which value field a dtype's values live in (TensorFlow's convention).
_DTYPE_VALUE_FIELD = {
    DT_FLOAT: _FLOAT_VAL, DT_DOUBLE: _DOUBLE_VAL,
    DT_INT32: _INT_VAL, DT_UINT8: _INT_VAL, DT_INT16: _INT_VAL, DT_INT8: _INT_VAL,
    DT_UINT16: _INT_VAL, DT_INT64: _INT64_VAL, DT_BOOL: _BOOL_VAL, DT_HALF: _HALF_VAL,
    DT_UINT32: _UINT32_VAL, DT_UINT64: _UINT64_VAL,
}

# Wire types.
_VARINT, _FIXED64, _LEN, _FIXED32 = 0, 1, 2, 5
_WIRE_NAMES = {_VARINT: "varint", _FIXED64: "fixed64", _LEN: "length-delimited",
               _FIXED32: "fixed32"}
# numpy's limit on an array's bytes (larger shapes cannot even be broadcast).
_MAX_ARRAY_BYTES = 2**62


class GraphDefError(ValueError):
    """A GraphDef (or one of its tensors) that cannot be read as the subset here."""


# --------------------------------------------------------------------------
# Messages
# --------------------------------------------------------------------------


@dataclasses.dataclass(eq=False)
class Tensor:
    """A ``TensorProto``: dtype, shape and either raw content or typed values.

    ``content`` is the raw ``tensor_content`` (possibly a memoryview into the
    file read); ``values`` maps a ``*_val`` field number to its decoded values.
    Use :meth:`numpy` to get the array and :meth:`from_numpy` /
    :meth:`filled` to build one. Two tensors are equal when their dtype, shape
    and values are, however the values are encoded.
    """

    dtype: int
    shape: tuple[int, ...] | None  # None: unknown rank
    content: bytes | memoryview = b""
    values: dict[int, np.ndarray] = dataclasses.field(default_factory=dict)
    # Set by the reader: where the tensor was read ("<file>, tensor at offset N", named by
    # every error) and the size of that file (the most a partial fill may expand to).
    origin: str = dataclasses.field(default="", repr=False)
    file_bytes: int | None = dataclasses.field(default=None, repr=False)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Tensor):
            return NotImplemented
        return (self.dtype == other.dtype and self.shape == other.shape
                and np.array_equal(self.numpy(), other.numpy()))

    __hash__ = None  # mutable, like the other messages

    @property
    def num_elements(self) -> int:
        if self.shape is None or any(d < 0 for d in self.shape):
            raise self._error(f"tensor of shape {self.shape} has no fixed number of elements")
        return math.prod(self.shape)

    @property
    def numpy_dtype(self) -> np.dtype:
        if self.dtype not in NUMPY_DTYPES:
            raise self._error(
                f"unsupported tensor dtype {DTYPE_NAMES.get(self.dtype, self.dtype)}; "
                f"supported: {sorted(DTYPE_NAMES[d] for d in NUMPY_DTYPES)}")
        return NUMPY_DTYPES[self.dtype]

    def _error(self, message: str) -> GraphDefError:
        return GraphDefError(f"{self.origin}: {message}" if self.origin else message)

    def numpy(self) -> np.ndarray:
        """The tensor's values as an array of its shape (TensorFlow's fill rules).

        Read-only and possibly not a copy: from ``tensor_content`` a view of
        the bytes read, from one fill value (or none: zeros) a broadcast view
        (no memory for the elements); ``np.array(t.numpy())`` for a writable
        copy. Only "repeat the last of several values" allocates the whole
        shape, and for a tensor read from a file never more bytes than the
        file has (:data:`GraphDefError` otherwise): a few malformed bytes
        cannot ask for gigabytes.
        """
        dtype, n = self.numpy_dtype, self.num_elements
        if math.prod(d for d in self.shape if d) * dtype.itemsize > _MAX_ARRAY_BYTES:
            raise self._error(f"tensor of shape {list(self.shape)} declares {n} elements, more "
                              "than any array can hold")
        if len(self.content):
            if len(self.content) != n * dtype.itemsize:
                raise self._error(
                    f"tensor_content has {len(self.content)} bytes; a {DTYPE_NAMES[self.dtype]} "
                    f"tensor of shape {list(self.shape)} needs {n * dtype.itemsize}")
            return np.frombuffer(self.content, dtype=dtype).reshape(self.shape)
        field = _DTYPE_VALUE_FIELD[self.dtype]
        if field not in self.values:  # no values: zeros
            return np.broadcast_to(np.zeros((), dtype), self.shape)
        values = self.values[field]
        if self.dtype == DT_HALF:  # half_val holds the float16 bit patterns
            values = values.astype(np.uint16).view(np.float16)
        else:
            values = values.astype(dtype, copy=False)
        if values.size > n:
            raise self._error(f"tensor of shape {list(self.shape)} ({n} elements) holds "
                              f"{values.size} values")
        if values.size == n:
            values = values.reshape(self.shape)
            values.flags.writeable = False
            return values
        if values.size == 1:
            return np.broadcast_to(values[0], self.shape)
        if self.file_bytes is not None and n * dtype.itemsize > self.file_bytes:
            raise self._error(
                f"tensor of shape {list(self.shape)} gives {values.size} of its {n} values "
                f"(the last repeats); expanding it needs {n * dtype.itemsize} bytes, more than "
                f"the {self.file_bytes}-byte file holds. Not a GraphDef this reader accepts.")
        out = np.empty(n, dtype)
        out[:values.size] = values
        out[values.size:] = values[-1]
        out.flags.writeable = False
        return out.reshape(self.shape)

    @classmethod
    def from_numpy(cls, array: Any, dtype: int | None = None, as_values: bool = False) -> "Tensor":
        """A tensor holding ``array``: as raw ``tensor_content`` (the default,
        as TensorFlow writes big constants) or, with ``as_values``, as the typed
        ``*_val`` list (as it writes small ones)."""
        array = np.asarray(array)
        if dtype is None:
            matches = [code for code, dt in NUMPY_DTYPES.items() if dt == array.dtype]
            if not matches:
                raise GraphDefError(f"no DataType for numpy dtype {array.dtype}")
            dtype = matches[0]
        array = np.asarray(array, dtype=NUMPY_DTYPES[dtype])
        if not array.flags.c_contiguous:
            array = array.copy(order="C")
        shape = tuple(int(d) for d in array.shape)
        if as_values:
            values = array.view(np.uint16) if dtype == DT_HALF else array
            return cls(dtype, shape, values={_DTYPE_VALUE_FIELD[dtype]: values.reshape(-1).copy()})
        return cls(dtype, shape, content=array.tobytes())

    @classmethod
    def filled(cls, dtype: int, shape: Sequence[int], value: float | int) -> "Tensor":
        """A tensor of ``shape`` whose every element is ``value``, stored as one
        ``*_val`` entry: a few bytes on disk whatever the shape."""
        np_dtype = NUMPY_DTYPES[dtype]
        stored = np.array([value], np_dtype)
        if dtype == DT_HALF:
            stored = stored.view(np.uint16)
        return cls(dtype, tuple(int(d) for d in shape), values={_DTYPE_VALUE_FIELD[dtype]: stored})


@dataclasses.dataclass
class AttrList:
    """``AttrValue.ListValue``."""

    s: list[bytes] = dataclasses.field(default_factory=list)
    i: list[int] = dataclasses.field(default_factory=list)
    f: list[float] = dataclasses.field(default_factory=list)
    b: list[bool] = dataclasses.field(default_factory=list)
    type: list[int] = dataclasses.field(default_factory=list)
    shape: list[tuple[int, ...] | None] = dataclasses.field(default_factory=list)
    tensor: list[Tensor] = dataclasses.field(default_factory=list)


# AttrValue's oneof: kind -> field number.
ATTR_KINDS = {"list": 1, "s": 2, "i": 3, "f": 4, "b": 5, "type": 6, "shape": 7, "tensor": 8,
              "placeholder": 9, "func": 10}


@dataclasses.dataclass
class AttrValue:
    """``AttrValue``: one of ``kind`` (see :data:`ATTR_KINDS`) with its value.

    ``shape`` values are tuples (``-1`` for an unknown dimension) or ``None``
    for an unknown rank; ``func`` is the raw ``NameAttrList`` bytes.
    """

    kind: str
    value: Any

    def __post_init__(self):
        if self.kind not in ATTR_KINDS:
            raise GraphDefError(f"unknown AttrValue kind {self.kind!r}; one of {sorted(ATTR_KINDS)}")


@dataclasses.dataclass
class NodeDef:
    """``NodeDef``. ``input`` holds names as written (``"x"``, ``"x:1"``, ``"^x"``)."""

    name: str
    op: str
    input: list[str] = dataclasses.field(default_factory=list)
    device: str = ""
    attr: dict[str, AttrValue] = dataclasses.field(default_factory=dict)

    @property
    def tensor(self) -> Tensor | None:
        """The ``value`` attr of a ``Const`` node, else None."""
        value = self.attr.get("value")
        return value.value if value is not None and value.kind == "tensor" else None


@dataclasses.dataclass
class GraphDef:
    """``GraphDef``: nodes in file order, the producer version and raw library bytes."""

    node: list[NodeDef] = dataclasses.field(default_factory=list)
    producer: int = 0
    min_consumer: int = 0
    library: bytes = b""

    def by_name(self) -> dict[str, NodeDef]:
        """Nodes by name; a name used twice (an invalid GraphDef) is an error."""
        nodes: dict[str, NodeDef] = {}
        for node in self.node:
            if node.name in nodes:
                raise GraphDefError(f"node name {node.name!r} occurs twice; not a valid GraphDef")
            nodes[node.name] = node
        return nodes


def input_node_name(name: str) -> str:
    """The producing node of an input reference: strips ``^`` and ``:k``."""
    name = name[1:] if name.startswith("^") else name
    return name.rsplit(":", 1)[0] if ":" in name else name


# --------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------


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
        if wire == _LEN:
            length = buf[pos]
            if length < 0x80:
                pos += 1
            else:
                length, pos = _varint(buf, pos)
            value = (pos, pos + length)
            pos += length
        elif wire == _VARINT:
            value, pos = _varint(buf, pos)
        elif wire == _FIXED32:
            value, pos = pos, pos + 4
        elif wire == _FIXED64:
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
_V, _L, _F32, _F64 = (_VARINT,), (_LEN,), (_FIXED32,), (_FIXED64,)
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
    for field, kind in _VALUE_FIELDS.items()}}


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
    if wire != _LEN:
        return np.frombuffer(src.view[value:value + dtype.itemsize], dtype)
    start, end = value
    if (end - start) % dtype.itemsize:
        raise GraphDefError(f"packed {dtype.itemsize}-byte values at offset {start} have "
                            f"{end - start} bytes, not a multiple of {dtype.itemsize}")
    return np.frombuffer(src.view[start:end], dtype)


def _read_values(src: _Source, field: int, wire: int, value: Any,
                 into: dict[int, list]) -> None:
    """Append one occurrence of a repeated numeric field (packed or not)."""
    kind = _VALUE_FIELDS[field]
    chunks = into.setdefault(field, [])
    if kind in ("f4", "f8"):
        chunks.append(_fixed_width(src, wire, value, np.dtype("<" + kind)))
        return
    raw = _packed_varints(src.buf, *value) if wire == _LEN else [value]
    if field in (_INT_VAL, _INT64_VAL):  # signed: negatives are 10-byte two's complement
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
        elif number in _VALUE_FIELDS:
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
            ints = _packed_varints(buf, *value) if wire == _LEN else [value]
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


# --------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------


def _encode_varint(value: int) -> bytes:
    if value < 0:
        value += 1 << 64  # int32/int64 negatives: 10-byte two's complement
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


class _Message:
    """A message as a list of byte chunks plus their total size: nesting a
    message prepends a tag and length and reuses its chunks (no copying)."""

    def __init__(self):
        self.chunks: list[bytes | memoryview] = []
        self.size = 0

    def _put(self, data: bytes | memoryview) -> None:
        self.chunks.append(data)
        self.size += len(data)

    def varint(self, number: int, value: int) -> None:
        self._put(_encode_varint(number << 3 | _VARINT) + _encode_varint(int(value)))

    def fixed32_float(self, number: int, value: float) -> None:
        self._put(_encode_varint(number << 3 | _FIXED32) + struct.pack("<f", value))

    def bytes_(self, number: int, data: bytes | memoryview) -> None:
        self._put(_encode_varint(number << 3 | _LEN) + _encode_varint(len(data)))
        if len(data):
            self._put(data)

    def text(self, number: int, value: str) -> None:
        self.bytes_(number, value.encode("utf-8"))

    def message(self, number: int, sub: "_Message") -> None:
        self._put(_encode_varint(number << 3 | _LEN) + _encode_varint(sub.size))
        self.chunks.extend(sub.chunks)
        self.size += sub.size

    def packed_varints(self, number: int, values: Iterable[int]) -> None:
        self.bytes_(number, b"".join(_encode_varint(int(v)) for v in values))


def _shape_message(shape: tuple[int, ...] | None) -> _Message:
    msg = _Message()
    if shape is None:
        msg.varint(3, 1)
        return msg
    for size in shape:
        dim = _Message()
        if size:
            dim.varint(1, size)
        msg.message(2, dim)
    return msg


def _tensor_message(tensor: Tensor) -> _Message:
    msg = _Message()
    if tensor.dtype:
        msg.varint(1, tensor.dtype)
    msg.message(2, _shape_message(tensor.shape))
    if len(tensor.content):
        msg.bytes_(4, tensor.content)
    for field, values in sorted(tensor.values.items()):
        kind = _VALUE_FIELDS[field]
        if kind in ("f4", "f8"):
            msg.bytes_(field, np.ascontiguousarray(values, "<" + kind).tobytes())
        elif field == _BOOL_VAL:
            msg.packed_varints(field, (int(bool(v)) for v in values))
        else:
            msg.packed_varints(field, (int(v) for v in values))
    return msg


def _list_message(lst: AttrList) -> _Message:
    msg = _Message()
    for s in lst.s:
        msg.bytes_(2, s)
    if lst.i:
        msg.packed_varints(3, lst.i)
    if lst.f:
        msg.bytes_(4, np.asarray(lst.f, "<f4").tobytes())
    if lst.b:
        msg.packed_varints(5, (int(bool(v)) for v in lst.b))
    if lst.type:
        msg.packed_varints(6, lst.type)
    for shape in lst.shape:
        msg.message(7, _shape_message(shape))
    for tensor in lst.tensor:
        msg.message(8, _tensor_message(tensor))
    return msg


def _attr_message(attr: AttrValue) -> _Message:
    msg, number, value = _Message(), ATTR_KINDS[attr.kind], attr.value
    if attr.kind == "list":
        msg.message(number, _list_message(value))
    elif attr.kind in ("s", "func"):
        msg.bytes_(number, value)
    elif attr.kind in ("i", "b", "type"):
        msg.varint(number, int(value))
    elif attr.kind == "f":
        msg.fixed32_float(number, value)
    elif attr.kind == "shape":
        msg.message(number, _shape_message(value))
    elif attr.kind == "tensor":
        msg.message(number, _tensor_message(value))
    else:  # placeholder
        msg.text(number, value)
    return msg


def _node_message(node: NodeDef) -> _Message:
    msg = _Message()
    msg.text(1, node.name)
    msg.text(2, node.op)
    for name in node.input:
        msg.text(3, name)
    if node.device:
        msg.text(4, node.device)
    for key in sorted(node.attr):
        entry = _Message()
        entry.text(1, key)
        entry.message(2, _attr_message(node.attr[key]))
        msg.message(5, entry)
    return msg


def _graph_chunks(graph: GraphDef) -> list[bytes | memoryview]:
    msg = _Message()
    for node in graph.node:
        msg.message(1, _node_message(node))
    if graph.library:
        msg.bytes_(2, graph.library)
    versions = _Message()
    if graph.producer:
        versions.varint(1, graph.producer)
    if graph.min_consumer:
        versions.varint(2, graph.min_consumer)
    msg.message(4, versions)
    return msg.chunks


def serialize_graphdef(graph: GraphDef) -> bytes:
    """The GraphDef's binary protobuf encoding."""
    return b"".join(_graph_chunks(graph))


def write_graphdef(path: PathLike, graph: GraphDef, *, overwrite: bool = False) -> None:
    """Write ``graph`` as a binary ``.pb`` file, atomically (see ``flowjax.io``)."""
    from flowjax.io import atomic_open  # io pulls in PIL; only writers need it

    chunks = _graph_chunks(graph)  # serialise first: an error leaves no file
    with atomic_open(path, overwrite=overwrite) as f:
        for chunk in chunks:
            f.write(chunk)


# --------------------------------------------------------------------------
# Building nodes (for fixtures and tools)
# --------------------------------------------------------------------------


def const_node(name: str, tensor: Tensor | np.ndarray) -> NodeDef:
    """A ``Const`` node as TensorFlow writes one (``dtype`` and ``value`` attrs)."""
    if not isinstance(tensor, Tensor):
        tensor = Tensor.from_numpy(tensor)
    return NodeDef(name, "Const", attr={"dtype": AttrValue("type", tensor.dtype),
                                        "value": AttrValue("tensor", tensor)})


def placeholder_node(name: str, dtype: int, shape: tuple[int, ...] | None) -> NodeDef:
    """A ``Placeholder`` node (``-1`` for an unknown dimension)."""
    return NodeDef(name, "Placeholder", attr={"dtype": AttrValue("type", dtype),
                                              "shape": AttrValue("shape", shape)})


def op_node(name: str, op: str, inputs: Sequence[str], dtype: int = DT_FLOAT) -> NodeDef:
    """Any other op with inputs and a ``T`` attr (enough for graph tracing)."""
    return NodeDef(name, op, list(inputs), attr={"T": AttrValue("type", dtype)})
