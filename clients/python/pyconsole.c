/*
 * pyconsole: the console lines of a Connection's contexts, kept from
 * libjshost's handler until a call of the Connection returns, then handed to
 * the console callable (set_console).
 */
#include "_jshost_priv.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* A console line of one of the connection's contexts, kept from libjshost's
 * handler (any thread, no GIL) until a call of the connection returns. */
struct pyconsole_line {
    struct pyconsole_line *next;
    unsigned long long ctx;
    char level[16];
    char *text;
    size_t len;
};

/* Lines kept at most between two calls; more are dropped (the log has them).
 */
#define CONSOLE_KEPT_MAX 10000

/* libjshost's console handler: keeps the line (no GIL here, and the handle's
 * lock is held, so Python cannot run now). */
void
pyconsole_cb(void *user, uint64_t ctx, const char *level, const char *text,
             size_t len)
{
    ConnObject *self = user;
    struct pyconsole_line *l;

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

void
pyconsole_free(struct pyconsole_line *l)
{
    while (l != NULL) {
        struct pyconsole_line *next = l->next;
        free(l->text);
        free(l);
        l = next;
    }
}

/* Hands the kept console lines to the console callable (GIL held), in
 * order; what it raises is reported as unraisable, never to the call. */
void
pyconsole_deliver(ConnObject *self)
{
    struct pyconsole_line *l, *next;
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

/* set_console(fn or None): fn(ctx, level, text) gets the console lines of
 * this connection's contexts, after each call of it returns. */
PyObject *
pyconsole_set(ConnObject *self, PyObject *fn)
{
    if (fn != Py_None && !PyCallable_Check(fn)) {
        PyErr_SetString(PyExc_TypeError, "console must be callable or None");
        return NULL;
    }
    Py_XSETREF(self->console, fn == Py_None ? NULL : Py_NewRef(fn));
    Py_RETURN_NONE;
}
