/*
 * pypipeline: the Connection's pipelined interface, jshost.aio's: requests
 * sent without waiting, replies read as they come, the socket to watch.
 */
#include "_jshost_priv.h"

#include <string.h>

/* send(method, params: list) -> (msgid, temps): a pipelined request (the
 * event loop's); temps lists the callables made for it (forget them once
 * it is answered) or is None */
PyObject *
pypipeline_send(ConnObject *self, PyObject *args)
{
    const char *method;
    PyObject *params, *ret = NULL;
    struct pyvalue_pack st;
    uint32_t msgid = 0;
    struct pyconn_call r;
    jshost *c;

    if (!PyArg_ParseTuple(args, "sO!:send", &method, &PyList_Type, &params))
        return NULL;
    pyvalue_pack_init(&st, "params");
    st.callable = pycallable_id;
    st.owner = self;
    if (pyvalue_pack(&st, params, "params") < 0)
        goto out;
    if ((c = pyconn_enter(self)) == NULL)
        goto out;
    pyconn_call_init(&r);
    /* Only writes (a reconnect aside): the GIL is kept. */
    r.rc = jshost_send(c, method, st.sb.data, st.sb.size, &msgid);
    if (r.rc != 0)
        pyconn_call_take_err(c, &r);
    pyconn_leave(self);
    if (r.rc != 0) {
        pyconn_call_fail(&r);
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
        pycallable_forget(self, st.temps);
        Py_CLEAR(st.temps);
        PyErr_Restore(type, value, tb);
    }
    msgpack_sbuffer_destroy(&st.sb);
    return ret;
}

/* read() -> [(msgid, ok, value or exception)]: the replies there are now,
 * without waiting (the invokes read meanwhile wait in take_invokes()) */
PyObject *
pypipeline_read(ConnObject *self, PyObject *unused)
{
    PyObject *list, *item, *v;
    jshost_reply reply;
    struct pyconn_call r;
    jshost *c;
    int got, ok;

    (void)unused;
    if ((list = PyList_New(0)) == NULL)
        return NULL;
    if ((c = pyconn_enter(self)) == NULL) {
        Py_DECREF(list);
        return NULL;
    }
    for (;;) {
        pyconn_call_init(&r);
        /* Never waits (timeout 0): the GIL is kept. */
        got = jshost_read(c, &reply, 0);
        if (got <= 0) {
            if (got < 0) {
                pyconn_call_take_err(c, &r);
                r.rc = -1;
            }
            break;
        }
        ok = reply.ok;
        v = ok ? pyvalue_unpack(reply.value.data, reply.value.len)
               : pyerror_of_reply(&reply.error);
        if (v == NULL) {
            /* a result that does not unpack fails its own call */
            PyObject *type, *value, *tb;

            PyErr_Fetch(&type, &value, &tb);
            PyErr_NormalizeException(&type, &value, &tb);
            if (value == NULL) {
                Py_XDECREF(type);
                Py_XDECREF(tb);
                jshost_reply_free(&reply);
                pyconn_leave(self);
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
            pyconn_leave(self);
            Py_DECREF(list);
            return NULL;
        }
        Py_DECREF(item);
    }
    pyconn_leave(self);
    if (r.rc != 0 && PyList_GET_SIZE(list) == 0) {
        Py_DECREF(list);
        return pyconn_call_fail(&r);
    }
    jshost_error_clear(&r.err);
    return list;
}

/* fileno() -> the socket to watch (-1 when not connected) */
PyObject *
pypipeline_fileno(ConnObject *self, PyObject *unused)
{
    (void)unused;
    return PyLong_FromLong(
        self->c != NULL && !self->closing ? jshost_fd(self->c) : -1);
}

/* pending_write() -> bytes queued and not yet written */
PyObject *
pypipeline_pending_write(ConnObject *self, PyObject *unused)
{
    (void)unused;
    return PyLong_FromSize_t(self->c != NULL ? jshost_pending_write(self->c)
                                             : 0);
}

/* The end of a method whose libjshost call on c (entered, GIL kept)
 * returned rc: its error taken while c is still ours, then None or the
 * exception. */
static PyObject *
pypipeline_leave_none(ConnObject *self, jshost *c, int rc)
{
    struct pyconn_call r;

    pyconn_call_init(&r);
    r.rc = rc;
    if (r.rc != 0)
        pyconn_call_take_err(c, &r);
    pyconn_leave(self);
    if (r.rc != 0)
        return pyconn_call_fail(&r);
    Py_RETURN_NONE;
}

/* flush(): writes what the socket takes of what send() queued */
PyObject *
pypipeline_flush(ConnObject *self, PyObject *unused)
{
    jshost *c;

    (void)unused;
    if ((c = pyconn_enter(self)) == NULL)
        return NULL;
    return pypipeline_leave_none(self, c, jshost_flush(c));
}

/* cancel(msgid): the server stops that request (answered Cancelled) */
PyObject *
pypipeline_cancel(ConnObject *self, PyObject *arg)
{
    unsigned long msgid = PyLong_AsUnsignedLong(arg);
    jshost *c;

    if (msgid == (unsigned long)-1 && PyErr_Occurred())
        return NULL;
    if ((c = pyconn_enter(self)) == NULL)
        return NULL;
    return pypipeline_leave_none(self, c, jshost_cancel(c, (uint32_t)msgid));
}
