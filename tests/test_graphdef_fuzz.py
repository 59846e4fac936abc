"""Fuzzing flowjax.convert.graphdef_reader: malformed bytes get GraphDefError and bounded memory,
nothing else.

Seeded, so every run tries the same inputs (a failure reproduces). Inputs are
mutations (flipped, overwritten, inserted, cut) of real graphs: OpenAI-form
GraphDef fixture, a slice of it small enough to mutate often, and a graph
with every attr kind and tensor encoding the reader knows, plus random bytes.
Each input is parsed and every tensor read is turned into an array, as the
converter does. Before issue #18 such inputs escaped as TypeError (wire-type
confusion) and MemoryError (tensors allocated by their declared shape).
"""

from __future__ import annotations

import random
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from flowjax.convert import graphdef as gd
from flowjax.convert.graphdef_reader import parse_graphdef
from flowjax.convert.graphdef_writer import serialize_graphdef

ROOT = Path(__file__).resolve().parents[1]
REAL_GRAPH = ROOT / "tests" / "fixtures" / "openai_glow_32" / "glow_demo_form.pb"
N_SMALL_INPUTS = 1000  # mutations of the small seeds (a few ms each)
N_REAL_INPUTS = 4  # mutations of the whole 1 MB fixture (~50 ms each)
# What one input may make the reader hold at its peak: a few times its size (nodes as
# Python objects, decoded value lists) plus a fixed allowance. A tensor allocated by its
# declared shape (the bug) needs orders of magnitude more.
BYTES_PER_INPUT_BYTE = 4
FIXED_ALLOWANCE = 1 << 20


def _every_kind_graph() -> bytes:
    lst = gd.AttrList(s=[b"a"], i=[1, -2], f=[0.5], b=[True], type=[1], shape=[(2, 3), None],
                      tensor=[gd.Tensor.from_numpy(np.arange(3, dtype=np.int32))])
    attrs = {"s": gd.AttrValue("s", b"SAME"), "i": gd.AttrValue("i", -3),
             "f": gd.AttrValue("f", 1.5), "b": gd.AttrValue("b", True),
             "type": gd.AttrValue("type", gd.DT_INT32), "shape": gd.AttrValue("shape", (-1, 4)),
             "placeholder": gd.AttrValue("placeholder", "T"), "func": gd.AttrValue("func", b"f"),
             "list": gd.AttrValue("list", lst)}
    nodes = [
        gd.NodeDef("op", "Conv2D", ["x", "w:1", "^c"], "/cpu:0", attrs),
        gd.const_node("content", np.arange(6, dtype=np.float32).reshape(2, 3)),
        gd.const_node("values", gd.Tensor.from_numpy(np.arange(4, dtype=np.int64), as_values=True)),
        gd.const_node("partial", gd.Tensor(gd.DT_FLOAT, (8,), values={5: np.ones(2, np.float32)})),
        gd.const_node("fill", gd.Tensor.filled(gd.DT_HALF, (3, 3), 0.5)),
        gd.const_node("zeros", gd.Tensor(gd.DT_UINT64, (4,))),
        gd.placeholder_node("x", gd.DT_FLOAT, (-1, 8, 8, 3)),
    ]
    return serialize_graphdef(gd.GraphDef(nodes, producer=27, library=b"\x0a\x00"))


def _mutate(rng: random.Random, data: bytes) -> bytes:
    out = bytearray(data)
    kind = rng.randrange(5)
    if kind == 0:  # flip bits
        for _ in range(rng.randint(1, 4)):
            out[rng.randrange(len(out))] ^= 1 << rng.randrange(8)
    elif kind == 1:  # overwrite bytes
        for _ in range(rng.randint(1, 4)):
            out[rng.randrange(len(out))] = rng.randrange(256)
    elif kind == 2:  # insert random bytes
        pos = rng.randrange(len(out) + 1)
        out[pos:pos] = rng.randbytes(rng.randint(1, 12))
    elif kind == 3:  # cut
        del out[rng.randrange(len(out)):]
    else:  # a long varint: huge lengths, dimensions, dtypes
        pos, n = rng.randrange(len(out)), rng.randint(2, 10)
        out[pos:pos + n] = b"\xff" * (n - 1) + bytes([rng.randrange(1, 128)])
    return bytes(out)


def _read_everything(data: bytes) -> None:
    """Parse, then turn every tensor into an array, as the converter does."""
    graph = parse_graphdef(data, source="fuzz.pb")
    for node in graph.node:
        for attr in node.attr.values():
            tensors = ([attr.value] if attr.kind == "tensor"
                       else attr.value.tensor if attr.kind == "list" else [])
            for tensor in tensors:
                tensor.numpy()


def _fuzz(seeds: list[bytes], n: int, seed: int) -> dict[str, int]:
    rng = random.Random(seed)
    outcomes = {"read": 0, "GraphDefError": 0}
    tracemalloc.start()
    try:
        for i in range(n):
            data = _mutate(rng, seeds[i % len(seeds)]) if i % 10 else rng.randbytes(
                rng.randint(0, 80))
            tracemalloc.reset_peak()
            before = tracemalloc.get_traced_memory()[0]
            try:
                _read_everything(data)
                outcomes["read"] += 1
            except gd.GraphDefError as err:
                assert str(err).startswith("fuzz.pb: ") and "offset" in str(err), (
                    f"input {i} ({data[:40]!r}...): the error names no file or offset: {err}")
                outcomes["GraphDefError"] += 1
            peak = tracemalloc.get_traced_memory()[1] - before
            limit = BYTES_PER_INPUT_BYTE * len(data) + FIXED_ALLOWANCE
            assert peak <= limit, (f"input {i} ({len(data)} bytes, {data[:40]!r}...) made the "
                                   f"reader hold {peak} bytes (limit {limit})")
    finally:
        tracemalloc.stop()
    return outcomes


def test_mutated_small_graphs_give_only_graphdef_errors_in_bounded_memory():
    real = parse_graphdef(REAL_GRAPH.read_bytes())
    seeds = [_every_kind_graph(), serialize_graphdef(gd.GraphDef(real.node[:40], producer=27))]
    outcomes = _fuzz(seeds, N_SMALL_INPUTS, seed=18)
    # Both outcomes occur: the mutations are neither all harmless nor all fatal.
    assert outcomes["read"] > 50 and outcomes["GraphDefError"] > 500, outcomes


def test_mutated_real_graph_gives_only_graphdef_errors_in_bounded_memory():
    outcomes = _fuzz([REAL_GRAPH.read_bytes()], N_REAL_INPUTS, seed=5)
    assert sum(outcomes.values()) == N_REAL_INPUTS


def test_a_62_byte_graph_cannot_ask_for_8_gib():
    # Two values for 2**31 float32 elements: TensorFlow's "repeat the last" rule would
    # allocate 8 GiB. Refused because the file cannot hold that tensor.
    tensor = gd.Tensor(gd.DT_FLOAT, (2**31,), values={5: np.array([1.0, 2.0], np.float32)})
    data = serialize_graphdef(gd.GraphDef([gd.const_node("c", tensor)]))
    assert len(data) == 62
    with pytest.raises(gd.GraphDefError, match="needs 8589934592 bytes, more than the 62-byte file"):
        _read_everything(data)


def test_converter_on_the_two_byte_file_names_it_and_the_offset(tmp_path):
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location(
        "convert_openai", ROOT / "weights" / "convert_openai.py")
    converter = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = converter  # its dataclasses look the module up there
    spec.loader.exec_module(converter)
    from flowjax.models import glow

    (tmp_path / "two.pb").write_bytes(b"\x20\x01")
    with pytest.raises(gd.GraphDefError, match=r"two\.pb: .*field 4 at offset 0 is varint"):
        converter.convert_file(tmp_path / "two.pb", tmp_path / "out",
                               glow.Glow(image_size=16, n_levels=2, depth=2, width=8))
    assert not (tmp_path / "out").exists()
