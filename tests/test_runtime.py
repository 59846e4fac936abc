"""run.py's process set-up: the persistent compilation cache (flowjax.runs.runtime)."""

import subprocess
import sys
import textwrap

import pytest

from flowjax.runs import runtime

# A program whose compile takes well over runtime.MIN_COMPILE_SECONDS; prints
# how many of its compiles were read from the persistent cache.
_PROGRAM = textwrap.dedent("""
    import sys
    import jax, jax.numpy as jnp
    from flowjax.runs import runtime
    hits = []
    jax.monitoring.register_event_listener(
        lambda event, **kw: hits.append(event) if event == "/jax/compilation_cache/cache_hits" else None)
    runtime.enable_compilation_cache(sys.argv[1])
    def f(x):
        for i in range(60):
            x = jnp.tanh(x @ x + i)
        return x
    jax.jit(f)(jnp.ones((8, 8))).block_until_ready()
    print("cache hits:", len(hits))
""")


def _run(cache: str) -> int:
    out = subprocess.run([sys.executable, "-c", _PROGRAM, cache], capture_output=True, text=True,
                         timeout=120, check=True).stdout
    return int(out.rsplit("cache hits:", 1)[1])


def test_a_second_process_reads_its_compiled_program_from_the_cache(tmp_path):
    cache = tmp_path / "cache"
    assert _run(str(cache)) == 0
    assert any(cache.iterdir()), "the first process wrote nothing into the cache"
    assert _run(str(cache)) >= 1


def test_an_empty_cache_setting_turns_the_cache_off(tmp_path):
    assert _run("") == 0
    assert _run("") == 0


def test_an_unusable_cache_folder_is_refused_with_its_name(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(ValueError, match="a-file.*--compilation_cache"):
        runtime.enable_compilation_cache(blocker / "cache")
