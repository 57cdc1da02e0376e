/*
 * The _jshost extension's insides, shared by its files; private to the
 * jshost package, as everything in the extension is. The Python modules
 * beside it (jshost/, js_host/, v8cffi/) hold the public API.
 *
 *   _jshost.c     the module: its types, pack/unpack, the setters jshost's
 *                 Python modules call once at import
 *   pyconn.c      the Connection type: one libjshost handle, its life, the
 *                 fork check, and the one request path (blocking calls,
 *                 GIL released)
 *   pycallable.c  JavaScript calling Python: callables (ext 2), the invoke
 *                 queue and the Invoke type, serve() and wake()
 *   pypipeline.c  the Connection's pipelined interface (jshost.aio's)
 *   pyconsole.c   console lines, kept until a call returns
 *   pyhost.c      HostBase, jshost.Host's C half: call(), the hot path
 *   pyerror.c     libjshost's failures as jshost.errors' exceptions
 *   pyvalue.c     values to msgpack and back (docs/values.md)
 *
 * A call goes: HostBase.call (pyhost.c) -> pyconn_call_data -> its request
 * path (pyconn.c: params packed into room kept on the Connection, sent with
 * the GIL released by jshost__request_into) -> the result unpacked
 * (pyvalue_unpack), or pyconn_call_fail -> pyerror_raise.
 */
#ifndef JSHOST_PY_JSHOST_PRIV_H
#define JSHOST_PY_JSHOST_PRIV_H

#include "pyvalue.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/types.h>

#include "jshost.h"
/* jshost__request_into: this extension links libjshost statically. */
#include "jshost_priv.h"

struct pycallable_invoke; /* pycallable.c's */
struct pyconsole_line;    /* pyconsole.c's */

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
    struct pyconsole_line *console_head, *console_tail;
    size_t console_kept;
    PyObject *console; /* (ctx, level, text), or NULL */
    int console_made;  /* conn_init made console_mu */
    /* Room for calls' request and result bytes, kept between calls (taken
     * and given back under the GIL; a call in flight owns what it took). */
    int nrooms;
    struct pyconn_room {
        char *data;
        size_t cap;
    } rooms[8];
    struct pyconn_room big[2]; /* rooms past ROOM_KEEP (pyconn.c) */
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
    struct pycallable_invoke *inv_head, *inv_tail;
} ConnObject;

/* One call of a Connection: what libjshost answered, taken without the GIL
 * and turned into a value or an exception once the GIL is back. */
struct pyconn_call {
    int rc;
    int code;
    jshost_error err;
    char errstr[512];
    jshost_value value;
};

/* Types --------------------------------------------------------------------
 */

extern PyTypeObject pyconn_type;            /* Connection */
extern PyTypeObject pycallable_invoke_type; /* Invoke */
extern PyTypeObject pyhost_type;            /* HostBase */

/* pyconn.c ----------------------------------------------------------------- */

/* Bumped in the child of every fork(): a Connection made at another count
 * belongs to a parent. */
extern unsigned pyconn_fork_gen;
/* Registers the fork handler (once). 0, or -1 with an exception. */
int pyconn_watch_fork(void);
/* In a forked child, drops the parent's locks, invokes and console lines. */
void pyconn_check_fork(ConnObject *self);
/* Takes the handle for one call (GIL held); NULL with an exception if
 * closed. Every pyconn_enter is followed by one pyconn_leave, which hands
 * out the console lines and frees a handle closed meanwhile. */
jshost *pyconn_enter(ConnObject *self);
void pyconn_leave(ConnObject *self);
/* A call's outcome record: made empty, filled with c's error (taken under
 * mu), raised as an exception (returns NULL). */
void pyconn_call_init(struct pyconn_call *r);
void pyconn_call_take_err(jshost *c, struct pyconn_call *r);
PyObject *pyconn_call_fail(struct pyconn_call *r);
/* A host's function call, the one path HostBase.call and call() share. */
PyObject *pyconn_call_data(ConnObject *self, const char *host,
                           Py_ssize_t host_len, const char *fn,
                           Py_ssize_t fn_len, PyObject *data, int timeout_ms);

/* pycallable.c ------------------------------------------------------------- */

/* threading.main_thread()'s ident (set by _set_callable_type): the only
 * thread whose blocking calls Ctrl-C interrupts. */
extern unsigned long pycallable_main_thread;
void pycallable_invokes_free(struct pycallable_invoke *inv);
/* libjshost's invoke handler (no GIL). */
void pycallable_invoke_cb(jshost *c, uint32_t rid, uint32_t callback_id,
                          const char *args, size_t len, void *user);
/* pyvalue's callable hook for a Connection's values (st->owner). */
int pycallable_id(struct pyvalue_pack *st, PyObject *o, uint32_t *id);
/* Forgets the callback ids in the list `ids` here (GIL held). */
void pycallable_forget(ConnObject *self, PyObject *ids);
/* Withdraws the callback ids in the list `ids` on the server. 0, or -1 with
 * an exception. */
int pycallable_release_ids(ConnObject *self, PyObject *ids);
/* Connection methods. */
PyObject *pycallable_register(ConnObject *self, PyObject *fn);
PyObject *pycallable_unregister(ConnObject *self, PyObject *ids);
PyObject *pycallable_lookup(ConnObject *self, PyObject *id);
PyObject *pycallable_release(ConnObject *self, PyObject *ids);
PyObject *pycallable_set_on_callable(ConnObject *self, PyObject *fn);
PyObject *pycallable_next_invoke(ConnObject *self, PyObject *arg);
PyObject *pycallable_take_invokes(ConnObject *self, PyObject *unused);
PyObject *pycallable_serve(ConnObject *self, PyObject *arg);
PyObject *pycallable_wake(ConnObject *self, PyObject *unused);
/* _jshost._set_callable_type(PyFunction, main_thread_ident) */
PyObject *pycallable_set_type(PyObject *self, PyObject *args);

/* pypipeline.c: Connection methods ----------------------------------------- */

PyObject *pypipeline_send(ConnObject *self, PyObject *args);
PyObject *pypipeline_read(ConnObject *self, PyObject *unused);
PyObject *pypipeline_fileno(ConnObject *self, PyObject *unused);
PyObject *pypipeline_pending_write(ConnObject *self, PyObject *unused);
PyObject *pypipeline_flush(ConnObject *self, PyObject *unused);
PyObject *pypipeline_cancel(ConnObject *self, PyObject *arg);

/* pyconsole.c -------------------------------------------------------------- */

/* libjshost's console handler (no GIL): keeps the line. */
void pyconsole_cb(void *user, uint64_t ctx, const char *level, const char *text,
                  size_t len);
void pyconsole_free(struct pyconsole_line *l);
/* Hands the kept lines to the console callable (GIL held). */
void pyconsole_deliver(ConnObject *self);
/* Connection.set_console */
PyObject *pyconsole_set(ConnObject *self, PyObject *fn);

/* pyhost.c ----------------------------------------------------------------- */

/* Once, at module init. 0, or -1 with an exception. */
int pyhost_init(void);
/* A timeout= in seconds (None: the host's default, 0) as libjshost's ms. 0,
 * or -1 with an exception. */
int pyhost_timeout_ms(PyObject *t, int *ms);

/* pyerror.c ---------------------------------------------------------------- */

/* Raises what jshost.errors makes of (code, errstr, remote error); returns
 * NULL. */
PyObject *pyerror_raise(int code, const char *errstr, const jshost_error *e);
/* An error reply as the exception it stands for (not raised). */
PyObject *pyerror_of_reply(const jshost_error *e);
/* _jshost._set_error_factory(fn) */
PyObject *pyerror_set_factory(PyObject *self, PyObject *fn);

#endif
