/* pyvalue (pyvalue.h): Python values <-> msgpack bytes. */
#include "pyvalue.h"

#include <datetime.h>

#include <stdint.h>
#include <string.h>

#include "ext.h"
#include "proto.h"

static PyObject *epoch_aware; /* datetime(1970, 1, 1, tzinfo=timezone.utc) */
static PyObject *epoch_naive; /* datetime(1970, 1, 1) */
static PyObject *str_to_bytes, *str_from_bytes, *str_big, *str_bit_length;
static PyObject *str_utcoffset, *zero;

/* ---- Python → msgpack ---------------------------------------------------- */

/* "data['a'][3]": where in the value the conversion stopped. */
static PyObject *
pack_path(const struct pyvalue_pack *st)
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
pack_fail(const struct pyvalue_pack *st, PyObject *exc, const char *what,
          PyObject *obj)
{
    PyObject *path = pack_path(st);
    if (path == NULL)
        return -1;
    if (obj != NULL)
        PyErr_Format(exc, "%s %.200s at %U", what, Py_TYPE(obj)->tp_name, path);
    else
        PyErr_Format(exc, "%s at %U", what, path);
    Py_DECREF(path);
    return -1;
}

int
pyvalue_nomem(void)
{
    PyErr_NoMemory();
    return -1;
}

/* An int beyond int64: its magnitude's bytes, for proto_ext_bigint_pack
 * (which also says what fits uint64 as a plain int). */
static int
pack_bigint(struct pyvalue_pack *st, PyObject *o)
{
    int neg = PyObject_RichCompareBool(o, zero, Py_LT);
    if (neg < 0)
        return -1;
    PyObject *mag = PyNumber_Absolute(o);
    if (mag == NULL)
        return -1;
    PyObject *bits = PyObject_CallMethodNoArgs(mag, str_bit_length);
    Py_ssize_t nbits = bits != NULL ? PyLong_AsSsize_t(bits) : -1;
    Py_XDECREF(bits);
    if (nbits < 0) {
        Py_DECREF(mag);
        return -1;
    }
    Py_ssize_t nbytes = (nbits + 7) / 8;
    if ((size_t)nbytes >= UINT32_MAX) {
        Py_DECREF(mag);
        return pack_fail(st, PyExc_ValueError, "int too large to send", NULL);
    }
    PyObject *len = PyLong_FromSsize_t(nbytes);
    if (len == NULL) {
        Py_DECREF(mag);
        return -1;
    }
    PyObject *args[] = {mag, len, str_big};
    PyObject *b = PyObject_VectorcallMethod(
        str_to_bytes, args, 3 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    Py_DECREF(len);
    Py_DECREF(mag);
    if (b == NULL)
        return -1;
    int rc = proto_ext_bigint_pack(&st->pk, neg,
                                   (const unsigned char *)PyBytes_AS_STRING(b),
                                   (size_t)PyBytes_GET_SIZE(b));
    Py_DECREF(b);
    return rc == 0 ? 0 : pyvalue_nomem();
}

static int
pack_int(struct pyvalue_pack *st, PyObject *o)
{
    int overflow;
    long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
    if (v == -1 && PyErr_Occurred())
        return -1;
    if (overflow == 0)
        return msgpack_pack_int64(&st->pk, v) == 0 ? 0 : pyvalue_nomem();
    return pack_bigint(st, o);
}

/* A naive datetime is taken as UTC (docs/python.md and the stub say so). */
static int
pack_datetime(struct pyvalue_pack *st, PyObject *o)
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
        return pack_fail(st, PyExc_TypeError, "cannot send a datetime subclass",
                         NULL);
    }
    int64_t sec = (int64_t)PyDateTime_DELTA_GET_DAYS(delta) * 86400 +
                  PyDateTime_DELTA_GET_SECONDS(delta);
    uint32_t nsec = (uint32_t)PyDateTime_DELTA_GET_MICROSECONDS(delta) * 1000u;
    Py_DECREF(delta);
    return proto_ext_timestamp_pack(&st->pk, sec, nsec) == 0 ? 0
                                                             : pyvalue_nomem();
}

static int pack_obj(struct pyvalue_pack *st, PyObject *o);

static int
pack_child(struct pyvalue_pack *st, PyObject *key, Py_ssize_t index,
           PyObject *o)
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
pack_container_check(struct pyvalue_pack *st, Py_ssize_t n)
{
    if (st->depth >= PYVALUE_MAX_DEPTH)
        return pack_fail(st, PyExc_ValueError,
                         "value nests deeper than 30 levels (or holds a cycle)",
                         NULL);
    if ((size_t)n > UINT32_MAX)
        return pack_fail(st, PyExc_ValueError, "container too large to send",
                         NULL);
    return 0;
}

static int
pack_obj(struct pyvalue_pack *st, PyObject *o)
{
    msgpack_packer *pk = &st->pk;

    if (o == Py_None)
        return msgpack_pack_nil(pk) == 0 ? 0 : pyvalue_nomem();
    if (PyBool_Check(o))
        return (o == Py_True ? msgpack_pack_true(pk)
                             : msgpack_pack_false(pk)) == 0
                   ? 0
                   : pyvalue_nomem();
    if (PyLong_Check(o))
        return pack_int(st, o);
    if (PyUnicode_Check(o)) {
        Py_ssize_t n;
        const char *s = PyUnicode_AsUTF8AndSize(o, &n);
        if (s == NULL) {
            if (!PyErr_ExceptionMatches(PyExc_UnicodeEncodeError))
                return -1;
            PyErr_Clear();
            return pack_fail(st, PyExc_ValueError,
                             "str with a lone surrogate cannot be sent", NULL);
        }
        if ((size_t)n > UINT32_MAX)
            return pack_fail(st, PyExc_ValueError, "str too large to send",
                             NULL);
        return msgpack_pack_str_with_body(pk, s, (size_t)n) == 0
                   ? 0
                   : pyvalue_nomem();
    }
    /* after str: PyFloat_Check walks the type's bases when it is not one */
    if (PyFloat_Check(o))
        return msgpack_pack_double(pk, PyFloat_AS_DOUBLE(o)) == 0
                   ? 0
                   : pyvalue_nomem();
    if (PyBytes_Check(o) || PyByteArray_Check(o) || PyMemoryView_Check(o)) {
        /* one contiguous copy covers every buffer shape a memoryview can have
         */
        PyObject *b =
            PyBytes_Check(o) ? (Py_INCREF(o), o) : PyBytes_FromObject(o);
        if (b == NULL)
            return -1;
        int rc = 0;
        if ((size_t)PyBytes_GET_SIZE(b) > UINT32_MAX)
            rc = pack_fail(st, PyExc_ValueError, "bytes too large to send",
                           NULL);
        else if (msgpack_pack_bin_with_body(pk, PyBytes_AS_STRING(b),
                                            (size_t)PyBytes_GET_SIZE(b)) != 0)
            rc = pyvalue_nomem();
        Py_DECREF(b);
        return rc;
    }
    if (PyList_Check(o) || PyTuple_Check(o)) {
        Py_ssize_t n = PySequence_Fast_GET_SIZE(o);
        if (pack_container_check(st, n) < 0)
            return -1;
        if (msgpack_pack_array(pk, (size_t)n) != 0)
            return pyvalue_nomem();
        for (Py_ssize_t i = 0; i < n; i++) {
            /* packing may run Python code (a tzinfo) that shrinks the list */
            if (i >= PySequence_Fast_GET_SIZE(o))
                return pack_fail(st, PyExc_RuntimeError,
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
            return pyvalue_nomem();
        Py_ssize_t pos = 0, seen = 0;
        PyObject *k, *v;
        while (PyDict_Next(o, &pos, &k, &v)) {
            if (seen == n || PyDict_GET_SIZE(o) != n)
                return pack_fail(st, PyExc_RuntimeError,
                                 "dict changed size while being sent", NULL);
            if (!PyUnicode_Check(k)) {
                PyObject *path = pack_path(st);
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
            return pack_fail(st, PyExc_RuntimeError,
                             "dict changed size while being sent", NULL);
        return 0;
    }
    if (PyDateTime_Check(o))
        return pack_datetime(st, o);
    /* Last: a class instance with __call__ is a callable, not a refusal. */
    if (st->callable != NULL && PyCallable_Check(o)) {
        uint32_t id;

        if (st->callable(st, o, &id) < 0)
            return -1;
        return proto_ext_callable_pack(pk, id) == 0 ? 0 : pyvalue_nomem();
    }
    return pack_fail(st, PyExc_TypeError, "cannot send a value of type", o);
}

void
pyvalue_pack_init(struct pyvalue_pack *st, const char *root)
{
    msgpack_sbuffer_init(&st->sb);
    msgpack_packer_init(&st->pk, &st->sb, msgpack_sbuffer_write);
    st->root = root;
    st->depth = 0;
    st->callable = NULL;
    st->owner = NULL;
    st->temps = NULL;
}

int
pyvalue_pack(struct pyvalue_pack *st, PyObject *o, const char *root)
{
    const char *saved = st->root;
    st->root = root;
    st->depth = 0;
    int rc = pack_obj(st, o);
    st->root = saved;
    return rc;
}

/* ---- msgpack → Python ---------------------------------------------------- */

/* Straight from the bytes with proto's pull reader: no object tree, no zone.
 * The nesting limit is the one msgpack-c's unpacker had here (32 containers
 * deep), so that what unpacked before still does. */
#define UNPACK_MAX_DEPTH 32

/* Short ASCII keys of small maps, kept across calls: every result of a
 * function brings the same keys again ({i, s} a thousand times), and a kept
 * str is neither made nor hashed again. A big map's keys are made fresh:
 * looking each up cost more than making it (a 1000-key dict unpacked 116 us
 * through the cache, 103 us without). Sets of two by a hash of
 * the bytes, the one used last first; a third key in a set replaces the
 * other. At most 2048 strs of up to 32 characters stay. The GIL guards it. */
#define KEY_CACHE_SETS 1024
#define KEY_CACHE_MAX_LEN 32
#define KEY_CACHE_MAP_MAX 64 /* keys of bigger maps are not kept */

static PyObject *key_cache[KEY_CACHE_SETS][2];

struct unpacker {
    struct proto_cur cur;
    int depth;
};

static PyObject *
unpack_broken(void)
{
    PyErr_SetString(PyExc_ValueError, "malformed or truncated msgpack value");
    return NULL;
}

static bool
is_ascii(const char *s, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, s + i, 8);
        if (w & 0x8080808080808080ull)
            return false;
    }
    for (; i < n; i++)
        if ((unsigned char)s[i] & 0x80)
            return false;
    return true;
}

/* A str from UTF-8: ASCII is copied straight into a new compact str. */
static PyObject *
unpack_str(const char *s, size_t n)
{
    if (!is_ascii(s, n))
        return PyUnicode_DecodeUTF8(s, (Py_ssize_t)n, "strict");
    PyObject *u = PyUnicode_New((Py_ssize_t)n, 127);
    if (u != NULL && n > 0)
        memcpy(PyUnicode_1BYTE_DATA(u), s, n);
    return u;
}

/* A slot for a key of at most KEY_CACHE_MAX_LEN bytes: a few loads that
 * cover every byte of a key up to 24 bytes, mixed. Keys that differ only in
 * bytes it skips share a slot, nothing worse. */
static uint32_t
key_hash(const char *s, size_t n)
{
    uint64_t a = 0, b = 0, c = 0;
    if (n >= 8) {
        memcpy(&a, s, 8);
        memcpy(&b, s + n - 8, 8);
        if (n > 16)
            memcpy(&c, s + n / 2 - 4, 8);
    } else if (n >= 4) {
        uint32_t x, y;
        memcpy(&x, s, 4);
        memcpy(&y, s + n - 4, 4);
        a = x;
        b = y;
    } else if (n > 0) {
        a = (uint64_t)(unsigned char)s[0] |
            (uint64_t)(unsigned char)s[n / 2] << 8 |
            (uint64_t)(unsigned char)s[n - 1] << 16;
    }
    uint64_t h = (a * 0x9e3779b97f4a7c15ull) ^
                 ((b + n) * 0xc2b2ae3d27d4eb4full) ^
                 (c * 0x165667b19e3779f9ull);
    return (uint32_t)(h >> 32) ^ (uint32_t)h;
}

/* A map key that is a str: from the cache when it is a short ASCII one. */
static PyObject *
unpack_key(const char *s, size_t n)
{
    if (n > KEY_CACHE_MAX_LEN)
        return unpack_str(s, n);
    PyObject **set = key_cache[key_hash(s, n) % KEY_CACHE_SETS];
    for (int way = 0; way < 2; way++) {
        PyObject *k = set[way];
        if (k != NULL && PyUnicode_GET_LENGTH(k) == (Py_ssize_t)n &&
            memcmp(PyUnicode_1BYTE_DATA(k), s, n) == 0) {
            set[way] = set[0];
            set[0] = k;
            Py_INCREF(k);
            return k;
        }
    }
    if (!is_ascii(s, n))
        return PyUnicode_DecodeUTF8(s, (Py_ssize_t)n, "strict");
    PyObject *k = unpack_str(s, n);
    if (k == NULL || PyObject_Hash(k) == -1) {
        Py_XDECREF(k);
        return NULL;
    }
    Py_XDECREF(set[1]);
    set[1] = set[0];
    Py_INCREF(k);
    set[0] = k;
    return k;
}

static PyObject *
unpack_timestamp(const char *p, size_t n)
{
    char cause[PROTO_CAUSE_MAX];
    int64_t sec;
    uint32_t nsec;
    if (proto_ext_timestamp_decode(p, n, &sec, &nsec, cause) != 0) {
        PyErr_Format(PyExc_ValueError, "malformed msgpack %s", cause);
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
unpack_bigint(const char *p, size_t n)
{
    char cause[PROTO_CAUSE_MAX];
    size_t len;
    bool neg;
    unsigned char *mag = PyMem_Malloc(n > 0 ? n : 1);
    if (mag == NULL)
        return PyErr_NoMemory();
    if (proto_ext_bigint_decode(p, n, &neg, mag, &len, cause) != 0) {
        PyMem_Free(mag);
        PyErr_Format(PyExc_ValueError, "malformed msgpack %s", cause);
        return NULL;
    }
    PyObject *b = PyBytes_FromStringAndSize((const char *)mag, (Py_ssize_t)len);
    PyMem_Free(mag);
    if (b == NULL)
        return NULL;
    PyObject *args[] = {(PyObject *)&PyLong_Type, b, str_big};
    PyObject *r = PyObject_VectorcallMethod(
        str_from_bytes, args, 3 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    Py_DECREF(b);
    if (r != NULL && neg)
        Py_SETREF(r, PyNumber_Negative(r));
    return r;
}

/* What an item is: a value, a key of a small map (its keys come again in
 * every such record: kept in key_cache) or a key of a big one (seldom
 * repeated: made fresh, not let evict the small maps' keys). */
enum unpack_as { AS_VALUE, AS_KEY, AS_BIG_MAP_KEY };

static PyObject *unpack_item(struct unpacker *u, enum unpack_as as);

/* A container's items each take a byte at least (a map's entries two): a
 * count beyond what is left is a lie, refused before anything is made. */
static int
unpack_enter(struct unpacker *u, uint64_t min_bytes)
{
    if (u->depth >= UNPACK_MAX_DEPTH) {
        PyErr_SetString(PyExc_ValueError,
                        "msgpack value nests too deep or is too large");
        return -1;
    }
    if (min_bytes > (uint64_t)(u->cur.end - u->cur.p)) {
        unpack_broken();
        return -1;
    }
    u->depth++;
    return 0;
}

static PyObject *
unpack_array(struct unpacker *u, uint32_t n)
{
    if (unpack_enter(u, n) < 0)
        return NULL;
    PyObject *l = PyList_New((Py_ssize_t)n);
    if (l == NULL)
        return NULL;
    for (uint32_t i = 0; i < n; i++) {
        PyObject *v = unpack_item(u, AS_VALUE);
        if (v == NULL) {
            Py_DECREF(l);
            return NULL;
        }
        PyList_SET_ITEM(l, i, v);
    }
    u->depth--;
    return l;
}

static PyObject *
unpack_map(struct unpacker *u, uint32_t n)
{
    if (unpack_enter(u, 2 * (uint64_t)n) < 0)
        return NULL;
    /* Sized once for a big map (CPython's own json does not know the size;
     * the dict would otherwise be rebuilt at every doubling). */
    PyObject *d = n > 8 ? _PyDict_NewPresized((Py_ssize_t)n) : PyDict_New();
    if (d == NULL)
        return NULL;
    enum unpack_as as = n > KEY_CACHE_MAP_MAX ? AS_BIG_MAP_KEY : AS_KEY;
    for (uint32_t i = 0; i < n; i++) {
        PyObject *k = unpack_item(u, as);
        PyObject *v = k != NULL ? unpack_item(u, AS_VALUE) : NULL;
        int rc = v != NULL ? PyDict_SetItem(d, k, v) : -1;
        Py_XDECREF(k);
        Py_XDECREF(v);
        if (rc < 0) {
            Py_DECREF(d);
            return NULL;
        }
    }
    u->depth--;
    return d;
}

/* One item, containers with everything in them. */
static PyObject *
unpack_item(struct unpacker *u, enum unpack_as as)
{
    struct proto_item it;
    if (proto_cur_next(&u->cur, &it) != 0)
        return unpack_broken();
    switch (it.type) {
    case PROTO_T_NIL:
        Py_RETURN_NONE;
    case PROTO_T_BOOL:
        return PyBool_FromLong(it.v.b);
    case PROTO_T_UINT:
        return PyLong_FromUnsignedLongLong(it.v.u);
    case PROTO_T_INT:
        return PyLong_FromLongLong(it.v.i);
    case PROTO_T_FLOAT32:
    case PROTO_T_FLOAT64:
        return PyFloat_FromDouble(it.v.f);
    case PROTO_T_STR:
        return as == AS_KEY ? unpack_key(it.ptr, it.len)
                            : unpack_str(it.ptr, it.len);
    case PROTO_T_BIN:
        return PyBytes_FromStringAndSize(it.ptr, it.len);
    case PROTO_T_ARRAY:
        return unpack_array(u, it.len);
    case PROTO_T_MAP:
        return unpack_map(u, it.len);
    case PROTO_T_EXT:
        if (it.ext_type == PROTO_EXT_TIMESTAMP)
            return unpack_timestamp(it.ptr, it.len);
        if (it.ext_type == PROTO_EXT_BIGINT)
            return unpack_bigint(it.ptr, it.len);
        PyErr_Format(PyExc_ValueError, "unknown msgpack ext type %d",
                     (int)it.ext_type);
        return NULL;
    }
    return unpack_broken();
}

PyObject *
pyvalue_unpack(const char *data, size_t len)
{
    struct unpacker u;
    proto_cur_init(&u.cur, data, len);
    u.depth = 0;
    PyObject *r = unpack_item(&u, AS_VALUE);
    if (r != NULL && u.cur.p != u.cur.end) {
        Py_DECREF(r);
        PyErr_SetString(PyExc_ValueError,
                        "extra bytes after the msgpack value");
        return NULL;
    }
    return r;
}

int
pyvalue_init(void)
{
    PyDateTime_IMPORT;
    if (PyDateTimeAPI == NULL)
        return -1;
    epoch_aware = PyDateTimeAPI->DateTime_FromDateAndTime(
        1970, 1, 1, 0, 0, 0, 0, PyDateTime_TimeZone_UTC,
        PyDateTimeAPI->DateTimeType);
    epoch_naive = PyDateTime_FromDateAndTime(1970, 1, 1, 0, 0, 0, 0);
    str_to_bytes = PyUnicode_InternFromString("to_bytes");
    str_from_bytes = PyUnicode_InternFromString("from_bytes");
    str_big = PyUnicode_InternFromString("big");
    str_bit_length = PyUnicode_InternFromString("bit_length");
    str_utcoffset = PyUnicode_InternFromString("utcoffset");
    zero = PyLong_FromLong(0);
    if (epoch_aware == NULL || epoch_naive == NULL || str_to_bytes == NULL ||
        str_from_bytes == NULL || str_big == NULL || str_bit_length == NULL ||
        str_utcoffset == NULL || zero == NULL)
        return -1;
    return 0;
}
