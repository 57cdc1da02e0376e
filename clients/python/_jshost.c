/*
 * _jshost: the C half of the jshost Python package (DESIGN §4, §9).
 *
 * Two jobs: convert Python values to and from msgpack bytes directly (no JSON,
 * no intermediate Python objects), and wrap one libjshost handle in a
 * Connection type whose blocking calls run with the GIL released, so that
 * threads sharing a Connection are pipelined by libjshost rather than
 * serialized by Python. The Python modules beside it (jshost/, js_host/,
 * v8cffi/) hold the public API; everything here is private to them.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <datetime.h>

#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include <msgpack.h>

#include "jshost.h"

/* DESIGN §4: the depth the whole path can carry. msgpack-c's reader stops at
 * 32 levels and the request wraps the value in one more array, so 30 leaves
 * room; a cycle is caught by the same limit. */
#define PYJS_MAX_DEPTH 30

#define EXT_BIGINT 1
#define EXT_TIMESTAMP (-1)

static PyObject *epoch_aware; /* datetime(1970, 1, 1, tzinfo=timezone.utc) */
static PyObject *epoch_naive; /* datetime(1970, 1, 1) */
static PyObject *str_to_bytes, *str_from_bytes, *str_big, *str_bit_length;
static PyObject *str_utcoffset, *kwnames_signed;
static PyObject *error_factory; /* set by jshost.errors */
static PyObject *zero;

/* ---- Python → msgpack ---------------------------------------------------- */

struct pyjs_seg {
    PyObject *key; /* a str key (borrowed, kept alive by the caller), or NULL */
    Py_ssize_t index;
};

struct pyjs_pack {
    msgpack_sbuffer sb;
    msgpack_packer pk;
    const char *root; /* "data", "args": how the path starts */
    int depth;
    struct pyjs_seg path[PYJS_MAX_DEPTH + 1];
};

/* "data['a'][3]": where in the value the conversion stopped. */
static PyObject *
pyjs_path(const struct pyjs_pack *st)
{
    PyObject *s = PyUnicode_FromString(st->root);
    for (int i = 0; s != NULL && i < st->depth; i++) {
        PyObject *seg = st->path[i].key != NULL
                            ? PyUnicode_FromFormat("[%R]", st->path[i].key)
                            : PyUnicode_FromFormat("[%zd]", st->path[i].index);
        if (seg == NULL) {
            Py_CLEAR(s);
            break;
        }
        PyObject *joined = PyUnicode_Concat(s, seg);
        Py_DECREF(seg);
        Py_SETREF(s, joined);
    }
    return s;
}

/* Raises exc with "<what> at <path>"; always returns -1. */
static int
pyjs_fail(const struct pyjs_pack *st, PyObject *exc, const char *what,
          PyObject *obj)
{
    PyObject *path = pyjs_path(st);
    if (path == NULL)
        return -1;
    if (obj != NULL)
        PyErr_Format(exc, "%s %.200s at %U", what, Py_TYPE(obj)->tp_name, path);
    else
        PyErr_Format(exc, "%s at %U", what, path);
    Py_DECREF(path);
    return -1;
}

static int
pyjs_nomem(void)
{
    PyErr_NoMemory();
    return -1;
}

static void
store_be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

static void
store_be64(unsigned char *p, uint64_t v)
{
    store_be32(p, (uint32_t)(v >> 32));
    store_be32(p + 4, (uint32_t)v);
}

static uint32_t
load_be32(const unsigned char *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
           ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

static uint64_t
load_be64(const unsigned char *p)
{
    return ((uint64_t)load_be32(p) << 32) | load_be32(p + 4);
}

static int
pack_ext(struct pyjs_pack *st, int8_t type, const void *data, size_t len)
{
    if (msgpack_pack_ext(&st->pk, len, type) != 0 ||
        msgpack_pack_ext_body(&st->pk, data, len) != 0)
        return pyjs_nomem();
    return 0;
}

/* An int beyond int64/uint64: ext 1, two's complement big-endian, as short as
 * the sign allows. */
static int
pack_bigint(struct pyjs_pack *st, PyObject *o)
{
    int neg = PyObject_RichCompareBool(o, zero, Py_LT);
    if (neg < 0)
        return -1;
    PyObject *mag = neg ? PyNumber_Invert(o) : (Py_INCREF(o), o);
    if (mag == NULL)
        return -1;
    PyObject *bits = PyObject_CallMethodNoArgs(mag, str_bit_length);
    Py_DECREF(mag);
    if (bits == NULL)
        return -1;
    Py_ssize_t nbits = PyLong_AsSsize_t(bits);
    Py_DECREF(bits);
    if (nbits < 0)
        return -1;
    Py_ssize_t nbytes = nbits / 8 + 1; /* one bit more for the sign */
    if ((size_t)nbytes > UINT32_MAX)
        return pyjs_fail(st, PyExc_ValueError, "int too large to send", NULL);
    PyObject *len = PyLong_FromSsize_t(nbytes);
    if (len == NULL)
        return -1;
    PyObject *args[] = {o, len, str_big, Py_True};
    PyObject *b = PyObject_VectorcallMethod(
        str_to_bytes, args, 3 | PY_VECTORCALL_ARGUMENTS_OFFSET, kwnames_signed);
    Py_DECREF(len);
    if (b == NULL)
        return -1;
    int rc = pack_ext(st, EXT_BIGINT, PyBytes_AS_STRING(b),
                      (size_t)PyBytes_GET_SIZE(b));
    Py_DECREF(b);
    return rc;
}

static int
pack_int(struct pyjs_pack *st, PyObject *o)
{
    int overflow;
    long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
    if (v == -1 && PyErr_Occurred())
        return -1;
    if (overflow == 0)
        return msgpack_pack_int64(&st->pk, v) == 0 ? 0 : pyjs_nomem();
    if (overflow > 0) {
        unsigned long long u = PyLong_AsUnsignedLongLong(o);
        if (!(u == (unsigned long long)-1 && PyErr_Occurred()))
            return msgpack_pack_uint64(&st->pk, u) == 0 ? 0 : pyjs_nomem();
        if (!PyErr_ExceptionMatches(PyExc_OverflowError))
            return -1;
        PyErr_Clear();
    }
    return pack_bigint(st, o);
}

/* A naive datetime is taken as UTC (documented in jshost's README and stub). */
static int
pack_datetime(struct pyjs_pack *st, PyObject *o)
{
    PyObject *off = PyObject_CallMethodNoArgs(o, str_utcoffset);
    if (off == NULL)
        return -1;
    PyObject *delta =
        PyNumber_Subtract(o, off == Py_None ? epoch_naive : epoch_aware);
    Py_DECREF(off);
    if (delta == NULL)
        return -1;
    if (!PyDelta_Check(delta)) {
        Py_DECREF(delta);
        return pyjs_fail(st, PyExc_TypeError, "cannot send a datetime subclass",
                         NULL);
    }
    int64_t sec = (int64_t)PyDateTime_DELTA_GET_DAYS(delta) * 86400 +
                  PyDateTime_DELTA_GET_SECONDS(delta);
    uint32_t nsec = (uint32_t)PyDateTime_DELTA_GET_MICROSECONDS(delta) * 1000u;
    Py_DECREF(delta);

    unsigned char buf[12];
    if ((sec >> 34) == 0) {
        uint64_t v64 = ((uint64_t)nsec << 34) | (uint64_t)sec;
        if ((v64 >> 32) == 0) {
            store_be32(buf, (uint32_t)v64);
            return pack_ext(st, EXT_TIMESTAMP, buf, 4);
        }
        store_be64(buf, v64);
        return pack_ext(st, EXT_TIMESTAMP, buf, 8);
    }
    store_be32(buf, nsec);
    store_be64(buf + 4, (uint64_t)sec);
    return pack_ext(st, EXT_TIMESTAMP, buf, 12);
}

static int pack_obj(struct pyjs_pack *st, PyObject *o);

static int
pack_child(struct pyjs_pack *st, PyObject *key, Py_ssize_t index, PyObject *o)
{
    st->path[st->depth].key = key;
    st->path[st->depth].index = index;
    st->depth++;
    Py_INCREF(o);
    int rc = pack_obj(st, o);
    Py_DECREF(o);
    if (rc == 0)
        st->depth--;
    /* on failure the path is left as it was, for the message already made */
    return rc;
}

static int
pack_container_check(struct pyjs_pack *st, Py_ssize_t n)
{
    if (st->depth >= PYJS_MAX_DEPTH)
        return pyjs_fail(st, PyExc_ValueError,
                         "value nests deeper than 30 levels (or holds a cycle)",
                         NULL);
    if ((size_t)n > UINT32_MAX)
        return pyjs_fail(st, PyExc_ValueError, "container too large to send",
                         NULL);
    return 0;
}

static int
pack_obj(struct pyjs_pack *st, PyObject *o)
{
    msgpack_packer *pk = &st->pk;

    if (o == Py_None)
        return msgpack_pack_nil(pk) == 0 ? 0 : pyjs_nomem();
    if (PyBool_Check(o))
        return (o == Py_True ? msgpack_pack_true(pk)
                             : msgpack_pack_false(pk)) == 0
                   ? 0
                   : pyjs_nomem();
    if (PyLong_Check(o))
        return pack_int(st, o);
    if (PyFloat_Check(o))
        return msgpack_pack_double(pk, PyFloat_AS_DOUBLE(o)) == 0
                   ? 0
                   : pyjs_nomem();
    if (PyUnicode_Check(o)) {
        Py_ssize_t n;
        const char *s = PyUnicode_AsUTF8AndSize(o, &n);
        if (s == NULL) {
            if (!PyErr_ExceptionMatches(PyExc_UnicodeEncodeError))
                return -1;
            PyErr_Clear();
            return pyjs_fail(st, PyExc_ValueError,
                             "str with a lone surrogate cannot be sent", NULL);
        }
        if ((size_t)n > UINT32_MAX)
            return pyjs_fail(st, PyExc_ValueError, "str too large to send",
                             NULL);
        return msgpack_pack_str_with_body(pk, s, (size_t)n) == 0 ? 0
                                                                 : pyjs_nomem();
    }
    if (PyBytes_Check(o) || PyByteArray_Check(o) || PyMemoryView_Check(o)) {
        /* one contiguous copy covers every buffer shape a memoryview can have
         */
        PyObject *b =
            PyBytes_Check(o) ? (Py_INCREF(o), o) : PyBytes_FromObject(o);
        if (b == NULL)
            return -1;
        int rc = 0;
        if ((size_t)PyBytes_GET_SIZE(b) > UINT32_MAX)
            rc = pyjs_fail(st, PyExc_ValueError, "bytes too large to send",
                           NULL);
        else if (msgpack_pack_bin_with_body(pk, PyBytes_AS_STRING(b),
                                            (size_t)PyBytes_GET_SIZE(b)) != 0)
            rc = pyjs_nomem();
        Py_DECREF(b);
        return rc;
    }
    if (PyList_Check(o) || PyTuple_Check(o)) {
        Py_ssize_t n = PySequence_Fast_GET_SIZE(o);
        if (pack_container_check(st, n) < 0)
            return -1;
        if (msgpack_pack_array(pk, (size_t)n) != 0)
            return pyjs_nomem();
        for (Py_ssize_t i = 0; i < n; i++) {
            /* packing may run Python code (a tzinfo) that shrinks the list */
            if (i >= PySequence_Fast_GET_SIZE(o))
                return pyjs_fail(st, PyExc_RuntimeError,
                                 "list changed size while being sent", NULL);
            if (pack_child(st, NULL, i, PySequence_Fast_GET_ITEM(o, i)) < 0)
                return -1;
        }
        return 0;
    }
    if (PyDict_Check(o)) {
        Py_ssize_t n = PyDict_GET_SIZE(o);
        if (pack_container_check(st, n) < 0)
            return -1;
        if (msgpack_pack_map(pk, (size_t)n) != 0)
            return pyjs_nomem();
        Py_ssize_t pos = 0, seen = 0;
        PyObject *k, *v;
        while (PyDict_Next(o, &pos, &k, &v)) {
            if (seen == n || PyDict_GET_SIZE(o) != n)
                return pyjs_fail(st, PyExc_RuntimeError,
                                 "dict changed size while being sent", NULL);
            if (!PyUnicode_Check(k)) {
                PyObject *path = pyjs_path(st);
                if (path != NULL) {
                    PyErr_Format(
                        PyExc_TypeError,
                        "dict keys must be str, not %.200s (key %R) at %U",
                        Py_TYPE(k)->tp_name, k, path);
                    Py_DECREF(path);
                }
                return -1;
            }
            Py_INCREF(k);
            int rc = pack_obj(st, k);
            if (rc == 0)
                rc = pack_child(st, k, 0, v);
            Py_DECREF(k);
            if (rc < 0)
                return -1;
            seen++;
        }
        if (seen != n)
            return pyjs_fail(st, PyExc_RuntimeError,
                             "dict changed size while being sent", NULL);
        return 0;
    }
    if (PyDateTime_Check(o))
        return pack_datetime(st, o);
    return pyjs_fail(st, PyExc_TypeError, "cannot send a value of type", o);
}

static void
pyjs_pack_init(struct pyjs_pack *st, const char *root)
{
    msgpack_sbuffer_init(&st->sb);
    msgpack_packer_init(&st->pk, &st->sb, msgpack_sbuffer_write);
    st->root = root;
    st->depth = 0;
}

/* Packs o, appended to st; -1 with a Python exception set. */
static int
pyjs_pack_value(struct pyjs_pack *st, PyObject *o, const char *root)
{
    const char *saved = st->root;
    st->root = root;
    st->depth = 0;
    int rc = pack_obj(st, o);
    st->root = saved;
    return rc;
}

/* ---- msgpack → Python ---------------------------------------------------- */

static PyObject *unpack_obj(const msgpack_object *o);

static PyObject *
unpack_timestamp(const msgpack_object *o)
{
    const unsigned char *p = (const unsigned char *)o->via.ext.ptr;
    int64_t sec;
    uint32_t nsec;
    switch (o->via.ext.size) {
    case 4:
        sec = load_be32(p);
        nsec = 0;
        break;
    case 8: {
        uint64_t v = load_be64(p);
        nsec = (uint32_t)(v >> 34);
        sec = (int64_t)(v & 0x3ffffffffULL);
        break;
    }
    case 12:
        nsec = load_be32(p);
        sec = (int64_t)load_be64(p + 4);
        break;
    default:
        PyErr_SetString(PyExc_ValueError, "malformed msgpack timestamp");
        return NULL;
    }
    int64_t days = sec / 86400, rem = sec % 86400;
    if (rem < 0) {
        rem += 86400;
        days--;
    }
    if (days > INT32_MAX || days < INT32_MIN) {
        PyErr_SetString(PyExc_ValueError, "timestamp out of datetime's range");
        return NULL;
    }
    PyObject *delta = PyDelta_FromDSU((int)days, (int)rem, (int)(nsec / 1000));
    if (delta == NULL)
        return NULL;
    PyObject *dt = PyNumber_Add(epoch_aware, delta);
    Py_DECREF(delta);
    if (dt == NULL && PyErr_ExceptionMatches(PyExc_OverflowError)) {
        PyErr_Clear();
        PyErr_SetString(PyExc_ValueError, "timestamp out of datetime's range");
    }
    return dt;
}

static PyObject *
unpack_bigint(const msgpack_object *o)
{
    PyObject *b = PyBytes_FromStringAndSize(o->via.ext.ptr, o->via.ext.size);
    if (b == NULL)
        return NULL;
    PyObject *args[] = {(PyObject *)&PyLong_Type, b, str_big, Py_True};
    PyObject *r = PyObject_VectorcallMethod(str_from_bytes, args,
                                            3 | PY_VECTORCALL_ARGUMENTS_OFFSET,
                                            kwnames_signed);
    Py_DECREF(b);
    return r;
}

static PyObject *
unpack_obj(const msgpack_object *o)
{
    switch (o->type) {
    case MSGPACK_OBJECT_NIL:
        Py_RETURN_NONE;
    case MSGPACK_OBJECT_BOOLEAN:
        return PyBool_FromLong(o->via.boolean);
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        return PyLong_FromUnsignedLongLong(o->via.u64);
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        return PyLong_FromLongLong(o->via.i64);
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        return PyFloat_FromDouble(o->via.f64);
    case MSGPACK_OBJECT_STR:
        return PyUnicode_DecodeUTF8(o->via.str.ptr, o->via.str.size, "strict");
    case MSGPACK_OBJECT_BIN:
        return PyBytes_FromStringAndSize(o->via.bin.ptr, o->via.bin.size);
    case MSGPACK_OBJECT_ARRAY: {
        PyObject *l = PyList_New(o->via.array.size);
        if (l == NULL)
            return NULL;
        for (uint32_t i = 0; i < o->via.array.size; i++) {
            PyObject *v = unpack_obj(&o->via.array.ptr[i]);
            if (v == NULL) {
                Py_DECREF(l);
                return NULL;
            }
            PyList_SET_ITEM(l, i, v);
        }
        return l;
    }
    case MSGPACK_OBJECT_MAP: {
        PyObject *d = PyDict_New();
        if (d == NULL)
            return NULL;
        for (uint32_t i = 0; i < o->via.map.size; i++) {
            PyObject *k = unpack_obj(&o->via.map.ptr[i].key);
            PyObject *v = k != NULL ? unpack_obj(&o->via.map.ptr[i].val) : NULL;
            int rc = v != NULL ? PyDict_SetItem(d, k, v) : -1;
            Py_XDECREF(k);
            Py_XDECREF(v);
            if (rc < 0) {
                Py_DECREF(d);
                return NULL;
            }
        }
        return d;
    }
    case MSGPACK_OBJECT_EXT:
        if (o->via.ext.type == EXT_TIMESTAMP)
            return unpack_timestamp(o);
        if (o->via.ext.type == EXT_BIGINT)
            return unpack_bigint(o);
        PyErr_Format(PyExc_ValueError, "unknown msgpack ext type %d",
                     (int)o->via.ext.type);
        return NULL;
    }
    PyErr_SetString(PyExc_ValueError, "unknown msgpack object");
    return NULL;
}

/* Exactly one value in data[0..len). */
static PyObject *
pyjs_unpack(const char *data, size_t len)
{
    msgpack_unpacked u;
    size_t off = 0;
    msgpack_unpacked_init(&u);
    msgpack_unpack_return rc = msgpack_unpack_next(&u, data, len, &off);
    PyObject *r = NULL;
    if (rc == MSGPACK_UNPACK_SUCCESS && off == len)
        r = unpack_obj(&u.data);
    else if (rc == MSGPACK_UNPACK_SUCCESS)
        PyErr_SetString(PyExc_ValueError,
                        "extra bytes after the msgpack value");
    else if (rc == MSGPACK_UNPACK_NOMEM_ERROR)
        PyErr_SetString(PyExc_ValueError,
                        "msgpack value nests too deep or is too large");
    else
        PyErr_SetString(PyExc_ValueError,
                        "malformed or truncated msgpack value");
    msgpack_unpacked_destroy(&u);
    return r;
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
    struct pyjs_pack st;
    pyjs_pack_init(&st, root);
    PyObject *r = NULL;
    if (pyjs_pack_value(&st, o, root) == 0)
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
    PyObject *r = pyjs_unpack(view.buf, (size_t)view.len);
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

typedef struct {
    PyObject_HEAD jshost *c;
    /* Serializes the libjshost calls that report through c->err (attach,
     * context.create, ...); the _r ones need no lock of ours. */
    pthread_mutex_t mu;
    pid_t pid;  /* the process mu was made in: a forked child makes its own */
    int active; /* calls running with the GIL released (counted under the GIL)
                 */
    int closing;
} ConnObject;

/* The outcome of one libjshost call made without the GIL. */
struct conn_res {
    int rc;
    int code;
    jshost_error err;
    char errstr[512];
    jshost_value value;
};

static void
conn_res_init(struct conn_res *r)
{
    memset(r, 0, sizeof *r);
}

static PyObject *
conn_res_fail(struct conn_res *r)
{
    raise_jshost(r->code, r->errstr, &r->err);
    jshost_error_clear(&r->err);
    jshost_value_free(&r->value);
    return NULL;
}

/* In a forked child: another thread of the parent may have held mu forever,
 * and the parent's calls in flight have no thread here to end them. */
static void
conn_check_fork(ConnObject *self)
{
    if (self->c != NULL && self->pid != getpid()) {
        pthread_mutex_init(&self->mu, NULL);
        self->pid = getpid();
        self->active = 0;
    }
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
    if (--self->active == 0 && self->closing && self->c != NULL) {
        jshost *c = self->c;
        self->c = NULL;
        Py_BEGIN_ALLOW_THREADS jshost_free(c);
        Py_END_ALLOW_THREADS
    }
}

/* Copies c's error (taken under mu) into r. */
static void
conn_take_err(jshost *c, struct conn_res *r)
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
        struct conn_res r;
        conn_res_init(&r);
        conn_take_err(c, &r);
        jshost_free(c);
        conn_res_fail(&r);
        return -1;
    }
    pthread_mutex_init(&self->mu, NULL);
    self->pid = getpid();
    self->c = c;
    return 0;
}

static void
conn_dealloc(ConnObject *self)
{
    /* a method in flight holds a reference, so active is 0 here */
    if (self->c != NULL)
        jshost_free(self->c);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
conn_close(ConnObject *self, PyObject *unused)
{
    (void)unused;
    conn_check_fork(self);
    if (self->c != NULL && !self->closing) {
        self->closing = 1;
        self->active++;
        conn_leave(self); /* frees now, or when the last call in flight ends */
    }
    Py_RETURN_NONE;
}

static PyObject *
conn_closed(ConnObject *self, void *unused)
{
    (void)unused;
    return PyBool_FromLong(self->c == NULL || self->closing);
}

/* Sends a request whose params st holds, GIL released; returns the result. */
static PyObject *
conn_request_packed(ConnObject *self, const char *method, struct pyjs_pack *st,
                    int timeout_ms)
{
    jshost *c = conn_enter(self);
    if (c == NULL)
        return NULL;
    struct conn_res r;
    conn_res_init(&r);
    Py_BEGIN_ALLOW_THREADS r.rc =
        jshost_request(c, method, st->sb.data, st->sb.size, timeout_ms,
                       &r.value, &r.code, &r.err, r.errstr, sizeof r.errstr);
    Py_END_ALLOW_THREADS conn_leave(self);
    if (r.rc != 0)
        return conn_res_fail(&r);
    PyObject *v = pyjs_unpack(r.value.data, r.value.len);
    jshost_value_free(&r.value);
    return v;
}

static int
pack_opts(struct pyjs_pack *st, int timeout_ms)
{
    if (timeout_ms <= 0)
        return msgpack_pack_map(&st->pk, 0) == 0 ? 0 : pyjs_nomem();
    if (msgpack_pack_map(&st->pk, 1) != 0 ||
        msgpack_pack_str_with_body(&st->pk, "timeout_ms", 10) != 0 ||
        msgpack_pack_int64(&st->pk, timeout_ms) != 0)
        return pyjs_nomem();
    return 0;
}

static int
pack_cstr(struct pyjs_pack *st, const char *s, Py_ssize_t n)
{
    return msgpack_pack_str_with_body(&st->pk, s, (size_t)n) == 0
               ? 0
               : pyjs_nomem();
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
    struct pyjs_pack st;
    pyjs_pack_init(&st, "params");
    PyObject *r = NULL;
    if (pyjs_pack_value(&st, params, "params") == 0)
        r = conn_request_packed(self, method, &st, timeout_ms);
    msgpack_sbuffer_destroy(&st.sb);
    return r;
}

/* call(host, function, data, timeout_ms=0) -> result */
static PyObject *
conn_call(ConnObject *self, PyObject *args)
{
    const char *host, *fn;
    PyObject *data;
    int timeout_ms = 0;
    if (!PyArg_ParseTuple(args, "ssO|i:call", &host, &fn, &data, &timeout_ms))
        return NULL;
    struct pyjs_pack st;
    pyjs_pack_init(&st, "data");
    if (pyjs_pack_value(&st, data, "data") < 0) {
        msgpack_sbuffer_destroy(&st.sb);
        return NULL;
    }
    jshost *c = conn_enter(self);
    if (c == NULL) {
        msgpack_sbuffer_destroy(&st.sb);
        return NULL;
    }
    struct conn_res r;
    conn_res_init(&r);
    Py_BEGIN_ALLOW_THREADS r.rc =
        jshost_call_r(c, host, fn, st.sb.data, st.sb.size, timeout_ms, &r.value,
                      &r.code, &r.err, r.errstr, sizeof r.errstr);
    Py_END_ALLOW_THREADS conn_leave(self);
    msgpack_sbuffer_destroy(&st.sb);
    if (r.rc != 0)
        return conn_res_fail(&r);
    PyObject *v = pyjs_unpack(r.value.data, r.value.len);
    jshost_value_free(&r.value);
    return v;
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
    struct conn_res r;
    conn_res_init(&r);
    char *host = NULL;
    Py_BEGIN_ALLOW_THREADS pthread_mutex_lock(&self->mu);
    r.rc = jshost_attach(c, config, &host, &r.value);
    if (r.rc != 0)
        conn_take_err(c, &r);
    pthread_mutex_unlock(&self->mu);
    Py_END_ALLOW_THREADS conn_leave(self);
    if (r.rc != 0)
        return conn_res_fail(&r);
    PyObject *info = pyjs_unpack(r.value.data, r.value.len);
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
    struct conn_res r;
    conn_res_init(&r);
    Py_BEGIN_ALLOW_THREADS pthread_mutex_lock(&self->mu);
    r.rc = jshost_detach(c, host);
    if (r.rc != 0)
        conn_take_err(c, &r);
    pthread_mutex_unlock(&self->mu);
    Py_END_ALLOW_THREADS conn_leave(self);
    if (r.rc != 0)
        return conn_res_fail(&r);
    Py_RETURN_NONE;
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

/* context_eval(ctx, source, identifier, timeout_ms=0, default_ms=0) -> value */
static PyObject *
conn_context_eval(ConnObject *self, PyObject *args)
{
    unsigned long long ctx;
    const char *src, *ident;
    Py_ssize_t nsrc, nident;
    int timeout_ms = 0, default_ms = 0;
    if (!PyArg_ParseTuple(args, "Ks#s#|ii:context_eval", &ctx, &src, &nsrc,
                          &ident, &nident, &timeout_ms, &default_ms))
        return NULL;
    struct pyjs_pack st;
    pyjs_pack_init(&st, "params");
    PyObject *r = NULL;
    if (msgpack_pack_array(&st.pk, 4) == 0 &&
        msgpack_pack_uint64(&st.pk, ctx) == 0 &&
        pack_cstr(&st, src, nsrc) == 0 && pack_cstr(&st, ident, nident) == 0 &&
        pack_opts(&st, timeout_ms) == 0)
        r = conn_request_packed(self, "context.eval", &st,
                                client_wait(timeout_ms, default_ms));
    else if (!PyErr_Occurred())
        PyErr_NoMemory();
    msgpack_sbuffer_destroy(&st.sb);
    return r;
}

/* context_call(ctx, expression, args: tuple, timeout_ms=0, default_ms=0) ->
 * value */
static PyObject *
conn_context_call(ConnObject *self, PyObject *args)
{
    unsigned long long ctx;
    const char *expr;
    Py_ssize_t nexpr;
    PyObject *cargs;
    int timeout_ms = 0, default_ms = 0;
    if (!PyArg_ParseTuple(args, "Ks#O!|ii:context_call", &ctx, &expr, &nexpr,
                          &PyTuple_Type, &cargs, &timeout_ms, &default_ms))
        return NULL;
    struct pyjs_pack st;
    pyjs_pack_init(&st, "args");
    PyObject *r = NULL;
    if (msgpack_pack_array(&st.pk, 4) != 0 ||
        msgpack_pack_uint64(&st.pk, ctx) != 0 ||
        pack_cstr(&st, expr, nexpr) != 0) {
        if (!PyErr_Occurred())
            PyErr_NoMemory();
    } else if (pyjs_pack_value(&st, cargs, "args") == 0 &&
               pack_opts(&st, timeout_ms) == 0) {
        r = conn_request_packed(self, "context.call", &st,
                                client_wait(timeout_ms, default_ms));
    }
    msgpack_sbuffer_destroy(&st.sb);
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
    struct pyjs_pack st;
    pyjs_pack_init(&st, "paths");
    PyObject *r = NULL;
    if (msgpack_pack_array(&st.pk, 2) != 0 ||
        msgpack_pack_uint64(&st.pk, ctx) != 0)
        PyErr_NoMemory();
    else if (pyjs_pack_value(&st, paths, "paths") == 0)
        r = conn_request_packed(self, "context.load", &st,
                                client_wait(timeout_ms, default_ms));
    msgpack_sbuffer_destroy(&st.sb);
    return r;
}

/* context_destroy(ctx) */
static PyObject *
conn_context_destroy(ConnObject *self, PyObject *args)
{
    unsigned long long ctx;
    if (!PyArg_ParseTuple(args, "K:context_destroy", &ctx))
        return NULL;
    struct pyjs_pack st;
    pyjs_pack_init(&st, "params");
    PyObject *r = NULL;
    if (msgpack_pack_array(&st.pk, 1) != 0 ||
        msgpack_pack_uint64(&st.pk, ctx) != 0)
        PyErr_NoMemory();
    else
        r = conn_request_packed(self, "context.destroy", &st, 0);
    msgpack_sbuffer_destroy(&st.sb);
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
    struct conn_res r;
    conn_res_init(&r);
    Py_BEGIN_ALLOW_THREADS pthread_mutex_lock(&self->mu);
    r.rc = jshost_shutdown(c);
    if (r.rc != 0)
        conn_take_err(c, &r);
    pthread_mutex_unlock(&self->mu);
    Py_END_ALLOW_THREADS conn_leave(self);
    if (r.rc != 0)
        return conn_res_fail(&r);
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
     "context_eval(ctx, source, identifier, timeout_ms=0) -> value"},
    {"context_call", (PyCFunction)conn_context_call, METH_VARARGS,
     "context_call(ctx, expression, args, timeout_ms=0) -> value"},
    {"context_load", (PyCFunction)conn_context_load, METH_VARARGS,
     "context_load(ctx, paths, timeout_ms=0)"},
    {"context_destroy", (PyCFunction)conn_context_destroy, METH_VARARGS,
     "context_destroy(ctx)"},
    {"shutdown", (PyCFunction)conn_shutdown, METH_NOARGS,
     "shutdown(): stops every host and the manager"},
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

static PyMethodDef mod_methods[] = {
    {"pack", (PyCFunction)(void (*)(void))mod_pack,
     METH_VARARGS | METH_KEYWORDS,
     "pack(value, root='data') -> bytes: a Python value as jshost sends it."},
    {"unpack", (PyCFunction)mod_unpack, METH_O,
     "unpack(bytes) -> value: one msgpack value as jshost returns it."},
    {"_set_error_factory", (PyCFunction)mod_set_error_factory, METH_O,
     "Sets the callable that turns libjshost errors into exceptions."},
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

static PyObject *
intern(const char *s)
{
    return PyUnicode_InternFromString(s);
}

PyMODINIT_FUNC
PyInit__jshost(void)
{
    PyDateTime_IMPORT;
    if (PyDateTimeAPI == NULL)
        return NULL;
    epoch_aware = PyDateTimeAPI->DateTime_FromDateAndTime(
        1970, 1, 1, 0, 0, 0, 0, PyDateTime_TimeZone_UTC,
        PyDateTimeAPI->DateTimeType);
    epoch_naive = PyDateTime_FromDateAndTime(1970, 1, 1, 0, 0, 0, 0);
    str_to_bytes = intern("to_bytes");
    str_from_bytes = intern("from_bytes");
    str_big = intern("big");
    str_bit_length = intern("bit_length");
    str_utcoffset = intern("utcoffset");
    kwnames_signed = Py_BuildValue("(s)", "signed");
    zero = PyLong_FromLong(0);
    if (epoch_aware == NULL || epoch_naive == NULL || str_to_bytes == NULL ||
        str_from_bytes == NULL || str_big == NULL || str_bit_length == NULL ||
        str_utcoffset == NULL || kwnames_signed == NULL || zero == NULL)
        return NULL;
    PyObject *m = PyModule_Create(&jshost_module);
    if (m == NULL)
        return NULL;
    if (PyModule_AddIntConstant(m, "MAX_DEPTH", PYJS_MAX_DEPTH) < 0)
        goto fail;
    if (PyType_Ready(&ConnType) < 0)
        goto fail;
    Py_INCREF(&ConnType);
    if (PyModule_AddObject(m, "Connection", (PyObject *)&ConnType) < 0) {
        Py_DECREF(&ConnType);
        goto fail;
    }
    if (PyModule_AddIntConstant(m, "ERR_IO", JSHOST_ERR_IO) < 0 ||
        PyModule_AddIntConstant(m, "ERR_PROTOCOL", JSHOST_ERR_PROTOCOL) < 0 ||
        PyModule_AddIntConstant(m, "ERR_TIMEOUT", JSHOST_ERR_TIMEOUT) < 0 ||
        PyModule_AddIntConstant(m, "ERR_REMOTE", JSHOST_ERR_REMOTE) < 0 ||
        PyModule_AddIntConstant(m, "ERR_ARG", JSHOST_ERR_ARG) < 0 ||
        PyModule_AddIntConstant(m, "ERR_OOM", JSHOST_ERR_OOM) < 0 ||
        PyModule_AddIntConstant(m, "ERR_SPAWN", JSHOST_ERR_SPAWN) < 0 ||
        PyModule_AddIntConstant(m, "ERR_RUNTIME", JSHOST_ERR_RUNTIME) < 0 ||
        PyModule_AddStringConstant(m, "libjshost_version", jshost_version()) <
            0)
        goto fail;
    return m;
fail:
    Py_DECREF(m);
    return NULL;
}
