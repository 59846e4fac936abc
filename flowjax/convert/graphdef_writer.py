"""Writing TensorFlow GraphDefs (:mod:`flowjax.convert.graphdef` messages) as binary ``.pb``.

For test fixtures and exports. Each message's size is computed before it is
emitted, so big tensors are copied once, not once per nesting level; a
:meth:`~flowjax.convert.graphdef.Tensor.filled` tensor is written as a single
``*_val`` value whatever its shape.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable
from typing import Union

import numpy as np

from flowjax.convert.graphdef import (
    ATTR_KINDS,
    BOOL_VAL,
    VALUE_FIELDS,
    WIRE_FIXED32,
    WIRE_LEN,
    WIRE_VARINT,
    AttrList,
    AttrValue,
    GraphDef,
    NodeDef,
    Tensor,
)

PathLike = Union[str, "os.PathLike[str]"]


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
        self._put(_encode_varint(number << 3 | WIRE_VARINT) + _encode_varint(int(value)))

    def fixed32_float(self, number: int, value: float) -> None:
        self._put(_encode_varint(number << 3 | WIRE_FIXED32) + struct.pack("<f", value))

    def bytes_(self, number: int, data: bytes | memoryview) -> None:
        self._put(_encode_varint(number << 3 | WIRE_LEN) + _encode_varint(len(data)))
        if len(data):
            self._put(data)

    def text(self, number: int, value: str) -> None:
        self.bytes_(number, value.encode("utf-8"))

    def message(self, number: int, sub: "_Message") -> None:
        self._put(_encode_varint(number << 3 | WIRE_LEN) + _encode_varint(sub.size))
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
        kind = VALUE_FIELDS[field]
        if kind in ("f4", "f8"):
            msg.bytes_(field, np.ascontiguousarray(values, "<" + kind).tobytes())
        elif field == BOOL_VAL:
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
