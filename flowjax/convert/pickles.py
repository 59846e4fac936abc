"""Why ``torch.load(weights_only=True)`` refused a file, told without running it.

PyTorch checkpoints are pickles, and a pickle can name any Python callable to
be called while it loads (``os.system`` included). flowjax only ever loads them
with ``weights_only=True``, which refuses such files, but torch's refusal
advises retrying with ``weights_only=False``: exactly what must not be done
with a file that carries code. :func:`refusal` replaces that message with
what the file is: a pickle that would call code (named), or not a PyTorch
checkpoint at all. It reads the pickle's opcodes with :mod:`pickletools`,
which lists them and never executes anything.
"""

from __future__ import annotations

import pickletools
import zipfile
from pathlib import Path

# What a plain state_dict's pickle imports: tensors, their storages, OrderedDict.
_STATE_DICT_MODULES = ("torch", "collections")
_STRING_OPS = {"SHORT_BINUNICODE", "BINUNICODE", "UNICODE", "BINUNICODE8"}


def _pickle_bytes(path: Path) -> bytes:
    """The pickle inside a PyTorch zip checkpoint (``<name>/data.pkl``), else the file itself."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
            if not names:
                raise ValueError("a zip archive without the data.pkl of one")
            return archive.read(names[0])
    return path.read_bytes()


def imported_names(data: bytes) -> list[str]:
    """Every ``module.name`` a pickle's GLOBAL or STACK_GLOBAL opcodes would import, in order.

    Raises ValueError when ``data`` is not a pickle (``pickletools`` meets an unknown opcode).
    """
    names, strings = [], []
    for opcode, arg, _ in pickletools.genops(data):
        if opcode.name == "GLOBAL":  # protocols 0-3: "module name"
            names.append(".".join(str(arg).split(" ", 1)))
        elif opcode.name == "STACK_GLOBAL" and len(strings) >= 2:  # protocol 4+: the last two strings
            names.append(f"{strings[-2]}.{strings[-1]}")
        if opcode.name in _STRING_OPS:
            strings.append(arg)
    return names


def refusal(path: str | Path) -> str:
    """One sentence on why torch's safe loader refused ``path``, for the error a converter raises."""
    path = Path(path)
    try:
        data = _pickle_bytes(path)
    except (ValueError, OSError, zipfile.BadZipFile) as problem:
        return f"{path} is not a PyTorch checkpoint ({problem})"
    try:
        imported = imported_names(data)
    except (ValueError, EOFError):
        return f"{path} is not a PyTorch checkpoint (not a pickle, nor a zip archive holding one)"
    code = sorted({name for name in imported if name.split(".")[0] not in _STATE_DICT_MODULES})
    if code:
        return (f"{path} holds pickled code: loading it would call {', '.join(code[:5])}; "
                "flowjax refuses it and never unpickles code")
    return (f"{path} is a pickle that PyTorch's safe loader cannot read as tensors "
            f"(imports {', '.join(sorted(set(imported))[:5]) or 'nothing'})")
