"""Every public name of the package has a docstring, and the stub names
exactly the public API of jshost/__init__.py."""

import ast
import importlib
import inspect
import os

import pytest

import jshost

MODULES = [
    "jshost", "jshost.errors", "jshost.aio",
    "jshost.js_host", "jshost.js_host.conf", "jshost.js_host.function",
    "jshost.js_host.host", "jshost.js_host.exceptions", "jshost.js_host.apps",
    "jshost.v8cffi", "jshost.v8cffi.platform", "jshost.v8cffi.vm",
    "jshost.v8cffi.context", "jshost.v8cffi.exceptions", "jshost.v8cffi.shortcuts",
]


def public_members(mod):
    names = getattr(mod, "__all__", None) or [n for n in vars(mod) if not n.startswith("_")]
    for name in names:
        obj = getattr(mod, name)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            if getattr(obj, "__module__", "").startswith("jshost"):
                yield name, obj


@pytest.mark.parametrize("modname", MODULES)
def test_docstrings(modname):
    mod = importlib.import_module(modname)
    assert mod.__doc__, modname
    missing = []
    for name, obj in public_members(mod):
        if not inspect.getdoc(obj):
            missing.append(name)
        if inspect.isclass(obj):
            for attr, member in vars(obj).items():
                if attr.startswith("_"):
                    continue
                if (inspect.isfunction(member) or isinstance(member, property)) \
                        and not inspect.getdoc(member):
                    missing.append("%s.%s" % (name, attr))
    assert missing == [], modname


def test_stub_matches_the_module():
    stub = os.path.join(os.path.dirname(jshost.__file__), "__init__.pyi")
    tree = ast.parse(open(stub).read())
    declared = {n.name for n in tree.body if isinstance(n, (ast.ClassDef, ast.FunctionDef))}
    assert set(jshost.__all__) <= declared
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name in ("Host", "Context", "VM",
                                                            "PyFunction"):
            methods = {n.name for n in node.body if isinstance(n, ast.FunctionDef)}
            real = {n for n in vars(getattr(jshost, node.name)) if not n.startswith("_")}
            assert real <= methods, (node.name, real - methods)


def test_aio_stub_matches_the_module():
    import jshost.aio
    stub = os.path.join(os.path.dirname(jshost.__file__), "aio.pyi")
    tree = ast.parse(open(stub).read())
    declared = {n.name for n in tree.body if isinstance(n, (ast.ClassDef, ast.FunctionDef))}
    assert set(jshost.aio.__all__) <= declared
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name in jshost.aio.__all__:
            methods = {n.name for n in node.body
                       if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
            cls = getattr(jshost.aio, node.name)
            real = {n for c in cls.__mro__ if c.__module__ == "jshost.aio"
                    for n in vars(c) if not n.startswith("_")}
            assert real <= methods, (node.name, real - methods)
