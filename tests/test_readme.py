"""The README's API example runs and its claims hold."""

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_readme_api_example_runs():
    text = (ROOT / "README.md").read_text()
    example = re.search(r"## Quick API example\n\n```python\n(.*?)```", text, re.S)
    assert example, "README.md lost its '## Quick API example' python block"
    exec(compile(example.group(1), "README.md example", "exec"), {})


def test_readme_set_up_commands_are_the_ones_ci_runs():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    test_command = "pip install torch==2.13.0 -e '.[test,faces]' && python -m pytest"
    assert test_command in readme
    assert test_command in ci
    assert "python run.py --config=configs/transfer.py" in readme
