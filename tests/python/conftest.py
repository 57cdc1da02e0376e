"""Shared fixtures for jshost's Python tests.

Each test module gets its own runtime directory (so its own manager, sockets
and logs) and shuts that manager down when the module ends. Paths are short
(/tmp/jshpy-XXXX) because socket paths must fit sun_path's 108 bytes.
"""

import os
import shutil
import tempfile

import pytest

import jshost
from jshost import _jshost

HAS_CLIENT = hasattr(_jshost, "Connection")
SOURCE_ROOT = os.environ.get("JSHOST_TEST_SOURCE_ROOT",
                             os.path.dirname(os.path.dirname(os.path.dirname(
                                 os.path.abspath(__file__)))))


@pytest.fixture(scope="module")
def runtime_dir():
    """A private JSHOST_RUNTIME_DIR for this module; its manager is shut down
    at the end."""
    old = os.environ.get("JSHOST_RUNTIME_DIR")
    d = tempfile.mkdtemp(prefix="jshpy-", dir="/tmp")
    os.environ["JSHOST_RUNTIME_DIR"] = d
    try:
        yield d
    finally:
        if HAS_CLIENT:
            try:
                jshost.shutdown()
            except jshost.Error:
                pass
        if old is None:
            os.environ.pop("JSHOST_RUNTIME_DIR", None)
        else:
            os.environ["JSHOST_RUNTIME_DIR"] = old
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def workdir(runtime_dir):
    """A folder for this module's config files and scripts."""
    d = os.path.join(runtime_dir, "work")
    os.makedirs(d, exist_ok=True)
    return d


def write(folder, name, text):
    """Writes folder/name and returns its path."""
    path = os.path.join(folder, name)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path
