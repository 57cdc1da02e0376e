/*
 * pyerror: libjshost's failures as the exceptions jshost.errors makes of them
 * (its error factory, set once at import).
 */
#include "_jshost_priv.h"

#include <string.h>

static PyObject *error_factory; /* set by jshost.errors */

static PyObject *
opt_str(const char *s)
{
    if (s == NULL)
        Py_RETURN_NONE;
    return PyUnicode_DecodeUTF8(s, (Py_ssize_t)strlen(s), "replace");
}

/* Raises what jshost.errors makes of (code, errstr, remote error); returns
 * NULL. */
PyObject *
pyerror_raise(int code, const char *errstr, const jshost_error *e)
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

/* An error reply as the exception it stands for (not raised). */
PyObject *
pyerror_of_reply(const jshost_error *e)
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

PyObject *
pyerror_set_factory(PyObject *self, PyObject *fn)
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
