/*
 * _jshost: the C half of the jshost Python package.
 *
 * A Connection type wrapping one libjshost handle, whose blocking calls run
 * with the GIL released, so that threads sharing a Connection are pipelined
 * by libjshost rather than serialized by Python; values are converted by
 * pyvalue.c (docs/values.md). HostBase is jshost.Host's C half: its call()
 * is the hot path, from the Python arguments to the result with nothing in
 * Python and no allocation of ours (request and result bytes go through
 * room kept on the Connection between calls). The Python modules beside it
 * (jshost/, js_host/, v8cffi/) hold the public API; everything here is
 * private to them.
 *
 * Callables (docs/values.md): a Connection keeps a table callback id ->
 * callable; values packed for it turn callables into ext 2 (registered for
 * that request alone unless they are PyFunctions of the Connection).
 * libjshost's invoke handler queues each invoke as an Invoke, which the
 * callback threads (jshost/_callbacks.py) or jshost.aio's event loop take,
 * run and answer. Blocking calls are interrupted by the main thread's signal
 * handlers (Ctrl-C): libjshost then cancels the call on the server.
 */
#include "pyvalue.h"

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include <structmember.h>

#include "jshost.h"
/* jshost__request_into: this extension links libjshost statically. */
#include "jshost_priv.h"

static PyObject *error_factory; /* set by jshost.errors */
static PyObject *str_timeout;   /* "timeout", interned */
static PyObject *empty_dict;    /* the data of a call with no arguments */

/* Set by jshost: jshost.PyFunction, and threading.main_thread()'s ident. */
static PyObject *pyfunction_type;
static unsigned long main_thread;

/* Bumped in the child of every fork() (pthread_atfork): getpid() is a system
 * call, and the check runs on every call. The child has one thread. */
static unsigned fork_gen;
static int fork_watched;

static void
on_fork_child(void)
{
    fork_gen++;
}

/* ---- errors -------------------------------------------------------------- */

static PyObject *
opt_str(const char *s)
{
    if (s == NULL)
        Py_RETURN_NONE;
    return PyUnicode_DecodeUTF8(s, (Py_ssize_t)strlen(s), "replace");
}

/* Raises what jshost.errors makes of (code, errstr, remote error); returns
 * NULL. */
static PyObject *
raise_jshost(int code, const char *errstr, const jshost_error *e)
{
    if (code == JSHOST_ERR_OOM)
        return PyErr_NoMemory();
    /* Interrupted: the signal handler's exception (KeyboardInterrupt) is
     * already set, and the call was cancelled on the server. */
    if (code == JSHOST_ERR_CANCELLED && PyErr_Occurred())
        return NULL;
    if (error_factory == NULL) {
        PyErr_SetString(PyExc_RuntimeError, errstr);
        return NULL;
    }
    PyObject *exc = PyObject_CallFunction(
        error_factory, "iNNNNNN", code, opt_str(errstr),
        opt_str(e ? e->type : NULL), opt_str(e ? e->message : NULL),
        opt_str(e ? e->name : NULL), opt_str(e ? e->stack : NULL),
        opt_str(e ? e->logfile : NULL));
    if (exc == NULL)
        return NULL;
    PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
    Py_DECREF(exc);
    return NULL;
}

/* ---- Connection ---------------------------------------------------------- */

/* An invoke taken by libjshost's handler, waiting for a callback thread or
 * the event loop (no GIL where it is made). */
struct invoke {
    struct invoke *next;
    jshost *c; /* the handle it came on: answered there */
    uint32_t rid;
    uint32_t callback_id;
    size_t len;
    char args[]; /* the packed arguments array */
};

/* A console line of one of the connection's contexts, kept from libjshost's
 * handler (any thread, no GIL) until a call of the connection returns. */
struct console_line {
    struct console_line *next;
    unsigned long long ctx;
    char level[16];
    char *text;
    size_t len;
};

/* Lines kept at most between two calls; more are dropped (the log has them).
 */
#define CONSOLE_KEPT_MAX 10000

typedef struct {
    PyObject_HEAD jshost *c;
    /* Serializes the libjshost calls that report through c->err (attach,
     * context.create, ...); the _r ones need no lock of ours. */
    pthread_mutex_t mu;
    unsigned gen; /* the fork_gen mu was made at: a forked child makes its own
                   */
    int active;   /* calls running with the GIL released (counted under the
                     GIL) */
    int closing;
    /* Console lines (console_mu guards the list) and who takes them. */
    pthread_mutex_t console_mu;
    struct console_line *console_head, *console_tail;
    size_t console_kept;
    PyObject *console; /* (ctx, level, text), or NULL */
    int console_made;  /* conn_init made console_mu */
    /* Room for calls' request and result bytes, kept between calls (taken
     * and given back under the GIL; a call in flight owns what it took). */
    int nrooms;
    struct room {
        char *data;
        size_t cap;
    } rooms[8];
    /* Callables: callback id -> callable (a dict, under the GIL), the next
     * id to try, how many there are (read by the invoke handler, which has
     * no GIL) and who starts the callback threads (on_callable(permanent)). */
    PyObject *callables;
    uint32_t next_cbid;
    atomic_int ncallables;
    PyObject *on_callable;
    /* Invokes not taken yet (inv_mu guards them; inv_cond says one came or
     * the Connection closes). */
    pthread_mutex_t inv_mu;
    pthread_cond_t inv_cond;
    struct invoke *inv_head, *inv_tail;
} ConnObject;

/* libjshost's console handler: keeps the line (no GIL here, and the handle's
 * lock is held, so Python cannot run now). */
static void
conn_console_cb(void *user, uint64_t ctx, const char *level, const char *text,
                size_t len)
{
    ConnObject *self = user;
    struct console_line *l;

    pthread_mutex_lock(&self->console_mu);
    if (self->console_kept < CONSOLE_KEPT_MAX &&
        (l = calloc(1, sizeof *l)) != NULL) {
        l->text = malloc(len + 1);
        if (l->text == NULL) {
            free(l);
        } else {
            memcpy(l->text, text, len + 1);
            l->len = len;
            l->ctx = ctx;
            snprintf(l->level, sizeof l->level, "%s", level);
            if (self->console_tail != NULL)
                self->console_tail->next = l;
            else
                self->console_head = l;
            self->console_tail = l;
            self->console_kept++;
        }
    }
    pthread_mutex_unlock(&self->console_mu);
}

static void
console_free_lines(struct console_line *l)
{
    while (l != NULL) {
        struct console_line *next = l->next;
        free(l->text);
        free(l);
        l = next;
    }
}

/* Hands the kept console lines to the console callable (GIL held), in
 * order; what it raises is reported as unraisable, never to the call. */
static void
conn_deliver_console(ConnObject *self)
{
    struct console_line *l, *next;
    PyObject *type, *value, *tb;

    pthread_mutex_lock(&self->console_mu);
    l = self->console_head;
    self->console_head = self->console_tail = NULL;
    self->console_kept = 0;
    pthread_mutex_unlock(&self->console_mu);
    if (l == NULL)
        return;
    PyErr_Fetch(&type, &value, &tb);
    for (; l != NULL; l = next) {
        next = l->next;
        if (self->console != NULL) {
            PyObject *r = PyObject_CallFunction(
                self->console, "KsN", l->ctx, l->level,
                PyUnicode_DecodeUTF8(l->text, (Py_ssize_t)l->len, "replace"));
            if (r == NULL)
                PyErr_WriteUnraisable(self->console);
            Py_XDECREF(r);
        }
        free(l->text);
        free(l);
    }
    PyErr_Restore(type, value, tb);
}

/* One call of a Connection: what libjshost answered, taken without the GIL
 * and turned into a value or an exception once the GIL is back. */
struct call {
    int rc;
    int code;
    jshost_error err;
    char errstr[512];
    jshost_value value;
};

static void
call_init(struct call *r)
{
    r->rc = 0;
    r->code = 0;
    memset(&r->err, 0, sizeof r->err);
    r->errstr[0] = '\0';
    r->value.data = NULL;
    r->value.len = 0;
}

static PyObject *
call_fail(struct call *r)
{
    raise_jshost(r->code, r->errstr, &r->err);
    jshost_error_clear(&r->err);
    jshost_value_free(&r->value);
    return NULL;
}

static void
invokes_free(struct invoke *inv)
{
    struct invoke *next;

    for (; inv != NULL; inv = next) {
        next = inv->next;
        free(inv);
    }
}

/* In a forked child: another thread of the parent may have held mu forever,
 * and the parent's calls in flight have no thread here to end them; the
 * invokes queued were the parent's to answer. */
static void
conn_check_fork(ConnObject *self)
{
    if (self->c != NULL && self->gen != fork_gen) {
        pthread_mutex_init(&self->mu, NULL);
        pthread_mutex_init(&self->inv_mu, NULL);
        pthread_cond_init(&self->inv_cond, NULL);
        invokes_free(self->inv_head);
        self->inv_head = self->inv_tail = NULL;
        pthread_mutex_init(&self->console_mu, NULL);
        /* the parent's lines are the parent's */
        console_free_lines(self->console_head);
        self->console_head = self->console_tail = NULL;
        self->console_kept = 0;
        self->gen = fork_gen;
        self->active = 0;
    }
}

/* libjshost's invoke handler: queues the invoke for whoever runs callables
 * (no GIL here, nor any lock of libjshost's). */
static void
conn_invoke_cb(jshost *c, uint32_t rid, uint32_t callback_id, const char *args,
               size_t len, void *user)
{
    ConnObject *self = user;
    struct invoke *inv;

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
    if (PyThread_get_thread_ident() != main_thread)
        return 0;
    g = PyGILState_Ensure();
    r = PyErr_CheckSignals();
    PyGILState_Release(g);
    return r < 0;
}

/* Bigger room than this is not kept for the next call (a big payload costs
 * its copies anyway; an idle client should not hold megabytes). */
#define ROOM_KEEP (64 * 1024)
/* Room made for results the first time: a small result is the common case. */
#define ROOM_RESULT 4096

static struct room
room_take(ConnObject *self)
{
    struct room r = {NULL, 0};

    if (self->nrooms > 0)
        r = self->rooms[--self->nrooms];
    return r;
}

static void
room_give(ConnObject *self, struct room r)
{
    int n = (int)(sizeof self->rooms / sizeof self->rooms[0]);

    if (r.data != NULL && r.cap <= ROOM_KEEP && self->nrooms < n)
        self->rooms[self->nrooms++] = r;
    else
        free(r.data);
}

/* Takes the handle for one call (GIL held); NULL with an exception if closed.
 */
static jshost *
conn_enter(ConnObject *self)
{
    if (self->c == NULL || self->closing) {
        PyErr_SetString(PyExc_ValueError, "jshost connection is closed");
        return NULL;
    }
    conn_check_fork(self);
    self->active++;
    return self->c;
}

static void
conn_leave(ConnObject *self)
{
    conn_deliver_console(self);
    if (--self->active == 0 && self->closing && self->c != NULL) {
        jshost *c = self->c;
        self->c = NULL;
        Py_BEGIN_ALLOW_THREADS jshost_free(c);
        Py_END_ALLOW_THREADS
    }
}

/* Copies c's error (taken under mu) into the call r. */
static void
call_take_err(jshost *c, struct call *r)
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
        struct call r;
        call_init(&r);
        call_take_err(c, &r);
        jshost_free(c);
        call_fail(&r);
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
    self->gen = fork_gen;
    self->c = c;
    jshost_set_invoke_handler(c, conn_invoke_cb, self);
    jshost_set_interrupt_check(c, conn_interrupt_check, NULL);
    pthread_mutex_init(&self->console_mu, NULL);
    self->console_made = 1;
    self->gen = fork_gen;
    self->c = c;
    jshost_set_console_handler(c, conn_console_cb, self);
    return 0;
}

static void
conn_dealloc(ConnObject *self)
{
    /* a method in flight holds a reference, so active is 0 here */
    if (self->c != NULL)
        jshost_free(self->c);
    if (self->console_made) {
        console_free_lines(self->console_head);
        pthread_mutex_destroy(&self->console_mu);
    }
    Py_XDECREF(self->console);
    while (self->nrooms > 0)
        free(self->rooms[--self->nrooms].data);
    invokes_free(self->inv_head);
    Py_XDECREF(self->callables);
    Py_XDECREF(self->on_callable);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
conn_close(ConnObject *self, PyObject *unused)
{
    (void)unused;
    conn_check_fork(self);
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
        conn_leave(self); /* frees now, or when the last call in flight ends */
    }
    Py_RETURN_NONE;
}

/* set_console(fn or None): fn(ctx, level, text) gets the console lines of
 * this connection's contexts, after each call of it returns. */
static PyObject *
conn_set_console(ConnObject *self, PyObject *fn)
{
    if (fn != Py_None && !PyCallable_Check(fn)) {
        PyErr_SetString(PyExc_TypeError, "console must be callable or None");
        return NULL;
    }
    Py_XSETREF(self->console, fn == Py_None ? NULL : Py_NewRef(fn));
    Py_RETURN_NONE;
}

static PyObject *
conn_closed(ConnObject *self, void *unused)
{
    (void)unused;
    return PyBool_FromLong(self->c == NULL || self->closing);
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
static void
callables_forget(ConnObject *self, PyObject *ids)
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
static int
conn_callable(struct pyvalue_pack *st, PyObject *o, uint32_t *id)
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

/* Begins a request's params in room kept on the Connection, callables
 * allowed; pack_end gives it back and forgets the callables registered for
 * it (call-scoped: a caller that keeps them takes st->temps first). */
static void
pack_begin(ConnObject *self, struct pyvalue_pack *st, const char *root)
{
    struct room r = room_take(self);

    pyvalue_pack_init(st, root);
    st->sb.data = r.data;
    st->sb.alloc = r.cap;
    st->callable = conn_callable;
    st->owner = self;
}

static void
pack_end(ConnObject *self, struct pyvalue_pack *st)
{
    struct room r = {st->sb.data, st->sb.alloc};

    room_give(self, r);
    if (st->temps != NULL) {
        PyObject *type, *value, *tb;

        PyErr_Fetch(&type, &value, &tb);
        callables_forget(self, st->temps);
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
    struct room res;
    struct call r;
    PyObject *v;
    jshost *c = conn_enter(self);

    if (c == NULL)
        return NULL;
    res = room_take(self);
    if (res.data == NULL && (res.data = malloc(ROOM_RESULT)) != NULL)
        res.cap = ROOM_RESULT;
    call_init(&r);
    Py_BEGIN_ALLOW_THREADS r.rc = jshost__request_into(
        c, method, st->sb.data, st->sb.size, timeout_ms, res.data, res.cap,
        &r.value, &r.code, &r.err, r.errstr, sizeof r.errstr);
    Py_END_ALLOW_THREADS conn_leave(self);
    if (r.rc != 0) {
        room_give(self, res);
        return call_fail(&r);
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

/* How long the client waits (libjshost adds its margin): the run's own
 * deadline; else the default deadline the server applies, when the caller
 * knows it (a VM's); else, as libjshost does for calls, ten minutes: a guard
 * against a wedged server, not a deadline (the server enforces the host's). */
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
static PyObject *
conn_call_data(ConnObject *self, const char *host, Py_ssize_t host_len,
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
        r = conn_request_packed(self, "call", &st, client_wait(timeout_ms, 0));
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
    return conn_call_data(self, host, host_len, fn, fn_len, data, timeout_ms);
}

/* attach(config) -> (host_id, info) */
static PyObject *
conn_attach(ConnObject *self, PyObject *args)
{
    const char *config;
    if (!PyArg_ParseTuple(args, "s:attach", &config))
        return NULL;
    jshost *c = conn_enter(self);
    if (c == NULL)
        return NULL;
    struct call r;
    call_init(&r);
    char *host = NULL;
    Py_BEGIN_ALLOW_THREADS pthread_mutex_lock(&self->mu);
    r.rc = jshost_attach(c, config, &host, &r.value);
    if (r.rc != 0)
        call_take_err(c, &r);
    pthread_mutex_unlock(&self->mu);
    Py_END_ALLOW_THREADS conn_leave(self);
    if (r.rc != 0)
        return call_fail(&r);
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
    jshost *c = conn_enter(self);
    if (c == NULL)
        return NULL;
    struct call r;
    call_init(&r);
    Py_BEGIN_ALLOW_THREADS pthread_mutex_lock(&self->mu);
    r.rc = jshost_detach(c, host);
    if (r.rc != 0)
        call_take_err(c, &r);
    pthread_mutex_unlock(&self->mu);
    Py_END_ALLOW_THREADS conn_leave(self);
    if (r.rc != 0)
        return call_fail(&r);
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

/* Tells the server the callables of the list `ids` are withdrawn (GIL held,
 * released while writing). 0, or -1 with an exception. */
static int
conn_release_ids(ConnObject *self, PyObject *ids)
{
    Py_ssize_t i, n = PyList_GET_SIZE(ids);
    uint32_t *v;
    struct call r;
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
    if ((c = conn_enter(self)) == NULL) {
        PyMem_Free(v);
        return -1;
    }
    call_init(&r);
    Py_BEGIN_ALLOW_THREADS pthread_mutex_lock(&self->mu);
    r.rc = jshost_release(c, v, (size_t)n);
    if (r.rc != 0)
        call_take_err(c, &r);
    pthread_mutex_unlock(&self->mu);
    Py_END_ALLOW_THREADS conn_leave(self);
    PyMem_Free(v);
    if (r.rc != 0) {
        call_fail(&r);
        return -1;
    }
    return 0;
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
        if (conn_release_ids(self, st.temps) < 0)
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
    jshost *c = conn_enter(self);
    if (c == NULL)
        return NULL;
    struct call r;
    call_init(&r);
    Py_BEGIN_ALLOW_THREADS pthread_mutex_lock(&self->mu);
    r.rc = jshost_shutdown(c);
    if (r.rc != 0)
        call_take_err(c, &r);
    pthread_mutex_unlock(&self->mu);
    Py_END_ALLOW_THREADS conn_leave(self);
    if (r.rc != 0)
        return call_fail(&r);
    Py_RETURN_NONE;
}

/* ---- Invoke: one reverse call to answer -----------------------------------
 */

typedef struct {
    PyObject_HEAD ConnObject *conn; /* keeps the handle alive */
    struct invoke *inv;             /* NULL once answered */
} InvokeObject;

static PyTypeObject InvokeType;

static PyObject *
invoke_new(ConnObject *conn, struct invoke *inv)
{
    InvokeObject *self = PyObject_New(InvokeObject, &InvokeType);

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
    struct invoke *inv = self->inv;
    jshost *c;
    int rc;

    self->inv = NULL;
    if (inv == NULL) {
        PyErr_SetString(PyExc_ValueError, "this invoke was answered already");
        return -1;
    }
    if (self->conn->c == NULL || self->conn->closing ||
        self->conn->gen != fork_gen) {
        free(inv);
        return 0;
    }
    c = conn_enter(self->conn);
    Py_BEGIN_ALLOW_THREADS if (value != NULL) rc =
        jshost_invoke_reply(inv->c, inv->rid, value, len);
    else rc = jshost_invoke_error(inv->c, inv->rid, type, name, message, stack);
    Py_END_ALLOW_THREADS conn_leave(self->conn);
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
    st.callable = conn_callable;
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

static PyTypeObject InvokeType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "jshost._jshost.Invoke",
    .tp_basicsize = sizeof(InvokeObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A call of JavaScript into one of this client's callables, to "
              "answer exactly once (private to jshost).",
    .tp_dealloc = (destructor)invoke_dealloc,
    .tp_methods = invoke_methods,
    .tp_getset = invoke_getset,
};

/* ---- Connection: callables, invokes, serve, the pipelined interface ------ */

/* register(fn) -> id: a callable of the Connection until unregistered */
static PyObject *
conn_register(ConnObject *self, PyObject *fn)
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
static PyObject *
conn_unregister(ConnObject *self, PyObject *ids)
{
    if (!PyList_Check(ids)) {
        PyErr_SetString(PyExc_TypeError, "ids must be a list");
        return NULL;
    }
    callables_forget(self, ids);
    Py_RETURN_NONE;
}

/* lookup(id) -> the callable, or None */
static PyObject *
conn_lookup(ConnObject *self, PyObject *id)
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
static PyObject *
conn_release(ConnObject *self, PyObject *ids)
{
    int rc;

    if (!PyList_Check(ids)) {
        PyErr_SetString(PyExc_TypeError, "ids must be a list");
        return NULL;
    }
    rc = conn_release_ids(self, ids);
    callables_forget(self, ids);
    if (rc < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* set_on_callable(fn or None): fn(permanent) runs when a callable is
 * registered for a request (permanent False) */
static PyObject *
conn_set_on_callable(ConnObject *self, PyObject *fn)
{
    if (fn != Py_None && !PyCallable_Check(fn)) {
        PyErr_SetString(PyExc_TypeError, "on_callable must be callable");
        return NULL;
    }
    Py_XSETREF(self->on_callable, fn == Py_None ? NULL : Py_NewRef(fn));
    Py_RETURN_NONE;
}

/* next_invoke(timeout: seconds) -> Invoke or None (timeout, or closed) */
static PyObject *
conn_next_invoke(ConnObject *self, PyObject *arg)
{
    double t = PyFloat_AsDouble(arg);
    struct invoke *inv = NULL;
    struct timespec ts;
    int64_t deadline;

    if (t == -1.0 && PyErr_Occurred())
        return NULL;
    conn_check_fork(self);
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
static PyObject *
conn_take_invokes(ConnObject *self, PyObject *unused)
{
    struct invoke *inv, *next;
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
            invokes_free(next);
            Py_DECREF(list);
            return NULL;
        }
        Py_DECREF(o);
    }
    return list;
}

/* serve(timeout_ms): reads the connection for invokes while no call does;
 * returns at the timeout or at wake()/close() */
static PyObject *
conn_serve(ConnObject *self, PyObject *arg)
{
    int ms = PyLong_AsLong(arg) > INT_MAX ? INT_MAX : (int)PyLong_AsLong(arg);
    struct call r;
    jshost *c;

    if (ms == -1 && PyErr_Occurred())
        return NULL;
    if ((c = conn_enter(self)) == NULL)
        return NULL;
    call_init(&r);
    Py_BEGIN_ALLOW_THREADS r.rc = jshost_serve(c, ms);
    if (r.rc != 0) {
        pthread_mutex_lock(&self->mu);
        call_take_err(c, &r);
        pthread_mutex_unlock(&self->mu);
    }
    Py_END_ALLOW_THREADS conn_leave(self);
    if (r.rc != 0)
        return call_fail(&r);
    Py_RETURN_NONE;
}

/* wake(): makes serve() return */
static PyObject *
conn_wake(ConnObject *self, PyObject *unused)
{
    (void)unused;
    if (self->c != NULL)
        jshost_serve_wake(self->c);
    Py_RETURN_NONE;
}

/* send(method, params: list) -> (msgid, temps): a pipelined request (the
 * event loop's); temps lists the callables made for it (forget them once
 * it is answered) or is None */
static PyObject *
conn_send(ConnObject *self, PyObject *args)
{
    const char *method;
    PyObject *params, *ret = NULL;
    struct pyvalue_pack st;
    uint32_t msgid = 0;
    struct call r;
    jshost *c;

    if (!PyArg_ParseTuple(args, "sO!:send", &method, &PyList_Type, &params))
        return NULL;
    pyvalue_pack_init(&st, "params");
    st.callable = conn_callable;
    st.owner = self;
    if (pyvalue_pack(&st, params, "params") < 0)
        goto out;
    if ((c = conn_enter(self)) == NULL)
        goto out;
    call_init(&r);
    /* Only writes (a reconnect aside): the GIL is kept. */
    r.rc = jshost_send(c, method, st.sb.data, st.sb.size, &msgid);
    if (r.rc != 0)
        call_take_err(c, &r);
    conn_leave(self);
    if (r.rc != 0) {
        call_fail(&r);
        goto out;
    }
    ret = Py_BuildValue("(kO)", (unsigned long)msgid,
                        st.temps != NULL ? st.temps : Py_None);
    if (ret != NULL)
        Py_CLEAR(st.temps); /* the caller's now */
out:
    if (st.temps != NULL) {
        PyObject *type, *value, *tb;

        PyErr_Fetch(&type, &value, &tb);
        callables_forget(self, st.temps);
        Py_CLEAR(st.temps);
        PyErr_Restore(type, value, tb);
    }
    msgpack_sbuffer_destroy(&st.sb);
    return ret;
}

/* An error reply as the exception it stands for (not raised). */
static PyObject *
reply_exception(const jshost_error *e)
{
    int code = e->type != NULL && strcmp(e->type, "Cancelled") == 0
                   ? JSHOST_ERR_CANCELLED
                   : JSHOST_ERR_REMOTE;
    char words[512];

    if (error_factory == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "jshost.errors is not loaded");
        return NULL;
    }
    jshost__remote_words(e, words, sizeof(words));
    return PyObject_CallFunction(error_factory, "iNNNNNN", code, opt_str(words),
                                 opt_str(e->type), opt_str(e->message),
                                 opt_str(e->name), opt_str(e->stack),
                                 opt_str(e->logfile));
}

/* read() -> [(msgid, ok, value or exception)]: the replies there are now,
 * without waiting (the invokes read meanwhile wait in take_invokes()) */
static PyObject *
conn_read(ConnObject *self, PyObject *unused)
{
    PyObject *list, *item, *v;
    jshost_reply reply;
    struct call r;
    jshost *c;
    int got, ok;

    (void)unused;
    if ((list = PyList_New(0)) == NULL)
        return NULL;
    if ((c = conn_enter(self)) == NULL) {
        Py_DECREF(list);
        return NULL;
    }
    for (;;) {
        call_init(&r);
        /* Never waits (timeout 0): the GIL is kept. */
        got = jshost_read(c, &reply, 0);
        if (got <= 0) {
            if (got < 0) {
                call_take_err(c, &r);
                r.rc = -1;
            }
            break;
        }
        ok = reply.ok;
        v = ok ? pyvalue_unpack(reply.value.data, reply.value.len)
               : reply_exception(&reply.error);
        if (v == NULL) {
            /* a result that does not unpack fails its own call */
            PyObject *type, *value, *tb;

            PyErr_Fetch(&type, &value, &tb);
            PyErr_NormalizeException(&type, &value, &tb);
            if (value == NULL) {
                Py_XDECREF(type);
                Py_XDECREF(tb);
                jshost_reply_free(&reply);
                conn_leave(self);
                Py_DECREF(list);
                return NULL;
            }
            v = value;
            ok = 0;
            Py_XDECREF(type);
            Py_XDECREF(tb);
        }
        jshost_reply_free(&reply);
        item = Py_BuildValue("(kON)", (unsigned long)reply.msgid,
                             ok ? Py_True : Py_False, v);
        if (item == NULL || PyList_Append(list, item) < 0) {
            Py_XDECREF(item);
            conn_leave(self);
            Py_DECREF(list);
            return NULL;
        }
        Py_DECREF(item);
    }
    conn_leave(self);
    if (r.rc != 0 && PyList_GET_SIZE(list) == 0) {
        Py_DECREF(list);
        return call_fail(&r);
    }
    jshost_error_clear(&r.err);
    return list;
}

/* fileno() -> the socket to watch (-1 when not connected) */
static PyObject *
conn_fileno(ConnObject *self, PyObject *unused)
{
    (void)unused;
    return PyLong_FromLong(
        self->c != NULL && !self->closing ? jshost_fd(self->c) : -1);
}

/* pending_write() -> bytes queued and not yet written */
static PyObject *
conn_pending_write(ConnObject *self, PyObject *unused)
{
    (void)unused;
    return PyLong_FromSize_t(self->c != NULL ? jshost_pending_write(self->c)
                                             : 0);
}

/* flush(): writes what the socket takes of what send() queued */
static PyObject *
conn_flush(ConnObject *self, PyObject *unused)
{
    struct call r;
    jshost *c;

    (void)unused;
    if ((c = conn_enter(self)) == NULL)
        return NULL;
    call_init(&r);
    r.rc = jshost_flush(c);
    if (r.rc != 0)
        call_take_err(c, &r);
    conn_leave(self);
    if (r.rc != 0)
        return call_fail(&r);
    Py_RETURN_NONE;
}

/* cancel(msgid): the server stops that request (answered Cancelled) */
static PyObject *
conn_cancel(ConnObject *self, PyObject *arg)
{
    unsigned long msgid = PyLong_AsUnsignedLong(arg);
    struct call r;
    jshost *c;

    if (msgid == (unsigned long)-1 && PyErr_Occurred())
        return NULL;
    if ((c = conn_enter(self)) == NULL)
        return NULL;
    call_init(&r);
    r.rc = jshost_cancel(c, (uint32_t)msgid);
    if (r.rc != 0)
        call_take_err(c, &r);
    conn_leave(self);
    if (r.rc != 0)
        return call_fail(&r);
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
    {"register", (PyCFunction)conn_register, METH_O,
     "register(fn) -> id: fn is a callable of this connection until "
     "unregistered."},
    {"unregister", (PyCFunction)conn_unregister, METH_O,
     "unregister(ids): forgets those callables here."},
    {"lookup", (PyCFunction)conn_lookup, METH_O,
     "lookup(id) -> the callable of that id, or None."},
    {"release", (PyCFunction)conn_release, METH_O,
     "release(ids): withdraws those callables on the server and here."},
    {"set_on_callable", (PyCFunction)conn_set_on_callable, METH_O,
     "set_on_callable(fn): fn(False) runs when a value registers a "
     "callable."},
    {"next_invoke", (PyCFunction)conn_next_invoke, METH_O,
     "next_invoke(timeout) -> Invoke or None (timed out, or closed)."},
    {"take_invokes", (PyCFunction)conn_take_invokes, METH_NOARGS,
     "take_invokes() -> [Invoke]: those queued, without waiting."},
    {"serve", (PyCFunction)conn_serve, METH_O,
     "serve(timeout_ms): reads the connection for invokes while no call "
     "does, until the timeout, wake() or close()."},
    {"wake", (PyCFunction)conn_wake, METH_NOARGS,
     "wake(): makes serve() return."},
    {"send", (PyCFunction)conn_send, METH_VARARGS,
     "send(method, params) -> (msgid, temps): a pipelined request."},
    {"read", (PyCFunction)conn_read, METH_NOARGS,
     "read() -> [(msgid, ok, value or exception)], without waiting."},
    {"fileno", (PyCFunction)conn_fileno, METH_NOARGS,
     "fileno() -> the socket to watch for replies."},
    {"pending_write", (PyCFunction)conn_pending_write, METH_NOARGS,
     "pending_write() -> bytes send() queued and not yet written."},
    {"flush", (PyCFunction)conn_flush, METH_NOARGS,
     "flush(): writes what the socket takes of what send() queued."},
    {"cancel", (PyCFunction)conn_cancel, METH_O,
     "cancel(msgid): asks the server to stop that request."},
    {"set_console", (PyCFunction)conn_set_console, METH_O,
     "set_console(fn): fn(ctx, level, text) for each console line of this "
     "connection's contexts, after a call returns; None drops them"},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef conn_getset[] = {
    {"closed", (getter)conn_closed, NULL, "True once close() was called.",
     NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject ConnType = {
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

/* ---- HostBase: jshost.Host's C half -------------------------------------- */

typedef struct {
    PyObject_HEAD PyObject *conn; /* _conn: the Connection */
    PyObject *id;                 /* _id: the host's id on it (str) */
} HostObject;

/* Seconds (None: the host's default, 0) to ms for libjshost: what
 * docs/api says of every timeout= of the package. 0, or -1 with an
 * exception. */
static int
timeout_ms_of(PyObject *t, int *ms)
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

/* _jshost.timeout_ms(seconds) -> int */
static PyObject *
mod_timeout_ms(PyObject *self, PyObject *t)
{
    int ms;

    (void)self;
    if (timeout_ms_of(t, &ms) < 0)
        return NULL;
    return PyLong_FromLong(ms);
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
    if (timeout_ms_of(timeout, &ms) < 0)
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
    if (conn == NULL || Py_TYPE(conn) != &ConnType || id == NULL ||
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
    r = conn_call_data((ConnObject *)conn, host, host_len, fn, fn_len, data,
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

static PyTypeObject HostType = {
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

/* ---- the module ---------------------------------------------------------- */

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

static PyObject *
mod_set_error_factory(PyObject *self, PyObject *fn)
{
    (void)self;
    if (!PyCallable_Check(fn)) {
        PyErr_SetString(PyExc_TypeError, "the error factory must be callable");
        return NULL;
    }
    Py_INCREF(fn);
    Py_XSETREF(error_factory, fn);
    Py_RETURN_NONE;
}

/* _set_callable_type(PyFunction, main_thread_ident) */
static PyObject *
mod_set_callable_type(PyObject *self, PyObject *args)
{
    PyObject *type;
    unsigned long ident;

    (void)self;
    if (!PyArg_ParseTuple(args, "O!k:_set_callable_type", &PyType_Type, &type,
                          &ident))
        return NULL;
    Py_INCREF(type);
    Py_XSETREF(pyfunction_type, type);
    main_thread = ident;
    Py_RETURN_NONE;
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
    {"_set_error_factory", (PyCFunction)mod_set_error_factory, METH_O,
     "Sets the callable that turns libjshost errors into exceptions."},
    {"_set_callable_type", (PyCFunction)mod_set_callable_type, METH_VARARGS,
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
    if (PyType_Ready(&ConnType) < 0 || PyType_Ready(&HostType) < 0 ||
        PyType_Ready(&InvokeType) < 0)
        goto fail;
    Py_INCREF(&ConnType);
    if (PyModule_AddObject(m, "Connection", (PyObject *)&ConnType) < 0) {
        Py_DECREF(&ConnType);
        goto fail;
    }
    Py_INCREF(&HostType);
    if (PyModule_AddObject(m, "HostBase", (PyObject *)&HostType) < 0) {
        Py_DECREF(&HostType);
        goto fail;
    }
    if ((str_timeout == NULL &&
         (str_timeout = PyUnicode_InternFromString("timeout")) == NULL) ||
        (empty_dict == NULL && (empty_dict = PyDict_New()) == NULL))
        goto fail;
    if (fork_watched == 0) {
        /* Without it a forked child would share the parent's connection. */
        if (pthread_atfork(NULL, NULL, on_fork_child) != 0) {
            PyErr_NoMemory();
            goto fail;
        }
        fork_watched = 1;
    }
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
