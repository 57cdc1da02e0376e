/*
 * A scripted stand-in for jshost-manager, so libjshost's connection logic
 * (auto-start, pipelining, threads, fork, connection loss) is tested on its
 * own.
 *
 *   fake_server --listen PATH      serve in the foreground
 *   fake_server                    as the library spawns a manager: listen on
 *                                  $JSHOST_RUNTIME_DIR/manager.sock, daemonize,
 *                                  drop the start lock (JSHOST_START_LOCK_FD),
 *                                  append our pid to fake.pids; exit after 3 s
 *                                  without clients.
 *
 * Methods: hello, attach [cfg] -> {"host": "h-<cfg>", ...}, detach, status,
 * shutdown, and call [host, fn, data, opts] with fn:
 *   echo   -> data              fail  -> JSError "boom" with a stack
 *   pid    -> our pid           close -> closes the connection, no reply
 *   garbage -> writes bytes that are not msgpack-RPC
 *   hold   -> answered only when a later "release" call comes (out of order)
 * Callbacks and cancellation (docs/protocol.md):
 *   invoke     -> sends the client [0, rid, "invoke", data] and answers the
 *                 call with {"error": e, "result": r} of the client's answer
 *   invokelater -> answers "sent", then sends that invoke with no call in
 *                 flight; its answer is kept for "lastanswer" (nil until then)
 *   waitcancel -> answered only when a cancel names it: Cancelled
 *   cancelled  -> Cancelled at once (as a stop past its grace answers)
 *   cancels    -> the msgids the connection's cancels named, in order
 *   releases   -> the callback ids its releases named, in order
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "proto.h"

#define MAXC 128

struct conn {
    int fd;
    struct proto_reader *r;
    msgpack_sbuffer out;
    size_t off;
    uint32_t held[64];
    int nheld;
    uint32_t waiting[64]; /* waitcancel calls */
    int nwaiting;
    uint32_t cancels[64];
    int ncancels;
    uint32_t releases[64];
    int nreleases;
    struct {
        uint32_t rid;  /* ours */
        uint32_t call; /* the call to answer with the answer (0: keep it) */
    } invokes[64];
    int ninvokes;
    uint32_t next_rid;
    msgpack_sbuffer last_answer; /* {"error", "result"} of an invokelater */
};

static struct conn conns[MAXC];
static int stop;

static void
reply_obj(struct conn *c, uint32_t msgid, const msgpack_object *o)
{
    msgpack_packer pk;

    msgpack_packer_init(&pk, &c->out, msgpack_sbuffer_write);
    proto_write_result(&pk, msgid);
    msgpack_pack_object(&pk, *o);
}

static void
reply_str(struct conn *c, uint32_t msgid, const char *s)
{
    msgpack_packer pk;

    msgpack_packer_init(&pk, &c->out, msgpack_sbuffer_write);
    proto_write_result(&pk, msgid);
    proto_pack_cstr(&pk, s);
}

static void
reply_int(struct conn *c, uint32_t msgid, int64_t v)
{
    msgpack_packer pk;

    msgpack_packer_init(&pk, &c->out, msgpack_sbuffer_write);
    proto_write_result(&pk, msgid);
    msgpack_pack_int64(&pk, v);
}

static void
close_conn(struct conn *c)
{
    close(c->fd);
    c->fd = -1;
    proto_reader_free(c->r);
    msgpack_sbuffer_destroy(&c->out);
    msgpack_sbuffer_destroy(&c->last_answer);
}

static void
reply_ids(struct conn *c, uint32_t msgid, const uint32_t *ids, int n)
{
    msgpack_packer pk;
    int i;

    msgpack_packer_init(&pk, &c->out, msgpack_sbuffer_write);
    proto_write_result(&pk, msgid);
    msgpack_pack_array(&pk, (size_t)n);
    for (i = 0; i < n; i++)
        msgpack_pack_uint32(&pk, ids[i]);
}

/* The client's answer to one of our invokes: to the call that asked for it,
 * or kept. */
static void
handle_answer(struct conn *c, struct proto_msg *m)
{
    msgpack_sbuffer *sb = &c->out;
    msgpack_packer pk;
    uint32_t call;
    int i;

    for (i = 0; i < c->ninvokes; i++)
        if (c->invokes[i].rid == m->msgid)
            break;
    if (i == c->ninvokes)
        return;
    call = c->invokes[i].call;
    c->invokes[i] = c->invokes[--c->ninvokes];
    if (call == 0) {
        sb = &c->last_answer;
        sb->size = 0;
    }
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    if (call != 0)
        proto_write_result(&pk, call);
    msgpack_pack_map(&pk, 2);
    proto_pack_cstr(&pk, "error");
    msgpack_pack_object(&pk, m->error);
    proto_pack_cstr(&pk, "result");
    msgpack_pack_object(&pk, m->result);
}

/* [2, "cancel", [msgid]] answers a waitcancel call; [2, "release", [ids]]
 * is noted. */
static void
handle_notification(struct conn *c, struct proto_msg *m)
{
    const msgpack_object *a = m->params.via.array.ptr, *ids;
    uint32_t id;
    uint32_t i;
    int k;

    if (proto_msg_is(m, "cancel") && m->params.via.array.size == 1 &&
        a[0].type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        id = (uint32_t)a[0].via.u64;
        if (c->ncancels < 64)
            c->cancels[c->ncancels++] = id;
        for (k = 0; k < c->nwaiting; k++) {
            if (c->waiting[k] != id)
                continue;
            msgpack_packer pk;

            msgpack_packer_init(&pk, &c->out, msgpack_sbuffer_write);
            proto_write_errorf(&pk, id, PROTO_ERR_CANCELLED,
                               "cancelled while it ran");
            c->waiting[k] = c->waiting[--c->nwaiting];
            break;
        }
    } else if (proto_msg_is(m, "release") && m->params.via.array.size == 1 &&
               a[0].type == MSGPACK_OBJECT_ARRAY) {
        ids = &a[0];
        for (i = 0; i < ids->via.array.size && c->nreleases < 64; i++)
            c->releases[c->nreleases++] =
                (uint32_t)ids->via.array.ptr[i].via.u64;
    }
}

/* Sends [0, rid, "invoke", params] (params: any object, as the test gave
 * it), its answer going to `call` (0: kept). */
static void
send_invoke(struct conn *c, const msgpack_object *params, uint32_t call)
{
    msgpack_packer pk;
    uint32_t rid = 9000 + c->next_rid++;

    if (c->ninvokes == 64)
        return;
    c->invokes[c->ninvokes].rid = rid;
    c->invokes[c->ninvokes++].call = call;
    msgpack_packer_init(&pk, &c->out, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 4);
    msgpack_pack_int(&pk, 0);
    msgpack_pack_uint32(&pk, rid);
    proto_pack_cstr(&pk, "invoke");
    msgpack_pack_object(&pk, *params);
}

/* 0, or -1 when the connection is to be closed. */
static int
handle(struct conn *c, struct proto_msg *m)
{
    msgpack_packer pk;
    const msgpack_object *fn, *data;
    char host[300];
    int i;

    if (m->kind == PROTO_RESPONSE)
        handle_answer(c, m);
    if (m->kind == PROTO_NOTIFICATION)
        handle_notification(c, m);
    if (m->kind != PROTO_REQUEST)
        return 0;
    msgpack_packer_init(&pk, &c->out, msgpack_sbuffer_write);
    if (proto_msg_is(m, "hello")) {
        proto_write_result(&pk, m->msgid);
        msgpack_pack_map(&pk, 3);
        proto_pack_cstr(&pk, "server");
        proto_pack_cstr(&pk, "fake");
        proto_pack_cstr(&pk, "protocol");
        msgpack_pack_int(&pk, 1);
        proto_pack_cstr(&pk, "pid");
        msgpack_pack_int(&pk, getpid());
    } else if (proto_msg_is(m, "attach")) {
        const msgpack_object *cfg = &m->params.via.array.ptr[0];

        snprintf(host, sizeof(host), "h-%.*s", (int)cfg->via.str.size,
                 cfg->via.str.ptr);
        proto_write_result(&pk, m->msgid);
        msgpack_pack_map(&pk, 2);
        proto_pack_cstr(&pk, "host");
        proto_pack_cstr(&pk, host);
        proto_pack_cstr(&pk, "functions");
        msgpack_pack_array(&pk, 1);
        proto_pack_cstr(&pk, "echo");
    } else if (proto_msg_is(m, "status")) {
        proto_write_result(&pk, m->msgid);
        msgpack_pack_map(&pk, 2);
        proto_pack_cstr(&pk, "manager");
        msgpack_pack_map(&pk, 1);
        proto_pack_cstr(&pk, "pid");
        msgpack_pack_int(&pk, getpid());
        proto_pack_cstr(&pk, "hosts");
        msgpack_pack_array(&pk, 0);
    } else if (proto_msg_is(m, "detach")) {
        proto_write_result(&pk, m->msgid);
        msgpack_pack_map(&pk, 1);
        proto_pack_cstr(&pk, "linger_ms");
        msgpack_pack_int(&pk, 0);
    } else if (proto_msg_is(m, "shutdown")) {
        proto_write_result(&pk, m->msgid);
        msgpack_pack_nil(&pk);
        stop = 1;
    } else if (proto_msg_is(m, "call") && m->params.via.array.size >= 3) {
        fn = &m->params.via.array.ptr[1];
        data = &m->params.via.array.ptr[2];
        if (proto_obj_streq(fn, "echo")) {
            reply_obj(c, m->msgid, data);
        } else if (proto_obj_streq(fn, "pid")) {
            reply_int(c, m->msgid, getpid());
        } else if (proto_obj_streq(fn, "fail")) {
            struct proto_error e = {
                .type = PROTO_ERR_JS,
                .message = "boom",
                .name = "Error",
                .stack = "Error: boom\n    at fail (fake.js:1:1)"};
            proto_write_error(&pk, m->msgid, &e);
        } else if (proto_obj_streq(fn, "close")) {
            return -1;
        } else if (proto_obj_streq(fn, "garbage")) {
            msgpack_sbuffer_write(&c->out, "\xc1\xc1\xc1\xc1", 4);
        } else if (proto_obj_streq(fn, "hold") && c->nheld < 64) {
            c->held[c->nheld++] = m->msgid;
        } else if (proto_obj_streq(fn, "invoke")) {
            send_invoke(c, data, m->msgid);
        } else if (proto_obj_streq(fn, "invokelater")) {
            reply_str(c, m->msgid, "sent");
            send_invoke(c, data, 0);
        } else if (proto_obj_streq(fn, "lastanswer")) {
            proto_write_result(&pk, m->msgid);
            if (c->last_answer.size > 0)
                msgpack_sbuffer_write(&c->out, c->last_answer.data,
                                      c->last_answer.size);
            else
                msgpack_pack_nil(&pk);
        } else if (proto_obj_streq(fn, "waitcancel") && c->nwaiting < 64) {
            c->waiting[c->nwaiting++] = m->msgid;
        } else if (proto_obj_streq(fn, "cancelled")) {
            proto_write_errorf(&pk, m->msgid, PROTO_ERR_CANCELLED,
                               "the host stopped before the call finished");
        } else if (proto_obj_streq(fn, "cancels")) {
            reply_ids(c, m->msgid, c->cancels, c->ncancels);
        } else if (proto_obj_streq(fn, "releases")) {
            reply_ids(c, m->msgid, c->releases, c->nreleases);
        } else if (proto_obj_streq(fn, "release")) {
            /* answer the held ones after this one: replies out of order */
            reply_str(c, m->msgid, "released");
            for (i = c->nheld - 1; i >= 0; i--)
                reply_int(c, c->held[i], i);
            c->nheld = 0;
        } else {
            proto_write_errorf(&pk, m->msgid, PROTO_ERR_NOT_FOUND,
                               "no function '%.*s'", (int)fn->via.str.size,
                               fn->via.str.ptr);
        }
    } else {
        proto_write_errorf(&pk, m->msgid, PROTO_ERR_NOT_FOUND,
                           "no method '%.*s'", (int)m->method_len, m->method);
    }
    return 0;
}

static int
listen_on(const char *path)
{
    struct sockaddr_un sa;
    int fd;

    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    unlink(path);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
        listen(fd, 128) < 0) {
        perror(path);
        exit(1);
    }
    return fd;
}

static void
serve(int lfd, int idle_exit_ms)
{
    struct pollfd pfd[MAXC + 1];
    int map[MAXC + 1];
    int i, n, nclients, idle_ms = 0;
    char buf[65536];
    char cause[PROTO_CAUSE_MAX];
    struct proto_msg m;

    for (i = 0; i < MAXC; i++)
        conns[i].fd = -1;
    while (!stop) {
        n = 0;
        pfd[n].fd = lfd;
        pfd[n].events = POLLIN;
        map[n++] = -1;
        nclients = 0;
        for (i = 0; i < MAXC; i++) {
            if (conns[i].fd < 0)
                continue;
            nclients++;
            pfd[n].fd = conns[i].fd;
            pfd[n].events =
                POLLIN | (conns[i].off < conns[i].out.size ? POLLOUT : 0);
            map[n++] = i;
        }
        if (poll(pfd, n, 100) == 0) {
            idle_ms = nclients == 0 ? idle_ms + 100 : 0;
            if (idle_exit_ms > 0 && idle_ms >= idle_exit_ms)
                break;
            continue;
        }
        idle_ms = 0;
        if (pfd[0].revents & POLLIN) {
            int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

            for (i = 0; fd >= 0 && i < MAXC; i++) {
                if (conns[i].fd < 0) {
                    conns[i].fd = fd;
                    conns[i].r = proto_reader_new(0);
                    msgpack_sbuffer_init(&conns[i].out);
                    conns[i].off = 0;
                    conns[i].nheld = 0;
                    conns[i].nwaiting = 0;
                    conns[i].ncancels = 0;
                    conns[i].nreleases = 0;
                    conns[i].ninvokes = 0;
                    conns[i].next_rid = 0;
                    msgpack_sbuffer_init(&conns[i].last_answer);
                    break;
                }
            }
            if (i == MAXC && fd >= 0)
                close(fd);
        }
        for (int k = 1; k < n; k++) {
            struct conn *c = &conns[map[k]];
            ssize_t got;
            int r, dead = 0;

            if (c->fd < 0)
                continue;
            if (pfd[k].revents & (POLLIN | POLLHUP | POLLERR)) {
                got = read(c->fd, buf, sizeof(buf));
                if (got <= 0 && !(got < 0 && errno == EAGAIN)) {
                    close_conn(c);
                    continue;
                }
                if (got > 0)
                    proto_reader_feed(c->r, buf, (size_t)got);
                while ((r = proto_reader_next(c->r, &m, cause)) == 1) {
                    if (handle(c, &m) < 0)
                        dead = 1;
                    proto_msg_release(&m);
                    if (dead)
                        break;
                }
                if (dead || r < 0) {
                    close_conn(c);
                    continue;
                }
            }
            while (c->off < c->out.size) {
                got = send(c->fd, c->out.data + c->off, c->out.size - c->off,
                           MSG_NOSIGNAL);
                if (got <= 0)
                    break;
                c->off += (size_t)got;
            }
            if (c->off == c->out.size) {
                c->out.size = 0;
                c->off = 0;
            }
        }
    }
    /* flush what is owed (the shutdown reply) before leaving */
    for (i = 0; i < MAXC; i++) {
        if (conns[i].fd < 0)
            continue;
        fcntl(conns[i].fd, F_SETFL, 0);
        if (conns[i].off < conns[i].out.size)
            (void)!write(conns[i].fd, conns[i].out.data + conns[i].off,
                         conns[i].out.size - conns[i].off);
        close_conn(&conns[i]);
    }
}

int
main(int argc, char **argv)
{
    const char *rt = getenv("JSHOST_RUNTIME_DIR");
    const char *lockfd = getenv("JSHOST_START_LOCK_FD");
    char path[256];
    int lfd, pidfd;
    pid_t pid;

    signal(SIGPIPE, SIG_IGN);
    if (argc == 3 && strcmp(argv[1], "--listen") == 0) {
        lfd = listen_on(argv[2]);
        serve(lfd, 0);
        unlink(argv[2]);
        return 0;
    }
    if (rt == NULL)
        return 2;
    snprintf(path, sizeof(path), "%s/manager.sock", rt);
    lfd = listen_on(path);
    pid = fork();
    if (pid < 0)
        return 1;
    if (pid > 0)
        return 0; /* ready: the socket listens */
    setsid();
    if (lockfd != NULL)
        close(atoi(lockfd)); /* after listen(), as the manager does */
    snprintf(path, sizeof(path), "%s/fake.pids", rt);
    pidfd = open(path, O_WRONLY | O_APPEND | O_CREAT, 0600);
    if (pidfd >= 0) {
        dprintf(pidfd, "%d\n", getpid());
        close(pidfd);
    }
    serve(lfd, 3000);
    snprintf(path, sizeof(path), "%s/manager.sock", rt);
    unlink(path);
    return 0;
}
