/* Values, errors and their words: the small things every other file uses. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jshost_priv.h"

void
jshost_value_free(jshost_value *v)
{
    if (v == NULL)
        return;
    free(v->data);
    v->data = NULL;
    v->len = 0;
}

void
jshost_error_clear(jshost_error *e)
{
    if (e == NULL)
        return;
    free(e->type);
    free(e->message);
    free(e->name);
    free(e->stack);
    free(e->logfile);
    memset(e, 0, sizeof(*e));
}

void
jshost_reply_free(jshost_reply *r)
{
    if (r == NULL)
        return;
    jshost_value_free(&r->value);
    jshost_error_clear(&r->error);
}

const char *
jshost_version(void)
{
    return JSHOST_VERSION;
}

int
jshost__seterr(jshost *c, int err, const char *fmt, ...)
{
    va_list ap;

    if (c->priv != NULL)
        pthread_mutex_lock(&c->priv->errlock);
    jshost_error_clear(&c->remote);
    c->err = err;
    va_start(ap, fmt);
    vsnprintf(c->errstr, sizeof(c->errstr), fmt, ap);
    va_end(ap);
    if (c->priv != NULL)
        pthread_mutex_unlock(&c->priv->errlock);
    return -1;
}

void
jshost__remote_words(const jshost_error *e, char *buf, size_t len)
{
    snprintf(buf, len, "%s: %s", e->type ? e->type : "Error",
             e->message ? e->message : "(no message)");
}

int
jshost__setremote(jshost *c, jshost_error *e)
{
    if (c->priv != NULL)
        pthread_mutex_lock(&c->priv->errlock);
    jshost_error_clear(&c->remote);
    c->err = e->type != NULL && strcmp(e->type, "Cancelled") == 0
                 ? JSHOST_ERR_CANCELLED
                 : JSHOST_ERR_REMOTE;
    jshost__remote_words(e, c->errstr, sizeof(c->errstr));
    c->remote = *e;
    memset(e, 0, sizeof(*e));
    if (c->priv != NULL)
        pthread_mutex_unlock(&c->priv->errlock);
    return -1;
}

static int
dup_field(const msgpack_object *map, const char *key, char **out)
{
    const msgpack_object *o = proto_map_get(map, key);

    *out = NULL;
    if (o == NULL ||
        (o->type != MSGPACK_OBJECT_STR && o->type != MSGPACK_OBJECT_BIN))
        return 0;
    *out = proto_obj_strdup(o);
    return *out == NULL ? -ENOMEM : 0;
}

int
jshost__error_from_obj(const msgpack_object *o, jshost_error *e)
{
    memset(e, 0, sizeof(*e));
    if (o->type != MSGPACK_OBJECT_MAP) {
        /* Not the map docs/protocol.md asks for: keep what can be said. */
        e->type = strdup("ProtocolError");
        e->message = strdup("the server sent an error that is not a map");
        if (e->type == NULL || e->message == NULL) {
            jshost_error_clear(e);
            return -ENOMEM;
        }
        return 0;
    }
    if (dup_field(o, "type", &e->type) < 0 ||
        dup_field(o, "message", &e->message) < 0 ||
        dup_field(o, "name", &e->name) < 0 ||
        dup_field(o, "stack", &e->stack) < 0 ||
        dup_field(o, "logfile", &e->logfile) < 0) {
        jshost_error_clear(e);
        return -ENOMEM;
    }
    if (e->type == NULL && (e->type = strdup("ProtocolError")) == NULL) {
        jshost_error_clear(e);
        return -ENOMEM;
    }
    return 0;
}

bool
jshost__valid_value(const char *buf, size_t len, bool want_array, int max_depth)
{
    /* Items still due in each open container. */
    uint64_t due[PROTO_MAX_DEPTH + 1];
    struct proto_cur cur;
    struct proto_item it;
    int depth = 0;

    if (buf == NULL || len == 0 || max_depth > PROTO_MAX_DEPTH)
        return false;
    proto_cur_init(&cur, buf, len);
    for (;;) {
        if (proto_cur_next(&cur, &it) != 0)
            return false;
        if (depth == 0 && want_array && it.type != PROTO_T_ARRAY)
            return false;
        if ((it.type == PROTO_T_ARRAY || it.type == PROTO_T_MAP) &&
            it.len > 0) {
            if (depth == max_depth)
                return false;
            due[depth++] =
                it.type == PROTO_T_MAP ? (uint64_t)it.len * 2 : it.len;
            /* Every item takes a byte: more due than bytes left is a lie. */
            if (due[depth - 1] >
                (uint64_t)(len - (size_t)(cur.p - (const uint8_t *)buf)))
                return false;
            continue;
        }
        if ((it.type == PROTO_T_ARRAY || it.type == PROTO_T_MAP) &&
            depth == max_depth)
            return false;
        /* One item done: close every container it completes. */
        while (depth > 0 && --due[depth - 1] == 0)
            depth--;
        if (depth == 0)
            break;
    }
    return cur.p == cur.end;
}
