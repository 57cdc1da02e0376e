"""The figures a bench records for bench/targets.py: name -> number, added to
the JSON file $JSHOST_BENCH_FIGURES names (nothing when it is unset), so that
make bench can set each target beside the figure measured for it in the same
run."""

import json
import os


def record(name, value):
    path = os.environ.get("JSHOST_BENCH_FIGURES")
    if not path:
        return
    try:
        with open(path, encoding="utf-8") as f:
            figures = json.load(f)
    except (FileNotFoundError, ValueError):
        figures = {}
    figures[name] = value
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        json.dump(figures, f, indent=1, sort_keys=True)
    os.replace(path + ".tmp", path)
