"""flowjax.convert.graphdef (messages), graphdef_reader and graphdef_writer: the dependency-free
GraphDef reader and writer.

Round trips through our own encoder and decoder, TensorFlow's value rules for
TensorProto, and a cross-check in both directions against tensorboard's
compiled protos (skipped where tensorboard does not import).
"""

from __future__ import annotations

import numpy as np
import pytest

from flowjax.convert import graphdef as gd
from flowjax.convert.graphdef_reader import parse_graphdef, read_graphdef
from flowjax.convert.graphdef_writer import serialize_graphdef, write_graphdef

try:
    from tensorboard.compat.proto import attr_value_pb2, graph_pb2, node_def_pb2, tensor_pb2
    from tensorboard.compat.proto import tensor_shape_pb2, types_pb2
    from tensorboard.util import tensor_util
    TENSORBOARD_ERROR = None
except Exception as err:  # noqa: BLE001 - any import failure means "no reference"
    TENSORBOARD_ERROR = f"{type(err).__name__}: {err}"

needs_tensorboard = pytest.mark.skipif(
    TENSORBOARD_ERROR is not None,
    reason=f"tensorboard's compiled protos do not import: {TENSORBOARD_ERROR}")


def round_trip(graph: gd.GraphDef, **kwargs) -> gd.GraphDef:
    return parse_graphdef(serialize_graphdef(graph), **kwargs)


def const_value(tensor: gd.Tensor) -> np.ndarray:
    return round_trip(gd.GraphDef([gd.const_node("c", tensor)])).node[0].tensor.numpy()


# ---- round trips ---------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float32", "float64", "int32", "uint8", "int16", "int8",
                                   "int64", "bool", "uint16", "float16", "uint32", "uint64"])
@pytest.mark.parametrize("as_values", [False, True], ids=["tensor_content", "typed_values"])
def test_tensor_round_trips(dtype, as_values):
    values = np.random.default_rng(0).normal(0, 50, (2, 3, 4))
    array = values.astype(dtype)
    out = const_value(gd.Tensor.from_numpy(array, as_values=as_values))
    assert out.dtype == array.dtype
    np.testing.assert_array_equal(out, array)


def test_negative_int32_values_round_trip():
    array = np.array([-1, -2**31, 2**31 - 1, 0, 7], np.int32)
    np.testing.assert_array_equal(const_value(gd.Tensor.from_numpy(array, as_values=True)), array)


def test_scalar_tensor_round_trips():
    out = const_value(gd.Tensor.from_numpy(np.float32(3.0)))
    assert out.shape == () and out == 3.0


def test_tensor_content_is_decoded_without_a_copy():
    data = serialize_graphdef(gd.GraphDef([gd.const_node("c", np.arange(6, dtype=np.float32))]))
    value = parse_graphdef(data).node[0].tensor.numpy()
    assert not value.flags.owndata and not value.flags.writeable
    np.testing.assert_array_equal(value, np.arange(6, dtype=np.float32))


def test_node_fields_and_every_attr_kind_round_trip():
    attrs = {
        "s": gd.AttrValue("s", b"SAME"),
        "i": gd.AttrValue("i", -3),
        "f": gd.AttrValue("f", 1.5),
        "b": gd.AttrValue("b", True),
        "type": gd.AttrValue("type", gd.DT_INT32),
        "shape": gd.AttrValue("shape", (-1, 16, 16, 3)),
        "unknown_rank": gd.AttrValue("shape", None),
        "placeholder": gd.AttrValue("placeholder", "T"),
        "func": gd.AttrValue("func", b"\n\x03foo"),
        "list": gd.AttrValue("list", gd.AttrList(s=[b"a", b"bc"], i=[1, -2], f=[0.5, 2.0],
                                                 b=[True, False], type=[1, 3],
                                                 shape=[(2, 3), None])),
    }
    node = gd.NodeDef("scope/op", "Conv2D", ["x", "w:1", "^ctrl"], "/device:CPU:0", attrs)
    out = round_trip(gd.GraphDef([node], producer=27, min_consumer=12, library=b"\x0a\x00"))
    assert (out.producer, out.min_consumer, out.library) == (27, 12, b"\x0a\x00")
    assert out.node == [node]


def test_tensors_are_equal_by_value_whatever_the_encoding():
    array = np.full((2, 3), 0.5, np.float32)
    assert gd.Tensor.from_numpy(array) == gd.Tensor.filled(gd.DT_FLOAT, (2, 3), 0.5)
    assert gd.Tensor.from_numpy(array) == gd.Tensor.from_numpy(array, as_values=True)
    assert gd.Tensor.from_numpy(array) != gd.Tensor.filled(gd.DT_FLOAT, (2, 3), 0.25)
    assert gd.Tensor.from_numpy(array) != gd.Tensor.filled(gd.DT_FLOAT, (3, 2), 0.5)


def test_const_nodes_round_trip():
    nodes = [gd.const_node("w", np.arange(6, dtype=np.float32).reshape(2, 3)),
             gd.const_node("fill", gd.Tensor.filled(gd.DT_INT32, (4,), 9))]
    assert round_trip(gd.GraphDef(nodes)).node == nodes


def test_tensor_attrs_round_trip_inside_lists():
    lst = gd.AttrList(tensor=[gd.Tensor.from_numpy(np.arange(3, dtype=np.int32))])
    out = round_trip(gd.GraphDef([gd.NodeDef("n", "Op", attr={"l": gd.AttrValue("list", lst)})]))
    np.testing.assert_array_equal(out.node[0].attr["l"].value.tensor[0].numpy(), np.arange(3))


def test_attr_ops_limits_attr_decoding_to_those_ops():
    graph = gd.GraphDef([gd.const_node("c", np.ones(2, np.float32)),
                         gd.op_node("add", "AddV2", ["c", "c"])])
    out = round_trip(graph, attr_ops={"Const"})
    assert out.node[1].attr == {} and out.node[1].input == ["c", "c"]
    np.testing.assert_array_equal(out.node[0].tensor.numpy(), np.ones(2))


def test_write_graphdef_writes_the_serialized_bytes(tmp_path):
    graph = gd.GraphDef([gd.const_node("c", np.ones((2, 2), np.float32))])
    write_graphdef(tmp_path / "g.pb", graph)
    assert (tmp_path / "g.pb").read_bytes() == serialize_graphdef(graph)
    np.testing.assert_array_equal(read_graphdef(tmp_path / "g.pb").node[0].tensor.numpy(),
                                  np.ones((2, 2)))


def test_write_graphdef_refuses_an_existing_file(tmp_path):
    (tmp_path / "g.pb").write_bytes(b"old")
    with pytest.raises(FileExistsError):
        write_graphdef(tmp_path / "g.pb", gd.GraphDef())
    assert (tmp_path / "g.pb").read_bytes() == b"old"


# ---- TensorFlow's value rules ------------------------------------------------------


def test_single_float_val_fills_the_whole_shape():
    out = const_value(gd.Tensor.filled(gd.DT_FLOAT, (2, 3, 4), 0.25))
    assert out.shape == (2, 3, 4) and out.dtype == np.float32
    assert (out == 0.25).all()


def test_filled_tensor_is_tiny_whatever_its_shape():
    big = gd.GraphDef([gd.const_node("c", gd.Tensor.filled(gd.DT_FLOAT, (32, 3, 3, 513, 512), 1.0))])
    assert len(serialize_graphdef(big)) < 100


def test_single_int_val_fills_the_whole_shape():
    out = const_value(gd.Tensor.filled(gd.DT_INT32, (4,), -7))
    np.testing.assert_array_equal(out, np.full(4, -7, np.int32))


def test_fewer_values_than_elements_repeat_the_last():
    tensor = gd.Tensor(gd.DT_FLOAT, (5,), values={5: np.array([1.0, 2.0], np.float32)})
    np.testing.assert_array_equal(const_value(tensor), [1.0, 2.0, 2.0, 2.0, 2.0])


def test_no_values_means_zeros():
    np.testing.assert_array_equal(const_value(gd.Tensor(gd.DT_INT32, (3,))), np.zeros(3, np.int32))


def test_more_values_than_elements_is_an_error():
    tensor = gd.Tensor(gd.DT_FLOAT, (2,), values={5: np.ones(3, np.float32)})
    with pytest.raises(gd.GraphDefError, match=r"shape \[2\] \(2 elements\) holds 3 values"):
        const_value(tensor)


def test_tensor_content_of_the_wrong_size_is_an_error():
    tensor = gd.Tensor(gd.DT_FLOAT, (2, 2), content=b"\0" * 12)
    with pytest.raises(gd.GraphDefError, match="tensor_content has 12 bytes; .* needs 16"):
        tensor.numpy()


def test_unsupported_dtype_is_named():
    with pytest.raises(gd.GraphDefError, match="DT_STRING"):
        gd.Tensor(gd.DT_STRING, (1,)).numpy()


# ---- malformed input and helpers -----------------------------------------------------


def test_truncated_file_names_the_source_and_last_node():
    data = serialize_graphdef(gd.GraphDef([gd.const_node("first", np.ones(4, np.float32)),
                                           gd.const_node("second", np.ones(4, np.float32))]))
    with pytest.raises(gd.GraphDefError, match=r"^broken.pb: not a readable GraphDef .*'first'"):
        parse_graphdef(data[:-5], source="broken.pb")


# Each was a TypeError, UnicodeDecodeError, IndexError or OverflowError before (issue #18):
# a field read as another wire type than its message declares, and friends.
MALFORMED = {
    "versions as a varint (the 2-byte file)": (b"\x20\x01", "field 4 at offset 0 is varint"),
    "node as a varint": (b"\x08\x05", "field 1 at offset 0 is varint"),
    "library as fixed32": (b"\x15\x00\x00\x00\x00", "field 2 at offset 0 is fixed32"),
    "node name as a varint": (b"\x0a\x02\x08\x01", "field 1 at offset 2 is varint"),
    "attr entry as a varint": (b"\x0a\x02\x28\x01", "field 5 at offset 2 is varint"),
    "attr tensor as a varint": (b"\x0a\x06\x2a\x04\x12\x02\x40\x01", "field 8 at offset 6"),
    "tensor dtype as bytes": (b"\x0a\x08\x2a\x06\x12\x04\x42\x02\x0a\x00",
                              "field 1 at offset 8 is length-delimited"),
    "odd-length packed floats": (b"\x0a\x09\x2a\x07\x12\x05\x42\x03\x2a\x01\x00",
                                 "at offset 10 have 1 bytes, not a multiple of 4"),
    "name not UTF-8": (b"\x0a\x03\x0a\x01\xff", "string at offset 4 is not UTF-8"),
    "varint cut off": (b"\x0a\x02\x08\x80", "field at offset 2 is cut off"),
    "varint of 11 bytes": (b"\x20" + b"\xff" * 11, "varint at offset 1 is longer than 10 bytes"),
    "field number 0": (b"\x00\x00", "field number 0 at offset 0"),
    "group wire type": (b"\x0b", "unsupported wire type 3"),
    "length past the end": (b"\x0a\x05\x0a\x01", "field 1 at offset 0 runs past the end"),
    "packed int cut off": (b"\x0a\x09\x2a\x07\x12\x05\x42\x03\x3a\x01\x80",
                           "packed varints at offset 10 are cut off"),
    "packed int past its field": (b"\x0a\x0b\x2a\x09\x12\x07\x42\x05\x3a\x01\x80\x08\x01",
                                  "packed varints at offset 10 run past their end"),
}


@pytest.mark.parametrize("data, message", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_input_is_a_graphdef_error_naming_file_and_offset(data, message):
    with pytest.raises(gd.GraphDefError, match=r"^bad\.pb: .*" + message):
        parse_graphdef(data, source="bad.pb")


def test_uint64_values_above_int64_are_read_not_overflowed():
    tensor = gd.Tensor(gd.DT_UINT64, (2,), values={17: np.array([2**64 - 1, 5], np.uint64)})
    np.testing.assert_array_equal(const_value(tensor), np.array([2**64 - 1, 5], np.uint64))


def test_tensor_errors_name_the_file_and_the_tensors_offset():
    data = serialize_graphdef(gd.GraphDef(
        [gd.const_node("c", gd.Tensor(gd.DT_FLOAT, (2, 2), content=b"\0" * 12))]))
    tensor = parse_graphdef(data, source="g.pb").node[0].tensor
    with pytest.raises(gd.GraphDefError, match=r"^g\.pb: tensor at offset \d+: tensor_content "
                                                r"has 12 bytes"):
        tensor.numpy()


def test_partial_fill_larger_than_the_file_is_refused_without_allocating():
    # 2 values for 2**26 float32 elements: 256 MiB from a 50-byte graph. TensorFlow's rule
    # (repeat the last value) would allocate them all; the file cannot hold that much.
    big = gd.Tensor(gd.DT_FLOAT, (2**26,), values={5: np.array([1.0, 2.0], np.float32)})
    data = serialize_graphdef(gd.GraphDef([gd.const_node("c", big)]))
    tensor = parse_graphdef(data, source="g.pb").node[0].tensor
    with pytest.raises(gd.GraphDefError, match=rf"^g\.pb: tensor at offset \d+: .* needs "
                                                rf"{2**28} bytes, more than the {len(data)}-byte"):
        tensor.numpy()


def test_shape_beyond_any_array_is_refused():
    data = serialize_graphdef(gd.GraphDef(
        [gd.const_node("c", gd.Tensor.filled(gd.DT_FLOAT, (2**40, 2**40), 1.0))]))
    with pytest.raises(gd.GraphDefError, match="more than any array can hold"):
        parse_graphdef(data, source="g.pb").node[0].tensor.numpy()


def test_one_value_and_no_value_fills_of_any_size_allocate_nothing():
    for tensor in (gd.Tensor.filled(gd.DT_FLOAT, (2**20, 2**20), 1.0),
                   gd.Tensor(gd.DT_INT32, (2**20, 2**20))):
        data = serialize_graphdef(gd.GraphDef([gd.const_node("c", tensor)]))
        value = parse_graphdef(data).node[0].tensor.numpy()
        assert value.shape == (2**20, 2**20) and value.strides == (0, 0)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.pb"):
        read_graphdef(tmp_path / "nothing.pb")


def test_duplicate_node_names_are_an_error():
    graph = gd.GraphDef([gd.op_node("x", "Identity", []), gd.op_node("x", "Identity", [])])
    with pytest.raises(gd.GraphDefError, match="'x' occurs twice"):
        graph.by_name()


@pytest.mark.parametrize("ref, name", [("a/b", "a/b"), ("a/b:1", "a/b"), ("^a/b", "a/b")])
def test_input_node_name_strips_control_and_output_index(ref, name):
    assert gd.input_node_name(ref) == name


# ---- cross-check against tensorboard's protos ------------------------------------------


@needs_tensorboard
def test_dtype_codes_match_tensorflows():
    for code, name in gd.DTYPE_NAMES.items():
        assert types_pb2.DataType.Value(name) == code


@needs_tensorboard
@pytest.mark.parametrize("message, fields", [
    ("GraphDef", {"node": 1, "library": 2, "version": 3, "versions": 4}),
    ("NodeDef", {"name": 1, "op": 2, "input": 3, "device": 4, "attr": 5}),
    ("AttrValue", {"list": 1, "s": 2, "i": 3, "f": 4, "b": 5, "type": 6, "shape": 7, "tensor": 8,
                   "placeholder": 9, "func": 10}),
    ("TensorProto", {"dtype": 1, "tensor_shape": 2, "tensor_content": 4, "float_val": 5,
                     "double_val": 6, "int_val": 7, "int64_val": 10, "bool_val": 11,
                     "half_val": 13, "uint32_val": 16, "uint64_val": 17}),
    ("TensorShapeProto", {"dim": 2, "unknown_rank": 3}),
])
def test_field_numbers_match_tensorflows(message, fields):
    modules = {"GraphDef": graph_pb2.GraphDef, "NodeDef": node_def_pb2.NodeDef,
               "AttrValue": attr_value_pb2.AttrValue, "TensorProto": tensor_pb2.TensorProto,
               "TensorShapeProto": tensor_shape_pb2.TensorShapeProto}
    descriptor = modules[message].DESCRIPTOR
    assert {name: descriptor.fields_by_name[name].number for name in fields} == fields


def _sample_graph() -> gd.GraphDef:
    return gd.GraphDef([
        gd.placeholder_node("input/image", gd.DT_UINT8, (-1, 16, 16, 3)),
        gd.const_node("w", np.random.default_rng(0).normal(size=(3, 3, 4, 8)).astype(np.float32)),
        gd.const_node("fill", gd.Tensor.filled(gd.DT_FLOAT, (2, 3), 0.25)),
        gd.const_node("paddings", gd.Tensor.from_numpy(np.array([[0, 0], [1, -1]], np.int32),
                                                       as_values=True)),
        gd.const_node("scalar", np.float32(3.0)),
        gd.NodeDef("conv", "Conv2D", ["input/image", "w:0", "^fill"], attr={
            "T": gd.AttrValue("type", gd.DT_FLOAT), "padding": gd.AttrValue("s", b"SAME"),
            "strides": gd.AttrValue("list", gd.AttrList(i=[1, 1, 1, 1]))}),
    ], producer=27)


@needs_tensorboard
def test_tensorboard_reads_what_we_write():
    graph = _sample_graph()
    parsed = graph_pb2.GraphDef()
    parsed.ParseFromString(serialize_graphdef(graph))
    assert [n.name for n in parsed.node] == [n.name for n in graph.node]
    assert list(parsed.node[5].input) == ["input/image", "w:0", "^fill"]
    assert list(parsed.node[5].attr["strides"].list.i) == [1, 1, 1, 1]
    assert [d.size for d in parsed.node[0].attr["shape"].shape.dim] == [-1, 16, 16, 3]
    assert parsed.versions.producer == 27
    for ours, theirs in zip(graph.node[1:5], parsed.node[1:5]):
        np.testing.assert_array_equal(tensor_util.make_ndarray(theirs.attr["value"].tensor),
                                      ours.tensor.numpy())


@needs_tensorboard
def test_we_read_what_tensorboard_writes():
    theirs = graph_pb2.GraphDef()
    theirs.versions.producer = 27
    expected = {}
    for name, array in {"content": np.arange(24, dtype=np.float32).reshape(2, 3, 4),
                        "ints": np.array([-5, 0, 2**31 - 1], np.int32),
                        "bytes": np.arange(7, dtype=np.uint8)}.items():
        node = theirs.node.add(name=name, op="Const")
        node.attr["value"].tensor.CopyFrom(tensor_util.make_tensor_proto(array))
        expected[name] = array
    fill = theirs.node.add(name="fill", op="Const")
    fill.attr["value"].tensor.dtype = types_pb2.DT_FLOAT
    fill.attr["value"].tensor.tensor_shape.dim.add(size=3)
    fill.attr["value"].tensor.tensor_shape.dim.add(size=2)
    fill.attr["value"].tensor.float_val.append(-0.5)
    expected["fill"] = np.full((3, 2), -0.5, np.float32)
    op = theirs.node.add(name="op", op="Conv2D", input=["content", "^fill"])
    op.attr["padding"].s = b"VALID"
    op.attr["strides"].list.i.extend([1, 2, 2, 1])
    op.experimental_debug_info.original_node_names.append("skipped")  # outside the subset

    ours = parse_graphdef(theirs.SerializeToString())
    assert ours.producer == 27
    for node in ours.node[:-1]:
        value = node.tensor.numpy()
        assert value.dtype == expected[node.name].dtype
        np.testing.assert_array_equal(value, expected[node.name])
    assert ours.node[-1].input == ["content", "^fill"]
    assert ours.node[-1].attr == {"padding": gd.AttrValue("s", b"VALID"),
                                  "strides": gd.AttrValue("list", gd.AttrList(i=[1, 2, 2, 1]))}
