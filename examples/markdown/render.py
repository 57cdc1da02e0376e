"""Prints the HTML of a Markdown file (or of stdin), rendered by marked on jshost.

    python3 render.py README.md
"""

import os
import sys

import jshost

here = os.path.dirname(os.path.abspath(__file__))

if len(sys.argv) > 1:
    with open(sys.argv[1], encoding="utf-8") as f:
        text = f.read()
else:
    text = sys.stdin.read()

with jshost.Host(os.path.join(here, "host.config.mjs")) as host:
    sys.stdout.write(host.call("html", markdown=text))
