/*
 * Worker processes: spawned with uv_spawn, one end of a socketpair as fd 3 and
 * a pipe the manager reads into the host's log as stdout/stderr
 * (docs/protocol.md). Requests are forwarded with msgids from this worker's
 * own space; replies find their client through the router. A worker is
 * finished only once both its exit status and the end of its socket have been
 * seen, so that replies it flushed just before exiting (a MemoryError before
 * exit 75) still reach their clients.
 *
 * Liveness (docs/lifecycle.md, "Crashes and quarantine"): the worker cuts
 * every synchronous run at its deadline, so one that owes an answer (a call
 * or the ping) and has said nothing for longer than the longest deadline it
 * holds, plus a grace, is hung. The bound is the same however many calls it
 * holds; a worker running them one after another answers each in turn.
 * A worker drained for stop or restart gets a grace for the calls it holds,
 * then they are cancelled, then it is stopped.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "jshost_defs.h"
#include "log.h"
#include "manager.h"
#include "rundir.h"
#include "xmalloc.h"

/* How long to wait for the socket's end once the process has exited. */
#define WORKER_EOF_GRACE_MS 1000
/* Room of the pipe a worker writes its output into, so that a burst waits
 * there rather than being dropped (the kernel may give less). */
#define WORKER_OUT_PIPE_SIZE (1024 * 1024)

static void worker_finish(struct worker *w);
static void worker_kill_timer_cb(uv_timer_t *t);
static void worker_out_drain(struct worker *w);
static void worker_out_close(struct worker *w);
static void worker_watch_fire(struct deadline *d);

const char *
worker_state_name(enum worker_state s)
{
    switch (s) {
    case WORKER_STARTING:
        return "starting";
    case WORKER_READY:
        return "ready";
    case WORKER_DRAINING:
        return "draining";
    case WORKER_STOPPING:
        return "stopping";
    case WORKER_EXITED:
        return "exited";
    }
    return "unknown";
}

void
worker_exit_words(const struct worker *w, char *buf, size_t len)
{
    if (w->unresponsive && w->ready_ms == 0)
        snprintf(buf, len, "was not ready in time and was killed");
    else if (w->unresponsive)
        snprintf(buf, len, "did not answer its ping and was killed");
    else if (w->term_signal != 0)
        snprintf(buf, len, "killed by signal %d (SIG%s)", w->term_signal,
                 sigabbrev_np(w->term_signal) != NULL
                     ? sigabbrev_np(w->term_signal)
                     : "?");
    else if (w->exit_status == JSHOST_EXIT_RECYCLE)
        snprintf(buf, len, "exited with status 75 (heap limit: recycled)");
    else
        snprintf(buf, len, "exited with status %lld",
                 (long long)w->exit_status);
}

static void
worker_handle_closed(struct worker *w)
{
    if (--w->handles > 0)
        return;
    deadline_disarm(&w->watch);
    router_free(w->calls);
    free(w->direct_path);
    host_worker_freed(w->host);
    free(w);
}

static void
worker_proc_closed_cb(uv_handle_t *handle)
{
    worker_handle_closed(handle->data);
}

static void
worker_stream_closed(void *owner)
{
    struct worker *w = owner;

    w->stream = NULL;
    worker_handle_closed(w);
}

/* A reply for a client, sent as [1, cid, error, result]. */
static void
worker_reply_client(struct call *c, const msgpack_object *error,
                    const msgpack_object *result)
{
    struct rpcstream_msg om;

    if (c->client == NULL || c->client->closed || c->answered)
        return;
    rpcstream_msg_init(&om);
    msgpack_pack_array(&om.pk, 4);
    msgpack_pack_uint8(&om.pk, PROTO_RESPONSE);
    msgpack_pack_uint32(&om.pk, c->cid);
    msgpack_pack_object(&om.pk, *error);
    msgpack_pack_object(&om.pk, *result);
    client_send(c->client, &om);
}

static void
worker_context_created(struct worker *w, struct call *c,
                       const struct proto_msg *m)
{
    struct context *x;
    struct rpcstream_msg om;
    struct call *d;

    if (m->error.type != MSGPACK_OBJECT_NIL ||
        m->result.type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
        worker_reply_client(c, &m->error, &m->result);
        if (w->host->is_private && context_count_host(w->host) == 0)
            host__release_private(w->host);
        return;
    }
    if (c->client == NULL || c->client->closed || c->answered) {
        /* Nobody will ever destroy it: do it now. */
        d = call_new(CALL_IGNORE, NULL, 0);
        d->host = w->host;
        worker_request(w, d, PROTO_M_CONTEXT_DESTROY, m->result.via.u64);
        if (w->host->is_private && context_count_host(w->host) == 0)
            host__release_private(w->host);
        return;
    }
    x = context_new(w->host, w, m->result.via.u64, c->client);
    client_reply_begin(&om, c->cid);
    msgpack_pack_uint64(&om.pk, x->id);
    client_send(c->client, &om);
}

static void
worker_context_destroyed(struct worker *w, struct call *c,
                         const struct proto_msg *m)
{
    struct context *x = context_find(c->context);
    struct host *h = w->host;

    if (x != NULL && m->error.type == MSGPACK_OBJECT_NIL)
        context_free(x);
    worker_reply_client(c, &m->error, &m->result);
    if (h->is_private && context_count_host(h) == 0)
        host__release_private(h);
}

/* A client's call was answered: it no longer counts as in flight here (the
 * worker counts its calls and their times itself, direct ones included). */
static void
worker_call_answered(struct worker *w, const struct call *c)
{
    if (c->kind == CALL_FORWARD || c->kind == CALL_CONTEXT_CREATE ||
        c->kind == CALL_CONTEXT_DESTROY) {
        w->inflight--;
        w->served = true;
        if (c->answered)
            w->late--;
    }
}

/* The call's answer went back: it is done, and a draining worker may stop. */
static void
worker_call_finished(struct worker *w, struct call *c)
{
    host_pool_call_done(c);
    call_free(c);
    if (w->state == WORKER_DRAINING && w->inflight == 0 && w->drained)
        worker_stop(w);
}

/*
 * The fast path back: a successful answer to a client's call goes to the
 * client as the bytes it came in, behind the client's msgid, unread. Errors
 * (a MemoryError recycles the worker) and the manager's own requests take
 * the slow path, worker_on_response.
 */
static bool
worker_on_raw(void *owner, const struct proto_raw *raw)
{
    struct worker *w = owner;
    struct proto_head head;
    struct call *c;

    if (raw->kind == PROTO_REQUEST) {
        w->last_msg_ms = manager_now();
        return invoke_from_worker(w, raw);
    }
    if (raw->kind != PROTO_RESPONSE ||
        (uint8_t)raw->bytes[raw->error_at] != 0xc0)
        return false;
    c = router_find(w->calls, raw->msgid);
    if (c == NULL || c->kind != CALL_FORWARD)
        return false;
    router_take(w->calls, raw->msgid);
    w->last_msg_ms = manager_now();
    worker_call_answered(w, c);
    if (c->client != NULL && !c->client->closed && !c->answered) {
        proto_response_head(&head, c->cid);
        rpcstream_forward(c->client->stream, head.bytes, head.len,
                          raw->bytes + raw->error_at,
                          raw->size - raw->error_at);
        w->forwarded_unread += raw->hinted;
    }
    worker_call_finished(w, c);
    return true;
}

static void
worker_on_response(struct worker *w, struct proto_msg *m)
{
    struct call *c = router_take(w->calls, m->msgid);

    if (c == NULL) {
        log_warn("worker %d: reply to unknown msgid %u", (int)w->pid, m->msgid);
        return;
    }
    worker_call_answered(w, c);
    if (m->error.type == MSGPACK_OBJECT_MAP && w->state == WORKER_READY &&
        proto_obj_streq(proto_map_get(&m->error, PROTO_K_TYPE),
                        proto_errtype_name(PROTO_ERR_MEMORY))) {
        /* It exits 75 next: no new calls for it, a replacement now. */
        host_log(w->host, w->pid, "hit its heap limit: recycling");
        worker_drain(w);
        host_pool_worker_recycling(w->host, w);
    }
    switch (c->kind) {
    case CALL_FORWARD:
        worker_reply_client(c, &m->error, &m->result);
        break;
    case CALL_CONTEXT_CREATE:
        worker_context_created(w, c, m);
        break;
    case CALL_CONTEXT_DESTROY:
        worker_context_destroyed(w, c, m);
        break;
    case CALL_STATS:
        status__stats_reply(c, w, m);
        break;
    case CALL_PING:
        w->ping_sent_ms = 0;
        break;
    case CALL_IGNORE:
        break;
    }
    worker_call_finished(w, c);
}

/* Console lines for a client that reads none past this much unwritten are
 * dropped (the host's log has them). */
#define WORKER_CONSOLE_BACKLOG_MAX ((size_t)4 * 1024 * 1024)

/*
 * A context's console line, [level, text, worker ctx], goes to the client
 * that owns the context as [level, text, ctx] (docs/protocol.md, "Console
 * output"), the way a reverse call finds its context's owner.
 */
static void
worker_console(struct worker *w, const msgpack_object *params)
{
    const msgpack_object *p = params->via.array.ptr;
    struct rpcstream_msg om;
    struct context *x;

    if (params->via.array.size < 3 || p[0].type != MSGPACK_OBJECT_STR ||
        p[1].type != MSGPACK_OBJECT_STR ||
        p[2].type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return;
    x = context_find_worker(w, p[2].via.u64);
    if (x == NULL || x->owner == NULL || x->owner->closed ||
        x->owner->stream == NULL ||
        rpcstream_backlog(x->owner->stream) > WORKER_CONSOLE_BACKLOG_MAX)
        return;
    rpcstream_msg_init(&om);
    proto_write_notification(&om.pk, PROTO_N_CONSOLE, 3);
    msgpack_pack_object(&om.pk, p[0]);
    msgpack_pack_object(&om.pk, p[1]);
    msgpack_pack_uint64(&om.pk, x->id);
    client_send(x->owner, &om);
}

static void
worker_on_msg(void *owner, struct proto_msg *m)
{
    struct worker *w = owner;
    const msgpack_object *arg = NULL;

    w->last_msg_ms = manager_now();
    if (m->kind == PROTO_RESPONSE) {
        worker_on_response(w, m);
    } else if (m->kind == PROTO_NOTIFICATION) {
        if (m->params.via.array.size > 0)
            arg = &m->params.via.array.ptr[0];
        if (proto_msg_is(m, PROTO_N_READY) && arg != NULL &&
            w->state == WORKER_STARTING) {
            w->state = WORKER_READY;
            w->ready_ms = manager_now();
            uv_timer_stop(&w->kill_timer);
            host_pool_worker_ready(w->host, w, arg);
        } else if (proto_msg_is(m, PROTO_N_CONFIG_ERROR) && arg != NULL) {
            host_pool_worker_config_error(w->host, w, arg);
        } else if (proto_msg_is(m, PROTO_N_CONSOLE)) {
            worker_console(w, &m->params);
        } else if (proto_msg_is(m, PROTO_N_DRAINED)) {
            w->drained = true;
            if (w->state == WORKER_DRAINING && w->inflight == 0)
                worker_stop(w);
        }
    } else if (proto_msg_is(m, PROTO_M_INVOKE)) {
        /* What the fast path (invoke_from_worker) did not take. */
        struct proto_params p;
        char cause[PROTO_CAUSE_MAX];

        if (proto_check_invoke(m, &p, cause) < 0)
            invoke_fail(w, m->msgid, PROTO_ERR_INVALID_ARGUMENT, "%s", cause);
        else
            invoke_fail(w, m->msgid, PROTO_ERR_INVALID_ARGUMENT,
                        "params[2] (owner): the manager routes an invoke by "
                        "its owner, {\"call\": msgid} or {\"context\": id}");
    } else {
        invoke_fail(w, m->msgid, PROTO_ERR_NOT_FOUND,
                    "the manager serves no method '%.*s' to workers",
                    (int)(m->method_len > 64 ? 64 : m->method_len), m->method);
    }
    proto_msg_release(m);
}

static void
worker_on_end(void *owner, int err, const char *cause)
{
    struct worker *w = owner;

    if (err != 0 && err != UV_ECONNRESET && err != UV_EPIPE) {
        log_warn("worker %d: connection broken (%s): killing it", (int)w->pid,
                 cause);
        if (w->state != WORKER_EXITED)
            uv_process_kill(&w->proc, SIGKILL);
    }
    if (w->state == WORKER_EXITED) {
        worker_finish(w);
    } else if (w->state != WORKER_STOPPING) {
        /*
         * It hung up and its exit status is on its way (or it hangs): no
         * new calls, and a deadline. Its replacement waits for the status,
         * which says whether it crashed (and so how long to back off).
         */
        w->state = WORKER_STOPPING;
        uv_timer_start(&w->kill_timer, worker_kill_timer_cb, mgr.kill_grace_ms,
                       0);
    }
}

static const struct rpcstream_cbs worker_stream_cbs = {
    .on_raw = worker_on_raw,
    .on_msg = worker_on_msg,
    .on_end = worker_on_end,
    .on_closed = worker_stream_closed,
};

/* Once its socket is closing, what is meant for a worker is dropped. */
void
worker_send(struct worker *w, struct rpcstream_msg *om)
{
    if (!w->stream_open || w->stream == NULL) {
        msgpack_sbuffer_destroy(&om->sb);
        return;
    }
    rpcstream_send(w->stream, om);
}

static void
worker_cancel_one(struct call *c, void *arg)
{
    if (c->kind == CALL_FORWARD && !c->cancelled)
        worker_cancel(arg, c);
}

static void
worker_kill_timer_cb(uv_timer_t *t)
{
    struct worker *w = t->data;

    if (w->state == WORKER_DRAINING && !w->grace_over) {
        w->grace_over = true;
        host_log(w->host, w->pid,
                 "%u calls still running after the stop grace: cancelling "
                 "them",
                 w->inflight);
        /* Direct clients had the same grace: their time is up too. */
        w->drained = true;
        router_foreach(w->calls, worker_cancel_one, w);
        if (w->inflight == 0) {
            worker_stop(w);
            return;
        }
        uv_timer_start(&w->kill_timer, worker_kill_timer_cb, mgr.kill_grace_ms,
                       0);
        return;
    }
    if (w->state == WORKER_DRAINING) {
        host_log(w->host, w->pid, "cancelled calls still unanswered");
        worker_stop(w);
        return;
    }
    if (w->state == WORKER_EXITED) {
        /* The socket never ended (a grandchild holds it): finish anyway. */
        worker_finish(w);
        return;
    }
    if (w->state == WORKER_STARTING) {
        w->unresponsive = true;
        host_log(w->host, w->pid, "not ready after %llu ms: SIGKILL",
                 (unsigned long long)mgr.start_timeout_ms);
        uv_process_kill(&w->proc, SIGKILL);
        return;
    }
    if (w->stop_requested)
        host_log(w->host, w->pid, "did not stop after SIGTERM: SIGKILL");
    else
        host_log(w->host, w->pid, "hung up but did not exit: SIGKILL");
    uv_process_kill(&w->proc, SIGKILL);
}

static void
worker_exit_cb(uv_process_t *proc, int64_t status, int term_signal)
{
    struct worker *w = proc->data;

    w->exit_status = status;
    w->term_signal = term_signal;
    w->state = WORKER_EXITED;
    uv_close((uv_handle_t *)&w->proc, worker_proc_closed_cb);
    if (!w->stream_open || w->stream == NULL || rpcstream_ended(w->stream)) {
        worker_finish(w);
    } else {
        uv_timer_stop(&w->kill_timer);
        uv_timer_start(&w->kill_timer, worker_kill_timer_cb,
                       WORKER_EOF_GRACE_MS, 0);
    }
}

/* The log the worker's output goes to: its host's, or manager.log for a
 * private VM. */
static struct logfile *
worker_log(const struct worker *w)
{
    return w->host->is_private ? mgr.vmlog : w->host->log;
}

/* One buffer for every worker's output: each read is in the log (queue)
 * before the next. */
static char worker_out_buf[64 * 1024];

static void
worker_out_alloc_cb(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
    (void)handle;
    (void)suggested;
    buf->base = worker_out_buf;
    buf->len = sizeof worker_out_buf;
}

static void
worker_out_close(struct worker *w)
{
    if (!w->out_open)
        return;
    w->out_open = false;
    logfile_feed_end(worker_log(w), w->out_line);
    w->out_line = NULL;
    uv_close((uv_handle_t *)&w->out, worker_proc_closed_cb);
}

static void
worker_out_read_cb(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct worker *w = stream->data;

    if (nread > 0)
        logfile_feed(worker_log(w), w->out_line, buf->base, (size_t)nread);
    else if (nread < 0)
        worker_out_close(w);
}

/* Reads what the pipe holds now, without waiting. */
static void
worker_out_drain(struct worker *w)
{
    uv_os_fd_t fd;
    ssize_t n;

    if (!w->out_open || uv_fileno((uv_handle_t *)&w->out, &fd) != 0)
        return;
    for (;;) {
        n = read(fd, worker_out_buf, sizeof worker_out_buf);
        if (n > 0)
            logfile_feed(worker_log(w), w->out_line, worker_out_buf, (size_t)n);
        else if (n < 0 && errno == EINTR)
            continue;
        else
            break;
    }
}

/* The process is gone and its socket read to the end: answer what it held. */
static void
worker_finish(struct worker *w)
{
    char words[128];
    struct call *c;
    struct host *h = w->host;

    if (w->stream_open) {
        w->stream_open = false;
        /* A stream that broke closes itself once its refusal is written. */
        if (w->stream != NULL)
            rpcstream_close(w->stream);
    } else {
        return; /* already finished */
    }
    uv_timer_stop(&w->kill_timer);
    uv_close((uv_handle_t *)&w->kill_timer, worker_proc_closed_cb);
    deadline_disarm(&w->watch);
    /* All it wrote before it exited is in the pipe: into its log, then
     * the pipe goes (a child it left holding it would keep it open). */
    worker_out_drain(w);
    worker_out_close(w);
    /* A worker that did not stop cleanly leaves its socket behind. */
    if (w->direct_path != NULL)
        unlink(w->direct_path);
    invoke_worker_gone(w);
    worker_exit_words(w, words, sizeof words);
    if (w->direct_path != NULL) {
        unsigned i = h->exits_next++ % HOST_EXITS;

        free(h->exits[i].path);
        free(h->exits[i].words);
        h->exits[i].path = xstrdup(w->direct_path);
        h->exits[i].words = xasprintf("worker %d %s", (int)w->pid, words);
    }
    while ((c = router_pop(w->calls)) != NULL) {
        if (c->kind == CALL_FORWARD || c->kind == CALL_CONTEXT_CREATE ||
            c->kind == CALL_CONTEXT_DESTROY) {
            w->inflight--;
            if (c->answered)
                w->late--;
            else if (c->client != NULL && !c->client->closed)
                client_reply_error(c->client, c->cid, PROTO_ERR_HOST_CRASHED,
                                   h->logfile, "worker %d %s; see %s",
                                   (int)w->pid, words,
                                   h->logfile ? h->logfile : "its log");
        } else if (c->kind == CALL_STATS) {
            status__stats_reply(c, w, NULL);
        }
        host_pool_call_done(c);
        call_free(c);
    }
    host_pool_worker_exited(h, w);
}

static void
worker_spawn_failed_cb(uv_handle_t *handle)
{
    struct worker *w = handle->data;

    router_free(w->calls);
    free(w->direct_path);
    free(w);
}

void
worker_env_of(pid_t pid, char **env, size_t *len)
{
    char path[64], buf[8192];
    size_t cap = 0;
    ssize_t r;
    int fd;

    *env = NULL;
    *len = 0;
    if (pid <= 0)
        return;
    snprintf(path, sizeof path, "/proc/%d/environ", (int)pid);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    /* An environment past 1 MiB is cut there: argv and env share ARG_MAX. */
    while ((r = read(fd, buf, sizeof buf)) > 0 && *len < (1u << 20)) {
        if (*len + (size_t)r > cap) {
            cap = (*len + (size_t)r) * 2;
            *env = xrealloc(*env, cap);
        }
        memcpy(*env + *len, buf, (size_t)r);
        *len += (size_t)r;
    }
    close(fd);
}

/*
 * The host's client environment for the worker, on a memfd it reads as
 * --env-fd 3 + 1: never on its command line (which every user can read),
 * never as its own environment (the manager's, which is the environment of
 * whichever client started the manager). -1 with *cause on failure.
 */
static int
worker_env_fd(const struct host *h, char **cause)
{
    size_t off = 0;
    int fd = memfd_create("jshost-env", MFD_CLOEXEC);

    if (fd < 0) {
        *cause = xasprintf("memfd_create: %s", strerror(errno));
        return -1;
    }
    /* Above the child's fds 0-4: uv_spawn dup2()s stdio[i] to fd i in order,
     * so an env fd of 3 would be overwritten by the socket before it is
     * moved to 4. */
    if (fd < 5) {
        int high = fcntl(fd, F_DUPFD_CLOEXEC, 5);

        close(fd);
        if (high < 0) {
            *cause = xasprintf("fcntl: %s", strerror(errno));
            return -1;
        }
        fd = high;
    }
    while (off < h->env_len) {
        ssize_t r = write(fd, h->env + off, h->env_len - off);

        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            *cause = xasprintf("writing the environment: %s", strerror(errno));
            close(fd);
            return -1;
        }
        off += (size_t)r;
    }
    if (lseek(fd, 0, SEEK_SET) != 0) {
        *cause = xasprintf("lseek: %s", strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

struct worker *
worker_spawn(struct host *h, char **cause)
{
    struct worker *w;
    uv_process_options_t opts;
    uv_stdio_container_t stdio[5];
    char *args[20];
    char mem[32], tmo[32], lim[3][32];
    int fds[2], out[2], envfd, rc, n = 0;

    envfd = worker_env_fd(h, cause);
    if (envfd < 0)
        return NULL;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) {
        *cause = xasprintf("socketpair: %s", strerror(errno));
        close(envfd);
        return NULL;
    }
    if (pipe2(out, O_CLOEXEC) != 0) {
        *cause = xasprintf("pipe: %s", strerror(errno));
        close(fds[0]);
        close(fds[1]);
        close(envfd);
        return NULL;
    }
    /* Its end never blocks: a log that cannot keep up drops output rather
     * than stalling the worker. */
    fcntl(out[1], F_SETFL, fcntl(out[1], F_GETFL) | O_NONBLOCK);
    fcntl(out[0], F_SETPIPE_SZ, WORKER_OUT_PIPE_SIZE);
    w = xcalloc(1, sizeof *w);
    w->host = h;
    w->watch.fire = worker_watch_fire;
    w->gen = h->generation;
    w->calls = router_new();
    w->state = WORKER_STARTING;
    w->start_ms = manager_now();

    args[n++] = mgr.worker_path;
    args[n++] = "--fd";
    args[n++] = "3";
    args[n++] = "--env-fd";
    args[n++] = "4";
    if (h->is_private) {
        if (h->priv_memory_mb != 0) {
            snprintf(mem, sizeof mem, "%llu",
                     (unsigned long long)h->priv_memory_mb);
            args[n++] = "--memory";
            args[n++] = mem;
        }
        if (h->priv_timeout_ms != 0) {
            snprintf(tmo, sizeof tmo, "%llu",
                     (unsigned long long)h->priv_timeout_ms);
            args[n++] = "--timeout";
            args[n++] = tmo;
        }
        if (h->priv_cwd != NULL) {
            args[n++] = "--cwd";
            args[n++] = h->priv_cwd;
        }
    } else {
        static unsigned long seq;
        char path[sizeof mgr.hostsdir + 64];

        /* Its own socket for direct calls, if the path fits sun_path. */
        snprintf(path, sizeof path, "%s/%s-%lu.sock", mgr.hostsdir, h->id,
                 ++seq);
        if (strlen(path) < RUNDIR_SUN_PATH_MAX) {
            w->direct_path = xstrdup(path);
            args[n++] = "--listen";
            args[n++] = w->direct_path;
            /* Its direct clients are held to the manager's limits. */
            snprintf(lim[0], sizeof lim[0], "%llu",
                     (unsigned long long)(mgr.max_clients > 0 ? mgr.max_clients
                                                              : 1));
            snprintf(lim[1], sizeof lim[1], "%llu",
                     (unsigned long long)mgr.max_partial_total);
            snprintf(lim[2], sizeof lim[2], "%llu",
                     (unsigned long long)mgr.partial_idle_ms);
            args[n++] = "--max-clients";
            args[n++] = lim[0];
            args[n++] = "--max-partial-total";
            args[n++] = lim[1];
            args[n++] = "--partial-idle-ms";
            args[n++] = lim[2];
        }
        args[n++] = h->config;
    }
    args[n] = NULL;

    memset(&opts, 0, sizeof opts);
    memset(stdio, 0, sizeof stdio);
    stdio[0].flags = UV_IGNORE;
    stdio[1].flags = UV_INHERIT_FD;
    stdio[1].data.fd = out[1];
    stdio[2].flags = UV_INHERIT_FD;
    stdio[2].data.fd = out[1];
    stdio[3].flags = UV_INHERIT_FD;
    stdio[3].data.fd = fds[1];
    stdio[4].flags = UV_INHERIT_FD;
    stdio[4].data.fd = envfd;
    opts.file = mgr.worker_path;
    opts.args = args;
    opts.stdio = stdio;
    opts.stdio_count = 5;
    opts.exit_cb = worker_exit_cb;
    w->proc.data = w;
    rc = uv_spawn(mgr.loop, &w->proc, &opts);
    close(fds[1]);
    close(out[1]);
    close(envfd);
    if (rc != 0) {
        close(fds[0]);
        close(out[0]);
        *cause =
            xasprintf("cannot start %s: %s", mgr.worker_path, uv_strerror(rc));
        /* A failed uv_spawn still needs its handle closed before the free. */
        uv_close((uv_handle_t *)&w->proc, worker_spawn_failed_cb);
        return NULL;
    }
    w->pid = w->proc.pid;
    w->handles = 4; /* process, kill timer, socket, output pipe */
    uv_timer_init(mgr.loop, &w->kill_timer);
    w->kill_timer.data = w;
    uv_pipe_init(mgr.loop, &w->out, 0);
    w->out.data = w;
    w->out_line = logfile_feed_new();
    w->out_open = true;
    if (uv_pipe_open(&w->out, out[0]) != 0 ||
        uv_read_start((uv_stream_t *)&w->out, worker_out_alloc_cb,
                      worker_out_read_cb) != 0) {
        log_warn("worker %d: cannot read its output: dropped", (int)w->pid);
        worker_out_close(w);
    }
    /* A config that never finishes loading must not hold attach forever. */
    if (!h->is_private && mgr.start_timeout_ms > 0)
        uv_timer_start(&w->kill_timer, worker_kill_timer_cb,
                       mgr.start_timeout_ms, 0);
    if (rpcstream_new(mgr.loop, mgr.max_message, &worker_stream_cbs, w,
                      &w->stream) != 0 ||
        rpcstream_open(w->stream, fds[0]) != 0) {
        fatalx("cannot set up the socket of worker %d", (int)w->pid);
    }
    /* Our own worker announces its big messages: forwarded unread. */
    rpcstream_take_hints(w->stream);
    w->stream_open = true;
    rpcstream_start(w->stream);
    TAILQ_INSERT_TAIL(&h->workers, w, entry);
    h->nlive++;
    host_log(h, w->pid, "started (%s)", h->config ? h->config : "private VM");
    return w;
}

/*
 * Writes c's request for the worker straight into its outgoing bytes: a new
 * head with the worker's msgid, then the params as they came (a context's
 * params[0] replaced by the worker's own id for it).
 */
static void
worker_pack(struct worker *w, struct call *c)
{
    struct context *x = c->context != 0 && c->kind != CALL_CONTEXT_CREATE
                            ? context_find(c->context)
                            : NULL;
    struct proto_head head;
    msgpack_packer pk;

    if (!w->stream_open || w->stream == NULL)
        return;
    if (x != NULL && c->nparams > 0) {
        if (!rpcstream_begin(w->stream, &pk))
            return;
        proto_write_request(&pk, c->wid, c->method, c->nparams);
        msgpack_pack_uint64(&pk, x->worker_context);
        proto_pack_raw(&pk, c->params + c->rest_at, c->params_len - c->rest_at);
        rpcstream_commit(w->stream);
        return;
    }
    /* c->method is one of the forwarded methods' names (client.c): a head
     * always holds it. */
    if (proto_request_head(&head, c->wid, c->method) < 0)
        fatalx("method '%s' does not fit a request head", c->method);
    rpcstream_forward(w->stream, head.bytes, head.len, c->params,
                      c->params_len);
}

/* A request goes to w: if it owed nothing, its silence counts from now. */
static void
worker_owes(struct worker *w)
{
    if (router_count(w->calls) > 0)
        return;
    w->owed_since_ms = manager_now();
    if (w->watch.slot == 0)
        deadline_arm(&w->watch, w->owed_since_ms + mgr.ping_timeout_ms +
                                    w->host->timeout_ms);
}

void
worker_forward(struct worker *w, struct call *c)
{
    uint64_t tmo = c->timeout_ms != 0 ? c->timeout_ms : w->host->timeout_ms;

    c->worker = w;
    c->timeout_ms = tmo;
    /* Now that the host's deadline is known for sure (the config is read). */
    host_pool_call_deadline(c);
    worker_owes(w);
    router_add(w->calls, c);
    w->inflight++;
    worker_pack(w, c);
    /* Sent: the bytes are not needed again. */
    free(c->params_owned);
    c->params_owned = NULL;
    c->params = NULL;
    c->params_len = 0;
}

void
worker_request(struct worker *w, struct call *c, const char *method,
               uint64_t context_param)
{
    struct rpcstream_msg om;

    c->worker = w;
    worker_owes(w);
    router_add(w->calls, c);
    rpcstream_msg_init(&om);
    if (context_param != 0) {
        proto_write_request(&om.pk, c->wid, method, 1);
        msgpack_pack_uint64(&om.pk, context_param);
    } else {
        proto_write_request(&om.pk, c->wid, method, 0);
    }
    worker_send(w, &om);
}

/*
 * No new calls for w; it stops once what it holds is answered. A worker with
 * direct clients is told to drain too (it tells them; they send no more and
 * close once answered) and stops once it says none is left, or after a grace
 * of the host's deadline (at most WORKER_DRAIN_GRACE_MS) past which its calls
 * are cut short.
 */
void
worker_drain(struct worker *w)
{
    struct rpcstream_msg om;
    uint64_t grace;

    if (w->state == WORKER_STARTING || w->state == WORKER_READY) {
        w->state = WORKER_DRAINING;
        /* Its calls run on for the host's deadline, at most the grace;
         * then they are cancelled. */
        grace = w->host->timeout_ms < mgr.drain_grace_ms ? w->host->timeout_ms
                                                         : mgr.drain_grace_ms;
        host_log(w->host, w->pid, "draining (%u in flight, %llu ms grace)",
                 w->inflight, (unsigned long long)grace);
        if (w->direct_path != NULL && w->ready_ms != 0 && !w->drained) {
            /* Its direct clients are told to go; it says when none is
             * left. */
            rpcstream_msg_init(&om);
            proto_write_notification(&om.pk, PROTO_N_DRAIN, 0);
            worker_send(w, &om);
        } else {
            w->drained = true; /* nothing to wait for but its own calls */
        }
        uv_timer_stop(&w->kill_timer);
        uv_timer_start(&w->kill_timer, worker_kill_timer_cb, grace, 0);
    }
    if (w->state == WORKER_DRAINING && w->inflight == 0 && w->drained)
        worker_stop(w);
}

void
worker_pack_direct(msgpack_packer *pk, const struct host *h)
{
    const struct worker *w;
    uint32_t n = 0;

    TAILQ_FOREACH(w, &h->workers, entry)
    if (w->state == WORKER_READY && w->direct_path != NULL)
        n++;
    msgpack_pack_array(pk, n);
    TAILQ_FOREACH(w, &h->workers, entry)
    if (w->state == WORKER_READY && w->direct_path != NULL)
        proto_pack_cstr(pk, w->direct_path);
}

void
worker_cancel(struct worker *w, struct call *c)
{
    struct rpcstream_msg om;

    c->cancelled = true;
    rpcstream_msg_init(&om);
    proto_write_notification(&om.pk, PROTO_N_CANCEL, 1);
    msgpack_pack_uint32(&om.pk, c->wid);
    worker_send(w, &om);
}

void
worker_stop(struct worker *w)
{
    if (w->state == WORKER_STOPPING || w->state == WORKER_EXITED)
        return;
    w->state = WORKER_STOPPING;
    w->stop_requested = true;
    host_log(w->host, w->pid, "stopping (SIGTERM)");
    uv_process_kill(&w->proc, SIGTERM);
    uv_timer_start(&w->kill_timer, worker_kill_timer_cb, mgr.kill_grace_ms, 0);
}

void
worker_kill(struct worker *w)
{
    if (w->state == WORKER_EXITED)
        return;
    w->stop_requested = true;
    uv_process_kill(&w->proc, SIGKILL);
}

/* A ping, unless one is on its way: an idle worker owes it an answer. */
static void
worker_ping(struct worker *w)
{
    struct call *c;

    if ((w->state != WORKER_READY && w->state != WORKER_DRAINING) ||
        w->ping_sent_ms != 0 || w->unresponsive)
        return;
    c = call_new(CALL_PING, NULL, 0);
    c->host = w->host;
    w->ping_sent_ms = manager_now();
    worker_request(w, c, PROTO_M_PING, 0);
}

static void
worker_longest(struct call *c, void *arg)
{
    uint64_t *longest = arg;

    if (c->timeout_ms > *longest)
        *longest = c->timeout_ms;
}

/* How long w may stay silent while it owes an answer: the longest deadline
 * of what it holds (its timers run under the host's), plus the grace. */
static uint64_t
worker_patience(const struct worker *w)
{
    uint64_t longest = w->host->timeout_ms;

    router_foreach(w->calls, worker_longest, &longest);
    /* A private VM takes calls before it has said anything: it may still
     * be starting V8, which gets the start timeout. */
    if (w->last_msg_ms == 0)
        longest += mgr.start_timeout_ms;
    return longest + mgr.ping_timeout_ms;
}

static void
worker_watch_fire(struct deadline *d)
{
    struct worker *w =
        (struct worker *)((char *)d - offsetof(struct worker, watch));
    uint64_t now = manager_now(), since, patience;

    if ((w->state != WORKER_READY && w->state != WORKER_DRAINING) ||
        w->unresponsive || router_count(w->calls) == 0)
        return;
    since =
        w->last_msg_ms > w->owed_since_ms ? w->last_msg_ms : w->owed_since_ms;
    patience = worker_patience(w);
    if (now - since < patience) {
        deadline_arm(&w->watch, since + patience);
        return;
    }
    w->unresponsive = true;
    host_log(w->host, w->pid,
             "no answer to ping or calls for %llu ms (the longest deadline "
             "it holds, plus %llu ms): SIGKILL",
             (unsigned long long)(now - since),
             (unsigned long long)mgr.ping_timeout_ms);
    uv_process_kill(&w->proc, SIGKILL);
}

/*
 * It still holds the call (and owes its answer, which the watch judges);
 * until it answers, new calls go to others first. The call is cancelled
 * there too: a run that waits rather than computes (on a reverse call, a
 * timer) is not cut by the worker's own deadline, and its callbacks are no
 * longer anyone's.
 */
void
worker_call_late(struct worker *w, struct call *c)
{
    w->late++;
    if (c->kind == CALL_FORWARD && !c->cancelled)
        worker_cancel(w, c);
}

void
worker_ping_all(void)
{
    struct host *h;
    struct worker *w;

    TAILQ_FOREACH(h, &mgr.hosts, entry)
    TAILQ_FOREACH(w, &h->workers, entry)
    worker_ping(w);
}
