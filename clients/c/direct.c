/*
 * Direct calls (docs/protocol.md, "Direct connections"): a call of a host this
 * handle attached goes straight to one of the host's workers, on the socket
 * the worker listens on, instead of through the manager. Each worker
 * connection is an internal handle of its own (the same connection code as
 * the manager's), made on the first call that needs it; a call takes the one
 * with the fewest calls in flight. The manager still holds the host for us
 * and tells us where its workers are: attach's `direct`, and the `direct`
 * method once a worker drains or dies.
 *
 * What can happen to a direct call:
 * - the worker said `draining`: no new call goes there; the connection is
 *   closed once its calls are answered, and the sockets are asked for again;
 * - nothing of the request was written (the socket was already gone): it goes
 *   to another worker, or through the manager;
 * - the connection ended with the request written and no answer: the worker
 *   died, and the call is answered HostCrashed with the host's log file.
 *
 * Everything here is guarded by priv->dlock, never held across a call.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "jshost_priv.h"

/* One worker's socket and our connection to it (h NULL until first used). */
struct jshost__direct {
    char *path;
    jshost *h;
    unsigned active; /* calls on it now */
    bool gone;       /* not named by the manager any more, or broken */
};

/* How soon a host with no worker ready is asked about again. */
#define DHOST_ASK_AGAIN_MS 200

/* A host this handle attached, as far as direct calls go. */
struct jshost__dhost {
    struct jshost__dhost *next;
    char *host;    /* the id attach answered */
    char *config;  /* the path it was attached by */
    char *logfile; /* for HostCrashed */
    uint64_t timeout_ms;
    bool held;       /* detached: its calls go through the manager */
    bool stale;      /* ask the manager where the workers are */
    int64_t ask_at;  /* ...not before then (jshost__now_ms) */
    bool refreshing; /* a thread is asking */
    /* Each its own allocation: a call holds its connection's pointer while
     * dlock is not held, so the array may move but not what it points to. */
    struct jshost__direct **conns;
    size_t nconns;
};

static void
direct_close(struct jshost__direct *d)
{
    jshost_free(d->h);
    d->h = NULL;
}

/* Drops connections nobody uses that are gone or draining; says whether
 * the host needs asking again. */
static void
dhost_sweep(struct jshost__dhost *dh)
{
    size_t i, j;

    for (i = 0; i < dh->nconns; i++) {
        struct jshost__direct *d = dh->conns[i];

        if (d->h != NULL &&
            (d->h->priv->fd < 0 || atomic_load(&d->h->priv->draining))) {
            d->gone = true;
            dh->stale = true;
        }
        if (d->gone && d->active == 0)
            direct_close(d);
    }
    /* A gone one with no call on it was closed above: it goes. */
    for (i = j = 0; i < dh->nconns; i++) {
        if (dh->conns[i]->gone && dh->conns[i]->h == NULL) {
            free(dh->conns[i]->path);
            free(dh->conns[i]);
        } else {
            dh->conns[j++] = dh->conns[i];
        }
    }
    dh->nconns = j;
}

/* Takes the sockets of a reply ({"direct": [...], "timeout_ms", "logfile"})
 * as the host's: new ones are added, ones no longer named are gone. */
static void
dhost_learn(struct jshost__dhost *dh, const msgpack_object *reply)
{
    const msgpack_object *dir = proto_map_get(reply, "direct");
    const msgpack_object *tmo = proto_map_get(reply, "timeout_ms");
    const msgpack_object *log = proto_map_get(reply, "logfile");
    struct jshost__direct **more, *d;
    size_t i, k;

    if (tmo != NULL && tmo->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
        dh->timeout_ms = tmo->via.u64;
    if (log != NULL && log->type == MSGPACK_OBJECT_STR) {
        char *s = proto_obj_strdup(log);

        if (s != NULL) {
            free(dh->logfile);
            dh->logfile = s;
        }
    }
    if (dir == NULL || dir->type != MSGPACK_OBJECT_ARRAY)
        return;
    for (i = 0; i < dh->nconns; i++) {
        bool named = false;

        for (k = 0; k < dir->via.array.size; k++)
            named = named ||
                    proto_obj_streq(&dir->via.array.ptr[k], dh->conns[i]->path);
        if (!named)
            dh->conns[i]->gone = true;
    }
    for (k = 0; k < dir->via.array.size; k++) {
        const msgpack_object *o = &dir->via.array.ptr[k];
        bool known = false;
        char *path;

        for (i = 0; i < dh->nconns; i++)
            known = known || (!dh->conns[i]->gone &&
                              proto_obj_streq(o, dh->conns[i]->path));
        if (known || (path = proto_obj_strdup(o)) == NULL)
            continue;
        more = realloc(dh->conns, (dh->nconns + 1) * sizeof(*more));
        if (more != NULL)
            dh->conns = more;
        if (more == NULL || (d = calloc(1, sizeof(*d))) == NULL) {
            free(path);
            continue;
        }
        d->path = path;
        dh->conns[dh->nconns++] = d;
    }
    /* None ready yet (a host starting, or starting again after the manager
     * did): its calls go through the manager, which is asked again a little
     * later rather than on every call. */
    dh->stale = dh->nconns == 0;
    dh->ask_at = dh->stale ? jshost__now_ms() + DHOST_ASK_AGAIN_MS : 0;
    dhost_sweep(dh);
}

static struct jshost__dhost *
dhost_find(jshost_priv *p, const char *host, size_t len)
{
    struct jshost__dhost *dh;

    for (dh = p->dhosts; dh != NULL; dh = dh->next) {
        if ((strlen(dh->host) == len && memcmp(dh->host, host, len) == 0) ||
            (strlen(dh->config) == len && memcmp(dh->config, host, len) == 0))
            return dh;
    }
    return NULL;
}

void
jshost__direct_attached(jshost *c, const char *host, const char *config,
                        const msgpack_object *reply)
{
    jshost_priv *p = c->priv;
    struct jshost__dhost *dh;

    pthread_mutex_lock(&p->dlock);
    dh = dhost_find(p, host, strlen(host));
    if (dh == NULL && (dh = calloc(1, sizeof(*dh))) != NULL) {
        dh->host = strdup(host);
        dh->config = strdup(config);
        if (dh->host == NULL || dh->config == NULL) {
            free(dh->host);
            free(dh->config);
            free(dh);
            dh = NULL;
        } else {
            dh->next = p->dhosts;
            p->dhosts = dh;
        }
    }
    if (dh != NULL) {
        dh->held = true;
        dhost_learn(dh, reply);
    }
    pthread_mutex_unlock(&p->dlock);
}

void
jshost__direct_detached(jshost *c, const char *host)
{
    jshost_priv *p = c->priv;
    struct jshost__dhost *dh;

    pthread_mutex_lock(&p->dlock);
    dh = dhost_find(p, host, strlen(host));
    if (dh != NULL) {
        dh->held = false;
        for (size_t i = 0; i < dh->nconns; i++)
            dh->conns[i]->gone = true;
        dhost_sweep(dh);
    }
    pthread_mutex_unlock(&p->dlock);
}

/* The host a call's params name: their first item, a str (the params'
 * first bytes may be spread over the pieces of the request). */
static bool
call_host(const struct iovec *parts, int nparts, char *buf, size_t cap,
          const char **host, size_t *len)
{
    struct proto_cur cur;
    struct proto_item it;
    size_t n = 0;

    for (int i = 0; i < nparts && n < cap; i++) {
        size_t take = parts[i].iov_len < cap - n ? parts[i].iov_len : cap - n;

        memcpy(buf + n, parts[i].iov_base, take);
        n += take;
    }
    proto_cur_init(&cur, buf, n);
    if (proto_cur_next(&cur, &it) != 0 || it.type != PROTO_T_ARRAY ||
        it.len < 1 || proto_cur_next(&cur, &it) != 0 || it.type != PROTO_T_STR)
        return false;
    *host = it.ptr;
    *len = it.len;
    return true;
}

/* Asks the manager where the host's workers are now (once at a time). */
static void
dhost_refresh(jshost *c, struct jshost__dhost *dh)
{
    jshost_priv *p = c->priv;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    jshost_value v = {0};
    msgpack_unpacked u;
    char *host = strdup(dh->host);
    int r, code;

    dh->refreshing = true;
    pthread_mutex_unlock(&p->dlock);
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 1);
    proto_pack_cstr(&pk, host != NULL ? host : "");
    /* Its own error slots: a failure here is not the caller's. */
    r = jshost_request(c, "direct", sb.data, sb.size, 0, &v, &code, NULL, NULL,
                       0);
    msgpack_sbuffer_destroy(&sb);
    free(host);
    pthread_mutex_lock(&p->dlock);
    dh->refreshing = false;
    if (r != 0)
        return; /* calls go through the manager; asked again next time */
    msgpack_unpacked_init(&u);
    if (msgpack_unpack_next(&u, v.data, v.len, NULL) == MSGPACK_UNPACK_SUCCESS)
        dhost_learn(dh, &u.data);
    msgpack_unpacked_destroy(&u);
    jshost_value_free(&v);
}

/* A worker's connection answers invokes and heeds interrupts as its parent
 * handle does: the calls it carries are the parent's. Takes p->lock (after
 * dlock, never the other way round). */
static void
direct_inherit(jshost_priv *p, jshost *h)
{
    jshost_invoke_fn invoke_fn;
    jshost_interrupt_fn interrupt_fn;
    void *invoke_user, *interrupt_user;

    pthread_mutex_lock(&p->lock);
    invoke_fn = p->invoke_fn;
    invoke_user = p->invoke_user;
    interrupt_fn = p->interrupt_fn;
    interrupt_user = p->interrupt_user;
    pthread_mutex_unlock(&p->lock);
    jshost_set_invoke_handler(h, invoke_fn, invoke_user);
    jshost_set_interrupt_check(h, interrupt_fn, interrupt_user);
}

void
jshost__direct_inherit_all(jshost_priv *p)
{
    pthread_mutex_lock(&p->dlock);
    for (struct jshost__dhost *dh = p->dhosts; dh != NULL; dh = dh->next) {
        for (size_t i = 0; i < dh->nconns; i++) {
            if (dh->conns[i]->h != NULL)
                direct_inherit(p, dh->conns[i]->h);
        }
    }
    pthread_mutex_unlock(&p->dlock);
}

/* The connection with the fewest calls in flight, connected if need be;
 * NULL when none takes calls. */
static struct jshost__direct *
dhost_pick(jshost *c, struct jshost__dhost *dh)
{
    jshost_priv *p = c->priv;
    struct jshost__direct *best = NULL;
    struct jshost_options o;

    for (size_t i = 0; i < dh->nconns; i++) {
        struct jshost__direct *d = dh->conns[i];

        if (d->gone || (d->h != NULL && atomic_load(&d->h->priv->draining)))
            continue;
        if (d->h == NULL) {
            jshost_options_init(&o);
            o.socket = d->path;
            o.spawn = 0;
            o.direct = 0;
            o.client_name = p->client_name;
            o.connect_timeout_ms = 2000;
            d->h = jshost_connect(&o);
            if (d->h == NULL || d->h->err != 0) {
                /* Its worker went meanwhile: the manager knows better. */
                direct_close(d);
                d->gone = true;
                dh->stale = true;
                continue;
            }
            d->h->priv->direct_conn = true;
            direct_inherit(p, d->h);
        }
        if (best == NULL || d->active < best->active)
            best = d;
    }
    return best;
}

/*
 * How the worker behind path ended, in the manager's words ("worker N killed
 * by signal 9 (SIGKILL)"), into buf: the manager knows once it has reaped
 * it, which is about when its socket closed; asked for up to a second.
 */
static bool
dhost_exit_words(jshost *c, struct jshost__dhost *dh, const char *path,
                 char *buf, size_t len)
{
    const struct timespec pause = {0, 50 * 1000 * 1000};
    msgpack_sbuffer sb;
    msgpack_packer pk;
    bool found = false;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 1);
    proto_pack_cstr(&pk, dh->host);
    for (int tries = 0; tries < 20 && !found; tries++) {
        jshost_value v = {0};
        msgpack_unpacked u;
        const msgpack_object *exits, *w;
        int code;

        if (tries > 0)
            nanosleep(&pause, NULL);
        if (jshost_request(c, "direct", sb.data, sb.size, 0, &v, &code, NULL,
                           NULL, 0) != 0)
            break;
        msgpack_unpacked_init(&u);
        if (msgpack_unpack_next(&u, v.data, v.len, NULL) ==
                MSGPACK_UNPACK_SUCCESS &&
            (exits = proto_map_get(&u.data, "exits")) != NULL &&
            (w = proto_map_get(exits, path)) != NULL &&
            w->type == MSGPACK_OBJECT_STR) {
            snprintf(buf, len, "%.*s", (int)w->via.str.size, w->via.str.ptr);
            found = true;
        }
        msgpack_unpacked_destroy(&u);
        jshost_value_free(&v);
    }
    msgpack_sbuffer_destroy(&sb);
    return found;
}

/* The error of a direct call moves from the worker connection's sink to the
 * caller's; a call cut short by the worker's end is HostCrashed, in the
 * words the manager would have used. */
static int
direct_error(jshost *c, jshost *eo, jshost *sink, struct jshost__dhost *dh,
             const char *path, bool crashed)
{
    if (crashed) {
        jshost_error e;
        char words[256];

        memset(&e, 0, sizeof(e));
        e.type = strdup("HostCrashed");
        if (!dhost_exit_words(c, dh, path, words, sizeof(words)))
            snprintf(words, sizeof(words),
                     "worker at %.100s closed its connection with the call "
                     "in flight (%.80s)",
                     path, sink->errstr);
        if (asprintf(&e.message, "%s; see %s", words,
                     dh->logfile ? dh->logfile : "its log") < 0)
            e.message = NULL;
        e.logfile = dh->logfile ? strdup(dh->logfile) : NULL;
        jshost_error_clear(&sink->remote);
        if (e.type == NULL || e.message == NULL)
            return jshost__seterr(eo, JSHOST_ERR_OOM, "out of memory");
        return jshost__setremote(eo, &e);
    }
    /* The server's own error (Cancelled among them) as it came. */
    if (sink->err == JSHOST_ERR_REMOTE ||
        (sink->err == JSHOST_ERR_CANCELLED && sink->remote.type != NULL))
        return jshost__setremote(eo, &sink->remote);
    return jshost__seterr(eo, sink->err, "%s", sink->errstr);
}

int
jshost__direct_call(jshost *c, jshost *eo, const struct iovec *parts,
                    int nparts, int64_t *wait_ms, char *buf, size_t cap,
                    jshost_value *result)
{
    jshost_priv *p = c->priv;
    struct jshost__dhost *dh;
    struct jshost__direct *d;
    const char *host;
    size_t len;
    char head[600], *path;
    jshost sink;
    int r;

    if (p->dhosts == NULL ||
        !call_host(parts, nparts, head, sizeof(head), &host, &len))
        return 1;
    pthread_mutex_lock(&p->dlock);
    dh = dhost_find(p, host, len);
    if (dh == NULL || !dh->held) {
        pthread_mutex_unlock(&p->dlock);
        return 1;
    }
    /* A call on the host's default deadline: the client's guard is that
     * deadline plus the margin, here as through the manager. */
    if (*wait_ms == JSHOST__WAIT_HOST && dh->timeout_ms > 0)
        *wait_ms = (int64_t)dh->timeout_ms + JSHOST__MARGIN_MS;
    if (!p->direct) {
        pthread_mutex_unlock(&p->dlock);
        return 1;
    }
    for (int tries = 0; tries < 3; tries++) {
        dhost_sweep(dh);
        if (dh->stale && !dh->refreshing &&
            (dh->ask_at == 0 || jshost__now_ms() >= dh->ask_at))
            dhost_refresh(c, dh);
        if ((d = dhost_pick(c, dh)) == NULL)
            break;
        d->active++;
        pthread_mutex_unlock(&p->dlock);
        jshost__sink_init(&sink, d->h->priv);
        r = jshost__request(d->h, &sink, "call", parts, nparts,
                            *wait_ms == JSHOST__WAIT_HOST
                                ? JSHOST__JS_DEFAULT_WAIT_MS
                                : *wait_ms,
                            buf, cap, result);
        pthread_mutex_lock(&p->dlock);
        d->active--;
        if (r == JSHOST__UNSENT) {
            /* Nothing of it left: another worker, or the manager, may
             * take it. */
            d->gone = true;
            dh->stale = true;
            continue;
        }
        path = r == 0 ? NULL : strdup(d->path);
        dhost_sweep(dh);
        pthread_mutex_unlock(&p->dlock);
        if (r == 0)
            return 0;
        r = direct_error(c, eo, &sink, dh, path != NULL ? path : "?",
                         sink.err == JSHOST_ERR_IO &&
                             strstr(sink.errstr, "connection lost") != NULL);
        free(path);
        jshost_error_clear(&sink.remote);
        return r;
    }
    pthread_mutex_unlock(&p->dlock);
    return 1;
}

void
jshost__direct_free(jshost_priv *p)
{
    struct jshost__dhost *dh, *next;

    for (dh = p->dhosts; dh != NULL; dh = next) {
        next = dh->next;
        for (size_t i = 0; i < dh->nconns; i++) {
            jshost_free(dh->conns[i]->h);
            free(dh->conns[i]->path);
            free(dh->conns[i]);
        }
        free(dh->conns);
        free(dh->host);
        free(dh->config);
        free(dh->logfile);
        free(dh);
    }
    p->dhosts = NULL;
}

void
jshost__direct_after_fork(jshost_priv *p)
{
    struct jshost__dhost *dh;

    /* A thread of the parent may have held it, or been in a call: the
     * connections are the parent's; each handle drops its socket when next
     * entered, and the manager is asked again. */
    pthread_mutex_init(&p->dlock, NULL);
    for (dh = p->dhosts; dh != NULL; dh = dh->next) {
        dh->refreshing = false;
        dh->stale = true;
        for (size_t i = 0; i < dh->nconns; i++) {
            dh->conns[i]->active = 0;
            dh->conns[i]->gone = true;
        }
    }
}
