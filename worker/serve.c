/*
 * serve: the worker's server (docs/protocol.md). Either the one inherited
 * connection of a manager (--fd) or every client accepted on a listening
 * socket (--listen); the ready and config_error notifications; the exit of a
 * worker that hit its heap limit once every reply owed is written.
 * Connections are serve_conn.c's, the methods serve_method.c's.
 */
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "jshost_defs.h"
#include "log.h"
#include "methods.h"
#include "rundir.h"
#include "serve_internal.h"
#include "unixsock.h"
#include "xmalloc.h"

/* How long a doomed worker waits for its replies to drain before exiting anyway
 * (a peer that stopped reading must not keep a recycled worker alive). */
#define SERVE_DOOM_GRACE_MS 5000

void
serve__request_exit(struct serve *s, int status)
{
    if (s->exit_requested || s->closing)
        return;
    s->exit_requested = true;
    s->on_exit(s->arg, status);
}

/* ---- deferred work ------------------------------------------------------ */

static void
serve_reap_cb(uv_timer_t *t)
{
    struct serve *s = t->data;

    for (size_t i = 0; i < s->ndead; i++)
        js_context_destroy(s->engine, s->dead_contexts[i]);
    s->ndead = 0;
    /* Each failure runs JS, which may close (and list) more. */
    while (s->ndead_peers > 0)
        js_invoke_fail_peer(s->engine, s->dead_peers[--s->ndead_peers],
                            "callback expired: its client closed the "
                            "connection");
}

void
serve__reap_peer(struct serve *s, uint64_t peer)
{
    if (s->ndead_peers == s->dead_peers_cap) {
        s->dead_peers_cap = s->dead_peers_cap ? s->dead_peers_cap * 2 : 16;
        s->dead_peers =
            xrealloc(s->dead_peers, s->dead_peers_cap * sizeof(uint64_t));
    }
    s->dead_peers[s->ndead_peers++] = peer;
    uv_timer_start(&s->reap_timer, serve_reap_cb, 0, 0);
}

void
serve__reap_contexts(struct serve *s, const uint32_t *ids, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (s->ndead == s->dead_cap) {
            s->dead_cap = s->dead_cap ? s->dead_cap * 2 : 16;
            s->dead_contexts =
                xrealloc(s->dead_contexts, s->dead_cap * sizeof(uint32_t));
        }
        s->dead_contexts[s->ndead++] = ids[i];
    }
    uv_timer_start(&s->reap_timer, serve_reap_cb, 0, 0);
}

static void
serve_resume_cb(uv_timer_t *t)
{
    struct serve *s = t->data;

    for (struct serve_conn *c = s->conns; c != NULL; c = c->next)
        serve_conn_maybe_resume(c);
}

void
serve__resume_later(struct serve *s)
{
    uv_timer_start(&s->resume_timer, serve_resume_cb, 0, 0);
}

/* ---- figures ------------------------------------------------------------ */

void
serve__record_latency(struct serve *s, uint64_t start_ns)
{
    uint64_t us = (uv_hrtime() - start_ns) / 1000;

    s->lat_us[s->latpos] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
    s->latpos = (s->latpos + 1) % SERVE_LATENCY_RING;
    if (s->nlat < SERVE_LATENCY_RING)
        s->nlat++;
}

static int
cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

    return x < y ? -1 : x > y;
}

void
serve__latency(const struct serve *s, double *p50_ms, double *p99_ms)
{
    uint32_t v[SERVE_LATENCY_RING];
    unsigned n = s->nlat;

    *p50_ms = *p99_ms = 0;
    if (n == 0)
        return;
    memcpy(v, s->lat_us, n * sizeof v[0]);
    qsort(v, n, sizeof v[0], cmp_u32);
    *p50_ms = v[(n - 1) / 2] / 1000.0;
    *p99_ms = v[(n * 99 + 99) / 100 - 1] / 1000.0;
}

/* ---- draining ----------------------------------------------------------- */

static void serve_listener_stop(struct serve *s);

void
serve__drain(struct serve *s)
{
    struct serve_conn *c, *next;

    if (s->draining || s->closing)
        return;
    s->draining = true;
    js_engine_stop_cancels(s->engine);
    log_info("draining: no new direct clients");
    serve_listener_stop(s);
    for (c = s->conns; c != NULL; c = next) {
        next = c->next;
        serve_conn_drain(c);
    }
    serve__maybe_drained(s);
}

void
serve__maybe_drained(struct serve *s)
{
    msgpack_packer pk;

    if (!s->draining || s->drained_said || s->fd_conn == NULL)
        return;
    for (struct serve_conn *c = s->conns; c != NULL; c = c->next) {
        if (!c->is_fd && !c->closing)
            return;
    }
    s->drained_said = true;
    if (serve_conn_packer(s->fd_conn, &pk)) {
        proto_write_notification(&pk, PROTO_N_DRAINED, 0);
        serve_conn_replied(s->fd_conn);
    }
}

/* ---- console output ----------------------------------------------------- */

/* Console lines for a connection whose peer reads none past this much
 * unwritten are dropped (the log has them). */
#define SERVE_CONSOLE_BACKLOG_MAX ((size_t)1024 * 1024)

/* A context's console line goes to the connection that made it, as
 * [2, "console", [level, text, context]] (docs/protocol.md). */
static void
serve_console(void *arg, uint32_t context, const char *level, const char *text,
              size_t len)
{
    struct serve *s = arg;
    msgpack_packer pk;

    for (struct serve_conn *c = s->conns; c != NULL; c = c->next) {
        for (size_t i = 0; i < c->ncontexts; i++) {
            if (c->contexts[i] != context)
                continue;
            if (c->stream == NULL ||
                rpcstream_backlog(c->stream) > SERVE_CONSOLE_BACKLOG_MAX ||
                !serve_conn_packer(c, &pk))
                return;
            proto_write_notification(&pk, PROTO_N_CONSOLE, 3);
            proto_pack_cstr(&pk, level);
            msgpack_pack_str_with_body(&pk, text, len);
            msgpack_pack_uint32(&pk, context);
            serve_conn_replied(c);
            return;
        }
    }
}

/* ---- while JavaScript runs long ---------------------------------------- */

/* The engine's poll hook: what the loop cannot see while JS runs. */
static void
serve_poll(void *arg)
{
    struct serve *s = arg;

    if (s->stop_signal != NULL && *s->stop_signal != 0) {
        js_engine_stop(s->engine);
        return;
    }
    for (struct serve_conn *c = s->conns; c != NULL; c = c->next)
        serve_conn_poll(c);
}

/* ---- the heap limit ----------------------------------------------------- */

static void
serve_doom_cb(uv_timer_t *t)
{
    struct serve *s = t->data;

    log_warn("replies did not drain in %d ms; exiting anyway",
             SERVE_DOOM_GRACE_MS);
    serve__request_exit(s, JSHOST_EXIT_RECYCLE);
}

void
serve__maybe_exit(struct serve *s)
{
    if (!s->doomed)
        return;
    for (struct serve_conn *c = s->conns; c != NULL; c = c->next) {
        if (serve_conn_writing(c))
            return;
    }
    serve__request_exit(s, JSHOST_EXIT_RECYCLE);
}

static void
serve_listener_close_cb(uv_handle_t *h)
{
    (void)h;
}

/* No new clients: the listener closes and its path goes. */
static void
serve_listener_stop(struct serve *s)
{
    if (s->listener_open) {
        s->listener_open = false;
        uv_close((uv_handle_t *)&s->listener, serve_listener_close_cb);
    }
    if (s->listen_path != NULL) {
        unlink(s->listen_path);
        free(s->listen_path);
        s->listen_path = NULL;
    }
}

void
serve__check_doomed(struct serve *s)
{
    if (s->doomed || s->closing || !js_engine_doomed(s->engine))
        return;
    s->doomed = true;
    log_warn("the heap limit was hit: answering what is owed, then exiting "
             "with status %d",
             JSHOST_EXIT_RECYCLE);
    serve_listener_stop(s);
    for (struct serve_conn *c = s->conns; c != NULL; c = c->next)
        serve_conn_doom(c);
    uv_timer_start(&s->doom_timer, serve_doom_cb, SERVE_DOOM_GRACE_MS, 0);
    serve__maybe_exit(s);
}

/* ---- the server --------------------------------------------------------- */

int
serve_new(uv_loop_t *loop, const struct serve_options *opts, struct serve **out)
{
    struct serve *s = xcalloc(1, sizeof(*s));

    s->loop = loop;
    s->engine = opts->engine;
    s->config_realpath =
        opts->config_realpath ? xstrdup(opts->config_realpath) : NULL;
    s->on_exit = opts->on_exit;
    s->arg = opts->arg;
    s->stop_signal = opts->stop_signal;
    js_engine_set_hooks(s->engine, &(struct js_engine_hooks){
                                       .invoke = serve_method_invoke,
                                       .poll = serve_poll,
                                       .console = serve_console,
                                       .arg = s,
                                   });
    rpcstream_setup(loop);
    s->max_clients =
        opts->max_clients != 0 ? opts->max_clients : JSHOST_DEFAULT_MAX_CLIENTS;
    /* Only direct clients' streams take them (serve_connection_cb). */
    rpcstream_set_partial_limits(opts->max_partial_total,
                                 opts->partial_idle_ms);
    uv_timer_init(loop, &s->doom_timer);
    s->doom_timer.data = s;
    uv_timer_init(loop, &s->reap_timer);
    s->reap_timer.data = s;
    uv_timer_init(loop, &s->resume_timer);
    s->resume_timer.data = s;
    *out = s;
    return 0;
}

int
serve_fd(struct serve *s, int fd, char **cause)
{
    struct serve_conn *c = serve_conn_new(s);
    int r;

    if (c == NULL) {
        *cause = xasprintf("fd %d: out of memory", fd);
        return -ENOMEM;
    }
    r = rpcstream_open(c->stream, fd);
    if (r < 0) {
        *cause = xasprintf("fd %d: %s", fd, uv_strerror(r));
        serve_conn_close(c);
        return r;
    }
    c->is_fd = true;
    s->fd_conn = c;
    /* fd 3 is the manager's: it forwards big messages unread when told
     * their size. */
    rpcstream_send_hints(c->stream);
    serve_conn_start(c);
    return 0;
}

static void
serve_connection_cb(uv_stream_t *server, int status)
{
    struct serve *s = server->data;
    struct serve_conn *c;
    char *cause = NULL;
    int fd, r;

    if (status < 0) {
        log_warn("accept: %s", uv_strerror(status));
        return;
    }
    c = serve_conn_new(s);
    if (c == NULL) {
        log_warn("accept: out of memory");
        return;
    }
    r = rpcstream_accept(c->stream, server);
    if (r < 0) {
        log_warn("accept: %s", uv_strerror(r));
        serve_conn_close(c);
        return;
    }
    r = rpcstream_fileno(c->stream, &fd);
    if (r == 0)
        r = unixsock_check_peer(fd, NULL, NULL, &cause);
    if (r < 0) {
        /* Told why, as the manager tells a peer it refuses. */
        log_warn("refused a connection: %s",
                 cause != NULL ? cause : uv_strerror(r));
        serve_conn_refuse(c, cause != NULL ? cause : "peer unknown");
        free(cause);
        return;
    }
    if (s->nclients >= s->max_clients) {
        char why[128];

        snprintf(why, sizeof why,
                 "too many connections: %u are open (the limit)",
                 s->max_clients);
        log_warn("refused a connection: %s", why);
        serve_conn_refuse(c, why);
        return;
    }
    c->counted = true;
    s->nclients++;
    /* What a direct client may hold in an unfinished message is bounded,
     * as at the manager. */
    rpcstream_limit_partial(c->stream);
    log_debug("connection accepted");
    serve_conn_start(c);
}

int
serve_listen(struct serve *s, const char *path, char **cause)
{
    mode_t old;
    int r;

    r = rundir_check_sockpath(path, cause);
    if (r < 0)
        return r;
    /* A socket left by a worker that died is replaced; a live one is not. */
    r = unixsock_clear_stale(path, cause);
    if (r < 0)
        return r;
    uv_pipe_init(s->loop, &s->listener, 0);
    s->listener.data = s;
    s->listener_open = true;
    /* Created 0600 from the start: no window where others could connect. */
    old = umask(0177);
    r = uv_pipe_bind(&s->listener, path);
    umask(old);
    if (r < 0) {
        *cause = xasprintf("%s: %s", path, uv_strerror(r));
        return r;
    }
    s->listen_path = xstrdup(path);
    r = uv_listen((uv_stream_t *)&s->listener, 128, serve_connection_cb);
    if (r < 0) {
        *cause = xasprintf("%s: listen: %s", path, uv_strerror(r));
        return r;
    }
    return 0;
}

/* ---- notifications ------------------------------------------------------ */

int
serve_notify_ready(struct serve *s)
{
    struct serve_conn *c = s->fd_conn;
    struct js_config cfg;
    msgpack_packer pk;
    const char *const *list;
    size_t n;

    if (c == NULL || !serve_conn_packer(c, &pk))
        return -ENOTCONN;
    js_engine_config(s->engine, &cfg);
    proto_write_notification(&pk, PROTO_N_READY, 1);
    msgpack_pack_map(&pk, 6);
    proto_pack_cstr(&pk, PROTO_K_PID);
    msgpack_pack_int64(&pk, getpid());
    proto_pack_cstr(&pk, PROTO_K_FUNCTIONS);
    serve_method_pack_functions(s, &pk);
    proto_pack_cstr(&pk, PROTO_K_EXTRAS);
    serve_method_pack_extras(s, &pk);
    proto_pack_cstr(&pk, PROTO_K_FILES);
    n = js_engine_loaded_files(s->engine, &list);
    msgpack_pack_array(&pk, n);
    for (size_t i = 0; i < n; i++)
        proto_pack_cstr(&pk, list[i]);
    proto_pack_cstr(&pk, PROTO_K_WARNINGS);
    n = js_engine_config_warnings(s->engine, &list);
    msgpack_pack_array(&pk, n);
    for (size_t i = 0; i < n; i++)
        proto_pack_cstr(&pk, list[i]);
    proto_pack_cstr(&pk, PROTO_K_CONFIG);
    msgpack_pack_map(&pk, cfg.reload >= 0 ? 5 : 4);
    if (cfg.reload >= 0) {
        proto_pack_cstr(&pk, PROTO_K_RELOAD);
        if (cfg.reload)
            msgpack_pack_true(&pk);
        else
            msgpack_pack_false(&pk);
    }
    proto_pack_cstr(&pk, PROTO_K_WORKERS);
    msgpack_pack_uint32(&pk, cfg.workers);
    proto_pack_cstr(&pk, PROTO_K_TIMEOUT);
    msgpack_pack_uint32(&pk, cfg.timeout_ms);
    proto_pack_cstr(&pk, PROTO_K_MEMORY);
    msgpack_pack_uint32(&pk, cfg.memory_mb);
    proto_pack_cstr(&pk, PROTO_K_LINGER);
    msgpack_pack_uint32(&pk, cfg.linger_ms);
    serve_conn_replied(c);
    serve_conn_flush(c);
    return 0;
}

static int
write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);

        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN) {
                struct pollfd pfd = {.fd = fd, .events = POLLOUT};

                poll(&pfd, 1, 1000);
                continue;
            }
            return -errno;
        }
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

const char *
serve_config_message(const struct js_error *err)
{
    const char *m = err->message;
    size_t n;

    if (m == NULL)
        return "the config failed";
    if (err->file == NULL || strncmp(m, err->file, n = strlen(err->file)) != 0)
        return m;
    m += n;
    /* ":line" and ":column", each optional */
    for (int i = 0; i < 2 && m[0] == ':' && m[1] >= '0' && m[1] <= '9'; i++) {
        m++;
        while (*m >= '0' && *m <= '9')
            m++;
    }
    if (m[0] != ':' || m[1] != ' ')
        return err->message;
    return m + 2;
}

int
serve_write_config_error(int fd, const struct js_error *err)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    int r;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    proto_write_notification(&pk, PROTO_N_CONFIG_ERROR, 1);
    msgpack_pack_map(&pk, 8);
    proto_pack_cstr(&pk, PROTO_K_TYPE);
    proto_pack_cstr(&pk, proto_errtype_name(PROTO_ERR_CONFIG));
    proto_pack_cstr(&pk, PROTO_K_MESSAGE);
    proto_pack_cstr(&pk, serve_config_message(err));
    proto_pack_cstr(&pk, PROTO_K_NAME);
    msgpack_pack_nil(&pk);
    proto_pack_cstr(&pk, PROTO_K_STACK);
    proto_pack_cstr(&pk, err->stack);
    proto_pack_cstr(&pk, PROTO_K_LOGFILE);
    msgpack_pack_nil(&pk);
    proto_pack_cstr(&pk, PROTO_K_FILE);
    proto_pack_cstr(&pk, err->file ? err->file : "");
    proto_pack_cstr(&pk, PROTO_K_LINE);
    msgpack_pack_int(&pk, err->line);
    proto_pack_cstr(&pk, PROTO_K_COLUMN);
    msgpack_pack_int(&pk, err->column);
    r = write_all(fd, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    return r;
}

/* ---- teardown ----------------------------------------------------------- */

static void
serve_timer_close_cb(uv_handle_t *h)
{
    (void)h;
}

void
serve_close(struct serve *s)
{
    struct serve_conn *c, *next;

    if (s->closing)
        return;
    s->closing = true;
    serve_listener_stop(s);
    for (c = s->conns; c != NULL; c = next) {
        next = c->next;
        serve_conn_close(c);
    }
    uv_close((uv_handle_t *)&s->doom_timer, serve_timer_close_cb);
    uv_close((uv_handle_t *)&s->reap_timer, serve_timer_close_cb);
    uv_close((uv_handle_t *)&s->resume_timer, serve_timer_close_cb);
    rpcstream_teardown();
}

void
serve_free(struct serve *s)
{
    if (s == NULL)
        return;
    free(s->config_realpath);
    free(s->listen_path);
    free(s->dead_contexts);
    free(s->dead_peers);
    free(s);
}
