/*
 * pycallable: JavaScript calling Python (docs/values.md). A Connection keeps
 * a table callback id -> callable; values packed for it turn callables into
 * ext 2 (registered for that request alone unless they are PyFunctions of the
 * Connection). libjshost's invoke handler queues each invoke as an Invoke,
 * which the callback threads (jshost/_callbacks.py) or jshost.aio's event
 * loop take, run and answer; serve() reads the connection for invokes while
 * no call does.
 */
#include "_jshost_priv.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* Set by jshost: jshost.PyFunction, and threading.main_thread()'s ident. */
static PyObject *pyfunction_type;
unsigned long pycallable_main_thread;

/* An invoke taken by libjshost's handler, waiting for a callback thread or
 * the event loop (no GIL where it is made). */
struct pycallable_invoke {
    struct pycallable_invoke *next;
    jshost *c; /* the handle it came on: answered there */
    uint32_t rid;
    uint32_t callback_id;
    size_t len;
    char args[]; /* the packed arguments array */
};

void
pycallable_invokes_free(struct pycallable_invoke *inv)
{
    struct pycallable_invoke *next;

    for (; inv != NULL; inv = next) {
        next = inv->next;
        free(inv);
    }
}

/* libjshost's invoke handler: queues the invoke for whoever runs callables
 * (no GIL here, nor any lock of libjshost's). */
void
pycallable_invoke_cb(jshost *c, uint32_t rid, uint32_t callback_id,
                     const char *args, size_t len, void *user)
{
    ConnObject *self = user;
    struct pycallable_invoke *inv;

    if (atomic_load(&self->ncallables) == 0) {
        jshost_invoke_error(c, rid, "NotFound", NULL,
                            "callback expired: this client holds no "
                            "callables now",
                            NULL);
        return;
    }
    if ((inv = malloc(sizeof(*inv) + len)) == NULL) {
        jshost_invoke_error(c, rid, "JSError", "MemoryError",
                            "the Python client ran out of memory", NULL);
        return;
    }
    inv->next = NULL;
    inv->c = c;
    inv->rid = rid;
    inv->callback_id = callback_id;
    inv->len = len;
    memcpy(inv->args, args, len);
    pthread_mutex_lock(&self->inv_mu);
    if (self->inv_tail != NULL)
        self->inv_tail->next = inv;
    else
        self->inv_head = inv;
    self->inv_tail = inv;
    pthread_cond_signal(&self->inv_cond);
    pthread_mutex_unlock(&self->inv_mu);
}

/* ---- callables ----------------------------------------------------------- */

static void
callables_count(ConnObject *self)
{
    atomic_store(&self->ncallables, (int)PyDict_GET_SIZE(self->callables));
}

/* Registers fn under a callback id of its own (GIL held). 0 and *id, or -1
 * with an exception. */
static int
callables_add(ConnObject *self, PyObject *fn, uint32_t *id)
{
    PyObject *key;
    uint32_t cand;
    int r;

    for (;;) {
        cand = self->next_cbid++;
        if (self->next_cbid == 0)
            self->next_cbid = 1;
        if ((key = PyLong_FromUnsignedLong(cand)) == NULL)
            return -1;
        /* after 2^32 ids, one still in use is skipped */
        r = PyDict_Contains(self->callables, key);
        if (r == 0)
            r = PyDict_SetItem(self->callables, key, fn) == 0 ? 2 : -1;
        Py_DECREF(key);
        if (r < 0)
            return -1;
        if (r == 2)
            break;
    }
    callables_count(self);
    *id = cand;
    return 0;
}

/* Forgets the callback ids in the list `ids` (GIL held). */
void
pycallable_forget(ConnObject *self, PyObject *ids)
{
    Py_ssize_t i;

    for (i = 0; i < PyList_GET_SIZE(ids); i++) {
        if (PyDict_DelItem(self->callables, PyList_GET_ITEM(ids, i)) < 0)
            PyErr_Clear(); /* forgotten already */
    }
    callables_count(self);
}

/* pyvalue's callable hook: a PyFunction of this Connection is its own id;
 * any other callable (a released PyFunction: its function) gets an id for
 * this value alone, noted in st->temps. */
int
pycallable_id(struct pyvalue_pack *st, PyObject *o, uint32_t *id)
{
    ConnObject *self = st->owner;
    PyObject *fn = NULL, *conn, *v, *r;
    int rc;

    if (pyfunction_type != NULL &&
        PyObject_TypeCheck(o, (PyTypeObject *)pyfunction_type)) {
        if ((conn = PyObject_GetAttrString(o, "_conn")) == NULL)
            return -1;
        rc = conn == (PyObject *)self;
        Py_DECREF(conn);
        if (rc) {
            if ((v = PyObject_GetAttrString(o, "_id")) == NULL)
                return -1;
            *id = (uint32_t)PyLong_AsUnsignedLong(v);
            Py_DECREF(v);
            return *id == (uint32_t)-1 && PyErr_Occurred() ? -1 : 0;
        }
        if ((fn = PyObject_GetAttrString(o, "func")) == NULL)
            return -1;
    }
    if (st->temps == NULL && (st->temps = PyList_New(0)) == NULL) {
        Py_XDECREF(fn);
        return -1;
    }
    rc = callables_add(self, fn != NULL ? fn : o, id);
    Py_XDECREF(fn);
    if (rc < 0)
        return -1;
    if ((v = PyLong_FromUnsignedLong(*id)) == NULL)
        return -1;
    rc = PyList_Append(st->temps, v);
    Py_DECREF(v);
    if (rc < 0)
        return -1;
    /* The callback threads must run before JavaScript can call it. */
    if (self->on_callable != NULL) {
        if ((r = PyObject_CallOneArg(self->on_callable, Py_False)) == NULL)
            return -1;
        Py_DECREF(r);
    }
    return 0;
}

/* Tells the server the callables of the list `ids` are withdrawn (GIL held,
 * released while writing). 0, or -1 with an exception. */
int
pycallable_release_ids(ConnObject *self, PyObject *ids)
{
    Py_ssize_t i, n = PyList_GET_SIZE(ids);
    uint32_t *v;
    struct pyconn_call r;
    jshost *c;

    if (n == 0)
        return 0;
    if ((v = PyMem_Malloc((size_t)n * sizeof(*v))) == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (i = 0; i < n; i++) {
        v[i] = (uint32_t)PyLong_AsUnsignedLong(PyList_GET_ITEM(ids, i));
        if (v[i] == (uint32_t)-1 && PyErr_Occurred()) {
            PyMem_Free(v);
            return -1;
        }
    }
    if ((c = pyconn_enter(self)) == NULL) {
        PyMem_Free(v);
        return -1;
    }
    pyconn_call_init(&r);
    Py_BEGIN_ALLOW_THREADS pthread_mutex_lock(&self->mu);
    r.rc = jshost_release(c, v, (size_t)n);
    if (r.rc != 0)
        pyconn_call_take_err(c, &r);
    pthread_mutex_unlock(&self->mu);
    Py_END_ALLOW_THREADS pyconn_leave(self);
    PyMem_Free(v);
    if (r.rc != 0) {
        pyconn_call_fail(&r);
        return -1;
    }
    return 0;
}

/* ---- Invoke: one reverse call to answer -----------------------------------
 */

typedef struct {
    PyObject_HEAD ConnObject *conn; /* keeps the handle alive */
    struct pycallable_invoke *inv;  /* NULL once answered */
} InvokeObject;

static PyObject *
invoke_new(ConnObject *conn, struct pycallable_invoke *inv)
{
    InvokeObject *self = PyObject_New(InvokeObject, &pycallable_invoke_type);

    if (self == NULL) {
        free(inv);
        return NULL;
    }
    Py_INCREF(conn);
    self->conn = conn;
    self->inv = inv;
    return (PyObject *)self;
}

/* Sends the answer (value bytes, or an error) and forgets the invoke. Nobody
 * to answer once the Connection closed: its invokes went with it. */
static int
invoke_send(InvokeObject *self, const char *value, size_t len, const char *type,
            const char *name, const char *message, const char *stack)
{
    struct pycallable_invoke *inv = self->inv;
    jshost *c;
    int rc;

    self->inv = NULL;
    if (inv == NULL) {
        PyErr_SetString(PyExc_ValueError, "this invoke was answered already");
        return -1;
    }
    if (self->conn->c == NULL || self->conn->closing ||
        self->conn->gen != pyconn_fork_gen) {
        free(inv);
        return 0;
    }
    c = pyconn_enter(self->conn);
    Py_BEGIN_ALLOW_THREADS if (value != NULL) rc =
        jshost_invoke_reply(inv->c, inv->rid, value, len);
    else rc = jshost_invoke_error(inv->c, inv->rid, type, name, message, stack);
    Py_END_ALLOW_THREADS pyconn_leave(self->conn);
    (void)c;
    (void)rc; /* refused: its connection was lost, and nobody waits */
    free(inv);
    return 0;
}

static void
invoke_dealloc(InvokeObject *self)
{
    /* Never leave JavaScript waiting: an invoke dropped unanswered fails. */
    if (self->inv != NULL)
        (void)invoke_send(self, NULL, 0, "JSError", "Error",
                          "the Python client dropped this call", NULL);
    Py_XDECREF(self->conn);
    PyObject_Free(self);
}

static PyObject *
invoke_callback_id(InvokeObject *self, void *unused)
{
    (void)unused;
    if (self->inv == NULL)
        Py_RETURN_NONE;
    return PyLong_FromUnsignedLong(self->inv->callback_id);
}

/* args() -> list: the arguments JavaScript passed */
static PyObject *
invoke_args(InvokeObject *self, PyObject *unused)
{
    (void)unused;
    if (self->inv == NULL) {
        PyErr_SetString(PyExc_ValueError, "this invoke was answered already");
        return NULL;
    }
    return pyvalue_unpack(self->inv->args, self->inv->len);
}

/* reply(value): the promise resolves with value. Callables in it are
 * registered for as long as the Connection lives. */
static PyObject *
invoke_reply(InvokeObject *self, PyObject *value)
{
    struct pyvalue_pack st;
    int rc;

    if (self->inv == NULL) {
        PyErr_SetString(PyExc_ValueError, "this invoke was answered already");
        return NULL;
    }
    pyvalue_pack_init(&st, "result");
    st.callable = pycallable_id;
    st.owner = self->conn;
    rc = pyvalue_pack(&st, value, "result");
    Py_CLEAR(st.temps); /* kept: JavaScript may call them any time */
    if (rc == 0)
        rc = invoke_send(self, st.sb.data, st.sb.size, NULL, NULL, NULL, NULL);
    msgpack_sbuffer_destroy(&st.sb);
    if (rc < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* error(type, name, message, stack): the promise rejects */
static PyObject *
invoke_error(InvokeObject *self, PyObject *args)
{
    const char *type, *name, *message, *stack;

    if (!PyArg_ParseTuple(args, "zzzz:error", &type, &name, &message, &stack))
        return NULL;
    if (invoke_send(self, NULL, 0, type, name, message, stack) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyMethodDef invoke_methods[] = {
    {"args", (PyCFunction)invoke_args, METH_NOARGS,
     "args() -> list: the arguments JavaScript passed."},
    {"reply", (PyCFunction)invoke_reply, METH_O,
     "reply(value): answers the call; the promise resolves with value."},
    {"error", (PyCFunction)invoke_error, METH_VARARGS,
     "error(type, name, message, stack): answers the call with an error; "
     "the promise rejects."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef invoke_getset[] = {
    {"callback_id", (getter)invoke_callback_id, NULL,
     "The callback id JavaScript called (None once answered).", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

PyTypeObject pycallable_invoke_type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "jshost._jshost.Invoke",
    .tp_basicsize = sizeof(InvokeObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A call of JavaScript into one of this client's callables, to "
              "answer exactly once (private to jshost).",
    .tp_dealloc = (destructor)invoke_dealloc,
    .tp_methods = invoke_methods,
    .tp_getset = invoke_getset,
};

/* ---- Connection: callables, invokes, serve --------------------------------
 */

/* register(fn) -> id: a callable of the Connection until unregistered */
PyObject *
pycallable_register(ConnObject *self, PyObject *fn)
{
    uint32_t id;

    if (!PyCallable_Check(fn)) {
        PyErr_Format(PyExc_TypeError, "%.200s is not callable",
                     Py_TYPE(fn)->tp_name);
        return NULL;
    }
    if (callables_add(self, fn, &id) < 0)
        return NULL;
    return PyLong_FromUnsignedLong(id);
}

/* unregister(ids: list) */
PyObject *
pycallable_unregister(ConnObject *self, PyObject *ids)
{
    if (!PyList_Check(ids)) {
        PyErr_SetString(PyExc_TypeError, "ids must be a list");
        return NULL;
    }
    pycallable_forget(self, ids);
    Py_RETURN_NONE;
}

/* lookup(id) -> the callable, or None */
PyObject *
pycallable_lookup(ConnObject *self, PyObject *id)
{
    PyObject *fn = PyDict_GetItemWithError(self->callables, id);

    if (fn == NULL && PyErr_Occurred())
        return NULL;
    if (fn == NULL)
        Py_RETURN_NONE;
    Py_INCREF(fn);
    return fn;
}

/* release(ids: list): withdrawn on the server, then forgotten here */
PyObject *
pycallable_release(ConnObject *self, PyObject *ids)
{
    int rc;

    if (!PyList_Check(ids)) {
        PyErr_SetString(PyExc_TypeError, "ids must be a list");
        return NULL;
    }
    rc = pycallable_release_ids(self, ids);
    pycallable_forget(self, ids);
    if (rc < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* set_on_callable(fn or None): fn(permanent) runs when a callable is
 * registered for a request (permanent False) */
PyObject *
pycallable_set_on_callable(ConnObject *self, PyObject *fn)
{
    if (fn != Py_None && !PyCallable_Check(fn)) {
        PyErr_SetString(PyExc_TypeError, "on_callable must be callable");
        return NULL;
    }
    Py_XSETREF(self->on_callable, fn == Py_None ? NULL : Py_NewRef(fn));
    Py_RETURN_NONE;
}

/* next_invoke(timeout: seconds) -> Invoke or None (timeout, or closed) */
PyObject *
pycallable_next_invoke(ConnObject *self, PyObject *arg)
{
    double t = PyFloat_AsDouble(arg);
    struct pycallable_invoke *inv = NULL;
    struct timespec ts;
    int64_t deadline;

    if (t == -1.0 && PyErr_Occurred())
        return NULL;
    pyconn_check_fork(self);
    deadline = jshost__now_ms() + (t > 0 ? (int64_t)(t * 1000) : 0);
    ts.tv_sec = deadline / 1000;
    ts.tv_nsec = (deadline % 1000) * 1000000;
    Py_BEGIN_ALLOW_THREADS pthread_mutex_lock(&self->inv_mu);
    while (self->inv_head == NULL && !self->closing &&
           jshost__now_ms() < deadline)
        pthread_cond_timedwait(&self->inv_cond, &self->inv_mu, &ts);
    if ((inv = self->inv_head) != NULL) {
        self->inv_head = inv->next;
        if (self->inv_head == NULL)
            self->inv_tail = NULL;
        inv->next = NULL;
    }
    pthread_mutex_unlock(&self->inv_mu);
    Py_END_ALLOW_THREADS if (inv == NULL) Py_RETURN_NONE;
    return invoke_new(self, inv);
}

/* take_invokes() -> [Invoke]: those queued, without waiting */
PyObject *
pycallable_take_invokes(ConnObject *self, PyObject *unused)
{
    struct pycallable_invoke *inv, *next;
    PyObject *list, *o;

    (void)unused;
    if ((list = PyList_New(0)) == NULL)
        return NULL;
    pthread_mutex_lock(&self->inv_mu);
    inv = self->inv_head;
    self->inv_head = self->inv_tail = NULL;
    pthread_mutex_unlock(&self->inv_mu);
    for (; inv != NULL; inv = next) {
        next = inv->next;
        inv->next = NULL;
        o = invoke_new(self, inv);
        if (o == NULL || PyList_Append(list, o) < 0) {
            Py_XDECREF(o); /* answers it */
            pycallable_invokes_free(next);
            Py_DECREF(list);
            return NULL;
        }
        Py_DECREF(o);
    }
    return list;
}

/* serve(timeout_ms): reads the connection for invokes while no call does;
 * returns at the timeout or at wake()/close() */
PyObject *
pycallable_serve(ConnObject *self, PyObject *arg)
{
    int ms = PyLong_AsLong(arg) > INT_MAX ? INT_MAX : (int)PyLong_AsLong(arg);
    struct pyconn_call r;
    jshost *c;

    if (ms == -1 && PyErr_Occurred())
        return NULL;
    if ((c = pyconn_enter(self)) == NULL)
        return NULL;
    pyconn_call_init(&r);
    Py_BEGIN_ALLOW_THREADS r.rc = jshost_serve(c, ms);
    if (r.rc != 0) {
        pthread_mutex_lock(&self->mu);
        pyconn_call_take_err(c, &r);
        pthread_mutex_unlock(&self->mu);
    }
    Py_END_ALLOW_THREADS pyconn_leave(self);
    if (r.rc != 0)
        return pyconn_call_fail(&r);
    Py_RETURN_NONE;
}

/* wake(): makes serve() return */
PyObject *
pycallable_wake(ConnObject *self, PyObject *unused)
{
    (void)unused;
    if (self->c != NULL)
        jshost_serve_wake(self->c);
    Py_RETURN_NONE;
}

/* _set_callable_type(PyFunction, main_thread_ident) */
PyObject *
pycallable_set_type(PyObject *self, PyObject *args)
{
    PyObject *type;
    unsigned long ident;

    (void)self;
    if (!PyArg_ParseTuple(args, "O!k:_set_callable_type", &PyType_Type, &type,
                          &ident))
        return NULL;
    Py_INCREF(type);
    Py_XSETREF(pyfunction_type, type);
    pycallable_main_thread = ident;
    Py_RETURN_NONE;
}
