"""v8-cffi's API on jshost, for code moving over.

Change only the imports::

    from jshost.v8cffi.platform import platform   # was: from v8cffi.platform import platform
    from jshost.v8cffi import shortcuts, exceptions

    with platform as p:
        with p.create_vm() as vm:
            with vm.create_context() as ctx:
                ctx.load_libs(["./foo_bundled.js"])
                ctx.run_script('foo.render("hola");', identifier="page.js")   # a str

A VM is a jshost worker process of its own (:class:`jshost.VM`): VMs run in
parallel, and the GIL is released while scripts run.
"""
