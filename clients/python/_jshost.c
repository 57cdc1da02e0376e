/*
 * _jshost: the C half of the jshost Python package, the module itself: its
 * types (made in the files _jshost_priv.h lists), pack/unpack and the setters
 * jshost's Python modules call once at import.
 */
#include "_jshost_priv.h"

/* _jshost.timeout_ms(seconds) -> int */
static PyObject *
mod_timeout_ms(PyObject *self, PyObject *t)
{
    int ms;

    (void)self;
    if (pyhost_timeout_ms(t, &ms) < 0)
        return NULL;
    return PyLong_FromLong(ms);
}

/* _jshost.pack(value, root="data") -> bytes */
static PyObject *
mod_pack(PyObject *self, PyObject *args, PyObject *kw)
{
    (void)self;
    static char *kwlist[] = {"value", "root", NULL};
    PyObject *o;
    const char *root = "data";
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|s:pack", kwlist, &o, &root))
        return NULL;
    struct pyvalue_pack st;
    pyvalue_pack_init(&st, root);
    PyObject *r = NULL;
    if (pyvalue_pack(&st, o, root) == 0)
        r = PyBytes_FromStringAndSize(st.sb.data, (Py_ssize_t)st.sb.size);
    msgpack_sbuffer_destroy(&st.sb);
    return r;
}

/* _jshost.unpack(bytes) -> value */
static PyObject *
mod_unpack(PyObject *self, PyObject *arg)
{
    (void)self;
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    PyObject *r = pyvalue_unpack(view.buf, (size_t)view.len);
    PyBuffer_Release(&view);
    return r;
}

static PyMethodDef mod_methods[] = {
    {"pack", (PyCFunction)(void (*)(void))mod_pack,
     METH_VARARGS | METH_KEYWORDS,
     "pack(value, root='data') -> bytes: a Python value as jshost sends it."},
    {"unpack", (PyCFunction)mod_unpack, METH_O,
     "unpack(bytes) -> value: one msgpack value as jshost returns it."},
    {"timeout_ms", (PyCFunction)mod_timeout_ms, METH_O,
     "timeout_ms(seconds) -> int: a timeout= in seconds (None: the default) "
     "as libjshost's ms."},
    {"_set_error_factory", (PyCFunction)pyerror_set_factory, METH_O,
     "Sets the callable that turns libjshost errors into exceptions."},
    {"_set_callable_type", (PyCFunction)pycallable_set_type, METH_VARARGS,
     "Sets jshost.PyFunction and the main thread's ident."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef jshost_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "jshost._jshost",
    .m_doc =
        "The C half of jshost: value conversion and the libjshost connection.",
    .m_size = -1,
    .m_methods = mod_methods,
};

PyMODINIT_FUNC
PyInit__jshost(void)
{
    if (pyvalue_init() < 0)
        return NULL;
    PyObject *m = PyModule_Create(&jshost_module);
    if (m == NULL)
        return NULL;
    if (PyModule_AddIntConstant(m, "MAX_DEPTH", PYVALUE_MAX_DEPTH) < 0)
        goto fail;
    if (PyType_Ready(&pyconn_type) < 0 || PyType_Ready(&pyhost_type) < 0 ||
        PyType_Ready(&pycallable_invoke_type) < 0)
        goto fail;
    Py_INCREF(&pyconn_type);
    if (PyModule_AddObject(m, "Connection", (PyObject *)&pyconn_type) < 0) {
        Py_DECREF(&pyconn_type);
        goto fail;
    }
    Py_INCREF(&pyhost_type);
    if (PyModule_AddObject(m, "HostBase", (PyObject *)&pyhost_type) < 0) {
        Py_DECREF(&pyhost_type);
        goto fail;
    }
    if (pyhost_init() < 0 || pyconn_watch_fork() < 0)
        goto fail;
    if (PyModule_AddIntConstant(m, "ERR_IO", JSHOST_ERR_IO) < 0 ||
        PyModule_AddIntConstant(m, "ERR_PROTOCOL", JSHOST_ERR_PROTOCOL) < 0 ||
        PyModule_AddIntConstant(m, "ERR_TIMEOUT", JSHOST_ERR_TIMEOUT) < 0 ||
        PyModule_AddIntConstant(m, "ERR_REMOTE", JSHOST_ERR_REMOTE) < 0 ||
        PyModule_AddIntConstant(m, "ERR_ARG", JSHOST_ERR_ARG) < 0 ||
        PyModule_AddIntConstant(m, "ERR_OOM", JSHOST_ERR_OOM) < 0 ||
        PyModule_AddIntConstant(m, "ERR_SPAWN", JSHOST_ERR_SPAWN) < 0 ||
        PyModule_AddIntConstant(m, "ERR_RUNTIME", JSHOST_ERR_RUNTIME) < 0 ||
        PyModule_AddIntConstant(m, "ERR_CANCELLED", JSHOST_ERR_CANCELLED) < 0 ||
        PyModule_AddStringConstant(m, "libjshost_version", jshost_version()) <
            0)
        goto fail;
    return m;
fail:
    Py_DECREF(m);
    return NULL;
}
