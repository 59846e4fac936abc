"""Convert a rosinality/glow-pytorch (or eth-sri/lassi) Glow state_dict into a flowjax checkpoint.

    python weights/convert_rosinality.py --checkpoint=glow_64.pt --out=weights/lassi64 \\
        --image_size=64 [--n_bits=5] [--n_flow=32 --n_block=4 --affine=False --conv_lu=True]

The file is read with ``torch.load(weights_only=True)`` (no pickled code runs);
a ``module.`` prefix on every key (``nn.DataParallel``, as rosinality's
train.py saves) is stripped. The architecture is read from the keys: n_block,
n_flow, in_channel, the coupling width, additive or affine (the coupling's
output channels) and, per flow, LU (``invconv.w_l``...) or plain
(``invconv.weight``) 1x1 convs (rosinality's last block is always LU, quirk 1
of the fixture README). ``--n_flow`` etc. are optional assertions: a value
that differs from the file's is an error. The image size and n_bits are not
in a state_dict and are given.

Then every key the model needs is checked: a missing key, an unknown key, a
wrong shape or dtype, a non-finite value, an ActNorm whose ``initialized``
buffer is not 1 (rosinality would silently re-initialise it from the next
batch) and LU buffers that are not rosinality's constants (strict masks,
identity ``l_eye``, a permutation ``w_p``, +-1 ``s_sign``) are all listed, by
key, in one :class:`ConversionError`.

Layout changes (the model is :class:`flowjax.models.rosinality.RosinalityGlow`):
conv weights OIHW -> HWIO, ``(1, C, 1, 1)`` vectors -> ``[C]``, the plain 1x1
conv ``weight[:, :, 0, 0]`` transposed (flowjax's ``y = x @ W``), per-flow
tensors stacked along a leading depth axis. The checkpoint is written by
``flowjax.models.checkpoints.save_model`` with the conversion manifest (source
sha256, constructor arguments, counts) as metadata.

Longer than 400 lines because the key table, the checks of every key and the layout
changes are one converter, pinned end to end by tests/test_rosinality.py.
"""

from __future__ import annotations

import re
import warnings
from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from flax import traverse_util

from flowjax import __version__, models
from flowjax.convert import pickles
from flowjax.convert.published import ConversionError, listed, source_record
from flowjax.models import checkpoints, glow
from flowjax.models.rosinality import RosinalityGlow

DATA_PARALLEL_PREFIX = "module."
_LU_KEYS = ("w_p", "w_l", "w_s", "w_u", "u_mask", "l_mask", "s_sign", "l_eye")
_FLOW_KEY = re.compile(r"^blocks\.(\d+)\.flows\.(\d+)\.")
_BLOCK_KEY = re.compile(r"^blocks\.(\d+)\.")


# ---------------------------------------------------------------------------
# Reading the file
# ---------------------------------------------------------------------------


def load_state_dict(path: str | Path) -> dict[str, np.ndarray]:
    """``torch.load(path, weights_only=True)`` -> ``{key: numpy array}``, ``module.`` stripped."""
    import torch  # lazily: flowjax itself does not need torch to load the result

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--checkpoint {path} does not exist; see weights/README.md")
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols before refusing
            warnings.simplefilter("ignore", UserWarning)
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # weights_only refuses pickled code; anything else is corrupt
        raise ConversionError(f"{pickles.refusal(path)}; --checkpoint must be a state_dict "
                              "saved with torch.save(model.state_dict())") from e
    if isinstance(state, Mapping) and "state_dict" in state and isinstance(state["state_dict"], Mapping):
        raise ConversionError(f"{path} holds a dict with a 'state_dict' entry, not a state_dict; "
                              "save model.state_dict() itself")
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ConversionError(f"{path} is not a state_dict (a mapping of tensor names to tensors); "
                              f"got {type(state).__name__}")
    prefixed = [k.startswith(DATA_PARALLEL_PREFIX) for k in state]
    if any(prefixed) and not all(prefixed):
        raise ConversionError(f"{path}: only some keys start with {DATA_PARALLEL_PREFIX!r} "
                              f"({sum(prefixed)} of {len(state)}); the file mixes two models")
    strip = len(DATA_PARALLEL_PREFIX) if state and all(prefixed) else 0
    return {k[strip:]: v.detach().cpu().numpy() for k, v in state.items()}


# ---------------------------------------------------------------------------
# The architecture, read from the keys
# ---------------------------------------------------------------------------


def infer_architecture(state: Mapping[str, np.ndarray], source: str = "<state_dict>") -> dict[str, Any]:
    """rosinality's constructor arguments from the keys (and the coupling width).

    Returns ``{"in_channel", "n_flow", "n_block", "affine", "conv_lu", "width"}``.
    The 1x1-conv kind is detected per flow; blocks 0..n_block-2 must agree and
    the last block must be LU (rosinality never builds anything else).
    """
    blocks = sorted({int(m.group(1)) for k in state if (m := _BLOCK_KEY.match(k))})
    if not blocks:
        raise ConversionError(f"{source}: no 'blocks.<i>.' keys; not a rosinality Glow state_dict "
                              f"(first keys: {listed(sorted(state))})")
    n_block = blocks[-1] + 1
    flows: dict[int, set[int]] = defaultdict(set)
    for key in state:
        if m := _FLOW_KEY.match(key):
            flows[int(m.group(1))].add(int(m.group(2)))
    n_flow = max((max(f) for f in flows.values()), default=-1) + 1
    loc = state.get("blocks.0.flows.0.actnorm.loc")
    if loc is None or loc.ndim != 4 or loc.shape[1] % 4:
        raise ConversionError(f"{source}: blocks.0.flows.0.actnorm.loc is missing or not (1, 4c, 1, 1)")
    in_channel = loc.shape[1] // 4
    net0 = state.get("blocks.0.flows.0.coupling.net.0.weight")
    out = state.get("blocks.0.flows.0.coupling.net.4.conv.weight")
    if net0 is None or out is None:
        raise ConversionError(f"{source}: blocks.0.flows.0.coupling.net.0.weight or "
                              "net.4.conv.weight is missing")
    half = 2 * in_channel
    if out.shape[0] not in (half, 2 * half):
        raise ConversionError(f"{source}: blocks.0.flows.0.coupling.net.4.conv.weight has "
                              f"{out.shape[0]} output channels; expected {half} (additive) or "
                              f"{2 * half} (affine)")
    lu_flows, plain_flows = [], []
    for b in range(n_block):
        for k in range(n_flow):
            prefix = f"blocks.{b}.flows.{k}.invconv."
            if f"{prefix}w_l" in state:
                lu_flows.append((b, k))
            elif f"{prefix}weight" in state:
                plain_flows.append((b, k))
    lower = [(b, k) for b, k in lu_flows + plain_flows if b < n_block - 1]
    kinds = {(b, k) in lu_flows for b, k in lower}
    top_plain = [f"blocks.{b}.flows.{k}" for b, k in plain_flows if b == n_block - 1]
    if len(kinds) > 1 or top_plain:
        raise ConversionError(
            f"{source}: 1x1 conv kinds that rosinality's Glow cannot build: LU in "
            f"{listed(f'blocks.{b}.flows.{k}' for b, k in lu_flows)}; plain in "
            f"{listed(f'blocks.{b}.flows.{k}' for b, k in plain_flows)} (blocks 0..n_block-2 "
            "share one kind, the last block is always LU)")
    return {"in_channel": in_channel, "n_flow": n_flow, "n_block": n_block,
            "affine": bool(out.shape[0] == 2 * half), "conv_lu": kinds != {False},
            "width": int(net0.shape[0])}


def model_for(architecture: Mapping[str, Any], image_size: int, n_bits: int = 5) -> RosinalityGlow:
    """The :class:`RosinalityGlow` for rosinality's constructor arguments."""
    return RosinalityGlow(image_size=image_size, n_levels=architecture["n_block"],
                          depth=architecture["n_flow"],
                          coupling="affine" if architecture["affine"] else "additive",
                          conv_lu=architecture["conv_lu"], width=architecture["width"],
                          n_bits=n_bits, channels=architecture["in_channel"])


# ---------------------------------------------------------------------------
# Expected keys, derived from the model (not from the file)
# ---------------------------------------------------------------------------

# (flowjax path under level_<i>, rosinality key under blocks.<i>.flows.<k>., layout)
_STEP_TABLE = (
    ("actnorm/loc", "actnorm.loc", "vector4d"),
    ("actnorm/scale", "actnorm.scale", "vector4d"),
    ("coupling/conv1/kernel", "coupling.net.0.weight", "oihw"),
    ("coupling/conv1/bias", "coupling.net.0.bias", "as_stored"),
    ("coupling/conv2/kernel", "coupling.net.2.weight", "oihw"),
    ("coupling/conv2/bias", "coupling.net.2.bias", "as_stored"),
    ("coupling/conv_out/kernel", "coupling.net.4.conv.weight", "oihw"),
    ("coupling/conv_out/bias", "coupling.net.4.conv.bias", "as_stored"),
    ("coupling/conv_out/scale", "coupling.net.4.scale", "vector4d"),
)
_PLAIN_TABLE = (("invconv/W", "invconv.weight", "matrix_transposed"),)
_LU_TABLE = (("invconv/L", "invconv.w_l", "as_stored"), ("invconv/U", "invconv.w_u", "as_stored"),
             ("invconv/log_S", "invconv.w_s", "as_stored"), ("invconv/P", "invconv.w_p", "as_stored"),
             ("invconv/sign_S", "invconv.s_sign", "as_stored"))
_PRIOR_TABLE = (("kernel", "prior.conv.weight", "oihw"), ("bias", "prior.conv.bias", "as_stored"),
                ("scale", "prior.scale", "vector4d"))


def _stored_shape(layout: str, shape: tuple[int, ...]) -> tuple[int, ...]:
    if layout == "vector4d":
        return (1, shape[0], 1, 1)
    if layout == "oihw":
        kh, kw, cin, cout = shape
        return (cout, cin, kh, kw)
    if layout == "matrix_transposed":
        return (*shape, 1, 1)
    return tuple(shape)


def _to_flowjax(layout: str, value: np.ndarray) -> np.ndarray:
    if layout == "vector4d":
        return value.reshape(-1)
    if layout == "oihw":
        return value.transpose(2, 3, 1, 0)
    if layout == "matrix_transposed":  # PyTorch y = W x  ->  flowjax y = x @ W^T
        return value[:, :, 0, 0].T
    return value


KeySpec = tuple[str, tuple[str, ...], int | None, str, tuple[int, ...]]


def expected_keys(model: RosinalityGlow) -> dict[str, KeySpec]:
    """``{rosinality key: (collection, flowjax path, flow index or None, layout, stored shape)}``
    for every tensor the model needs (buffers checked separately: ``initialized``,
    LU masks), derived from ``jax.eval_shape`` of the model's init."""
    abstract = glow.abstract_variables(model)
    leaves = {(col, path): leaf.shape for col, tree in abstract.items()
              for path, leaf in traverse_util.flatten_dict(tree).items()}
    table: dict[str, Any] = {}
    for b in range(model.n_levels):
        rows = _STEP_TABLE + (_LU_TABLE if model.level_uses_lu(b) else _PLAIN_TABLE)
        for path, key, layout in rows:
            full = (f"level_{b}", *path.split("/"))
            col = "constants" if path in ("invconv/P", "invconv/sign_S") else "params"
            shape = leaves[(col, full)][1:]
            for k in range(model.depth):
                table[f"blocks.{b}.flows.{k}.{key}"] = (col, full, k, layout,
                                                        _stored_shape(layout, shape))
        scope = f"split_{b}" if b < model.n_levels - 1 else "prior"
        for path, key, layout in _PRIOR_TABLE:
            shape = leaves[("params", (scope, path))]
            table[f"blocks.{b}.{key}"] = ("params", (scope, path), None, layout,
                                          _stored_shape(layout, shape))
    return table


def _buffer_keys(model: RosinalityGlow) -> list[str]:
    keys = []
    for b in range(model.n_levels):
        for k in range(model.depth):
            keys.append(f"blocks.{b}.flows.{k}.actnorm.initialized")
            if model.level_uses_lu(b):
                keys += [f"blocks.{b}.flows.{k}.invconv.{n}" for n in ("u_mask", "l_mask", "l_eye")]
    return keys


def _check_lu_buffers(state: Mapping[str, np.ndarray], prefix: str, problems: dict) -> None:
    c = state[prefix + "w_s"].shape[0] if prefix + "w_s" in state else None
    if c is None:
        return
    ones = np.ones((c, c), np.float32)
    constants = {"u_mask": (np.triu(ones, 1), "ones above the diagonal"),
                 "l_mask": (np.tril(ones, -1), "ones below the diagonal"),
                 "l_eye": (np.eye(c, dtype=np.float32), "the identity")}
    for name, (want, what) in constants.items():
        got = state.get(prefix + name)
        if got is not None and not np.array_equal(got, want):
            problems["lu_buffers"].append(f"{prefix}{name} is not rosinality's constant ({what})")
    p = state.get(prefix + "w_p")
    if p is not None and p.shape == (c, c) and not (
            np.isin(p, (0.0, 1.0)).all() and (p.sum(0) == 1).all() and (p.sum(1) == 1).all()):
        problems["lu_buffers"].append(f"{prefix}w_p is not a permutation matrix")
    sign = state.get(prefix + "s_sign")
    if sign is not None and not np.isin(sign, (-1.0, 1.0)).all():
        problems["lu_buffers"].append(f"{prefix}s_sign holds values other than +-1")


PROBLEMS = {
    "missing": "keys the model needs that the file lacks",
    "unknown": "keys the file has that rosinality's Glow does not (another architecture?)",
    "shape": "tensors of the wrong shape for this architecture",
    "dtype": "tensors that are not float32",
    "non_finite": "tensors holding NaN or Inf",
    "uninitialized": "ActNorms whose 'initialized' buffer is not 1: rosinality would "
                     "re-initialise them from the next batch, so the file does not define "
                     "the model (train it at least one step first)",
    "lu_buffers": "LU buffers that are not rosinality's constants (the masks and l_eye are "
                  "fixed at construction)",
}


def check_state_dict(state: Mapping[str, np.ndarray], model: RosinalityGlow,
                     source: str = "<state_dict>") -> None:
    """Raises :class:`ConversionError` listing every problem (see the module docstring)."""
    table = expected_keys(model)
    buffers = _buffer_keys(model)
    problems: dict[str, list[str]] = defaultdict(list)
    for key, (_, _, _, _, shape) in table.items():
        value = state.get(key)
        if value is None:
            problems["missing"].append(f"{key} (shape {list(shape)})")
        elif tuple(value.shape) != shape:
            problems["shape"].append(f"{key} has shape {list(value.shape)}, expected {list(shape)}")
        elif value.dtype != np.float32:
            problems["dtype"].append(f"{key} is {value.dtype}, expected float32")
        elif not np.isfinite(value).all():
            problems["non_finite"].append(key)
    for key in buffers:
        value = state.get(key)
        if value is None:
            problems["missing"].append(key)
        elif key.endswith("initialized") and (value.size != 1 or int(value.reshape(-1)[0]) != 1):
            problems["uninitialized"].append(f"{key} = {value.reshape(-1).tolist()}")
    for b in range(model.n_levels):
        if model.level_uses_lu(b):
            for k in range(model.depth):
                _check_lu_buffers(state, f"blocks.{b}.flows.{k}.invconv.", problems)
    problems["unknown"] = [f"{k} {list(state[k].shape)}" for k in state
                           if k not in table and k not in buffers]
    problems = {k: v for k, v in problems.items() if v}
    if problems:
        count = sum(len(v) for v in problems.values())
        lines = [f"{source}: not the rosinality Glow {models.model_config(model)}; "
                 f"{count} problem(s):"]
        for kind, text in PROBLEMS.items():
            if problems.get(kind):
                lines += [f"  - {kind}: {text}:", f"      {listed(problems[kind])}"]
        raise ConversionError("\n".join(lines))


def convert_state_dict(state: Mapping[str, np.ndarray], model: RosinalityGlow,
                       source: str = "<state_dict>") -> dict[str, Any]:
    """A checked state_dict -> flowjax ``variables`` (numpy float32 leaves)."""
    check_state_dict(state, model, source)
    flat: dict[str, dict[tuple[str, ...], np.ndarray]] = defaultdict(dict)
    for key, (col, path, flow, layout, _) in expected_keys(model).items():
        value = _to_flowjax(layout, state[key]).astype(np.float32)
        if flow is None:
            flat[col][path] = value
        else:
            leaf = flat[col].setdefault(path, np.empty((model.depth, *value.shape), np.float32))
            leaf[flow] = value
    return {col: traverse_util.unflatten_dict(leaves) for col, leaves in flat.items()}


def convert_file(checkpoint: str | Path, out: str | Path, image_size: int, n_bits: int = 5,
                 expect: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Convert ``checkpoint`` and write the flowjax checkpoint directory ``out``.

    ``expect`` holds constructor arguments to assert (``n_flow``, ``n_block``,
    ``affine``, ``conv_lu``, ``in_channel``, ``width``). Returns the manifest
    (also the checkpoint's metadata, under ``"rosinality_conversion"``).
    """
    checkpoint, out = Path(checkpoint), Path(out)
    checkpoints.check_new_export_dir(out, "--out")
    state = load_state_dict(checkpoint)
    architecture = infer_architecture(state, str(checkpoint))
    wrong = {k: (v, architecture[k]) for k, v in (expect or {}).items()
             if v is not None and architecture[k] != v}
    if wrong:
        raise ConversionError(f"{checkpoint}: " + "; ".join(
            f"--{k}={want} given but the file holds {k}={got}" for k, (want, got) in wrong.items()))
    model = model_for(architecture, image_size, n_bits)
    variables = convert_state_dict(state, model, str(checkpoint))
    manifest = {
        "converter": "weights/convert_rosinality.py",
        "flowjax_version": __version__,
        "source": source_record(checkpoint, checkpoint.read_bytes()),
        "rosinality_constructor": architecture,
        "image_size": image_size, "n_bits": n_bits,
        "model_config": models.model_config(model),
        "state_dict_entries": len(state),
        "total_parameters": int(sum(v.size for v in traverse_util.flatten_dict(
            variables["params"]).values())),
    }
    checkpoints.save_model(out, model, variables, metadata={"rosinality_conversion": manifest})
    return manifest


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------


def _define_flags() -> None:
    from absl import flags

    flags.DEFINE_string("checkpoint", None, "rosinality/lassi state_dict (.pt).", required=True)
    flags.DEFINE_string("out", None, "New checkpoint directory to write.", required=True)
    flags.DEFINE_integer("image_size", None, "Image height = width the model was trained on.",
                         required=True)
    flags.DEFINE_integer("n_bits", 5, "Bits per colour channel (rosinality/lassi: 5).")
    flags.DEFINE_integer("n_flow", None, "Assert rosinality's n_flow.")
    flags.DEFINE_integer("n_block", None, "Assert rosinality's n_block.")
    flags.DEFINE_bool("affine", None, "Assert rosinality's affine.")
    flags.DEFINE_bool("conv_lu", None, "Assert rosinality's conv_lu.")


def main(argv: list[str]) -> None:
    from absl import app, flags

    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}; all options are --flags")
    f = flags.FLAGS
    expect = {"n_flow": f.n_flow, "n_block": f.n_block, "affine": f.affine, "conv_lu": f.conv_lu}
    manifest = convert_file(f.checkpoint, f.out, f.image_size, f.n_bits, expect)
    print(f"wrote {f.out}: rosinality Glow {manifest['rosinality_constructor']}, "
          f"{manifest['total_parameters']:,} parameters, source sha256 {manifest['source']['sha256']}")


if __name__ == "__main__":
    from flowjax.runs import runtime

    _define_flags()
    runtime.run(main)
