/*
 * pyhost: HostBase, jshost.Host's C half. Its call() is the hot path, from
 * the Python arguments to the result with nothing in Python and no
 * allocation of ours (pyconn.c's request path keeps room between calls).
 */
#include "_jshost_priv.h"

#include <limits.h>

#include <structmember.h>

static PyObject *str_timeout; /* "timeout", interned */
static PyObject *empty_dict;  /* the data of a call with no arguments */

int
pyhost_init(void)
{
    if ((str_timeout == NULL &&
         (str_timeout = PyUnicode_InternFromString("timeout")) == NULL) ||
        (empty_dict == NULL && (empty_dict = PyDict_New()) == NULL))
        return -1;
    return 0;
}

typedef struct {
    PyObject_HEAD PyObject *conn; /* _conn: the Connection */
    PyObject *id;                 /* _id: the host's id on it (str) */
} HostObject;

/* Seconds (None: the host's default, 0) to ms for libjshost: what
 * docs/api says of every timeout= of the package. 0, or -1 with an
 * exception. */
int
pyhost_timeout_ms(PyObject *t, int *ms)
{
    PyObject *f;
    double d;

    *ms = 0;
    if (t == NULL || t == Py_None)
        return 0;
    if (PyFloat_CheckExact(t)) {
        d = PyFloat_AS_DOUBLE(t);
    } else {
        /* float(timeout): what the Python API always took */
        if ((f = PyNumber_Float(t)) == NULL)
            return -1;
        d = PyFloat_AS_DOUBLE(f);
        Py_DECREF(f);
    }
    if (d != d || d <= 0) {
        if ((f = PyFloat_FromDouble(d)) != NULL) {
            PyErr_Format(PyExc_ValueError,
                         "timeout must be a positive number of seconds, not "
                         "%R",
                         f);
            Py_DECREF(f);
        }
        return -1;
    }
    /* about 24 days: as good as no limit, and the server is told so */
    if (d * 1000 + 0.999999 >= (double)INT_MAX) {
        *ms = INT_MAX;
        return 0;
    }
    *ms = (int)(d * 1000 + 0.999999);
    return 0;
}

/* Host.call(name, data=..., /, *, timeout=None, **kwargs): the arguments
 * taken as they come (vectorcall), the keyword arguments made the data. */
static PyObject *
host_call(HostObject *self, PyObject *const *args, Py_ssize_t nargs,
          PyObject *kwnames)
{
    Py_ssize_t nkw = kwnames != NULL ? PyTuple_GET_SIZE(kwnames) : 0;
    Py_ssize_t fn_len, host_len, i;
    PyObject *timeout = NULL, *kwargs = NULL, *data, *conn, *id, *r = NULL;
    const char *fn, *host;
    int ms;

    if (nargs < 1 || nargs > 2) {
        if (nargs < 1)
            PyErr_SetString(PyExc_TypeError,
                            "call() missing 1 required positional argument: "
                            "'name'");
        else
            PyErr_Format(PyExc_TypeError,
                         "call() takes from 2 to 3 positional arguments but "
                         "%zd were given",
                         nargs + 1);
        return NULL;
    }
    for (i = 0; i < nkw; i++) {
        PyObject *k = PyTuple_GET_ITEM(kwnames, i);

        if (k == str_timeout || PyUnicode_Compare(k, str_timeout) == 0) {
            timeout = args[nargs + i];
            continue;
        }
        if (kwargs == NULL && (kwargs = PyDict_New()) == NULL)
            return NULL;
        if (PyDict_SetItem(kwargs, k, args[nargs + i]) < 0)
            goto out;
    }
    if (nargs == 2 && kwargs != NULL) {
        PyErr_SetString(PyExc_TypeError,
                        "call() takes either one data argument or keyword "
                        "arguments, not both");
        goto out;
    }
    data = nargs == 2 ? args[1] : kwargs != NULL ? kwargs : empty_dict;
    if (pyhost_timeout_ms(timeout, &ms) < 0)
        goto out;
    if (!PyUnicode_Check(args[0])) {
        PyErr_Format(PyExc_TypeError,
                     "call() argument 'name' must be str, not %.100s",
                     Py_TYPE(args[0])->tp_name);
        goto out;
    }
    if ((fn = PyUnicode_AsUTF8AndSize(args[0], &fn_len)) == NULL)
        goto out;
    conn = self->conn;
    id = self->id;
    if (conn == NULL || Py_TYPE(conn) != &pyconn_type || id == NULL ||
        !PyUnicode_Check(id)) {
        PyErr_SetString(PyExc_ValueError, "jshost host is not attached");
        goto out;
    }
    if ((host = PyUnicode_AsUTF8AndSize(id, &host_len)) == NULL)
        goto out;
    /* Both stay alive while the GIL is released, whatever other threads do
     * to this Host. */
    Py_INCREF(conn);
    Py_INCREF(id);
    r = pyconn_call_data((ConnObject *)conn, host, host_len, fn, fn_len, data,
                         ms);
    Py_DECREF(id);
    Py_DECREF(conn);
out:
    Py_XDECREF(kwargs);
    return r;
}

static int
host_traverse(HostObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->conn);
    Py_VISIT(self->id);
    return 0;
}

static int
host_clear(HostObject *self)
{
    Py_CLEAR(self->conn);
    Py_CLEAR(self->id);
    return 0;
}

static void
host_dealloc(HostObject *self)
{
    PyObject_GC_UnTrack(self);
    host_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef host_methods[] = {
    {"call", (PyCFunction)(void (*)(void))host_call,
     METH_FASTCALL | METH_KEYWORDS,
     "call($self, name, data=..., /, *, timeout=None, **kwargs)\n--\n\n"
     "Calls the config's function ``name`` and returns its result.\n\n"
     "The data is either one positional value or the keyword arguments\n"
     "(``host.call(\"hello_world\", name=\"Foo\")``), not both. ``timeout`` "
     "in\nseconds overrides the host's default deadline (the config's\n"
     "``timeout``); past it the call raises :class:`TimeoutError`. A\n"
     "JavaScript failure raises :class:`JSError`."},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef host_members[] = {
    {"_conn", T_OBJECT_EX, offsetof(HostObject, conn), 0,
     "The Connection the host is attached on."},
    {"_id", T_OBJECT_EX, offsetof(HostObject, id), 0, "The host's id (str)."},
    {NULL, 0, 0, 0, NULL},
};

PyTypeObject pyhost_type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "jshost._jshost.HostBase",
    .tp_basicsize = sizeof(HostObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "jshost.Host's C half: the connection, the host id and call() "
              "(private to jshost).",
    .tp_new = PyType_GenericNew,
    .tp_traverse = (traverseproc)host_traverse,
    .tp_clear = (inquiry)host_clear,
    .tp_dealloc = (destructor)host_dealloc,
    .tp_methods = host_methods,
    .tp_members = host_members,
};
