/*
 * pyconn: the Connection type, one libjshost handle shared by threads, and
 * its request path. Blocking calls run with the GIL released, so that
 * threads sharing a Connection are pipelined by libjshost rather than
 * serialized by Python; request and result bytes go through room kept on the
 * Connection between calls. Blocking calls are interrupted by the main
 * thread's signal handlers (Ctrl-C): libjshost then cancels the call on the
 * server. The Connection's other methods are pycallable.c's (callables,
 * invokes, serve), pypipeline.c's (the pipelined interface) and
 * pyconsole.c's.
 */
#include "_jshost_priv.h"

#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* Bumped in the child of every fork() (pthread_atfork): getpid() is a system
 * call, and the check runs on every call. The child has one thread. */
unsigned pyconn_fork_gen;
static int fork_watched;

static void
on_fork_child(void)
{
    pyconn_fork_gen++;
}

int
pyconn_watch_fork(void)
{
    if (fork_watched == 0) {
        /* Without it a forked child would share the parent's connection. */
        if (pthread_atfork(NULL, NULL, on_fork_child) != 0) {
            PyErr_NoMemory();
            return -1;
        }
        fork_watched = 1;
    }
    return 0;
}

void
pyconn_call_init(struct pyconn_call *r)
{
    r->rc = 0;
    r->code = 0;
    memset(&r->err, 0, sizeof r->err);
    r->errstr[0] = '\0';
    r->value.data = NULL;
    r->value.len = 0;
}

PyObject *
pyconn_call_fail(struct pyconn_call *r)
{
    pyerror_raise(r->code, r->errstr, &r->err);
    jshost_error_clear(&r->err);
    jshost_value_free(&r->value);
    return NULL;
}

/* In a forked child: another thread of the parent may have held mu forever,
 * and the parent's calls in flight have no thread here to end them; the
 * invokes queued were the parent's to answer. */
void
pyconn_check_fork(ConnObject *self)
{
    if (self->c != NULL && self->gen != pyconn_fork_gen) {
        pthread_mutex_init(&self->mu, NULL);
        pthread_mutex_init(&self->inv_mu, NULL);
        pthread_cond_init(&self->inv_cond, NULL);
        pycallable_invokes_free(self->inv_head);
        self->inv_head = self->inv_tail = NULL;
        pthread_mutex_init(&self->console_mu, NULL);
        /* the parent's lines are the parent's */
        pyconsole_free(self->console_head);
        self->console_head = self->console_tail = NULL;
        self->console_kept = 0;
        self->gen = pyconn_fork_gen;
        self->active = 0;
    }
}

/* libjshost's interrupt check: the main thread's Python signal handlers run
 * (Ctrl-C raises KeyboardInterrupt there); their exception stops the call
 * and stays set for the caller. Other threads are never interrupted, as in
 * Python. */
static int
conn_interrupt_check(void *user)
{
    PyGILState_STATE g;
    int r;

    (void)user;
    if (PyThread_get_thread_ident() != pycallable_main_thread)
        return 0;
    g = PyGILState_Ensure();
    r = PyErr_CheckSignals();
    PyGILState_Release(g);
    return r < 0;
}

/* Rooms up to this size are kept for the next calls, eight at most. */
#define ROOM_KEEP (64 * 1024)
/* And two bigger rooms (a big request's and a big result's), up to this each:
 * memory fresh from the system costs a page fault per 4 KiB on first touch,
 * which for a 1 MiB result was two thirds of the client's CPU
 * (bench/FINDINGS.md). An idle client holds at most twice this more. */
#define ROOM_BIG_MAX (16 * 1024 * 1024)
/* Room made for results the first time: a small result is the common case. */
#define ROOM_RESULT 4096

/* A kept room: for a result, the biggest (any result may turn out to need
 * it); for packing a request, a small one first, else the smaller big one. */
static struct pyconn_room
room_take(ConnObject *self, bool result)
{
    struct pyconn_room r = {NULL, 0}, *b = &self->big[0];

    if (self->big[1].data != NULL &&
        (b->data == NULL || (self->big[1].cap > b->cap) == result))
        b = &self->big[1];
    if (self->nrooms > 0 && (!result || b->data == NULL))
        return self->rooms[--self->nrooms];
    r = *b;
    b->data = NULL;
    b->cap = 0;
    return r;
}

static void
room_give(ConnObject *self, struct pyconn_room r)
{
    int n = (int)(sizeof self->rooms / sizeof self->rooms[0]);

    if (r.data != NULL && r.cap <= ROOM_KEEP && self->nrooms < n)
        self->rooms[self->nrooms++] = r;
    else if (r.data != NULL && r.cap > ROOM_KEEP && r.cap <= ROOM_BIG_MAX &&
             self->big[0].data == NULL)
        self->big[0] = r;
    else if (r.data != NULL && r.cap > ROOM_KEEP && r.cap <= ROOM_BIG_MAX &&
             self->big[1].data == NULL)
        self->big[1] = r;
    else
        free(r.data);
}

/* Takes the handle for one call (GIL held); NULL with an exception if closed.
 */
jshost *
pyconn_enter(ConnObject *self)
{
    if (self->c == NULL || self->closing) {
        PyErr_SetString(PyExc_ValueError, "jshost connection is closed");
        return NULL;
    }
    pyconn_check_fork(self);
    self->active++;
    return self->c;
}

void
pyconn_leave(ConnObject *self)
{
    pyconsole_deliver(self);
    if (--self->active == 0 && self->closing && self->c != NULL) {
        jshost *c = self->c;
        self->c = NULL;
        Py_BEGIN_ALLOW_THREADS jshost_free(c);
        Py_END_ALLOW_THREADS
    }
}

/* Copies c's error (taken under mu) into the call r. */
void
pyconn_call_take_err(jshost *c, struct pyconn_call *r)
{
    r->code = c->err;
    snprintf(r->errstr, sizeof r->errstr, "%s", c->errstr);
    if (c->err == JSHOST_ERR_REMOTE) {
        r->err = c->remote;
        memset(&c->remote, 0, sizeof c->remote);
    }
}

static int
conn_init(ConnObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"socket",  "spawn",       "runtime_dir",
                             "manager", "client_name", "connect_timeout_ms",
                             NULL};
    const char *sock = NULL, *rundir = NULL, *manager = NULL, *name = "python";
    int spawn = 1, cto = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|zpzzzi:Connection", kwlist,
                                     &sock, &spawn, &rundir, &manager, &name,
                                     &cto))
        return -1;
    if (self->c != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Connection already initialized");
        return -1;
    }
    struct jshost_options opts;
    jshost_options_init(&opts);
    opts.socket = sock;
    opts.spawn = spawn;
    opts.runtime_dir = rundir;
    opts.manager_path = manager;
    opts.client_name = name;
    opts.connect_timeout_ms = cto;
    jshost *c;
    Py_BEGIN_ALLOW_THREADS c = jshost_connect(&opts);
    Py_END_ALLOW_THREADS if (c == NULL)
    {
        PyErr_NoMemory();
        return -1;
    }
    if (c->err != 0) {
        struct pyconn_call r;
        pyconn_call_init(&r);
        pyconn_call_take_err(c, &r);
        jshost_free(c);
        pyconn_call_fail(&r);
        return -1;
    }
    if ((self->callables = PyDict_New()) == NULL) {
        jshost_free(c);
        return -1;
    }
    pthread_mutex_init(&self->mu, NULL);
    pthread_mutex_init(&self->inv_mu, NULL);
    pthread_cond_init(&self->inv_cond, NULL);
    self->next_cbid = 1;
    self->gen = pyconn_fork_gen;
    self->c = c;
    jshost_set_invoke_handler(c, pycallable_invoke_cb, self);
    jshost_set_interrupt_check(c, conn_interrupt_check, NULL);
    pthread_mutex_init(&self->console_mu, NULL);
    self->console_made = 1;
    self->gen = pyconn_fork_gen;
    self->c = c;
    jshost_set_console_handler(c, pyconsole_cb, self);
    return 0;
}

static void
conn_dealloc(ConnObject *self)
{
    /* a method in flight holds a reference, so active is 0 here */
    if (self->c != NULL)
        jshost_free(self->c);
    if (self->console_made) {
        pyconsole_free(self->console_head);
        pthread_mutex_destroy(&self->console_mu);
    }
    Py_XDECREF(self->console);
    while (self->nrooms > 0)
        free(self->rooms[--self->nrooms].data);
    for (int i = 0; i < 2; i++) {
        free(self->big[i].data);
        self->big[i].data = NULL;
        self->big[i].cap = 0;
    }
    pycallable_invokes_free(self->inv_head);
    Py_XDECREF(self->callables);
    Py_XDECREF(self->on_callable);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
conn_close(ConnObject *self, PyObject *unused)
{
    (void)unused;
    pyconn_check_fork(self);
    if (self->c != NULL && !self->closing) {
        jshost *c = self->c;

        self->closing = 1;
        /* The callback threads and a serve in progress see it now. */
        pthread_mutex_lock(&self->inv_mu);
        pthread_cond_broadcast(&self->inv_cond);
        pthread_mutex_unlock(&self->inv_mu);
        /* libjshost's lock is only ever held briefly: no need to let go of
         * the GIL for it (and c cannot be freed under us meanwhile). */
        jshost_serve_wake(c);
        self->active++;
        /* frees now, or when the last call in flight ends */
        pyconn_leave(self);
    }
    Py_RETURN_NONE;
}

static PyObject *
conn_closed(ConnObject *self, void *unused)
{
    (void)unused;
    return PyBool_FromLong(self->c == NULL || self->closing);
}

/* Begins a request's params in room kept on the Connection, callables
 * allowed; pack_end gives it back and forgets the callables registered for
 * it (call-scoped: a caller that keeps them takes st->temps first). */
static void
pack_begin(ConnObject *self, struct pyvalue_pack *st, const char *root)
{
    struct pyconn_room r = room_take(self, false);

    pyvalue_pack_init(st, root);
    st->sb.data = r.data;
    st->sb.alloc = r.cap;
    st->callable = pycallable_id;
    st->owner = self;
}

static void
pack_end(ConnObject *self, struct pyvalue_pack *st)
{
    struct pyconn_room r = {st->sb.data, st->sb.alloc};

    room_give(self, r);
    if (st->temps != NULL) {
        PyObject *type, *value, *tb;

        PyErr_Fetch(&type, &value, &tb);
        pycallable_forget(self, st->temps);
        Py_CLEAR(st->temps);
        PyErr_Restore(type, value, tb);
    }
}

/*
 * The one way a request goes (params in st, from pack_begin): sent with the
 * GIL released, its result unpacked from where it landed, room kept on the
 * Connection when it fits.
 */
static PyObject *
conn_request_packed(ConnObject *self, const char *method,
                    struct pyvalue_pack *st, int timeout_ms)
{
    struct pyconn_room res;
    struct pyconn_call r;
    PyObject *v;
    jshost *c = pyconn_enter(self);

    if (c == NULL)
        return NULL;
    res = room_take(self, true);
    if (res.data == NULL && (res.data = malloc(ROOM_RESULT)) != NULL)
        res.cap = ROOM_RESULT;
    pyconn_call_init(&r);
    Py_BEGIN_ALLOW_THREADS r.rc = jshost__request_into(
        c, method, st->sb.data, st->sb.size, timeout_ms, res.data, res.cap,
        &r.value, &r.code, &r.err, r.errstr, sizeof r.errstr);
    Py_END_ALLOW_THREADS pyconn_leave(self);
    if (r.rc != 0) {
        room_give(self, res);
        return pyconn_call_fail(&r);
    }
    v = pyvalue_unpack(r.value.data, r.value.len);
    if (r.value.data != res.data) {
        /* A bigger result than the room: its memory is the room next time.
         */
        free(res.data);
        res.data = r.value.data;
        res.cap = r.value.len;
    }
    room_give(self, res);
    return v;
}

/* The options map: timeout_ms when given, and context.eval's "string". */
static int
pack_opts_eval(struct pyvalue_pack *st, int timeout_ms, int as_string)
{
    if (msgpack_pack_map(&st->pk, (timeout_ms > 0) + (as_string != 0)) != 0)
        return pyvalue_nomem();
    if (timeout_ms > 0 &&
        (msgpack_pack_str_with_body(&st->pk, "timeout_ms", 10) != 0 ||
         msgpack_pack_int64(&st->pk, timeout_ms) != 0))
        return pyvalue_nomem();
    if (as_string && (msgpack_pack_str_with_body(&st->pk, "string", 6) != 0 ||
                      msgpack_pack_true(&st->pk) != 0))
        return pyvalue_nomem();
    return 0;
}

static int
pack_opts(struct pyvalue_pack *st, int timeout_ms)
{
    return pack_opts_eval(st, timeout_ms, 0);
}

static int
pack_cstr(struct pyvalue_pack *st, const char *s, Py_ssize_t n)
{
    return msgpack_pack_str_with_body(&st->pk, s, (size_t)n) == 0
               ? 0
               : pyvalue_nomem();
}

/* How long the client waits on a context (libjshost adds its margin): the
 * run's own deadline; else the default deadline the server applies, when the
 * caller knows it (a VM's); else ten minutes: a guard against a wedged
 * server, not a deadline (the server enforces the host's). */
static int
client_wait(int timeout_ms, int default_ms)
{
    if (timeout_ms != 0)
        return timeout_ms;
    return default_ms > 0 ? default_ms : 10 * 60 * 1000;
}

/* request(method, params: list, timeout_ms=0) -> result */
static PyObject *
conn_request(ConnObject *self, PyObject *args)
{
    const char *method;
    PyObject *params;
    int timeout_ms = 0;
    if (!PyArg_ParseTuple(args, "sO!|i:request", &method, &PyList_Type, &params,
                          &timeout_ms))
        return NULL;
    struct pyvalue_pack st;
    pack_begin(self, &st, "params");
    PyObject *r = NULL;
    if (pyvalue_pack(&st, params, "params") == 0)
        r = conn_request_packed(self, method, &st, timeout_ms);
    pack_end(self, &st);
    return r;
}

/* The one path of a host's function call: [host, function, data, options]
 * packed into kept room, then conn_request_packed. */
PyObject *
pyconn_call_data(ConnObject *self, const char *host, Py_ssize_t host_len,
                 const char *fn, Py_ssize_t fn_len, PyObject *data,
                 int timeout_ms)
{
    struct pyvalue_pack st;
    PyObject *r = NULL;

    pack_begin(self, &st, "data");
    if (msgpack_pack_array(&st.pk, 4) != 0 ||
        pack_cstr(&st, host, host_len) != 0 ||
        pack_cstr(&st, fn, fn_len) != 0) {
        if (!PyErr_Occurred())
            PyErr_NoMemory();
    } else if (pyvalue_pack(&st, data, "data") == 0 &&
               pack_opts(&st, timeout_ms) == 0) {
        /* 0: libjshost waits the host's deadline (attach said it) plus its
         * margin, never longer, even when the manager is frozen. */
        r = conn_request_packed(self, "call", &st, timeout_ms);
    }
    pack_end(self, &st);
    return r;
}

/* call(host, function, data, timeout_ms=0) -> result */
static PyObject *
conn_call(ConnObject *self, PyObject *args)
{
    const char *host, *fn;
    Py_ssize_t host_len, fn_len;
    PyObject *data;
    int timeout_ms = 0;
    if (!PyArg_ParseTuple(args, "s#s#O|i:call", &host, &host_len, &fn, &fn_len,
                          &data, &timeout_ms))
        return NULL;
    return pyconn_call_data(self, host, host_len, fn, fn_len, data, timeout_ms);
}

/* attach(config) -> (host_id, info) */
static PyObject *
conn_attach(ConnObject *self, PyObject *args)
{
    const char *config;
    if (!PyArg_ParseTuple(args, "s:attach", &config))
        return NULL;
    jshost *c = pyconn_enter(self);
    if (c == NULL)
        return NULL;
    struct pyconn_call r;
    pyconn_call_init(&r);
    char *host = NULL;
    Py_BEGIN_ALLOW_THREADS pthread_mutex_lock(&self->mu);
    r.rc = jshost_attach(c, config, &host, &r.value);
    if (r.rc != 0)
        pyconn_call_take_err(c, &r);
    pthread_mutex_unlock(&self->mu);
    Py_END_ALLOW_THREADS pyconn_leave(self);
    if (r.rc != 0)
        return pyconn_call_fail(&r);
    PyObject *info = pyvalue_unpack(r.value.data, r.value.len);
    jshost_value_free(&r.value);
    PyObject *ret = info != NULL ? Py_BuildValue("(sN)", host, info) : NULL;
    free(host);
    return ret;
}

/* detach(host) */
static PyObject *
conn_detach(ConnObject *self, PyObject *args)
{
    const char *host;
    if (!PyArg_ParseTuple(args, "s:detach", &host))
        return NULL;
    jshost *c = pyconn_enter(self);
    if (c == NULL)
        return NULL;
    struct pyconn_call r;
    pyconn_call_init(&r);
    Py_BEGIN_ALLOW_THREADS pthread_mutex_lock(&self->mu);
    r.rc = jshost_detach(c, host);
    if (r.rc != 0)
        pyconn_call_take_err(c, &r);
    pthread_mutex_unlock(&self->mu);
    Py_END_ALLOW_THREADS pyconn_leave(self);
    if (r.rc != 0)
        return pyconn_call_fail(&r);
    Py_RETURN_NONE;
}

/* context_eval(ctx, source, identifier, timeout_ms=0, default_ms=0,
 * as_string=False) -> value (as_string: String(value), v8-cffi's result) */
static PyObject *
conn_context_eval(ConnObject *self, PyObject *args)
{
    unsigned long long ctx;
    const char *src, *ident;
    Py_ssize_t nsrc, nident;
    int timeout_ms = 0, default_ms = 0, as_string = 0;
    if (!PyArg_ParseTuple(args, "Ks#s#|iip:context_eval", &ctx, &src, &nsrc,
                          &ident, &nident, &timeout_ms, &default_ms,
                          &as_string))
        return NULL;
    struct pyvalue_pack st;
    pack_begin(self, &st, "params");
    PyObject *r = NULL;
    if (msgpack_pack_array(&st.pk, 4) == 0 &&
        msgpack_pack_uint64(&st.pk, ctx) == 0 &&
        pack_cstr(&st, src, nsrc) == 0 && pack_cstr(&st, ident, nident) == 0 &&
        pack_opts_eval(&st, timeout_ms, as_string) == 0)
        r = conn_request_packed(self, "context.eval", &st,
                                client_wait(timeout_ms, default_ms));
    else if (!PyErr_Occurred())
        PyErr_NoMemory();
    pack_end(self, &st);
    return r;
}

/* context_call(ctx, expression, args: tuple, timeout_ms=0, default_ms=0,
 * keep=None) -> value. The callables made for the args are withdrawn after
 * the call, unless `keep` (a list) takes their ids: then they live as long
 * as the context (until released). */
static PyObject *
conn_context_call(ConnObject *self, PyObject *args)
{
    unsigned long long ctx;
    const char *expr;
    Py_ssize_t nexpr;
    PyObject *cargs, *keep = Py_None;
    int timeout_ms = 0, default_ms = 0;
    if (!PyArg_ParseTuple(args, "Ks#O!|iiO:context_call", &ctx, &expr, &nexpr,
                          &PyTuple_Type, &cargs, &timeout_ms, &default_ms,
                          &keep))
        return NULL;
    if (keep != Py_None && !PyList_Check(keep)) {
        PyErr_SetString(PyExc_TypeError, "keep must be a list or None");
        return NULL;
    }
    struct pyvalue_pack st;
    pack_begin(self, &st, "args");
    PyObject *r = NULL;
    if (msgpack_pack_array(&st.pk, 4) != 0 ||
        msgpack_pack_uint64(&st.pk, ctx) != 0 ||
        pack_cstr(&st, expr, nexpr) != 0) {
        if (!PyErr_Occurred())
            PyErr_NoMemory();
    } else if (pyvalue_pack(&st, cargs, "args") == 0 &&
               pack_opts(&st, timeout_ms) == 0) {
        r = conn_request_packed(self, "context.call", &st,
                                client_wait(timeout_ms, default_ms));
    }
    if (st.temps != NULL && keep != Py_None) {
        PyObject *type, *value, *tb;

        PyErr_Fetch(&type, &value, &tb);
        if (PyList_SetSlice(keep, PY_SSIZE_T_MAX, PY_SSIZE_T_MAX, st.temps) < 0)
            PyErr_Clear(); /* out of memory: they stay call-scoped */
        else
            Py_CLEAR(st.temps);
        PyErr_Restore(type, value, tb);
    } else if (st.temps != NULL && !self->closing) {
        /* Call-scoped: the context would keep them (its callables live
         * until released). */
        PyObject *type, *value, *tb;

        PyErr_Fetch(&type, &value, &tb);
        if (pycallable_release_ids(self, st.temps) < 0)
            PyErr_Clear(); /* the connection is gone, and the context too */
        PyErr_Restore(type, value, tb);
    }
    pack_end(self, &st);
    return r;
}

/* context_load(ctx, paths: list of str, timeout_ms=0, default_ms=0) */
static PyObject *
conn_context_load(ConnObject *self, PyObject *args)
{
    unsigned long long ctx;
    PyObject *paths;
    int timeout_ms = 0, default_ms = 0;
    if (!PyArg_ParseTuple(args, "KO!|ii:context_load", &ctx, &PyList_Type,
                          &paths, &timeout_ms, &default_ms))
        return NULL;
    struct pyvalue_pack st;
    pack_begin(self, &st, "paths");
    PyObject *r = NULL;
    if (msgpack_pack_array(&st.pk, 2) != 0 ||
        msgpack_pack_uint64(&st.pk, ctx) != 0)
        PyErr_NoMemory();
    else if (pyvalue_pack(&st, paths, "paths") == 0)
        r = conn_request_packed(self, "context.load", &st,
                                client_wait(timeout_ms, default_ms));
    pack_end(self, &st);
    return r;
}

/* context_destroy(ctx) */
static PyObject *
conn_context_destroy(ConnObject *self, PyObject *args)
{
    unsigned long long ctx;
    if (!PyArg_ParseTuple(args, "K:context_destroy", &ctx))
        return NULL;
    struct pyvalue_pack st;
    pack_begin(self, &st, "params");
    PyObject *r = NULL;
    if (msgpack_pack_array(&st.pk, 1) != 0 ||
        msgpack_pack_uint64(&st.pk, ctx) != 0)
        PyErr_NoMemory();
    else
        r = conn_request_packed(self, "context.destroy", &st, 0);
    pack_end(self, &st);
    return r;
}

/* shutdown(): stops every host and the manager */
static PyObject *
conn_shutdown(ConnObject *self, PyObject *unused)
{
    (void)unused;
    jshost *c = pyconn_enter(self);
    if (c == NULL)
        return NULL;
    struct pyconn_call r;
    pyconn_call_init(&r);
    Py_BEGIN_ALLOW_THREADS pthread_mutex_lock(&self->mu);
    r.rc = jshost_shutdown(c);
    if (r.rc != 0)
        pyconn_call_take_err(c, &r);
    pthread_mutex_unlock(&self->mu);
    Py_END_ALLOW_THREADS pyconn_leave(self);
    if (r.rc != 0)
        return pyconn_call_fail(&r);
    Py_RETURN_NONE;
}

static PyMethodDef conn_methods[] = {
    {"close", (PyCFunction)conn_close, METH_NOARGS,
     "Closes the connection (the manager releases every host it held)."},
    {"request", (PyCFunction)conn_request, METH_VARARGS,
     "request(method, params, timeout_ms=0): any msgpack-RPC request."},
    {"call", (PyCFunction)conn_call, METH_VARARGS,
     "call(host, function, data, timeout_ms=0): calls a host's function."},
    {"attach", (PyCFunction)conn_attach, METH_VARARGS,
     "attach(config) -> (host_id, info)"},
    {"detach", (PyCFunction)conn_detach, METH_VARARGS, "detach(host)"},
    {"context_eval", (PyCFunction)conn_context_eval, METH_VARARGS,
     "context_eval(ctx, source, identifier, timeout_ms=0, default_ms=0, "
     "as_string=False) -> value"},
    {"context_call", (PyCFunction)conn_context_call, METH_VARARGS,
     "context_call(ctx, expression, args, timeout_ms=0) -> value"},
    {"context_load", (PyCFunction)conn_context_load, METH_VARARGS,
     "context_load(ctx, paths, timeout_ms=0)"},
    {"context_destroy", (PyCFunction)conn_context_destroy, METH_VARARGS,
     "context_destroy(ctx)"},
    {"shutdown", (PyCFunction)conn_shutdown, METH_NOARGS,
     "shutdown(): stops every host and the manager"},
    {"register", (PyCFunction)pycallable_register, METH_O,
     "register(fn) -> id: fn is a callable of this connection until "
     "unregistered."},
    {"unregister", (PyCFunction)pycallable_unregister, METH_O,
     "unregister(ids): forgets those callables here."},
    {"lookup", (PyCFunction)pycallable_lookup, METH_O,
     "lookup(id) -> the callable of that id, or None."},
    {"release", (PyCFunction)pycallable_release, METH_O,
     "release(ids): withdraws those callables on the server and here."},
    {"set_on_callable", (PyCFunction)pycallable_set_on_callable, METH_O,
     "set_on_callable(fn): fn(False) runs when a value registers a "
     "callable."},
    {"next_invoke", (PyCFunction)pycallable_next_invoke, METH_O,
     "next_invoke(timeout) -> Invoke or None (timed out, or closed)."},
    {"take_invokes", (PyCFunction)pycallable_take_invokes, METH_NOARGS,
     "take_invokes() -> [Invoke]: those queued, without waiting."},
    {"serve", (PyCFunction)pycallable_serve, METH_O,
     "serve(timeout_ms): reads the connection for invokes while no call "
     "does, until the timeout, wake() or close()."},
    {"wake", (PyCFunction)pycallable_wake, METH_NOARGS,
     "wake(): makes serve() return."},
    {"send", (PyCFunction)pypipeline_send, METH_VARARGS,
     "send(method, params) -> (msgid, temps): a pipelined request."},
    {"read", (PyCFunction)pypipeline_read, METH_NOARGS,
     "read() -> [(msgid, ok, value or exception)], without waiting."},
    {"fileno", (PyCFunction)pypipeline_fileno, METH_NOARGS,
     "fileno() -> the socket to watch for replies."},
    {"pending_write", (PyCFunction)pypipeline_pending_write, METH_NOARGS,
     "pending_write() -> bytes send() queued and not yet written."},
    {"flush", (PyCFunction)pypipeline_flush, METH_NOARGS,
     "flush(): writes what the socket takes of what send() queued."},
    {"cancel", (PyCFunction)pypipeline_cancel, METH_O,
     "cancel(msgid): asks the server to stop that request."},
    {"set_console", (PyCFunction)pyconsole_set, METH_O,
     "set_console(fn): fn(ctx, level, text) for each console line of this "
     "connection's contexts, after a call returns; None drops them"},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef conn_getset[] = {
    {"closed", (getter)conn_closed, NULL, "True once close() was called.",
     NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

PyTypeObject pyconn_type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "jshost._jshost.Connection",
    .tp_basicsize = sizeof(ConnObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "One libjshost connection, shareable between threads (private to "
              "jshost).",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)conn_init,
    .tp_dealloc = (destructor)conn_dealloc,
    .tp_methods = conn_methods,
    .tp_getset = conn_getset,
};
