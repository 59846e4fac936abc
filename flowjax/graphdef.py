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

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Tensor):
            return NotImplemented
        return (self.dtype == other.dtype and self.shape == other.shape
                and np.array_equal(self.numpy(), other.numpy()))

    __hash__ = None  # mutable, like the other messages

    @property
    def num_elements(self) -> int:
        if self.shape is None or any(d < 0 for d in self.shape):
            raise GraphDefError(f"tensor of shape {self.shape} has no fixed number of elements")
        return math.prod(self.shape)

    @property
    def numpy_dtype(self) -> np.dtype:
        if self.dtype not in NUMPY_DTYPES:
            raise GraphDefError(f"unsupported tensor dtype {DTYPE_NAMES.get(self.dtype, self.dtype)}; "
                                f"supported: {sorted(DTYPE_NAMES[d] for d in NUMPY_DTYPES)}")
        return NUMPY_DTYPES[self.dtype]

    def numpy(self) -> np.ndarray:
        """The tensor's values as an array of its shape (TensorFlow's fill rules).

        Read-only and possibly not a copy: from ``tensor_content`` a view of
        the bytes read, from a single fill value a broadcast view (no memory
        for the elements); ``np.array(t.numpy())`` for a writable copy.
        """
        dtype, n = self.numpy_dtype, self.num_elements
        if len(self.content):
            if len(self.content) != n * dtype.itemsize:
                raise GraphDefError(
                    f"tensor_content has {len(self.content)} bytes; a {DTYPE_NAMES[self.dtype]} "
                    f"tensor of shape {list(self.shape)} needs {n * dtype.itemsize}")
            return np.frombuffer(self.content, dtype=dtype).reshape(self.shape)
        field = _DTYPE_VALUE_FIELD[self.dtype]
        values = self.values.get(field, np.zeros(0))
        if self.dtype == DT_HALF:  # half_val holds the float16 bit patterns
            values = values.astype(np.uint16).view(np.float16)
        else:
            values = values.astype(dtype, copy=False)
        if values.size > n:
            raise GraphDefError(f"tensor of shape {list(self.shape)} ({n} elements) holds "
                                f"{values.size} values")
        if values.size == n:
            values = values.reshape(self.shape)
            values.flags.writeable = False
            return values
        if values.size == 1:
            return np.broadcast_to(values[0], self.shape)
        out = np.empty(n, dtype)
        out[:values.size] = values
        out[values.size:] = values[-1] if values.size else 0
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
            return result, pos
        shift += 7
        if shift > 63:
            raise GraphDefError(f"varint longer than 10 bytes at offset {pos}")


def _signed64(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _next_field(buf: bytes, pos: int, end: int) -> tuple[int, int, Any, int]:
    """The field at ``pos``: ``(number, wire type, value, next pos)``; a
    length-delimited value is its ``(start, end)`` range in ``buf``, a
    fixed-width one its offset. One-byte varints are inlined: this is most of
    the time spent reading a large graph."""
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
        raise GraphDefError(f"unsupported wire type {wire} (field {number}) at offset {pos}")
    if pos > end:
        raise GraphDefError(f"field {number} runs past the end of its message (offset {pos} > {end})")
    return number, wire, value, pos


def _fields(buf: bytes, start: int, end: int) -> list[tuple[int, int, Any]]:
    """``(number, wire type, value)`` of every field of a message, in order."""
    out, pos = [], start
    while pos < end:
        number, wire, value, pos = _next_field(buf, pos, end)
        out.append((number, wire, value))
    return out


def _text(buf: bytes, span: tuple[int, int]) -> str:
    return buf[span[0]:span[1]].decode("utf-8")


def _packed_varints(buf: bytes, start: int, end: int) -> list[int]:
    values, pos = [], start
    while pos < end:
        value, pos = _varint(buf, pos)
        values.append(value)
    return values


def _read_values(buf: bytes, view: memoryview, field: int, wire: int, value: Any,
                 into: dict[int, list]) -> None:
    """Append one occurrence of a repeated numeric field (packed or not)."""
    kind = _VALUE_FIELDS[field]
    chunks = into.setdefault(field, [])
    if kind in ("f4", "f8"):
        dtype = np.dtype("<" + kind)
        if wire == _LEN:
            chunks.append(np.frombuffer(view[value[0]:value[1]], dtype))
        else:
            chunks.append(np.frombuffer(view[value:value + dtype.itemsize], dtype))
        return
    raw = _packed_varints(buf, *value) if wire == _LEN else [value]
    if field in (_INT_VAL, _INT64_VAL):  # signed: negatives are 10-byte two's complement
        raw = [_signed64(v) for v in raw]
    chunks.append(np.array(raw, np.uint64 if field == _UINT64_VAL else np.int64))


def _read_shape(buf: bytes, span: tuple[int, int]) -> tuple[int, ...] | None:
    dims: list[int] = []
    unknown_rank = False
    for number, _, value in _fields(buf, *span):
        if number == 2:  # dim
            size = 0
            for dim_number, _, dim_value in _fields(buf, *value):
                if dim_number == 1:
                    size = _signed64(dim_value)
            dims.append(size)
        elif number == 3:
            unknown_rank = bool(value)
    return None if unknown_rank else tuple(dims)


def _read_tensor(buf: bytes, view: memoryview, span: tuple[int, int]) -> Tensor:
    dtype, shape, content = 0, (), b""
    chunks: dict[int, list] = {}
    for number, wire, value in _fields(buf, *span):
        if number == 1:
            dtype = value
        elif number == 2:
            shape = _read_shape(buf, value)
        elif number == 4:
            content = view[value[0]:value[1]]
        elif number in _VALUE_FIELDS:
            _read_values(buf, view, number, wire, value, chunks)
    values = {f: (c[0] if len(c) == 1 else np.concatenate(c)) for f, c in chunks.items()}
    return Tensor(dtype, shape, content, values)


def _read_list(buf: bytes, view: memoryview, span: tuple[int, int]) -> AttrList:
    out = AttrList()
    for number, wire, value in _fields(buf, *span):
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
            raw = view[value[0]:value[1]] if wire == _LEN else view[value:value + 4]
            out.f.extend(float(v) for v in np.frombuffer(raw, "<f4"))
        elif number == 7:
            out.shape.append(_read_shape(buf, value))
        elif number == 8:
            out.tensor.append(_read_tensor(buf, view, value))
    return out


def _read_attr(buf: bytes, view: memoryview, span: tuple[int, int]) -> AttrValue | None:
    attr = None
    for number, _, value in _fields(buf, *span):
        if number == 1:
            attr = AttrValue("list", _read_list(buf, view, value))
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
            attr = AttrValue("tensor", _read_tensor(buf, view, value))
        elif number == 9:
            attr = AttrValue("placeholder", _text(buf, value))
        elif number == 10:
            attr = AttrValue("func", bytes(buf[value[0]:value[1]]))
    return attr


def _read_node(buf: bytes, view: memoryview, span: tuple[int, int],
               attr_ops: Collection[str] | None) -> NodeDef:
    node = NodeDef(name="", op="")
    entries = []
    for number, _, value in _fields(buf, *span):
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
        for entry_number, _, entry_value in _fields(buf, *entry):
            if entry_number == 1:
                key = _text(buf, entry_value)
            elif entry_number == 2:
                attr = _read_attr(buf, view, entry_value)
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
    """
    buf = bytes(data) if not isinstance(data, bytes) else data
    view = memoryview(buf)
    graph = GraphDef()
    pos = 0
    try:
        while pos < len(buf):  # field by field, so that an error can name the last node read
            number, _, value, pos = _next_field(buf, pos, len(buf))
            if number == 1:
                node = _read_node(buf, view, value, attr_ops)
                graph.node.append(node)
            elif number == 2:
                graph.library = bytes(buf[value[0]:value[1]])
            elif number == 4:
                for v_number, _, v_value in _fields(buf, *value):
                    if v_number == 1:
                        graph.producer = _signed64(v_value)
                    elif v_number == 2:
                        graph.min_consumer = _signed64(v_value)
    except (IndexError, ValueError, struct.error) as err:  # ValueError: GraphDefError, bad UTF-8, ...
        where = f" after node {graph.node[-1].name!r}" if graph.node else ""
        raise GraphDefError(
            f"{source}: not a readable GraphDef (truncated or not a TensorFlow .pb?){where}: "
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
