/*
 * pyvalue: Python values to msgpack bytes and back, directly (no JSON, no
 * intermediate objects), as jshost sends and returns them (docs/values.md).
 * The ext types' bytes are proto/ext.h's. Private to the _jshost extension.
 */
#ifndef JSHOST_PYVALUE_H
#define JSHOST_PYVALUE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <msgpack.h>

/* The depth the whole path can carry. msgpack-c's reader stops at 32 levels
 * and the request wraps the value in one more array, so 30 leaves room; a
 * cycle is caught by the same limit (docs/values.md). */
#define PYVALUE_MAX_DEPTH 30

struct pyvalue_seg {
    PyObject *key; /* a str key (borrowed, kept alive by the caller), or NULL */
    Py_ssize_t index;
};

/* A request's params being packed: the bytes, and where in the value the
 * conversion is, so that a refusal names the place ("data['a'][3]"). */
struct pyvalue_pack {
    msgpack_sbuffer sb;
    msgpack_packer pk;
    const char *root; /* "data", "args": how the path starts */
    int depth;
    /* Callables (ext 2): NULL refuses them as any other type; else it gives
     * each one's callback id (0, or -1 with an exception set). `owner` and
     * `temps` are the callback's: whose ids, and those made for this value
     * alone. */
    int (*callable)(struct pyvalue_pack *st, PyObject *o, uint32_t *id);
    void *owner;
    PyObject *temps;
    struct pyvalue_seg path[PYVALUE_MAX_DEPTH + 1];
};

/* Once, at module init: the datetime API and the names used. -1 with an
 * exception set. */
int pyvalue_init(void);

/* An empty buffer whose refusals name `root`; destroy st->sb when done. */
void pyvalue_pack_init(struct pyvalue_pack *st, const char *root);
/* Packs o, appended to st, its refusals naming `root`. 0, or -1 with a Python
 * exception set (TypeError / ValueError naming the type and the place). */
int pyvalue_pack(struct pyvalue_pack *st, PyObject *o, const char *root);
/* Raises MemoryError; returns -1. */
int pyvalue_nomem(void);

/* Exactly one msgpack value in data[0..len) as a Python object; NULL with a
 * ValueError when the bytes are not one value jshost can return. */
PyObject *pyvalue_unpack(const char *data, size_t len);

#endif
