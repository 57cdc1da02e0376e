"""Renders a page with React on jshost and prints it (see README.md)."""

import os

import jshost

here = os.path.dirname(os.path.abspath(__file__))

with jshost.Host(os.path.join(here, "host.config.mjs")) as host:
    print(host.call("render", {
        "title": "Tea & biscuits",
        "products": [{"name": "Green tea", "price": 4.5}, {"name": "Shortbread <3", "price": 2}],
    }))
