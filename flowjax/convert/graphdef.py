"""TensorFlow GraphDef messages as plain dataclasses (no TensorFlow).

Covers the subset a frozen graph needs (``GLOW_SPEC.md`` §4.5): ``GraphDef``
(nodes, versions), ``NodeDef`` (name, op, inputs, device, attrs),
``AttrValue`` (s, i, f, b, type, shape, tensor, list, placeholder; ``func``
is kept as raw bytes), ``TensorProto`` and ``TensorShapeProto``, with the
field numbers and wire types their encoding uses. Reading the binary form is
:mod:`flowjax.convert.graphdef_reader`, writing it :mod:`flowjax.convert.graphdef_writer`;
:func:`const_node`, :func:`placeholder_node` and :func:`op_node` build nodes
as TensorFlow writes them (for fixtures and tools).

Tensor values follow TensorFlow's rules (``Tensor::FromProto``):

* ``tensor_content`` holds the raw little-endian bytes of all elements;
* otherwise the typed ``*_val`` field (``float_val`` for DT_FLOAT, ``int_val``
  for DT_INT32/UINT8/INT16/INT8/UINT16, ...) holds the values; fewer values
  than elements means "repeat the last value" (one value fills the whole
  shape), none means zeros.

:meth:`Tensor.numpy` decodes ``tensor_content`` with ``np.frombuffer`` (a
zero-copy view of the bytes read) and never allocates more than a tensor's
file could hold (fills of one value or none are broadcast views; only "repeat
the last of several values" allocates, and only up to the file's size).
:meth:`Tensor.filled` makes a constant tensor of any size that is written as
a single ``*_val`` value (the real-size test fixtures rely on it).

Field numbers and DataType codes were checked against tensorboard's compiled
protos (``tests/test_graphdef.py`` cross-checks both directions).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

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
# Public because the reader and the writer both work from this table.
FLOAT_VAL, DOUBLE_VAL, INT_VAL, INT64_VAL, BOOL_VAL, HALF_VAL = 5, 6, 7, 10, 11, 13
UINT32_VAL, UINT64_VAL = 16, 17
VALUE_FIELDS = {
    FLOAT_VAL: "f4", DOUBLE_VAL: "f8", INT_VAL: "varint", INT64_VAL: "varint",
    BOOL_VAL: "varint", HALF_VAL: "varint", UINT32_VAL: "varint", UINT64_VAL: "varint",
}
# Which value field a dtype's values live in (TensorFlow's convention).
_DTYPE_VALUE_FIELD = {
    DT_FLOAT: FLOAT_VAL, DT_DOUBLE: DOUBLE_VAL,
    DT_INT32: INT_VAL, DT_UINT8: INT_VAL, DT_INT16: INT_VAL, DT_INT8: INT_VAL,
    DT_UINT16: INT_VAL, DT_INT64: INT64_VAL, DT_BOOL: BOOL_VAL, DT_HALF: HALF_VAL,
    DT_UINT32: UINT32_VAL, DT_UINT64: UINT64_VAL,
}

# Wire types (how protobuf encodes a field), shared by the reader and the writer.
WIRE_VARINT, WIRE_FIXED64, WIRE_LEN, WIRE_FIXED32 = 0, 1, 2, 5
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
