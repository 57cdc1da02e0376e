"""The Python examples marked ``example=NAME`` (JavaScript calling Python,
asyncio) in README.md, and in docs/python.md should they move there, run as
written from the repository's root and print exactly what the ```text output
block after each says."""

import os
import re
import subprocess
import sys

import pytest

from conftest import SOURCE_ROOT, WAIT, child_env

BLOCK = re.compile(r"^```python run example=(\S+)\n(.*?)^```\n\n```text output\n(.*?)^```",
                   re.S | re.M)


def examples():
    found = []
    for name in ("README.md", os.path.join("docs", "python.md")):
        path = os.path.join(SOURCE_ROOT, name)
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                found += BLOCK.findall(f.read())
    return found


def test_the_examples_are_there():
    assert {"callbacks", "asyncio"} <= {name for name, _, _ in examples()}


@pytest.mark.parametrize("name,code,output", examples(),
                         ids=[name for name, _, _ in examples()])
def test_example(name, code, output):
    r = subprocess.run([sys.executable, "-c", code], cwd=SOURCE_ROOT, env=child_env(),
                       capture_output=True, text=True, timeout=2 * WAIT)
    assert r.returncode == 0, r.stderr
    assert r.stdout == output, r.stderr
