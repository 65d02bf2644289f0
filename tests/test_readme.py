"""The Python examples in README.md run as written (in a fresh directory)."""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parent.parent
BLOCKS = re.findall(r"```python\n(.*?)```", (REPO / "README.md").read_text(), re.S)


def test_the_readme_has_python_examples():
    assert len(BLOCKS) >= 2


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_example_runs(index, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    env.pop("LOGBROKER_DATA_DIR", None)
    # each example may assume the topics of the one before it
    setup = "".join(block for block in BLOCKS[:index] if "Broker.open(\"data\")" in block)
    for code in ([setup] if setup else []) + [BLOCKS[index]]:
        result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True,
                                text=True, timeout=60)
        assert result.returncode == 0, result.stderr[-3000:]
