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
    if (PyFloat_Check(o))
        return msgpack_pack_double(pk, PyFloat_AS_DOUBLE(o)) == 0
                   ? 0
                   : pyvalue_nomem();
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
    return pack_fail(st, PyExc_TypeError, "cannot send a value of type", o);
}

void
pyvalue_pack_init(struct pyvalue_pack *st, const char *root)
{
    msgpack_sbuffer_init(&st->sb);
    msgpack_packer_init(&st->pk, &st->sb, msgpack_sbuffer_write);
    st->root = root;
    st->depth = 0;
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

static PyObject *unpack_obj(const msgpack_object *o);

static PyObject *
unpack_timestamp(const msgpack_object *o)
{
    char cause[PROTO_CAUSE_MAX];
    int64_t sec;
    uint32_t nsec;
    if (proto_ext_timestamp_decode(o->via.ext.ptr, o->via.ext.size, &sec, &nsec,
                                   cause) != 0) {
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
unpack_bigint(const msgpack_object *o)
{
    char cause[PROTO_CAUSE_MAX];
    size_t n = o->via.ext.size, len;
    bool neg;
    unsigned char *mag = PyMem_Malloc(n > 0 ? n : 1);
    if (mag == NULL)
        return PyErr_NoMemory();
    if (proto_ext_bigint_decode(o->via.ext.ptr, n, &neg, mag, &len, cause) !=
        0) {
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
        if (o->via.ext.type == PROTO_EXT_TIMESTAMP)
            return unpack_timestamp(o);
        if (o->via.ext.type == PROTO_EXT_BIGINT)
            return unpack_bigint(o);
        PyErr_Format(PyExc_ValueError, "unknown msgpack ext type %d",
                     (int)o->via.ext.type);
        return NULL;
    }
    PyErr_SetString(PyExc_ValueError, "unknown msgpack object");
    return NULL;
}

PyObject *
pyvalue_unpack(const char *data, size_t len)
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
