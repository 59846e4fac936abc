"""Every command starts through one runtime (flowjax.runs.runtime.run) and speaks plainly.

``run.py``, each ``python -m tools.<name>`` and each converter in ``weights/``:
a bad flag or a bad file is one ``error: ...`` line (at most 3 lines in all),
exit status 1, no traceback; the logs carry no orbax INFO lines and no line
about the TPU backend JAX probed. The commands are found by listing the
folders, so a new tool that skips the runtime fails here.
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from flowjax.runs import runtime

ROOT = Path(__file__).resolve().parents[1]
ENV = {**{k: v for k, v in os.environ.items() if k != runtime.TRACEBACK_ENV},
       "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(ROOT)}
MAX_LINES = 3
PARALLEL = 4  # commands at once: most of each is importing JAX, which overlaps well


def _commands() -> dict[str, list[str]]:
    """Every file with a ``__main__`` block: tools as modules, weights/ scripts by path, run.py."""
    commands = {"run.py": [sys.executable, "run.py"]}
    for path in sorted((ROOT / "tools").glob("*.py")):
        if 'if __name__ == "__main__":' in path.read_text():
            commands[f"tools.{path.stem}"] = [sys.executable, "-m", f"tools.{path.stem}"]
    for path in sorted((ROOT / "weights").glob("*.py")):
        if 'if __name__ == "__main__":' in path.read_text():
            commands[f"weights/{path.name}"] = [sys.executable, f"weights/{path.name}"]
    return commands


def _run_all(calls: dict[str, list[str]], cwd: Path) -> dict[str, subprocess.CompletedProcess]:
    def run(argv):
        return subprocess.run(argv, cwd=cwd, env=ENV, capture_output=True, text=True, timeout=240)

    with concurrent.futures.ThreadPoolExecutor(PARALLEL) as pool:
        return dict(zip(calls, pool.map(run, calls.values())))


def _plain_error(result: subprocess.CompletedProcess) -> str | None:
    """What is wrong with a failing command's output, or None when it is one plain error."""
    lines = (result.stdout + result.stderr).strip().splitlines()
    if result.returncode != runtime.EXIT_ERROR:
        return f"exit status {result.returncode}"
    if "Traceback" in result.stderr:
        return "a traceback"
    if len(lines) > MAX_LINES or not lines or not lines[-1].startswith("error: "):
        return f"{len(lines)} lines ending {lines[-1:]!r}"
    return None


def _bad_file_calls(tmp_path: Path) -> dict[str, list[str]]:
    random_bytes = tmp_path / "random.pb"
    random_bytes.write_bytes(os.urandom(4096))
    return {
        "convert_rosinality on README.md": [
            sys.executable, "weights/convert_rosinality.py", "--checkpoint=README.md",
            f"--out={tmp_path / 'o1'}", "--image_size=32"],
        "convert_openai on random bytes": [
            sys.executable, "weights/convert_openai.py", f"--graph={random_bytes}",
            f"--out={tmp_path / 'o3'}"],
    }


def _check_plain_errors(results: dict[str, subprocess.CompletedProcess]) -> None:
    problems = {name: (_plain_error(result), result.stderr[-600:])
                for name, result in results.items() if _plain_error(result)}
    assert not problems, problems
    for name, result in results.items():
        if name.startswith("convert_rosinality on README"):
            assert "README.md is not a PyTorch checkpoint" in result.stderr
        if name.startswith("convert_openai on random"):
            assert "GraphDefError" in result.stderr


def test_every_command_starts_through_the_runtime():
    """Statically (cheap): each command's ``__main__`` block hands its main to ``runtime.run``."""
    skipping = [name for name, argv in _commands().items()
                if "runtime.run(main)" not in _main_block(argv)]
    assert len(_commands()) >= 15, sorted(_commands())  # run.py, 11 tools, 3 converters
    assert not skipping, f"commands that do not start through flowjax.runs.runtime.run: {skipping}"


def _main_block(argv: list[str]) -> str:
    path = ROOT / (argv[-1].replace(".", "/") + ".py" if argv[1] == "-m" else argv[-1])
    text = path.read_text()
    return text[text.index('if __name__ == "__main__":'):]


def test_a_tool_run_py_and_the_converters_answer_bad_input_with_one_error_line(tmp_path):
    calls = {"run.py": [sys.executable, "run.py", "--no_such_flag=1"],
             "tools.compare_runs": [sys.executable, "-m", "tools.compare_runs", "--no_such_flag=1"],
             **_bad_file_calls(tmp_path)}
    results = _run_all(calls, ROOT)
    _check_plain_errors(results)
    assert "Unknown command line flag 'no_such_flag'" in results["tools.compare_runs"].stderr


@pytest.mark.slow  # ~20 s: every command is a process that imports JAX
def test_every_command_answers_a_bad_flag_with_one_error_line(tmp_path):
    calls = {name: argv + ["--no_such_flag=1"] for name, argv in _commands().items()}
    calls["convert_rosinality without --image_size"] = [
        sys.executable, "weights/convert_rosinality.py", "--checkpoint=README.md",
        f"--out={tmp_path / 'o2'}"]
    _check_plain_errors(_run_all(calls, ROOT))


@pytest.mark.slow
def test_a_successful_conversion_logs_its_stages_and_nothing_from_orbax_or_the_tpu_probe(tmp_path):
    result = subprocess.run(
        [sys.executable, "weights/convert_rosinality.py",
         "--checkpoint=tests/fixtures/rosinality_glow_32/state_dict.pt",
         f"--out={tmp_path / 'ckpt'}", "--image_size=32"],
        cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    log = result.stdout + result.stderr
    assert "Unable to initialize backend" not in log
    assert "orbax" not in log.lower(), log
    assert result.stdout.startswith(f"wrote {tmp_path / 'ckpt'}: rosinality Glow ")


def test_quiet_logs_drop_the_backend_probe_and_orbax_info_but_keep_warnings():
    runtime.quiet_logs()
    probe = logging.getLogger("jax._src.xla_bridge")

    def kept(logger, level, message, pathname="x.py"):
        record = logger.makeRecord(logger.name, level, pathname, 1, message, (), None)
        return logger.filter(record)

    assert not kept(probe, logging.INFO, "Unable to initialize backend 'tpu': no libtpu.so")
    assert kept(probe, logging.WARNING, "Unable to initialize backend 'cuda': driver too old")
    absl = logging.getLogger("absl")
    assert not kept(absl, logging.INFO, "Saving checkpoint", "/site-packages/orbax/checkpoint/x.py")
    assert kept(absl, logging.WARNING, "slow save", "/site-packages/orbax/checkpoint/x.py")
    assert kept(absl, logging.INFO, "wrote 275 transfer images", "experiments/transfer.py")
