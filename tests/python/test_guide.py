"""The examples docs/config.md marks as tested run as written: each
`<!-- tested: FILE CALLS -->` line is followed by a ```js block, written to
FILE and attached; CALLS is a JSON list of [function, data, expected].
Expected values: {"$bytes": base64}, {"$date": ISO 8601} for bytes and dates;
{"error": name, "message": text} for a JSError; {"type": name} for another
jshost error. A returned Error's "stack" is not compared."""

import base64
import datetime
import json
import os
import re

import pytest

import jshost
from conftest import SOURCE_ROOT, WAIT, write

DOC = os.path.join(SOURCE_ROOT, "docs", "config.md")
EXAMPLE = re.compile(r"<!-- tested: (\S+) (.*?) -->\n```js\n(.*?)```", re.S)


def examples():
    with open(DOC, encoding="utf-8") as f:
        text = f.read()
    found = EXAMPLE.findall(text)
    assert len(found) >= 4, "docs/config.md lost its tested examples"
    return found


def expected(v):
    if isinstance(v, dict) and set(v) == {"$bytes"}:
        return base64.b64decode(v["$bytes"])
    if isinstance(v, dict) and set(v) == {"$date"}:
        return datetime.datetime.fromisoformat(v["$date"])
    if isinstance(v, dict):
        return {k: expected(x) for k, x in v.items()}
    if isinstance(v, list):
        return [expected(x) for x in v]
    return v


def without_stacks(v):
    if isinstance(v, dict):
        return {k: without_stacks(x) for k, x in v.items()
                if not (k == "stack" and {"name", "message"} <= v.keys())}
    if isinstance(v, list):
        return [without_stacks(x) for x in v]
    return v


@pytest.mark.parametrize("name,calls,source", examples(), ids=lambda x: x[:20])
def test_example(workdir, name, calls, source):
    d = os.path.join(workdir, "guide")
    os.makedirs(d, exist_ok=True)
    config = write(d, name, source)
    with jshost.Host(config) as host:
        for fn, data, want in json.loads(calls):
            if isinstance(want, dict) and "error" in want:
                with pytest.raises(jshost.JSError) as e:
                    host.call(fn, data, timeout=WAIT)
                assert (e.value.name, e.value.message) == (want["error"], want["message"])
            elif isinstance(want, dict) and set(want) == {"type"}:
                # the config's own deadline applies
                with pytest.raises(jshost.Error) as e:
                    host.call(fn, data)
                assert type(e.value).__name__ == want["type"] or \
                    getattr(e.value, "type", None) == want["type"], e.value
            else:
                assert without_stacks(host.call(fn, data, timeout=WAIT)) == expected(want)
